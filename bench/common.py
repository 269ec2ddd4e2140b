"""Shared benchmark helpers: machine description, timing, the official model with random weights."""

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
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
