"""Video frame loading (<- sam2/utils/misc.py: load_video_frames,
load_video_frames_from_jpg_images, _load_img_as_tensor, AsyncVideoFrameLoader).

A video is a folder of JPEG frames, a video file (anything PyAV decodes: mp4, ...), the bytes of
one, or a uint8 RGB array [T, H, W, 3]. Every frame goes through the official JPEG-folder
preprocessing, bit for bit: PIL `convert("RGB").resize((S, S))` (BICUBIC, PIL's default for
RGB), `/ 255` in float64, a cast to float32, then `-= mean` and `/= std` in float32 with the
ImageNet statistics. Frames are channels-last, [S, S, 3] float32.

Frames decode on demand into a bounded LRU cache (memory does not grow with the video length),
or all at once with `VideoFrames.preload()`, optionally in a background thread as the official
`async_loading_frames=True` does. Differences from the official loader: JPEG extensions match
case-insensitively, frames with the same integer stem are ordered by name, and video files are
decoded with PyAV and resized with PIL like JPEG frames (the official uses decord's resampler).
"""

import collections
import io
import operator
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import av

IMG_MEAN = np.array((0.485, 0.456, 0.406), dtype=np.float32)
IMG_STD = np.array((0.229, 0.224, 0.225), dtype=np.float32)
JPEG_EXTENSIONS = (".jpg", ".jpeg")
DEFAULT_CACHE_SIZE = 16

VideoInput = str | os.PathLike | bytes | np.ndarray


def _pyav():
    """PyAV, imported when a video file is first opened (JPEG folders and arrays need none)."""
    import av

    return av


def normalize_frame(image: Image.Image, image_size: int) -> np.ndarray:
    """PIL image -> [S, S, 3] float32, as the official `_load_img_as_tensor` + mean/std."""
    rgb = np.asarray(
        image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
    )
    frame = (rgb / 255.0).astype(np.float32)
    frame -= IMG_MEAN
    frame /= IMG_STD
    return frame


def _jpeg_frame_paths(folder: Path) -> list[Path]:
    """JPEG files of `folder` sorted by integer stem ("<frame_index>.jpg")."""
    names = sorted(
        n for n in os.listdir(folder) if os.path.splitext(n)[1].lower() in JPEG_EXTENSIONS
    )
    if not names:
        raise ValueError(f"no JPEG frames (*.jpg, *.jpeg) found in folder '{folder}'")

    def frame_index(name: str) -> int:
        try:
            return int(os.path.splitext(name)[0])
        except ValueError:
            raise ValueError(
                f"JPEG frame '{folder / name}' is not named '<frame_index>.jpg' "
                "(its stem is not an integer)"
            ) from None

    return [folder / n for n in sorted(names, key=frame_index)]


class _JpegFolder:
    """Frames from the JPEG files of a folder."""

    def __init__(self, folder: Path):
        self.paths = _jpeg_frame_paths(folder)
        with self._open(0) as image:  # reads the header only
            self.width, self.height = image.size

    def __len__(self) -> int:
        return len(self.paths)

    def _open(self, t: int) -> Image.Image:
        try:
            return Image.open(self.paths[t])
        except (OSError, SyntaxError) as err:
            raise ValueError(f"cannot read JPEG frame '{self.paths[t]}': {err}") from err

    def read(self, t: int) -> Image.Image:
        """Frame t, fully decoded, in RGB."""
        with self._open(t) as image:
            try:
                return image.convert("RGB")
            except (OSError, SyntaxError) as err:
                raise ValueError(f"corrupt JPEG frame '{self.paths[t]}': {err}") from err

    def __iter__(self) -> Iterator[Image.Image]:
        return (self.read(t) for t in range(len(self)))

    def describe(self, t: int) -> str:
        return f"'{self.paths[t]}'"


class _VideoFile:
    """Frames of a video file (or its bytes) decoded with PyAV, in presentation order.

    The packet timestamps are indexed once (demuxing only); frame t is decoded by seeking to the
    keyframe before it, or by continuing the running decoder when t follows the last frame read.
    """

    def __init__(self, video: Path | bytes):
        self.video = video
        self.name = "<video bytes>" if isinstance(video, bytes) else f"'{video}'"
        self._av = _pyav()
        self.container, self.stream = self._open()
        try:
            pts = [p.pts for p in self.container.demux(self.stream) if p.size]
        except self._av.error.FFmpegError as err:
            raise ValueError(
                f"unsupported file type or corrupt video: cannot demux {self.name} ({err})"
            ) from err
        if not pts:
            raise ValueError(f"video {self.name} contains no video frames")
        if None in pts:
            raise ValueError(f"video {self.name} has packets without timestamps")
        self.pts = sorted(pts)
        self._decoder: Iterator["av.VideoFrame"] | None = None
        self._last = -1
        self.width, self.height = self.read(0).size

    def _open(self) -> tuple["av.container.InputContainer", "av.video.stream.VideoStream"]:
        source = io.BytesIO(self.video) if isinstance(self.video, bytes) else str(self.video)
        try:
            container = self._av.open(source)
        except self._av.error.FFmpegError as err:
            raise ValueError(
                f"unsupported file type: {self.name} is neither a folder of JPEG "
                f"frames nor a video PyAV can decode ({err})"
            ) from err
        if not container.streams.video:
            container.close()
            raise ValueError(f"video {self.name} contains no video frames (no video stream)")
        return container, container.streams.video[0]

    def __len__(self) -> int:
        return len(self.pts)

    def read(self, t: int) -> Image.Image:
        """Frame t, decoded, in RGB."""
        try:
            if self._decoder is None or t != self._last + 1:
                self.container.seek(self.pts[t], stream=self.stream, backward=True, any_frame=False)
                self._decoder = self.container.decode(self.stream)
            self._last = -1
            for frame in self._decoder:
                if frame.pts == self.pts[t]:
                    self._last = t
                    return frame.to_image()
        except self._av.error.FFmpegError as err:
            raise ValueError(f"cannot decode frame {t} of video {self.name}: {err}") from err
        raise ValueError(f"cannot decode frame {t} of video {self.name}: frame not found")

    def __iter__(self) -> Iterator[Image.Image]:
        container, stream = self._open()
        t = 0
        with container:
            try:
                for frame in container.decode(stream):
                    if t == len(self):
                        break
                    yield frame.to_image()
                    t += 1
            except self._av.error.FFmpegError as err:
                raise ValueError(f"cannot decode frame {t} of video {self.name}: {err}") from err
        if t < len(self):
            raise ValueError(f"video {self.name} decoded to {t} frames, {len(self)} indexed")

    def describe(self, t: int) -> str:
        return f"{t} of video {self.name}"


class _ArrayFrames:
    """Frames of an in-memory uint8 RGB array [T, H, W, 3]."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(
                "a video array must be uint8 RGB [T, H, W, 3], got "
                f"{array.dtype} {list(array.shape)}"
            )
        if array.shape[0] == 0:
            raise ValueError("the video array contains no frames")
        self.array = array
        self.height, self.width = array.shape[1:3]

    def __len__(self) -> int:
        return self.array.shape[0]

    def read(self, t: int) -> Image.Image:
        return Image.fromarray(self.array[t])

    def __iter__(self) -> Iterator[Image.Image]:
        return (self.read(t) for t in range(len(self)))

    def describe(self, t: int) -> str:
        return f"{t} of the video array"


def _open_source(video: VideoInput) -> _JpegFolder | _VideoFile | _ArrayFrames:
    if isinstance(video, np.ndarray):
        return _ArrayFrames(video)
    if isinstance(video, bytes):
        return _VideoFile(video)
    if not isinstance(video, (str, os.PathLike)):
        raise TypeError(
            "a video is a JPEG folder path, a video file path or bytes, or a uint8 "
            f"array [T, H, W, 3]; got {type(video).__name__}"
        )
    path = Path(video)
    if not path.exists():
        raise FileNotFoundError(f"video path '{path}' does not exist")
    if path.is_dir():
        return _JpegFolder(path)
    return _VideoFile(path)


class VideoFrames:
    """Normalised frames of one video, [S, S, 3] float32 each, decoded on demand.

    `frame(t)` serves frames from the preloaded store (see `preload`) or from an LRU cache
    holding at most `cache_size` frames. Returned arrays are read-only views into the store.
    """

    def __init__(self, video: VideoInput, image_size: int, cache_size: int = DEFAULT_CACHE_SIZE):
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._source = _open_source(video)
        self.image_size = image_size
        self.cache_size = cache_size
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._preloaded: np.ndarray | None = None
        self._num_preloaded = 0
        self._loader: threading.Thread | None = None
        self._loader_error: Exception | None = None

    @property
    def num_frames(self) -> int:
        return len(self._source)

    @property
    def video_height(self) -> int:
        return self._source.height

    @property
    def video_width(self) -> int:
        return self._source.width

    @property
    def cached_indices(self) -> tuple[int, ...]:
        """Frame indices in the LRU cache, least recently used first."""
        with self._lock:
            return tuple(self._cache)

    def __len__(self) -> int:
        return self.num_frames

    def _check_index(self, t: int) -> int:
        t = operator.index(t)
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame index {t} out of range [0, {self.num_frames})")
        return t

    def frame(self, t: int) -> np.ndarray:
        """Normalised frame t: [S, S, 3] float32 (read-only)."""
        t = self._check_index(t)
        if self._loader_error is not None:
            raise RuntimeError("frame loading failed in the background") from self._loader_error
        if t < self._num_preloaded:
            view = self._preloaded[t]
            view.flags.writeable = False
            return view
        with self._lock:
            if t in self._cache:
                self._cache.move_to_end(t)
                return self._cache[t]
            frame = normalize_frame(self._source.read(t), self.image_size)
            frame.flags.writeable = False
            self._cache[t] = frame
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return frame

    def original(self, t: int) -> np.ndarray:
        """Frame t as decoded, at video resolution: [H, W, 3] uint8 RGB (not cached)."""
        return np.asarray(self._source.read(self._check_index(t)).convert("RGB"))

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """Normalised frames at `indices`: [L, S, S, 3] float32."""
        out = np.empty((len(indices), self.image_size, self.image_size, 3), np.float32)
        for i, t in enumerate(indices):
            out[i] = self.frame(t)
        return out

    def _load_all(self) -> None:
        if self._num_preloaded == self.num_frames:
            return
        size = self.image_size
        store = np.empty((self.num_frames, size, size, 3), np.float32)
        self._preloaded = store
        for t, image in enumerate(self._source):
            store[t] = normalize_frame(image, size)
            self._num_preloaded = t + 1
        with self._lock:
            self._cache.clear()

    def _load_all_recording_error(self) -> None:
        try:
            self._load_all()
        except Exception as err:  # re-raised by frame() and wait(), as the official loader does
            self._loader_error = err

    def preload(self, background: bool = False) -> "VideoFrames":
        """Decode every frame into a [T, S, S, 3] float32 store (memory grows with T).

        With `background=True` a daemon thread does it while `frame()` keeps serving (frames
        already loaded come from the store, the others are decoded on demand); `wait()` joins it.
        """
        if background:
            self._loader = threading.Thread(target=self._load_all_recording_error, daemon=True)
            self._loader.start()
        else:
            self._load_all()
        return self

    def wait(self) -> None:
        """Wait for a background `preload` to finish; raise its error if it failed."""
        if self._loader is not None:
            self._loader.join()
        if self._loader_error is not None:
            raise RuntimeError("frame loading failed in the background") from self._loader_error

    def verify(self) -> None:
        """Decode every frame (nothing is cached); raise ValueError naming the first bad one.

        Also checks that every frame has the video's size.
        """
        expected = (self.video_width, self.video_height)
        for t, image in enumerate(self._source):
            if image.size != expected:
                raise ValueError(
                    f"frame {self._source.describe(t)} has size (w, h) = "
                    f"{image.size}, the video is {expected}"
                )


def load_video_frames(
    video: VideoInput,
    image_size: int,
    async_loading: bool = False,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> VideoFrames:
    """Open a video (JPEG folder, video file path or bytes, or uint8 array [T, H, W, 3]).

    Frames decode lazily into an LRU cache of `cache_size` frames; with `async_loading` all
    frames are also preloaded in a background thread (as the official `async_loading_frames`).
    Raises FileNotFoundError for a missing path, TypeError for another kind of object, and
    ValueError for a folder without JPEG frames, a non-integer frame name, an unreadable first
    frame, an unsupported file, a video without frames, or an array of the wrong shape/dtype.
    """
    frames = VideoFrames(video, image_size, cache_size)
    if async_loading:
        frames.preload(background=True)
    return frames
