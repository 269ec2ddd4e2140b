"""Compile time of the scanned clip programs against clip length: flat by construction.

    python -m bench.compile [--lengths 8 32 128] [--size 256] [--json FILE]

- tracking: `streaming.track_video` with `chunk_size` = the clip length, so the whole clip is
  one `lax.scan` program (sam2.1_hiera_t at `--size`, 1 object); compile = JAX's own compile
  events (tracing, lowering, XLA compile) of the cold run, caches cleared before each length;
- training: the jitted train step of the default small model for a clip of that many frames
  (1 clip, 2 objects), compiled ahead of time (`lower().compile()`), not run.
The official implementation is eager PyTorch (nothing to compile), so there is no ratio here.
"""

import argparse
import time

import numpy as np

from bench.common import add_output_args, append_json, machine

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def tracking_compile_seconds(length: int, size: int) -> float:
    import jax
    from jax._src import monitoring

    from sam2_jax.build import build_sam2
    from sam2_jax.data.frames import load_video_frames
    from sam2_jax.data.synthetic import synthetic_video
    from sam2_jax.streaming import track_video

    video = synthetic_video(0, num_frames=length, height=size, width=size, num_objects=1)
    model = build_sam2("sam2.1_hiera_t", None, [f"image_size={size}"], apply_postprocessing=False)
    frames = load_video_frames(video.frames, size)
    jax.clear_caches()
    seconds = []

    def listener(event: str, duration: float, **_) -> None:
        if event in COMPILE_EVENTS:
            seconds.append(duration)

    monitoring.register_event_duration_secs_listener(listener)
    try:
        for _ in track_video(model, frames, {0: {0: video.labels[0] == 1}}, 1, chunk_size=length):
            pass
    finally:
        monitoring.unregister_event_duration_listener(listener)
    return sum(seconds)


def training_compile_seconds(length: int) -> float:
    import jax

    from sam2_jax import build_sam2
    from sam2_jax.data.synthetic import synthetic_video
    from sam2_jax.train.forward import TrainBatch
    from sam2_jax.train.losses import LossConfig
    from sam2_jax.train.optimizer import OptimizerConfig, make_optimizer
    from sam2_jax.train.prompts import PromptConfig, sample_plan
    from sam2_jax.train.step import init_state, jit_train_step

    size, objects = 128, 2
    model = build_sam2("sam2.1_test_tiny", None, [f"image_size={size}"])
    video = synthetic_video(0, num_frames=length, height=size, width=size, num_objects=objects)
    masks = np.stack([video.labels == k + 1 for k in range(objects)], axis=1)
    batch = TrainBatch(video.frames[None] / np.float32(255), masks[None],
                       np.ones((1, objects), bool))  # fmt: skip
    prompts = PromptConfig(num_correction_pt_per_frame=3)
    plan = sample_plan(np.random.default_rng(0), np.random.default_rng(1), masks, prompts)
    tx = make_optimizer(model.params["params"], OptimizerConfig(), 1000)
    state = init_state(model.params["params"], tx, 0)
    step = jit_train_step(model.module, tx, LossConfig(), prompts.max_cond_frames(length))
    jax.clear_caches()
    t0 = time.perf_counter()
    step.lower(state, batch, plan).compile()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", nargs="+", type=int, default=[8, 32, 128])
    p.add_argument("--size", type=int, default=256, help="tracking image size")
    add_output_args(p)
    args = p.parse_args()
    print(f"machine: {machine()}")
    print(f"| clip frames | tracking compile (sam2.1_hiera_t @{args.size}) | "
          "train step compile (small model @128) |\n|---|---|---|")  # fmt: skip
    for length in args.lengths:
        track = tracking_compile_seconds(length, args.size)
        train = training_compile_seconds(length)
        print(f"| {length} | {track:.1f} s | {train:.1f} s |", flush=True)
        append_json(args.json, {"bench": "compile", "frames": length, "size": args.size,
                                "tracking_compile_s": track, "train_compile_s": train})  # fmt: skip


if __name__ == "__main__":
    main()
