"""sam2_jax.ops.interpolate.resize vs torch.nn.functional.interpolate (align_corners=False)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_close

from sam2_jax.ops.interpolate import nearest_indices, resize, resize_matrix

# Weights equal torch's to ~1 fp32 ulp; what is left is fp32 summation order on O(5) inputs.
TOL = 2e-6
# One output is a sum of fp32 weights: the weight matrices themselves agree to ~1 ulp.
TOL_WEIGHTS = 3e-7
# bf16 operands (8-bit mantissa) against the fp32 reference on O(5) inputs.
TOL_BF16 = 6e-2

SIZES = [
    ((480, 854), (1024, 1024)),  # video frame -> model input
    ((1500, 1000), (1024, 1024)),  # large portrait image -> model input
    ((1024, 1024), (256, 256)),  # mask 1024 -> 256
    ((256, 256), (1024, 1024)),  # low-res mask -> 1024
    ((64, 64), (256, 256)),
    ((7, 7), (256, 256)),  # Hiera pos_embed
    ((150, 100), (102, 102)),  # non-integer ratios, down and up at once
    ((37, 23), (11, 53)),
    ((256, 256), (256, 256)),  # identity
]
MODES = [
    ("bilinear", False),
    ("bilinear", True),
    ("bicubic", False),
    ("bicubic", True),
    ("nearest", False),
]


def _torch_resize(x: np.ndarray, size: tuple[int, int], method: str, antialias: bool) -> np.ndarray:
    align = None if method == "nearest" else False
    out = F.interpolate(
        torch.from_numpy(x), size, mode=method, align_corners=align, antialias=antialias
    )
    return out.numpy()


@pytest.mark.parametrize("method,antialias", MODES)
@pytest.mark.parametrize("in_hw,out_hw", SIZES)
def test_resize_matches_torch(in_hw, out_hw, method, antialias):
    rng = np.random.default_rng(0)
    channels = 1 if max(in_hw + out_hw) >= 1024 else 3
    x = rng.normal(size=(1, channels, *in_hw)).astype(np.float32)
    ours = resize(jnp.asarray(x), out_hw, method, antialias)
    ref = _torch_resize(x, out_hw, method, antialias)
    assert ours.dtype == jnp.float32
    name = f"{method} aa={antialias} {in_hw}->{out_hw}"
    if method == "nearest":
        np.testing.assert_array_equal(np.asarray(ours), ref, err_msg=name)
    else:
        assert_close(ours, ref, TOL, name)


@pytest.mark.parametrize(
    "in_size,out_size",
    [(854, 1024), (1500, 1024), (100, 102), (150, 102), (23, 53), (7, 256), (1024, 300)],
)
def test_matrices_match_torch(in_size, out_size):
    """The 1-D weights are torch's: resizing an identity image reads them out."""
    eye = np.eye(in_size, dtype=np.float32)[None, None]
    for method in ("bilinear", "bicubic"):
        for antialias in (False, True):
            ref = _torch_resize(eye, (out_size, in_size), method, antialias)[0, 0]
            ours = resize_matrix(in_size, out_size, method, antialias)
            assert_close(ours, ref, TOL_WEIGHTS, f"{method} aa={antialias} {in_size}->{out_size}")
    ref_idx = _torch_resize(eye, (out_size, in_size), "nearest", False)[0, 0].argmax(axis=1)
    np.testing.assert_array_equal(nearest_indices(in_size, out_size), ref_idx)


def test_bilinear_upsampling_ignores_antialias():
    """Up to fp32 rounding of the two weight formulas (torch differs by the same ulps)."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 16, 24)).astype(np.float32))
    assert_close(
        resize(x, (40, 50), antialias=True),
        resize(x, (40, 50), antialias=False),
        TOL,
        "bilinear upsampling aa=True vs aa=False",
    )


@pytest.mark.parametrize("method,antialias", MODES)
def test_channels_last_axes(method, antialias):
    """Images [B, H, W, C] with axes=(1, 2) match torch on the NCHW transpose."""
    x = np.random.default_rng(2).normal(size=(2, 30, 45, 3)).astype(np.float32)
    ours = resize(jnp.asarray(x), (64, 20), method, antialias, axes=(1, 2))
    ref = np.moveaxis(
        _torch_resize(np.moveaxis(x, -1, 1).copy(), (64, 20), method, antialias), 1, -1
    )
    assert_close(ours, ref, TOL, f"NHWC {method} aa={antialias}")


def test_jit_and_bf16():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 2, 48, 85)).astype(np.float32))
    fn = jax.jit(resize, static_argnames=("size", "method", "antialias", "axes"))
    eager = resize(x, (102, 102), "bicubic", True)
    jitted = fn(x, size=(102, 102), method="bicubic", antialias=True)
    assert_close(jitted, eager, TOL, "jit vs eager")
    low = resize(x.astype(jnp.bfloat16), (102, 102), "bicubic", True)
    assert low.dtype == jnp.bfloat16
    assert_close(low.astype(jnp.float32), eager, TOL_BF16, "bf16 vs fp32")


def test_rejects_bad_arguments():
    x = jnp.zeros((1, 1, 4, 4), jnp.float32)
    with pytest.raises(ValueError, match="method"):
        resize(x, (8, 8), "area")
    with pytest.raises(TypeError, match="floating"):
        resize(x.astype(jnp.int32), (8, 8), "bilinear")
    np.testing.assert_array_equal(
        np.asarray(resize(x.astype(jnp.int32), (8, 8), "nearest")), np.zeros((1, 1, 8, 8), np.int32)
    )
