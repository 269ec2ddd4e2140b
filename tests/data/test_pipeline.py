"""sam2_jax.data.pipeline: the grain training pipeline (schedule, retries, batches,
determinism, checkpointed iterator state, sharding)."""

import itertools

import numpy as np
import pytest
from PIL import Image
from test_clips import IDENTITY, synthetic_entry

from sam2_jax.data.clips import ClipConfig
from sam2_jax.data.pipeline import (
    load_example,
    make_train_dataset,
    pad_objects,
    video_schedule,
)

CONFIG = ClipConfig(num_frames=3, max_num_objects=3, image_size=32)


class ListSource:
    """A video source over a list of entries."""

    def __init__(self, entries):
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        return self.entries[index]


def small_source(num_videos: int = 3, short: tuple[int, ...] = ()) -> ListSource:
    """Synthetic 24x32 videos of 6 frames (2 frames for the indices in `short`)."""
    return ListSource(
        [
            synthetic_entry(
                i, num_frames=2 if i in short else 6, height=24, width=32, num_objects=4
            )
            for i in range(num_videos)
        ]
    )


def take(iterator, count: int) -> list[dict]:
    return list(itertools.islice(iterator, count))


def assert_batches_equal(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_schedule_holds_each_video_multiplier_times_per_epoch():
    schedule = video_schedule(num_videos=5, multiplier=2, seed=3)
    records = [schedule[p] for p in range(30)]
    assert [p for p, _ in records] == list(range(30))
    epochs = [[v for _, v in records[e * 10 : (e + 1) * 10]] for e in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == sorted(list(range(5)) * 2)
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    assert [schedule[p] for p in range(30)] == records  # random access is deterministic


def test_batches_shapes_dtypes_and_padding():
    source = small_source()
    batches = take(iter(make_train_dataset(source, CONFIG, seed=0, batch_size=2)), 3)
    for batch in batches:
        assert batch["images"].shape == (2, 3, 32, 32, 3) and batch["images"].dtype == np.uint8
        assert batch["masks"].shape == (2, 3, 3, 32, 32) and batch["masks"].dtype == bool
        assert batch["object_valid"].shape == (2, 3) and batch["object_valid"].dtype == bool
        valid = batch["object_valid"]
        assert valid[:, 0].all()  # at least one object per clip, valid slots first
        assert (np.diff(valid.astype(int), axis=1) <= 0).all()
        assert not batch["masks"].transpose(0, 2, 1, 3, 4)[~valid].any()  # padding is empty
    counts = np.concatenate([b["object_valid"].sum(axis=1) for b in batches])
    assert counts.max() > 1


def test_pad_objects():
    masks = np.ones((2, 1, 4, 4), bool)
    padded, valid = pad_objects(masks, 3)
    assert padded.shape == (2, 3, 4, 4)
    assert padded[:, 0].all() and not padded[:, 1:].any()
    np.testing.assert_array_equal(valid, [True, False, False])
    with pytest.raises(ValueError, match="max_num_objects"):
        pad_objects(np.ones((2, 4, 4, 4), bool), 3)


def test_same_seed_same_batches_other_seed_differs():
    source = small_source()
    a = take(iter(make_train_dataset(source, CONFIG, seed=5, batch_size=2)), 3)
    b = take(iter(make_train_dataset(source, CONFIG, seed=5, batch_size=2)), 3)
    c = take(iter(make_train_dataset(source, CONFIG, seed=6, batch_size=2)), 3)
    assert_batches_equal(a, b)
    assert not np.array_equal(a[0]["images"], c[0]["images"])


def test_restored_iterator_state_gives_the_same_following_batches():
    source = small_source()
    dataset = make_train_dataset(source, CONFIG, seed=1, batch_size=2)
    iterator = iter(dataset)
    take(iterator, 2)
    state = iterator.get_state()
    # 3 videos x multiplier 2 = 3 batches per epoch: the next 4 cross into the next epochs.
    expected = take(iterator, 4)
    restored = iter(make_train_dataset(source, CONFIG, seed=1, batch_size=2))
    restored.set_state(state)
    assert_batches_equal(take(restored, 4), expected)


def test_threads_do_not_change_the_batches():
    source = small_source()
    serial = take(iter(make_train_dataset(source, CONFIG, seed=2, batch_size=2)), 3)
    threaded = make_train_dataset(source, CONFIG, seed=2, batch_size=2, num_threads=2)
    assert_batches_equal(take(iter(threaded), 3), serial)


def test_shards_are_disjoint_parts_of_the_unsharded_stream():
    source = small_source()
    whole = take(iter(make_train_dataset(source, CONFIG, seed=4, batch_size=1)), 6)
    shards = [
        take(iter(make_train_dataset(source, CONFIG, 4, 1, shard_index=k, shard_count=3)), 2)
        for k in range(3)
    ]
    # Stream position p goes to shard p % 3, as its (p // 3)-th example.
    for position, batch in enumerate(whole):
        assert_batches_equal([shards[position % 3][position // 3]], [batch])
    firsts = [s[0]["images"].tobytes() for s in shards]
    assert len(set(firsts)) == 3


def test_videos_without_a_clip_are_replaced():
    source = small_source(num_videos=4, short=(0, 1, 2))  # only video 3 has >= 3 frames
    config = ClipConfig(num_frames=3, image_size=32, **IDENTITY)
    schedule = video_schedule(len(source), config.multiplier, seed=0)
    short_positions = [p for p in range(8) if schedule[p][1] != 3]
    frames = source[3].frames
    for position in short_positions[:3]:
        example = load_example(source, config, 0, *schedule[position])
        # Identity augmentations: the images are a resized window of video 3.
        resized = np.stack(
            [np.asarray(Image.fromarray(f).resize((32, 32), Image.BILINEAR)) for f in frames]
        )
        assert any(np.array_equal(example["images"], resized[s : s + 3]) for s in range(4))
    batches = take(iter(make_train_dataset(source, CONFIG, seed=0, batch_size=4)), 2)
    assert all(b["object_valid"][:, 0].all() for b in batches)


def test_no_valid_video_raises():
    source = small_source(num_videos=2, short=(0, 1))
    config = ClipConfig(num_frames=3, image_size=32, max_video_retries=5)
    with pytest.raises(RuntimeError, match="no valid clip"):
        load_example(source, config, 0, 0, 0)


def test_bad_arguments_raise():
    source = small_source()
    with pytest.raises(ValueError, match="shard_index"):
        make_train_dataset(source, CONFIG, 0, 2, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="batch_size"):
        make_train_dataset(source, CONFIG, 0, 0)
    with pytest.raises(ValueError, match="seed"):
        make_train_dataset(source, CONFIG, -1, 2)
    with pytest.raises(ValueError, match="empty"):
        make_train_dataset(ListSource([]), CONFIG, 0, 2)
