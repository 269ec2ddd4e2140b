"""Automatic-mask-generation helpers (<- sam2/utils/amg.py).

Point grids, crop boxes, box and point uncropping, the crop-edge test and the run-length codes
are NumPy (host side). `calculate_stability_score` and `batched_mask_to_box` are jnp, so they run
inside the jitted mask program (they also accept NumPy input). The COCO compressed RLE is
written here (pycocotools' `rleToString`), so pycocotools is not a runtime dependency.
Connected components (8-connectivity) use `scipy.ndimage.label`, for the official OpenCV
labelling in `remove_small_regions`.
"""

import math
from itertools import product
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from sam2_jax.ops.fill_holes import EIGHT_CONNECTED


# ------------------------------------------------------------------------------- point grids
def build_point_grid(n_per_side: int) -> np.ndarray:
    """[n², 2] float64 (x, y) points evenly spaced in [0, 1]², x fastest."""
    offset = 1 / (2 * n_per_side)
    points_one_side = np.linspace(offset, 1 - offset, n_per_side)
    points_x = np.tile(points_one_side[None, :], (n_per_side, 1))
    points_y = np.tile(points_one_side[:, None], (1, n_per_side))
    return np.stack([points_x, points_y], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One grid per crop layer 0..n_layers; layer i has int(n_per_side / scale**i) per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


# ------------------------------------------------------------------------------- crops
def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes [x0, y0, x1, y1] (the whole image first, then (2^i)² boxes for layer i >= 1)
    and their layer indices, for an image of size (H, W)."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes, layer_idxs = [[0, 0, im_w, im_h]], [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_crops_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops_per_side))
        crop_w = crop_len(im_w, n_crops_per_side, overlap)
        crop_h = crop_len(im_h, n_crops_per_side, overlap)
        crop_box_x0 = [int((crop_w - overlap) * i) for i in range(n_crops_per_side)]
        crop_box_y0 = [int((crop_h - overlap) * i) for i in range(n_crops_per_side)]
        for x0, y0 in product(crop_box_x0, crop_box_y0):
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(i_layer + 1)
    return crop_boxes, layer_idxs


def uncrop_boxes_xyxy(boxes: np.ndarray, crop_box: list[int]) -> np.ndarray:
    """Boxes [..., 4] XYXY in a crop -> the original image frame (same dtype)."""
    x0, y0 = crop_box[:2]
    boxes = np.asarray(boxes)
    return boxes + np.asarray([x0, y0, x0, y0], dtype=boxes.dtype)


def uncrop_points(points: np.ndarray, crop_box: list[int]) -> np.ndarray:
    """Points [..., 2] (x, y) in a crop -> the original image frame (same dtype)."""
    x0, y0 = crop_box[:2]
    points = np.asarray(points)
    return points + np.asarray([x0, y0], dtype=points.dtype)


def uncrop_masks(masks: np.ndarray, crop_box: list[int], orig_h: int, orig_w: int) -> np.ndarray:
    """Masks [..., h, w] of a crop -> [..., orig_h, orig_w], zero outside the crop."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    pad = [(0, 0)] * (masks.ndim - 2) + [(y0, orig_h - y1), (x0, orig_w - x1)]
    return np.pad(masks, pad)


def is_box_near_crop_edge(
    boxes: np.ndarray, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> np.ndarray:
    """[N] bool: a box [N, 4] (crop frame) lies within `atol` of an edge of the crop that is not
    an edge of the original image (coordinate-wise, as the official)."""
    boxes = uncrop_boxes_xyxy(boxes, crop_box).astype(np.float32)
    crop = np.asarray(crop_box, np.float32)[None]
    orig = np.asarray(orig_box, np.float32)[None]
    near_crop_edge = np.abs(boxes - crop) <= atol
    near_image_edge = np.abs(boxes - orig) <= atol
    return np.any(near_crop_edge & ~near_image_edge, axis=1)


def box_xyxy_to_xywh(box_xyxy: np.ndarray) -> np.ndarray:
    """Box(es) [..., 4] (x0, y0, x1, y1) -> (x0, y0, w, h)."""
    box = np.array(box_xyxy, copy=True)
    box[..., 2:] = box[..., 2:] - box[..., :2]
    return box


# ------------------------------------------------------------------------------- mask stats
def calculate_stability_score(
    masks: jax.Array, mask_threshold: float, threshold_offset: float
) -> jax.Array:
    """Stability [...] of mask logits [..., H, W]: |logits > t + o| / |logits > t - o| (float32;
    NaN when both are empty). The two thresholds are summed in double, then compared in the
    logits' dtype, as torch does with Python scalars."""
    hi = jnp.sum(masks > (mask_threshold + threshold_offset), axis=(-2, -1), dtype=jnp.int32)
    lo = jnp.sum(masks > (mask_threshold - threshold_offset), axis=(-2, -1), dtype=jnp.int32)
    return hi.astype(jnp.float32) / lo.astype(jnp.float32)


def batched_mask_to_box(masks: jax.Array) -> jax.Array:
    """Boxes [..., 4] int32 XYXY (inclusive max pixel) around bool masks [..., H, W];
    [0, 0, 0, 0] for an empty mask."""
    h, w = masks.shape[-2:]
    in_height = jnp.any(masks, axis=-1)  # [..., H]
    in_width = jnp.any(masks, axis=-2)  # [..., W]
    rows, cols = jnp.arange(h, dtype=jnp.int32), jnp.arange(w, dtype=jnp.int32)
    bottom = jnp.max(jnp.where(in_height, rows, 0), axis=-1)
    top = jnp.min(jnp.where(in_height, rows, h), axis=-1)
    right = jnp.max(jnp.where(in_width, cols, 0), axis=-1)
    left = jnp.min(jnp.where(in_width, cols, w), axis=-1)
    empty = (right < left) | (bottom < top)
    boxes = jnp.stack([left, top, right, bottom], axis=-1)
    return jnp.where(empty[..., None], 0, boxes)


# ------------------------------------------------------------------------------- run lengths
def mask_to_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """Bool masks [N, H, W] -> uncompressed RLEs {"size": [H, W], "counts": [...]} in column-
    major (Fortran) order, starting with a run of zeros (possibly empty), as pycocotools."""
    masks = np.asarray(masks, dtype=bool)
    n, h, w = masks.shape
    if n == 0:
        return []
    flat = masks.transpose(0, 2, 1).reshape(n, h * w)
    rows, cols = np.nonzero(flat[:, 1:] != flat[:, :-1])
    splits = np.searchsorted(rows, np.arange(1, n))
    out = []
    for i, change in enumerate(np.split(cols + 1, splits)):
        bounds = np.concatenate([[0], change, [h * w]])
        counts = [0] if flat[i, 0] else []
        counts.extend(np.diff(bounds).tolist())
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Uncompressed RLE -> bool mask [H, W]."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).transpose()


def area_from_rle(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed RLE -> COCO compressed RLE {"size": [H, W], "counts": str}, byte-identical to
    pycocotools `frPyObjects` + `.decode("utf-8")` (maskApi.c `rleToString`): each count, minus
    the count two places before it from the third on, as little-endian 5-bit groups with a
    continuation bit (0x20), offset by 48."""
    counts = [int(c) for c in uncompressed_rle["counts"]]
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            chars.append(chr((c | 0x20 if more else c) + 48))
    return {"size": list(uncompressed_rle["size"]), "counts": "".join(chars)}


# ------------------------------------------------------------------------------- small regions
def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """Remove 8-connected "holes" or "islands" of area < area_thresh from a bool mask [H, W].

    Returns the new mask and whether it changed. When every island is small, the largest (the
    first in raster order among equals) is kept.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    correct_holes = mode == "holes"
    working_mask = correct_holes ^ np.asarray(mask, dtype=bool)
    regions, n_regions = ndimage.label(working_mask, structure=EIGHT_CONNECTED)
    sizes = np.bincount(regions.ravel(), minlength=n_regions + 1)[1:]
    small_regions = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small_regions:
        return mask, False
    fill_labels = [0] + small_regions
    if not correct_holes:
        fill_labels = [i for i in range(n_regions + 1) if i not in fill_labels]
        if not fill_labels:  # every region is below the threshold: keep the largest
            fill_labels = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill_labels), True
