"""`python -m sam2_jax.sweep SPEC`: run a list of train.py override sets, collect one table.

    python -m sam2_jax.sweep configs/sweeps/example.py [--out DIR] [--parallel N] [--dry-run]
        [--config FILE[:ARG]] [key=value ...]

SPEC is a Python file whose `get_sweep()` returns a list of override sets, each a dict
`{dotted.key: value}` (`grid(...)` below builds products). Every run is a separate `train.py`
process with `--config`, the shared `key=value` overrides, its own overrides and
`run_dir=<out>/<NN>_<name>`; its output goes to `<run_dir>/train.log`. `--parallel N` keeps up to
N runs going at once (default 1: one after the other). All override sets are checked against the
config before anything starts. A finished run (`<run_dir>/final_metrics.json`, written by
train.py) is not run again and an interrupted one is resumed, so rerunning a sweep completes it.
The table (`<out>/results.md`, `<out>/results.json`) has one row per run: its overrides, status,
final loss terms and eval J&F.
"""

import argparse
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from sam2_jax import config as config_lib
from sam2_jax.train.run import DEFAULT_CONFIG, FINAL_METRICS

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ("core_loss", "loss_mask", "loss_dice", "loss_iou", "loss_class", "eval_J&F")


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """The product of the axes, e.g. `grid(**{"optimizer.base_lr": [1e-4, 3e-4], "seed": [0,
    1]})` -> 4 override sets. Dotted keys need the `**{...}` form."""
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def load_spec(path: str) -> list[dict[str, Any]]:
    """The override sets of a sweep file (its `get_sweep()`)."""
    module = config_lib.load_module(Path(path))
    if not hasattr(module, "get_sweep"):
        raise ValueError(f"sweep file {path} has no get_sweep() function")
    runs = module.get_sweep()
    if not runs or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"get_sweep() of {path} must return a non-empty list of dicts")
    for r in runs:
        if "run_dir" in r:
            raise ValueError(f"sweep file {path}: run_dir is set by the sweep (--out), not a run")
    return runs


def override_strings(run: dict[str, Any]) -> list[str]:
    """{key: value} -> ["key=value", ...] (values as Python literals, as train.py parses them)."""
    return [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in run.items()]


def run_name(index: int, run: dict[str, Any]) -> str:
    """A folder name: the index and the overrides, with unsafe characters replaced."""
    text = ",".join(f"{k.split('.')[-1]}={v}" for k, v in run.items()) or "base"
    return f"{index:02d}_" + re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)[:80]


def _command(args, overrides: list[str], run_dir: Path, resume: bool) -> list[str]:
    return [
        sys.executable, str(REPO / "train.py"), "--config", args.config,
        *(["--resume"] if resume else []), *args.overrides, *overrides, f"run_dir={run_dir}",
    ]  # fmt: skip


def _row(name: str, run: dict[str, Any], run_dir: Path, status: str) -> dict[str, Any]:
    final = run_dir / FINAL_METRICS
    metrics = json.loads(final.read_text()) if final.is_file() else {}
    return {"run": name, "overrides": override_strings(run), "status": status,
            **{k: metrics.get(k) for k in COLUMNS}}  # fmt: skip


def results_markdown(rows: list[dict[str, Any]]) -> str:
    """The results table in markdown."""

    def cell(v: Any) -> str:
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    header = ["run", "overrides", "status", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        values = [r["run"], " ".join(r["overrides"]), r["status"], *(r[k] for k in COLUMNS)]
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sam2_jax.sweep", description=__doc__.split("\n")[0])
    p.add_argument("spec", help="sweep file with get_sweep()")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="train config file[:arg]")
    p.add_argument("--out", help="sweep folder (default runs/sweeps/<spec name>)")
    p.add_argument("--parallel", type=int, default=1, help="runs at once (separate processes)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("overrides", nargs="*", help="key=value overrides shared by every run")
    return p.parse_intermixed_args(argv)


def sweep(argv: Sequence[str]) -> list[dict[str, Any]]:
    """Run the sweep; returns the table rows."""
    args = _parse(argv)
    if args.parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {args.parallel}")
    runs = load_spec(args.spec)
    for run in runs:  # every override set must load before anything starts
        config_lib.load(args.config, [*args.overrides, *override_strings(run)])
    out = Path(args.out or Path("runs/sweeps") / Path(args.spec).stem).absolute()
    names = [run_name(i, r) for i, r in enumerate(runs)]
    pending, status = [], {}
    for name, run in zip(names, runs):
        run_dir = out / name
        if (run_dir / FINAL_METRICS).is_file():
            status[name] = "done"
            continue
        command = _command(args, override_strings(run), run_dir, (run_dir / "checkpoints").is_dir())
        if args.dry_run:
            print(" ".join(command))
            status[name] = "not run"
            continue
        pending.append((name, run_dir, command))
    running: list[tuple[str, subprocess.Popen, Any]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name, run_dir, command = pending.pop(0)
            run_dir.mkdir(parents=True, exist_ok=True)
            log = open(run_dir / "train.log", "a")
            print(f"sweep: starting {name}", flush=True)
            running.append((name, subprocess.Popen(command, stdout=log, stderr=log), log))
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                rc = proc.returncode
                status[name] = "done" if rc == 0 else f"failed (exit {rc})"
                print(f"sweep: {name} {status[name]}", flush=True)
        time.sleep(0.2)
    rows = [_row(n, r, out / n, status[n]) for n, r in zip(names, runs)]
    if not args.dry_run:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
        (out / "results.md").write_text(results_markdown(rows))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        rows = sweep(sys.argv[1:] if argv is None else argv)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return 2
    print(results_markdown(rows), end="")
    return int(any(r["status"].startswith("failed") for r in rows))


if __name__ == "__main__":
    sys.exit(main())
