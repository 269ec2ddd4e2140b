"""Hugging Face `transformers` SAM 2 checkpoints <-> official state dicts (no torch needed).

Counterparts: `transformers/models/sam2_video/modeling_sam2_video.py::Sam2VideoModel` and
`transformers/models/sam2/modeling_sam2.py::Sam2Model` (the same key names; `Sam2Model` holds the
image-side subset), their `configuration_sam2*.py`, and the key rules of the
`convert_sam2_to_hf.py` script of the transformers repository (official -> HF).

Every HF tensor keeps the official layout and grouping (NCHW `pos_embed` / `pos_embed_window`
parameters, [out, in] Linear, OIHW Conv2d, [in, out, kH, kW] ConvTranspose2d, the Hiera `attn.qkv`
still fused, the memory-attention q/k/v/out already separate in both); the mapping is a key
renaming (the table in `_rules`) plus two structural transforms:
- the 4 official `sam_prompt_encoder.point_embeddings.{i}.weight` [1, C] are stacked into one
  HF `prompt_encoder.point_embed.weight` [4, C] (row i = point embedding i);
- the official random-Fourier matrix `sam_prompt_encoder.pe_layer.positional_encoding_gaussian_
  matrix` [2, C/2] is stored twice by HF, as `prompt_encoder.shared_embedding.
  positional_embedding` (point/box prompts) and `shared_image_embedding.positional_embedding`
  (the image-wide dense PE); the official model has one matrix, so on read both must be equal.
Index shifts in the renaming: the 3-layer MLP heads (`iou_prediction_head`,
`pred_obj_score_head`, `output_hypernetworks_mlps.{j}`, `obj_ptr_proj`) become
`proj_in` / `layers.0` / `proj_out`; the 2-layer MLPs (Hiera blocks, two-way transformer)
`proj_in` / `proj_out`; the memory mask downsampler's `encoder.{3i}` (conv) and `encoder.{3i+1}`
(LayerNorm2d) become `layers.{i}.conv` / `layers.{i}.layer_norm`, `encoder.12` `final_conv`.
Other renames: `image_encoder.trunk` -> `vision_encoder.backbone`, `neck.convs.{i}.conv` ->
`neck.convs.{i}`, `norm*` -> `layer_norm*`, `out_proj` -> `o_proj` (attention) or `projection`
(memory encoder), `gamma` -> `scale`, and the SAM2Base parameters get descriptive names
(`no_obj_embed_spatial` -> `occlusion_spatial_embedding_parameter`, ...). The hub checkpoints
(`facebook/sam2.1-hiera-*`, `facebook/sam2-hiera-*`) are `Sam2VideoModel` files; a file saved
from the image-only `Sam2Model` lacks the memory modules and is refused (with that diagnosis).

`hf_config_name(config)` reads a HF `config.json` and names the official config it describes;
`load_hf_params(path, expected, config_name)` reads a HF model directory or `.safetensors` file
into our params, strictly (errors use the HF key names).
"""

import functools
import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from flax import traverse_util
from safetensors import SafetensorError, safe_open

from sam2_jax import config as config_lib
from sam2_jax.checkpoint.convert import convert_state_dict, guess_config
from sam2_jax.checkpoint.naming import ours_to_official
from sam2_jax.checkpoint.torch_file import CheckpointError

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"

_POINT_EMBED_OFFICIAL = re.compile(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight")
_POINT_EMBED_HF = "prompt_encoder.point_embed.weight"
_GAUSSIAN_OFFICIAL = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_GAUSSIAN_HF = "prompt_encoder.shared_embedding.positional_embedding"
_IMAGE_PE_HF = "shared_image_embedding.positional_embedding"

# Memory mask downsampler: total_stride 16 / stride 2 -> 4 (conv, LayerNorm2d, GELU) groups, then
# the final 1x1 conv at Sequential index 12 (official MaskDownSampler, all 8 configs).
_MASK_DOWNSAMPLER_LAYERS = 4
_MLP3_HEADS = (
    ("sam_mask_decoder.iou_prediction_head", "mask_decoder.iou_prediction_head"),
    ("sam_mask_decoder.pred_obj_score_head", "mask_decoder.pred_obj_score_head"),
    (
        "sam_mask_decoder.output_hypernetworks_mlps.{i}",
        "mask_decoder.output_hypernetworks_mlps.{i}",
    ),
    ("obj_ptr_proj", "object_pointer_proj"),
)
OFFICIAL_NAMES = tuple(f"{r}_hiera_{s}" for r in ("sam2.1", "sam2") for s in ("t", "s", "b+", "l"))
_PLACEHOLDERS = {"i": r"\d+", "k": r"\d+", "p": r"weight|bias", "rest": r".+"}


def _rules() -> tuple[tuple[str, str], ...]:
    """(official template, HF template) pairs; the first full match wins, in both directions."""
    mlp3 = [
        (f"{off}.layers.{a}.{{p}}", f"{hf}.{b}.{{p}}")
        for off, hf in _MLP3_HEADS
        for a, b in ((0, "proj_in"), (1, "layers.0"), (2, "proj_out"))
    ]
    downsampler = [
        (
            f"memory_encoder.mask_downsampler.encoder.{3 * i + j}.{{p}}",
            f"memory_encoder.mask_downsampler.layers.{i}.{name}.{{p}}",
        )
        for i in range(_MASK_DOWNSAMPLER_LAYERS)
        for j, name in ((0, "conv"), (1, "layer_norm"))
    ]
    mask_downscaling = [
        (f"sam_prompt_encoder.mask_downscaling.{a}.{{p}}", f"prompt_encoder.mask_embed.{b}.{{p}}")
        for a, b in (
            (0, "conv1"),
            (1, "layer_norm1"),
            (3, "conv2"),
            (4, "layer_norm2"),
            (6, "conv3"),
        )
    ]
    upscaling = [
        (f"sam_mask_decoder.output_upscaling.{a}.{{p}}", f"mask_decoder.{b}.{{p}}")
        for a, b in ((0, "upscale_conv1"), (1, "upscale_layer_norm"), (3, "upscale_conv2"))
    ]
    fuser = [
        (
            f"memory_encoder.fuser.layers.{{i}}.{a}.{{p}}",
            f"memory_encoder.memory_fuser.layers.{{i}}.{b}.{{p}}",
        )
        for a, b in (
            ("dwconv", "depthwise_conv"),
            ("norm", "layer_norm"),
            ("pwconv1", "pointwise_conv1"),
            ("pwconv2", "pointwise_conv2"),
        )
    ]
    trunk, backbone = "image_encoder.trunk", "vision_encoder.backbone"
    return (
        # Image encoder (Hiera trunk + FPN neck).
        (f"{trunk}.patch_embed.proj.{{p}}", f"{backbone}.patch_embed.projection.{{p}}"),
        (f"{trunk}.blocks.{{i}}.norm{{k}}.{{p}}", f"{backbone}.blocks.{{i}}.layer_norm{{k}}.{{p}}"),
        (f"{trunk}.blocks.{{i}}.mlp.layers.0.{{p}}", f"{backbone}.blocks.{{i}}.mlp.proj_in.{{p}}"),
        (f"{trunk}.blocks.{{i}}.mlp.layers.1.{{p}}", f"{backbone}.blocks.{{i}}.mlp.proj_out.{{p}}"),
        (f"{trunk}.{{rest}}", f"{backbone}.{{rest}}"),
        ("image_encoder.neck.convs.{i}.conv.{p}", "vision_encoder.neck.convs.{i}.{p}"),
        # Prompt encoder (point embeddings and the Gaussian matrix: see the module docstring).
        (_GAUSSIAN_OFFICIAL, _GAUSSIAN_HF),
        *mask_downscaling,
        ("sam_prompt_encoder.{rest}", "prompt_encoder.{rest}"),
        # Mask decoder.
        (
            "sam_mask_decoder.transformer.layers.{i}.norm{k}.{p}",
            "mask_decoder.transformer.layers.{i}.layer_norm{k}.{p}",
        ),
        (
            "sam_mask_decoder.transformer.layers.{i}.mlp.layers.0.{p}",
            "mask_decoder.transformer.layers.{i}.mlp.proj_in.{p}",
        ),
        (
            "sam_mask_decoder.transformer.layers.{i}.mlp.layers.1.{p}",
            "mask_decoder.transformer.layers.{i}.mlp.proj_out.{p}",
        ),
        (
            "sam_mask_decoder.transformer.norm_final_attn.{p}",
            "mask_decoder.transformer.layer_norm_final_attn.{p}",
        ),
        (
            "sam_mask_decoder.transformer.{rest}.out_proj.{p}",
            "mask_decoder.transformer.{rest}.o_proj.{p}",
        ),
        *upscaling,
        *mlp3,
        ("sam_mask_decoder.{rest}", "mask_decoder.{rest}"),
        # Memory attention.
        ("memory_attention.norm.{p}", "memory_attention.layer_norm.{p}"),
        (
            "memory_attention.layers.{i}.norm{k}.{p}",
            "memory_attention.layers.{i}.layer_norm{k}.{p}",
        ),
        (
            "memory_attention.layers.{i}.{rest}.out_proj.{p}",
            "memory_attention.layers.{i}.{rest}.o_proj.{p}",
        ),
        ("memory_attention.{rest}", "memory_attention.{rest}"),
        # Memory encoder.
        *downsampler,
        (
            f"memory_encoder.mask_downsampler.encoder.{3 * _MASK_DOWNSAMPLER_LAYERS}.{{p}}",
            "memory_encoder.mask_downsampler.final_conv.{p}",
        ),
        ("memory_encoder.pix_feat_proj.{p}", "memory_encoder.feature_projection.{p}"),
        ("memory_encoder.out_proj.{p}", "memory_encoder.projection.{p}"),
        *fuser,
        ("memory_encoder.fuser.layers.{i}.gamma", "memory_encoder.memory_fuser.layers.{i}.scale"),
        # SAM2Base parameters.
        ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
        ("no_mem_embed", "no_memory_embedding"),
        ("no_mem_pos_enc", "no_memory_positional_encoding"),
        ("no_obj_ptr", "no_object_pointer"),
        ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
        ("obj_ptr_tpos_proj.{p}", "temporal_positional_encoding_projection_layer.{p}"),
        ("mask_downsample.{p}", "mask_downsample.{p}"),
    )


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        f"(?P<{p}>{_PLACEHOLDERS[p]})" if i % 2 else re.escape(p) for i, p in enumerate(parts)
    )
    return re.compile(regex)


@functools.cache
def _compiled_rules(to_hf: bool) -> tuple[tuple[re.Pattern, str], ...]:
    pairs = ((o, h) if to_hf else (h, o) for o, h in _rules())
    return tuple((_compile(source), target) for source, target in pairs)


def _rename(key: str, to_hf: bool) -> str | None:
    for source, target in _compiled_rules(to_hf):
        m = source.fullmatch(key)
        if m:
            return target.format(**m.groupdict())
    return None


def official_to_hf_key(key: str) -> str:
    """HF name of an official key (not for the point embeddings, which HF stacks)."""
    out = _rename(key, to_hf=True)
    if out is None:
        raise KeyError(f"no Hugging Face name for the official key {key!r}")
    return out


def hf_to_official_key(key: str) -> str:
    """Official name of a HF key (not for `point_embed` / `shared_image_embedding`)."""
    out = _rename(key, to_hf=False)
    if out is None:
        raise KeyError(f"no official name for the Hugging Face key {key!r}")
    return out


def official_to_hf(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Official state dict -> HF (`Sam2VideoModel`) state dict; tensors keep their layout."""
    out: dict[str, np.ndarray] = {}
    points: dict[int, np.ndarray] = {}
    for key, value in state_dict.items():
        m = _POINT_EMBED_OFFICIAL.fullmatch(key)
        if m:
            points[int(m.group(1))] = np.asarray(value)
        else:
            out[official_to_hf_key(key)] = value
    if points:
        out[_POINT_EMBED_HF] = np.concatenate([points[i] for i in sorted(points)], axis=0)
    if _GAUSSIAN_HF in out:
        out[_IMAGE_PE_HF] = out[_GAUSSIAN_HF]
    return out


def hf_to_official(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF state dict -> official state dict (inverse of `official_to_hf`)."""
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if key == _POINT_EMBED_HF:
            value = np.asarray(value)
            for i in range(value.shape[0]):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = value[i : i + 1]
        elif key == _IMAGE_PE_HF:
            other = state_dict.get(_GAUSSIAN_HF)
            if other is None or not np.array_equal(np.asarray(value), np.asarray(other)):
                raise CheckpointError(
                    f"{_IMAGE_PE_HF} differs from {_GAUSSIAN_HF}: the official model uses one "
                    "random-Fourier matrix for both, so this checkpoint cannot be represented"
                )
        else:
            out[hf_to_official_key(key)] = value
    return out


# ------------------------------------------------------------------------- HF config.json


def _hf_signature(name: str) -> dict[str, Any]:
    """HF config fields (dotted paths into `config.json`) that tell the official configs apart."""
    cfg = config_lib.model_config(name)
    trunk = cfg.image_encoder.trunk
    stages = len(trunk.stages)
    backbone = "vision_config.backbone_config."
    return {
        backbone + "hidden_size": trunk.embed_dim,
        backbone + "num_attention_heads": trunk.num_heads,
        backbone + "blocks_per_stage": list(trunk.stages),
        backbone + "embed_dim_per_stage": [
            int(trunk.embed_dim * trunk.dim_mul**i) for i in range(stages)
        ],
        backbone + "num_attention_heads_per_stage": [
            int(trunk.num_heads * trunk.head_mul**i) for i in range(stages)
        ],
        backbone + "global_attention_blocks": list(trunk.global_att_blocks),
        backbone + "window_positional_embedding_background_size": list(
            trunk.window_pos_embed_bkg_spatial_size
        ),
        backbone + "window_size_per_stage": list(trunk.window_spec),
        "vision_config.backbone_channel_list": list(cfg.image_encoder.neck.backbone_channel_list),
        "enable_occlusion_spatial_embedding": cfg.no_obj_embed_spatial,
        "enable_temporal_pos_encoding_for_object_pointers": cfg.add_tpos_enc_to_obj_ptrs,
        "num_maskmem": cfg.num_maskmem,
        "memory_attention_num_layers": cfg.memory_attention.num_layers,
    }


def hf_config_fields(config_name: str) -> dict[str, Any]:
    """The nested HF `Sam2VideoConfig` fields of an official config (what `hf_config_name`
    reads), e.g. `Sam2VideoConfig(**hf_config_fields("sam2_hiera_s"))`."""
    flat = {tuple(k.split(".")): v for k, v in _hf_signature(config_name).items()}
    flat[("vision_config", "model_type")] = "sam2_vision_model"
    flat[("vision_config", "backbone_config", "model_type")] = "sam2_hiera_det_model"
    return traverse_util.unflatten_dict(flat)


def _lookup(config: Mapping[str, Any], dotted: str, default: Any) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def hf_config_name(config: Mapping[str, Any]) -> str:
    """The official config name (`sam2.1_hiera_t`, ...) a HF `config.json` dict describes.

    Fields left out of the file take the transformers defaults, which are sam2.1 tiny's. Raises
    CheckpointError when the config matches none of the 8, or is an image-only `Sam2Model`
    config (model_type "sam2"), which does not record the release (sam2 / sam2.1)."""
    model_type = config.get("model_type")
    defaults = _hf_signature("sam2.1_hiera_t")
    found = {k: _plain(_lookup(config, k, v)) for k, v in defaults.items()}
    size_fields = [k for k in found if k.startswith("vision_config.")]
    candidates = [
        name
        for name in OFFICIAL_NAMES
        if all(_hf_signature(name)[k] == found[k] for k in size_fields)
    ]
    if model_type == "sam2":
        raise CheckpointError(
            "an image-only Sam2Model config (model_type 'sam2') does not record whether it is "
            f"SAM 2 or SAM 2.1 (trunk matches {candidates or 'no official size'}); "
            "pass the config name explicitly"
        )
    if model_type not in (None, "sam2_video"):
        raise CheckpointError(f"not a SAM 2 config: model_type {model_type!r}")
    matches = [n for n in candidates if _hf_signature(n) == found]
    if len(matches) != 1:
        lines = "\n".join(f"  {k} = {v!r}" for k, v in found.items())
        raise CheckpointError(
            f"cannot tell which official SAM 2 config this HF config is; it has\n{lines}\n"
            f"which matches none of {', '.join(OFFICIAL_NAMES)}"
        )
    return matches[0]


# ------------------------------------------------------------------------------- reading


def is_hf_checkpoint(path: str | Path) -> bool:
    """A `.safetensors` file, or a directory with a HF `config.json` or safetensors weights."""
    path = Path(path)
    if path.is_dir():
        return any((path / f).exists() for f in (CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE))
    return path.suffix == ".safetensors"


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / WEIGHTS_FILE).is_file():
        return [path / WEIGHTS_FILE]
    index = path / WEIGHTS_INDEX_FILE
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / s for s in shards]
    found = sorted(p.name for p in path.iterdir())
    raise CheckpointError(
        f"{path}: a Hugging Face model directory without {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} "
        f"(found: {', '.join(found) or 'nothing'}); only safetensors weights are read "
        "(re-save with save_pretrained(..., safe_serialization=True))"
    )


def load_hf_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a HF model directory (single or sharded safetensors) or `.safetensors`
    file, as numpy arrays in their stored dtype (bfloat16 via ml_dtypes)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    out: dict[str, np.ndarray] = {}
    for file in _weight_files(path):
        if not file.is_file():
            raise FileNotFoundError(f"{path}: weight shard {file.name} does not exist")
        try:
            with safe_open(file, framework="np") as f:
                for key in f.keys():
                    out[key] = _read_tensor(f, file, key)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{file}: corrupt or unreadable safetensors file ({e})") from e
    return out


def _read_tensor(handle: Any, file: Path, key: str) -> np.ndarray:
    if handle.get_slice(key).get_dtype() != "BF16":
        return np.array(handle.get_tensor(key))
    # numpy has no bfloat16: read through the jax backend, which returns ml_dtypes arrays.
    with safe_open(file, framework="flax") as f:
        return np.asarray(f.get_tensor(key))


def _read_config(path: Path) -> dict[str, Any] | None:
    file = path / CONFIG_FILE if path.is_dir() else path.with_name(CONFIG_FILE)
    return json.loads(file.read_text()) if file.is_file() else None


def expected_hf_shapes(expected: Any) -> dict[str, tuple[int, ...]]:
    """HF key -> shape for our param tree `expected` (shapes only; 1-byte stand-in arrays)."""
    official = {}
    for path, leaf in traverse_util.flatten_dict(dict(expected)).items():
        key, arr = ours_to_official("/".join(path), np.zeros(leaf.shape, np.bool_))
        official[key] = arr
    return {k: tuple(v.shape) for k, v in official_to_hf(official).items()}


def _config_hint(path: Path, state_dict: Mapping[str, np.ndarray], config_name: str) -> list[str]:
    hints = []
    config = _read_config(path)
    if config is not None:
        try:
            named = hf_config_name(config)
        except CheckpointError:
            named = None
        if named and named != config_name:
            hints.append(f"  its {CONFIG_FILE} describes {named!r}; pass that config name instead")
    renamed = {}
    for key, value in state_dict.items():
        official = _rename(key, to_hf=False)
        if official:
            renamed[official] = value
    guess = guess_config(renamed)
    if guess and guess != config_name and not hints:
        hints.append(f"  this checkpoint looks like {guess!r}; pass that config name instead")
    return hints


# Keys of Sam2VideoModel that Sam2Model does not have (its `_keys_to_ignore_on_load_unexpected`).
_VIDEO_ONLY_PREFIXES = (
    "memory_",
    "mask_downsample",
    "object_pointer_proj",
    "temporal_positional_encoding_projection_layer",
    "no_memory_positional_encoding",
    "no_object_pointer",
    "occlusion_spatial_embedding_parameter",
)


def convert_hf_state_dict(
    state_dict: Mapping[str, np.ndarray],
    expected: Any,
    config_name: str = "",
    source: str | Path = "",
) -> dict[str, Any]:
    """HF state dict -> our params, checked against `expected` with HF key names in errors."""
    want = expected_hf_shapes(expected)
    got = {k: tuple(np.shape(v)) for k, v in state_dict.items()}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    if missing or unexpected or wrong:
        where = f"{source}: " if source else ""
        lines = [f"{where}Hugging Face checkpoint does not match the model config {config_name!r}:"]
        lines += [f"  missing: {k} {want[k]}" for k in missing]
        lines += [f"  unexpected: {k} {got[k]}" for k in unexpected]
        lines += [f"  wrong shape: {k} {got[k]}, model expects {want[k]}" for k in wrong]
        if missing and all(k.startswith(_VIDEO_ONLY_PREFIXES) for k in missing):
            lines.append(
                "  this looks like an image-only Sam2Model checkpoint: it lacks the memory "
                "modules; use a Sam2VideoModel checkpoint (e.g. facebook/sam2.1-hiera-*)"
            )
        if source:
            lines += _config_hint(Path(source), state_dict, config_name)
        raise CheckpointError("\n".join(lines))
    return convert_state_dict(hf_to_official(state_dict), expected, config_name)


def load_hf_params(path: str | Path, expected: Any, config_name: str = "") -> dict[str, Any]:
    """Our params from a HF model directory or `.safetensors` file, checked strictly."""
    path = Path(path)
    return convert_hf_state_dict(load_hf_state_dict(path), expected, config_name, source=path)
