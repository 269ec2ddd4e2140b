"""sam2_jax.ops.non_overlap vs the official SAM2Base._apply_non_overlapping_constraints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracle import assert_close
from sam2.modeling.sam2_base import SAM2Base

from sam2_jax.ops.non_overlap import apply_non_overlapping_constraints

# argmax, comparisons and a clamp: no arithmetic, so the results are identical.
TOL = 0.0


def _official(x: np.ndarray) -> np.ndarray:
    return SAM2Base._apply_non_overlapping_constraints(None, torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("num_objects", [2, 3, 5])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_official(num_objects, ties):
    rng = np.random.default_rng(num_objects + 10 * ties)
    x = rng.normal(0.0, 8.0, (num_objects, 1, 16, 20)).astype(np.float32)
    if ties:  # few distinct values: many pixels where several objects share the maximum
        x = np.round(x / 8.0).astype(np.float32) * 4.0
        assert (np.sum(x == x.max(axis=0), axis=0) > 1).mean() > 0.2
    ref = _official(x)
    ours = jax.jit(apply_non_overlapping_constraints)(jnp.asarray(x))
    assert ours.shape == x.shape and ours.dtype == jnp.float32
    assert_close(ours, ref, TOL, f"non-overlap N={num_objects} ties={ties}")
    suppressed = np.asarray(ours) != x
    assert suppressed.any() and (np.asarray(ours)[suppressed] == -10.0).all()


def test_single_object_and_nan_are_official():
    x = np.random.default_rng(0).normal(0.0, 8.0, (1, 1, 8, 8)).astype(np.float32)
    assert_close(apply_non_overlapping_constraints(jnp.asarray(x)), x, TOL, "N=1 is a no-op")
    nan = np.float32(np.nan)
    y = np.array([[1, nan, 3, -20], [nan, 2, 3, -30], [0, 5, nan, -40]], np.float32)
    y = y[:, None, None, :]
    ours = np.asarray(apply_non_overlapping_constraints(jnp.asarray(y)))
    assert np.array_equal(ours, _official(y), equal_nan=True)
