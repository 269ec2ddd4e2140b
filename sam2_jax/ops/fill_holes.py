"""Small-hole filling of mask logits (<- sam2/utils/misc.py::fill_holes_in_mask_scores).

The official finds the connected components of the background (`mask <= 0`) with 8-connectivity
through its CUDA extension `sam2._C.get_connected_componnets`; here `scipy.ndimage.label` does
it on the host. Every background component with area <= max_area, including those touching the
image border, becomes foreground with the score 0.1. Unlike the official (which asserts
max_area > 0), max_area <= 0 returns the input unchanged.
"""

import numpy as np
from scipy import ndimage

HOLE_SCORE = 0.1
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _small_background_components(background: np.ndarray, max_area: int) -> np.ndarray:
    """[H, W] bool background -> [H, W] bool: its 8-connected components of area <= max_area."""
    labels, _ = ndimage.label(background, structure=_EIGHT_CONNECTED)
    is_small = np.bincount(labels.ravel()) <= max_area
    is_small[0] = False  # label 0 is the foreground
    return is_small[labels]


def fill_holes_in_mask_scores(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Set small background components of mask logits to 0.1.

    mask: [..., H, W] scores (the official passes [N, 1, H, W] float32); each [H, W] image is
    processed on its own. Returns an array of the same shape and dtype.
    """
    mask = np.asarray(mask)
    if max_area <= 0:
        return mask
    images = mask.reshape((-1,) + mask.shape[-2:])
    holes = np.stack([_small_background_components(m <= 0, max_area) for m in images])
    return np.where(holes.reshape(mask.shape), mask.dtype.type(HOLE_SCORE), mask)
