"""Benchmark dataset layouts and mask PNG reading/writing for video object segmentation.

Counterparts: facebookresearch/sam2 `tools/vos_inference.py` (`DAVIS_PALETTE`, `load_ann_png`,
`save_ann_png`, `get_per_obj_mask`, `put_per_obj_mask`, `load_masks_from_dir`,
`save_masks_to_dir`, frame ordering, first-frame and appearing-later prompting),
`sav_dataset/utils/sav_benchmark.py` (`VideoEvaluator.scan_vid_folder`, `get_gt_and_pred`),
davisvideochallenge/davis2017-evaluation `davis2017/davis.py` and `results.py` (sequence lists,
reading ground truth and results).

Layouts (`root` is the dataset folder, `<res>` the DAVIS resolution, "480p" by default):
- davis: JPEGImages/<res>/<seq>/*.jpg, Annotations/<res>/<seq>/*.png, optional
  ImageSets/2017/<split>.txt (one sequence per line) or the DAVIS-2016 ImageSets/<res>/<split>.txt
  (lines of frame paths). Annotations are palette PNGs (mode P: object ids, 255 = void); a
  grayscale PNG (mode L) holding only {0, 255} is the DAVIS-2016 binary layout (255 = object 1).
- mose, ytvos: JPEGImages/<video>/*.jpg, Annotations/<video>/*.png (ytvos: only some frames are
  annotated and objects may first appear on a later one).
- sav: JPEGImages_24fps/<video>/*.jpg, Annotations_6fps/<video>/<obj:03d>/<frame>.png, one
  binary PNG per object and annotated frame.
Frames are the JPEG files of a video folder ordered by integer stem; an annotation belongs to
the frame with the same stem. Predictions use the annotation layout under their own root:
<pred>/<video>/<frame>.png (one palette PNG per frame, lowest object id on top where masks
overlap) or, for sav, <pred>/<video>/<obj:03d>/<frame>.png. Every PNG is written atomically.
"""

import dataclasses
import functools
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_jax.eval.metrics import (
    BOUND_TH,
    VOID_LABEL,
    ObjectScores,
    davis_sequence_scores,
    first_appearance_scores,
    sav_object_scores,
)

FORMATS = ("davis", "mose", "ytvos", "sav")
LABEL_FORMATS = ("davis", "mose", "ytvos")
JPEG_EXTENSIONS = (".jpg", ".jpeg")
PNG_EXTENSION = ".png"
LAYOUTS = {
    "davis": "JPEGImages/<res>/<seq>/*.jpg and Annotations/<res>/<seq>/*.png",
    "mose": "JPEGImages/<video>/*.jpg and Annotations/<video>/*.png",
    "ytvos": "JPEGImages/<video>/*.jpg and Annotations/<video>/*.png",
    "sav": "JPEGImages_24fps/<video>/*.jpg and Annotations_6fps/<video>/<obj:03d>/*.png",
}
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error)


def _voc_palette() -> bytes:
    """The DAVIS (PASCAL VOC) palette: 256 RGB triplets, the bits of the index interleaved
    into the high bits of R, G, B (index 1 = (128, 0, 0), 255 = (224, 224, 192))."""
    palette = bytearray()
    for index in range(256):
        rgb = [0, 0, 0]
        code = index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        palette += bytes(rgb)
    return bytes(palette)


DAVIS_PALETTE = _voc_palette()


# ----------------------------------------------------------------------------- PNG reading


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 -> [...] uint32 0xRRGGBB."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _rgb_to_labels(rgb: np.ndarray, palette: bytes, path: Path) -> np.ndarray:
    """RGB [H, W, 3] uint8 -> palette indices [H, W] uint8 (first index of each colour)."""
    entries = np.frombuffer(bytes(palette), np.uint8)[: len(palette) // 3 * 3].reshape(-1, 3)
    keys, first = np.unique(_pack_rgb(entries), return_index=True)
    codes = _pack_rgb(rgb)
    pos = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
    known = keys[pos] == codes
    if not known.all():
        y, x = np.argwhere(~known)[0]
        raise ValueError(
            f"RGB annotation '{path}' has colour {tuple(int(v) for v in rgb[y, x])} at (x={x}, "
            f"y={y}) that is not in the palette; save annotations as palette (mode P) PNGs"
        )
    return first[pos].astype(np.uint8)


def read_label_png(path: str | os.PathLike, palette: bytes | None = None) -> np.ndarray:
    """A mask PNG as object ids [H, W] uint8 (0 = background, 255 = void).

    Mode P: the palette indices (`load_ann_png`). Mode L: the values, except that a PNG holding
    only {0, 255} is DAVIS-2016 binary (255 -> 1). Mode 1: 0/1. RGB/RGBA: each colour mapped to
    its index in `palette` (default `DAVIS_PALETTE`). Raises FileNotFoundError when missing,
    ValueError naming the file when it is corrupt, of another mode, or has unknown colours.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask PNG '{path}' does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except _IMAGE_ERRORS as err:
        raise ValueError(f"cannot read mask PNG '{path}' (corrupt or not an image): {err}") from err
    if mode in ("P", "PA", "LA"):
        array = array[..., 0] if array.ndim == 3 else array
        mode = mode[0]
    if mode == "P":
        return array.astype(np.uint8)
    if mode == "L":
        if np.count_nonzero((array != 0) & (array != VOID_LABEL)) == 0:
            return (array == VOID_LABEL).astype(np.uint8)
        return array.astype(np.uint8)
    if mode == "1":
        return array.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        return _rgb_to_labels(array[..., :3], DAVIS_PALETTE if palette is None else palette, path)
    raise ValueError(
        f"mask PNG '{path}' has mode {mode}; expected a palette (P) or grayscale (L) label map"
    )


def read_object_png(path: str | os.PathLike) -> np.ndarray:
    """A per-object (SA-V) mask PNG as [H, W] bool (non-zero = object).

    Raises ValueError naming the file when it holds more than one object (more than two values),
    as the SA-V evaluator does.
    """
    labels = read_label_png(path)
    if np.unique(labels).size > 2:
        raise ValueError(
            f"'{path}' holds more than one object; per-object PNGs hold one object each"
        )
    return labels > 0


def split_label_map(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Object ids [H, W] -> {id: [H, W] bool} for each id present, 0 and void (255) aside
    (`get_per_obj_mask`, which would also keep 255)."""
    ids = np.unique(labels)
    return {int(k): labels == k for k in ids if 0 < k < VOID_LABEL}


# ----------------------------------------------------------------------------- PNG writing


def merge_object_masks(masks: Mapping[int, np.ndarray], height: int, width: int) -> np.ndarray:
    """{id: mask} -> object ids [H, W] uint8; where masks overlap the lowest id wins
    (`put_per_obj_mask` paints ids in descending order). Each mask has H * W elements."""
    labels = np.zeros((height, width), np.uint8)
    for object_id in sorted(masks, reverse=True):
        if not 1 <= object_id <= 255:
            raise ValueError(f"object ids written to a PNG must be in 1..255, got {object_id}")
        mask = np.asarray(masks[object_id], bool)
        if mask.size != height * width:
            raise ValueError(
                f"mask of object {object_id} has shape {mask.shape}, expected ({height}, {width})"
            )
        labels[mask.reshape(height, width)] = object_id
    return labels


def write_label_png(
    path: str | os.PathLike, labels: np.ndarray, palette: bytes | None = None
) -> None:
    """Write object ids [H, W] (integers in 0..255) as a palette PNG (`save_ann_png`).

    The palette is `palette` or `DAVIS_PALETTE`. The file is written to a temporary name in the
    same folder, then renamed over `path` (atomic: a killed writer never leaves a partial PNG
    under `path`). Parent folders are created.
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an integer [H, W] array, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"labels must be in 0..255 to fit a palette PNG ('{path}')")
    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette(DAVIS_PALETTE if palette is None else palette)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            image.save(file, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- layouts


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _layout_roots(root: Path, fmt: str, resolution: str) -> tuple[Path, Path]:
    """(frames root, annotations root) of a dataset folder; checks that they exist."""
    _check_format(fmt)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder '{root}' does not exist")
    if fmt == "davis":
        roots = root / "JPEGImages" / resolution, root / "Annotations" / resolution
    elif fmt == "sav":
        roots = root / "JPEGImages_24fps", root / "Annotations_6fps"
    else:
        roots = root / "JPEGImages", root / "Annotations"
    for folder in roots:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"'{root}' is not a {fmt} dataset: '{folder}' is missing (expected {LAYOUTS[fmt]})"
            )
    return roots


def _visible_files(folder: Path, extensions: Iterable[str]) -> list[str]:
    return [
        n
        for n in os.listdir(folder)
        if not n.startswith(".")
        and os.path.splitext(n)[1].lower() in extensions
        and (folder / n).is_file()
    ]


def _by_integer_stem(folder: Path, names: list[str]) -> list[str]:
    """Sort file names by integer stem (as `vos_inference`); duplicates stems are errors."""

    def key(name: str) -> tuple[int, str]:
        stem = os.path.splitext(name)[0]
        try:
            return int(stem), name
        except ValueError:
            raise ValueError(
                f"'{folder / name}' is not named '<frame_index>{os.path.splitext(name)[1]}' "
                "(its stem is not an integer)"
            ) from None

    ordered = sorted(names, key=key)
    stems = [os.path.splitext(n)[0] for n in ordered]
    for a, b in zip(stems, stems[1:]):
        if a == b:
            raise ValueError(f"two files for frame '{a}' in '{folder}'")
    return ordered


def _png_header(path: Path) -> tuple[tuple[int, int], bytes | None]:
    """(size (W, H), palette when mode P) of a PNG, reading its header only."""
    try:
        with Image.open(path) as image:
            palette = image.getpalette() if image.mode == "P" else None
            return image.size, None if palette is None else bytes(palette)
    except _IMAGE_ERRORS as err:
        raise ValueError(f"cannot read mask PNG '{path}' (corrupt or not an image): {err}") from err


def _read_list_file(path: Path) -> list[str]:
    """Video names of a list file: one per line, or DAVIS-2016 lines of frame paths."""
    names: list[str] = []
    for line in path.read_text().splitlines():
        token = line.split()[0] if line.split() else ""
        name = Path(token).parent.name if "/" in token else token
        if name and name not in names:
            names.append(name)
    return names


def list_videos(
    root: str | os.PathLike,
    fmt: str,
    video_list: str | os.PathLike | None = None,
    split: str = "val",
    resolution: str = "480p",
) -> list[str]:
    """Names of the videos of a dataset.

    From `video_list` when given; for davis, else from ImageSets/2017/<split>.txt or
    ImageSets/<resolution>/<split>.txt when present; else the sorted sub-folders of the
    frames root. Raises ValueError for an unknown format or when no video is found,
    FileNotFoundError when the folder or its layout is missing.
    """
    root = Path(root)
    frames_root, _ = _layout_roots(root, fmt, resolution)
    if video_list is None and fmt == "davis":
        for candidate in (
            root / "ImageSets" / "2017" / f"{split}.txt",
            root / "ImageSets" / resolution / f"{split}.txt",
        ):
            if candidate.is_file():
                video_list = candidate
                break
    if video_list is not None:
        names = _read_list_file(Path(video_list))
        source = f"list file '{video_list}'"
    else:
        names = sorted(
            d.name for d in frames_root.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        source = f"'{frames_root}'"
    if not names:
        raise ValueError(f"no videos found in {source}")
    return names


@dataclasses.dataclass(frozen=True)
class Video:
    """One video of a dataset: its frames and ground-truth annotations.

    `annotated` are the indices of the frames with an annotation (sav: for any object);
    `object_frames` maps each sav object id to its annotated frame indices ({} otherwise);
    `palette` is the palette of the first annotation PNG when it is a palette PNG.
    """

    name: str
    format: str
    frames_dir: Path
    frame_files: tuple[str, ...]
    annotations_dir: Path
    annotated: tuple[int, ...]
    object_frames: dict[int, tuple[int, ...]]
    height: int
    width: int
    palette: bytes | None

    @property
    def frame_names(self) -> tuple[str, ...]:
        """Frame stems, in frame order."""
        return tuple(os.path.splitext(n)[0] for n in self.frame_files)

    @property
    def num_frames(self) -> int:
        return len(self.frame_files)

    def frame_path(self, t: int) -> Path:
        return self.frames_dir / self.frame_files[t]

    def annotation_path(self, t: int, object_id: int | None = None) -> Path:
        """Annotation PNG of frame t (sav: of `object_id` on frame t); it may not exist."""
        folder = self.annotations_dir if object_id is None else self._object_dir(object_id)
        return folder / f"{self.frame_names[t]}{PNG_EXTENSION}"

    def _object_dir(self, object_id: int) -> Path:
        return self.annotations_dir / f"{object_id:03d}"

    def _checked(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if mask.shape != (self.height, self.width):
            raise ValueError(
                f"'{path}' is {mask.shape[1]}x{mask.shape[0]} but the frames of video "
                f"'{self.name}' are {self.width}x{self.height} "
                "(frames and annotations do not match)"
            )
        return mask

    def read_labels(self, t: int) -> np.ndarray:
        """Ground-truth object ids of frame t, [H, W] uint8 (255 = void); label formats only."""
        if self.format == "sav":
            raise ValueError("sav annotations are per-object PNGs; use read_object_mask")
        path = self.annotation_path(t)
        if not path.is_file():
            raise FileNotFoundError(
                f"frame '{self.frame_files[t]}' of video '{self.name}' has no annotation '{path}'"
            )
        return self._checked(read_label_png(path, self.palette), path)

    def read_object_mask(self, object_id: int, t: int) -> np.ndarray:
        """Ground-truth mask [H, W] bool of one sav object on frame t."""
        path = self.annotation_path(t, object_id)
        if not path.is_file():
            raise FileNotFoundError(
                f"object {object_id} of video '{self.name}' has no annotation '{path}'"
            )
        return self._checked(read_object_png(path), path)

    def read_object_masks(self, t: int) -> dict[int, np.ndarray]:
        """Ground-truth {object id: [H, W] bool} of frame t (void aside)."""
        if self.format != "sav":
            return split_label_map(self.read_labels(t))
        return {
            k: self.read_object_mask(k, t)
            for k, frames in self.object_frames.items()
            if t in frames
        }

    def initial_masks(self) -> dict[int, tuple[int, np.ndarray]]:
        """{object id: (frame index, [H, W] bool)}: the mask each object is prompted with.

        davis, mose, sav: every object of the first frame's annotation (`vos_inference`);
        ytvos: each object on its first annotated frame where its mask is not empty
        (`vos_separate_inference_per_object`). Raises ValueError when there is no object.
        """
        prompts: dict[int, tuple[int, np.ndarray]] = {}
        frames = self.annotated if self.format == "ytvos" else self.annotated[:1]
        for t in frames:
            for object_id, mask in self.read_object_masks(t).items():
                if object_id not in prompts and (self.format != "ytvos" or mask.any()):
                    prompts[object_id] = (t, mask)
        if not prompts:
            raise ValueError(f"video '{self.name}' has no object in its annotations")
        return dict(sorted(prompts.items()))


def load_video(root: str | os.PathLike, fmt: str, name: str, resolution: str = "480p") -> Video:
    """Index one video of a dataset and check its layout (PNG headers only, no decoding).

    Raises FileNotFoundError when its frame or annotation folder is missing, ValueError (naming
    the file or folder) for an unknown format, a folder without JPEG frames or annotations, a
    non-integer frame name, an annotation without a frame of the same name or of another size
    (frames and annotations do not match), a missing first-frame annotation (davis, mose, sav:
    objects are prompted on the first frame), or an unreadable image header.
    """
    frames_root, annotations_root = _layout_roots(Path(root), fmt, resolution)
    frames_dir, annotations_dir = frames_root / name, annotations_root / name
    for folder, what in ((frames_dir, "frame"), (annotations_dir, "annotation")):
        if not folder.is_dir():
            raise FileNotFoundError(f"video '{name}': {what} folder '{folder}' does not exist")
    frame_files = _by_integer_stem(frames_dir, _visible_files(frames_dir, JPEG_EXTENSIONS))
    if not frame_files:
        raise ValueError(f"no JPEG frames (*.jpg, *.jpeg) in '{frames_dir}'")
    try:
        with Image.open(frames_dir / frame_files[0]) as image:
            width, height = image.size
    except _IMAGE_ERRORS as err:
        raise ValueError(f"cannot read frame '{frames_dir / frame_files[0]}': {err}") from err
    index = {os.path.splitext(n)[0]: t for t, n in enumerate(frame_files)}
    if fmt == "sav":
        folders = sorted(n for n in os.listdir(annotations_dir) if not n.startswith("."))
        if not folders:
            raise ValueError(f"no object folders (<obj:03d>/) in '{annotations_dir}'")
        object_frames = {}
        for folder in folders:
            if not (annotations_dir / folder).is_dir() or not folder.isdigit():
                raise ValueError(
                    f"'{annotations_dir / folder}' is not an object folder; sav annotations are "
                    "<video>/<obj:03d>/<frame>.png"
                )
            object_frames[int(folder)] = _annotated_frames(
                annotations_dir / folder, index, frame_files, (width, height), first_required=True
            )
        annotated = tuple(sorted(set().union(*object_frames.values())))
        first_png = annotations_dir / folders[0] / (next(iter(index)) + PNG_EXTENSION)
    else:
        object_frames = {}
        annotated = _annotated_frames(
            annotations_dir, index, frame_files, (width, height), first_required=fmt != "ytvos"
        )
        first_png = annotations_dir / (list(index)[annotated[0]] + PNG_EXTENSION)
    return Video(
        name=name,
        format=fmt,
        frames_dir=frames_dir,
        frame_files=tuple(frame_files),
        annotations_dir=annotations_dir,
        annotated=annotated,
        object_frames=object_frames,
        height=height,
        width=width,
        palette=_png_header(first_png)[1],
    )


def _annotated_frames(
    folder: Path,
    index: Mapping[str, int],
    frame_files: Sequence[str],
    size: tuple[int, int],
    first_required: bool,
) -> tuple[int, ...]:
    """Indices of the frames annotated in `folder`, checking names and sizes."""
    pngs = _visible_files(folder, (PNG_EXTENSION,))
    if not pngs:
        raise ValueError(f"no annotation PNGs in '{folder}'")
    frames = []
    for png in pngs:
        stem = os.path.splitext(png)[0]
        if stem not in index:
            raise ValueError(
                f"annotation '{folder / png}' has no frame '{stem}.jpg' in the video's frame "
                "folder (frames and annotations do not match)"
            )
        png_size = _png_header(folder / png)[0]
        if png_size != size:
            raise ValueError(
                f"annotation '{folder / png}' is {png_size[0]}x{png_size[1]} but the frames are "
                f"{size[0]}x{size[1]} (frames and annotations do not match)"
            )
        frames.append(index[stem])
    frames.sort()
    if first_required and frames[0] != 0:
        first = os.path.splitext(frame_files[0])[0]
        raise ValueError(
            f"missing first-frame annotation '{folder / (first + PNG_EXTENSION)}' "
            "(objects are prompted with their mask on the first frame)"
        )
    return tuple(frames)


# ----------------------------------------------------------------------------- predictions


def prediction_path(
    pred_root: str | os.PathLike, video: Video, t: int, object_id: int | None = None
) -> Path:
    """<pred>/<video>/<frame>.png, or <pred>/<video>/<obj:03d>/<frame>.png for sav."""
    folder = Path(pred_root) / video.name
    if video.format == "sav":
        if object_id is None:
            raise ValueError("sav predictions are per object: give object_id")
        folder = folder / f"{object_id:03d}"
    return folder / f"{video.frame_names[t]}{PNG_EXTENSION}"


def expected_prediction_paths(
    pred_root: str | os.PathLike, video: Video, object_ids: Iterable[int] = ()
) -> list[Path]:
    """Every PNG a complete prediction of `video` has: one per frame, or for sav one per frame
    and object of `object_ids` (default: the annotated objects)."""
    if video.format != "sav":
        return [prediction_path(pred_root, video, t) for t in range(video.num_frames)]
    ids = list(object_ids) or list(video.object_frames)
    return [prediction_path(pred_root, video, t, k) for k in ids for t in range(video.num_frames)]


def write_prediction(
    pred_root: str | os.PathLike,
    video: Video,
    t: int,
    masks: Mapping[int, np.ndarray],
    palette: bytes | None = None,
) -> None:
    """Write the predicted {object id: [H, W] bool} of frame t (`save_masks_to_dir`).

    Label formats: one palette PNG, lowest id on top where masks overlap; sav: one 0/1 PNG per
    object. The palette is `palette`, else the annotations' (`video.palette`), else
    `DAVIS_PALETTE`. Atomic per file.
    """
    palette = palette or video.palette or DAVIS_PALETTE
    if video.format != "sav":
        labels = merge_object_masks(masks, video.height, video.width)
        write_label_png(prediction_path(pred_root, video, t), labels, palette)
        return
    for object_id, mask in masks.items():
        labels = merge_object_masks({1: mask}, video.height, video.width)
        write_label_png(prediction_path(pred_root, video, t, object_id), labels, palette)


def _read_prediction(video: Video, path: Path, read: Callable[[Path], np.ndarray]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"prediction '{path}' is missing")
    return video._checked(read(path), path)


def read_prediction_labels(pred_root: str | os.PathLike, video: Video, t: int) -> np.ndarray:
    """Predicted object ids of frame t, [H, W] uint8 (label formats)."""
    path = prediction_path(pred_root, video, t)
    return _read_prediction(video, path, functools.partial(read_label_png, palette=video.palette))


def read_prediction_object(
    pred_root: str | os.PathLike, video: Video, object_id: int, t: int
) -> np.ndarray:
    """Predicted mask [H, W] bool of one sav object on frame t."""
    return _read_prediction(video, prediction_path(pred_root, video, t, object_id), read_object_png)


# ----------------------------------------------------------------------------- scoring


class _LazyFrames(Sequence):
    """frames[i] = read(indices[i]), read on access."""

    def __init__(self, read: Callable[[int], np.ndarray], indices: Sequence[int]):
        self.read = read
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.read(self.indices[i])


def _to_video_frames(scores: ObjectScores, indices: Sequence[int]) -> ObjectScores:
    return dataclasses.replace(scores, frames=tuple(indices[i] for i in scores.frames))


def score_video(
    video: Video,
    pred_root: str | os.PathLike,
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
) -> list[ObjectScores]:
    """Per-object per-frame J and F of the prediction PNGs of `video` under `pred_root`
    (see `score_predictions`)."""
    return score_predictions(
        video,
        functools.partial(read_prediction_labels, pred_root, video),
        functools.partial(read_prediction_object, pred_root, video),
        exclude_void,
        bound_th,
    )


def score_predictions(
    video: Video,
    labels: Callable[[int], np.ndarray],
    object_mask: Callable[[int, int], np.ndarray],
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
) -> list[ObjectScores]:
    """Per-object per-frame J and F of a prediction of `video`.

    labels(t): predicted object ids [H, W] of frame t (label formats); object_mask(k, t):
    predicted mask [H, W] of sav object k on frame t. Frames are read lazily.
    davis, mose: `davis_sequence_scores` (every frame must be annotated); ytvos:
    `first_appearance_scores` over the annotated frames; sav: `sav_object_scores` per object
    over its annotated frames. `ObjectScores.frames` are indices into `video.frame_files`.
    """
    if video.format in ("davis", "mose"):
        missing = sorted(set(range(video.num_frames)) - set(video.annotated))
        if missing:
            raise ValueError(
                f"cannot score video '{video.name}': frame '{video.frame_files[missing[0]]}' has "
                f"no ground-truth annotation '{video.annotation_path(missing[0])}'"
            )
        frames = range(video.num_frames)
        gt = _LazyFrames(video.read_labels, frames)
        return davis_sequence_scores(gt, _LazyFrames(labels, frames), exclude_void, bound_th)
    if video.format == "ytvos":
        frames = video.annotated
        gt = _LazyFrames(video.read_labels, frames)
        scores = first_appearance_scores(gt, _LazyFrames(labels, frames), True, bound_th)
        return [_to_video_frames(s, frames) for s in scores]
    scores = []
    for object_id, frames in video.object_frames.items():
        gt = _LazyFrames(functools.partial(video.read_object_mask, object_id), frames)
        pred = _LazyFrames(functools.partial(object_mask, object_id), frames)
        scores.append(
            _to_video_frames(sav_object_scores(object_id, gt, pred, True, bound_th), frames)
        )
    return scores
