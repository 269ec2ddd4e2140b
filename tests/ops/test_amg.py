"""sam2_jax.ops.amg vs the official sam2/utils/amg.py (with pycocotools and OpenCV, test-only),
and brute-force definitions of the connected-component helpers (the official hole / sprinkle
filling needs the CUDA extension: its labelling is replaced by the brute force).

Tolerance: none, every output must be identical (integer / boolean / exact float results).
"""

from collections import deque

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from sam2.utils import amg as official

from sam2_jax.ops import amg
from sam2_jax.ops.fill_holes import fill_holes_and_sprinkles

# pycocotools' decode trips a NumPy 2 deprecation inside its own code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _random_masks(rng, shape, density=0.5, smooth=True):
    """Bool masks with blobs (smoothed noise) or salt-and-pepper."""
    x = rng.normal(size=shape)
    if smooth:
        x = np.cumsum(np.cumsum(x, axis=-1), axis=-2)
        x -= x.mean(axis=(-2, -1), keepdims=True)
    return x > np.quantile(x, 1 - density)


def _components(binary):
    """Brute-force 8-connected components: [H, W] bool -> per-pixel area (0 off the mask) and
    labels numbered in raster order of their first pixel."""
    h, w = binary.shape
    labels = np.zeros((h, w), np.int64)
    sizes = [0]
    for y0 in range(h):
        for x0 in range(w):
            if not binary[y0, x0] or labels[y0, x0]:
                continue
            lab = len(sizes)
            labels[y0, x0] = lab
            queue, size = deque([(y0, x0)]), 0
            while queue:
                y, x = queue.popleft()
                size += 1
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and binary[yy, xx] and not labels[yy, xx]:
                            labels[yy, xx] = lab
                            queue.append((yy, xx))
            sizes.append(size)
    sizes = np.asarray(sizes)
    sizes[0] = 0
    return labels, sizes[labels]


def test_point_grids_and_crop_boxes():
    for n in (1, 4, 7, 32):
        np.testing.assert_array_equal(amg.build_point_grid(n), official.build_point_grid(n))
    for args in ((32, 2, 2), (16, 1, 1), (10, 2, 3)):
        ours, ref = (
            amg.build_all_layer_point_grids(*args),
            official.build_all_layer_point_grids(*args),
        )
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a, b)
    for size, layers, ratio in (
        ((267, 400), 1, 512 / 1500),
        ((1200, 1800), 2, 0.3),
        ((5, 9), 0, 0.5),
    ):
        assert amg.generate_crop_boxes(size, layers, ratio) == official.generate_crop_boxes(
            size, layers, ratio
        )


def test_stability_score():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (6, 33, 47)).astype(np.float32)
    logits[0] = -5.0  # empty under both thresholds: 0 / 0 = NaN
    logits[1, :3, :3] = 1.0  # values at a threshold
    for thr, off in ((0.0, 1.0), (0.5, 0.25), (-1.0, 0.1)):
        ours = np.asarray(amg.calculate_stability_score(logits, thr, off))
        ref = official.calculate_stability_score(torch.as_tensor(logits), thr, off).numpy()
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, ref)
    assert np.isnan(ours[0])


def test_batched_mask_to_box():
    rng = np.random.default_rng(1)
    masks = _random_masks(rng, (2, 5, 20, 31), density=0.05, smooth=False)
    masks[0, 0] = False
    masks[1, 1] = False
    masks[1, 1, 7, 30] = True  # a single pixel at the right edge
    ours = np.asarray(amg.batched_mask_to_box(masks))
    ref = official.batched_mask_to_box(torch.as_tensor(masks)).numpy()
    np.testing.assert_array_equal(ours, ref)
    assert ours[0, 0].tolist() == [0, 0, 0, 0] and ours[1, 1].tolist() == [30, 7, 30, 7]
    np.testing.assert_array_equal(np.asarray(amg.batched_mask_to_box(masks[0, 2])), ref[0, 2])


def test_rle_round_trip_and_coco():
    rng = np.random.default_rng(2)
    masks = np.concatenate(
        [
            _random_masks(rng, (4, 23, 17)),
            _random_masks(rng, (2, 23, 17), density=0.3, smooth=False),
            np.zeros((1, 23, 17), bool),
            np.ones((1, 23, 17), bool),
        ]
    )
    masks[0, 0, 0] = True  # starts with a foreground run: counts begin with 0
    ours = amg.mask_to_rle(masks)
    assert ours == official.mask_to_rle_pytorch(torch.as_tensor(masks))
    assert ours[0]["counts"][0] == 0 and amg.mask_to_rle(masks[:0]) == []
    for mask, rle in zip(masks, ours):
        back = amg.rle_to_mask(rle)
        assert back.dtype == bool
        np.testing.assert_array_equal(back, mask)
        np.testing.assert_array_equal(back, official.rle_to_mask(rle))
        assert amg.area_from_rle(rle) == official.area_from_rle(rle) == int(mask.sum())
        coco = amg.coco_encode_rle(rle)
        assert coco == official.coco_encode_rle(rle)  # pycocotools frPyObjects
        assert isinstance(coco["counts"], str)
        decoded = coco_mask.decode({"size": coco["size"], "counts": coco["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_coco_rle_large_counts():
    """Counts that need several 5-bit groups, and negative differences."""
    h, w = 300, 400
    mask = np.zeros((h, w), bool)
    mask[10:290, 5:6] = True
    mask[:, 200:390] = True
    mask[150, 395] = True
    rle = amg.mask_to_rle(mask[None])[0]
    assert amg.coco_encode_rle(rle) == official.coco_encode_rle(rle)


def test_uncrop_and_crop_edge():
    rng = np.random.default_rng(3)
    crop = [30, 20, 130, 90]
    boxes = np.concatenate(
        [rng.integers(0, 100, (40, 2)), rng.integers(0, 100, (40, 2))], axis=1
    ).astype(np.int64)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    points = rng.uniform(0, 100, (40, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        amg.uncrop_boxes_xyxy(boxes, crop),
        official.uncrop_boxes_xyxy(torch.as_tensor(boxes), crop).numpy(),
    )
    np.testing.assert_array_equal(
        amg.uncrop_points(points, crop),
        official.uncrop_points(torch.as_tensor(points), crop).numpy(),
    )
    assert amg.uncrop_points(points, crop).dtype == np.float32
    for orig in ([0, 0, 130, 90], [0, 0, 200, 150]):
        ours = amg.is_box_near_crop_edge(boxes, crop, orig)
        ref = official.is_box_near_crop_edge(torch.as_tensor(boxes), crop, orig).numpy()
        np.testing.assert_array_equal(ours, ref)
    assert ours.any() and not ours.all()
    masks = _random_masks(rng, (3, 70, 100))
    np.testing.assert_array_equal(
        amg.uncrop_masks(masks, crop, 150, 200),
        official.uncrop_masks(torch.as_tensor(masks), crop, 150, 200).numpy(),
    )
    full = [0, 0, 100, 70]
    assert amg.uncrop_masks(masks, full, 70, 100) is masks
    box = np.array([3.0, 4.0, 10.0, 20.0], np.float32)
    ref = official.box_xyxy_to_xywh(torch.as_tensor(box)).numpy()
    np.testing.assert_array_equal(amg.box_xyxy_to_xywh(box), ref)
    np.testing.assert_array_equal(amg.box_xyxy_to_xywh(np.stack([box, box]))[1], ref)


def test_remove_small_regions_matches_official():
    rng = np.random.default_rng(6)
    for i in range(8):
        mask = _random_masks(rng, (40, 50), density=0.3 + 0.05 * i, smooth=i % 2 == 0)
        for mode in ("holes", "islands"):
            for thresh in (1, 4, 30, 5000):
                out, changed = amg.remove_small_regions(mask, thresh, mode)
                ref, ref_changed = official.remove_small_regions(mask, thresh, mode)  # cv2
                assert changed == ref_changed, (i, mode, thresh)
                np.testing.assert_array_equal(out, ref)


def test_remove_small_regions_matches_definition():
    rng = np.random.default_rng(4)
    seen = set()
    for i in range(6):
        mask = _random_masks(rng, (24, 30), density=0.4, smooth=i % 2 == 0)
        for mode in ("holes", "islands"):
            for thresh in (1, 3, 20, 1000):
                out, changed = amg.remove_small_regions(mask, thresh, mode)
                work = ~mask if mode == "holes" else mask
                labels, areas = _components(work)
                small = work & (areas < thresh)
                if mode == "holes":
                    expected = mask | small
                elif small.sum() == work.sum() and work.any():  # all small: keep the largest
                    sizes = np.bincount(labels.ravel())[1:]
                    expected = labels == int(np.argmax(sizes)) + 1
                    seen.add("largest kept")
                else:
                    expected = mask & ~small
                seen.add(f"{mode} {'changed' if small.any() else 'unchanged'}")
                assert changed == bool(small.any()), (i, mode, thresh)
                np.testing.assert_array_equal(out, expected if changed else mask)
    assert len(seen) == 5, seen  # every branch was exercised
    with pytest.raises(ValueError, match="mode"):
        amg.remove_small_regions(mask, 3, "blobs")


def test_fill_holes_and_sprinkles_matches_official(monkeypatch):
    """The official `postprocess_masks` filling with its CUDA connected components replaced by
    the brute-force labelling; ours must agree before the upsampling (checked through it)."""
    rng = np.random.default_rng(5)
    logits = np.where(_random_masks(rng, (2, 3, 20, 20), density=0.5, smooth=False), 1.0, -1.0)
    logits = (logits * rng.uniform(0.5, 3, logits.shape)).astype(np.float32)
    logits[0, 0, 5, 5] = 0.0  # exactly at the threshold: background

    def connected_components(mask):
        m = mask.numpy().astype(bool)
        areas = np.stack([_components(x[0])[1] for x in m])[:, None]
        return torch.as_tensor(areas), torch.as_tensor(areas)  # labels > 0 where areas > 0

    monkeypatch.setattr("sam2.utils.misc.get_connected_components", connected_components)
    from sam2.utils.transforms import SAM2Transforms

    for hole, sprinkle in ((3, 3), (5, 0), (0, 4), (400, 400)):
        ours = fill_holes_and_sprinkles(logits, hole, sprinkle)
        tf = SAM2Transforms(64, 0.0, max_hole_area=hole, max_sprinkle_area=sprinkle)
        ref = tf.postprocess_masks(torch.as_tensor(logits), (20, 20)).numpy()  # same size
        assert ours.dtype == np.float32 and ours.shape == logits.shape
        np.testing.assert_array_equal(ours, ref)
        if hole or sprinkle:
            assert not np.array_equal(ours, logits)
    np.testing.assert_array_equal(fill_holes_and_sprinkles(logits, 0, 0), logits)
