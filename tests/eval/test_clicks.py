"""sam2_jax.eval.clicks: the error-centre click equals the official
`sample_one_point_from_error_center(..., padding=True)` (x, y, label) exactly."""

import numpy as np
import pytest
import torch
from sam2.modeling.sam2_utils import sample_one_point_from_error_center
from scipy import ndimage

from sam2_jax.eval.clicks import error_center_click


def official_click(gt: np.ndarray, pred: np.ndarray | None) -> tuple[float, float, int]:
    """The official sampler (cv2 distance transform) on one [H, W] bool mask pair."""
    gt_t = torch.from_numpy(np.ascontiguousarray(gt))[None, None]
    pred_t = None if pred is None else torch.from_numpy(np.ascontiguousarray(pred))[None, None]
    points, labels = sample_one_point_from_error_center(gt_t, pred_t, padding=True)
    return float(points[0, 0, 0]), float(points[0, 0, 1]), int(labels[0, 0])


def assert_matches(gt: np.ndarray, pred: np.ndarray | None) -> tuple[float, float, int]:
    ours = error_center_click(gt, pred)
    assert ours == official_click(gt, pred), (gt.astype(int), None if pred is None else pred)
    assert all(type(v) is t for v, t in zip(ours, (float, float, int)))
    return ours


def blob(rng: np.random.Generator, shape: tuple[int, int], sigma: float, level: float):
    """Smoothed noise thresholded at its `level` quantile: a few random blobs, [H, W] bool."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return noise > np.quantile(noise, level)


SHAPES = [(16, 16), (37, 53), (53, 37), (1, 9), (9, 1), (64, 48)]


@pytest.mark.parametrize("shape", SHAPES)
def test_random_blobs_match_official(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(40):
        sigma = rng.uniform(0.5, 4.0)
        gt = blob(rng, shape, sigma, rng.uniform(0.3, 0.9))
        pred = blob(rng, shape, sigma, rng.uniform(0.3, 0.9))
        assert_matches(gt, pred)
        assert_matches(gt, None)
        # Predictions close to the truth: gt with a few flipped blobs.
        assert_matches(gt, gt ^ blob(rng, shape, 1.0, 0.97))


def test_sparse_random_pixels_match_official():
    # Salt-and-pepper masks: many single-pixel regions, so every distance is 1 and the first
    # maximum in row-major order decides; FN vs FP ties give the negative click.
    rng = np.random.default_rng(0)
    for _ in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 20, size=2))
        gt = rng.random(shape) < rng.uniform(0.05, 0.5)
        pred = rng.random(shape) < rng.uniform(0.05, 0.5)
        assert_matches(gt, pred)


def test_no_error_is_negative_click_at_origin():
    # No FN and no FP pixel: both distance maps are all zero, 0 > 0 is false, so the official
    # returns the negative click at flat index 0, i.e. (0, 0).
    rng = np.random.default_rng(1)
    gt = blob(rng, (37, 53), 2.0, 0.6)
    assert assert_matches(gt, gt.copy()) == (0.0, 0.0, 0)
    empty = np.zeros((37, 53), bool)
    assert assert_matches(empty, None) == (0.0, 0.0, 0)
    assert assert_matches(empty, empty) == (0.0, 0.0, 0)
    full = np.ones((5, 7), bool)
    assert assert_matches(full, full) == (0.0, 0.0, 0)


def test_single_pixels():
    gt = np.zeros((37, 53), bool)
    gt[10, 20] = True
    # FN pixel at distance 1 > 0 -> positive click there (x = column 20, y = row 10).
    assert assert_matches(gt, None) == (20.0, 10.0, 1)
    pred = np.zeros_like(gt)
    pred[3, 4] = True
    # One FN and one FP pixel, both at distance 1: tie -> negative click on the FP pixel.
    assert assert_matches(gt, pred) == (4.0, 3.0, 0)
    assert assert_matches(np.zeros_like(gt), pred) == (4.0, 3.0, 0)
    corner = np.zeros((37, 53), bool)
    corner[36, 52] = True
    assert assert_matches(corner, None) == (52.0, 36.0, 1)


def test_masks_touching_the_border():
    # The whole 5 x 7 image is FN: with the 1-px zero padding the border counts as outside,
    # so the centre row 2 is farthest (distance 3 from the top and bottom pads); the first
    # maximum on it is column 2 (distance 3 from the left pad too).
    full = np.ones((5, 7), bool)
    assert assert_matches(full, None) == (2.0, 2.0, 1)
    rng = np.random.default_rng(2)
    for _ in range(20):
        gt = blob(rng, (24, 31), 3.0, 0.5)
        gt[0, :] = gt[:, -1] = True
        pred = blob(rng, (24, 31), 3.0, 0.5)
        pred[-1, :] = pred[:, 0] = True
        assert_matches(gt, pred)
        assert_matches(~gt, None)


def test_superset_and_subset_predictions():
    rng = np.random.default_rng(3)
    for _ in range(20):
        gt = blob(rng, (37, 53), 2.5, 0.6)
        grown = ndimage.binary_dilation(gt, iterations=int(rng.integers(1, 4)))
        shrunk = ndimage.binary_erosion(gt, iterations=int(rng.integers(1, 3)))
        # Only FP pixels: always a negative click, on an FP pixel when there is one.
        x, y, label = assert_matches(gt, grown)
        on_fp = bool(grown[int(y), int(x)] and not gt[int(y), int(x)])
        assert label == 0 and on_fp == (grown > gt).any()
        # Only FN pixels: a positive click on an FN pixel when there is one.
        x, y, label = assert_matches(gt, shrunk)
        assert label == int((gt > shrunk).any()) and (not label or gt[int(y), int(x)])


def test_symmetric_ties():
    # FN and FP squares of the same size: equal maximal distances -> negative click, at the
    # FP square's first centre pixel (a 4 x 4 square has a 2 x 2 centre at distance 2).
    gt = np.zeros((20, 30), bool)
    pred = np.zeros((20, 30), bool)
    gt[2:6, 3:7] = True
    pred[10:14, 20:24] = True
    assert assert_matches(gt, pred) == (21.0, 11.0, 0)
    # A 3 x 8 FN bar: the whole middle row 1 of it is at distance 2 except its ends; the first
    # maximum is column 1 of the bar (x = 5 + 1).
    bar = np.zeros((9, 20), bool)
    bar[3:6, 5:13] = True
    assert assert_matches(bar, None) == (6.0, 4.0, 1)
    # Mirror-symmetric FN pair left/right and top/bottom: the first in row-major order wins.
    pair = np.zeros((21, 21), bool)
    pair[8:13, 1:6] = pair[8:13, 15:20] = pair[1:6, 8:13] = True
    assert assert_matches(pair, None) == (10.0, 3.0, 1)
    # A ring prediction around a disk truth: symmetric FP annulus, centre FN disk.
    yy, xx = np.mgrid[:31, :31]
    r = np.hypot(yy - 15, xx - 15)
    assert_matches(r < 6, r < 11)
    assert_matches(r < 11, r < 6)
    assert_matches(r <= 5, None)


def test_numeric_masks_equal_bool_masks():
    rng = np.random.default_rng(4)
    gt = blob(rng, (37, 53), 2.0, 0.5)
    pred = blob(rng, (37, 53), 2.0, 0.5)
    expected = official_click(gt, pred)
    assert error_center_click(gt.astype(np.uint8), pred.astype(np.float32)) == expected
    assert error_center_click(gt.astype(np.int64) * 255, pred) == expected


@pytest.mark.parametrize(
    "gt, pred, message",
    [
        (np.zeros((4, 5), bool), np.zeros((5, 4), bool), "same shape"),
        (np.zeros((2, 4, 5), bool), None, "2-D"),
        (np.zeros(5, bool), None, "2-D"),
        (np.zeros((4, 5), bool), np.zeros((4, 5, 1), bool), "2-D"),
        (np.zeros((0, 5), bool), None, "empty"),
        (np.full((4, 5), "a"), None, "dtype"),
        (np.zeros((4, 5), bool), np.zeros((4, 5), object), "dtype"),
    ],
)
def test_bad_input(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        error_center_click(gt, pred)
