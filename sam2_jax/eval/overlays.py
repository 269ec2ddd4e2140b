"""Visual overlays of object-id label maps on video frames: JPEG per frame and a preview GIF.

No official counterpart (the official notebooks draw masks with matplotlib). Colours are the
DAVIS palette of `sam2_jax.eval.formats` by default, so an overlay matches the colours of the
palette PNGs written next to it.
"""

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_jax.eval.formats import DAVIS_PALETTE
from sam2_jax.eval.metrics import VOID_LABEL

CONTOUR_SHADE = 0.5  # contour pixels are the object's colour times this (opaque)
JPEG_QUALITY = 90


def object_colours(palette: bytes | None = None) -> np.ndarray:
    """The colour of each object id, [256, 3] uint8, from a palette of RGB triplets
    (default `DAVIS_PALETTE`); ids beyond a shorter palette are black."""
    palette = DAVIS_PALETTE if palette is None else bytes(palette)
    if not palette or len(palette) % 3 or len(palette) > 256 * 3:
        raise ValueError(
            f"palette must hold 1 to 256 RGB triplets (3 to 768 bytes), got {len(palette)} bytes"
        )
    colours = np.zeros((256, 3), np.uint8)
    entries = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    colours[: len(entries)] = entries
    return colours


def _check_pair(frame: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frame, labels = np.asarray(frame), np.asarray(labels)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be a [H, W, 3] uint8 array, got {frame.dtype} {frame.shape}")
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an integer [H, W] array, got {labels.dtype} {labels.shape}"
        )
    if labels.shape != frame.shape[:2]:
        raise ValueError(
            f"labels {labels.shape} and frame {frame.shape[:2]} must have the same height and width"
        )
    if labels.size and (labels.min() < 0 or labels.max() > VOID_LABEL):
        raise ValueError(f"labels must be object ids in 0..{VOID_LABEL}")
    return frame, labels


def _boundary(labels: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels with a 4-neighbour (inside the image) of another label."""
    edge = np.zeros(labels.shape, bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def overlay_labels(
    frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5, palette: bytes | None = None
) -> np.ndarray:
    """frame [H, W, 3] uint8 with object ids [H, W] drawn on it -> [H, W, 3] uint8.

    Object pixels (ids 1..254) become round((1 - alpha) * frame + alpha * colour) with the
    id's palette colour; those next to a pixel of another id (4-neighbours: background, void,
    another object) form a 1-px contour inside the object painted CONTOUR_SHADE * colour, so
    touching objects stay distinguishable. Background (0) and void (255) pixels are unchanged.
    """
    frame, labels = _check_pair(frame, labels)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colours = object_colours(palette).astype(np.float32)
    objects = (labels > 0) & (labels < VOID_LABEL)
    ids = labels[objects]
    out = frame.copy()
    blended = (1.0 - alpha) * frame[objects].astype(np.float32) + alpha * colours[ids]
    out[objects] = np.rint(blended).astype(np.uint8)
    contour = objects & _boundary(labels)
    out[contour] = np.rint(CONTOUR_SHADE * colours[labels[contour]]).astype(np.uint8)
    return out


def _save_atomic(path: Path, save) -> None:
    """Call `save(file)` on a temporary file in `path`'s folder, then rename it to `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            save(file)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _gif_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down so that the longer side is at most `max_side`."""
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    return (
        max_side if width == longer else max(1, round(width * max_side / longer)),
        max_side if height == longer else max(1, round(height * max_side / longer)),
    )


def _check_name(name: str, what: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or os.sep in name
    ):
        raise ValueError(f"{what} must be a plain file name, got {name!r}")


def write_overlays(
    out_dir: str | os.PathLike,
    name: str,
    frames: Iterable[np.ndarray],
    labels: Iterable[np.ndarray],
    frame_names: Sequence[str],
    gif_max_side: int = 480,
    gif_duration_ms: int = 100,
    palette: bytes | None = None,
) -> Path:
    """Write the overlays of a video: out_dir/<name>/<frame_name>.jpg and out_dir/<name>.gif.

    frames: [H, W, 3] uint8 and labels: [H, W] object ids, one per name of `frame_names`, read
    one pair at a time (only the GIF frames, downscaled so that their longer side is at most
    `gif_max_side`, stay in memory). Every file is written to a temporary name in its folder,
    then renamed (atomic). The GIF loops, `gif_duration_ms` per frame; as Pillow writes GIFs,
    identical consecutive frames are stored once with their durations summed. Returns the GIF
    path.
    """
    _check_name(name, "name")
    for frame_name in frame_names:
        _check_name(frame_name, "each frame name")
    if len(set(frame_names)) != len(frame_names):
        raise ValueError("frame_names has duplicates (their JPEGs would overwrite each other)")
    if not frame_names:
        raise ValueError("no frames to write (frame_names is empty)")
    if gif_max_side < 1 or gif_duration_ms < 1:
        raise ValueError(
            f"gif_max_side and gif_duration_ms must be >= 1, got {gif_max_side}, {gif_duration_ms}"
        )
    out_dir = Path(out_dir)
    jpeg_dir = out_dir / name
    jpeg_dir.mkdir(parents=True, exist_ok=True)
    frames, labels = iter(frames), iter(labels)
    gif_frames, size = [], None
    for frame_name in frame_names:
        try:
            frame, label_map = next(frames), next(labels)
        except StopIteration:
            raise ValueError(
                f"fewer frames or label maps than frame_names ({len(frame_names)})"
            ) from None
        image = Image.fromarray(overlay_labels(frame, label_map, palette=palette))
        size = size or image.size
        if image.size != size:
            raise ValueError(
                f"frame {frame_name!r} is {image.size[::-1]} (H, W), the first frame "
                f"{size[::-1]}: all frames must have the same size"
            )
        _save_atomic(
            jpeg_dir / f"{frame_name}.jpg",
            lambda f, im=image: im.save(f, format="JPEG", quality=JPEG_QUALITY),
        )
        gif_frames.append(image.resize(_gif_size(*size, gif_max_side), Image.Resampling.LANCZOS))
    for rest in (frames, labels):
        if next(rest, None) is not None:
            raise ValueError(f"more frames or label maps than frame_names ({len(frame_names)})")
    gif_path = out_dir / f"{name}.gif"
    _save_atomic(
        gif_path,
        lambda f: gif_frames[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=gif_frames[1:],
            duration=gif_duration_ms,
            loop=0,
        ),
    )
    return gif_path
