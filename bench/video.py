"""Video propagation: sam2-jax vs the official SAM2VideoPredictor, same run, same machine.

    python -m bench.video fps [--sizes 512 1024] [--objects 1 4] [--frames 8]
        [--sides ours official official_vos] [--dtype float32|bfloat16] [--json FILE]
    python -m bench.video memory [--lengths 100 1000 2000] [--size 256] [--json FILE]

`fps`: both predictors get the same random weights (official -> .pt -> our converter), the same
JPEG frames (bedroom demo) and the same mask prompts on frame 0; each propagates over
`WARMUP_FRAMES` frames to warm up (ours compiles its whole chunk program: a chunk is padded to
`--frames` frames), then a second propagation over 2 x `--frames` frames runs and the steady-state
rate is `--frames` / (time between the yields of frame `--frames` - 1 and of the last frame):
the timed frames all attend to a full memory (evaluation settings, apply_postprocessing=False;
ours runs chunks of `--frames` frames). Frames are decoded and resized before propagation
on both sides (the official `init_state` preloads; ours is told to). `official_vos` is the
official `vos_optimized=True` predictor (torch.compile, max-autotune). bfloat16: ours computes
in bf16 (`dtype=bfloat16`), the official runs under `torch.autocast(bfloat16)` as its
`tools/vos_inference.py` does. `--trace DIR` records our timed propagations with
`jax.profiler` (summarise with `python -m bench.trace_summary`).
`memory`: peak resident memory and frames/s over videos of each length (demo frames cycled
through symlinks): the official `SAM2VideoPredictor` in one process per length (its
`init_state` loads every frame; it keeps every frame's outputs), ours the streaming tracker
(`streaming.track_video`, frames decoded lazily, nothing kept per frame) in one process over the
longest video, read when it has yielded each length's last mask (peak RSS so far; frames/s from
opening the video: our compile included). A streaming run's first L frames are the whole run of
an L-frame video, so this is the per-length measurement without tracking the short videos again.
`--official-cache FILE` (all subcommands) reuses the official side's results measured with the
same versions on the same machine.
"""

import argparse
import contextlib
import functools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, SHARED_DATA, add_device_args, add_output_args, append_json, machine

WARMUP_FRAMES = 2  # the prompted frame and one tracked frame: every kernel of both sides

BEDROOM = SHARED_DATA / "sam2_demo" / "bedroom"


def _video_dir(n: int, dst: Path) -> Path:
    src = sorted(BEDROOM.glob("*.jpg"))
    if not src:
        raise FileNotFoundError(f"demo frames not found in {BEDROOM}")
    dst.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (dst / f"{i:05d}.jpg").symlink_to(src[i % len(src)])
    return dst


def _masks(num_objects: int, h: int = 540, w: int = 960) -> list[np.ndarray]:
    out = []
    for k in range(num_objects):
        m = np.zeros((h, w), bool)
        x0 = 80 + 200 * k % (w - 200)
        m[150:350, x0 : x0 + 150] = True
        out.append(m)
    return out


def _host_mask(logits) -> np.ndarray:
    """`logits > 0` in host memory (ours yields numpy; the official, tensors on its device)."""
    return logits > 0 if isinstance(logits, np.ndarray) else (logits > 0).cpu().numpy()


def _propagate(predictor, video, masks, num_frames: int, context) -> list[float]:
    """Prompt frame 0 with `masks` and propagate over `num_frames` frames; every yielded mask is
    thresholded into host memory, as `tools/vos_inference.py` does (this also synchronises).
    Returns the time stamp of each yield."""
    state = predictor.init_state(str(video))
    if hasattr(state["images"], "preload"):  # ours decodes lazily; the official preloads
        state["images"].preload()
    for k, m in enumerate(masks):
        predictor.add_new_mask(state, 0, k + 1, m)
    stamps = []
    with context():
        for _, _, logits in predictor.propagate_in_video(
            state, max_frame_num_to_track=num_frames - 1
        ):
            _host_mask(logits)
            stamps.append(time.perf_counter())
    return stamps


def _steady_fps(predictor, video, masks, frames, context) -> float:
    """Frames/s over the last `frames` of a 2 x `frames` propagation."""
    stamps = _propagate(predictor, video, masks, 2 * frames, context)
    return frames / (stamps[-1] - stamps[frames - 1])


def _measure(predictor, video, masks, frames, context, trace: Path | None) -> dict:
    """A warm-up propagation, then the steady-state rate; `trace`: record the timed
    propagation with jax.profiler there."""
    t0 = time.perf_counter()
    _propagate(predictor, video, masks, WARMUP_FRAMES, context)  # ours: compiles
    warmup = time.perf_counter() - t0
    recording = contextlib.nullcontext()
    if trace is not None:
        import jax

        recording = jax.profiler.trace(trace, create_perfetto_trace=True)
    with recording:
        rate = _steady_fps(predictor, video, masks, frames, context)
    return {"frames_per_s": rate, "warmup_propagation_s": warmup}


SIDES = ("ours", "official", "official_vos")  # official_vos: SAM2VideoPredictorVOS


def fps(args) -> None:
    import torch
    from oracle import build_official, save_official_checkpoint

    from bench.common import official_autocast, official_result, torch_device
    from sam2_jax.predictors.video import build_sam2_video_predictor

    torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    print(f"machine: {machine()}; torch threads {args.threads}, official on {device}")
    print(
        f"sam2.1_hiera_t, {args.dtype}, steady state: frames {args.frames}-{2 * args.frames - 1} "
        f"of a propagation, after a {WARMUP_FRAMES}-frame warm-up propagation"
    )
    print("| size | objects | " + " | ".join(f"{s} frames/s" for s in args.sides) + " |")
    print("|---|---|" + "---|" * len(args.sides))

    def official_context():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(official_autocast(device, args.dtype))
        return stack

    with tempfile.TemporaryDirectory() as tmp:
        video = _video_dir(2 * args.frames, Path(tmp) / "video")
        for size in args.sizes:
            official = build_official(
                "sam2.1_hiera_t", image_size=size, video=True, apply_postprocessing=False
            )
            ckpt = Path(tmp) / f"t{size}.pt"
            save_official_checkpoint(official, ckpt)
            predictors = {}
            for side in args.sides:
                if side == "ours":
                    predictors[side] = (
                        build_sam2_video_predictor(
                            "sam2.1_hiera_t", ckpt,
                            [f"image_size={size}", f"tracking.chunk_size={args.frames}",
                             f"dtype={args.dtype}"],
                            apply_postprocessing=False,
                        ),
                        contextlib.nullcontext,
                    )  # fmt: skip
                else:
                    model = official
                    if side == "official_vos":
                        model = build_official(
                            "sam2.1_hiera_t", image_size=size, video=True,
                            apply_postprocessing=False, vos_optimized=True,
                        )  # fmt: skip
                        model.load_state_dict(official.state_dict())
                    model.fill_hole_area = 0
                    predictors[side] = (model.to(device), official_context)
            for n_obj in args.objects:
                masks = _masks(n_obj)
                rates = {}
                for side, (pred, context) in predictors.items():
                    traced = args.trace is not None and side == "ours"
                    trace = args.trace / f"{size}_{n_obj}" if traced else None
                    measure = functools.partial(
                        _measure, pred, video, masks, args.frames, context, trace
                    )
                    case = {"bench": "video_fps", "side": side, "size": size, "objects": n_obj,
                            "dtype": args.dtype, "frames": args.frames}  # fmt: skip
                    if side == "ours":
                        result = measure()
                    else:
                        result = official_result(args.official_cache, case, device, measure)
                    rates[side] = result["frames_per_s"]
                    append_json(args.json, {**case, **result, "official_device": device})
                cells = [f"{rates[s]:.2f}" for s in args.sides]
                if "ours" in rates:
                    cells = [cells[0]] + [
                        f"{rates[s]:.2f} (ours {rates['ours'] / rates[s]:.2f}x)"
                        for s in args.sides[1:]
                    ]
                print(f"| {size} | {n_obj} | " + " | ".join(cells) + " |", flush=True)


def _memory_child(side: str, size: int, threads: int, lengths: list[int]) -> None:
    """Run in a subprocess: track a video of max(lengths) frames with `side`; print, for each
    length L in increasing order, "L peak_rss_mib frames_per_s" once L masks are out (peak RSS
    so far; frames/s from opening the video: frame loading and our compile included). The
    official side takes exactly one length (its `init_state` loads the whole video)."""
    import torch

    torch.set_num_threads(threads)
    mask = _masks(1)[0]
    lengths = sorted(lengths)
    official = side != "ours"
    if official and len(lengths) != 1:
        raise ValueError("the official side runs one process per length")
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode(official):
        video = _video_dir(lengths[-1], Path(tmp) / "v")
        if not official:
            from sam2_jax.build import build_sam2
            from sam2_jax.data.frames import load_video_frames
            from sam2_jax.streaming import track_video

            model = build_sam2(
                "sam2.1_hiera_t", None, [f"image_size={size}"], apply_postprocessing=False
            )
            t0 = time.perf_counter()
            masks = track_video(model, load_video_frames(video, size), {0: {0: mask}}, 1)
        else:
            from oracle import build_official

            predictor = build_official(
                "sam2.1_hiera_t", image_size=size, video=True, apply_postprocessing=False
            )
            t0 = time.perf_counter()
            state = predictor.init_state(str(video))
            predictor.add_new_mask(state, 0, 1, mask)
            masks = predictor.propagate_in_video(state)
        for n, _ in enumerate(masks, start=1):
            if n in lengths:
                peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"{n} {peak_mib:.0f} {n / (time.perf_counter() - t0):.3f}", flush=True)


def _memory_run(side: str, lengths: list[int], size: int, threads: int) -> dict[int, dict]:
    """{length: {"peak_rss_mib", "frames_per_s"}} from one `_memory_child` process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.video", "_memory_child", side, str(size), str(threads),
         *map(str, lengths)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ}, check=True,
    ).stdout  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return {int(n): {"peak_rss_mib": float(r), "frames_per_s": float(f)} for n, r, f in rows}


def _official_memory(length: int, size: int, threads: int) -> dict:
    return _memory_run("official", [length], size, threads)[length]


def memory(args) -> None:
    from bench.common import official_result

    print(f"machine: {machine()}; torch threads {args.threads}")
    print(f"sam2.1_hiera_t at {args.size} px, 1 object, fp32; ours: streaming `track_video`, "
          "frames decoded lazily, one run read at each length; official: SAM2VideoPredictor "
          "(init_state preloads), one run per length")  # fmt: skip
    print("| frames | ours peak RSS (MiB) | official peak RSS (MiB) | ours frames/s | "
          "official frames/s | speed-up |\n|---|---|---|---|---|---|")  # fmt: skip
    ours_runs = _memory_run("ours", args.lengths, args.size, args.threads)
    for length in sorted(args.lengths):
        case = {"bench": "video_memory", "frames": length, "size": args.size}
        ours = ours_runs[length]
        official = official_result(
            args.official_cache, case, "cpu",
            functools.partial(_official_memory, length, args.size, args.threads),
        )  # fmt: skip
        for side, r in (("ours", ours), ("official", official)):
            append_json(args.json, {**case, "side": side, **r})
        print(
            f"| {length} | {ours['peak_rss_mib']:.0f} | {official['peak_rss_mib']:.0f} | "
            f"{ours['frames_per_s']:.2f} | {official['frames_per_s']:.2f} | "
            f"{ours['frames_per_s'] / official['frames_per_s']:.2f}x |",
            flush=True,
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        side, size, threads, *lengths = sys.argv[2:]
        _memory_child(side, int(size), int(threads), [int(n) for n in lengths])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fps")
    f.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    f.add_argument("--objects", type=int, nargs="+", default=[1, 4])
    f.add_argument("--frames", type=int, default=8)
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--sides", nargs="+", choices=SIDES, default=["ours", "official"])
    f.add_argument("--trace", type=Path, help="jax.profiler trace of our timed propagations")
    add_device_args(f)
    m = sub.add_parser("memory")
    m.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 2000])
    m.add_argument("--size", type=int, default=256)
    m.add_argument("--threads", type=int, default=2)
    add_output_args(m)
    args = p.parse_args()
    fps(args) if args.cmd == "fps" else memory(args)


if __name__ == "__main__":
    main()
