"""Training data pipeline in grain (<- training/dataset/vos_dataset.py: VOSDataset._get_datapoint;
training/dataset/utils.py: RepeatFactorWrapper; training/dataset/sam2_datasets.py:
TorchTrainMixedDataset with DistributedSampler(shuffle=True) and drop_last batches;
training/utils/data_utils.py: collate_fn).

Order of records: an infinite stream of epochs; epoch e holds every video `config.multiplier`
times (RepeatFactorWrapper with a whole repeat factor) in a random order (grain's index
shuffle with seed `seed + e`). Stream position p goes to host `p % shard_count` (the
DistributedSampler split, without its padding: the stream never ends). Each record draws from
`np.random.default_rng([seed, p])`, so an example depends on (seed, p) only: not on the
sharding, the batch size, threads or restarts.

Per record (`load_example`): `sample_clip` on the scheduled video; a video that gives no clip is
replaced by a uniformly random one (VOSDataset's retry), up to `config.max_video_retries`
videos; then `augment_clip`, and objects padded to `config.max_num_objects`.

Batches (`make_train_dataset`): {"images": [B, T, S, S, 3] uint8, "masks": [B, T, O, S, S]
bool, "object_valid": [B, O] bool} with O = max_num_objects (padded objects have all-zero masks
and object_valid False). The official collate_fn instead flattens the objects of all clips into
one axis (BatchedVideoDatapoint); `object_valid` carries the same information with static
shapes. Images are not normalised (the official NormalizeAPI happens at the model input).

The iterator is grain's: `state = it.get_state()`, and `it.set_state(state)` on a fresh iterator
of the same dataset replays the same following batches. Worker processes are optional:
`make_train_dataset(...).mp_prefetch(grain.MultiprocessingOptions(num_workers=k))` gives the
same batches and states (grain reads absl flags there: run under absl.app.run, or call
`absl.flags.FLAGS.mark_as_parsed()` first).
"""

import dataclasses

import grain
import numpy as np

from sam2_jax.data.augment import augment_clip
from sam2_jax.data.clips import ClipConfig, VideoSource, sample_clip

MAX_SEED = 2**32  # grain's shuffle seeds are uint32


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class _Position:
    """(stream position, video index) for grain's map_with_index (picklable)."""

    num_videos: int

    def __call__(self, position: int, slot: int) -> tuple[int, int]:
        return position, slot % self.num_videos


def video_schedule(num_videos: int, multiplier: int, seed: int) -> grain.MapDataset:
    """Infinite MapDataset of (stream position, video index) records: epoch e (positions
    [e L, (e + 1) L), L = num_videos * multiplier) holds each video `multiplier` times, in the
    order of grain's index shuffle with seed `seed + e`."""
    _check(num_videos >= 1, "the video source is empty")
    _check(multiplier >= 1, f"multiplier must be >= 1, got {multiplier}")
    _check(0 <= seed < MAX_SEED, f"seed must be in [0, 2**32), got {seed}")
    slots = grain.MapDataset.range(num_videos * multiplier)
    return slots.shuffle(seed=seed).repeat().map_with_index(_Position(num_videos))


def pad_objects(clip_masks: np.ndarray, max_num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks [T, O, S, S] bool -> ([T, max_num_objects, S, S] bool zero-padded, valid
    [max_num_objects] bool)."""
    num_frames, count = clip_masks.shape[:2]
    _check(count <= max_num_objects, f"{count} objects > max_num_objects={max_num_objects}")
    masks = np.zeros((num_frames, max_num_objects) + clip_masks.shape[2:], bool)
    masks[:, :count] = clip_masks
    return masks, np.arange(max_num_objects) < count


def load_example(
    source: VideoSource, config: ClipConfig, seed: int, position: int, video_index: int
) -> dict[str, np.ndarray]:
    """The augmented, padded example at stream `position` (scheduled video `video_index`):
    {"images": [T, S, S, 3] uint8, "masks": [T, O, S, S] bool, "object_valid": [O] bool},
    O = config.max_num_objects. Raises RuntimeError when `config.max_video_retries` videos in
    a row give no clip."""
    rng = np.random.default_rng([seed, position])
    for _ in range(config.max_video_retries):
        clip = sample_clip(source[video_index], rng, config)
        if clip is not None:
            break
        video_index = int(rng.integers(len(source)))
    else:
        raise RuntimeError(
            f"no valid clip (>= {config.num_frames} frames and a visible object) in "
            f"{config.max_video_retries} videos drawn for stream position {position}"
        )
    clip = augment_clip(clip, rng, config)
    masks, valid = pad_objects(clip.masks, config.max_num_objects)
    return {"images": clip.frames, "masks": masks, "object_valid": valid}


@dataclasses.dataclass(frozen=True)
class _ExampleLoader:
    """`load_example` as a picklable grain map over (position, video index) records."""

    source: VideoSource
    config: ClipConfig
    seed: int

    def __call__(self, record: tuple[int, int]) -> dict[str, np.ndarray]:
        position, video_index = record
        return load_example(self.source, self.config, self.seed, position, video_index)


def make_train_dataset(
    source: VideoSource,
    config: ClipConfig,
    seed: int,
    batch_size: int,
    shard_index: int = 0,
    shard_count: int = 1,
    *,
    num_threads: int = 0,
    prefetch_buffer_size: int = 2,
) -> grain.IterDataset:
    """Infinite grain IterDataset of training batches for this host (see the module docstring):
    {"images": [B, T, S, S, 3] uint8, "masks": [B, T, O, S, S] bool, "object_valid": [B, O]
    bool}, B = batch_size, O = config.max_num_objects.

    shard_index / shard_count: this host's share of the stream (e.g. jax.process_index(),
    jax.process_count()); the shards are disjoint and together make the unsharded stream.
    num_threads / prefetch_buffer_size: grain ReadOptions (0 threads: examples are made in the
    iterating thread; the buffer counts batches).
    """
    _check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
    _check(shard_count >= 1, f"shard_count must be >= 1, got {shard_count}")
    _check(
        0 <= shard_index < shard_count,
        f"shard_index must be in [0, {shard_count}), got {shard_index}",
    )
    records = video_schedule(len(source), config.multiplier, seed)[shard_index::shard_count]
    examples = records.map(_ExampleLoader(source, config, seed))
    batches = examples.batch(batch_size, drop_remainder=True)
    return batches.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size)
    )
