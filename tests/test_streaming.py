"""The scanned streaming tracker: same results as the frame-by-frame predictor, one compiled
program for every video length, clear errors."""

import numpy as np
import pytest
from video_scenarios import BEDROOM_HEIGHT, BEDROOM_WIDTH, copy_frames, ellipse_mask

from sam2_jax.data.frames import load_video_frames
from sam2_jax.predictors.video import build_sam2_video_predictor
from sam2_jax.streaming import default_mesh, sharded_track_chunk, track_video

SIZE = 128
TOL = 1e-4  # same math; prompted-frame memory comes from a different XLA program (fusion order)


@pytest.fixture(scope="module")
def predictor():
    return build_sam2_video_predictor(
        "sam2.1_hiera_t", None, [f"image_size={SIZE}"], apply_postprocessing=False, seed=1
    )


def _masks():
    h, w = BEDROOM_HEIGHT, BEDROOM_WIDTH
    return [
        ellipse_mask(h, w, (225.0, 270.0), (75.0, 140.0)),
        ellipse_mask(h, w, (598.0, 355.0), (75.0, 58.0)),
    ]


def test_streaming_equals_predictor_and_compiles_once(tmp_path, predictor):
    video = copy_frames(11, tmp_path / "v")
    m1, m2 = _masks()
    state = predictor.init_state(video)
    predictor.add_new_mask(state, 0, 10, m1)
    predictor.add_new_mask(state, 0, 20, m2)
    by_frame = {f: m for f, _, m in predictor.propagate_in_video(state)}
    stored = state["output_dict_per_obj"]

    frames = load_video_frames(video, SIZE)
    track_chunk = sharded_track_chunk(predictor.model.module, default_mesh())
    before = track_chunk._cache_size()
    seen = []
    for f, low_res, _ in track_video(predictor.model, frames, {0: {0: m1, 1: m2}}, 2):
        seen.append(f)
        for o in range(2):
            key = "cond_frame_outputs" if f == 0 else "non_cond_frame_outputs"
            ref = stored[o][key][f]["pred_masks"][0, 0]
            err = float(np.abs(low_res[o] - ref).max())
            assert err <= TOL, f"frame {f} object {o}: {err:.2e}"
            assert (ref > 0).any() and (ref < 0).any()
    assert seen == list(range(11)) and len(by_frame) == 11
    compiled = track_chunk._cache_size()
    # Another video length (5 frames, 23 frames) reuses the same programs.
    for n in (5, 23):
        frames = load_video_frames(copy_frames(min(n, 12), tmp_path / f"v{n}"), SIZE)
        list(track_video(predictor.model, frames, {0: {0: m1}}, 2))
    assert track_chunk._cache_size() == compiled, "a new video length recompiled the tracker"
    assert compiled - before <= 2  # with and without mask prompts in the chunk


def test_object_is_not_tracked_before_its_first_prompt(tmp_path, predictor):
    """As the official VOS evaluation: frames before an object's first mask get -1024."""
    m1, m2 = _masks()
    frames = load_video_frames(copy_frames(5, tmp_path / "v"), SIZE)
    out = {
        f: low for f, low, _ in track_video(predictor.model, frames, {0: {0: m1}, 2: {1: m2}}, 2)
    }
    assert all((out[f][1] == -1024).all() for f in (0, 1))
    assert all((out[f][1] > -1024).all() for f in (2, 3, 4))
    assert all((out[f][0] > -1024).all() for f in range(5))


def test_reverse_streaming_runs_from_the_last_prompt(tmp_path, predictor):
    video = copy_frames(6, tmp_path / "v")
    m1, _ = _masks()
    out = list(
        track_video(predictor.model, load_video_frames(video, SIZE), {4: {0: m1}}, 1, reverse=True)
    )
    assert [f for f, _, _ in out] == [4, 3, 2, 1, 0]
    assert all(np.isfinite(low).all() for _, low, _ in out)


def test_streaming_errors(tmp_path, predictor):
    frames = load_video_frames(copy_frames(3, tmp_path / "v"), SIZE)
    m1, _ = _masks()
    with pytest.raises(ValueError, match="at least one mask prompt"):
        list(track_video(predictor.model, frames, {}, 1))
    with pytest.raises(ValueError, match="video has 3 frames"):
        list(track_video(predictor.model, frames, {7: {0: m1}}, 1))
    with pytest.raises(ValueError, match="object index"):
        list(track_video(predictor.model, frames, {0: {3: m1}}, 1))
