"""sam2_jax.data.clips (RandomUniformSampler + VOSDataset.construct) and sam2_jax.data.augment
(the MOSE fine-tune train transforms).

torchvision cannot be imported in the tests (tests/support holds a stand-in without the
functional API), so the torchvision 0.28 glue the official transforms go through is copied
below (`_tv_inverse_affine_matrix`, `_tv_affine_mask`, `_tv_resize_mask`) around the real torch
kernels (grid_sample, interpolate) and PIL calls; the mask ops must match them bit for bit.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sam2_jax.data import augment
from sam2_jax.data.clips import Clip, ClipConfig, sample_clip
from sam2_jax.data.synthetic import synthetic_video

# Identity settings: with a square clip of side image_size, augment_clip must return it as is.
IDENTITY = dict(
    hflip_prob=0.0,
    affine_degrees=0.0,
    affine_shear=0.0,
    jitter_consistent=(0.0, 0.0, 0.0),
    jitter_per_frame=(0.0, 0.0, 0.0),
    grayscale_prob=0.0,
)
# Object colours of the colour-coded clips (object k = PALETTE[k]), background black.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
FILL = (123, 116, 103)
# cos(90 deg) = 6e-17 in floating point, so PIL's bilinear puts a weight of 1 - 1e-16 on the
# rotated source pixel and rounds the result down: one grey level at most.
ROT90_IMAGE_TOL = 1


class ArrayEntry:
    """A VideoEntry over in-memory arrays: frames [N, H, W, 3] uint8, labels [N, H, W] (0 =
    background). masks(t) holds the ids present on frame t only, as palette PNG annotations
    do; `mask_reads` records the frames whose masks were read."""

    def __init__(self, name: str, frames: np.ndarray, labels: np.ndarray):
        self.name = name
        self.num_frames = len(frames)
        self.frames = frames
        self.labels = labels
        self.mask_reads: list[int] = []

    def frame(self, t: int) -> np.ndarray:
        return self.frames[t]

    def masks(self, t: int) -> dict[int, np.ndarray]:
        self.mask_reads.append(t)
        return {int(i): self.labels[t] == i for i in np.unique(self.labels[t]) if i != 0}


class BatchedArrayEntry(ArrayEntry):
    """ArrayEntry with the batch readers of sam2_jax.data.sources.VideoEntry."""

    def load_frames(self, ts):
        return self.frames[list(ts)]

    def load_masks(self, ts):
        return [self.masks(t) for t in ts]


def synthetic_entry(seed: int, num_frames=12, height=40, width=56, num_objects=4, later=True):
    video = synthetic_video(seed, num_frames, height, width, num_objects, objects_enter_later=later)
    return ArrayEntry(f"synth_{seed}", video.frames, video.labels)


def colour_clip(seed: int, size: int, num_frames: int = 3) -> Clip:
    """A square clip whose pixels are PALETTE[label] (3 objects, all visible on frame 0)."""
    video = synthetic_video(seed, num_frames, size, size, 3)
    masks = np.stack([video.labels == k for k in (1, 2, 3)], axis=1)
    return Clip("colour", np.arange(num_frames), np.array([1, 2, 3]), PALETTE[video.labels], masks)


def pil_frames(frames: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(f) for f in frames]


def np_frames(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images])


# ----------------------------------------------------------------------------- torchvision oracle


def _tv_inverse_affine_matrix(center, angle, translate, scale, shear):
    """torchvision 0.28 transforms/functional.py `_get_inverse_affine_matrix` (inverted=True)."""
    rot = math.radians(angle)
    sx = math.radians(shear[0])
    sy = math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix = [x / scale for x in matrix]
    matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
    matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
    matrix[2] += cx
    matrix[5] += cy
    return matrix


def _tv_affine_mask(mask: np.ndarray, angle: float, shear_x: float) -> np.ndarray:
    """The official `F.affine(mask_uint8[None], angle, (0, 0), 1.0, (shear_x, 0.0), NEAREST,
    fill=0.0)`: torchvision 0.28 functional.affine (tensor: centre (0, 0)) ->
    _functional_tensor.affine -> _gen_affine_grid -> _apply_grid_transform, with torch."""
    h, w = mask.shape
    matrix = _tv_inverse_affine_matrix([0.0, 0.0], angle, [0.0, 0.0], 1.0, [shear_x, 0.0])
    theta = torch.tensor(matrix, dtype=torch.float32).reshape(1, 2, 3)
    base_grid = torch.empty(1, h, w, 3, dtype=torch.float32)
    base_grid[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, steps=w))
    base_grid[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, steps=h)[:, None])
    base_grid[..., 2].fill_(1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32)
    grid = base_grid.view(1, h * w, 3).bmm(rescaled).view(1, h, w, 2)
    img = torch.from_numpy(mask.astype(np.uint8))[None, None].to(torch.float32)
    img = torch.cat((img, torch.ones_like(img)), dim=1)
    img = F.grid_sample(img, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    value, inside = img[:, :1], img[:, 1:]
    value[inside < 0.5] = 0.0
    return torch.round(value).to(torch.uint8)[0, 0].numpy() > 0


def _tv_resize_mask(mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The official `F.resize(mask_uint8[None, None], (size, size)).squeeze()` (torchvision 0.28
    _functional_tensor.resize: float32 interpolate, bilinear, antialias=True, then round and
    cast), as (bool mask, float values before rounding)."""
    img = torch.from_numpy(mask.astype(np.uint8))[None, None].to(torch.float32)
    if mask.shape == (size, size):
        return mask.copy(), img[0, 0].numpy()
    out = F.interpolate(
        img, size=[size, size], mode="bilinear", align_corners=False, antialias=True
    )
    return torch.round(out).to(torch.uint8)[0, 0].numpy() > 0, out[0, 0].numpy()


# ----------------------------------------------------------------------------- sampling


def test_clip_is_a_contiguous_window_of_the_video():
    entry = synthetic_entry(0, num_frames=12, later=False)
    config = ClipConfig(num_frames=5, max_num_objects=4)
    starts = set()
    for seed in range(100):
        clip = sample_clip(entry, np.random.default_rng(seed), config)
        start = int(clip.frame_indices[0])
        starts.add(start)
        np.testing.assert_array_equal(clip.frame_indices, np.arange(start, start + 5))
        np.testing.assert_array_equal(clip.frames, entry.frames[start : start + 5])
        expected = entry.labels[start : start + 5, None] == clip.object_ids[None, :, None, None]
        np.testing.assert_array_equal(clip.masks, expected)
        assert clip.frames.dtype == np.uint8 and clip.masks.dtype == bool
        assert clip.name == "synth_0"
    assert starts == set(range(12 - 5 + 1))  # every start of the window is drawn


def test_strided_clip_spaces_its_frames_by_a_random_stride_that_fits():
    entry = synthetic_entry(0, num_frames=12, later=False)
    config = ClipConfig(num_frames=4, max_num_objects=4, max_stride=5)
    strides = set()
    for seed in range(100):
        clip = sample_clip(entry, np.random.default_rng(seed), config)
        stride = int(clip.frame_indices[1] - clip.frame_indices[0])
        strides.add(stride)
        start = int(clip.frame_indices[0])
        np.testing.assert_array_equal(clip.frame_indices, start + stride * np.arange(4))
        np.testing.assert_array_equal(clip.frames, entry.frames[clip.frame_indices])
        expected = entry.labels[clip.frame_indices, None] == clip.object_ids[None, :, None, None]
        np.testing.assert_array_equal(clip.masks, expected)
    assert strides == {1, 2, 3}  # 4 frames 4 apart would need 13 frames: capped at 3


def test_batch_readers_give_the_same_clip():
    entry = synthetic_entry(9, num_frames=10)
    batched = BatchedArrayEntry(entry.name, entry.frames, entry.labels)
    config = ClipConfig(num_frames=4)
    for seed in range(5):
        a = sample_clip(entry, np.random.default_rng(seed), config)
        b = sample_clip(batched, np.random.default_rng(seed), config)
        for field in ("frame_indices", "object_ids", "frames", "masks"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_objects_are_a_random_subset_of_those_visible_on_the_first_frame():
    entry = synthetic_entry(3, num_frames=16, num_objects=5, later=True)
    config = ClipConfig(num_frames=4, max_num_objects=3)
    orders, subsets = set(), set()
    for seed in range(80):
        clip = sample_clip(entry, np.random.default_rng(seed), config)
        first = int(clip.frame_indices[0])
        visible = {int(i) for i in np.unique(entry.labels[first]) if i}
        ids = [int(i) for i in clip.object_ids]
        assert len(set(ids)) == len(ids) == min(len(visible), 3) == clip.masks.shape[1]
        assert set(ids) <= visible
        assert clip.masks[0].reshape(len(ids), -1).any(axis=1).all()
        orders.add(tuple(ids))
        subsets.add(frozenset(ids))
    # random.sample: several subsets, and the same subset in several orders.
    assert len(subsets) > 2 and len(orders) > len(subsets)


def test_absent_object_gets_a_zero_mask():
    labels = np.zeros((6, 16, 16), np.uint8)
    labels[:, 2:6, 2:6] = 1
    labels[:2, 9:14, 9:14] = 2  # object 2 annotated on frames 0 and 1 only
    entry = ArrayEntry("absent", np.zeros((6, 16, 16, 3), np.uint8), labels)
    assert 2 not in entry.masks(3)  # absent from the annotation dict, not an empty mask
    config = ClipConfig(num_frames=4, max_num_objects=3)
    starts = set()
    for seed in range(20):
        clip = sample_clip(entry, np.random.default_rng(seed), config)
        start = int(clip.frame_indices[0])
        starts.add(start)
        if start >= 2:
            assert clip.object_ids.tolist() == [1]  # object 2 is not on the first frame
            continue
        o = clip.object_ids.tolist().index(2)
        annotated = clip.frame_indices < 2
        assert clip.masks[annotated, o].any(axis=(1, 2)).all()
        assert not clip.masks[~annotated, o].any()  # always_target: zeros where absent
    assert {0, 1} <= starts


def test_no_clip_for_short_or_empty_videos():
    config = ClipConfig(num_frames=4)
    short = synthetic_entry(1, num_frames=3)
    assert sample_clip(short, np.random.default_rng(0), config) is None
    assert short.mask_reads == []
    empty = ArrayEntry("empty", np.zeros((10, 8, 8, 3), np.uint8), np.zeros((10, 8, 8), np.uint8))
    assert sample_clip(empty, np.random.default_rng(0), config) is None
    # 1000 official retries, but each of the 7 possible first frames is read at most once.
    assert sorted(set(empty.mask_reads)) == list(range(7)) == sorted(empty.mask_reads)


def test_retries_find_the_only_valid_start():
    labels = np.zeros((10, 8, 8), np.uint8)
    labels[6, 3:5, 3:5] = 1  # only a window starting at frame 6 (the last start) is valid
    entry = ArrayEntry("late", np.zeros((10, 8, 8, 3), np.uint8), labels)
    for seed in range(10):
        clip = sample_clip(entry, np.random.default_rng(seed), ClipConfig(num_frames=4))
        np.testing.assert_array_equal(clip.frame_indices, [6, 7, 8, 9])
        assert not clip.masks[1:].any()
    one_try = ClipConfig(num_frames=4, max_retries=1)
    results = [sample_clip(entry, np.random.default_rng(s), one_try) for s in range(30)]
    assert any(r is None for r in results) and any(r is not None for r in results)


def test_reversed_time():
    entry = synthetic_entry(5, num_frames=12, num_objects=4, later=True)
    config = ClipConfig(num_frames=5, reverse_time_prob=1.0)
    for seed in range(20):
        clip = sample_clip(entry, np.random.default_rng(seed), config)
        first = int(clip.frame_indices[0])
        np.testing.assert_array_equal(clip.frame_indices, np.arange(first, first - 5, -1))
        np.testing.assert_array_equal(clip.frames, entry.frames[clip.frame_indices])
        visible = {int(i) for i in np.unique(entry.labels[first]) if i}
        assert set(clip.object_ids.tolist()) <= visible


def test_sampling_is_deterministic_given_the_generator():
    entry = synthetic_entry(2, num_frames=14, num_objects=5)
    config = ClipConfig(num_frames=4, max_num_objects=2)
    a = sample_clip(entry, np.random.default_rng(7), config)
    b = sample_clip(entry, np.random.default_rng(7), config)
    for field in ("frame_indices", "object_ids", "frames", "masks"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    others = [sample_clip(entry, np.random.default_rng(s), config) for s in range(8, 14)]
    assert any(
        o.frame_indices[0] != a.frame_indices[0] or list(o.object_ids) != list(a.object_ids)
        for o in others
    )


@pytest.mark.parametrize(
    "bad",
    [
        dict(num_frames=0),
        dict(max_num_objects=0),
        dict(hflip_prob=1.5),
        dict(affine_fill=(1, 2)),
        dict(multiplier=0),
        dict(jitter_per_frame=(0.1, -0.1, 0.0)),
        dict(affine_degrees=-1.0),
    ],
)
def test_bad_config_raises(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ClipConfig(**bad)


# ----------------------------------------------------------------------------- augmentations


def test_identity_settings_leave_a_square_clip_unchanged():
    clip = sample_clip(
        synthetic_entry(4, height=32, width=32), np.random.default_rng(0), ClipConfig(num_frames=3)
    )
    out = augment.augment_clip(
        clip, np.random.default_rng(1), ClipConfig(image_size=32, **IDENTITY)
    )
    np.testing.assert_array_equal(out.frames, clip.frames)
    np.testing.assert_array_equal(out.masks, clip.masks)


def test_hflip_flips_frames_and_masks_together():
    clip = sample_clip(
        synthetic_entry(4, height=32, width=32), np.random.default_rng(0), ClipConfig(num_frames=3)
    )
    config = ClipConfig(image_size=32, **{**IDENTITY, "hflip_prob": 1.0})
    out = augment.augment_clip(clip, np.random.default_rng(0), config)
    np.testing.assert_array_equal(out.frames, clip.frames[:, :, ::-1])
    np.testing.assert_array_equal(out.masks, clip.masks[..., ::-1])
    half = ClipConfig(image_size=32, **{**IDENTITY, "hflip_prob": 0.5})
    flipped = []
    for seed in range(12):
        out = augment.augment_clip(clip, np.random.default_rng(seed), half)
        is_flipped = np.array_equal(out.frames, clip.frames[:, :, ::-1])
        assert is_flipped or np.array_equal(out.frames, clip.frames)  # all frames or none
        np.testing.assert_array_equal(
            out.masks, clip.masks[..., ::-1] if is_flipped else clip.masks
        )
        flipped.append(is_flipped)
    assert any(flipped) and not all(flipped)


@pytest.mark.parametrize("shape", [(24, 40), (37, 29), (48, 48)])
def test_affine_masks_match_torchvision_tensor_affine(shape):
    rng = np.random.default_rng(shape[0])
    video = synthetic_video(shape[0], 1, shape[0], shape[1], 3)
    masks = np.concatenate(
        [rng.random((2,) + shape) < 0.5, np.stack([video.labels[0] == k for k in (1, 2, 3)])]
    )
    params = [(25.0, 20.0), (-25.0, -20.0), (0.0, 0.0), (90.0, 0.0)]
    params += [(float(rng.uniform(-25, 25)), float(rng.uniform(-20, 20))) for _ in range(6)]
    for angle, shear in params:
        expected = np.stack([_tv_affine_mask(m, angle, shear) for m in masks])
        np.testing.assert_array_equal(augment.affine_masks(masks, angle, shear), expected)


def test_affine_images_match_torchvision_pil_affine():
    frames = synthetic_video(8, 2, 30, 44, 3).frames
    for angle, shear in [(17.5, -12.0), (-25.0, 20.0)]:
        ours = np_frames(augment.affine_images(pil_frames(frames), angle, shear, FILL))
        for frame, out in zip(frames, ours):
            # F.affine on PIL: centre (w / 2, h / 2), then F_pil.affine = Image.transform.
            matrix = _tv_inverse_affine_matrix([22.0, 15.0], angle, [0, 0], 1.0, [shear, 0.0])
            expected = Image.fromarray(frame).transform(
                (44, 30), Image.AFFINE, matrix, Image.BILINEAR, fillcolor=FILL
            )
            np.testing.assert_array_equal(out, np.asarray(expected))
        assert (ours == np.array(FILL, np.uint8)).all(axis=-1).any()  # fill outside the image


def test_affine_rotation_by_90_degrees_is_the_same_exact_rotation_of_frames_and_masks():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = rng.random((2, 16, 16)) < 0.5
    rotated_mask = augment.affine_masks(mask, 90.0, 0.0)
    k = 1 if np.array_equal(rotated_mask, np.rot90(mask, 1, axes=(1, 2))) else -1
    np.testing.assert_array_equal(rotated_mask, np.rot90(mask, k, axes=(1, 2)))
    rotated = np_frames(augment.affine_images([Image.fromarray(frame)], 90.0, 0.0, FILL))[0]
    diff = np.abs(rotated.astype(int) - np.rot90(frame, k))
    assert diff.max() <= ROT90_IMAGE_TOL


def test_affine_keeps_masks_aligned_with_frames():
    config = ClipConfig(image_size=48, **{**IDENTITY, "affine_degrees": 25.0, "affine_shear": 20.0})
    transformed = 0
    for seed in range(6):
        clip = colour_clip(seed, 48)
        out = augment.augment_clip(clip, np.random.default_rng(seed), config)
        if np.array_equal(out.frames, clip.frames):
            continue
        transformed += 1
        is_fill = (out.frames == np.array(FILL, np.uint8)).all(axis=-1)
        assert is_fill.any() and not out.masks.any(axis=1)[is_fill].any()
        for o, k in enumerate(clip.object_ids):
            exact = (out.frames == PALETTE[k]).all(axis=-1)
            mask = out.masks[:, o]
            # A pixel of exactly the object's colour has all its bilinear weight on the object,
            # so its nearest source pixel, the one the mask takes, is the object's.
            assert not (exact & ~mask).any()
            # A mask pixel's nearest source has the largest bilinear weight, >= 1/4.
            assert (out.frames[..., k - 1][mask] >= 255 // 4 - 1).all()
            assert exact.any()
    assert transformed >= 4


def test_affine_is_skipped_when_an_object_leaves_frame_0():
    frames = synthetic_video(2, 2, 24, 24, 2).frames
    masks = np.zeros((2, 2, 24, 24), bool)
    masks[:, 0, 8:16, 8:16] = True
    masks[0, 1, 0, 0] = True  # a corner pixel: any 20 degree rotation moves it out
    images, out = augment.random_affine(pil_frames(frames), masks, 20.0, 0.0, FILL)
    np.testing.assert_array_equal(np_frames(images), frames)
    np.testing.assert_array_equal(out, masks)
    # Only frame 0 is checked (as the official): a corner object on frame 1 does not stop it.
    masks[0, 1, 0, 0], masks[0, 1, 10:14, 10:14], masks[1, 1, 0, 0] = False, True, True
    images, out = augment.random_affine(pil_frames(frames), masks, 20.0, 0.0, FILL)
    assert not np.array_equal(np_frames(images), frames)
    assert not out[1, 1].any()
    np.testing.assert_array_equal(out, augment.affine_masks(masks, 20.0, 0.0))


@pytest.mark.parametrize(
    "shape,size",
    [((128, 96), 64), ((48, 80), 64), ((37, 23), 64), ((200, 150), 48), ((32, 32), 32)],
)
def test_resize_masks_match_torchvision_tensor_resize(shape, size):
    rng = np.random.default_rng(size + shape[0])
    video = synthetic_video(shape[1], 1, shape[0], shape[1], 3)
    masks = np.concatenate(
        [rng.random((3,) + shape) < 0.5, np.stack([video.labels[0] == k for k in (1, 2, 3)])]
    )
    ours = augment.resize_masks(masks, size)
    for m, out in zip(masks, ours):
        expected, values = _tv_resize_mask(m, size)
        np.testing.assert_array_equal(out, expected)
    if shape == (128, 96):  # 2:1 in height: weights 1/8, 3/8, 3/8, 1/8 give exact 0.5 ties
        assert (values == 0.5).any()


def test_resize_gives_square_frames_and_masks():
    clip = sample_clip(
        synthetic_entry(6, height=40, width=56), np.random.default_rng(0), ClipConfig(num_frames=3)
    )
    out = augment.augment_clip(
        clip, np.random.default_rng(0), ClipConfig(image_size=64, **IDENTITY)
    )
    assert out.frames.shape == (3, 64, 64, 3) and out.frames.dtype == np.uint8
    assert out.masks.shape == (3, clip.masks.shape[1], 64, 64) and out.masks.dtype == bool
    # F.resize on PIL = Image.resize((S, S), BILINEAR); masks as the torchvision tensor path.
    expected = [
        np.asarray(Image.fromarray(f).resize((64, 64), Image.BILINEAR)) for f in clip.frames
    ]
    np.testing.assert_array_equal(out.frames, np.stack(expected))
    for t in range(3):
        for o in range(clip.masks.shape[1]):
            np.testing.assert_array_equal(out.masks[t, o], _tv_resize_mask(clip.masks[t, o], 64)[0])


def test_colour_jitter_draws_and_bounds():
    rng = np.random.default_rng(0)
    draws = [augment.draw_jitter(rng, (0.1, 0.03, 0.05)) for _ in range(300)]
    for params in draws:
        assert sorted(params.order) == [0, 1, 2, 3]
    for name, s in (("brightness", 0.1), ("contrast", 0.03), ("saturation", 0.05)):
        values = np.array([getattr(p, name) for p in draws])
        assert values.min() >= 1 - s and values.max() <= 1 + s
        assert values.min() < 1 - 0.9 * s and values.max() > 1 + 0.9 * s
    assert len({p.order for p in draws}) == 24

    grey = Clip(
        "grey",
        np.arange(4),
        np.array([1]),
        np.full((4, 16, 16, 3), 100, np.uint8),
        np.ones((4, 1, 16, 16), bool),
    )
    consistent = ClipConfig(image_size=16, **{**IDENTITY, "jitter_consistent": (0.1, 0.0, 0.0)})
    per_frame = ClipConfig(image_size=16, **{**IDENTITY, "jitter_per_frame": (0.1, 0.0, 0.0)})
    for seed in range(5):
        # Brightness f scales grey 100 to ~100 f, f in [0.9, 1.1] (PIL rounds to an integer).
        out = augment.augment_clip(grey, np.random.default_rng(seed), consistent).frames
        assert np.unique(out).size == 1 and 90 <= out[0, 0, 0, 0] <= 110
        out = augment.augment_clip(grey, np.random.default_rng(seed), per_frame).frames
        assert ((out >= 90) & (out <= 110)).all()
        assert len({int(f[0, 0, 0]) for f in out}) > 1  # drawn per frame
    # Contrast and saturation leave a uniform grey image as it is.
    no_brightness = ClipConfig(
        image_size=16,
        **{
            **IDENTITY,
            "jitter_consistent": (0.0, 0.03, 0.03),
            "jitter_per_frame": (0.0, 0.05, 0.05),
        },
    )
    out = augment.augment_clip(grey, np.random.default_rng(0), no_brightness)
    np.testing.assert_array_equal(out.frames, grey.frames)


def test_random_grayscale_is_consistent_across_frames():
    clip = sample_clip(
        synthetic_entry(7, height=24, width=24), np.random.default_rng(0), ClipConfig(num_frames=3)
    )
    out = augment.augment_clip(
        clip,
        np.random.default_rng(0),
        ClipConfig(image_size=24, **{**IDENTITY, "grayscale_prob": 1.0}),
    )
    assert (out.frames == out.frames[..., :1]).all()
    # PIL "L": ITU-R 601-2 luma, rounded.
    luma = clip.frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out.frames[..., 0] - luma).max() <= 1.0
    half = ClipConfig(image_size=24, **{**IDENTITY, "grayscale_prob": 0.5})
    grey = []
    for seed in range(10):
        frames = augment.augment_clip(clip, np.random.default_rng(seed), half).frames
        per_frame = [(f == f[..., :1]).all() for f in frames]
        assert len(set(per_frame)) == 1  # all frames or none
        grey.append(per_frame[0])
    assert any(grey) and not all(grey)


def test_full_augmentation_keeps_masks_aligned_and_is_deterministic():
    config = ClipConfig(
        image_size=40,
        **{**IDENTITY, "hflip_prob": 0.5, "affine_degrees": 25.0, "affine_shear": 20.0},
    )
    for seed in range(4):
        clip = colour_clip(seed + 10, 56)
        out = augment.augment_clip(clip, np.random.default_rng(seed), config)
        again = augment.augment_clip(clip, np.random.default_rng(seed), config)
        np.testing.assert_array_equal(out.frames, again.frames)
        np.testing.assert_array_equal(out.masks, again.masks)
        assert out.frames.shape == (3, 40, 40, 3) and out.masks.shape == (3, 3, 40, 40)
        for o, k in enumerate(clip.object_ids):
            exact = (out.frames == PALETTE[k]).all(axis=-1)
            assert exact.any() and not (exact & ~out.masks[:, o]).any()
    # All transforms on (default strengths): still deterministic given the generator.
    clip = colour_clip(1, 48)
    a = augment.augment_clip(clip, np.random.default_rng(3), ClipConfig(image_size=32))
    b = augment.augment_clip(clip, np.random.default_rng(3), ClipConfig(image_size=32))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
