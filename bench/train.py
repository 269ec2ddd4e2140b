"""Training step: sam2-jax vs the official trainer on the same clip, same run, same machine.

    python -m bench.train [--cases small tiny512] [--repeats 3] [--peak-tflops X]
        [--dtype float32|bfloat16] [--ours-only] [--json FILE]

Each case builds the official `SAM2Train` (random weights, dropout 0) and our model from its
checkpoint, one clip of synthetic video (1 clip, `frames` frames, `objects` objects), and one
prompt plan: the official decisions come from its own `np.random.default_rng(42)` (reset before
every official step, so every step does the same work) and ours from the same generator through
`sample_plan`; clicks and correction clicks are fed to the official from our plan. Timed work:
- ours: the jitted `train_step` (forward, loss, backward, clipping, AdamW update with the
  official groups), median of `--repeats` steps after one warm-up step; compile time separately;
- official: `SAM2Train` forward + `MultiStepMultiMasksAndIous` + backward + clipping +
  `torch.optim.AdamW` step, median of `--repeats` steps after one warm-up step.
Both in fp32 with the same threads (--dtype bfloat16: ours computes in bf16 with fp32 params and
optimizer state, the official under bf16 autocast as its trainer's AMP). `--ours-only` times ours
alone, from random weights (no official trainer needed); `--compile-only` compiles ours and exits,
which fills JAX's persistent compilation cache (`JAX_COMPILATION_CACHE_DIR`) for a later run.
FLOPs are XLA's cost analysis of our compiled step (forward and backward as executed, including
rematerialisation); MFU = FLOPs / step time / peak, printed when `--peak-tflops` (of the device,
for the dtype) is given.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from bench.common import add_device_args, append_json, machine, median_time, torch_device


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    official_config: str  # the official yaml whose weights both sides use
    ours_config: str
    model: tuple[str, ...]  # model overrides beyond the official yaml (both sides)
    size: int
    frames: int
    objects: int


CASES = {
    "small": Case("small (train.py default model)", "sam2.1_hiera_t", "sam2.1_test_tiny",
                  ("image_encoder.trunk.stages=[1,1,2,1]",
                   "image_encoder.trunk.global_att_blocks=[3]"), 128, 4, 3),
    "tiny512": Case("sam2.1_hiera_t @512", "sam2.1_hiera_t", "sam2.1_hiera_t", (), 512, 4, 2),
}  # fmt: skip


def _plan(masks, prompts, size: int):
    from sam2_jax.train.prompts import sample_plan

    plan = sample_plan(np.random.default_rng(42), np.random.default_rng(7), masks, prompts)
    rng = np.random.default_rng(3)
    shape = (masks.shape[0], prompts.num_correction_pt_per_frame, masks.shape[1])
    return plan.replace(
        correction_coords=rng.uniform(0, size - 1, (*shape, 2)).round().astype(np.float32),
        correction_labels=rng.integers(0, 2, shape).astype(np.int32),
    )


def _official_step(official, optimizer, criterion, batch, masks, plan, prompts, autocast):
    import torch
    from train_oracle import patch_official_samplers

    official.rng = np.random.default_rng(42)
    queue = patch_official_samplers(setattr, plan, prompts)
    optimizer.zero_grad()
    with autocast:
        outputs = official(batch)
    loss = criterion(outputs, torch.from_numpy(masks).to(batch.img_batch.device))["core_loss"]
    loss.backward()
    torch.nn.utils.clip_grad_norm_(official.parameters(), 0.1)
    optimizer.step()
    if batch.img_batch.is_cuda:
        torch.cuda.synchronize()
    assert not queue, "the official trainer consumed fewer clicks than planned"


def _build(case: Case, prompts, dtype: str, ours_only: bool):
    """(ours, official or None): the official with random weights and ours converted from it,
    or ours alone from its own random init."""
    import tempfile

    from oracle import build_official, save_official_checkpoint
    from train_oracle import NO_DROPOUT, official_train_overrides

    from sam2_jax import build_sam2

    overrides = [f"image_size={case.size}", f"dtype={dtype}", *NO_DROPOUT]
    if ours_only:
        return build_sam2(case.ours_config, None, overrides, apply_postprocessing=False), None
    official = build_official(
        case.official_config, image_size=case.size, apply_postprocessing=False,
        extra_overrides=official_train_overrides(prompts, NO_DROPOUT + case.model),
        object_score_bias=None,
    ).train()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        save_official_checkpoint(official, f"{tmp}/w.pt")
        ours = build_sam2(case.ours_config, f"{tmp}/w.pt", overrides, apply_postprocessing=False)
    return ours, official


def _official_seconds(official, images, masks, plan, prompts, opt_cfg, dtype, device, repeats):
    """Median seconds of the official forward + loss + backward + clipping + AdamW step."""
    import torch
    import training.model.sam2 as official_module
    from train_oracle import official_batch, official_criterion

    from bench.common import official_autocast

    official.to(device)
    torch_batch = official_batch(images, masks).to(device)
    optimizer = torch.optim.AdamW(official.parameters(), lr=opt_cfg.base_lr, weight_decay=0.1)
    criterion = official_criterion()
    autocast = official_autocast(device, dtype)
    patched = ("get_next_point", "sample_box_points")
    originals = {k: getattr(official_module, k) for k in patched}
    try:
        return median_time(
            lambda: _official_step(
                official, optimizer, criterion, torch_batch, masks, plan, prompts, autocast
            ),
            repeats,
        )
    finally:
        for k, v in originals.items():
            setattr(official_module, k, v)


def run_case(
    case: Case, repeats: int, peak_tflops: float, dtype: str = "float32", ours_only: bool = False,
    device: str = "cpu", compile_only: bool = False, official_cache: Path | None = None,
) -> dict:  # fmt: skip
    import jax
    from train_oracle import synthetic_clip

    from bench.common import official_result
    from sam2_jax.train.forward import TrainBatch
    from sam2_jax.train.losses import LossConfig
    from sam2_jax.train.optimizer import OptimizerConfig, make_optimizer
    from sam2_jax.train.prompts import PromptConfig
    from sam2_jax.train.step import init_state, jit_train_step

    prompts = PromptConfig(num_correction_pt_per_frame=3)
    images, masks = synthetic_clip(3, case.frames, case.size, case.objects)
    plan = _plan(masks, prompts, case.size)
    ours, official = _build(case, prompts, dtype, ours_only)

    opt_cfg = OptimizerConfig()
    tx = make_optimizer(ours.params["params"], opt_cfg, total_steps=1000)
    step = jit_train_step(ours.module, tx, LossConfig(), prompts.max_cond_frames(case.frames))
    batch = TrainBatch(images[None], masks[None], np.ones((1, case.objects), bool))
    state = init_state(ours.params["params"], tx, 0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch, plan).compile()
    compile_seconds = time.perf_counter() - t0
    flops = (compiled.cost_analysis() or {}).get("flops", float("nan"))
    if compile_only:
        return {"bench": "train_compile", "case": case.name, "dtype": dtype,
                "compile_s": compile_seconds, "gflop_per_step": flops / 1e9}  # fmt: skip
    holder = {"state": state}

    def ours_step():
        holder["state"], out = compiled(holder["state"], batch, plan)
        jax.block_until_ready(out)

    ours_seconds = median_time(ours_step, repeats)

    official_seconds = float("nan")
    if official is not None:
        case_key = {"bench": "train", "case": case.name, "dtype": dtype, "repeats": repeats}
        official_seconds = official_result(
            official_cache, case_key, device,
            lambda: {"step_s": _official_seconds(
                official, images, masks, plan, prompts, opt_cfg, dtype, device, repeats)},
        )["step_s"]  # fmt: skip
    result = {
        "bench": "train", "case": case.name, "dtype": dtype, "size": case.size,
        "frames": case.frames, "objects": case.objects,
        "ours_step_s": ours_seconds, "official_step_s": official_seconds,
        "speedup": official_seconds / ours_seconds, "compile_s": compile_seconds,
        "clips_per_s": 1 / ours_seconds, "gflop_per_step": flops / 1e9,
        "achieved_tflops": flops / ours_seconds / 1e12,
    }  # fmt: skip
    if peak_tflops:
        result["mfu"] = result["achieved_tflops"] / peak_tflops
    return result


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak, for MFU")
    p.add_argument("--ours-only", action="store_true", help="time ours alone (random init)")
    p.add_argument(
        "--compile-only", action="store_true",
        help="compile ours and exit (fills JAX's persistent compilation cache for a later run)",
    )  # fmt: skip
    add_device_args(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    print(f"machine: {machine()}; torch threads {args.threads}, official on {device}")
    print(f"{args.dtype}, 1 clip per step, dropout 0; median of "
          f"{args.repeats} steps after 1 warm-up step")  # fmt: skip
    print(
        "| case | frames x objects | sam2-jax step | official fwd+bwd+AdamW | speed-up | "
        "compile | GFLOP/step | TFLOP/s" + (" | MFU |" if args.peak_tflops else " |")
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.peak_tflops else ""))
    for name in args.cases:
        r = run_case(
            CASES[name], args.repeats, args.peak_tflops, args.dtype, args.ours_only, device,
            args.compile_only, args.official_cache,
        )  # fmt: skip
        append_json(args.json, r)
        if args.compile_only:
            print(f"| {r['case']} | compile {r['compile_s']:.0f} s | {r['gflop_per_step']:.1f} "
                  "GFLOP/step |", flush=True)  # fmt: skip
            continue
        mfu = f" {100 * r['mfu']:.1f}% |" if "mfu" in r else ""
        print(
            f"| {r['case']} | {r['frames']} x {r['objects']} | {r['ours_step_s']:.2f} s | "
            f"{r['official_step_s']:.2f} s | {r['speedup']:.2f}x | {r['compile_s']:.0f} s | "
            f"{r['gflop_per_step']:.1f} | {r['achieved_tflops']:.3f} |" + mfu,
            flush=True,
        )


if __name__ == "__main__":
    main()
