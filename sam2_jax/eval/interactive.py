"""The clicks protocol: interactive video segmentation with simulated clicks.

Round 1 puts one positive click on each object's first annotated frame, at the point of its
mask farthest from the boundary, and propagates. Each later round picks, per object, the scored
frame with the lowest J, adds one click at the centre of the largest error region (positive in a
missed region, negative in a false one; `clicks.error_center_click`, as the official
`sample_one_point_from_error_center`), makes that frame a conditioning frame (the model must be
built with `add_all_frames_to_correct_as_cond=True`) and re-propagates forward from the earliest
clicked frame and backward from the latest. Objects already perfect (J = 1 on every scored frame)
get no click. Each round is scored like the semi-supervised protocol.

Runs one video at a time through `SAM2VideoPredictor` (objects batched), which keeps the
official interactive semantics (stored per-frame memories, previous masks as click context).
"""

from collections.abc import Callable

import numpy as np

from sam2_jax.eval.clicks import error_center_click
from sam2_jax.eval.formats import Video, merge_object_masks, score_predictions
from sam2_jax.eval.metrics import ObjectScores
from sam2_jax.predictors.video import SAM2VideoPredictor

Prediction = dict[int, dict[int, np.ndarray]]  # frame -> {object id: mask [H, W] bool}
Click = tuple[int, tuple[float, float, int]]  # (frame, (x, y, label))


def _object_mask(prediction: Prediction, video: Video, object_id: int, t: int) -> np.ndarray:
    mask = prediction.get(t, {}).get(object_id)
    return np.zeros((video.height, video.width), bool) if mask is None else mask


def _gt_mask(video: Video, object_id: int, t: int) -> np.ndarray:
    if video.format == "sav":
        return video.read_object_mask(object_id, t)
    return video.read_labels(t) == object_id


def score_prediction(video: Video, prediction: Prediction) -> list[ObjectScores]:
    """J and F of an in-memory prediction, with the protocol of the video's format."""
    return score_predictions(
        video,
        lambda t: merge_object_masks(prediction.get(t, {}), video.height, video.width),
        lambda k, t: _object_mask(prediction, video, k, t),
    )


def correction_clicks(
    video: Video, prediction: Prediction, scores: list[ObjectScores]
) -> dict[int, Click]:
    """{object id: (frame, click)} at each imperfect object's frame of lowest J."""
    clicks = {}
    for s in scores:
        if s.j.min() >= 1.0:
            continue
        t = s.frames[int(np.argmin(s.j))]
        pred = _object_mask(prediction, video, s.object_id, t)
        clicks[s.object_id] = (t, error_center_click(_gt_mask(video, s.object_id, t), pred))
    return clicks


def _propagate(
    predictor: SAM2VideoPredictor,
    state: dict,
    prediction: Prediction,
    start: int,
    reverse: bool,
    score_thresh: float,
    on_frame: Callable[[], None],
) -> None:
    for t, obj_ids, logits in predictor.propagate_in_video(state, start, reverse=reverse):
        prediction[t] = {k: logits[i, 0] > score_thresh for i, k in enumerate(obj_ids)}
        on_frame()


def click_rounds(
    predictor: SAM2VideoPredictor,
    video: Video,
    rounds: int,
    score_thresh: float = 0.0,
    on_frame: Callable[[], None] = lambda: None,
) -> tuple[Prediction, list[list[ObjectScores]]]:
    """Run `rounds` rounds on `video`; return the final prediction and the scores per round."""
    if rounds < 1:
        raise ValueError(f"the clicks protocol needs rounds >= 1, got {rounds}")
    if not predictor.add_all_frames_to_correct_as_cond:
        raise ValueError("the clicks protocol needs add_all_frames_to_correct_as_cond=True")
    state = predictor.init_state(str(video.frames_dir))
    prediction: Prediction = {}
    history: list[list[ObjectScores]] = []
    clicks = {k: (t, error_center_click(m)) for k, (t, m) in video.initial_masks().items()}
    for round_index in range(rounds):
        for object_id, (t, (x, y, label)) in sorted(clicks.items()):
            predictor.add_new_points_or_box(
                state, t, object_id, points=[[x, y]], labels=[label], clear_old_points=False
            )
        if clicks:
            frames = [t for t, _ in clicks.values()]
            _propagate(predictor, state, prediction, min(frames), False, score_thresh, on_frame)
            if max(frames) > 0:
                _propagate(predictor, state, prediction, max(frames), True, score_thresh, on_frame)
        history.append(score_prediction(video, prediction))
        if round_index + 1 < rounds:
            clicks = correction_clicks(video, prediction, history[-1])
    return prediction, history
