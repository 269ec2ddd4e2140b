"""Where device time goes in a `jax.profiler` trace: kernel time per source scope.

    python -m bench.trace_summary TRACE_DIR [--hlo-dump DIR] [--depth 4] [--top 25]

Reads the newest `perfetto_trace.json.gz` under TRACE_DIR (written by
`jax.profiler.trace(dir, create_perfetto_trace=True)`), keeps the device's kernel events (every
event of a `/device:` process; on CPU, the XLA thunk events), and sums their durations per
source scope: the `op_name` metadata of the HLO instruction (from the optimized HLO text files
in --hlo-dump, written with `XLA_FLAGS=--xla_dump_to=DIR --xla_dump_hlo_as_text`), cut to
--depth path components; without a dump, per HLO op name. Also prints the device's busy time
against the wall span of the trace (the rest is launch gaps and host work).
"""

import argparse
import collections
import gzip
import json
import re
from pathlib import Path

_SKIPPED_SCOPES = ("jvp", "transpose", "while", "body", "closed_call", "cond", "branch", "remat")


def op_names(dump: Path | None) -> dict[str, str]:
    """HLO instruction name -> op_name metadata, from optimized HLO text dumps."""
    names: dict[str, str] = {}
    for path in sorted(dump.glob("*after_optimizations.txt")) if dump else []:
        for m in re.finditer(r"%([\w.\-]+) = [^\n]*?op_name=\"([^\"]+)\"", path.read_text()):
            names.setdefault(m.group(1), m.group(2))
    return names


def scope(op_name: str, depth: int) -> str:
    parts = [p for p in op_name.split("/") if not p.startswith(_SKIPPED_SCOPES)]
    parts = [p for p in parts if not p.startswith("jit(")] or parts
    return "/".join(parts[:depth])


def summarize(trace_dir: Path, dump: Path | None, depth: int, top: int) -> str:
    trace = sorted(trace_dir.rglob("perfetto_trace.json.gz"))[-1]
    events = json.load(gzip.open(trace))["traceEvents"]
    devices = {
        e["pid"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
        and "/device:" in e["args"].get("name", "")
    }  # fmt: skip
    names = op_names(dump)
    totals, counts = collections.Counter(), collections.Counter()
    start, end, busy = float("inf"), 0.0, 0.0
    for e in events:
        if e.get("ph") != "X":
            continue
        hlo_op = (e.get("args") or {}).get("hlo_op")
        if not (e["pid"] in devices or (not devices and hlo_op)):
            continue
        key = scope(names[hlo_op], depth) if hlo_op in names else (hlo_op or e["name"])
        totals[key] += e.get("dur", 0)
        counts[key] += 1
        busy += e.get("dur", 0)
        start, end = min(start, e["ts"]), max(end, e["ts"] + e.get("dur", 0))
    lines = [
        f"trace {trace.parent.name}: device busy {busy / 1e3:.1f} ms of a {(end - start) / 1e3:.1f}"
        f" ms span, {sum(counts.values())} kernels",
        "| ms | % | kernels | scope |",
        "|---|---|---|---|",
    ]
    for key, us in totals.most_common(top):
        lines.append(f"| {us / 1e3:.2f} | {100 * us / busy:.1f} | {counts[key]} | {key[:140]} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trace_dir", type=Path)
    p.add_argument("--hlo-dump", type=Path, default=None)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    print(summarize(args.trace_dir, args.hlo_dump, args.depth, args.top))


if __name__ == "__main__":
    main()
