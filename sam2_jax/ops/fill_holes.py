"""Small-component filling of mask logits, on the host.

- `fill_holes_in_mask_scores` <- sam2/utils/misc.py::fill_holes_in_mask_scores (the video
  predictor's `fill_hole_area`).
- `fill_holes_and_sprinkles` <- sam2/utils/transforms.py::SAM2Transforms.postprocess_masks (the
  image predictor's and the automatic mask generator's `max_hole_area` / `max_sprinkle_area`).

The official finds 8-connected components through its CUDA extension
`sam2._C.get_connected_componnets` (the CPU build skips the filling with a warning); here
`scipy.ndimage.label` does it. Every small component counts, including those touching the image
border.
"""

import numpy as np
from scipy import ndimage

HOLE_SCORE = 0.1
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _component_areas(binary: np.ndarray) -> np.ndarray:
    """[H, W] bool -> [H, W] int: the area of each pixel's 8-connected component (0 off it)."""
    labels, _ = ndimage.label(binary, structure=EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    return areas[labels]


def _is_small(binary: np.ndarray, max_area: float) -> np.ndarray:
    """[H, W] bool -> [H, W] bool: the pixels of components of area <= max_area."""
    areas = _component_areas(binary)
    return (areas > 0) & (areas <= max_area)


def fill_holes_in_mask_scores(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Set small background (score <= 0) components of mask logits to 0.1.

    mask: [..., H, W] scores (the official passes [N, 1, H, W] float32); each [H, W] image is
    processed on its own. Returns an array of the same shape and dtype. Unlike the official
    (which asserts max_area > 0), max_area <= 0 returns the input unchanged.
    """
    mask = np.asarray(mask)
    if max_area <= 0:
        return mask
    images = mask.reshape((-1,) + mask.shape[-2:])
    holes = np.stack([_is_small(m <= 0, max_area) for m in images])
    return np.where(holes.reshape(mask.shape), mask.dtype.type(HOLE_SCORE), mask)


def fill_holes_and_sprinkles(
    masks: np.ndarray,
    max_hole_area: float,
    max_sprinkle_area: float,
    mask_threshold: float = 0.0,
) -> np.ndarray:
    """Official `SAM2Transforms.postprocess_masks` filling, before the upsampling.

    masks: logits [..., H, W]; each [H, W] is processed on its own. Background components
    (logit <= threshold) of area <= max_hole_area become threshold + 10; foreground components
    (logit > threshold) of area <= max_sprinkle_area become threshold - 10. Both sets are found
    on the input masks. An area <= 0 switches that step off. Same shape and dtype.
    """
    masks = np.asarray(masks)
    out = masks.reshape((-1,) + masks.shape[-2:]).copy()
    for m, src in zip(out, masks.reshape(out.shape)):
        if max_hole_area > 0:
            m[_is_small(src <= mask_threshold, max_hole_area)] = mask_threshold + 10.0
        if max_sprinkle_area > 0:
            m[_is_small(src > mask_threshold, max_sprinkle_area)] = mask_threshold - 10.0
    return out.reshape(masks.shape)
