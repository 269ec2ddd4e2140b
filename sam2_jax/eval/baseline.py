"""The copy-first-frame baseline: every object keeps its prompt mask on every later frame.

A model that tracks must beat it on moving objects; `eval.py baseline` writes its predictions in
the benchmark layout so that they are scored exactly as a model's.
"""

import os

import numpy as np

from sam2_jax.eval.formats import Video, write_prediction


def write_copy_first_frame(video: Video, pred_root: str | os.PathLike) -> None:
    """Write, for each frame t, each object's initial mask where t >= its prompt frame (empty
    before it), in the layout of `write_prediction`."""
    initial = video.initial_masks()
    empty = np.zeros((video.height, video.width), bool)
    for t in range(video.num_frames):
        masks = {k: mask if t >= t0 else empty for k, (t0, mask) in initial.items()}
        write_prediction(pred_root, video, t, masks)
