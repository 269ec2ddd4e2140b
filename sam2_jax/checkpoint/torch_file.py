"""Read PyTorch `.pt` checkpoints (the zip format of `torch.save`) without importing torch.

Only the globals a plain state dict needs are allowed (tensor rebuild functions, storage types,
OrderedDict), like `torch.load(..., weights_only=True)`; anything else is refused. Tensors come
back as numpy arrays (bfloat16 via ml_dtypes).
"""

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not match the model."""


def _rebuild_tensor(storage, offset, size, stride, *unused) -> np.ndarray:
    itemsize = storage.dtype.itemsize
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.array(view)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused) -> np.ndarray:
    return data


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(file)
        self._archive, self._prefix, self._path = archive, prefix, path

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise CheckpointError(
            f"{self._path}: refusing to load {module}.{name}; only plain tensor state dicts "
            "are supported (as torch.load(weights_only=True))"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage_type, key, _location, numel = pid
        if kind != "storage":
            raise CheckpointError(f"{self._path}: unsupported persistent id {pid!r}")
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None:
            raise CheckpointError(f"{self._path}: unsupported storage {storage_type!r}")
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != numel:
            raise CheckpointError(
                f"{self._path}: storage {key} has {arr.size} elements, "
                f"expected {numel} (truncated file?)"
            )
        return arr


def load_pt(path: str | Path) -> Any:
    """Load a `torch.save` zip file as nested Python containers of numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise CheckpointError(f"{path}: not a PyTorch checkpoint (no data.pkl inside)")
            prefix = pkl[0][: -len("/data.pkl")]
            with archive.open(pkl[0]) as f:
                return _Unpickler(f, archive, prefix, path).load()
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, KeyError, OSError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable PyTorch checkpoint ({e})") from e
