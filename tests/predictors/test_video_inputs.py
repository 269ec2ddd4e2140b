"""SAM2VideoPredictor inputs: JPEG folder, in-memory array, mp4; and clear errors."""

import numpy as np
import pytest
from PIL import Image
from video_scenarios import copy_frames, make_mp4

from sam2_jax.predictors.video import build_sam2_video_predictor

SIZE = 128


@pytest.fixture(scope="module")
def predictor():
    return build_sam2_video_predictor("sam2.1_hiera_t", None, [f"image_size={SIZE}"], seed=2)


def _track(predictor, video):
    state = predictor.init_state(video)
    predictor.add_new_points_or_box(state, 0, 1, points=[[210, 350]], labels=[1])
    return state, [m for _, _, m in predictor.propagate_in_video(state)]


def test_array_and_mp4_inputs(tmp_path, predictor):
    folder = copy_frames(4, tmp_path / "frames")
    _, from_folder = _track(predictor, folder)
    frames = np.stack(
        [
            np.asarray(Image.open(p).convert("RGB"))
            for p in sorted((tmp_path / "frames").glob("*.jpg"))
        ]
    )
    _, from_array = _track(predictor, frames)
    for a, b in zip(from_folder, from_array):
        np.testing.assert_array_equal(a, b)
    state, from_mp4 = _track(predictor, make_mp4(folder, tmp_path / "v.mp4"))
    assert state["num_frames"] == 4 and (state["video_height"], state["video_width"]) == (540, 960)
    assert [m.shape for m in from_mp4] == [(1, 1, 540, 960)] * 4
    # Lossy video: the masks still agree on almost every pixel with the JPEG run.
    agree = min(float(np.mean((a > 0) == (b > 0))) for a, b in zip(from_mp4, from_folder))
    assert agree > 0.95


def test_bad_inputs(tmp_path, predictor):
    state = predictor.init_state(copy_frames(3, tmp_path / "frames"))
    with pytest.raises(RuntimeError, match="No input points or masks"):
        list(predictor.propagate_in_video(state))
    with pytest.raises(ValueError, match="frame_idx 3 is out of range"):
        predictor.add_new_points_or_box(state, 3, 1, points=[[1, 1]], labels=[1])
    with pytest.raises(ValueError, match="points and labels must be provided together"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 1]])
    with pytest.raises(ValueError, match="at least one of points or box"):
        predictor.add_new_points_or_box(state, 0, 1)
    with pytest.raises(ValueError, match="box must be"):
        predictor.add_new_points_or_box(state, 0, 1, box=[1, 2, 3])
    with pytest.raises(ValueError, match=r"labels must be \[N\]"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 1], [2, 2]], labels=[1])
    with pytest.raises(ValueError, match="mask must be a non-empty 2-D"):
        predictor.add_new_mask(state, 0, 1, np.zeros((2, 5, 5), bool))
    with pytest.raises(RuntimeError, match="Cannot remove object id 9"):
        predictor.remove_object(state, 9, strict=True)
    assert predictor.remove_object(state, 9) == ([], [])
    with pytest.raises(ValueError, match="max_frame_num_to_track"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 1]], labels=[1])
        list(predictor.propagate_in_video(state, max_frame_num_to_track=-1))


def test_conditioning_capacity_is_enforced(tmp_path):
    pred = build_sam2_video_predictor(
        "sam2.1_hiera_t", None, [f"image_size={SIZE}", "tracking.max_cond_frames=2"]
    )
    state = pred.init_state(copy_frames(3, tmp_path / "frames"))
    for f in range(3):
        pred.add_new_points_or_box(state, f, 1, points=[[100, 100]], labels=[1])
    with pytest.raises(ValueError, match="tracking.max_cond_frames=2"):
        list(pred.propagate_in_video(state))


def test_unreadable_videos(tmp_path, predictor):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        predictor.init_state(str(empty))
    with pytest.raises(FileNotFoundError):
        predictor.init_state(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    copy_frames(3, bad)
    (bad / "00001.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="00001.jpg"):
        state = predictor.init_state(str(bad))
        predictor.add_new_points_or_box(state, 1, 1, points=[[10, 10]], labels=[1])
