"""Random-access video sources for training (grain `RandomAccessDataSource` protocol).

Counterparts: facebookresearch/sam2 `training/dataset/vos_raw_dataset.py` (PNGRawDataset,
JSONRawDataset, SA1BRawDataset, VOSVideo, VOSFrame), `training/dataset/vos_segment_loader.py`
(PalettisedPNGSegmentLoader, MultiplePNGSegmentLoader, JSONSegmentLoader, SA1BSegmentLoader,
LazySegments), `training/scripts/sav_frame_extraction_submitit.py` (which SA-V frames are
used), `sav_dataset/README.md` (SA-V layout); pycocotools `maskApi.c` (COCO RLE decoding).

Each source has `__len__` and `__getitem__(i) -> VideoEntry`. An entry is a small picklable
record (a name, the official frame indices `VOSFrame.frame_idx`, file paths or seeds); pixels
and masks are read when asked for, by position t in 0..num_frames-1:
`entry.frame(t)` [H, W, 3] uint8 RGB, `entry.masks(t)` {object id: [H, W] bool} (the objects
annotated on that frame, possibly none), or several positions at once with `load_frames` /
`load_masks`. Malformed data raises FileNotFoundError / ValueError naming the file.

Layouts and how they map to the official readers:
- PNGVideoSource (DAVIS, MOSE, YouTube-VOS; PNGRawDataset): <img_folder>/<video>/<frame>.jpg and
  <gt_folder>/<video>/<frame>.png palette PNGs (object id = palette index, every non-zero index,
  255 included, as the official), or with `is_palette=False` one folder per object,
  <gt_folder>/<video>/<obj:03d>/<frame:05d>.png, object id = folder number + 1, a missing PNG
  giving an empty mask (MultiplePNGSegmentLoader). Frames: the *.jpg files sorted by name, cut
  to `truncate_video`, then every `sample_rate`-th; frame index = integer stem.
- SAVSource (SA-V train; JSONRawDataset with `ann_every=4` on frames extracted by the official
  script): <root>/<video>.mp4 and <video>_manual.json (optionally <video>_auto.json). The
  official script keeps every 4th decoded frame (`--sav-frame-sample-rate 4`), named by its
  index; here those frames are decoded from the mp4 with PyAV instead (no JPEG round trip).
  Frame indices 0, s, 2s, ... (s = `frame_stride`), every `sample_rate`-th, and with
  `rm_unannotated` only the indices i * ann_every whose masklet entry i has an RLE for every
  object. Object id = index of the masklet in the JSON (auto masklets follow the manual ones).
  `ann_every` is replaced by frames_fps // fps when the JSON has an "fps" key (as the official).
- SA1BSource (SA1BRawDataset): <root>/sa_<id>.jpg and <gt_folder>/sa_<id>.json; a "video" of
  `num_frames` copies of the image; objects are the annotations with area > 0, uncertain_iou >=
  `uncertain_iou` (when present) and area / (H * W) < `mask_area_frac_thresh` (when <= 1),
  numbered 0, 1, ... in file order. Masks decode lazily (`LazyMasks`, as LazySegments).
- SyntheticSource: `synthetic_video(seed + i, ..., objects_enter_later=True)`; object id =
  label value.
- ArrayRecordSource: the records written by `sam2_jax.data.prepare`, one per video: a msgpack
  map {"format": RECORD_FORMAT, "name": str, "frame_ids": [int], "frames": [JPEG bytes],
  "masks": [[[object id, [H, W], COCO compressed RLE counts bytes], ...] per frame]}.

Differences from the official readers (none changes which frames, objects or masks a valid
dataset gives): video lists from a folder listing keep only sub-folders (PNG) and are sorted
(SA-1B, which the official leaves in `os.listdir` order), blank lines of list files are skipped,
palette annotations are the *.png files of the video folder, and malformed data (a PNG or a
masklet for a frame that does not exist, a video without frames, missing keys, corrupt RLE)
raises instead of failing later. SA-1B entries are named by the file stem ("sa_1"), the official
VOSVideo by the number ("1"). Single-object mode and `frames_sampling_mult` are not supported.
"""

import abc
import dataclasses
import glob
import io
import json
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import grain
import msgpack
import numpy as np
from PIL import Image

from sam2_jax.data.frames import load_video_frames
from sam2_jax.data.synthetic import _checked_arguments, synthetic_video

RECORD_FORMAT = "sam2_jax.video/1"
DEFAULT_JPEG_QUALITY = 95  # cv2.imwrite's default, what the official SA-V frame extraction uses
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_MAX_RLE_GROUP = 12  # 5-bit groups per count; 12 * 5 = 60 bits keeps the sum in int64

PathLike = str | os.PathLike
ListFiles = PathLike | Sequence[PathLike] | None


# ----------------------------------------------------------------------------- COCO RLE


def rle_counts(counts: str | bytes) -> np.ndarray:
    """COCO compressed RLE counts -> run lengths [M] int64 (maskApi.c `rleFrString`).

    Each count is little-endian 5-bit groups offset by 48, bit 0x20 = more groups follow, bit
    0x10 of the last group = negative; from the fourth count on it is a delta to the count two
    places before. Raises ValueError for characters outside '0'..'o', a truncated count, or a
    negative run.
    """
    try:
        data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    except UnicodeEncodeError:
        raise ValueError("RLE counts hold a character outside '0'..'o'") from None
    c = np.frombuffer(data, np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("RLE counts hold a character outside '0'..'o'")
    ends = (c & 0x20) == 0
    if not ends[-1]:
        raise ValueError("RLE counts end inside a count (truncated)")
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    lengths = np.diff(np.append(starts, c.size))
    if lengths.max() > _MAX_RLE_GROUP:
        raise ValueError(f"RLE count longer than {_MAX_RLE_GROUP} characters")
    position = np.arange(c.size) - np.repeat(starts, lengths)
    x = np.add.reduceat((c & 0x1F) << (5 * position), starts)
    negative = (c[ends] & 0x10) != 0
    x = np.where(negative, x - (np.int64(1) << (5 * lengths)), x)
    # cnts[m] = x[m] + cnts[m - 2] for m > 2: running sums over odd and over even m >= 2.
    out = x.copy()
    out[1::2] = np.cumsum(x[1::2])
    out[2::2] = np.cumsum(x[2::2])
    if out.min() < 0:
        raise ValueError("RLE counts decode to a negative run length")
    return out


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """COCO RLE {"size": [H, W], "counts": str | bytes | list[int]} -> [H, W] bool.

    Same mask as pycocotools `mask.decode` (runs in column-major order, starting with zeros).
    Raises ValueError for a missing key, a bad size, or runs that do not cover H * W pixels.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ValueError("an RLE is a dict with keys 'size' and 'counts'")
    size = rle["size"]
    if len(size) != 2 or any(isinstance(v, bool) or int(v) != v or v < 0 for v in size):
        raise ValueError(f"RLE size must be [H, W] with integers >= 0, got {size!r}")
    height, width = int(size[0]), int(size[1])
    raw = rle["counts"]
    if isinstance(raw, (str, bytes)):
        counts = rle_counts(raw)
    else:
        counts = np.asarray(raw, np.int64).reshape(-1)
        if counts.size and counts.min() < 0:
            raise ValueError("RLE counts hold a negative run length")
    if int(counts.sum()) != height * width:
        raise ValueError(
            f"RLE runs cover {int(counts.sum())} pixels, the mask has {height} x {width}"
        )
    values = np.arange(counts.size) % 2 == 1
    return np.ascontiguousarray(np.repeat(values, counts).reshape(width, height).T)


class LazyMasks(Mapping):
    """{object id: [H, W] bool} decoded from COCO RLEs on first access (official LazySegments).

    `rle(object_id)` gives the stored RLE without decoding. A corrupt RLE raises ValueError
    naming `where` and the object.
    """

    def __init__(self, rles: Mapping[int, Mapping[str, Any]], where: str):
        self._rles = dict(rles)
        self._where = where
        self._cache: dict[int, np.ndarray] = {}

    def __getitem__(self, object_id: int) -> np.ndarray:
        if object_id not in self._cache:
            try:
                self._cache[object_id] = decode_rle(self._rles[object_id])
            except ValueError as err:
                raise ValueError(
                    f"corrupt RLE of object {object_id} in {self._where}: {err}"
                ) from err
        return self._cache[object_id]

    def __contains__(self, object_id: object) -> bool:  # without decoding
        return object_id in self._rles

    def __iter__(self) -> Iterator[int]:
        return iter(self._rles)

    def __len__(self) -> int:
        return len(self._rles)

    def rle(self, object_id: int) -> Mapping[str, Any]:
        return self._rles[object_id]


# ----------------------------------------------------------------------------- file helpers


def _read_list_files(paths: ListFiles) -> list[str]:
    """Video names of one or several list files: each line's stem (os.path.splitext)."""
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    names = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video list file '{path}' does not exist")
        with open(path) as file:
            names.extend(os.path.splitext(s.strip())[0] for s in file if s.strip())
    return names


def _video_names(listing: list[str], file_list: ListFiles, excluded: ListFiles) -> list[str]:
    """The file list (or `listing`) minus the excluded videos, order kept."""
    subset = _read_list_files(file_list) if file_list is not None else listing
    excluded_names = set(_read_list_files(excluded))
    return [name for name in subset if name not in excluded_names]


def _require_dir(path: PathLike, what: str) -> None:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} '{path}' does not exist or is not a folder")


def _require_file(path: PathLike, what: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} '{path}' does not exist")


def _int_stem(path: PathLike) -> int:
    """The frame index of '<index>.<ext>' (official `int(basename.split('.')[0])`)."""
    stem = os.path.basename(path).split(".")[0]
    try:
        return int(stem)
    except ValueError:
        raise ValueError(f"'{path}' is not named '<frame index>.<ext>'") from None


def _read_json(path: PathLike) -> Any:
    _require_file(path, "annotation JSON")
    try:
        with open(path) as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"annotation JSON '{path}' is not valid JSON: {err}") from err


def _open_image(path: PathLike, mode: str | None) -> np.ndarray:
    """An image file as an array, converted to `mode` (None: as stored)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image if mode is None else image.convert(mode))
    except FileNotFoundError:
        raise FileNotFoundError(f"image '{path}' does not exist") from None
    except _IMAGE_ERRORS as err:
        raise ValueError(f"cannot read image '{path}' (corrupt or not an image): {err}") from err


def _image_size(path: PathLike) -> tuple[int, int]:
    """(H, W) of an image file, from its header."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except _IMAGE_ERRORS as err:
        raise ValueError(f"cannot read image '{path}' (corrupt or not an image): {err}") from err


def _label_masks(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Object ids [H, W] -> {id: [H, W] bool} for every non-zero id present."""
    return {int(k): labels == k for k in np.unique(labels) if k != 0}


def encode_jpeg(frame: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """[H, W, 3] uint8 RGB -> JPEG bytes (PIL, 4:4:4 chroma). cv2.imwrite, which the official
    SA-V extraction uses, defaults to 4:2:0; on synthetic 128 x 160 frames at quality 95 that
    gave mean |err| 1.83 grey levels (max 87) against 0.97 (max 23) for 4:4:4."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def decode_jpeg(data: bytes, where: str) -> np.ndarray:
    """Image bytes -> [H, W, 3] uint8 RGB; ValueError naming `where` when corrupt."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except _IMAGE_ERRORS as err:
        raise ValueError(f"cannot decode frame image of {where}: {err}") from err


# ----------------------------------------------------------------------------- readers


class FrameReader(Protocol):
    def frames(self, ts: Sequence[int]) -> np.ndarray:
        """[L, H, W, 3] uint8 RGB frames at positions ts."""

    def encoded(self, ts: Sequence[int]) -> list[bytes | None]:
        """The stored JPEG bytes of each position, None where the frame is not a JPEG."""


class MaskReader(Protocol):
    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        """{object id: [H, W] bool} of each position."""


@dataclasses.dataclass(frozen=True)
class _ImageFiles:
    """Frames stored as image files, one path per position."""

    paths: tuple[str, ...]

    def frames(self, ts: Sequence[int]) -> np.ndarray:
        return np.stack([_open_image(self.paths[t], "RGB") for t in ts])

    def encoded(self, ts: Sequence[int]) -> list[bytes | None]:
        out = []
        for t in ts:
            data = Path(self.paths[t]).read_bytes()
            out.append(data if data[:3] == b"\xff\xd8\xff" else None)
        return out


@dataclasses.dataclass(frozen=True)
class _VideoFileFrames:
    """Frames of a video file: decoded frame number `indices[t]` (presentation order)."""

    path: str
    indices: tuple[int, ...]

    def frames(self, ts: Sequence[int]) -> np.ndarray:
        wanted = {self.indices[t] for t in ts}
        video = load_video_frames(self.path, image_size=1, cache_size=1)  # image_size unused
        # Sequential reads continue the running decoder (one seek for the whole range).
        decoded = {}
        for index in range(min(wanted), max(wanted) + 1):
            frame = video.original(index)
            if index in wanted:
                decoded[index] = frame
        return np.stack([decoded[self.indices[t]] for t in ts])

    def encoded(self, ts: Sequence[int]) -> list[bytes | None]:
        return [None] * len(ts)


@dataclasses.dataclass(frozen=True)
class _EncodedFrames:
    """Frames held as JPEG bytes (ArrayRecord entries)."""

    jpegs: tuple[bytes, ...]
    where: str

    def frames(self, ts: Sequence[int]) -> np.ndarray:
        return np.stack([decode_jpeg(self.jpegs[t], f"{self.where} frame {t}") for t in ts])

    def encoded(self, ts: Sequence[int]) -> list[bytes | None]:
        return [self.jpegs[t] for t in ts]


@dataclasses.dataclass(frozen=True)
class _Synthetic:
    """Frames and label masks of `synthetic_video(seed, **video_args)`."""

    seed: int
    video_args: tuple[tuple[str, Any], ...]

    def _video(self):
        return synthetic_video(self.seed, **dict(self.video_args))

    def frames(self, ts: Sequence[int]) -> np.ndarray:
        return self._video().frames[list(ts)]

    def encoded(self, ts: Sequence[int]) -> list[bytes | None]:
        return [None] * len(ts)

    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        labels = self._video().labels
        return [_label_masks(labels[t]) for t in ts]


@dataclasses.dataclass(frozen=True)
class _PaletteMasks:
    """PalettisedPNGSegmentLoader: one palette PNG per annotated position (None: none)."""

    paths: tuple[str | None, ...]

    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        return [{} if self.paths[t] is None else self._load(self.paths[t]) for t in ts]

    @staticmethod
    def _load(path: str) -> dict[int, np.ndarray]:
        labels = _open_image(path, "P")
        if labels.ndim != 2:
            raise ValueError(f"mask PNG '{path}' is not a single-channel label map")
        return _label_masks(labels)


@dataclasses.dataclass(frozen=True)
class _ObjectFolderMasks:
    """MultiplePNGSegmentLoader: <obj folder>/<frame:05d>.png per object, empty when missing."""

    objects: tuple[tuple[int, str], ...]  # (object id, folder)
    frame_ids: tuple[int, ...]
    size: tuple[int, int]  # (H, W) of an empty mask

    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        out = []
        for t in ts:
            segments = {}
            for object_id, folder in self.objects:
                path = os.path.join(folder, f"{self.frame_ids[t]:05d}.png")
                if os.path.exists(path):
                    mask = _open_image(path, None)
                    if mask.ndim != 2:
                        raise ValueError(f"object mask PNG '{path}' is not single-channel")
                    segments[object_id] = mask > 0
                else:
                    segments[object_id] = np.zeros(self.size, bool)
            out.append(segments)
        return out


@dataclasses.dataclass(frozen=True)
class _MaskletJSON:
    """One SA-V masklet JSON: masklet entry i annotates frame i * ann_every."""

    path: str
    ann_every: int
    first_id: int  # object id of its first masklet


@dataclasses.dataclass(frozen=True)
class _MaskletMasks:
    """JSONSegmentLoader: the RLEs of frame_ids[t] in each JSON (masklets that are not None)."""

    jsons: tuple[_MaskletJSON, ...]
    frame_ids: tuple[int, ...]

    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        rles: list[dict[int, Any]] = [{} for _ in ts]
        for masklet_json in self.jsons:
            frame_annots = _masklet_frames(_read_json(masklet_json.path), masklet_json.path)
            for out, t in zip(rles, ts):
                index, rest = divmod(self.frame_ids[t], masklet_json.ann_every)
                if rest or index >= len(frame_annots) or frame_annots[index] is None:
                    continue
                for j, rle in enumerate(frame_annots[index]):
                    if rle is not None:
                        out[masklet_json.first_id + j] = rle
        where = " + ".join(f"'{j.path}'" for j in self.jsons)
        return [LazyMasks(r, f"{where} (frame {self.frame_ids[t]})") for r, t in zip(rles, ts)]


@dataclasses.dataclass(frozen=True)
class _SA1BMasks:
    """SA1BSegmentLoader: the kept annotations (indices into "annotations"), same every frame."""

    path: str
    kept: tuple[int, ...]

    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        annotations = _read_json(self.path)["annotations"]
        rles = {i: annotations[k]["segmentation"] for i, k in enumerate(self.kept)}
        return [LazyMasks(rles, f"'{self.path}'") for _ in ts]


@dataclasses.dataclass(frozen=True)
class _RLEMasks:
    """Masks held as COCO RLEs: per position a tuple of (object id, rle dict)."""

    rles: tuple[tuple[tuple[int, Mapping[str, Any]], ...], ...]
    where: str

    def masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        return [LazyMasks(dict(self.rles[t]), f"{self.where} frame {t}") for t in ts]


# ----------------------------------------------------------------------------- entries


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One video of a source (official VOSVideo + its segment loader), read on demand.

    `frame_ids[t]` is the official `VOSFrame.frame_idx` of position t (the JPEG stem, the mp4
    frame number, or t for SA-1B and synthetic videos). Picklable; holds no pixels.
    """

    name: str
    frame_ids: tuple[int, ...]
    frame_reader: FrameReader = dataclasses.field(repr=False)
    mask_reader: MaskReader = dataclasses.field(repr=False)

    @property
    def num_frames(self) -> int:
        return len(self.frame_ids)

    def _positions(self, ts: Sequence[int]) -> list[int]:
        out = []
        for t in ts:
            t = operator.index(t)
            if not 0 <= t < self.num_frames:
                raise IndexError(
                    f"frame position {t} out of range [0, {self.num_frames}) of video '{self.name}'"
                )
            out.append(t)
        return out

    def load_frames(self, ts: Sequence[int]) -> np.ndarray:
        """Frames at positions ts (at least one): [L, H, W, 3] uint8 RGB."""
        ts = self._positions(ts)
        if not ts:
            raise ValueError("load_frames needs at least one frame position")
        return self.frame_reader.frames(ts)

    def load_masks(self, ts: Sequence[int]) -> list[Mapping[int, np.ndarray]]:
        """Per position {object id: [H, W] bool}; objects not annotated there are absent."""
        return self.mask_reader.masks(self._positions(ts))

    def frame(self, t: int) -> np.ndarray:
        """Frame at position t: [H, W, 3] uint8 RGB."""
        return self.load_frames([t])[0]

    def masks(self, t: int) -> Mapping[int, np.ndarray]:
        """{object id: [H, W] bool} annotated on position t (may be empty)."""
        return self.load_masks([t])[0]

    def encoded_frames(self, ts: Sequence[int], quality: int = DEFAULT_JPEG_QUALITY) -> list[bytes]:
        """JPEG bytes of the frames at ts: the stored file when it is a JPEG, else the decoded
        frame encoded at `quality`."""
        ts = self._positions(ts)
        stored = self.frame_reader.encoded(ts)
        missing = [t for t, data in zip(ts, stored) if data is None]
        decoded = dict(zip(missing, self.frame_reader.frames(missing))) if missing else {}
        return [
            data if data is not None else encode_jpeg(decoded[t], quality)
            for t, data in zip(ts, stored)
        ]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class _Source(abc.ABC):
    """Shared `__len__` / `__getitem__` over `video_names`; subclasses define `_entry`."""

    video_names: list[str]

    def __len__(self) -> int:
        return len(self.video_names)

    def __getitem__(self, index: int) -> VideoEntry:
        return self._entry(self.video_names[operator.index(index)])

    @abc.abstractmethod
    def _entry(self, name: str) -> VideoEntry:
        """The entry of video `name`."""


# ----------------------------------------------------------------------------- PNG videos


class PNGVideoSource(_Source):
    """DAVIS / MOSE / YouTube-VOS style videos (official PNGRawDataset); see module docstring."""

    def __init__(
        self,
        img_folder: PathLike,
        gt_folder: PathLike,
        file_list_txt: ListFiles = None,
        excluded_videos_list_txt: ListFiles = None,
        sample_rate: int = 1,
        is_palette: bool = True,
        truncate_video: int = -1,
    ):
        _check_positive("sample_rate", sample_rate)
        _require_dir(img_folder, "frame folder (img_folder)")
        _require_dir(gt_folder, "annotation folder (gt_folder)")
        self.img_folder = str(img_folder)
        self.gt_folder = str(gt_folder)
        self.sample_rate = int(sample_rate)
        self.is_palette = bool(is_palette)
        self.truncate_video = int(truncate_video)
        listing = [n for n in os.listdir(img_folder) if os.path.isdir(os.path.join(img_folder, n))]
        self.video_names = sorted(_video_names(listing, file_list_txt, excluded_videos_list_txt))

    def _entry(self, name: str) -> VideoEntry:
        frame_root = os.path.join(self.img_folder, name)
        mask_root = os.path.join(self.gt_folder, name)
        _require_dir(frame_root, f"frame folder of video '{name}'")
        _require_dir(mask_root, f"annotation folder of video '{name}'")
        all_frames = sorted(glob.glob(os.path.join(glob.escape(frame_root), "*.jpg")))
        if not all_frames:
            raise ValueError(f"video folder '{frame_root}' holds no frames (*.jpg)")
        all_ids = {_int_stem(p) for p in all_frames}
        if self.truncate_video > 0:
            all_frames = all_frames[: self.truncate_video]
        paths = tuple(all_frames[:: self.sample_rate])
        frame_ids = tuple(_int_stem(p) for p in paths)
        if self.is_palette:
            pngs = _annotation_pngs(mask_root, all_ids, frame_root)
            mask_reader = _PaletteMasks(tuple(pngs.get(f) for f in frame_ids))
        else:
            mask_reader = _object_folder_masks(mask_root, all_ids, frame_root, frame_ids)
        return VideoEntry(name, frame_ids, _ImageFiles(paths), mask_reader)


def _annotation_pngs(folder: str, frame_ids: set[int], frame_root: str) -> dict[int, str]:
    """{frame index: PNG path} of the *.png files of `folder`; each must have its frame."""
    out = {}
    for filename in sorted(os.listdir(folder)):
        path = os.path.join(folder, filename)
        if not filename.endswith(".png") or not os.path.isfile(path):
            continue
        frame_id = _int_stem(path)
        if frame_id not in frame_ids:
            raise ValueError(f"annotation '{path}' has no frame {frame_id} in '{frame_root}'")
        out[frame_id] = path
    return out


def _object_folder_masks(
    mask_root: str, all_ids: set[int], frame_root: str, frame_ids: tuple[int, ...]
) -> _ObjectFolderMasks:
    objects = []
    size = None
    for folder in sorted(glob.glob(os.path.join(glob.escape(mask_root), "*"))):
        if not os.path.isdir(folder):
            continue
        try:
            object_id = int(os.path.basename(folder)) + 1  # offset 1 as bg is 0
        except ValueError:
            raise ValueError(
                f"object folder '{folder}' is not named by an object number (000, 001, ...)"
            ) from None
        pngs = _annotation_pngs(folder, all_ids, frame_root)
        if size is None and pngs:
            size = _image_size(next(iter(pngs.values())))
        objects.append((object_id, folder))
    if not objects:
        raise ValueError(f"annotation folder '{mask_root}' holds no object folders (000, ...)")
    if size is None:
        raise ValueError(f"the object folders of '{mask_root}' hold no mask PNGs")
    return _ObjectFolderMasks(tuple(objects), frame_ids, size)


# ----------------------------------------------------------------------------- SA-V


def _masklet_frames(data: Any, path: PathLike) -> list:
    """The per-frame masklet list of an SA-V JSON (a list, or "masklet" / "masks" of a dict)."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"masklet JSON '{path}' is neither a list nor an object")
    for key in ("masklet", "masks"):
        if key in data:
            return data[key]
    raise ValueError(f"masklet JSON '{path}' has neither a 'masklet' nor a 'masks' key")


def _masklet_json(
    path: str, ann_every: int, frames_fps: int, first_id: int, num_video_frames: int
) -> tuple[_MaskletJSON, int, set[int]]:
    """Parse and check one SA-V JSON: (its record, number of masklets, frame indices where
    every masklet has an RLE)."""
    data = _read_json(path)
    frame_annots = _masklet_frames(data, path)
    if isinstance(data, dict) and "fps" in data:
        fps = data["fps"][0] if isinstance(data["fps"], list) else data["fps"]
        fps = int(fps)
        if fps <= 0 or frames_fps % fps:
            raise ValueError(
                f"masklet JSON '{path}': frames_fps {frames_fps} is not a multiple of its fps {fps}"
            )
        ann_every = frames_fps // fps
    if not isinstance(frame_annots, list) or not frame_annots:
        raise ValueError(f"masklet JSON '{path}' holds no annotated frames")
    num_objects = None
    complete = set()
    for i, annot in enumerate(frame_annots):
        if annot is None:
            continue
        if not isinstance(annot, list):
            raise ValueError(f"masklet JSON '{path}': entry {i} is not a list of RLEs")
        if num_objects is None:
            num_objects = len(annot)
        if len(annot) != num_objects:
            raise ValueError(
                f"masklet JSON '{path}': entry {i} has {len(annot)} masklets, entry 0 has "
                f"{num_objects}"
            )
        for j, rle in enumerate(annot):
            if rle is not None and not (
                isinstance(rle, dict) and "size" in rle and "counts" in rle
            ):
                raise ValueError(
                    f"masklet JSON '{path}': masklet {j} of entry {i} is not an RLE with "
                    "'size' and 'counts'"
                )
        if any(rle is not None for rle in annot) and i * ann_every >= num_video_frames:
            raise ValueError(
                f"masklet JSON '{path}' annotates frame {i * ann_every}, the video has "
                f"{num_video_frames} frames"
            )
        if None not in annot:
            complete.add(i * ann_every)
    return _MaskletJSON(path, ann_every, first_id), num_objects or 0, complete


class SAVSource(_Source):
    """SA-V training videos (official JSONRawDataset on the extracted frames); see module
    docstring. `include_auto` adds <video>_auto.json masklets where that file exists."""

    def __init__(
        self,
        root: PathLike,
        gt_folder: PathLike | None = None,
        file_list_txt: ListFiles = None,
        excluded_videos_list_txt: ListFiles = None,
        sample_rate: int = 1,
        rm_unannotated: bool = True,
        ann_every: int = 4,
        frames_fps: int = 24,
        frame_stride: int = 4,
        include_auto: bool = False,
    ):
        for name, value in [
            ("sample_rate", sample_rate),
            ("ann_every", ann_every),
            ("frames_fps", frames_fps),
            ("frame_stride", frame_stride),
        ]:
            _check_positive(name, value)
        _require_dir(root, "SA-V video folder (root)")
        self.root = str(root)
        self.gt_folder = str(root if gt_folder is None else gt_folder)
        _require_dir(self.gt_folder, "SA-V annotation folder (gt_folder)")
        self.sample_rate = int(sample_rate)
        self.rm_unannotated = bool(rm_unannotated)
        self.ann_every = int(ann_every)
        self.frames_fps = int(frames_fps)
        self.frame_stride = int(frame_stride)
        self.include_auto = bool(include_auto)
        listing = [n[: -len(".mp4")] for n in os.listdir(root) if n.endswith(".mp4")]
        self.video_names = sorted(_video_names(listing, file_list_txt, excluded_videos_list_txt))

    def _entry(self, name: str) -> VideoEntry:
        video_path = os.path.join(self.root, name + ".mp4")
        _require_file(video_path, f"video of '{name}'")
        json_paths = [os.path.join(self.gt_folder, name + "_manual.json")]
        _require_file(json_paths[0], f"manual masklet JSON of '{name}'")
        auto = os.path.join(self.gt_folder, name + "_auto.json")
        if self.include_auto and os.path.isfile(auto):
            json_paths.append(auto)
        num_video_frames = load_video_frames(video_path, image_size=1).num_frames
        jsons, complete, first_id = [], None, 0
        for path in json_paths:
            record, num_objects, done = _masklet_json(
                path, self.ann_every, self.frames_fps, first_id, num_video_frames
            )
            jsons.append(record)
            complete = done if complete is None else complete & done
            first_id += num_objects
        frame_ids = list(range(0, num_video_frames, self.frame_stride))[:: self.sample_rate]
        if self.rm_unannotated:
            frame_ids = [f for f in frame_ids if f in complete]
        if not frame_ids:
            raise ValueError(
                f"video '{video_path}' has no frame where every masklet of "
                f"{' and '.join(json_paths)} is annotated"
            )
        frame_ids = tuple(frame_ids)
        return VideoEntry(
            name,
            frame_ids,
            _VideoFileFrames(video_path, frame_ids),
            _MaskletMasks(tuple(jsons), frame_ids),
        )


# ----------------------------------------------------------------------------- SA-1B


class SA1BSource(_Source):
    """SA-1B images as single-image videos (official SA1BRawDataset); see module docstring."""

    def __init__(
        self,
        root: PathLike,
        gt_folder: PathLike | None = None,
        file_list_txt: ListFiles = None,
        excluded_videos_list_txt: ListFiles = None,
        num_frames: int = 1,
        mask_area_frac_thresh: float = 1.1,
        uncertain_iou: float = -1.0,
    ):
        _check_positive("num_frames", num_frames)
        _require_dir(root, "SA-1B image folder (root)")
        self.root = str(root)
        self.gt_folder = str(root if gt_folder is None else gt_folder)
        _require_dir(self.gt_folder, "SA-1B annotation folder (gt_folder)")
        self.num_frames = int(num_frames)
        self.mask_area_frac_thresh = float(mask_area_frac_thresh)
        self.uncertain_iou = float(uncertain_iou)
        if file_list_txt is None:
            listing = sorted(p.split(".")[0] for p in os.listdir(root) if p.endswith(".jpg"))
        else:
            listing = []
        self.video_names = _video_names(listing, file_list_txt, excluded_videos_list_txt)

    def _entry(self, name: str) -> VideoEntry:
        image_path = os.path.join(self.root, name + ".jpg")
        json_path = os.path.join(self.gt_folder, name + ".json")
        _require_file(image_path, f"image of '{name}'")
        data = _read_json(json_path)
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise ValueError(f"SA-1B JSON '{json_path}' has no 'annotations' list")
        area = None
        if self.mask_area_frac_thresh <= 1.0:
            height, width = _image_size(image_path)
            area = height * width
        kept = []
        for k, annot in enumerate(data["annotations"]):
            if not isinstance(annot, dict) or "area" not in annot or "segmentation" not in annot:
                raise ValueError(
                    f"SA-1B JSON '{json_path}': annotation {k} lacks 'area' or 'segmentation'"
                )
            rle = annot["segmentation"]
            if not (isinstance(rle, dict) and "size" in rle and "counts" in rle):
                raise ValueError(
                    f"SA-1B JSON '{json_path}': the segmentation of annotation {k} is not an "
                    "RLE with 'size' and 'counts'"
                )
            if not annot["area"] > 0:
                continue
            if "uncertain_iou" in annot and annot["uncertain_iou"] < self.uncertain_iou:
                continue
            if area is not None and annot["area"] / area >= self.mask_area_frac_thresh:
                continue
            kept.append(k)
        paths = (image_path,) * self.num_frames
        return VideoEntry(
            name,
            tuple(range(self.num_frames)),
            _ImageFiles(paths),
            _SA1BMasks(json_path, tuple(kept)),
        )


# ----------------------------------------------------------------------------- synthetic


class SyntheticSource:
    """`num_videos` synthetic videos: entry i is `synthetic_video(seed + i, num_frames, height,
    width, num_objects, objects_enter_later=True)`, named synth_<seed + i:05d>. Deterministic."""

    def __init__(
        self,
        num_videos: int,
        seed: int = 0,
        num_frames: int = 24,
        height: int = 128,
        width: int = 160,
        num_objects: int = 3,
    ):
        if isinstance(num_videos, bool) or not isinstance(num_videos, (int, np.integer)):
            raise ValueError(f"num_videos must be an integer >= 0, got {num_videos!r}")
        if num_videos < 0:
            raise ValueError(f"num_videos must be an integer >= 0, got {num_videos!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.num_videos = int(num_videos)
        self.seed = int(seed)
        self.video_args = tuple(
            _checked_arguments(
                num_frames, height, width, num_objects, objects_enter_later=True
            ).items()
        )

    def __len__(self) -> int:
        return self.num_videos

    def __getitem__(self, index: int) -> VideoEntry:
        index = operator.index(index)
        if index < 0:
            index += self.num_videos
        if not 0 <= index < self.num_videos:
            raise IndexError(f"video index {index} out of range [0, {self.num_videos})")
        reader = _Synthetic(self.seed + index, self.video_args)
        num_frames = dict(self.video_args)["num_frames"]
        return VideoEntry(
            f"synth_{self.seed + index:05d}", tuple(range(num_frames)), reader, reader
        )


# ----------------------------------------------------------------------------- ArrayRecord


def _parse_record(data: bytes, where: str) -> VideoEntry:
    """A `sam2_jax.data.prepare` record -> VideoEntry (format in the module docstring)."""
    try:
        record = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as err:
        raise ValueError(f"{where} is not a msgpack video record: {err}") from err
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{where} is not a '{RECORD_FORMAT}' video record")
    try:
        name, frame_ids = record["name"], tuple(int(f) for f in record["frame_ids"])
        jpegs = tuple(record["frames"])
        rles = tuple(
            tuple((int(k), {"size": list(size), "counts": counts}) for k, size, counts in frame)
            for frame in record["masks"]
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where} is a malformed video record: {err!r}") from err
    if not len(frame_ids) == len(jpegs) == len(rles):
        raise ValueError(
            f"{where}: {len(frame_ids)} frame ids, {len(jpegs)} frames, {len(rles)} mask lists"
        )
    where = f"{where} ('{name}')"
    return VideoEntry(name, frame_ids, _EncodedFrames(jpegs, where), _RLEMasks(rles, where))


class ArrayRecordSource:
    """Video records written by `python -m sam2_jax.data.prepare` (one record per video), read
    with grain's ArrayRecordDataSource. An entry holds its record's encoded data (JPEG bytes,
    RLE strings); frames and masks are decoded when asked for."""

    def __init__(self, paths: PathLike | Sequence[PathLike]):
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        for path in paths:
            _require_file(path, "ArrayRecord file")
        self.paths = [str(p) for p in paths]
        self._records = grain.sources.ArrayRecordDataSource(self.paths)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> VideoEntry:
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"record index {index} out of range [0, {len(self)})")
        return _parse_record(self._records[index], f"record {index} of {self.paths}")
