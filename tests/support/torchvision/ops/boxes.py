"""Test-only stand-in for `torchvision.ops.boxes`: nms, batched_nms, box_area.

Follows torchvision's CPU implementation (csrc/ops/cpu/nms_kernel.cpp and ops/boxes.py):
boxes are [N, 4] (x1, y1, x2, y2); candidates are visited by score, descending, ties in index
order (a stable sort); a kept box suppresses every later one whose IoU with it is
> iou_threshold (compared in double, as the C++ kernel does). `batched_nms` offsets each
category's boxes so that categories never overlap ("coordinate trick"), or loops over the
categories when there are more than 1000 boxes, as torchvision does on CPU.
"""

import numpy as np
import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    """Areas [N] of boxes [N, 4] (x1, y1, x2, y2); small floats/ints upcast as torchvision."""
    if boxes.is_floating_point():
        boxes = boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()
    else:
        boxes = boxes if boxes.dtype in (torch.int32, torch.int64) else boxes.int()
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _pairwise_iou(boxes: Tensor) -> Tensor:
    """IoU [N, N] with the C++ kernel's arithmetic: inter / (area_i + area_j - inter)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, None] + area[None, :] - inter)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: int64 indices [K] of the kept boxes, by decreasing score."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, stable=True, descending=True).indices
    overlaps = (_pairwise_iou(boxes[order]).double() > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)]


def _batched_nms_coordinate_trick(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float
) -> Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _batched_nms_vanilla(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float
) -> Tensor:
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for class_id in torch.unique(idxs):
        curr_indices = torch.where(idxs == class_id)[0]
        curr_keep = nms(boxes[curr_indices], scores[curr_indices], iou_threshold)
        keep_mask[curr_indices[curr_keep]] = True
    keep_indices = torch.where(keep_mask)[0]
    return keep_indices[scores[keep_indices].sort(stable=True, descending=True)[1]]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category `idxs` [N]: int64 indices [K] of kept boxes, by decreasing score."""
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 20000):
        return _batched_nms_vanilla(boxes, scores, idxs, iou_threshold)
    return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)
