"""sam2_jax.eval.formats: DAVIS / MOSE / YouTube-VOS / SA-V layouts, mask PNG reading and
(atomic) writing as the official tools/vos_inference.py, and clear errors on bad input."""

import hashlib

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from sam2_jax.eval import (
    DAVIS_PALETTE,
    expected_prediction_paths,
    list_videos,
    load_video,
    merge_object_masks,
    prediction_path,
    read_label_png,
    read_object_png,
    read_prediction_labels,
    score_video,
    split_label_map,
    write_label_png,
    write_prediction,
)

# sha256 of the 768 bytes of `DAVIS_PALETTE` in the official tools/vos_inference.py.
OFFICIAL_DAVIS_PALETTE_SHA256 = "ec76f86cfddd0f4c0768796cda862d8f5099af416b298a406db7e84b55136fc9"
DAVIS2017 = SHARED_DATA / "davis2017_mini"
H, W = 6, 8


def _labels(t: int, ids=(1, 2)) -> np.ndarray:
    """A small label map [H, W] with one block per id, moving with t."""
    labels = np.zeros((H, W), np.uint8)
    for i, k in enumerate(ids):
        labels[1 + i * 3 : 3 + i * 3, t % 4 : t % 4 + 3] = k
    return labels


def _jpegs(folder, stems, size=(W, H)):
    folder.mkdir(parents=True)
    for stem in stems:
        Image.new("RGB", size, (40, 80, 120)).save(folder / f"{stem}.jpg")


def _label_dataset(root, fmt, video="v1", num_frames=5, annotated=None, folder=""):
    """A davis/mose/ytvos dataset with one video; `annotated` frames get _labels(t)."""
    stems = [f"{t:05d}" for t in range(num_frames)]
    _jpegs(root / "JPEGImages" / folder / video, stems)
    for t in range(num_frames) if annotated is None else annotated:
        write_label_png(root / "Annotations" / folder / video / f"{stems[t]}.png", _labels(t))
    return root


def _sav_dataset(root, video="sav_000001", num_frames=9):
    """An SA-V dataset: 9 frames at 24 fps, objects 000 and 001 annotated on every 4th frame
    as binary mode-L PNGs (0/255)."""
    stems = [f"{t:05d}" for t in range(num_frames)]
    _jpegs(root / "JPEGImages_24fps" / video, stems)
    for object_id in (0, 1):
        folder = root / "Annotations_6fps" / video / f"{object_id:03d}"
        folder.mkdir(parents=True)
        for t in range(0, num_frames, 4):
            mask = _labels(t) == object_id + 1
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{stems[t]}.png")
    return root


# ----------------------------------------------------------------------------- PNG I/O


def test_davis_palette_is_the_official_one():
    assert len(DAVIS_PALETTE) == 768
    assert hashlib.sha256(DAVIS_PALETTE).hexdigest() == OFFICIAL_DAVIS_PALETTE_SHA256
    assert DAVIS_PALETTE[3:6] == bytes([128, 0, 0])
    assert DAVIS_PALETTE[-3:] == bytes([224, 224, 192])  # 255, void


def test_write_label_png_round_trip_and_palette(tmp_path):
    labels = _labels(1, ids=(1, 255))
    path = tmp_path / "a" / "b" / "00000.png"
    write_label_png(path, labels)
    with Image.open(path) as image:
        assert image.mode == "P"
        assert bytes(image.getpalette()) == DAVIS_PALETTE
    np.testing.assert_array_equal(read_label_png(path), labels)
    custom = bytes(range(12))
    write_label_png(path, labels, palette=custom)
    with Image.open(path) as image:
        assert bytes(image.getpalette()[:12]) == custom
    assert sorted(p.name for p in path.parent.iterdir()) == ["00000.png"]  # no temporary left
    with pytest.raises(ValueError, match="0..255"):
        write_label_png(path, np.full((2, 2), 300))
    with pytest.raises(ValueError, match=r"integer \[H, W\]"):
        write_label_png(path, np.zeros((2, 2), np.float32))


def test_write_label_png_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "00000.png"
    write_label_png(path, _labels(0))
    before = path.read_bytes()

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise KeyboardInterrupt  # the writer is interrupted mid-file

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        write_label_png(path, _labels(2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["00000.png"]


def test_merge_object_masks_lowest_id_wins():
    a = np.zeros((H, W), bool)
    a[0:4, 0:4] = True
    b = np.zeros((H, W), bool)
    b[2:6, 2:6] = True
    labels = merge_object_masks({5: b, 2: a}, H, W)
    assert labels[3, 3] == 2 and labels[5, 5] == 5 and labels[0, 0] == 2 and labels[0, 7] == 0
    assert merge_object_masks({1: a[None]}, H, W)[0, 0] == 1  # [1, H, W] as the predictor gives
    with pytest.raises(ValueError, match="1..255"):
        merge_object_masks({0: a}, H, W)
    with pytest.raises(ValueError, match="expected"):
        merge_object_masks({1: a[:3]}, H, W)
    assert sorted(split_label_map(labels)) == [2, 5]


def test_read_label_png_modes(tmp_path):
    ids = _labels(0, ids=(1, 2))
    Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8)).save(tmp_path / "binary.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "binary.png"), (ids > 0) * 1)
    with_void = np.where(ids == 2, 255, ids).astype(np.uint8)
    Image.fromarray(with_void).save(tmp_path / "gray.png")  # L holding ids and void
    np.testing.assert_array_equal(read_label_png(tmp_path / "gray.png"), with_void)
    Image.fromarray(ids > 0).save(tmp_path / "bilevel.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "bilevel.png"), (ids > 0) * 1)


def test_rgb_annotations_convert_via_the_palette(tmp_path):
    ids = _labels(0, ids=(1, 2))
    rgb = np.frombuffer(DAVIS_PALETTE, np.uint8).reshape(256, 3)[ids]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgb.png"), ids)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgba.png"), ids)
    custom = bytes([0, 0, 0, 10, 20, 30, 40, 50, 60])
    rgb = np.frombuffer(custom, np.uint8).reshape(3, 3)[ids]
    Image.fromarray(rgb).save(tmp_path / "custom.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "custom.png", custom), ids)
    with pytest.raises(ValueError, match=r"custom\.png.*\(10, 20, 30\).*not in the palette"):
        read_label_png(tmp_path / "custom.png")


def test_bad_pngs_name_the_file(tmp_path):
    write_label_png(tmp_path / "good.png", _labels(0))
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.png").write_bytes(b"not a png at all")
    for name in ("truncated.png", "garbage.png"):
        with pytest.raises(ValueError, match=rf"{name}.*corrupt"):
            read_label_png(tmp_path / name)
    Image.fromarray(np.zeros((H, W), np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(ValueError, match=r"float\.tiff' has mode F"):
        read_label_png(tmp_path / "float.tiff")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_label_png(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="more than one object"):
        read_object_png(tmp_path / "good.png")


# ----------------------------------------------------------------------------- layouts


def test_davis2017_mini_layout():
    assert list_videos(DAVIS2017, "davis") == ["blackswan", "car-shadow"]  # ImageSets/2017
    video = load_video(DAVIS2017, "davis", "car-shadow")
    assert (video.num_frames, video.height, video.width) == (40, 480, 854)
    assert video.annotated == tuple(range(40))
    assert video.frame_names[:2] == ("00000", "00001")
    assert video.palette[:6] == bytes([0, 0, 0, 128, 0, 0])
    prompts = video.initial_masks()
    assert list(prompts) == [1] and prompts[1][0] == 0 and prompts[1][1].any()
    assert list_videos(SHARED_DATA / "davis_mini", "davis") == ["blackswan", "car-shadow"]


def test_davis_lists(tmp_path):
    root = _label_dataset(tmp_path, "davis", folder="480p")
    _label_dataset(tmp_path, "davis", video="v0", folder="480p")
    assert list_videos(root, "davis") == ["v0", "v1"]  # no ImageSets: the folders
    sets = root / "ImageSets" / "480p"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text(
        "/JPEGImages/480p/v1/00000.jpg /Annotations/480p/v1/00000.png\n"
        "/JPEGImages/480p/v1/00001.jpg /Annotations/480p/v1/00001.png\n"
    )
    assert list_videos(root, "davis") == ["v1"]  # DAVIS-2016 list of frame paths
    (tmp_path / "mine.txt").write_text("v0\n\nv1\n")
    assert list_videos(root, "davis", video_list=tmp_path / "mine.txt") == ["v0", "v1"]


@pytest.mark.parametrize("fmt", ["davis", "mose"])
def test_label_format_round_trip_and_scores(tmp_path, fmt):
    root = _label_dataset(tmp_path / "data", fmt, folder="480p" if fmt == "davis" else "")
    video = load_video(root, fmt, "v1")
    assert video.annotated == tuple(range(5)) and video.object_frames == {}
    prompts = video.initial_masks()
    assert list(prompts) == [1, 2] and all(t == 0 for t, _ in prompts.values())
    pred_root = tmp_path / "pred"
    for t in range(video.num_frames):
        write_prediction(pred_root, video, t, video.read_object_masks(t))
    assert all(p.is_file() for p in expected_prediction_paths(pred_root, video))
    np.testing.assert_array_equal(read_prediction_labels(pred_root, video, 3), _labels(3))
    scores = score_video(video, pred_root)
    assert [s.object_id for s in scores] == [1, 2]
    assert all(s.frames == (1, 2, 3) and (s.j == 1).all() and (s.f == 1).all() for s in scores)
    prediction_path(pred_root, video, 2).unlink()
    with pytest.raises(FileNotFoundError, match=r"prediction '.*00002\.png' is missing"):
        score_video(video, pred_root)


def test_ytvos_objects_appearing_later(tmp_path):
    root = tmp_path / "data"
    stems = [f"{t:05d}" for t in range(0, 30, 5)]
    _jpegs(root / "JPEGImages" / "vid", stems)
    for i, stem in enumerate(stems[:4]):
        labels = _labels(i, ids=(1,) if i < 2 else (1, 2))
        write_label_png(root / "Annotations" / "vid" / f"{stem}.png", labels)
    video = load_video(root, "ytvos", "vid")
    assert video.annotated == (0, 1, 2, 3)
    prompts = video.initial_masks()
    assert {k: t for k, (t, _) in prompts.items()} == {1: 0, 2: 2}
    pred_root = tmp_path / "pred"
    for t in range(video.num_frames):
        masks = video.read_object_masks(t) if t in video.annotated else {}
        write_prediction(pred_root, video, t, masks)
    scores = score_video(video, pred_root)
    assert [(s.object_id, s.frames) for s in scores] == [(1, (1, 2)), (2, (2,))]


def test_sav_layout_per_object_pngs(tmp_path):
    root = _sav_dataset(tmp_path / "data")
    assert list_videos(root, "sav") == ["sav_000001"]
    video = load_video(root, "sav", "sav_000001")
    assert video.object_frames == {0: (0, 4, 8), 1: (0, 4, 8)} and video.annotated == (0, 4, 8)
    assert video.palette is None  # mode L annotations: predictions get the DAVIS palette
    prompts = video.initial_masks()
    assert list(prompts) == [0, 1] and all(t == 0 for t, _ in prompts.values())
    with pytest.raises(ValueError, match="per-object"):
        video.read_labels(0)
    pred_root = tmp_path / "pred"
    for t in range(video.num_frames):
        everything = np.ones((H, W), bool)  # overlapping objects are fine in SA-V
        write_prediction(pred_root, video, t, {0: everything, 1: _labels(t) == 2})
    paths = expected_prediction_paths(pred_root, video)
    assert len(paths) == 2 * 9 and all(p.is_file() for p in paths)
    assert paths[0] == pred_root / "sav_000001" / "000" / "00000.png"
    with Image.open(paths[0]) as image:
        assert image.mode == "P" and set(np.unique(np.asarray(image))) == {1}
    scores = score_video(video, pred_root)
    assert [(s.object_id, s.frames) for s in scores] == [(0, (4,)), (1, (4,))]
    assert scores[0].j[0] == (_labels(4) == 1).sum() / (H * W) and scores[1].j[0] == 1


# ----------------------------------------------------------------------------- bad input


def test_unknown_format_and_missing_or_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format 'kitti'"):
        list_videos(tmp_path, "kitti")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_videos(tmp_path / "nowhere", "mose")
    with pytest.raises(FileNotFoundError, match="not a mose dataset.*JPEGImages"):
        list_videos(tmp_path, "mose")
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(ValueError, match="no videos found"):
        list_videos(tmp_path, "mose")
    (tmp_path / "JPEGImages" / "v").mkdir()
    (tmp_path / "Annotations" / "v").mkdir()
    with pytest.raises(ValueError, match="no JPEG frames"):
        load_video(tmp_path, "mose", "v")
    _jpegs(tmp_path / "JPEGImages" / "w", ["00000"])
    (tmp_path / "Annotations" / "w").mkdir()
    with pytest.raises(ValueError, match=r"no annotation PNGs in '.*Annotations/w'"):
        load_video(tmp_path, "mose", "w")
    with pytest.raises(FileNotFoundError, match="frame folder"):
        load_video(tmp_path, "mose", "missing")


def test_missing_first_frame_annotation(tmp_path):
    root = _label_dataset(tmp_path / "davis", "davis", annotated=[1, 2], folder="480p")
    with pytest.raises(ValueError, match=r"missing first-frame annotation '.*v1/00000\.png'"):
        load_video(root, "davis", "v1")
    root = _label_dataset(tmp_path / "ytvos", "ytvos", annotated=[1, 2])
    assert load_video(root, "ytvos", "v1").annotated == (1, 2)  # objects may appear later


def test_frames_and_annotations_mismatch(tmp_path):
    root = _label_dataset(tmp_path / "a", "mose")
    write_label_png(root / "Annotations" / "v1" / "00007.png", _labels(0))
    with pytest.raises(ValueError, match=r"00007\.png' has no frame.*do not match"):
        load_video(root, "mose", "v1")
    root = _label_dataset(tmp_path / "b", "mose")
    write_label_png(root / "Annotations" / "v1" / "00003.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(ValueError, match=r"00003\.png' is 8x7 but the frames are 8x6"):
        load_video(root, "mose", "v1")
    root = _label_dataset(tmp_path / "c", "mose", annotated=[0, 1, 3, 4])
    video = load_video(root, "mose", "v1")
    with pytest.raises(ValueError, match=r"frame '00002\.jpg' has no ground-truth annotation"):
        score_video(video, tmp_path / "pred")
    root = _label_dataset(tmp_path / "d", "mose")
    Image.new("RGB", (W, H)).save(root / "JPEGImages" / "v1" / "frame_a.jpg")
    with pytest.raises(ValueError, match=r"frame_a\.jpg' is not named '<frame_index>"):
        load_video(root, "mose", "v1")


def test_corrupt_annotation_is_named(tmp_path):
    root = _label_dataset(tmp_path, "mose")
    (root / "Annotations" / "v1" / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match=r"00002\.png' \(corrupt"):
        load_video(root, "mose", "v1")


def test_sav_bad_layouts(tmp_path):
    root = _sav_dataset(tmp_path / "a")
    (root / "Annotations_6fps" / "sav_000001" / "000" / "00000.png").unlink()
    with pytest.raises(ValueError, match=r"missing first-frame annotation '.*000/00000\.png'"):
        load_video(root, "sav", "sav_000001")
    root = _sav_dataset(tmp_path / "b")
    write_label_png(root / "Annotations_6fps" / "sav_000001" / "00000.png", _labels(0))
    with pytest.raises(ValueError, match="is not an object folder"):
        load_video(root, "sav", "sav_000001")
