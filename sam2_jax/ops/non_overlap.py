"""Non-overlapping object masks (<- sam2/modeling/sam2_base.py::
SAM2Base._apply_non_overlapping_constraints, used by sam2/sam2_video_predictor.py).

At each pixel only the highest-scoring object (the first one on ties, as torch.argmax) keeps
its score; every other object's score is clamped to <= -10 (sigmoid(-10) = 4.5e-5).
"""

import jax
import jax.numpy as jnp

SUPPRESSED_SCORE = -10.0


def apply_non_overlapping_constraints(pred_masks: jax.Array) -> jax.Array:
    """pred_masks: [N, 1, H, W] (any [N, ...]) object scores -> same shape and dtype.

    A no-op for N = 1.
    """
    num_objects = pred_masks.shape[0]
    if num_objects == 1:
        return pred_masks
    max_obj_inds = jnp.argmax(pred_masks, axis=0, keepdims=True)
    obj_inds = jnp.arange(num_objects).reshape((num_objects,) + (1,) * (pred_masks.ndim - 1))
    keep = max_obj_inds == obj_inds
    return jnp.where(keep, pred_masks, jnp.minimum(pred_masks, SUPPRESSED_SCORE))
