"""Batched non-maximum suppression (<- torchvision.ops.boxes.batched_nms / nms / box_area, as
used by sam2/automatic_mask_generator.py).

torchvision's semantics, on the host in NumPy: boxes [N, 4] are (x1, y1, x2, y2); candidates are
visited by decreasing score, ties in index order (a stable sort); each kept box suppresses every
later box of the same category whose IoU with it is > iou_threshold. The IoU uses the arithmetic
of torchvision's CPU kernel in the boxes' dtype: inter / (area_i + area_j - inter), with
inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)), compared in float64.

Categories are kept apart exactly (torchvision offsets the boxes of each category instead, which
can move float32 IoUs by an ulp when there are several categories; with one category, as in the
automatic mask generator, both are bit-identical). NaN scores are not supported.
"""

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas [N] of boxes [N, 4] (x1, y1, x2, y2), in the boxes' dtype."""
    boxes = np.asarray(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _iou_one_to_many(box: np.ndarray, area: np.ndarray, boxes: np.ndarray, areas: np.ndarray):
    """IoU [M] of one box [4] (area [] ) with boxes [M, 4] (areas [M]), kernel arithmetic."""
    zero = boxes.dtype.type(0)
    w = np.maximum(zero, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    h = np.maximum(zero, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 -> NaN, never suppresses
        return inter / (area + areas - inter)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Greedy NMS within each category.

    boxes [N, 4] float (x1, y1, x2, y2; integer boxes are cast to float32), scores [N],
    idxs [N] integer categories. Returns int64 indices [K] of the kept boxes, by decreasing score.
    """
    boxes = np.asarray(boxes)
    if not np.issubdtype(boxes.dtype, np.floating):
        boxes = boxes.astype(np.float32)
    scores, idxs = np.asarray(scores), np.asarray(idxs)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4], got {boxes.shape}")
    if scores.shape != boxes.shape[:1] or idxs.shape != boxes.shape[:1]:
        raise ValueError(f"scores {scores.shape} and idxs {idxs.shape} must be [{boxes.shape[0]}]")
    order = np.argsort(-scores, kind="stable")
    boxes, cats = boxes[order], idxs[order]
    areas = box_area(boxes)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = slice(i + 1, None)
        iou = _iou_one_to_many(boxes[i], areas[i], boxes[rest], areas[rest])
        suppressed[rest] |= (iou.astype(np.float64) > iou_threshold) & (cats[rest] == cats[i])
    return order[np.asarray(keep, dtype=np.int64)]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of boxes [N, 4] by scores [N]: int64 indices [K] kept, by decreasing score."""
    return batched_nms(boxes, scores, np.zeros(len(scores), dtype=np.int64), iou_threshold)
