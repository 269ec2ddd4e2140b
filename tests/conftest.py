"""Test setup: 8 fake CPU devices for mesh tests, fp32 matmuls, torch on the same 2 threads."""

import os
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

TESTS_DIR = Path(__file__).resolve().parent
# The stand-in torchvision (test-only) and the oracle helpers.
sys.path.insert(0, str(TESTS_DIR / "support"))
sys.path.insert(0, str(TESTS_DIR))

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

SHARED_DATA = Path(os.environ.get("SAM2_SHARED_DATA", TESTS_DIR.parent.parent / "shared" / "data"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def official_t21(tmp_path_factory):
    """Official sam2.1 tiny at 256 px (random, perturbed weights) and its `.pt` checkpoint."""
    from oracle import build_official, save_official_checkpoint

    model = build_official("sam2.1_hiera_t", image_size=256, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    save_official_checkpoint(model, path)
    return model, path


@pytest.fixture(scope="module")
def compilation_cache_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses that share one persistent compilation cache per test module."""
    return {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


MAX_MEMORY_MAPS = 30_000  # under half of Linux's default vm.max_map_count (65,530)


def _memory_maps() -> int:
    """This process's memory mappings (0 where /proc is not there)."""
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test module once the process holds many memory
    mappings. Each XLA:CPU executable maps its code; kept for a whole suite in one process they
    reached the kernel's `vm.max_map_count` and a later compile aborted (`Fatal Python error:
    Aborted` in `backend_compile_and_load`; reproduced on one module by lowering the limit).
    Below the threshold, later modules reuse the programs they share."""
    yield
    if _memory_maps() > MAX_MEMORY_MAPS:
        jax.clear_caches()
