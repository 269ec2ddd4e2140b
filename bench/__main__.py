"""All benchmarks in one command, one markdown table set and one JSON file.

    python -m bench [--quick] [--only image video long_video compile train eval]
        [--out runs/bench] [--official-cache FILE] [--dtype bfloat16] [--device cuda]

Runs each benchmark of `SUITE` (or `QUICK`, a few-minute smoke run of the same code) in its own
process, in order, and writes into `--out`:
- `results.md`: per benchmark its command, wall time and printed tables (ours, official, ratio),
  ready for docs/PERFORMANCE.md;
- `results.json`: every row of every benchmark, with the machine, the versions and the date;
- `logs/NN_<name>.log` / `.json`: each benchmark's full output and rows.
The official side's results are cached in `--official-cache` (default `<out>/official_cache.json`),
keyed by benchmark, case, torch and sam2 versions, hardware and threads, so a rerun on the same
machine times only ours (`--no-official-cache` measures both again). A benchmark that fails is
recorded with its exit status and the run goes on.
"""

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT

# (name, title, module and arguments): 62 min on 2 CPU cores the first time, the official side
# included; a rerun with the official results cached times only ours.
SUITE = (
    ("image", "Image predictor, tiny, 1024 px, batch 1",
     ["bench.image_predictor", "--config", "sam2.1_hiera_t", "--batch", "1"]),
    ("image", "Image predictor, tiny, 1024 px, batch 8",
     ["bench.image_predictor", "--config", "sam2.1_hiera_t", "--batch", "8", "--repeats", "2"]),
    ("image", "Image predictor, large, 1024 px, batch 1",
     ["bench.image_predictor", "--config", "sam2.1_hiera_l", "--batch", "1", "--repeats", "3"]),
    ("image", "Image predictor, large, 1024 px, batch 8",
     ["bench.image_predictor", "--config", "sam2.1_hiera_l", "--batch", "8", "--repeats", "1"]),
    ("video", "Video propagation, tiny 2.1, 512 px, 1 / 4 / 16 objects",
     ["bench.video", "fps", "--sizes", "512", "--objects", "1", "4", "16"]),
    ("video", "Video propagation, tiny 2.1, 1024 px, 1 / 4 objects",
     ["bench.video", "fps", "--sizes", "1024", "--objects", "1", "4", "--frames", "4"]),
    ("long_video", "Long video: peak memory and frames/s, 256 px",
     ["bench.video", "memory", "--lengths", "100", "1000", "2000"]),
    ("compile", "Compile time against clip length", ["bench.compile"]),
    ("train", "Training step", ["bench.train", "--cases", "small", "tiny512"]),
    ("eval", "Offline VOS evaluation, davis2017_mini, 512 px", ["bench.eval"]),
)  # fmt: skip
QUICK = (
    ("image", "Image predictor, tiny, 512 px, batch 1",
     ["bench.image_predictor", "--size", "512", "--repeats", "2"]),
    ("video", "Video propagation, tiny 2.1, 256 px, 1 / 2 objects",
     ["bench.video", "fps", "--sizes", "256", "--objects", "1", "2", "--frames", "4"]),
    ("long_video", "Long video, 128 px", ["bench.video", "memory", "--lengths", "16", "32",
                                          "--size", "128"]),
    ("compile", "Compile time against clip length", ["bench.compile", "--lengths", "4"]),
    ("train", "Training step", ["bench.train", "--cases", "small", "--repeats", "2"]),
    ("eval", "Offline VOS evaluation, synthetic, 256 px",
     ["bench.eval", "--synthetic", "1", "--frames", "6", "--objects", "2", "--size", "256"]),
)  # fmt: skip
DEVICE_BENCHES = ("video", "train", "eval")  # those taking --dtype and --device


def _versions() -> dict:
    import jax
    import torch

    from bench.common import machine

    return {"machine": machine(), "jax": jax.__version__, "torch": torch.__version__}


def _run(module_args: list[str], log: Path) -> tuple[int, str, float]:
    """(exit status, stdout, seconds) of `python -m MODULE ARGS`, its output also in `log`."""
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module_args], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=f, text=True,
        )  # fmt: skip
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            f.write(line)
            lines.append(line)
        status = proc.wait()
    return status, "".join(lines), time.perf_counter() - t0


def _section(title: str, module_args: list[str], status: int, stdout: str, seconds: float) -> str:
    """Markdown: the title, the command, then the output with each table and each other line
    as its own paragraph."""
    blocks = [f"### {title}", f"`python -m {' '.join(module_args)}` ({seconds:.0f} s)"]
    in_table = False
    for line in filter(str.strip, stdout.splitlines()):
        table = line.startswith("|")
        if table and in_table:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
        in_table = table
    if status:
        blocks.append(f"**Failed** with exit status {status}: see the log.")
    return "\n\n".join(blocks) + "\n"


def _write(out: Path, record: dict, sections: list[str]) -> None:
    """results.json and results.md so far (rewritten after every benchmark)."""
    (out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    total = sum(b["seconds"] for b in record["benchmarks"])
    cached = sorted({b["title"] for b in record["benchmarks"]
                     for r in b["rows"] if r.get("cached")})  # fmt: skip
    header = [
        f"## Benchmarks ({record['started'][:10]}, `{record['command']}`)", "",
        f"{record['machine']}; {record['dtype']} (video, train, eval; the others fp32); "
        f"{total / 60:.1f} min in all.",
    ]  # fmt: skip
    if cached:
        header.append(f"Official results from {record['official_cache']}: {'; '.join(cached)}.")
    (out / "results.md").write_text("\n".join(header) + "\n\n" + "\n".join(sections))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few-minute smoke run")
    names = sorted({name for name, _, _ in SUITE})
    p.add_argument("--only", nargs="+", choices=names, help="run only these benchmarks")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    p.add_argument("--official-cache", type=Path, help="default: <out>/official_cache.json")
    p.add_argument("--no-official-cache", action="store_true", help="measure the official again")
    p.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32",
        help="compute dtype of the video, train and eval benchmarks (the others run fp32)",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="torch device of the official side")
    args = p.parse_args()
    cache = args.official_cache or args.out / "official_cache.json"
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {
        "started": started, "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "dtype": args.dtype, "official_cache": None if args.no_official_cache else str(cache),
        **_versions(), "benchmarks": [],
    }  # fmt: skip
    sections = []
    for i, (name, title, module_args) in enumerate(QUICK if args.quick else SUITE):
        if args.only and name not in args.only:
            continue
        log = args.out / "logs" / f"{i:02d}_{name}.log"
        rows = log.with_suffix(".json")
        rows.unlink(missing_ok=True)
        extra = ["--json", str(rows)]
        if not args.no_official_cache and name != "compile":
            extra += ["--official-cache", str(cache)]
        if name in DEVICE_BENCHES:
            extra += ["--dtype", args.dtype] + (["--device", args.device] if args.device else [])
        print(f"== {title}", flush=True)
        status, stdout, seconds = _run(module_args + extra, log)
        sections.append(_section(title, module_args, status, stdout, seconds))
        record["benchmarks"].append({
            "name": name, "title": title, "command": ["python", "-m", *module_args],
            "exit_status": status, "seconds": seconds,
            "rows": json.loads(rows.read_text()) if rows.exists() else [],
        })  # fmt: skip
        _write(args.out, record, sections)
    total = sum(b["seconds"] for b in record["benchmarks"])
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
