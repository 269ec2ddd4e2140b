"""sam2_jax.eval.overlays: label maps blended on frames (hand-computed pixels), contours, the
per-frame JPEGs and preview GIF on disk, and clear errors on bad input."""

import numpy as np
import pytest
from PIL import Image, ImageSequence

from sam2_jax.eval.formats import DAVIS_PALETTE
from sam2_jax.eval.overlays import object_colours, overlay_labels, write_overlays

# 5 x 7 ids: object 1 (3 x 3, one interior pixel at (2, 2)) touching object 2 (3 x 2, all
# boundary), a void pixel at the top right, background elsewhere.
LABELS = np.array(
    [
        [0, 0, 0, 0, 0, 0, 255],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    np.uint8,
)


def tiny_frame() -> np.ndarray:
    frame = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    frame[2, 2] = (100, 60, 20)
    return frame


def test_object_colours():
    colours = object_colours()
    assert colours.shape == (256, 3) and colours.dtype == np.uint8
    assert colours.tobytes() == DAVIS_PALETTE
    # PASCAL VOC colours: 1 = dark red, 2 = dark green, 255 = (224, 224, 192).
    assert colours[1].tolist() == [128, 0, 0] and colours[2].tolist() == [0, 128, 0]
    assert colours[255].tolist() == [224, 224, 192]
    short = object_colours(bytes([0, 0, 0, 200, 100, 50]))
    assert short[1].tolist() == [200, 100, 50] and not short[2:].any()
    for bad in (b"", bytes(4), bytes(771)):
        with pytest.raises(ValueError, match="palette"):
            object_colours(bad)


def test_overlay_labels_hand_computed():
    frame = tiny_frame()
    out = overlay_labels(frame, LABELS)
    assert out.shape == frame.shape and out.dtype == np.uint8
    # Background (0) and void (255) pixels are the frame's.
    keep = (LABELS == 0) | (LABELS == 255)
    np.testing.assert_array_equal(out[keep], frame[keep])
    # Interior pixel of object 1 (colour (128, 0, 0)), alpha 0.5:
    # 0.5 * (100, 60, 20) + 0.5 * (128, 0, 0) = (114, 30, 10).
    assert out[2, 2].tolist() == [114, 30, 10]
    # alpha 0.25: 0.75 * (100, 60, 20) + 0.25 * (128, 0, 0) = (107, 45, 15).
    assert overlay_labels(frame, LABELS, alpha=0.25)[2, 2].tolist() == [107, 45, 15]
    # Contour: every other object pixel borders another id; it is 0.5 * its colour, opaque.
    contour = (LABELS > 0) & (LABELS < 255)
    contour[2, 2] = False
    np.testing.assert_array_equal(out[contour & (LABELS == 1)], [[64, 0, 0]] * 8)
    np.testing.assert_array_equal(out[LABELS == 2], [[0, 64, 0]] * 6)
    # Touching objects: the shared edge (columns 3 | 4) has a contour on both sides.
    assert out[2, 3].tolist() == [64, 0, 0] and out[2, 4].tolist() == [0, 64, 0]
    assert overlay_labels(frame, np.zeros((5, 7), np.int64)).tolist() == frame.tolist()
    assert frame[2, 2].tolist() == [100, 60, 20]  # the input is not modified


def test_overlay_labels_interior_and_palette():
    # A 3 x 3 object in a 5 x 5 image: 8 contour pixels around one interior pixel.
    labels = np.zeros((5, 5), np.int32)
    labels[1:4, 1:4] = 1
    frame = np.full((5, 5, 3), 40, np.uint8)
    palette = bytes([0, 0, 0, 200, 100, 50])
    out = overlay_labels(frame, labels, alpha=0.5, palette=palette)
    # Interior: 0.5 * 40 + 0.5 * (200, 100, 50) = (120, 70, 45); contour: (100, 50, 25).
    assert out[2, 2].tolist() == [120, 70, 45]
    ring = labels == 1
    ring[2, 2] = False
    np.testing.assert_array_equal(out[ring], [[100, 50, 25]] * 8)
    np.testing.assert_array_equal(out[labels == 0], frame[labels == 0])
    # An object covering the whole image has no contour (the image border is not an edge).
    full = overlay_labels(frame, np.ones((5, 5), np.uint8), alpha=1.0, palette=palette)
    np.testing.assert_array_equal(full, np.broadcast_to([200, 100, 50], (5, 5, 3)))


@pytest.mark.parametrize(
    "frame, labels, kwargs, message",
    [
        (np.zeros((5, 7, 3), np.uint8), np.zeros((5, 6), np.uint8), {}, "same height"),
        (np.zeros((5, 7, 3), np.uint8), np.zeros((7, 5), np.uint8), {}, "same height"),
        (np.zeros((5, 7, 3), np.float32), LABELS, {}, "uint8"),
        (np.zeros((5, 7), np.uint8), LABELS, {}, r"\[H, W, 3\]"),
        (np.zeros((5, 7, 4), np.uint8), LABELS, {}, r"\[H, W, 3\]"),
        (np.zeros((5, 7, 3), np.uint8), LABELS.astype(np.float32), {}, "integer"),
        (np.zeros((5, 7, 3), np.uint8), LABELS[None], {}, "integer"),
        (np.zeros((5, 7, 3), np.uint8), LABELS.astype(np.int32) + 1, {}, "0..255"),
        (np.zeros((5, 7, 3), np.uint8), LABELS.astype(np.int32) - 1, {}, "0..255"),
        (np.zeros((5, 7, 3), np.uint8), LABELS, {"alpha": 1.5}, "alpha"),
    ],
)
def test_overlay_labels_bad_input(frame, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        overlay_labels(frame, labels, **kwargs)


def video(n: int, height: int = 60, width: int = 100):
    """n distinct frames [H, W, 3] uint8 (smooth gradients, which JPEG keeps well) and label
    maps with a moving square (ids 1 and 2)."""
    yy, xx = np.mgrid[:height, :width]
    frames, labels = [], []
    for t in range(n):
        rgb = np.stack([2 * yy + 10 * t, 2 * xx, np.full_like(yy, 120 - 10 * t)], axis=-1)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
        label_map = np.zeros((height, width), np.uint8)
        label_map[10:30, 5 + 10 * t : 25 + 10 * t] = 1
        label_map[35:50, 60:90] = 2
        labels.append(label_map)
    return frames, labels


def test_write_overlays_files(tmp_path):
    frames, labels = video(3)
    names = ["00000", "00001", "00002"]
    gif = write_overlays(tmp_path / "out", "cows", frames, labels, names, gif_max_side=40)
    assert gif == tmp_path / "out" / "cows.gif"
    for name, frame, label_map in zip(names, frames, labels):
        with Image.open(tmp_path / "out" / "cows" / f"{name}.jpg") as jpeg:
            assert jpeg.format == "JPEG" and jpeg.size == (100, 60)
            # JPEG is lossy: the decoded image is close to the overlay, not equal.
            diff = np.abs(np.asarray(jpeg, np.float32) - overlay_labels(frame, label_map))
            assert diff.mean() < 4
    with Image.open(gif) as image:
        # 100 x 60 with the longer side limited to 40 -> 40 x 24.
        assert image.format == "GIF" and image.n_frames == 3 and image.size == (40, 24)
        assert [f.info["duration"] for f in ImageSequence.Iterator(image)] == [100] * 3
    # Atomic writes leave no temporary file behind.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cows", "cows.gif"]
    assert sorted(p.name for p in (tmp_path / "out" / "cows").iterdir()) == [
        f"{n}.jpg" for n in names
    ]


def test_write_overlays_streams_and_keeps_small_frames(tmp_path):
    frames, labels = video(4, height=30, width=20)
    written = []

    def frame_stream():
        # When frame t is requested, the JPEG of frame t - 1 is already on disk.
        for t, frame in enumerate(frames):
            if t:
                written.append((tmp_path / "v" / f"{t - 1}.jpg").is_file())
            yield frame

    names = [str(t) for t in range(4)]
    gif = write_overlays(tmp_path, "v", frame_stream(), iter(labels), names, gif_duration_ms=50)
    assert written == [True, True, True]
    with Image.open(gif) as image:
        # Both sides <= 480: the GIF keeps the frame size.
        assert image.n_frames == 4 and image.size == (20, 30)
        assert image.info["duration"] == 50


def test_write_overlays_identical_frames_keep_total_duration(tmp_path):
    # Pillow stores identical consecutive GIF frames once, with their durations summed.
    frames, labels = video(1)
    gif = write_overlays(tmp_path, "still", frames * 3, labels * 3, ["a", "b", "c"])
    with Image.open(gif) as image:
        assert sum(f.info["duration"] for f in ImageSequence.Iterator(image)) == 300
    assert len(list((tmp_path / "still").glob("*.jpg"))) == 3


@pytest.mark.parametrize(
    "case, message",
    [
        ("shape", "same height"),
        ("fewer", "fewer frames"),
        ("more", "more frames"),
        ("sizes", "same size"),
        ("duplicates", "duplicates"),
        ("slash", "plain file name"),
        ("empty", "no frames"),
        ("max_side", "gif_max_side"),
    ],
)
def test_write_overlays_bad_input(tmp_path, case, message):
    frames, labels = video(2)
    names = ["0", "1"]
    kwargs = {}
    if case == "shape":
        labels[1] = labels[1][:, :-1]
    elif case == "fewer":
        frames = frames[:1]
    elif case == "more":
        labels = labels + labels
    elif case == "sizes":
        frames[1], labels[1] = frames[1][:50], labels[1][:50]
    elif case == "duplicates":
        names = ["0", "0"]
    elif case == "slash":
        names = ["0", "a/b"]
    elif case == "empty":
        names = []
    elif case == "max_side":
        kwargs = {"gif_max_side": 0}
    with pytest.raises(ValueError, match=message):
        write_overlays(tmp_path, "bad", frames, labels, names, **kwargs)
    assert not (tmp_path / "bad.gif").exists()
