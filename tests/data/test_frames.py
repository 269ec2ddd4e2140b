"""sam2_jax.data.frames vs the official sam2/utils/misc.py::load_video_frames (JPEG folder)."""

import shutil

import av
import numpy as np
import pytest
from conftest import SHARED_DATA
from oracle import assert_close
from PIL import Image
from sam2.utils.misc import load_video_frames as official_load_video_frames

from sam2_jax.data import VideoFrames, load_video_frames

# The JPEG path reproduces the official arithmetic step by step: bit-identical.
TOL_EXACT = 0.0
# H.264 (crf 10, yuv420p) vs the JPEG frames it was encoded from, after the same normalisation:
# chroma subsampling + lossy coding; measured mean |err| 0.0201 normalised units (~1.2 grey levels).
MP4_MEAN_ABS_BOUND = 0.04
NUM_FRAMES = 12
BEDROOM = SHARED_DATA / "sam2_demo" / "bedroom"


def _write_bedroom(folder, num):
    """Copy the first `num` bedroom frames into `folder`."""
    for t in range(num):
        shutil.copy(BEDROOM / f"{t:05d}.jpg", folder / f"{t:05d}.jpg")


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """The first 12 bedroom frames, copied into a temporary folder."""
    folder = tmp_path_factory.mktemp("bedroom12")
    _write_bedroom(folder, NUM_FRAMES)
    return folder


@pytest.fixture(scope="module")
def rgb_frames(jpeg_folder):
    """The decoded frames, uint8 RGB [12, H, W, 3]."""
    paths = sorted(jpeg_folder.iterdir())
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


@pytest.fixture(scope="module")
def mp4_file(tmp_path_factory, rgb_frames):
    """The 12 frames encoded as H.264 with PyAV (B-frames: decode order != presentation order)."""
    path = tmp_path_factory.mktemp("mp4") / "bedroom.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "10"})
        stream.height, stream.width = rgb_frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for rgb in rgb_frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def _official(folder, image_size):
    images, height, width = official_load_video_frames(
        video_path=str(folder),
        image_size=image_size,
        offload_video_to_cpu=True,
        async_loading_frames=False,
    )
    return images.permute(0, 2, 3, 1).numpy(), height, width


@pytest.mark.parametrize("image_size", [256, 512])
def test_jpeg_folder_matches_official(jpeg_folder, image_size):
    ref, height, width = _official(jpeg_folder, image_size)
    video = load_video_frames(jpeg_folder, image_size)
    assert (video.num_frames, video.video_height, video.video_width) == (NUM_FRAMES, height, width)
    assert video.image_size == image_size
    ours = video.frames(range(NUM_FRAMES))
    assert ours.shape == (NUM_FRAMES, image_size, image_size, 3) and ours.dtype == np.float32
    assert_close(ours, ref, TOL_EXACT, f"jpeg frames S={image_size}")
    assert_close(video.frame(7), ref[7], TOL_EXACT, "frame(7)")
    assert_close(
        VideoFrames(str(jpeg_folder), image_size).preload().frames(range(NUM_FRAMES)),
        ref,
        TOL_EXACT,
        "preloaded frames",
    )
    background = load_video_frames(jpeg_folder, image_size, async_loading=True)
    first = background.frame(3)
    background.wait()
    assert_close(first, ref[3], TOL_EXACT, "frame during async loading")
    assert_close(background.frames(range(NUM_FRAMES)), ref, TOL_EXACT, "async-loaded frames")
    assert background.cached_indices == ()  # everything is in the preloaded store


def test_array_input_matches_jpeg_folder(jpeg_folder, rgb_frames):
    ref = load_video_frames(jpeg_folder, 256).frames(range(NUM_FRAMES))
    video = load_video_frames(rgb_frames, 256)
    assert (video.num_frames, video.video_height, video.video_width) == (NUM_FRAMES, 540, 960)
    assert_close(video.frames(range(NUM_FRAMES)), ref, TOL_EXACT, "array frames")


def test_mp4(mp4_file, jpeg_folder):
    ref = load_video_frames(jpeg_folder, 256).frames(range(NUM_FRAMES))
    video = load_video_frames(mp4_file, 256, cache_size=4)
    assert (video.num_frames, video.video_height, video.video_width) == (NUM_FRAMES, 540, 960)
    ours = video.frames(range(NUM_FRAMES))
    assert ours.shape == (NUM_FRAMES, 256, 256, 3) and ours.dtype == np.float32
    mean_abs = float(np.abs(ours - ref).mean())
    print(f"mp4 vs jpeg: mean abs err {mean_abs:.4f}, max {np.abs(ours - ref).max():.3f}")
    assert mean_abs < MP4_MEAN_ABS_BOUND
    # Random access (seeks) decodes exactly the frames that sequential decoding gives.
    preloaded = load_video_frames(mp4_file, 256).preload().frames(range(NUM_FRAMES))
    seeking = load_video_frames(mp4_file, 256, cache_size=1)
    for t in [11, 3, 4, 0, 7, 6, 10, 11]:  # seeks backwards/forwards, or continues (3->4, 10->11)
        assert_close(seeking.frame(t), preloaded[t], TOL_EXACT, f"mp4 frame {t} by seeking")
    from_bytes = load_video_frames(mp4_file.read_bytes(), 256)
    assert_close(from_bytes.frames([0, 5, 11]), preloaded[[0, 5, 11]], TOL_EXACT, "mp4 bytes")
    video.verify()


def test_lru_cache_is_bounded(jpeg_folder):
    video = load_video_frames(jpeg_folder, 64, cache_size=3)
    ref = VideoFrames(jpeg_folder, 64).preload().frames(range(NUM_FRAMES))
    rng = np.random.default_rng(0)
    for t in rng.integers(0, NUM_FRAMES, size=40):
        assert_close(video.frame(t), ref[t], TOL_EXACT, f"cached frame {t}")
        assert len(video.cached_indices) <= 3
        assert video.cached_indices[-1] == t
    for t in [0, 1, 2, 0, 3]:
        video.frame(t)
    assert video.cached_indices == (2, 0, 3)  # 1 was the least recently used
    with pytest.raises(ValueError, match="read-only"):
        video.frame(0)[0, 0, 0] = 1.0


def test_jpeg_names_sorted_by_integer_stem(tmp_path):
    colours = {"0.jpg": 0, "2.Jpg": 2, "10.jpeg": 10, "1.JPG": 1, "notes.txt": None}
    for name, value in colours.items():
        if value is None:
            (tmp_path / name).write_text("not a frame")
        else:
            Image.new("RGB", (20, 10), (20 * value, 0, 0)).save(tmp_path / name, "JPEG")
    video = load_video_frames(tmp_path, 8)
    assert (video.num_frames, video.video_height, video.video_width) == (4, 10, 20)
    red = video.frames(range(4))[:, 4, 4, 0] * 0.229 + 0.485
    assert np.argsort(red).tolist() == [0, 1, 2, 3] and red[3] > 0.7


def test_corrupt_jpeg(tmp_path):
    _write_bedroom(tmp_path, 4)
    bad = tmp_path / "00002.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    video = load_video_frames(tmp_path, 32)  # frame 0 is fine: opening succeeds
    video.frame(1)
    with pytest.raises(ValueError, match="00002.jpg"):
        video.frame(2)
    with pytest.raises(ValueError, match="00002.jpg"):
        video.verify()
    with pytest.raises(ValueError, match="00002.jpg"):
        video.preload()
    background = load_video_frames(tmp_path, 32, async_loading=True)
    with pytest.raises(RuntimeError, match="background"):
        background.wait()
    with pytest.raises(RuntimeError, match="background"):
        background.frame(0)
    (tmp_path / "00000.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="00000.jpg"):
        load_video_frames(tmp_path, 32)


def test_truncated_jpeg(tmp_path):
    _write_bedroom(tmp_path, 3)
    data = (tmp_path / "00001.jpg").read_bytes()
    (tmp_path / "00001.jpg").write_bytes(data[: len(data) // 2])
    video = load_video_frames(tmp_path, 32)
    with pytest.raises(ValueError, match="corrupt JPEG frame .*00001.jpg"):
        video.frame(1)
    with pytest.raises(ValueError, match="00001.jpg"):
        video.verify()


def test_verify_checks_frame_sizes(tmp_path):
    _write_bedroom(tmp_path, 2)
    Image.new("RGB", (30, 20)).save(tmp_path / "00002.jpg")
    video = load_video_frames(tmp_path, 32)
    video.frame(2)  # a frame of another size still loads; verify() reports it
    with pytest.raises(ValueError, match="00002.jpg"):
        video.verify()


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_video_frames(tmp_path / "missing", 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no JPEG frames.*empty"):
        load_video_frames(empty, 32)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    Image.new("RGB", (8, 8)).save(pngs / "00000.png")
    with pytest.raises(ValueError, match="pngs"):
        load_video_frames(pngs, 32)
    named = tmp_path / "named"
    named.mkdir()
    Image.new("RGB", (8, 8)).save(named / "00000.jpg")
    Image.new("RGB", (8, 8)).save(named / "frame_1.jpg")
    with pytest.raises(ValueError, match="frame_1.jpg"):
        load_video_frames(named, 32)


def test_file_and_input_errors(tmp_path, rgb_frames):
    garbage = tmp_path / "clip.bin"
    garbage.write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(ValueError, match="unsupported file type.*clip.bin"):
        load_video_frames(garbage, 32)
    text = tmp_path / "clip.txt"
    text.write_text("hello\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_video_frames(text, 32)
    empty_mp4 = tmp_path / "empty.mp4"
    with av.open(str(empty_mp4), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    with pytest.raises(ValueError, match="no video frames"):
        load_video_frames(empty_mp4, 32)
    with pytest.raises(ValueError, match=r"uint8 RGB \[T, H, W, 3\]"):
        load_video_frames(rgb_frames.astype(np.float32), 32)
    with pytest.raises(ValueError, match=r"uint8 RGB \[T, H, W, 3\]"):
        load_video_frames(rgb_frames[0], 32)
    with pytest.raises(ValueError, match=r"uint8 RGB \[T, H, W, 3\]"):
        load_video_frames(rgb_frames[..., :2], 32)
    with pytest.raises(ValueError, match="no frames"):
        load_video_frames(rgb_frames[:0], 32)
    with pytest.raises(TypeError, match="int"):
        load_video_frames(3, 32)
    with pytest.raises(ValueError, match="cache_size"):
        load_video_frames(rgb_frames, 32, cache_size=0)
    video = load_video_frames(rgb_frames[:2], 32)
    with pytest.raises(IndexError, match="out of range"):
        video.frame(2)
