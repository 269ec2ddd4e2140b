"""Video input: frame loading and normalisation (<- sam2/utils/misc.py), synthetic videos."""

from sam2_jax.data.frames import VideoFrames, load_video_frames
from sam2_jax.data.synthetic import SyntheticVideo, synthetic_video, write_davis_dataset

__all__ = [
    "SyntheticVideo",
    "VideoFrames",
    "load_video_frames",
    "synthetic_video",
    "write_davis_dataset",
]
