"""`eval.py`: video object segmentation evaluation over a dataset, resumable and sharded.

    python eval.py --config sam2.1_hiera_t --checkpoint FILE --data DIR --format davis \
        --out DIR [--protocol semi|clicks --rounds K] [k=v model overrides]
    python eval.py score --data DIR --pred DIR --format davis
    python eval.py baseline [--data DIR --out DIR]   # copy each first-frame mask to all frames
    python eval.py                 # the default run: a synthetic validation set and the model
                                   # of `python train.py`'s default run

Predictions are written in the benchmark's layout under --out (as `tools/vos_inference.py`),
scored with `sam2_jax.eval` (the DAVIS 2017 / SA-V toolkit definitions), and summarised in
--out/summary.json and the toolkit's CSVs (see `report.py`). Every PNG and record is written
atomically; a restarted run skips the videos it finished. Videos are tracked in lockstep batches
of `--videos-per-device` x devices, sharded over a `data` mesh axis of the local devices (each
host of a multi-host job takes every process_count-th video).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import jax
import numpy as np
from jax.sharding import AxisType, Mesh
from tqdm import tqdm

from sam2_jax.build import SAM2Model
from sam2_jax.data.frames import load_video_frames
from sam2_jax.data.synthetic import write_davis_dataset
from sam2_jax.eval.baseline import write_copy_first_frame
from sam2_jax.eval.formats import (
    FORMATS,
    Video,
    expected_prediction_paths,
    list_videos,
    load_video,
    merge_object_masks,
    read_prediction_labels,
    read_prediction_object,
    score_video,
    write_prediction,
)
from sam2_jax.eval.interactive import click_rounds
from sam2_jax.eval.overlays import write_overlays
from sam2_jax.eval.report import (
    STATE_DIR,
    VideoRecord,
    read_record,
    write_atomic,
    write_record,
    write_results,
)
from sam2_jax.eval.semi_supervised import predict_videos
from sam2_jax.memory_bank import capacity_bucket
from sam2_jax.predictors.video import SAM2VideoPredictor, build_sam2_video_predictor
from sam2_jax.streaming import DATA_AXIS

DEFAULT_TRAIN_RUN = Path("runs/default")  # `python train.py` writes model.json there
DEFAULT_SYNTHETIC_VAL = Path("runs/synthetic_val")
SYNTHETIC_VAL_SEEDS = tuple(range(100_000, 100_008))  # disjoint from training seeds (< 100_000)
DEFAULT_BASELINE_OUT = Path("runs/baselines/copy_first_frame")


class EvalError(Exception):
    """A problem with the command line, the data or the output folder (printed, exit 2)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What determines the predictions; a run resumes only into an --out written with these."""

    config: str
    overrides: tuple[str, ...]
    checkpoint: Optional[str]
    checkpoint_sha256: Optional[str]
    format: str
    protocol: str
    rounds: int
    score_thresh: float
    postprocessing: bool


# ----------------------------------------------------------------------------- arguments


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset folder")
    p.add_argument("--format", choices=FORMATS, default="davis", help="dataset layout")
    p.add_argument("--split", default="val", help="split list (davis ImageSets) and CSV names")
    p.add_argument("--resolution", default="480p", help="davis resolution folder")
    p.add_argument("--video-list", help="text file with one video name per line")
    p.add_argument("--videos", help="comma-separated video names to evaluate")
    p.add_argument("--max-videos", type=int, help="evaluate at most this many videos")
    p.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="a video that fails: stop (raise) or record it in the summary and go on (skip)",
    )


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eval.py",
        description="Video object segmentation evaluation (`eval.py score -h`: score only).",
    )
    p.add_argument("--config", help="model config name or file (default: the train run's)")
    p.add_argument("--checkpoint", help=".pt, orbax dir or HF checkpoint (none: random weights)")
    _common_arguments(p)
    p.add_argument("--out", help="output folder (predictions, CSVs, summary.json)")
    p.add_argument("--protocol", choices=("semi", "clicks"), default="semi")
    p.add_argument("--rounds", type=int, default=3, help="clicks protocol: interaction rounds")
    p.add_argument("--score-thresh", type=float, default=0.0, help="mask = logits > this")
    p.add_argument(
        "--postprocessing", action="store_true", help="the predictor's hole filling etc."
    )
    p.add_argument("--overlays", action="store_true", help="write overlay JPEGs and a GIF")
    p.add_argument("--devices", type=int, help="use the first N local devices (default all)")
    p.add_argument("--videos-per-device", type=int, default=1, help="videos in lockstep per device")
    p.add_argument("--random-weights", action="store_true", help="allow running without weights")
    p.add_argument("overrides", nargs="*", help="model config overrides key=value")
    return p


def _score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eval.py score", description="Score existing prediction PNGs (no model)."
    )
    _common_arguments(p)
    p.add_argument("--pred", required=True, help="predictions folder (<pred>/<video>/...)")
    return p


def _baseline_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eval.py baseline",
        description="The copy-first-frame baseline: each object's prompt mask on every later "
        "frame, written and scored like a model's predictions (default: the synthetic set).",
    )
    _common_arguments(p)
    p.add_argument("--out", help="predictions folder (default with the synthetic set: "
                   f"{DEFAULT_BASELINE_OUT})")  # fmt: skip
    return p


# ----------------------------------------------------------------------------- helpers


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _select_videos(args: argparse.Namespace) -> list[str]:
    names = list_videos(args.data, args.format, args.video_list, args.split, args.resolution)
    if args.videos:
        wanted = [v.strip() for v in args.videos.split(",") if v.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise EvalError(f"--videos: {', '.join(unknown)} not in the dataset's video list")
        names = [n for n in names if n in wanted]
    if args.max_videos is not None:
        if args.max_videos < 1:
            raise EvalError(f"--max-videos must be >= 1, got {args.max_videos}")
        names = names[: args.max_videos]
    return names


def _failure(name: str, err: Exception, on_error: str) -> VideoRecord:
    if on_error == "raise":
        raise err
    return VideoRecord(name=name, frames=0, error=f"{type(err).__name__}: {err}")


def _index(args, names: list[str]) -> tuple[list[Video], list[VideoRecord]]:
    videos, failed = [], []
    for name in names:
        try:
            videos.append(load_video(args.data, args.format, name, args.resolution))
        except (OSError, ValueError) as err:
            failed.append(_failure(name, err, args.on_error))
    return videos, failed


def _is_done(out: Path, video: Video) -> bool:
    record = read_record(out, video.name)
    if record is None or record.error is not None:
        return False
    ids = [s.object_id for s in record.scores]
    return all(p.is_file() for p in expected_prediction_paths(out, video, ids))


def _predicted_labels(pred: Path, video: Video, t: int, object_ids) -> np.ndarray:
    if video.format != "sav":
        return read_prediction_labels(pred, video, t)
    masks = {k: read_prediction_object(pred, video, k, t) for k in object_ids}
    return merge_object_masks(masks, video.height, video.width)


def _write_overlays(out: Path, video: Video, object_ids) -> None:
    frames = load_video_frames(video.frames_dir, 16)
    write_overlays(
        out / "overlays",
        video.name,
        (frames.original(t) for t in range(video.num_frames)),
        (_predicted_labels(out, video, t, object_ids) for t in range(video.num_frames)),
        video.frame_names,
    )


def _mesh(num_devices: Optional[int]) -> Mesh:
    devices = jax.local_devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise EvalError(f"--devices {num_devices}: this host has {len(devices)} devices")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def _settings_path(out: Path) -> Path:
    return out / STATE_DIR / "settings.json"


def _check_settings(out: Path, settings: Settings) -> None:
    """Raise EvalError when `out` holds a run with other settings (the checkpoint compared by
    content, not path)."""
    path = _settings_path(out)
    if not path.is_file():
        return
    previous = json.loads(path.read_text())
    current = json.loads(json.dumps(dataclasses.asdict(settings)))
    changed = sorted(k for k in current if k != "checkpoint" and previous.get(k) != current[k])
    if changed:
        raise EvalError(
            f"'{out}' holds a run with other settings ({', '.join(changed)} differ); "
            "use another --out (nothing was overwritten)"
        )


def _device_description() -> str:
    d = jax.local_devices()[0]
    return f"{jax.local_device_count()} x {d.platform} {d.device_kind}"


# ----------------------------------------------------------------------------- protocols


def _groups(videos: list[Video], size: int) -> list[list[Video]]:
    """Batches of `size` videos with the same object-count bucket, longest first."""
    key = {v.name: capacity_bucket(len(v.initial_masks())) for v in videos}
    ordered = sorted(videos, key=lambda v: (key[v.name], -v.num_frames, v.name))
    groups: list[list[Video]] = []
    for v in ordered:
        if groups and len(groups[-1]) < size and key[groups[-1][0].name] == key[v.name]:
            groups[-1].append(v)
        else:
            groups.append([v])
    return groups


def _finish(out: Path, video: Video, overlays: bool, bar, rounds=()) -> VideoRecord:
    """Score a video's written prediction, write overlays and its record."""
    scores = tuple(score_video(video, out))
    if overlays:
        _write_overlays(out, video, [s.object_id for s in scores])
    record = VideoRecord(video.name, video.num_frames, scores, tuple(tuple(r) for r in rounds))
    write_record(out, record)
    bar.set_postfix_str(f"{video.name} J&F {_jf(scores):.3f}")
    return record


def _jf(scores) -> float:
    return float(np.mean([(s.j.mean() + s.f.mean()) / 2 for s in scores])) if scores else 0.0


def _run_semi(args, model: SAM2Model, videos, out: Path, bar) -> list[VideoRecord]:
    mesh = _mesh(args.devices)
    size = mesh.devices.size * args.videos_per_device
    records = []
    for group in _groups(videos, size):
        try:
            for video in predict_videos(model, group, out, mesh, args.score_thresh, bar.update):
                records.append(_finish(out, video, args.overlays, bar))
        except (OSError, ValueError) as err:
            if len(group) == 1:
                records.append(_failure(group[0].name, err, args.on_error))
                continue
            done = {r.name for r in records}
            for video in group:  # find the failing video(s): one at a time
                if video.name not in done:
                    records.extend(_run_semi_single(args, model, video, out, bar))
    return records


def _run_semi_single(args, model, video, out, bar) -> list[VideoRecord]:
    try:
        return [
            _finish(out, done, args.overlays, bar)
            for done in predict_videos(model, [video], out, None, args.score_thresh, bar.update)
        ]
    except (OSError, ValueError) as err:
        return [_failure(video.name, err, args.on_error)]


def _run_clicks(args, model: SAM2Model, videos, out: Path, bar) -> list[VideoRecord]:
    predictor = SAM2VideoPredictor(model)
    records = []
    for video in videos:
        try:
            prediction, history = click_rounds(
                predictor, video, args.rounds, args.score_thresh, bar.update
            )
            empty = np.zeros((video.height, video.width), bool)
            ids = [s.object_id for s in history[-1]]
            for t in range(video.num_frames):
                masks = prediction.get(t, {})
                write_prediction(out, video, t, {k: masks.get(k, empty) for k in ids})
            records.append(_finish(out, video, args.overlays, bar, history))
        except (OSError, ValueError) as err:
            records.append(_failure(video.name, err, args.on_error))
    return records


# ----------------------------------------------------------------------------- commands


def _default_data(args: argparse.Namespace, out: Path) -> None:
    """No --data: the synthetic validation set (written on first use), --out defaulting to
    `out`."""
    if args.data is None:
        if not (DEFAULT_SYNTHETIC_VAL / "ImageSets").is_dir():
            print(f"writing the synthetic validation set to {DEFAULT_SYNTHETIC_VAL}", flush=True)
            write_davis_dataset(DEFAULT_SYNTHETIC_VAL, SYNTHETIC_VAL_SEEDS, split="val")
        args.data, args.format = str(DEFAULT_SYNTHETIC_VAL), "davis"
        args.out = args.out or str(out)
    if args.out is None:
        raise EvalError("--out is required with --data")


def _default_run(args: argparse.Namespace) -> None:
    """Fill in the default run: the synthetic validation set and the train run's model."""
    _default_data(args, DEFAULT_TRAIN_RUN / "eval_synthetic_val")
    if args.config is None and args.checkpoint is None:
        model_file = DEFAULT_TRAIN_RUN / "model.json"
        if not model_file.is_file():
            raise EvalError(
                f"no trained model: '{model_file}' does not exist. Run `python train.py` (its "
                "default run writes it), or pass --config NAME --checkpoint FILE "
                "(--random-weights to evaluate an untrained model)"
            )
        trained = json.loads(model_file.read_text())
        args.config, args.checkpoint = trained["config"], trained["checkpoint"]
        args.overrides = [*trained.get("overrides", []), *args.overrides]
    if args.config is None:
        raise EvalError("--config is required with --checkpoint")
    if args.checkpoint is None and not args.random_weights:
        raise EvalError("no --checkpoint given: pass one, or --random-weights to run untrained")


def run(argv: Sequence[str]) -> dict:
    """The evaluation command; returns the summary."""
    args = _run_parser().parse_args(argv)
    _default_run(args)
    if args.protocol == "clicks" and args.rounds < 1:
        raise EvalError(f"--rounds must be >= 1, got {args.rounds}")
    if args.videos_per_device < 1:
        raise EvalError(f"--videos-per-device must be >= 1, got {args.videos_per_device}")
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        raise EvalError(f"checkpoint '{args.checkpoint}' does not exist")
    out = Path(args.out)
    names = _select_videos(args)
    eval_overrides = [f"non_overlap_masks={args.format != 'sav'}"]
    if args.protocol == "clicks":
        eval_overrides.append("add_all_frames_to_correct_as_cond=True")
    settings = Settings(
        config=args.config,
        overrides=tuple(args.overrides),
        checkpoint=args.checkpoint,
        checkpoint_sha256=args.checkpoint and file_sha256(args.checkpoint),
        format=args.format,
        protocol=args.protocol,
        rounds=args.rounds if args.protocol == "clicks" else 0,
        score_thresh=args.score_thresh,
        postprocessing=args.postprocessing,
    )
    _check_settings(out, settings)
    videos, failed = _index(args, names[jax.process_index() :: jax.process_count()])
    model = build_sam2_video_predictor(
        args.config,
        args.checkpoint,
        (*eval_overrides, *args.overrides),
        apply_postprocessing=args.postprocessing,
    ).model
    write_atomic(_settings_path(out), json.dumps(dataclasses.asdict(settings), indent=2))
    pending = [v for v in videos if not _is_done(out, v)]
    passes = 2 * args.rounds if args.protocol == "clicks" else 1
    start = time.perf_counter()
    total = sum(v.num_frames for v in pending) * passes
    with tqdm(total=total, unit="frame", desc=f"{len(pending)} videos") as bar:
        protocol = _run_clicks if args.protocol == "clicks" else _run_semi
        records = protocol(args, model, pending, out, bar)
    seconds = time.perf_counter() - start
    failed += [r for r in records if r.error is not None]
    for r in failed:
        write_record(out, r)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("sam2_jax eval: videos done")
    if jax.process_index() != 0:
        return {}
    final = [r for r in (read_record(out, n) for n in names) if r is not None]
    frames = sum(r.frames for r in records if r.error is None)
    run_info = {
        **dataclasses.asdict(settings),
        "model": model.config.name,
        "image_size": model.config.image_size,
        "data": str(args.data),
        "device": _device_description(),
        "videos_per_batch": (args.devices or jax.local_device_count()) * args.videos_per_device,
        "frames_this_run": frames,
        "seconds_this_run": round(seconds, 3),
        "frames_per_second": round(frames / seconds, 3) if frames else None,
    }
    return write_results(out, final, args.split, run_info)


def _score_all(args, pred: Path, write=None) -> dict:
    """Score the predictions under `pred` of the selected videos (written first by
    `write(video, pred)` when given); returns the summary."""
    videos, records = _index(args, _select_videos(args))
    for video in tqdm(videos, unit="video"):
        try:
            if write is not None:
                write(video, pred)
            scores = tuple(score_video(video, pred))
            records.append(VideoRecord(video.name, video.num_frames, scores))
        except (OSError, ValueError) as err:
            records.append(_failure(video.name, err, args.on_error))
    run_info = {"format": args.format, "data": str(args.data), "pred": str(pred)}
    return write_results(pred, records, args.split, run_info)


def score(argv: Sequence[str]) -> dict:
    """The `score` command: score existing predictions; returns the summary."""
    args = _score_parser().parse_args(argv)
    if args.data is None:
        raise EvalError("--data is required")
    return _score_all(args, Path(args.pred))


def baseline(argv: Sequence[str]) -> dict:
    """The `baseline` command: write and score the copy-first-frame baseline."""
    args = _baseline_parser().parse_args(argv)
    _default_data(args, DEFAULT_BASELINE_OUT)
    return _score_all(args, Path(args.out), write_copy_first_frame)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"score": score, "baseline": baseline}
    command = commands.get(argv[0] if argv else "", run)
    try:
        summary = command(argv if command is run else argv[1:])
    except (EvalError, FileNotFoundError, ValueError) as err:
        print(f"eval.py: error: {err}", file=sys.stderr)
        return 2
    if summary:
        stats = ", ".join(
            f"{k} {100 * summary[k]:.1f}" for k in ("J&F-Mean", "J-Mean", "F-Mean") if k in summary
        )
        print(
            f"{summary['videos']} videos, {summary['objects']} objects: {stats or 'no scores'}"
            + (f"; {len(summary['failed'])} failed" if summary["failed"] else "")
        )
    return 0
