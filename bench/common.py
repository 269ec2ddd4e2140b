"""Shared benchmark helpers: machine description, timing, the official model with random weights."""

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SAM2_SHARED_DATA", ROOT.parent / "shared" / "data"))
# The stand-in torchvision for the official predictors, and the oracle helpers (once each).
for _path in (str(ROOT / "tests" / "support"), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def machine() -> str:
    import jax
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} ({jax.devices()[0].device_kind}), torch {torch.__version__}"
    )


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(name: str, ours: float, official: float, unit: str = "s") -> str:
    return f"| {name} | {ours:.3f} {unit} | {official:.3f} {unit} | {official / ours:.2f}x |"


def add_output_args(parser) -> None:
    """`--json` (rows out) and `--official-cache` (the official side's results, reused)."""
    parser.add_argument("--json", type=Path, default=None, help="append each row to this file")
    parser.add_argument(
        "--official-cache",
        type=Path,
        default=None,
        help="JSON file of the official side's results (reused when the key matches)",
    )


def add_device_args(parser) -> None:
    """`--dtype`, `--device` (the official side's torch device) and the output arguments."""
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute dtype of both sides (official: torch.autocast)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device of the official side (default: cuda if available)",
    )
    add_output_args(parser)


def torch_device(requested: str | None) -> str:
    import torch

    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def official_autocast(device: str, dtype: str):
    """The official side's compute dtype: bf16 autocast (as its demos and vos_inference.py)."""
    import torch

    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)


def append_json(path: Path | None, record: dict) -> None:
    """Append `record` to the JSON list in `path` (rewritten whole, so a killed run keeps rows)."""
    if path is None:
        return
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append({**record, "machine": machine()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(path)


def _official_versions(device: str) -> dict:
    """What an official measurement depends on besides its case: torch, sam2, the machine."""
    import importlib.metadata

    import torch

    try:
        sam2_version = importlib.metadata.version("sam2")
    except importlib.metadata.PackageNotFoundError:  # a copied package without metadata
        sam2_version = "unknown"
    hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        hardware = torch.cuda.get_device_name(device)
    return {
        "torch": torch.__version__, "sam2": sam2_version, "hardware": hardware,
        "threads": torch.get_num_threads(),
    }  # fmt: skip


def official_result(
    cache: Path | None, key: dict, device: str, measure: Callable[[], dict]
) -> dict:
    """The official side's measurement of case `key` on torch `device`: from the JSON `cache`
    when it holds the same case with the same torch and sam2 versions, hardware and threads,
    else `measure()`d and stored there (a rerun then times only ours). `cached` says which."""
    if cache is None:
        return {**measure(), "cached": False}
    full_key = json.dumps({**key, **_official_versions(device)}, sort_keys=True)
    entries = json.loads(cache.read_text()) if cache.exists() else {}
    if full_key in entries:
        return {**entries[full_key], "cached": True}
    result = measure()
    entries[full_key] = result
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    tmp.replace(cache)
    return {**result, "cached": False}
