"""Official SAM 2 state dict <-> sam2-jax param tree, strict in both directions.

Every key of the checkpoint must be consumed and every param of the model filled with the right
shape; otherwise `CheckpointError` lists all missing, unexpected and mis-shaped entries and, when
it can tell, which official config the checkpoint belongs to.
"""

from typing import Any, Mapping

import numpy as np
from flax import traverse_util

from sam2_jax.checkpoint.naming import official_to_ours, ours_to_official
from sam2_jax.checkpoint.torch_file import CheckpointError

_TRUNK_SIGNATURES = {  # (embed_dim, number of blocks) -> size name
    (96, 12): "hiera_t",
    (96, 16): "hiera_s",
    (112, 24): "hiera_b+",
    (144, 48): "hiera_l",
}


def guess_config(state_dict: Mapping[str, Any]) -> str | None:
    """Best guess of the official config name of an official state dict, or None."""
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        return None
    blocks = {k.split(".")[3] for k in state_dict if k.startswith("image_encoder.trunk.blocks.")}
    size = _TRUNK_SIGNATURES.get((int(patch.shape[0]), len(blocks)))
    if size is None:
        return None
    release = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    return f"{release}_{size}"


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray], expected: Mapping[str, Any], config_name: str = ""
) -> dict[str, Any]:
    """Official state dict -> our params, checked against `expected` (a param tree of arrays or
    ShapeDtypeStructs, e.g. from `jax.eval_shape(module.init, ...)["params"]`)."""
    want = {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(expected)).items()}
    got: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    for key, value in state_dict.items():
        path, arr = official_to_ours(key, np.asarray(value))
        got[path], source[path] = arr, key
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    wrong = sorted(p for p in set(want) & set(got) if tuple(want[p].shape) != tuple(got[p].shape))
    if missing or unexpected or wrong:
        lines = [f"checkpoint does not match the model config {config_name!r}:"]
        lines += [
            f"  missing: {_official_name(p, want[p])} {tuple(want[p].shape)}" for p in missing
        ]
        lines += [f"  unexpected: {source[p]} {tuple(got[p].shape)}" for p in unexpected]
        lines += [
            f"  wrong shape: {source[p]} {tuple(got[p].shape)} (in our layout), model expects "
            f"{tuple(want[p].shape)}"
            for p in wrong
        ]
        guess = guess_config(state_dict)
        if guess and guess != config_name:
            lines.append(f"  this checkpoint looks like {guess!r}; pass that config name instead")
        raise CheckpointError("\n".join(lines))
    flat = {tuple(p.split("/")): got[p].astype(np.dtype(want[p].dtype), copy=False) for p in want}
    return traverse_util.unflatten_dict(flat)


def _official_name(path: str, like: Any) -> str:
    return ours_to_official(path, np.zeros(like.shape, np.float32))[0]


def params_to_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Our params -> an official state dict (numpy arrays, official layouts and key names)."""
    out = {}
    for path, value in traverse_util.flatten_dict(dict(params)).items():
        key, arr = ours_to_official("/".join(path), np.asarray(value))
        out[key] = arr
    return out
