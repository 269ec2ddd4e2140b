"""sam2-jax params -> official SAM 2 checkpoint `.pt` (`{"model": state_dict}`), without torch.

Counterpart of `torch.save({"model": model.state_dict()}, path)` as Meta publishes checkpoints and
`sam2/build_sam.py::_load_checkpoint` reads them (`torch.load(..., weights_only=True)`, strict
`load_state_dict`). The file is the zip layout of `torch.save` (pickle protocol 2, one stored
record per tensor under `archive/data/`), referencing only the globals a weights-only load
allows: `torch._utils._rebuild_tensor_v2`, `torch.<dtype>Storage` and `collections.OrderedDict`.
Tensors are written C-contiguous in the dtype of the params (float32), so official -> ours ->
official is bitwise.
"""

import collections
import io
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sam2_jax.checkpoint.convert import params_to_state_dict
from sam2_jax.checkpoint.torch_file import _STORAGE_DTYPES

_ARCHIVE = "archive"
_PICKLE_PROTOCOL = 2  # torch.save's default


class _Global:
    """A `module.name` reference pickled as a GLOBAL opcode (no import of `module` needed)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Storage:
    """One tensor's storage, pickled as torch's persistent id ('storage', type, key, loc, n)."""

    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


class _Tensor:
    """A C-contiguous tensor: pickled as `_rebuild_tensor_v2(storage, 0, size, stride, False,
    OrderedDict())`, as torch.save writes a plain tensor."""

    def __init__(self, storage: _Storage):
        self.storage = storage


class _Pickler(pickle._Pickler):  # the Python pickler, whose dispatch table can be extended
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global_ref(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        self.memoize(obj)

    def save_tensor(self, obj: _Tensor) -> None:
        arr = obj.storage.array
        stride = tuple(s // arr.itemsize for s in arr.strides)
        self.save(_Global("torch._utils", "_rebuild_tensor_v2"))
        self.save((obj.storage, 0, arr.shape, stride, False, collections.OrderedDict()))
        self.write(pickle.REDUCE)
        self.memoize(obj)

    dispatch[_Global] = save_global_ref
    dispatch[_Tensor] = save_tensor

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, _Storage):
            return None
        name = _storage_name(obj.array.dtype)
        return ("storage", _Global("torch", name), obj.key, "cpu", obj.array.size)


def _storage_name(dtype: np.dtype) -> str:
    for name, np_dtype in _STORAGE_DTYPES.items():
        if np.dtype(np_dtype) == dtype:
            return name
    raise ValueError(f"no torch storage type for dtype {dtype}")


def save_state_dict_pt(state_dict: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Write `{"model": state_dict}` as `torch.save` would (numpy arrays -> CPU tensors).

    Refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; choose a new output file")
    storages = [
        _Storage(str(i), np.asarray(v, order="C")) for i, v in enumerate(state_dict.values())
    ]
    model = collections.OrderedDict((k, _Tensor(s)) for k, s in zip(state_dict, storages))
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=_PICKLE_PROTOCOL).dump({"model": model})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{_ARCHIVE}/data.pkl", buffer.getvalue())
        archive.writestr(f"{_ARCHIVE}/byteorder", sys.byteorder)
        for s in storages:
            archive.writestr(f"{_ARCHIVE}/data/{s.key}", s.array.tobytes())
        archive.writestr(f"{_ARCHIVE}/version", "3\n")
    tmp.replace(path)
    return path


def export_official_checkpoint(params: Mapping[str, Any], path: str | Path) -> Path:
    """Our params (the param tree, or `{"params": tree}` as in `SAM2Model.params`) -> an official
    checkpoint file loadable by the official `build_sam2(config, ckpt_path=path)`."""
    tree = params["params"] if set(params) == {"params"} else params
    return save_state_dict_pt(params_to_state_dict(tree), path)
