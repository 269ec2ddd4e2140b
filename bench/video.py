"""Video propagation: sam2-jax vs the official SAM2VideoPredictor, same run, same machine.

    python -m bench.video fps [--sizes 512 1024] [--objects 1 4] [--frames 8]
        [--sides ours official official_vos] [--dtype float32|bfloat16] [--json FILE]
    python -m bench.video memory [--lengths 100 2000] [--size 256]

`fps`: both predictors get the same random weights (official -> .pt -> our converter), the same
JPEG frames (bedroom demo) and the same mask prompts on frame 0; each propagates once to warm up
(compiles), then a second propagation over 2 x `--frames` frames runs and the steady-state
rate is `--frames` / (time between the yields of frame `--frames` - 1 and of the last frame):
the timed frames all attend to a full memory (evaluation settings, apply_postprocessing=False;
ours runs chunks of `--frames` frames). Frames are decoded and resized before propagation
on both sides (the official `init_state` preloads; ours is told to). `official_vos` is the
official `vos_optimized=True` predictor (torch.compile, max-autotune). bfloat16: ours computes
in bf16 (`dtype=bfloat16`), the official runs under `torch.autocast(bfloat16)` as its
`tools/vos_inference.py` does. `--trace DIR` records our timed propagations with
`jax.profiler` (summarise with `python -m bench.trace_summary`).
`memory`: peak resident memory of our streaming tracker (`streaming.track_video`) over videos of
each length (frames cycled from the demo through symlinks, decoded lazily), one process each.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, SHARED_DATA, add_device_args, append_json, machine

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


def _steady_fps(predictor, video, masks, frames, context) -> float:
    """Frames/s over the last `frames` of a 2 x `frames` propagation; every yielded mask is
    thresholded into host memory, as `tools/vos_inference.py` does (this also synchronises)."""
    state = predictor.init_state(str(video))
    if hasattr(state["images"], "preload"):  # ours decodes lazily; the official preloads
        state["images"].preload()
    for k, m in enumerate(masks):
        predictor.add_new_mask(state, 0, k + 1, m)
    stamps = []
    with context():
        for _, _, logits in predictor.propagate_in_video(
            state, max_frame_num_to_track=2 * frames - 1
        ):
            _host_mask(logits)
            stamps.append(time.perf_counter())
    return frames / (stamps[-1] - stamps[frames - 1])


SIDES = ("ours", "official", "official_vos")  # official_vos: SAM2VideoPredictorVOS


def fps(args) -> None:
    import contextlib

    import torch
    from oracle import build_official, save_official_checkpoint

    from bench.common import official_autocast, torch_device
    from sam2_jax.predictors.video import build_sam2_video_predictor

    torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    print(f"machine: {machine()}; torch threads {args.threads}, official on {device}")
    print(
        f"sam2.1_hiera_t, {args.dtype}, steady state: frames {args.frames}-{2 * args.frames - 1} "
        "of a propagation, after one warm-up propagation"
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
                    t0 = time.perf_counter()
                    _steady_fps(pred, video, masks, args.frames, context)  # warm-up / compile
                    warmup = time.perf_counter() - t0
                    trace = contextlib.nullcontext()
                    if args.trace and side == "ours":
                        import jax

                        trace = jax.profiler.trace(
                            args.trace / f"{size}_{n_obj}", create_perfetto_trace=True
                        )
                    with trace:
                        rates[side] = _steady_fps(pred, video, masks, args.frames, context)
                    append_json(args.json, {
                        "bench": "video_fps", "side": side, "size": size, "objects": n_obj,
                        "dtype": args.dtype, "frames_per_s": rates[side],
                        "warmup_propagation_s": warmup, "official_device": device,
                    })  # fmt: skip
                cells = [f"{rates[s]:.2f}" for s in args.sides]
                if "ours" in rates:
                    cells = [cells[0]] + [
                        f"{rates[s]:.2f} (ours {rates['ours'] / rates[s]:.2f}x)"
                        for s in args.sides[1:]
                    ]
                print(f"| {size} | {n_obj} | " + " | ".join(cells) + " |", flush=True)


def _memory_child(length: int, size: int) -> None:
    """Run in a subprocess: stream `length` frames, print peak RSS (MiB) and frames/s."""
    from sam2_jax.build import build_sam2
    from sam2_jax.data.frames import load_video_frames
    from sam2_jax.streaming import track_video

    model = build_sam2("sam2.1_hiera_t", None, [f"image_size={size}"], apply_postprocessing=False)
    with tempfile.TemporaryDirectory() as tmp:
        frames = load_video_frames(_video_dir(length, Path(tmp) / "v"), size)
        t0, n = time.perf_counter(), 0
        for _ in track_video(model, frames, {0: {0: _masks(1)[0]}}, 1):
            n += 1
        elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{length} {peak:.0f} {n / elapsed:.2f}")


def memory(args) -> None:
    print(f"machine: {machine()}")
    print(f"streaming track_video, sam2.1_hiera_t at {args.size}px, 1 object, fp32")
    print("| frames | peak RSS (MiB) | frames/s (incl. compile) |\n|---|---|---|")
    for length in args.lengths:
        out = subprocess.run(
            [sys.executable, "-m", "bench.video", "_memory_child", str(length), str(args.size)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ},
            check=True,
        ).stdout.split()[-3:]
        print(f"| {out[0]} | {out[1]} | {out[2]} |", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        _memory_child(int(sys.argv[2]), int(sys.argv[3]))
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
    m.add_argument("--lengths", type=int, nargs="+", default=[100, 2000])
    m.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    fps(args) if args.cmd == "fps" else memory(args)


if __name__ == "__main__":
    main()
