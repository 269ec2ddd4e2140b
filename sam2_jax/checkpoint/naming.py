"""Official state-dict key <-> our param path, and the layout change of each tensor.

One rule set, used in both directions (official -> ours in `convert`, ours -> official in export):
- dotted key segments become a path; a numeric segment is merged into the previous one
  (`blocks.3.attn` -> `blocks_3/attn`), as Linen names list submodules;
- `weight` becomes `kernel` (Linear: [out, in] -> [in, out]; Conv2d: OIHW -> HWIO;
  ConvTranspose2d: [in, out, kH, kW] -> [kH, kW, in, out]), `embedding` (nn.Embedding, as is) or
  `scale` (1-D: LayerNorm / LayerNorm2d);
- the few raw parameters stored NCHW by the official code are moved to NHWC.
"""

import re

import numpy as np

# Modules that are nn.Embedding in the official code (their `weight` keeps its layout).
_EMBEDDING_MODULES = re.compile(
    r"(point_embeddings_\d+|not_a_point_embed|no_mask_embed|iou_token|mask_tokens|obj_score_token)$"
)
# ConvTranspose2d modules ([in, out, kH, kW] weights).
_CONV_TRANSPOSE_MODULES = re.compile(r"(^|/)output_upscaling_(0|3)$")
# Raw parameters stored [1, C, H, W] by the official code; ours are [1, H, W, C].
_NCHW_PARAMS = re.compile(r"(^|/)(pos_embed|pos_embed_window)$")


def _to_path(key: str) -> list[str]:
    out: list[str] = []
    for seg in key.split("."):
        if seg.isdigit() and out:
            out[-1] = f"{out[-1]}_{seg}"
        else:
            out.append(seg)
    return out


def official_to_ours(key: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """Map one official (key, tensor) to (our "a/b/c" path, array in our layout)."""
    path = _to_path(key)
    module, leaf = "/".join(path[:-1]), path[-1]
    if leaf == "weight":
        if _EMBEDDING_MODULES.search(module):
            leaf = "embedding"
        elif value.ndim == 1:
            leaf = "scale"
        elif value.ndim == 2:
            leaf, value = "kernel", value.T
        elif value.ndim == 4 and _CONV_TRANSPOSE_MODULES.search(module):
            leaf, value = "kernel", value.transpose(2, 3, 0, 1)
        elif value.ndim == 4:
            leaf, value = "kernel", value.transpose(2, 3, 1, 0)
        else:
            raise ValueError(f"don't know how to convert {key} with shape {value.shape}")
    full = f"{module}/{leaf}" if module else leaf
    if _NCHW_PARAMS.search(full):
        value = value.transpose(0, 2, 3, 1)
    return full, np.ascontiguousarray(value)


def ours_to_official(path: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """Inverse of `official_to_ours`: (our path, array) -> (official key, tensor layout)."""
    parts = path.split("/")
    module, leaf = "/".join(parts[:-1]), parts[-1]
    if _NCHW_PARAMS.search(path):
        value = value.transpose(0, 3, 1, 2)
    if leaf in ("kernel", "scale", "embedding"):
        if leaf == "kernel" and value.ndim == 2:
            value = value.T
        elif leaf == "kernel" and _CONV_TRANSPOSE_MODULES.search(module):
            value = value.transpose(2, 3, 0, 1)
        elif leaf == "kernel":
            value = value.transpose(3, 2, 0, 1)
        leaf = "weight"
    key_parts = []
    for seg in module.split("/") if module else []:
        m = re.fullmatch(r"(.+)_(\d+)", seg)
        key_parts.extend([m.group(1), m.group(2)] if m else [seg])
    return ".".join(key_parts + [leaf]), np.ascontiguousarray(value)
