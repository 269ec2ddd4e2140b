"""The scenario harness (tests/video_scenarios.py) driving the official SAM2VideoPredictor
(<- sam2/sam2_video_predictor.py) with random weights: record layout, finiteness, non-trivial
masks, determinism, the bf16-storage patch, and the official behaviours the replay must mirror.

torch runs on one thread here (see `video_scenarios.torch_num_threads`). The demo runs at 256 px
on 12 frames; the other scenarios at 128 px on 6 frames, which is enough for what they check.
"""

import numpy as np
import pytest
import video_scenarios as vs

NO_OBJ_SCORE = -1024.0  # sam2_base.NO_OBJ_SCORE: the logits of an absent object
H, W = vs.BEDROOM_HEIGHT, vs.BEDROOM_WIDTH
DEMO_FRAMES, SMALL_FRAMES = 12, 6
DEMO_SIZE, SMALL_SIZE = 256, 128
# Random-weight masks are ~70% foreground, a box prompt's up to 99.3% (sam2_hiera_t): require
# each sign on at least 0.1% of the pixels.
MIN_SIGN_FRACTION = 1e-3

# (step, kind, frames, obj_ids) per scenario step, as the official predictor yields them.
DEMO_LAYOUT = [
    (0, "points", [0], (1,)),
    (1, "points", [0], (1, 2)),
    (2, "mask", [6], (1, 2, 3)),
    (3, "propagate", list(range(12)), (1, 2, 3)),
    (4, "points", [9], (1, 2, 3)),
    (5, "points", [9], (1, 2, 3)),
    (6, "propagate", [9, 10, 11], (1, 2, 3)),
    (7, "propagate", list(range(9, -1, -1)), (1, 2, 3)),
]
LATE_LAYOUT = [
    (0, "points", [0], (1,)),
    (1, "propagate", [0, 1, 2], (1,)),
    (2, "points", [4], (1, 2)),
    (3, "propagate", list(range(6)), (1, 2)),
]
DISAPPEARING_LAYOUT = [
    (0, "mask", [0], (1,)),
    (1, "points", [0], (1, 2)),
    (2, "mask", [3], (1, 2)),
    (3, "propagate", list(range(6)), (1, 2)),
]
EDITING_LAYOUT = [
    (0, "points", [0], (1,)),
    (1, "points", [0], (1, 2)),
    (2, "propagate", [0, 1, 2], (1, 2)),
    (3, "points", [1], (1, 2)),
    (4, "clear_frame", [1], (1, 2)),
    (5, "clear_frame", [0], (1, 2)),
    (6, "points", [0], (1, 2)),
    (7, "remove", [0], (2,)),
    (8, "propagate", [0, 1, 2, 3], (2,)),
    (10, "points", [2], (5,)),
    (11, "propagate", [2, 3, 4, 5], (5,)),
]


def _layout(records):
    return [(r.step, r.kind, r.frame_idx, r.obj_ids) for r in records]


def _expand(layout):
    return [(step, kind, f, ids) for step, kind, frames, ids in layout for f in frames]


def _by_step(records, step):
    return {r.frame_idx: r for r in records if r.step == step}


def _assert_identical(records, reference):
    assert _layout(records) == _layout(reference)
    for r, ref in zip(records, reference):
        assert np.array_equal(r.logits, ref.logits), f"record {_layout([r])} differs"


def _assert_well_formed(records, layout):
    assert _layout(records) == _expand(layout)
    for r in records:
        assert r.logits.dtype == np.float32 and r.logits.shape == (len(r.obj_ids), 1, H, W)
        assert np.isfinite(r.logits).all(), f"non-finite logits in {_layout([r])}"


def _assert_both_signs(logits, name):
    fg = float(np.mean(logits > 0))
    bg = float(np.mean(logits < 0))
    assert min(fg, bg) >= MIN_SIGN_FRACTION, f"{name}: foreground {fg:.4f}, background {bg:.4f}"


def _is_absent(logits):
    return bool((logits == NO_OBJ_SCORE).all())


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with vs.torch_num_threads(1):
        yield


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    return vs.copy_frames(DEMO_FRAMES, tmp_path_factory.mktemp("bedroom12"))


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    return vs.copy_frames(SMALL_FRAMES, tmp_path_factory.mktemp("bedroom6"))


def _official(name, size, postprocessing=False, bias=4.0):
    return vs.patch_bf16_memory_storage(
        vs.build_official_video_predictor(
            name, size, seed=0, apply_postprocessing=postprocessing, object_score_bias=bias
        )
    )


@pytest.fixture(scope="module")
def demo_runs(demo_video):
    """(name, apply_postprocessing) -> (predictor, demo records), each run once per module."""
    runs = {}

    def run(name, postprocessing):
        if (name, postprocessing) not in runs:
            predictor = _official(name, DEMO_SIZE, postprocessing)
            records = vs.run_scenario(predictor, demo_video, vs.demo_scenario(H, W))
            runs[name, postprocessing] = predictor, records
        return runs[name, postprocessing]

    return run


@pytest.mark.parametrize(
    "name,postprocessing",
    [
        ("sam2.1_hiera_t", False),
        ("sam2_hiera_t", False),
        ("sam2.1_hiera_t", True),
    ],
)
def test_demo_scenario_records(name, postprocessing, demo_runs):
    _, records = demo_runs(name, postprocessing)
    _assert_well_formed(records, DEMO_LAYOUT)
    steps = vs.demo_scenario(H, W)
    for r in records:
        if r.kind == "propagate":  # every object is tracked (or prompted) on every frame
            for obj_id, logits in zip(r.obj_ids, r.logits):
                _assert_both_signs(logits, f"{name} step {r.step} f{r.frame_idx} {obj_id}")
        else:  # the prompted object on its frame
            prompted = r.obj_ids.index(steps[r.step].obj_id)
            _assert_both_signs(r.logits[prompted], f"{name} step {r.step}")
    mask_record = _by_step(records, 2)[6]  # objects 1, 2 have no output on frame 6 yet
    assert _is_absent(mask_record.logits[0]) and _is_absent(mask_record.logits[1])

    first, again, reverse = _by_step(records, 3), _by_step(records, 6), _by_step(records, 7)
    assert not np.array_equal(_by_step(records, 5)[9].logits[0], first[9].logits[0])
    for f in (9, 10, 11):  # the frame-9 correction is stored non-conditioning: recomputed away
        assert np.array_equal(again[f].logits, first[f].logits)
    assert np.array_equal(reverse[0].logits[:2], first[0].logits[:2])  # prompted frames reused
    assert np.array_equal(reverse[6].logits[2], first[6].logits[2])
    assert not np.array_equal(reverse[3].logits, first[3].logits)  # re-tracked in reverse


def test_demo_postprocessing_changes_outputs(demo_runs):
    """apply_postprocessing=True: a single click (multimask, no memory yet) is unchanged; the box
    (2 points: single mask, dynamic multimask fallback) and every tracked frame (binarised
    prompt memories) differ."""
    _, plain = demo_runs("sam2.1_hiera_t", False)
    _, post = demo_runs("sam2.1_hiera_t", True)
    assert np.array_equal(post[0].logits, plain[0].logits)
    assert not np.array_equal(post[1].logits[1], plain[1].logits[1])
    post_tracked, plain_tracked = _by_step(post, 3), _by_step(plain, 3)
    assert all(
        not np.array_equal(post_tracked[f].logits, plain_tracked[f].logits)
        for f in range(1, DEMO_FRAMES)
    )


def test_demo_scenario_is_deterministic(demo_video, demo_runs):
    """A second session on the same predictor object: identical records, bit for bit."""
    predictor, records = demo_runs("sam2.1_hiera_t", False)
    _assert_identical(vs.run_scenario(predictor, demo_video, vs.demo_scenario(H, W)), records)


def test_bf16_patch_keeps_official_values(demo_video, small_video):
    """Where the unpatched official build runs, the patch changes no bit: the demo with the
    mask on frame 0 (nothing tracked before its prompt), and the editing scenario."""
    demo = [vs.Mask(0, 3, s.mask) if isinstance(s, vs.Mask) else s for s in vs.demo_scenario(H, W)]
    for video, steps in ((demo_video, demo), (small_video, vs.editing_scenario(H, W))):
        predictor = vs.build_official_video_predictor("sam2.1_hiera_t", SMALL_SIZE, 0, False)
        unpatched = vs.run_scenario(predictor, video, steps)
        vs.patch_bf16_memory_storage(predictor)
        _assert_identical(vs.run_scenario(predictor, video, steps), unpatched)


def test_bf16_patch_runs_late_object(small_video):
    """Unpatched, tracking an object before its only prompt crashes; patched, it runs."""
    steps = vs.late_object_scenario(H, W)
    unpatched = vs.build_official_video_predictor("sam2.1_hiera_t", SMALL_SIZE, 0, False)
    with pytest.raises(RuntimeError, match="same dtype"):
        vs.run_scenario(unpatched, small_video, steps)
    records = vs.run_scenario(vs.patch_bf16_memory_storage(unpatched), small_video, steps)
    _assert_well_formed(records, LATE_LAYOUT)
    added = _by_step(records, 2)[4]
    assert _is_absent(added.logits[0])  # obj 1 was not tracked to frame 4 yet
    _assert_both_signs(added.logits[1], "late object prompt")
    for r in _by_step(records, 3).values():
        for obj_id, logits in zip(r.obj_ids, r.logits):
            _assert_both_signs(logits, f"late scenario f{r.frame_idx} obj {obj_id}")
    assert np.array_equal(_by_step(records, 3)[4].logits[1], added.logits[1])


def test_bf16_patch_rejects_double_patching():
    predictor = _official("sam2.1_hiera_t", SMALL_SIZE)
    with pytest.raises(ValueError, match="already patched"):
        vs.patch_bf16_memory_storage(predictor)


@pytest.mark.parametrize("name", ["sam2.1_hiera_t", "sam2_hiera_t"])
def test_disappearing_object_scenario(name, small_video):
    predictor = _official(name, SMALL_SIZE, bias=vs.DISAPPEARING_OBJECT_SCORE_BIAS)
    records = vs.run_scenario(predictor, small_video, vs.disappearing_object_scenario(H, W))
    _assert_well_formed(records, DISAPPEARING_LAYOUT)
    tracked = _by_step(records, 3)
    present = {f for f, r in tracked.items() if not _is_absent(r.logits[0])}
    assert present == {0, 3}, f"obj 1 present on frames {sorted(present)}"
    for f in present:
        _assert_both_signs(tracked[f].logits[0], f"{name} obj 1 frame {f}")
    assert all(_is_absent(r.logits[1]) for r in records if len(r.obj_ids) == 2)


def test_editing_scenario(small_video):
    records = vs.run_scenario(
        _official("sam2.1_hiera_t", SMALL_SIZE), small_video, vs.editing_scenario(H, W)
    )
    _assert_well_formed(records, EDITING_LAYOUT)
    tracked = _by_step(records, 2)
    assert np.array_equal(_by_step(records, 4)[1].logits, tracked[1].logits)  # correction dropped
    assert np.array_equal(_by_step(records, 5)[0].logits, tracked[0].logits)  # output kept
    for r in records:
        for obj_id, logits in zip(r.obj_ids, r.logits):
            _assert_both_signs(logits, f"editing step {r.step} obj {obj_id}")


def test_build_rejects_sizes_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        vs.build_official_video_predictor("sam2.1_hiera_t", 240, 0, False)


def test_scenario_masks_and_coordinates_scale_with_video_size():
    small = vs.demo_scenario(H // 2, W // 2)
    full = vs.demo_scenario(H, W)
    np.testing.assert_allclose(small[0].points * 2, full[0].points)
    np.testing.assert_allclose(small[1].box * 2, full[1].box)
    assert small[2].mask.shape == (H // 2, W // 2) and small[2].mask.dtype == bool
    assert abs(small[2].mask.mean() - full[2].mask.mean()) < 1e-3


def test_make_mp4(tmp_path):
    import av

    frames = vs.copy_frames(3, tmp_path / "frames")
    path = vs.make_mp4(frames, tmp_path / "bedroom.mp4")
    with av.open(path) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 3 and decoded[0].shape == (H, W, 3)
