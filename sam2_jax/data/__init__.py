"""Video input: frame loading and normalisation (<- sam2/utils/misc.py)."""

from sam2_jax.data.frames import VideoFrames, load_video_frames

__all__ = ["VideoFrames", "load_video_frames"]
