"""Simulated corrective clicks at the centre of the largest error region (RITM clicker).

Counterpart: `sam2.modeling.sam2_utils.sample_one_point_from_error_center` with `padding=True`,
for one mask. The official computes the exact Euclidean distance transform with
`cv2.distanceTransform(mask, cv2.DIST_L2, 0)` (float32); here it is
`scipy.ndimage.distance_transform_edt` (exact, float64) rounded to float32, so the maxima, their
ties and the FN / FP comparison are the same.
"""

import numpy as np
from scipy import ndimage


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """A 2-D bool or numeric array -> [H, W] bool (non-zero = inside)."""
    mask = np.asarray(mask)
    if mask.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a bool or numeric mask, got dtype {mask.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [H, W] mask, got shape {mask.shape}")
    if mask.size == 0:
        raise ValueError(f"{name} is empty (shape {mask.shape}); a click needs at least 1 pixel")
    return mask != 0


def _padded_distance(region: np.ndarray) -> np.ndarray:
    """[H, W] bool -> [H, W] float32 distance of each region pixel to the nearest pixel outside
    it, the image border counting as outside (1-px zero padding, then cropped)."""
    distance = ndimage.distance_transform_edt(np.pad(region, 1))
    return distance[1:-1, 1:-1].astype(np.float32)


def error_center_click(gt: np.ndarray, pred: np.ndarray | None = None) -> tuple[float, float, int]:
    """The click that corrects the error region whose centre is farthest from its boundary.

    gt, pred: [H, W] masks (bool, or numeric with non-zero = inside); pred None = empty.
    Returns (x, y, label): label 1 (positive) at the pixel of the false-negative region
    (gt & ~pred) farthest from its boundary when that distance exceeds the false-positive
    region's (~gt & pred) largest, otherwise label 0 at the false-positive one. Ties go to the
    first pixel in row-major order, and to the negative click between regions. Without any
    error both distance maps are zero and the official returns (0.0, 0.0, 0), as here.
    """
    gt = _as_mask(gt, "gt")
    pred = np.zeros_like(gt) if pred is None else _as_mask(pred, "pred")
    if pred.shape != gt.shape:
        raise ValueError(f"gt and pred must have the same shape, got {gt.shape} and {pred.shape}")
    fn_distance = _padded_distance(gt & ~pred).reshape(-1)
    fp_distance = _padded_distance(~gt & pred).reshape(-1)
    fn_argmax = int(np.argmax(fn_distance))
    fp_argmax = int(np.argmax(fp_distance))
    positive = bool(fn_distance[fn_argmax] > fp_distance[fp_argmax])
    index = fn_argmax if positive else fp_argmax
    width = gt.shape[1]
    return float(index % width), float(index // width), int(positive)
