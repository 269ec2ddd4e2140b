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
