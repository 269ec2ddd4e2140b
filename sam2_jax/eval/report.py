"""Per-video evaluation records and the run's result files (<- davis2017-evaluation
`evaluation_method.py`: `global_results-<split>.csv`, `per-sequence_results-<split>.csv`).

A record is written atomically per finished video (`<out>/.eval/videos/<name>.json`), so a
killed run resumes from the videos it finished. The result files are rebuilt from all records:
- `global_results-<split>.csv`: J&F-Mean, J-Mean/Recall/Decay, F-Mean/Recall/Decay (toolkit
  format, 3 decimals, values in [0, 1]);
- `per-sequence_results-<split>.csv`: `<sequence>_<object id>`, J-Mean, F-Mean (toolkit format);
- `per-object_results-<split>.csv`: every statistic of every object at full precision;
- `summary.json`: the global statistics (full precision), the per-round curve of the clicks
  protocol, failed videos, and the run information given by the caller.
"""

import csv
import dataclasses
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sam2_jax.eval.metrics import (
    STATISTICS_KEYS,
    ObjectScores,
    ObjectStatistics,
    global_statistics,
    object_statistics,
)

STATE_DIR = ".eval"


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """The outcome of one video: `scores` of its final prediction, `rounds` the scores after each
    round of the clicks protocol (empty otherwise), `error` when it failed."""

    name: str
    frames: int
    scores: tuple[ObjectScores, ...] = ()
    rounds: tuple[tuple[ObjectScores, ...], ...] = ()
    error: str | None = None


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file in the same folder, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _scores_to_json(scores: Sequence[ObjectScores]) -> list[dict]:
    return [
        {"object_id": s.object_id, "frames": list(s.frames), "j": s.j.tolist(), "f": s.f.tolist()}
        for s in scores
    ]


def _scores_from_json(items: list[dict]) -> tuple[ObjectScores, ...]:
    return tuple(
        ObjectScores(d["object_id"], tuple(d["frames"]), np.array(d["j"]), np.array(d["f"]))
        for d in items
    )


def record_path(out: str | os.PathLike, name: str) -> Path:
    return Path(out) / STATE_DIR / "videos" / f"{name}.json"


def write_record(out: str | os.PathLike, record: VideoRecord) -> None:
    data = {
        "name": record.name,
        "frames": record.frames,
        "scores": _scores_to_json(record.scores),
        "rounds": [_scores_to_json(r) for r in record.rounds],
        "error": record.error,
    }
    write_atomic(record_path(out, record.name), json.dumps(data))


def read_record(out: str | os.PathLike, name: str) -> VideoRecord | None:
    """The record of video `name`, or None when there is none (or it is unreadable)."""
    path = record_path(out, name)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return VideoRecord(
        name=data["name"],
        frames=data["frames"],
        scores=_scores_from_json(data["scores"]),
        rounds=tuple(_scores_from_json(r) for r in data["rounds"]),
        error=data["error"],
    )


def _statistics(records: Sequence[VideoRecord], scores_of) -> tuple[list[ObjectStatistics], dict]:
    stats = [s for r in records for s in object_statistics(r.name, scores_of(r))]
    return stats, global_statistics(stats) if stats else {}


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_results(
    out: str | os.PathLike, records: Sequence[VideoRecord], split: str, run: dict
) -> dict:
    """Write the result files of `records` into `out`; return the summary (also in
    `summary.json`): the global statistics, `objects`, `videos`, `failed`, `rounds` and `run`."""
    out = Path(out)
    done = [r for r in records if r.error is None]
    stats, global_stats = _statistics(done, lambda r: r.scores)
    if global_stats:
        write_atomic(
            out / f"global_results-{split}.csv",
            _csv([list(STATISTICS_KEYS), [f"{global_stats[k]:.3f}" for k in STATISTICS_KEYS]]),
        )
    write_atomic(
        out / f"per-sequence_results-{split}.csv",
        _csv(
            [["Sequence", "J-Mean", "F-Mean"]]
            + [[f"{s.sequence}_{s.object_id}", f"{s.j_mean:.3f}", f"{s.f_mean:.3f}"] for s in stats]
        ),
    )
    fields = [f.name for f in dataclasses.fields(ObjectStatistics)]
    write_atomic(
        out / f"per-object_results-{split}.csv",
        _csv([fields] + [[repr(getattr(s, f)) for f in fields] for s in stats]),
    )
    num_rounds = max((len(r.rounds) for r in done), default=0)
    rounds = []
    for k in range(num_rounds):
        _, round_stats = _statistics(done, lambda r, k=k: r.rounds[min(k, len(r.rounds) - 1)])
        rounds.append({"round": k + 1, **round_stats})
    summary = {
        **global_stats,
        "videos": len(done),
        "objects": len(stats),
        "failed": [{"video": r.name, "error": r.error} for r in records if r.error is not None],
        "rounds": rounds,
        "run": run,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
