"""Training clip sampling (<- training/dataset/vos_sampler.py: RandomUniformSampler;
training/dataset/vos_dataset.py: VOSDataset.construct with always_target=True).

A clip is a contiguous window of `num_frames` frames of one video, starting at a uniformly random
frame (optionally reversed in time), and up to `max_num_objects` objects chosen at random, in a
random order, among those whose mask is non-empty on the clip's first frame. A start whose first
frame shows no object is redrawn, up to `max_retries` times. An object absent from a frame (no
mask for it there) gets an all-zero mask (`always_target=True`).

`sample_clip` returns None where the official sampler raises: a video shorter than `num_frames`,
or no start with a visible object within `max_retries` draws. The training pipeline
(`sam2_jax.data.pipeline`) then draws another video, as `VOSDataset` does.

Randomness comes from the `np.random.Generator` passed in (the official uses Python's `random`):
the distributions are the official ones, the streams are not.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np


class VideoEntry(Protocol):
    """One training video: frames [H, W, 3] uint8 and per-object masks {id: [H, W] bool} (the
    objects annotated on frame t). Entries that also have the batch readers of
    `sam2_jax.data.sources.VideoEntry` (`load_frames(ts)` -> [L, H, W, 3] uint8,
    `load_masks(ts)` -> [{id: [H, W] bool}] * L) are read through them, one call per clip."""

    name: str
    num_frames: int

    def frame(self, t: int) -> np.ndarray: ...

    def masks(self, t: int) -> Mapping[int, np.ndarray]: ...


class VideoSource(Protocol):
    """A random-access collection of `VideoEntry`s."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> VideoEntry: ...


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """Clip sampling and augmentation settings; defaults are those of
    sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml.

    num_frames, max_num_objects, reverse_time_prob: RandomUniformSampler.
    max_stride: clip frames are `stride` video frames apart, stride uniform in 1..max_stride
    (capped by the video's length; not in the official sampler, whose clips are consecutive
    frames: 1 draws nothing and keeps its random stream).
    max_retries: RandomUniformSampler.MAX_RETRIES (start frames with no visible object).
    max_video_retries: VOSDataset.MAX_RETRIES (videos that give no clip).
    multiplier: the dataset repeat factor (RepeatFactorWrapper; whole numbers only).
    image_size: RandomResizeAPI(sizes=image_size, square=True).
    hflip_prob: RandomHorizontalFlip(p). affine_degrees, affine_shear, affine_fill:
    RandomAffine(degrees, shear, image_mean) with bilinear image interpolation.
    jitter_consistent, jitter_per_frame: (brightness, contrast, saturation) strengths of the
    consistent and the per-frame ColorJitter (hue None). grayscale_prob: RandomGrayscale(p).
    """

    num_frames: int = 8
    max_num_objects: int = 3
    image_size: int = 1024
    reverse_time_prob: float = 0.0
    max_stride: int = 1
    hflip_prob: float = 0.5
    affine_degrees: float = 25.0
    affine_shear: float = 20.0
    affine_fill: tuple[int, int, int] = (123, 116, 103)
    jitter_consistent: tuple[float, float, float] = (0.1, 0.03, 0.03)
    jitter_per_frame: tuple[float, float, float] = (0.1, 0.05, 0.05)
    grayscale_prob: float = 0.05
    max_retries: int = 1000
    max_video_retries: int = 100
    multiplier: int = 2

    def __post_init__(self):
        for name in ("num_frames", "max_num_objects", "image_size", "max_stride", "max_retries"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"ClipConfig.{name} must be an int >= 1")
        for name in ("max_video_retries", "multiplier"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"ClipConfig.{name} must be an int >= 1")
        for name in ("reverse_time_prob", "hflip_prob", "grayscale_prob"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"ClipConfig.{name} must be in [0, 1], got {value}")
        for name in ("affine_degrees", "affine_shear"):
            value = getattr(self, name)
            _check(0.0 <= value < 90.0, f"ClipConfig.{name} must be in [0, 90), got {value}")
        _check(
            len(self.affine_fill) == 3 and all(0 <= int(v) <= 255 for v in self.affine_fill),
            f"ClipConfig.affine_fill must be 3 values in 0..255, got {self.affine_fill}",
        )
        for name in ("jitter_consistent", "jitter_per_frame"):
            value = getattr(self, name)
            _check(
                len(value) == 3 and all(v >= 0.0 for v in value),
                f"ClipConfig.{name} must be 3 non-negative strengths, got {value}",
            )


@dataclasses.dataclass(frozen=True)
class Clip:
    """A training clip of T frames and O objects.

    frames [T, H, W, 3] uint8 RGB; masks [T, O, H, W] bool (all-zero where the object is absent);
    object_ids [O] int64 (the video's object ids, in the sampled order); frame_indices [T] int64
    (the video frame of each clip frame); name: the video's name.
    """

    name: str
    frame_indices: np.ndarray
    object_ids: np.ndarray
    frames: np.ndarray
    masks: np.ndarray


def _visible_ids(masks: Mapping[int, np.ndarray]) -> list[int]:
    """Sorted ids of the non-empty masks (the official `segment.sum() > 0`)."""
    return sorted(int(i) for i, m in masks.items() if np.any(m))


def _read_frames(entry: VideoEntry, positions: list[int]) -> list[np.ndarray]:
    """Frames of `entry` at `positions` (one batched read when the entry has one)."""
    if hasattr(entry, "load_frames"):
        return list(entry.load_frames(positions))
    return [entry.frame(t) for t in positions]


def _read_masks(entry: VideoEntry, positions: list[int]) -> list[Mapping[int, np.ndarray]]:
    """Mask dicts of `entry` at `positions` (one batched read when the entry has one)."""
    if not positions:
        return []
    if hasattr(entry, "load_masks"):
        return list(entry.load_masks(positions))
    return [entry.masks(t) for t in positions]


def _load_clip(
    entry: VideoEntry,
    frame_indices: np.ndarray,
    object_ids: Sequence[int],
    first_masks: Mapping[int, np.ndarray],
) -> Clip:
    """Frames and [T, O, H, W] masks of `object_ids` on `frame_indices` (`first_masks` are those
    of frame_indices[0], already loaded)."""
    positions = [int(t) for t in frame_indices]
    frames = _read_frames(entry, positions)
    masks = []
    per_frame = [first_masks] + _read_masks(entry, positions[1:])
    for t, frame, on_frame in zip(positions, frames, per_frame):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"video '{entry.name}' frame {t}: expected [H, W, 3] uint8, "
                f"got {frame.shape} {frame.dtype}"
            )
        if frame.shape != np.shape(frames[0]):
            raise ValueError(
                f"video '{entry.name}' frame {t}: size {frame.shape[:2]} differs from frame "
                f"{positions[0]} ({np.shape(frames[0])[:2]})"
            )
        per_object = np.zeros((len(object_ids),) + frame.shape[:2], bool)
        for o, object_id in enumerate(object_ids):
            if object_id not in on_frame:
                continue  # always_target: absent -> zero mask
            mask = np.asarray(on_frame[object_id])
            if mask.shape != frame.shape[:2]:
                raise ValueError(
                    f"video '{entry.name}' frame {t}: mask of object {object_id} has shape "
                    f"{mask.shape}, the frame is {frame.shape[:2]}"
                )
            per_object[o] = mask != 0
        masks.append(per_object)
    return Clip(
        name=str(entry.name),
        frame_indices=np.asarray(positions, np.int64),
        object_ids=np.asarray(object_ids, np.int64),
        frames=np.stack(frames),
        masks=np.stack(masks),
    )


def sample_clip(entry: VideoEntry, rng: np.random.Generator, config: ClipConfig) -> Clip | None:
    """A random clip of `entry` as RandomUniformSampler + VOSDataset.construct, or None when the
    video has fewer than `config.num_frames` frames or no start frame with a visible object was
    drawn in `config.max_retries` tries.

    Draws the stride (only with `max_stride` > 1), then per try: the start (uniform over the
    starts whose T frames fit) and a uniform [0, 1) for the time reversal; then the objects
    (`rng.choice` without replacement, random order).
    Returns frames [T, H, W, 3] uint8, masks [T, O, H, W] bool with 1 <= O <= max_num_objects.
    """
    length = int(entry.num_frames)
    window = config.num_frames
    if length < window:
        return None
    stride = 1
    if config.max_stride > 1:
        longest = min(config.max_stride, (length - 1) // max(window - 1, 1))
        stride = int(rng.integers(1, longest + 1))
    span = (window - 1) * stride + 1
    empty_frames: set[int] = set()  # first frames already seen without a visible object
    for _ in range(config.max_retries):
        start = int(rng.integers(0, length - span + 1))
        frame_indices = np.arange(start, start + span, stride)
        if rng.random() < config.reverse_time_prob:
            frame_indices = frame_indices[::-1]
        first = int(frame_indices[0])
        if first in empty_frames:
            continue
        first_masks = entry.masks(first)
        visible = _visible_ids(first_masks)
        if visible:
            break
        empty_frames.add(first)
    else:
        return None
    count = min(len(visible), config.max_num_objects)
    object_ids = [int(i) for i in rng.choice(visible, size=count, replace=False)]
    return _load_clip(entry, frame_indices, object_ids, first_masks)
