"""Offline VOS evaluation throughput: `eval.py` vs the official predictor, same run, same machine.

    python -m bench.eval [--size 512] [--data ../shared/data/davis2017_mini] [--threads 2]
        [--synthetic N --frames T --objects K] [--videos-per-device V]
        [--dtype float32|bfloat16] [--json FILE]

Both sides get the same random weights (official -> .pt -> our converter), the same videos and
the same first-frame mask prompts, and write the same palette PNGs (the `tools/vos_inference.py`
loop: init_state, add_new_mask per object, propagate_in_video, logits > 0, save). Frames/s
counts every frame of every video over the whole run, I/O included: ours once cold (compile
included) and once warm (a second run in the same process), the official once (eager, fp32,
inference_mode; under bf16 autocast with --dtype bfloat16). Ours tracks `--videos-per-device`
videos in lockstep (all objects of a video together); the official one video at a time, objects
one by one, as `tools/vos_inference.py`. `--synthetic N` replaces --data by N synthetic videos
(480x854, T frames, K objects each, DAVIS-2017 layout). The masks of both are compared pixel by
pixel.
"""

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import SHARED_DATA, add_device_args, append_json, machine

DAVIS2017 = SHARED_DATA / "davis2017_mini"


def _official_run(predictor, data: Path, out: Path, autocast) -> int:
    import torch

    from sam2_jax.eval.formats import list_videos, load_video, write_prediction

    frames = 0
    with torch.inference_mode(), autocast:
        for name in list_videos(data, "davis"):
            video = load_video(data, "davis", name)
            state = predictor.init_state(video_path=str(video.frames_dir))
            for object_id, (t, mask) in video.initial_masks().items():
                predictor.add_new_mask(state, t, object_id, mask)
            segments = {}
            for t, ids, logits in predictor.propagate_in_video(state):
                segments[t] = {k: (logits[i, 0] > 0).cpu().numpy() for i, k in enumerate(ids)}
            for t, masks in segments.items():
                write_prediction(out, video, t, masks)
            frames += video.num_frames
    return frames


def _timed_official_run(predictor, data: Path, out: Path, dtype: str, device: str) -> dict:
    from bench.common import official_autocast

    t0 = time.perf_counter()
    frames = _official_run(predictor, data, out, official_autocast(device, dtype))
    return {"frames": frames, "seconds": time.perf_counter() - t0}


def _report(args, label: str, frames: int, seconds: float, official_fps: float) -> None:
    """Print one table row and append it to --json."""
    fps = frames / seconds
    print(f"| {label} | {frames} | {seconds:.1f} | {fps:.2f} | {fps / official_fps:.2f}x |",
          flush=True)  # fmt: skip
    append_json(args.json, {
        "bench": "eval", "run": label, "size": args.size, "dtype": args.dtype,
        "data": args.data.name, "videos_per_device": args.videos_per_device, "frames": frames,
        "seconds": seconds, "frames_per_s": fps, "vs_official": fps / official_fps,
    })  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--data", type=Path, default=DAVIS2017)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--synthetic", type=int, default=0, help="N synthetic videos instead of --data")
    p.add_argument("--frames", type=int, default=24, help="--synthetic: frames per video")
    p.add_argument("--objects", type=int, default=3, help="--synthetic: objects per video")
    p.add_argument("--videos-per-device", type=int, default=1)
    add_device_args(p)
    args = p.parse_args()

    import torch
    from oracle import build_official, save_official_checkpoint

    from bench.common import official_result, torch_device
    from sam2_jax.data.synthetic import write_davis_dataset
    from sam2_jax.eval.formats import list_videos, load_video, read_label_png
    from sam2_jax.eval.run import run

    torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    print(f"machine: {machine()}; torch threads {args.threads}, official on {device}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.synthetic:
            args.data = tmp / "synthetic"
            write_davis_dataset(
                args.data, range(args.synthetic), num_frames=args.frames, height=480, width=854,
                num_objects=args.objects,
            )  # fmt: skip
        official = build_official(
            args.config, image_size=args.size, video=True, apply_postprocessing=False
        )
        official.fill_hole_area = 0
        official.non_overlap_masks = True  # vos_inference's override for palette PNGs
        ckpt = tmp / "model.pt"
        save_official_checkpoint(official, ckpt)
        official.to(device)
        ours_args = [
            "--config", args.config, "--checkpoint", str(ckpt), "--data", str(args.data),
            "--videos-per-device", str(args.videos_per_device),
        ]  # fmt: skip
        overrides = [f"image_size={args.size}", f"dtype={args.dtype}"]
        print(
            f"{args.config} at {args.size} px, {args.dtype}, {args.data.name}, ours "
            f"{args.videos_per_device} videos per device in lockstep\n"
            "| run | frames | seconds | frames/s | vs official |\n|---|---|---|---|---|", flush=True
        )  # fmt: skip
        case = {"bench": "eval", "config": args.config, "size": args.size, "dtype": args.dtype,
                "data": str(args.data) if not args.synthetic else
                f"synthetic {args.synthetic}x{args.frames}x{args.objects}"}  # fmt: skip
        official_out = tmp / "official"
        official_run = official_result(
            args.official_cache, case, device,
            lambda: _timed_official_run(official, args.data, official_out, args.dtype, device),
        )  # fmt: skip
        official_fps = official_run["frames"] / official_run["seconds"]
        _report(args, "official SAM2VideoPredictor", official_run["frames"],
                official_run["seconds"], official_fps)  # fmt: skip
        for label in ("sam2-jax eval.py, cold (compile included)", "sam2-jax eval.py, warm"):
            summary = run([*ours_args, "--out", str(tmp / label[-4:]), *overrides])
            r = summary["run"]
            _report(args, label, r["frames_this_run"], r["seconds_this_run"], official_fps)
        if official_run["cached"]:
            print("official result from --official-cache: masks not compared")
            return
        same = total = 0
        for name in list_videos(args.data, "davis"):
            video = load_video(args.data, "davis", name)
            for t in range(video.num_frames):
                a = read_label_png(tmp / "warm" / name / f"{video.frame_names[t]}.png")
                b = read_label_png(official_out / name / f"{video.frame_names[t]}.png")
                same, total = same + int((a == b).sum()), total + a.size
    print(f"masks equal to the official on {100 * same / total:.5f}% of pixels")


if __name__ == "__main__":
    main()
