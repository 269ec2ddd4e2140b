"""sam2_jax.eval.metrics vs the DAVIS 2017 toolkit definitions and vos-benchmark (test-only).

Hand-computed cases pin the conventions (empty masks, single pixels, image border, void,
mean/recall/decay, extra predicted ids); the PyPI package `vos-benchmark` (cv2 dilation,
skimage disk, its own PNG reading) is the independent implementation for per-object J and F on
the real DAVIS sequences of shared/data with perturbed ground truth as predictions.
"""

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from scipy import ndimage
from skimage.morphology import disk as skimage_disk
from vos_benchmark.benchmark import VideoEvaluator
from vos_benchmark.evaluator import Evaluator
from vos_benchmark.utils import _seg2bmap as vos_seg2bmap

from sam2_jax.eval import (
    ObjectStatistics,
    boundary_f_measure,
    boundary_map,
    boundary_radius,
    davis_sequence_scores,
    db_statistics,
    dilate_disk,
    disk,
    first_appearance_scores,
    global_statistics,
    list_videos,
    load_video,
    object_statistics,
    region_similarity,
    sav_object_scores,
    score_video,
    write_label_png,
    write_prediction,
)

# The bound for per-object J and F against vos-benchmark (its x100 units).
TOL_VOS_BENCHMARK = 1e-6
# Hand-computed values are exact fractions; only float64 rounding separates them.
TOL_HAND = 1e-12
DAVIS2017 = SHARED_DATA / "davis2017_mini"
MULTI_OBJECT_FRAMES = 16


def _square(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ----------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5, 8, 11])
def test_dilate_disk_equals_cv2_dilate(radius):
    rng = np.random.default_rng(radius)
    for shape in [(37, 53), (5, 4), (64, 31)]:
        mask = rng.random(shape) < 0.02
        mask[0, -1] = mask[-1, 0] = True  # border pixels: the disk is clipped there
        ref = cv2.dilate(mask.astype(np.uint8), skimage_disk(radius).astype(np.uint8)) > 0
        np.testing.assert_array_equal(dilate_disk(mask, radius), ref)
    np.testing.assert_array_equal(disk(radius), skimage_disk(radius).astype(bool))


def test_boundary_map_equals_toolkit_seg2bmap():
    rng = np.random.default_rng(0)
    for shape in [(9, 13), (1, 5), (6, 1), (20, 20)]:
        for density in (0.0, 0.3, 0.7, 1.0):
            mask = rng.random(shape) < density
            np.testing.assert_array_equal(boundary_map(mask), vos_seg2bmap(mask))


def test_boundary_radius():
    assert boundary_radius(480, 854) == 8  # ceil(0.008 * 979.6)
    assert boundary_radius(1080, 1920) == 18
    assert boundary_radius(6, 8) == 1
    assert boundary_radius(6, 8, bound_th=3) == 3
    with pytest.raises(ValueError, match="whole"):
        boundary_radius(6, 8, bound_th=2.5)


# ----------------------------------------------------------------------------- hand-computed J, F


def test_both_empty_gives_one():
    empty = np.zeros((6, 8), bool)
    assert region_similarity(empty, empty) == 1.0
    assert boundary_f_measure(empty, empty) == 1.0


def test_one_empty_gives_zero():
    empty = np.zeros((6, 8), bool)
    square = _square((6, 8), 2, 4, 2, 5)
    for gt, pred in [(empty, square), (square, empty)]:
        assert region_similarity(gt, pred) == 0.0
        assert boundary_f_measure(gt, pred) == 0.0


def test_single_pixel_objects():
    gt = _square((10, 10), 2, 3, 3, 4)
    # a lone pixel's boundary is the 2x2 block above-left of it (offset by half a pixel)
    np.testing.assert_array_equal(np.argwhere(boundary_map(gt)), [[1, 2], [1, 3], [2, 2], [2, 3]])
    assert region_similarity(gt, gt) == 1.0
    assert boundary_f_measure(gt, gt, bound_th=1) == 1.0
    # one pixel to the right: no overlap, but every boundary pixel is within radius 1
    moved = _square((10, 10), 2, 3, 4, 5)
    assert region_similarity(gt, moved) == 0.0
    assert boundary_f_measure(gt, moved, bound_th=1) == 1.0
    # three pixels away: nothing matches
    assert boundary_f_measure(gt, _square((10, 10), 2, 3, 6, 7), bound_th=1) == 0.0


def test_masks_touching_the_border():
    full = np.ones((6, 8), bool)
    assert not boundary_map(full).any()  # the image border is not a boundary
    assert region_similarity(full, full) == 1.0
    assert boundary_f_measure(full, full) == 1.0
    top = _square((6, 8), 0, 3, 0, 8)
    np.testing.assert_array_equal(np.argwhere(boundary_map(top))[:, 0], [2] * 8)
    # left 4 columns vs left 3: J = 18 / 24; boundaries are the columns 3 and 2
    left4, left3 = _square((6, 8), 0, 6, 0, 4), _square((6, 8), 0, 6, 0, 3)
    np.testing.assert_array_equal(np.argwhere(boundary_map(left4))[:, 1], [3] * 6)
    assert abs(region_similarity(left4, left3) - 0.75) < TOL_HAND
    assert boundary_f_measure(left4, left3, bound_th=1) == 1.0
    assert boundary_f_measure(left4, left3, bound_th=0) == 0.0  # radius 0: exact match only


def test_void_pixels():
    shape = (6, 6)
    gt = _square(shape, 0, 2, 0, 2)
    void = _square(shape, 3, 5, 3, 5)
    pred = gt | void
    assert region_similarity(gt, pred, void) == 1.0
    assert abs(region_similarity(gt, pred) - 0.5) < TOL_HAND
    assert boundary_f_measure(gt, pred, void) == 1.0
    # without void: gt boundary 3 px, prediction 3 + 8 px; P = 3/11, R = 1, F = 3/7
    assert abs(boundary_f_measure(gt, pred) - 3 / 7) < TOL_HAND
    # all pixels void: empty union
    assert region_similarity(gt, pred, np.ones(shape, bool)) == 1.0


def test_batched_j_and_f():
    rng = np.random.default_rng(1)
    gt, pred = rng.random((2, 2, 3, 12, 15)) < 0.4
    j, f = region_similarity(gt, pred), boundary_f_measure(gt, pred)
    assert j.shape == f.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        assert j[idx] == region_similarity(gt[idx], pred[idx])
        assert f[idx] == boundary_f_measure(gt[idx], pred[idx])


# ----------------------------------------------------------------------------- statistics


def test_db_statistics_hand_computed():
    values = np.array([1.0, 0.4, 0.6, 0.2, 0.9, 0.8, 0.5, 0.55])
    mean, recall, decay = db_statistics(values)
    assert abs(mean - 4.95 / 8) < TOL_HAND
    assert recall == 5 / 8  # 0.5 itself is not > 0.5
    # bin edges round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]: mean(v[0:3]) - mean(v[5:8])
    assert abs(decay - (2.0 / 3 - 1.85 / 3)) < TOL_HAND


def test_db_statistics_nan_and_long_sequences():
    mean, recall, decay = db_statistics(np.array([1.0, np.nan, 0.0]))
    assert mean == 0.5 and recall == 1 / 3  # NaN counts as a miss in the recall, as upstream
    # T = 256: last edge 255, +1 taken as an integer (the toolkit under NumPy 1)
    values = np.linspace(1, 0, 256)
    assert abs(db_statistics(values)[2] - (values[0:65].mean() - values[191:256].mean())) < 1e-12
    # T = 300: the toolkit's uint8 edges wrap, its last bin is empty and its decay NaN
    assert np.isnan(db_statistics(np.linspace(1, 0, 300))[2])
    with pytest.raises(ValueError, match="T >= 1"):
        db_statistics(np.array([]))


def test_object_and_global_statistics():
    gt = np.zeros((5, 6, 8), np.uint8)
    gt[:, 1:4, 1:4] = 1
    gt[:, 4:6, 5:8] = 2
    pred = gt.copy()
    pred[2][pred[2] == 2] = 0  # object 2 missed on frame 2
    scores = davis_sequence_scores(gt, pred)
    stats = object_statistics("seq", scores)
    assert stats[0] == ObjectStatistics("seq", 1, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0)
    assert (stats[1].j_mean, stats[1].j_recall) == (2 / 3, 2 / 3)
    summary = global_statistics(stats)
    assert summary["J-Mean"] == (1 + 2 / 3) / 2
    assert summary["J&F-Mean"] == (summary["J-Mean"] + summary["F-Mean"]) / 2
    with pytest.raises(ValueError, match="no scored objects"):
        global_statistics([])


# ----------------------------------------------------------------------------- protocols


def _sequence(num_frames=6, shape=(8, 10)):
    gt = np.zeros((num_frames, *shape), np.uint8)
    gt[:, 1:4, 1:4] = 1
    gt[:, 5:7, 5:9] = 2
    return gt


def test_davis_skips_first_and_last_frame():
    gt = _sequence()
    pred = gt.copy()
    pred[0] = pred[-1] = 0
    scores = davis_sequence_scores(gt, pred)
    assert [s.object_id for s in scores] == [1, 2]
    for s in scores:
        assert s.frames == (1, 2, 3, 4)
        assert (s.j == 1).all() and (s.f == 1).all()


def test_davis_extra_predicted_id_is_an_error():
    gt = _sequence()
    pred = gt.copy()
    pred[2, 0, 0] = 3
    with pytest.raises(ValueError, match="higher than the number of objects"):
        davis_sequence_scores(gt, pred)
    pred[2, 0, 0] = 255  # a predicted 255 is an id too
    with pytest.raises(ValueError, match="object id 255"):
        davis_sequence_scores(gt, pred)


def test_davis_objects_from_first_frame_ids():
    gt = _sequence()
    gt[gt == 2] = 3  # ids {1, 3}: the toolkit scores objects 1, 2, 3
    pred = gt.copy()
    pred[:, 1:4, 1:4] = 0  # object 1 never predicted: scored as empty
    scores = davis_sequence_scores(gt, pred)
    assert [s.object_id for s in scores] == [1, 2, 3]
    assert (scores[0].j == 0).all() and (scores[0].f == 0).all()
    assert (scores[1].j == 1).all() and (scores[1].f == 1).all()  # absent from both
    assert (scores[2].j == 1).all()


def test_davis_void_counts_as_background_like_the_toolkit():
    gt = _sequence(shape=(6, 6))
    gt[:] = 0
    gt[:, 0:2, 0:2] = 1
    gt[:, 3:5, 3:5] = 255
    pred = np.where(gt == 255, 1, gt).astype(np.uint8)
    toolkit = davis_sequence_scores(gt, pred)
    assert len(toolkit) == 1  # 255 is not an object
    assert np.allclose(toolkit[0].j, 0.5, atol=TOL_HAND)
    assert np.allclose(toolkit[0].f, 3 / 7, atol=TOL_HAND)
    excluded = davis_sequence_scores(gt, pred, exclude_void=True)
    assert (excluded[0].j == 1).all() and (excluded[0].f == 1).all()


def test_davis_input_checks():
    gt = _sequence()
    with pytest.raises(ValueError, match=">= 3 frames"):
        davis_sequence_scores(gt[:2], gt[:2])
    with pytest.raises(ValueError, match="predicted frames"):
        davis_sequence_scores(gt, gt[:5])
    with pytest.raises(ValueError, match="same shape"):
        davis_sequence_scores(gt, gt[:, :, :9])
    with pytest.raises(ValueError, match="integer label map"):
        davis_sequence_scores(gt, gt.astype(np.float32))


def test_first_appearance_counts_objects_from_their_first_appearance():
    gt = _sequence(num_frames=8)
    gt[:4][gt[:4] == 2] = 0  # object 2 enters the ground truth on frame 4
    pred = gt.copy()
    pred[3, 5:7, 5:9] = 2  # ... and the prediction on frame 3
    pred[2, 0, 9] = 7  # an object only predicted: counted, not reported
    scores = first_appearance_scores(gt, pred)
    assert [s.object_id for s in scores] == [1, 2]
    assert scores[0].frames == tuple(range(1, 7))
    assert scores[1].frames == (3, 4, 5, 6)
    np.testing.assert_array_equal(scores[1].j, [0, 1, 1, 1])
    assert len(first_appearance_scores(gt, pred, skip_first_and_last=False)[0].frames) == 8


def test_sav_object_scores():
    gt = [_square((8, 10), 2, 5, 2, 6) for _ in range(5)]
    pred = [m.copy() for m in gt]
    pred[2] = np.zeros_like(pred[2])
    scores = sav_object_scores(4, gt, pred)
    assert scores.object_id == 4 and scores.frames == (1, 2, 3)
    np.testing.assert_array_equal(scores.j, [1, 0, 1])
    absent = [np.zeros((8, 10), bool)] * 5
    with pytest.raises(ValueError, match="object 4 is absent"):
        sav_object_scores(4, absent, pred)


# ----------------------------------------------------------------------------- vs vos-benchmark


def _perturb(mask: np.ndarray, t: int) -> np.ndarray:
    """A prediction from a ground-truth mask [H, W] bool; the perturbation cycles with t."""
    kind = t % 8
    if kind == 1:
        return ndimage.binary_erosion(mask, iterations=3)
    if kind == 2:
        return ndimage.binary_dilation(mask, iterations=5)
    if kind == 3:
        shifted = np.roll(mask, (7, -11), axis=(0, 1))
        shifted[:7] = False
        return shifted
    if kind == 4:
        return np.zeros_like(mask)  # object missing
    if kind == 5:
        return ndimage.binary_erosion(mask, iterations=15)
    if kind == 6:
        return ndimage.binary_dilation(np.roll(mask, (2, 3), axis=(0, 1)), iterations=2)
    return mask


def _vos_benchmark(gt_root, pred_root, name):
    _, iou, boundary_f = VideoEvaluator(str(gt_root), str(pred_root))(name)
    return {int(k): v for k, v in iou.items()}, {int(k): v for k, v in boundary_f.items()}


def _assert_scores_equal(scores, vos_j, vos_f):
    assert sorted(vos_j) == [s.object_id for s in scores]
    for s in scores:
        for ours, ref, what in [(s.j, vos_j, "J"), (s.f, vos_f, "F")]:
            err = abs(ours.mean() * 100 - ref[s.object_id])
            print(f"object {s.object_id} {what}: ours {ours.mean() * 100:.6f} err {err:.2e}")
            assert err <= TOL_VOS_BENCHMARK


def _random_labels(rng, shape, num_objects):
    """Blobby random label map: smoothed noise, one threshold band per id."""
    noise = ndimage.gaussian_filter(rng.random(shape), 2.0)
    bands = np.quantile(noise, np.linspace(0.35, 1, num_objects + 1))
    return np.digitize(noise, bands[:-1]).astype(np.uint8) * (noise > bands[0])


def test_random_label_maps_equal_vos_benchmark_evaluator():
    """Many small frames, several objects, some absent on some frames, odd sizes."""
    rng = np.random.default_rng(0)
    for shape in [(23, 37), (40, 17)]:
        gts = [_random_labels(rng, shape, 3) for _ in range(12)]
        preds = [_random_labels(rng, shape, 4) if t % 3 else gts[t] for t in range(12)]
        gts[4][gts[4] == 2] = 0
        evaluator = Evaluator()
        for gt, pred in zip(gts, preds):
            evaluator.feed_frame(pred, gt)
        vos_j, vos_f = ({int(k): v for k, v in d.items()} for d in evaluator.conclude())
        scores = first_appearance_scores(gts, preds, skip_first_and_last=False)
        _assert_scores_equal(scores, vos_j, vos_f)


@pytest.mark.parametrize("sequence", list_videos(DAVIS2017, "davis"))
def test_per_object_j_f_equal_vos_benchmark_on_davis2017_mini(sequence, tmp_path):
    video = load_video(DAVIS2017, "davis", sequence)
    for t in range(video.num_frames):
        gt = video.read_labels(t) == 1
        write_prediction(tmp_path, video, t, {1: _perturb(gt, t)})
    scores = score_video(video, tmp_path)
    vos_j, vos_f = _vos_benchmark(video.annotations_dir.parent, tmp_path, sequence)
    _assert_scores_equal(scores, vos_j, vos_f)
    assert (scores[0].j < 1).any() and (scores[0].j == 0).any()  # the perturbations bite


def test_multi_object_j_f_equal_vos_benchmark(tmp_path):
    """blackswan split into two objects, plus a third entering on frame 6; object 2 is
    missing from some predictions and a prediction-only id appears."""
    video = load_video(DAVIS2017, "davis", "blackswan")
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    gts, preds = [], []
    for t in range(MULTI_OBJECT_FRAMES):
        swan = video.read_labels(t) == 1
        split = int(np.median(np.nonzero(swan)[1]))
        gt = np.zeros(swan.shape, np.uint8)
        gt[:, :split][swan[:, :split]] = 1
        gt[:, split:][swan[:, split:]] = 2
        if t >= 6:
            gt[400:440, 40:120] = 3
        pred = np.zeros_like(gt)
        for k in (3, 2, 1):
            if not (k == 2 and t % 5 == 2):
                pred[_perturb(gt == k, t + k)] = k
        pred[0:10, 0:10] = 5 if t == 4 else 0
        name = f"{t:05d}.png"
        write_label_png(gt_root / "blackswan" / name, gt)
        write_label_png(pred_root / "blackswan" / name, pred)
        gts.append(gt)
        preds.append(pred)
    vos_j, vos_f = _vos_benchmark(gt_root, pred_root, "blackswan")
    _assert_scores_equal(first_appearance_scores(gts, preds), vos_j, vos_f)
    # where the conventions agree (objects present from the first scored frame, no id missing
    # from the first frame's ground truth, no prediction-only id) the DAVIS protocol gives the
    # same numbers
    gt_root, pred_root = tmp_path / "gt12", tmp_path / "pred12"
    for t in range(MULTI_OBJECT_FRAMES):
        gts[t][gts[t] == 3] = 0
        preds[t][(preds[t] == 3) | (preds[t] == 5)] = 0
        write_label_png(gt_root / "blackswan" / f"{t:05d}.png", gts[t])
        write_label_png(pred_root / "blackswan" / f"{t:05d}.png", preds[t])
    vos_j, vos_f = _vos_benchmark(gt_root, pred_root, "blackswan")
    _assert_scores_equal(davis_sequence_scores(gts, preds), vos_j, vos_f)


def test_davis_2016_layout_reads_the_same_masks():
    davis2016 = SHARED_DATA / "davis_mini"
    for sequence in list_videos(DAVIS2017, "davis"):
        old, new = (
            load_video(davis2016, "davis", sequence),
            load_video(DAVIS2017, "davis", sequence),
        )
        assert old.frame_names == new.frame_names and old.num_frames == new.num_frames
        for t in range(new.num_frames):
            raw = np.asarray(Image.open(old.annotation_path(t)))
            assert set(np.unique(raw)) == {0, 255}
            np.testing.assert_array_equal(old.read_labels(t), new.read_labels(t))
