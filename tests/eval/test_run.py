"""eval.py end to end: DAVIS layout and scores (checked with vos-benchmark), equality with the
video predictor, 1 vs 8 devices, resume after SIGKILL, the clicks protocol, `score`, bad input.

A reduced model (sam2.1_test_tiny at 128 px) with random weights, saved as an official `.pt`;
its object-score bias is raised so objects are predicted present and masks are non-trivial.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from vos_benchmark.benchmark import VideoEvaluator

from sam2_jax import build_sam2, build_sam2_video_predictor
from sam2_jax.checkpoint.export import export_official_checkpoint
from sam2_jax.data.synthetic import synthetic_video, write_davis_dataset
from sam2_jax.eval.formats import (
    list_videos,
    load_video,
    merge_object_masks,
    read_label_png,
    write_label_png,
)
from sam2_jax.eval.interactive import correction_clicks
from sam2_jax.eval.metrics import ObjectScores
from sam2_jax.eval.run import EvalError, baseline, main, run, score

REPO = Path(__file__).resolve().parents[2]
DAVIS2017 = SHARED_DATA / "davis2017_mini"
CONFIG = "sam2.1_test_tiny"
MODEL_OVERRIDES = ["image_size=128"]
TOL_VOS_BENCHMARK = 1e-6  # vos-benchmark reports x100 float64 means of the same definitions


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    model = build_sam2(CONFIG, overrides=MODEL_OVERRIDES, seed=3)
    params = jax.tree.map(np.array, model.params["params"])  # writable copies
    params["sam_mask_decoder"]["pred_obj_score_head"]["layers_2"]["bias"][:] = 4.0
    path = tmp_path_factory.mktemp("ckpt") / "test_tiny.pt"
    return export_official_checkpoint(params, path)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_davis_dataset(root, range(5), num_frames=8, height=64, width=96, num_objects=2)
    return root


def _args(checkpoint, data, out, *extra):
    return [
        "--config", CONFIG, "--checkpoint", str(checkpoint), "--data", str(data),
        "--out", str(out), *extra, *MODEL_OVERRIDES,
    ]  # fmt: skip


def _labels(root: Path, video: str) -> np.ndarray:
    return np.stack([read_label_png(p) for p in sorted((root / video).glob("*.png"))])


def test_davis2017_end_to_end_matches_vos_benchmark_and_the_predictor(checkpoint, tmp_path):
    out = tmp_path / "out"
    summary = run(_args(checkpoint, DAVIS2017, out, "--devices", "1"))
    for name in list_videos(DAVIS2017, "davis"):
        video = load_video(DAVIS2017, "davis", name)
        pngs = sorted((out / name).glob("*.png"))
        assert [p.stem for p in pngs] == list(video.frame_names)
        with Image.open(pngs[0]) as image:
            assert image.mode == "P"
        # the written masks are the video predictor's (official semantics, parity-tested)
        predictor = build_sam2_video_predictor(
            CONFIG, checkpoint, ["non_overlap_masks=True", *MODEL_OVERRIDES], False
        )
        state = predictor.init_state(str(video.frames_dir))
        for object_id, (t, mask) in video.initial_masks().items():
            predictor.add_new_mask(state, t, object_id, mask)
        labels = _labels(out, name)
        for t, obj_ids, logits in predictor.propagate_in_video(state):
            expected = np.zeros(labels.shape[1:], np.uint8)
            for i in reversed(range(len(obj_ids))):
                expected[logits[i, 0] > 0] = obj_ids[i]
            np.testing.assert_array_equal(labels[t], expected, err_msg=f"{name} frame {t}")
        assert 0.01 < (labels[1:] > 0).mean() < 0.99, "masks are trivial"
        # scores: ours (from the written PNGs) == vos-benchmark on the same PNGs
        _, vos_j, vos_f = VideoEvaluator(str(video.annotations_dir.parent), str(out))(name)
        per_object = json.loads((out / ".eval" / "videos" / f"{name}.json").read_text())
        vos_j, vos_f = ({int(k): v for k, v in d.items()} for d in (vos_j, vos_f))
        assert sorted(vos_j) == [s["object_id"] for s in per_object["scores"]]
        for s in per_object["scores"]:
            k = s["object_id"]
            assert abs(np.mean(s["j"]) * 100 - vos_j[k]) <= TOL_VOS_BENCHMARK
            assert abs(np.mean(s["f"]) * 100 - vos_f[k]) <= TOL_VOS_BENCHMARK
    assert summary["videos"] == 2 and summary["objects"] == 2 and not summary["failed"]
    assert 0 < summary["J-Mean"] < 1 and summary["run"]["frames_this_run"] == 90
    assert summary["run"]["checkpoint_sha256"] and summary["run"]["frames_per_second"] > 0
    csv = (out / "global_results-val.csv").read_text().splitlines()
    assert csv[0].startswith("J&F-Mean,J-Mean,J-Recall") and len(csv) == 2
    # `score` on the written PNGs gives the same numbers, without a model
    rescored = score(["--data", str(DAVIS2017), "--pred", str(out)])
    assert rescored["J&F-Mean"] == summary["J&F-Mean"]
    # a second run into the same folder resumes: nothing left to do, same summary
    again = run(_args(checkpoint, DAVIS2017, out, "--devices", "1"))
    assert again["run"]["frames_this_run"] == 0 and again["J&F-Mean"] == summary["J&F-Mean"]


def test_eight_devices_give_the_same_masks_as_one(checkpoint, synthetic, tmp_path):
    assert jax.local_device_count() == 8
    one = run(_args(checkpoint, synthetic, tmp_path / "one", "--devices", "1"))
    eight = run(_args(checkpoint, synthetic, tmp_path / "eight", "--overlays"))
    assert eight["run"]["videos_per_batch"] == 8 and one["run"]["videos_per_batch"] == 1
    for name in list_videos(synthetic, "davis"):
        np.testing.assert_array_equal(
            _labels(tmp_path / "one", name), _labels(tmp_path / "eight", name)
        )
        assert (tmp_path / "eight" / "overlays" / f"{name}.gif").is_file()
        assert len(list((tmp_path / "eight" / "overlays" / name).glob("*.jpg"))) == 8
    assert one["J&F-Mean"] == eight["J&F-Mean"]


def test_killed_run_resumes_to_the_same_result(checkpoint, tmp_path, compilation_cache_env):
    data = tmp_path / "data"
    names = write_davis_dataset(data, range(10, 16), num_frames=10, height=64, width=96)
    reference = run(_args(checkpoint, data, tmp_path / "reference", "--devices", "1"))
    out = tmp_path / "killed"
    cmd = [sys.executable, str(REPO / "eval.py"), *_args(checkpoint, data, out, "--devices", "1")]
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        **compilation_cache_env,  # the resumed run loads the killed run's compiled programs
    }
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    records = out / ".eval" / "videos"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(records.glob("*.json")))
    assert 2 <= finished < len(names), finished
    assert not (out / "summary.json").exists()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stderr=subprocess.DEVNULL)
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["run"]["frames_this_run"] == 10 * (len(names) - finished)
    for key in ("run",):
        resumed.pop(key), reference.pop(key)
    assert resumed == reference
    for name in names:
        np.testing.assert_array_equal(_labels(out, name), _labels(tmp_path / "reference", name))
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"


def test_clicks_protocol(checkpoint, synthetic, tmp_path):
    summary = run(
        _args(checkpoint, synthetic, tmp_path / "out", "--protocol", "clicks", "--rounds", "2",
              "--videos", "synth_00000,synth_00001")
    )  # fmt: skip
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert summary["rounds"][-1]["J&F-Mean"] == summary["J&F-Mean"]
    assert summary["videos"] == 2 and summary["objects"] == 4
    assert summary["run"]["protocol"] == "clicks" and summary["run"]["rounds"] == 2


def test_correction_click_goes_to_the_worst_frame(synthetic):
    video = load_video(synthetic, "davis", "synth_00002")
    gt = {t: video.read_labels(t) for t in range(video.num_frames)}
    prediction = {t: {1: gt[t] == 1, 2: gt[t] == 2} for t in gt}
    prediction[5][1] = np.zeros_like(gt[5], bool)  # object 1 missed on frame 5
    prediction[3][2] = (gt[3] == 2) | (gt[3] == 0)  # object 2 leaks into the background on 3
    frames = tuple(range(1, video.num_frames - 1))
    j1 = np.array([0.0 if t == 5 else 1.0 for t in frames])
    j2 = np.array([0.2 if t == 3 else 1.0 for t in frames])
    scores = [ObjectScores(1, frames, j1, j1), ObjectScores(2, frames, j2, j2)]
    clicks = correction_clicks(video, prediction, scores)
    (t1, (x1, y1, label1)), (t2, (x2, y2, label2)) = clicks[1], clicks[2]
    assert (t1, label1) == (5, 1) and gt[5][int(y1), int(x1)] == 1  # positive, on the object
    assert (t2, label2) == (3, 0) and gt[3][int(y2), int(x2)] == 0  # negative, in background
    perfect = [ObjectScores(1, frames, np.ones(len(frames)), np.ones(len(frames)))]
    assert correction_clicks(video, prediction, perfect) == {}


def test_score_ground_truth_is_perfect(tmp_path):
    pred = tmp_path / "pred"
    shutil.copytree(DAVIS2017 / "Annotations" / "480p", pred)
    summary = score(["--data", str(DAVIS2017), "--pred", str(pred)])
    assert summary["J&F-Mean"] == 1.0 and summary["objects"] == 2  # J = F = 1 on every frame
    davis2016 = score(["--data", str(SHARED_DATA / "davis_mini"), "--pred", str(pred)])
    assert davis2016["J&F-Mean"] == 1.0


@pytest.mark.parametrize("fmt", ["davis", "ytvos"])
def test_copy_first_frame_baseline(tmp_path, fmt):
    """Every object's prompt mask on every frame from its prompt frame on; scored as `score`."""
    data = DAVIS2017 if fmt == "davis" else tmp_path / "data"
    name = "blackswan" if fmt == "davis" else _write_layout(data, fmt, seed=31)
    out = tmp_path / "baseline"
    summary = baseline(["--data", str(data), "--format", fmt, "--out", str(out)])
    video = load_video(data, fmt, name)
    initial = video.initial_masks()
    assert fmt == "davis" or sorted(t0 for t0, _ in initial.values()) == [0, 4]
    for t, labels in enumerate(_labels(out, name)):
        shown = {k: mask for k, (t0, mask) in initial.items() if t >= t0}
        np.testing.assert_array_equal(labels, merge_object_masks(shown, video.height, video.width))
    rescored = score(["--data", str(data), "--format", fmt, "--pred", str(out)])
    assert rescored["J&F-Mean"] == summary["J&F-Mean"] < 1.0


def test_bad_input_is_named_and_skip_goes_on(checkpoint, tmp_path, capsys):
    data = tmp_path / "data"
    write_davis_dataset(data, [20, 21, 22], num_frames=4, height=64, width=96)
    # a corrupt frame in one video: --on-error skip records it and scores the others
    bad = data / "JPEGImages" / "480p" / "synth_00021" / "00002.jpg"
    bad.write_bytes(b"not a jpeg")
    summary = run(_args(checkpoint, data, tmp_path / "out", "--on-error", "skip"))
    assert summary["videos"] == 2 and [f["video"] for f in summary["failed"]] == ["synth_00021"]
    assert "00002.jpg" in summary["failed"][0]["error"]
    # ... and stops with the file named by default
    assert main(_args(checkpoint, data, tmp_path / "out2", "--devices", "1")) == 2
    assert "00002.jpg" in capsys.readouterr().err
    # missing first-frame annotation
    (data / "Annotations" / "480p" / "synth_00020" / "00000.png").unlink()
    assert main(_args(checkpoint, data, tmp_path / "out3", "--videos", "synth_00020")) == 2
    assert "missing first-frame annotation" in capsys.readouterr().err
    # frames and annotations that do not match
    png = data / "Annotations" / "480p" / "synth_00022" / "00001.png"
    write_label_png(png, np.zeros((10, 10), np.uint8))
    assert main(_args(checkpoint, data, tmp_path / "out4", "--videos", "synth_00022")) == 2
    assert "do not match" in capsys.readouterr().err
    # an empty data folder, an unknown video, an unknown format, another run's output folder
    (tmp_path / "empty").mkdir()
    assert main(_args(checkpoint, tmp_path / "empty", tmp_path / "out5")) == 2
    assert "is not a davis dataset" in capsys.readouterr().err
    assert main(_args(checkpoint, data, tmp_path / "out", "--videos", "nope")) == 2
    assert "nope not in the dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(checkpoint, data, tmp_path / "out", "--format", "kitti"))
    assert "invalid choice: 'kitti'" in capsys.readouterr().err
    before = (tmp_path / "out" / "summary.json").read_bytes()
    assert main(_args(checkpoint, data, tmp_path / "out", "--score-thresh", "0.5")) == 2
    assert "other settings (score_thresh differ)" in capsys.readouterr().err
    assert (tmp_path / "out" / "summary.json").read_bytes() == before


def test_default_run_without_a_trained_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EvalError, match="Run `python train.py`"):
        run([])
    assert len(list_videos(tmp_path / "runs" / "synthetic_val", "davis")) == 8


def _write_layout(root: Path, fmt: str, seed: int) -> str:
    """One synthetic video in the sav layout (per-object PNGs on every 2nd frame) or the ytvos
    layout (palette PNGs on every 2nd frame, object 2 first annotated on frame 4)."""
    clip = synthetic_video(seed, num_frames=9, height=64, width=96, num_objects=2)
    name = f"video{seed}"
    frames_dir = root / ("JPEGImages_24fps" if fmt == "sav" else "JPEGImages") / name
    annotations = root / ("Annotations_6fps" if fmt == "sav" else "Annotations") / name
    frames_dir.mkdir(parents=True)
    for t, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames_dir / f"{t:05d}.jpg", quality=90)
        if t % 2:
            continue
        labels = clip.labels[t].copy()
        if fmt == "ytvos":
            labels[(labels == 2) & (t < 4)] = 0
            write_label_png(annotations / f"{t:05d}.png", labels)
        else:
            for k in (1, 2):
                write_label_png(
                    annotations / f"{k:03d}" / f"{t:05d}.png", (labels == k).astype(np.uint8)
                )
    return name


@pytest.mark.parametrize("fmt", ["sav", "ytvos"])
def test_sav_and_ytvos_layouts(checkpoint, tmp_path, fmt):
    name = _write_layout(tmp_path / "data", fmt, seed=30)
    out = tmp_path / "out"
    summary = run(_args(checkpoint, tmp_path / "data", out, "--format", fmt, "--devices", "1"))
    assert summary["videos"] == 1 and summary["objects"] == 2 and not summary["failed"]
    video = load_video(tmp_path / "data", fmt, name)
    if fmt == "sav":  # one binary PNG per object and frame; overlaps allowed (no non-overlap)
        for k in (1, 2):
            pngs = sorted((out / name / f"{k:03d}").glob("*.png"))
            assert [p.stem for p in pngs] == list(video.frame_names)
            assert set(np.unique(np.stack([read_label_png(p) for p in pngs]))) <= {0, 1}
    else:  # object 2 is prompted on frame 4, the first frame annotating it: absent before
        labels = _labels(out, name)
        assert len(labels) == 9 and not (labels[:4] == 2).any() and (labels[4:] == 2).any()
