"""sam2_jax.data.synthetic: determinism, content guarantees and the DAVIS-layout writer (read
back with sam2_jax.eval.formats)."""

import hashlib
import time

import numpy as np
import pytest
from PIL import Image

from sam2_jax.data.synthetic import (
    SyntheticVideo,
    _cos_sin,
    _footprints,
    synthetic_video,
    write_davis_dataset,
)
from sam2_jax.eval.formats import list_videos, load_video

SMALL = dict(num_frames=4, height=48, width=64)
# sha256 of frames.tobytes() + labels.tobytes() of synthetic_video(0, 3, 32, 40), recorded when
# the generator was written. The generator uses only bit-exact numpy draws and IEEE-exact
# arithmetic, so this holds on every platform; a change means the videos changed.
GOLDEN_SHA256 = "d5e2d6cc3dc652dd070d7566c7a2752c7f3836c79970e12636461c43da0f6700"
# JPEG quality 90, 4:4:4 against the generated frames: measured mean |diff| 2.0-2.5 grey levels
# on textured 48x64 frames.
JPEG_MEAN_ABS_BOUND = 4.0


def _areas(labels: np.ndarray, num_objects: int) -> np.ndarray:
    """[..., H, W] ids -> [N, ...] pixel counts of ids 1..N."""
    return np.stack([(labels == k).sum(axis=(-2, -1)) for k in range(1, num_objects + 1)])


def test_same_seed_identical_other_seed_differs():
    first, again = synthetic_video(3, **SMALL), synthetic_video(3, **SMALL)
    other = synthetic_video(4, **SMALL)
    assert np.array_equal(first.frames, again.frames)
    assert np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.frames, other.frames)
    assert not np.array_equal(first.labels, other.labels)


def test_golden_checksum():
    video = synthetic_video(0, num_frames=3, height=32, width=40)
    digest = hashlib.sha256(video.frames.tobytes() + video.labels.tobytes()).hexdigest()
    assert digest == GOLDEN_SHA256


def test_cos_sin_matches_libm():
    # The libm-free polynomial agrees with np.cos / np.sin to 1e-11 over many turns.
    angles = np.linspace(-60.0, 60.0, 20001)
    cos_sin = _cos_sin(angles)
    np.testing.assert_allclose(cos_sin[:, 0], np.cos(angles), rtol=0, atol=1e-11)
    np.testing.assert_allclose(cos_sin[:, 1], np.sin(angles), rtol=0, atol=1e-11)


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(num_frames=1, height=16, width=40, num_objects=1), SMALL]
)
def test_shapes_and_dtypes(kwargs):
    video = synthetic_video(7, **kwargs)
    full = dict(num_frames=24, height=128, width=160, num_objects=3) | kwargs
    t, h, w = full["num_frames"], full["height"], full["width"]
    assert isinstance(video, SyntheticVideo)
    assert video.frames.shape == (t, h, w, 3) and video.frames.dtype == np.uint8
    assert video.labels.shape == (t, h, w) and video.labels.dtype == np.uint8
    assert video.labels.max() <= full["num_objects"]
    # Textured: no frame is flat and no object is a single colour.
    assert all(len(np.unique(f.reshape(-1, 3), axis=0)) > 100 for f in video.frames)
    for k in np.unique(video.labels[0])[1:]:
        assert len(np.unique(video.frames[0][video.labels[0] == k], axis=0)) > 1


def test_every_object_clearly_visible_in_frame_zero():
    for seed in range(10):
        labels = synthetic_video(seed, num_frames=1).labels[0]
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        assert _areas(labels, 3).min() >= 0.02 * labels.size, seed
    for num_objects in (1, 5):
        for seed in range(3):
            labels = synthetic_video(seed, 1, 64, 80, num_objects).labels[0]
            assert _areas(labels, num_objects).min() >= 0.02 * labels.size


def test_many_objects_all_present_in_frame_zero():
    # 254 objects on 16x16 pixels cannot be placed at random: the grid fallback keeps each one.
    labels = synthetic_video(0, num_frames=1, height=16, width=16, num_objects=254).labels[0]
    assert set(np.unique(labels)) == set(range(255))


def test_objects_enter_later():
    for seed in range(5):
        labels = synthetic_video(seed, objects_enter_later=True).labels
        first = set(np.unique(labels[0])) - {0}
        later = set(np.unique(labels[1:])) - {0}
        assert first, "at least one object is visible at the start"
        assert later - first, f"seed {seed}: no object enters after frame 0"
    for seed in range(5):
        labels = synthetic_video(seed, num_objects=2, objects_enter_later=True).labels
        assert len(set(np.unique(labels[0])) - {0}) == 1  # 1..N-1 objects start outside


def test_occlusions_are_common_and_labels_are_the_visible_part():
    occluded = 0
    for seed in range(10):
        video = synthetic_video(seed)
        footprints = _footprints(seed)  # [T, N, H, W]
        occluded += bool((footprints.sum(axis=1) >= 2).any())
        # Every labelled pixel lies in its object's footprint, and the background is exactly
        # where no footprint is.
        for k in range(1, 4):
            assert not (video.labels == k)[~footprints[:, k - 1]].any()
        assert np.array_equal(video.labels > 0, footprints.any(axis=1))
    assert occluded >= 7


def test_objects_stay_non_trivial_and_move_smoothly():
    slivers = pairs = 0
    for seed in range(10):
        labels = synthetic_video(seed).labels
        areas = _areas(labels, 3)
        slivers += int((areas < 0.005 * labels[0].size).sum())
        pairs += areas.size
        footprints = _footprints(seed)
        both = footprints[1:] & footprints[:-1]
        either = footprints[1:] | footprints[:-1]
        iou = both.sum(axis=(2, 3)) / np.maximum(either.sum(axis=(2, 3)), 1)
        # Consecutive full footprints overlap strongly (measured min 0.76 over seeds 0..29).
        assert iou.min() >= 0.5, seed
    assert slivers <= 0.05 * pairs


def test_fast():
    synthetic_video(0)
    best = min(_timed(lambda: synthetic_video(1)) for _ in range(3))
    # Measured ~0.02 s for 24 frames of 128x160 with 3 objects; generous for a shared CPU.
    assert best < 0.2


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_write_davis_dataset_round_trip(tmp_path):
    seeds = [0, 12]
    names = write_davis_dataset(tmp_path, seeds, split="val", **SMALL)
    assert names == ["synth_00000", "synth_00012"]
    assert (tmp_path / "ImageSets" / "2017" / "val.txt").read_text() == "".join(
        f"{n}\n" for n in names
    )
    assert list_videos(tmp_path, "davis", split="val") == names
    for seed, name in zip(seeds, names):
        video = synthetic_video(seed, **SMALL)
        loaded = load_video(tmp_path, "davis", name)
        assert loaded.num_frames == 4 and (loaded.height, loaded.width) == (48, 64)
        assert loaded.frame_names == ("00000", "00001", "00002", "00003")
        assert loaded.annotated == (0, 1, 2, 3)
        assert sorted(loaded.initial_masks()) == [1, 2, 3]
        for t in range(4):
            assert np.array_equal(loaded.read_labels(t), video.labels[t])
            with Image.open(loaded.frame_path(t)) as image:
                assert image.mode == "RGB" and image.size == (64, 48)
                decoded = np.asarray(image).astype(np.int64)
            assert np.abs(decoded - video.frames[t]).mean() < JPEG_MEAN_ABS_BOUND


def test_write_is_deterministic_and_replaces_stale_frames(tmp_path):
    write_davis_dataset(tmp_path / "a", [5], split="train", **SMALL)
    write_davis_dataset(tmp_path / "b", [5], split="train", num_frames=6, height=48, width=64)
    write_davis_dataset(tmp_path / "b", [5], split="train", **SMALL)
    for sub in ("JPEGImages", "Annotations"):
        a_files = sorted((tmp_path / "a" / sub / "480p" / "synth_00005").iterdir())
        b_files = sorted((tmp_path / "b" / sub / "480p" / "synth_00005").iterdir())
        assert [p.name for p in a_files] == [p.name for p in b_files]  # 2 stale frames removed
        assert len(a_files) == 4
        assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a_files, b_files))
    assert load_video(tmp_path / "b", "davis", "synth_00005").num_frames == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_frames=0), "num_frames"),
        (dict(height=15), "height"),
        (dict(width=8), "width"),
        (dict(num_objects=0), "num_objects"),
        (dict(num_objects=255), "num_objects"),
        (dict(num_frames=2.0), "num_frames"),
        (dict(objects_enter_later="yes"), "objects_enter_later"),
    ],
)
def test_bad_video_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic_video(0, **kwargs)
    with pytest.raises(ValueError, match=match):
        write_davis_dataset(tmp_path / "out", [0], **kwargs)
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize(
    "seeds, split, match",
    [
        ([], "val", "seeds must not be empty"),
        ([1, 2, 1], "val", r"repeated: \[1\]"),
        ([-1], "val", "seed"),
        ([True], "val", "seed"),
        ([0], "a/b", "split"),
        ([0], "", "split"),
    ],
)
def test_bad_dataset_arguments(tmp_path, seeds, split, match):
    with pytest.raises(ValueError, match=match):
        write_davis_dataset(tmp_path / "out", seeds, split=split, **SMALL)
    assert not (tmp_path / "out").exists()


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        synthetic_video(-3)
