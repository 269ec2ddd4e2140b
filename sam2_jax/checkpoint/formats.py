"""Checkpoint files: official `.pt` (read without torch), orbax param directories and Hugging Face
`transformers` checkpoints (a model directory with `model.safetensors`, or the file itself).

`load_params(path, expected, config_name)` accepts any of them and returns our param tree, checked
strictly against `expected` (a tree of ShapeDtypeStructs). `save_params` writes an orbax directory
with a small JSON note of the config it belongs to.
"""

import json
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from sam2_jax.checkpoint.convert import convert_state_dict
from sam2_jax.checkpoint.hf import is_hf_checkpoint, load_hf_params
from sam2_jax.checkpoint.torch_file import CheckpointError, load_pt

META_FILE = "sam2_jax_meta.json"


def load_official_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The `model` state dict of an official checkpoint file (`{"model": state_dict}`)."""
    obj = load_pt(path)
    if not isinstance(obj, Mapping) or "model" not in obj:
        keys = list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not an official SAM 2 checkpoint (expected a dict with a 'model' state "
            f"dict, found {keys})"
        )
    return dict(obj["model"])


def save_params(params: Any, directory: str | Path, config_name: str) -> Path:
    """Write `params` as an orbax checkpoint in `directory` (must not exist yet)."""
    directory = Path(directory).resolve()
    if directory.exists():
        raise FileExistsError(f"{directory} already exists; choose a new output directory")
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(directory / "params", params)
    ckptr.wait_until_finished()
    (directory / META_FILE).write_text(json.dumps({"config": config_name}, indent=2))
    return directory


def _load_orbax(directory: Path, expected: Any, config_name: str) -> Any:
    meta_path = directory / META_FILE
    saved_name = json.loads(meta_path.read_text())["config"] if meta_path.exists() else None
    item = directory / "params"
    if not item.exists():
        raise CheckpointError(f"{directory}: no 'params' item; not a sam2-jax checkpoint")
    ckptr = ocp.StandardCheckpointer()
    stored = ckptr.metadata(item)
    stored_tree = getattr(stored, "item_metadata", stored)
    flat_stored = traverse_util.flatten_dict(dict(stored_tree))
    flat_want = traverse_util.flatten_dict(dict(expected))
    problems = [f"  missing: {'/'.join(k)}" for k in sorted(set(flat_want) - set(flat_stored))]
    problems += [f"  unexpected: {'/'.join(k)}" for k in sorted(set(flat_stored) - set(flat_want))]
    problems += [
        f"  wrong shape: {'/'.join(k)} {tuple(flat_stored[k].shape)}, model expects "
        f"{tuple(flat_want[k].shape)}"
        for k in sorted(set(flat_stored) & set(flat_want))
        if tuple(flat_stored[k].shape) != tuple(flat_want[k].shape)
    ]
    if problems:
        hint = f" (it was saved for {saved_name!r})" if saved_name else ""
        raise CheckpointError(
            f"{directory}: checkpoint does not match the model config {config_name!r}{hint}:\n"
            + "\n".join(problems)
        )
    return ckptr.restore(item, target=expected)


def load_params(path: str | Path, expected: Any, config_name: str = "") -> Any:
    """Params from an official `.pt` file, a sam2-jax orbax directory or a HF checkpoint (model
    directory or `.safetensors` file), checked strictly."""
    path = Path(path)
    if path.exists() and is_hf_checkpoint(path):
        params = load_hf_params(path, expected, config_name)
    elif path.is_dir():
        params = _load_orbax(path.resolve(), expected, config_name)
    elif path.is_file():
        params = convert_state_dict(load_official_state_dict(path), expected, config_name)
    else:
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return jax.tree.map(np.asarray, params)
