"""Smoke tests: every example runs on the shared demo data and writes its picture."""

import sys
from pathlib import Path

import numpy as np
from conftest import SHARED_DATA
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import automatic_masks  # noqa: E402
import segment_image  # noqa: E402
import track_video  # noqa: E402

IMAGES = SHARED_DATA / "sam2_demo" / "images"
SMALL = ["image_size=256"]


def _png_shape(path: Path) -> tuple[int, ...]:
    return np.asarray(Image.open(path)).shape


def test_segment_image_default_and_real_image(tmp_path):
    assert segment_image.main(["--out", str(tmp_path / "a.png"), *SMALL]) == 0
    assert _png_shape(tmp_path / "a.png") == (360, 480, 3)
    args = [
        "--image",
        str(IMAGES / "truck.jpg"),
        "--point",
        "500",
        "375",
        "--box",
        "75",
        "275",
        "1725",
        "850",
        "--out",
        str(tmp_path / "b.png"),
        *SMALL,
    ]
    assert segment_image.main(args) == 0
    assert _png_shape(tmp_path / "b.png") == (1200, 1800, 3)


def test_automatic_masks(tmp_path):
    args = [
        "--image",
        str(IMAGES / "groceries.jpg"),
        "--points-per-side",
        "4",
        "--out",
        str(tmp_path / "auto.png"),
        *SMALL,
    ]
    assert automatic_masks.main(args) == 0
    assert _png_shape(tmp_path / "auto.png") == (534, 800, 3)


def test_track_video_writes_gif(tmp_path):
    out = tmp_path / "track.gif"
    args = [
        "--video",
        str(SHARED_DATA / "sam2_demo" / "bedroom"),
        "--max-frames",
        "3",
        "--out",
        str(out),
        *SMALL,
    ]
    assert track_video.main(args) == 0
    gif = Image.open(out)
    assert gif.n_frames == 4 and gif.size == (960, 540)
