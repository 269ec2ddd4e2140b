"""batched_nms / nms / box_area vs the test-only torchvision stand-in (tests/support, which follows
torchvision's CPU kernel) and a brute-force greedy definition.

Tolerance: none, kept indices (and their order) must be identical.
"""

import numpy as np
import torch
from torchvision.ops import boxes as tv_boxes

from sam2_jax.ops.nms import batched_nms, box_area, nms


def _random_boxes(rng, n, integer=False, size=100.0):
    """[n, 4] boxes; about half are jittered copies of others, so high IoUs are common."""
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    copies = rng.uniform(size=n) < 0.5
    boxes[copies] = boxes[rng.integers(0, n, copies.sum())] + rng.normal(0, 2, (copies.sum(), 4))
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    return np.round(boxes) if integer else boxes.astype(np.float32)


def _brute_force(boxes, scores, cats, thresh):
    """Definition: by score (ties by index), keep a box unless a kept box of its category has
    IoU > thresh with it (IoU in float64)."""
    b = np.asarray(boxes, np.float64)

    def iou(i, j):
        w = max(0.0, min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
        h = max(0.0, min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
        inter = w * h
        union = (
            (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1])
            + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            - inter
        )
        return inter / union if union > 0 else 0.0

    keep = []
    for i in sorted(range(len(b)), key=lambda i: (-scores[i], i)):
        if all(cats[j] != cats[i] or iou(i, j) <= thresh for j in keep):
            keep.append(i)
    return np.asarray(keep, np.int64)


def _standin(boxes, scores, cats, thresh):
    return tv_boxes.batched_nms(
        torch.as_tensor(boxes), torch.as_tensor(scores), torch.as_tensor(cats), thresh
    ).numpy()


def test_matches_standin_and_definition_single_category():
    rng = np.random.default_rng(0)
    for n, thresh in [(1, 0.5), (60, 0.3), (300, 0.7), (300, 0.9)]:
        boxes = _random_boxes(rng, n)
        scores = rng.uniform(size=n).astype(np.float32)
        scores[::7] = scores[0]  # ties: kept in index order
        cats = np.zeros(n, np.int64)
        keep = nms(boxes, scores, thresh)
        assert keep.dtype == np.int64
        np.testing.assert_array_equal(keep, _standin(boxes, scores, cats, thresh))
        np.testing.assert_array_equal(keep, _brute_force(boxes, scores, cats, thresh))
        assert 0 < len(keep) <= n
        print(f"n={n} thresh={thresh}: kept {len(keep)}")


def test_matches_standin_and_definition_categories():
    """Integer-valued boxes, so torchvision's per-category coordinate offsets are exact."""
    rng = np.random.default_rng(1)
    # 1200 boxes take torchvision's per-category loop on CPU, 200 its offset trick.
    for n in (200, 1200):
        boxes = _random_boxes(rng, n, integer=True).astype(np.float32)
        scores = rng.uniform(size=n).astype(np.float32)
        cats = rng.integers(0, 4, n)
        keep = batched_nms(boxes, scores, cats, 0.5)
        np.testing.assert_array_equal(keep, _standin(boxes, scores, cats, 0.5))
        if n == 200:
            np.testing.assert_array_equal(keep, _brute_force(boxes, scores, cats, 0.5))
        # The same boxes with one category suppress at least as much.
        assert len(nms(boxes, scores, 0.5)) < len(keep)


def test_edge_cases():
    empty = batched_nms(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int64), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64
    # IoU exactly at the threshold does not suppress (strict >); just above does.
    a, b = [0, 0, 10, 10], [5, 0, 15, 10]  # inter 50, union 150: IoU 1/3
    boxes = np.array([a, b], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    boxes = np.array([a, [0, 0, 10, 5]], np.float32)  # IoU exactly 0.5
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [0]
    # Zero-area boxes (IoU 0 / 0) never suppress; integer boxes are accepted.
    boxes = np.array([[3, 3, 3, 3], [3, 3, 3, 3], [0, 0, 2, 2]], np.int64)
    scores = np.array([0.1, 0.2, 0.3], np.float32)
    keep = nms(boxes, scores, 0.1)
    assert keep.tolist() == [2, 1, 0]
    np.testing.assert_array_equal(keep, _standin(boxes.astype(np.float32), scores, [0] * 3, 0.1))
    # Identical boxes and scores: the first index wins.
    boxes = np.tile(np.array([[1, 2, 30, 40]], np.float32), (4, 1))
    assert nms(boxes, np.full(4, 0.5, np.float32), 0.7).tolist() == [0]


def test_box_area():
    rng = np.random.default_rng(2)
    boxes = _random_boxes(rng, 50)
    np.testing.assert_array_equal(
        box_area(boxes), tv_boxes.box_area(torch.as_tensor(boxes)).numpy()
    )
    ints = _random_boxes(rng, 5, integer=True).astype(np.int64)
    assert box_area(ints).dtype == np.int64
