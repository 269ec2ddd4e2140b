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
sys.path.insert(
    0, str(ROOT / "tests" / "support")
)  # stand-in torchvision for the official predictor
sys.path.insert(0, str(ROOT / "tests"))


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


def add_device_args(parser) -> None:
    """`--dtype`, `--device` (the official side's torch device) and `--json` for a benchmark."""
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
    parser.add_argument("--json", type=Path, default=None, help="append each row to this file")


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
