"""Hugging Face `transformers` SAM 2 checkpoints (`Sam2VideoModel` / `Sam2Model` key names).

HF files are written by transformers itself: the official state dict is renamed with our rules,
loaded with `Sam2VideoModel.load_state_dict(strict=True)` (transformers checks every name and
shape) and saved with `save_pretrained`; the other direction starts from a randomly initialised
`Sam2VideoModel`. (transformers' `convert_sam2_to_hf.py` is not shipped in the wheel.)
Tolerance: transformers and the official model (or ours) on identical fp32 weights on CPU
differ only by op order: 1e-4 max abs, as every parity test.
"""

import contextlib
import functools
import json
import shutil
import sys

import jax
import numpy as np
import pytest
import torch
from conftest import TESTS_DIR
from oracle import (
    assert_close,
    build_official,
    nchw_to_nhwc,
    perturb_constant_tensors_,
    save_official_checkpoint,
)
from safetensors.numpy import save_file

from sam2_jax import config as config_lib
from sam2_jax.build import abstract_params, build_sam2
from sam2_jax.checkpoint import hf
from sam2_jax.checkpoint.convert import params_to_state_dict
from sam2_jax.checkpoint.export import export_official_checkpoint
from sam2_jax.checkpoint.formats import load_official_state_dict, load_params
from sam2_jax.checkpoint.naming import ours_to_official
from sam2_jax.checkpoint.torch_file import CheckpointError
from sam2_jax.convert import main as convert_main
from sam2_jax.models.sam2 import SAM2


@contextlib.contextmanager
def _without_torchvision_standin():
    """transformers probes for torchvision once per process (cached) at import and would take
    the test-only stand-in in tests/support for the real package; hide it meanwhile."""
    support = str(TESTS_DIR / "support")
    hidden = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "torchvision"}
    on_path = support in sys.path
    if on_path:
        sys.path.remove(support)
    try:
        yield
    finally:
        if on_path:
            sys.path.insert(0, support)
        sys.modules.update(hidden)


with _without_torchvision_standin():
    from transformers import Sam2Model, Sam2VideoConfig, Sam2VideoModel

TOL = 1e-4  # fp32 CPU; same weights, different op order
SIZE = 256  # the image size of the `official_t21` fixture


def _hf_config(name: str) -> Sam2VideoConfig:
    """The Sam2VideoConfig of an official config at SIZE px (feature / RoPE sizes follow)."""
    fields = hf.hf_config_fields(name)
    fields["image_size"] = SIZE
    fields["vision_config"]["backbone_config"]["image_size"] = [SIZE, SIZE]
    fields["vision_config"]["backbone_feature_sizes"] = [[SIZE // s] * 2 for s in (4, 8, 16)]
    fields["prompt_encoder_config"] = {"image_size": SIZE}
    fields["memory_attention_rope_feat_sizes"] = [SIZE // 16] * 2
    return Sam2VideoConfig(**fields)


def _save_as_hf(official_sd, name, directory):
    """Official state dict -> HF names (ours) -> strict load by transformers -> save_pretrained."""
    model = Sam2VideoModel(_hf_config(name)).eval()
    hf_sd = {k: torch.from_numpy(np.array(v)) for k, v in hf.official_to_hf(official_sd).items()}
    model.load_state_dict(hf_sd, strict=True)
    model.save_pretrained(directory)
    return model


@functools.cache
def _expected(name):
    return abstract_params(config_lib.load(name))


def _assert_same_params(a, b):
    flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(flat_a, flat_b):
        assert x.dtype == y.dtype and np.array_equal(x, y), jax.tree_util.keystr(path)


@pytest.fixture(scope="module")
def hf_t21(official_t21, tmp_path_factory):
    """(official torch model, its .pt, the transformers model, its save_pretrained directory)."""
    official, pt = official_t21
    directory = tmp_path_factory.mktemp("hf") / "sam2.1-hiera-tiny"
    model = _save_as_hf(load_official_state_dict(pt), "sam2.1_hiera_t", directory)
    return official, pt, model, directory


def _inputs(seed=1):
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, SIZE, SIZE, generator=gen)
    points = torch.tensor([[[0.25 * SIZE, 0.4 * SIZE], [0.7 * SIZE, 0.15 * SIZE]]])
    labels = torch.tensor([[1, 0]], dtype=torch.int32)
    return gen, image, points, labels


def _official_image_heads(official, image, points, labels):
    """Official image path (SAM2ImagePredictor._predict, multimask): logits, ious, obj score."""
    with torch.no_grad():
        bb = official.forward_image(image)
        _, feats, _, sizes = official._prepare_backbone_features(bb)
        feats[-1] = feats[-1] + official.no_mem_embed
        maps = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats, sizes)]
        sparse, dense = official.sam_prompt_encoder((points, labels), None, None)
        masks, ious, _, obj = official.sam_mask_decoder(
            image_embeddings=maps[-1],
            image_pe=official.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=maps[:-1],
        )
    return masks, ious, obj


def _hf_image_heads(directory, image, points, labels):
    """transformers' image model (Sam2Model, as from the hub) loaded from `directory`."""
    model = Sam2Model.from_pretrained(directory).eval()
    with torch.no_grad():
        out = model(
            pixel_values=image,
            input_points=points[None],
            input_labels=labels[None],
            multimask_output=True,
        )
    return out.pred_masks[0], out.iou_scores[0], out.object_score_logits[0]


def _compare_modules(official, hf_model, gen, name):
    """Memory encoder, memory attention, object-pointer MLP and tpos projection."""
    hw = (SIZE // 16) ** 2
    pix = torch.randn(1, 256, SIZE // 16, SIZE // 16, generator=gen)
    masks = torch.randn(1, 1, SIZE, SIZE, generator=gen)
    curr, curr_pos = torch.randn(2, hw, 1, 256, generator=gen)
    memory, memory_pos = torch.randn(2, 2 * hw + 4, 1, 64, generator=gen)
    tokens = torch.randn(3, 256, generator=gen)
    with torch.no_grad():
        ref = official.memory_encoder(pix, masks, skip_mask_sigmoid=True)
        out = hf_model.memory_encoder(pix, masks)
        assert_close(out[0], ref["vision_features"], TOL, f"{name} memory_encoder features")
        ref = official.memory_attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=4)
        out = hf_model.memory_attention(curr, memory, curr_pos, memory_pos, 4)  # [1, B, N, C]
        assert_close(out[0].transpose(0, 1), ref, TOL, f"{name} memory_attention")
        ref = official.obj_ptr_proj(tokens)
        assert_close(hf_model.object_pointer_proj(tokens), ref, TOL, f"{name} obj_ptr_proj")
        ref = official.obj_ptr_tpos_proj(tokens)
        out = hf_model.temporal_positional_encoding_projection_layer(tokens)
        assert_close(out, ref, TOL, f"{name} obj_ptr_tpos_proj")


def test_key_names_match_transformers_for_all_official_configs():
    """Names and shapes for the 4 sizes (sam2 differs by 3 tensors: `test_sam2_release`), and
    config.json -> config name for all 8."""
    for name in hf.OFFICIAL_NAMES:
        config = _hf_config(name)
        assert hf.hf_config_name(config.to_dict()) == name
        if not name.startswith("sam2.1"):
            continue
        want = hf.expected_hf_shapes(_expected(name))
        with torch.device("meta"):
            reference = {k: tuple(v.shape) for k, v in Sam2VideoModel(config).state_dict().items()}
        assert want == reference, (name, sorted(set(want) ^ set(reference))[:5])
        official = hf.hf_to_official({k: np.zeros(v, np.bool_) for k, v in want.items()})
        assert set(official) == {
            ours_to_official("/".join(p.key for p in path), np.zeros(leaf.shape, np.bool_))[0]
            for path, leaf in jax.tree_util.tree_flatten_with_path(_expected(name))[0]
        }
    assert len(reference) == 901  # sam2.1_hiera_l: 903 official tensors, 4 point embeds -> 1, +1


def test_hf_checkpoint_loads_bitwise_like_official_pt(hf_t21, tmp_path):
    _, pt, _, directory = hf_t21
    expected = _expected("sam2.1_hiera_t")
    from_pt = load_params(pt, expected, "sam2.1_hiera_t")
    from_dir = load_params(directory, expected, "sam2.1_hiera_t")
    _assert_same_params(from_dir, from_pt)
    _assert_same_params(load_params(directory / "model.safetensors", expected), from_pt)
    # Ours -> HF names again gives back exactly the file transformers wrote (469 tensors).
    stored = hf.load_hf_state_dict(directory)
    again = hf.official_to_hf(params_to_state_dict(from_dir))
    assert len(stored) == 469 and set(again) == set(stored)
    assert all(np.array_equal(again[k], v) for k, v in stored.items())
    assert hf.hf_config_name(json.loads((directory / "config.json").read_text())) == (
        "sam2.1_hiera_t"
    )
    # The CLI takes the directory and reads the config name from its config.json.
    assert convert_main(["--checkpoint", str(directory), "--out", str(tmp_path / "o")]) == 0
    _assert_same_params(load_params(tmp_path / "o", expected), from_pt)


def test_transformers_runs_our_renamed_weights_like_official(hf_t21):
    """The renaming is right, not only consistent: transformers' own model on the renamed
    weights reproduces the official model (image heads via Sam2Model, memory modules)."""
    official, _, hf_model, directory = hf_t21
    gen, image, points, labels = _inputs()
    ref = _official_image_heads(official, image, points, labels)
    out = _hf_image_heads(directory, image, points, labels)
    for field, o, r in zip(("mask logits", "ious", "object score"), out, ref):
        assert_close(o, r, TOL, f"transformers vs official {field}")
    _compare_modules(official, hf_model, gen, "transformers vs official")


def test_our_model_from_hf_matches_transformers(hf_t21):
    _, _, _, directory = hf_t21
    ours = build_sam2("sam2.1_hiera_t", directory, [f"image_size={SIZE}"])
    _, image, points, labels = _inputs(seed=2)
    ref = _hf_image_heads(directory, image, points, labels)

    @jax.jit
    def heads(params, image, points, labels):
        bb = ours.module.apply(params, image, method=SAM2.forward_image)
        pix = ours.module.apply(params, bb.vision_features, method=SAM2.add_no_mem_embed)
        return ours.module.apply(
            params,
            pix,
            points,
            labels,
            None,
            bb.backbone_fpn[:2],
            True,
            method=SAM2.forward_sam_heads,
        )

    out = heads(ours.params, nchw_to_nhwc(image), points.numpy(), labels.numpy())
    assert_close(out.low_res_multimasks, ref[0], TOL, "ours(HF weights) vs transformers logits")
    assert_close(out.ious, ref[1], TOL, "ours(HF weights) vs transformers ious")
    assert_close(out.object_score_logits, ref[2], TOL, "ours(HF weights) vs transformers obj")


def test_random_transformers_model_runs_the_same_in_official_form(tmp_path):
    """HF -> official independently of our official -> HF rules: a random Sam2VideoModel, read
    by us, exported as an official .pt, strictly loaded by the official builder."""
    torch.manual_seed(0)
    model = Sam2VideoModel(_hf_config("sam2.1_hiera_t")).eval()
    perturb_constant_tensors_(model)
    with torch.no_grad():  # one matrix in the official model (see hf.py)
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding
        )
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(4.0)  # objects present
    model.save_pretrained(tmp_path / "hf")
    params = load_params(tmp_path / "hf", _expected("sam2.1_hiera_t"), "sam2.1_hiera_t")
    export_official_checkpoint(params, tmp_path / "exported.pt")
    official = build_official("sam2.1_hiera_t", SIZE, extra_overrides=(), object_score_bias=None)
    sd = torch.load(tmp_path / "exported.pt", weights_only=True)["model"]
    official.load_state_dict(sd, strict=True)
    gen, image, points, labels = _inputs(seed=3)
    ref = _official_image_heads(official, image, points, labels)
    out = _hf_image_heads(tmp_path / "hf", image, points, labels)
    for field, o, r in zip(("mask logits", "ious", "object score"), out, ref):
        assert_close(o, r, TOL, f"random transformers vs official {field}")
    _compare_modules(official, model, gen, "random transformers vs official")


def test_sam2_release(tmp_path):
    official = build_official("sam2_hiera_t", image_size=SIZE, seed=1)
    save_official_checkpoint(official, tmp_path / "sam2_hiera_tiny.pt")
    sd = load_official_state_dict(tmp_path / "sam2_hiera_tiny.pt")
    _save_as_hf(sd, "sam2_hiera_t", tmp_path / "hf")
    expected = _expected("sam2_hiera_t")
    _assert_same_params(
        load_params(tmp_path / "hf", expected, "sam2_hiera_t"),
        load_params(tmp_path / "sam2_hiera_tiny.pt", expected, "sam2_hiera_t"),
    )
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf.hf_config_name(config) == "sam2_hiera_t"
    assert len(hf.load_hf_state_dict(tmp_path / "hf")) == 466
    with pytest.raises(CheckpointError) as e:  # 2.0 weights, 2.1 config
        load_params(tmp_path / "hf", _expected("sam2.1_hiera_t"), "sam2.1_hiera_t")
    msg = str(e.value)
    assert "missing: occlusion_spatial_embedding_parameter (1, 64)" in msg
    assert "missing: temporal_positional_encoding_projection_layer.weight (64, 256)" in msg
    assert "its config.json describes 'sam2_hiera_t'" in msg


def test_wrong_size_and_image_only_checkpoints_are_explained(hf_t21, tmp_path):
    _, _, _, directory = hf_t21
    with pytest.raises(CheckpointError) as e:  # tiny weights, small config
        load_params(directory, _expected("sam2.1_hiera_s"), "sam2.1_hiera_s")
    msg = str(e.value)
    assert "Hugging Face checkpoint does not match the model config 'sam2.1_hiera_s'" in msg
    assert "missing: vision_encoder.backbone.blocks.15.attn.qkv.weight (2304, 768)" in msg
    assert "unexpected: vision_encoder.backbone.blocks.10.proj.weight (768, 384)" in msg
    assert (
        "wrong shape: vision_encoder.backbone.blocks.10.attn.qkv.weight (2304, 384), "
        "model expects (1152, 384)"
    ) in msg
    assert "its config.json describes 'sam2.1_hiera_t'" in msg
    bare = tmp_path / "weights.safetensors"  # no config.json: guessed from the tensors
    shutil.copy(directory / "model.safetensors", bare)
    with pytest.raises(CheckpointError, match="looks like 'sam2.1_hiera_t'"):
        load_params(bare, _expected("sam2.1_hiera_s"), "sam2.1_hiera_s")

    Sam2Model.from_pretrained(directory).save_pretrained(tmp_path / "image_only")
    with pytest.raises(CheckpointError) as e:
        load_params(tmp_path / "image_only", _expected("sam2.1_hiera_t"), "sam2.1_hiera_t")
    assert "missing: memory_attention.layer_norm.weight (256,)" in str(e.value)
    assert "image-only Sam2Model checkpoint" in str(e.value)
    config = json.loads((tmp_path / "image_only" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="does not record whether it is SAM 2 or SAM 2.1"):
        hf.hf_config_name(config)


def test_bad_hf_files(hf_t21, tmp_path):
    _, _, _, directory = hf_t21
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(directory / "config.json", no_weights)
    (no_weights / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"without model.safetensors.*pytorch_model.bin"):
        load_params(no_weights, _expected("sam2.1_hiera_t"), "sam2.1_hiera_t")

    stored = hf.load_hf_state_dict(directory)
    stored["shared_image_embedding.positional_embedding"] = stored[
        "shared_image_embedding.positional_embedding"
    ] + np.float32(1.0)
    save_file(stored, tmp_path / "two_pe.safetensors")
    with pytest.raises(
        CheckpointError, match="shared_image_embedding.positional_embedding differs"
    ):
        load_params(tmp_path / "two_pe.safetensors", _expected("sam2.1_hiera_t"))

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((directory / "model.safetensors").read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_params(truncated, _expected("sam2.1_hiera_t"))

    odd = _hf_config("sam2.1_hiera_t").to_dict()
    odd["vision_config"]["backbone_config"]["hidden_size"] = 64
    with pytest.raises(CheckpointError, match="cannot tell which official SAM 2 config"):
        hf.hf_config_name(odd)


def test_bfloat16_tensors_are_read(tmp_path):
    import ml_dtypes

    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    file = tmp_path / "bf16.safetensors"
    torch_file = {"a": torch.from_numpy(values).bfloat16(), "b": torch.ones(2)}
    from safetensors.torch import save_file as save_torch

    save_torch(torch_file, file)
    read = hf.load_hf_state_dict(file)
    assert read["a"].dtype == ml_dtypes.bfloat16 and read["b"].dtype == np.float32
    assert np.array_equal(read["a"].astype(np.float32), values)
