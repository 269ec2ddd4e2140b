"""`train.py`: the SAM 2 training loop (in the style of MaxText's train.py).

    python train.py [--config configs/train/default.py[:ARG]] [--resume] [key=value ...]

One step: a batch from the grain pipeline (clips sampled and augmented as the official
trainer), a prompt plan drawn on the host from (seed, step), and the jitted `train_step`
sharded over a (data, fsdp, model) mesh. Checkpoints (orbax, async): the train state and the data
iterator state every `checkpoint.every_steps`, at the end, and on SIGTERM; `--resume` continues
from the latest one and reproduces an uninterrupted run bit for bit. Logs: a tqdm bar,
`<run_dir>/metrics.jsonl`, TensorBoard events in `<run_dir>/tb`. At the end the params are
exported (`<run_dir>/params`, orbax) with `<run_dir>/model.json`, which `eval.py` uses by
default, and evaluated on a held-out synthetic split with the `eval.py` code. `total_steps=0`
exports and evaluates the initial model only (a recipe's untrained baseline).
"""

import argparse
import dataclasses
import json
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from sam2_jax import config as config_lib
from sam2_jax.build import build_sam2
from sam2_jax.checkpoint.formats import save_params
from sam2_jax.data import sources
from sam2_jax.data.clips import ClipConfig
from sam2_jax.data.pipeline import make_train_dataset
from sam2_jax.train.forward import TrainBatch
from sam2_jax.train.losses import LossConfig
from sam2_jax.train.memory_path_init import memory_path_init
from sam2_jax.train.optimizer import OptimizerConfig, learning_rate, make_optimizer
from sam2_jax.train.prompts import PromptConfig, sample_plan
from sam2_jax.train.read_out_init import decoder_read_out_init
from sam2_jax.train.sharding import batch_sharding, make_mesh, shardings
from sam2_jax.train.step import TrainState, init_state, jit_train_step
from sam2_jax.transforms import IMAGE_MEAN, IMAGE_STD

DEFAULT_CONFIG = str(config_lib.CONFIGS_DIR / "train" / "default.py")
FINAL_METRICS = "final_metrics.json"  # in the run folder once the last step is done
INIT_SCHEMES = ("", "memory_path")


class TrainError(Exception):
    """A problem with the command line, the config, the data or the run folder (exit 2)."""


def _dataclass(cls, fields: ml_collections.ConfigDict):
    values = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in fields.items()}
    return cls(**values)


def make_source(data: ml_collections.ConfigDict, seed: int):
    """The training source named by `data.source`."""
    if data.source == "synthetic":
        return sources.SyntheticSource(
            data.num_videos, seed, data.video_frames, data.video_height, data.video_width,
            data.video_objects,
        )  # fmt: skip
    root = Path(data.root)
    if not root.exists():
        raise TrainError(f"data.root '{root}' does not exist")
    if data.source == "png":
        return sources.PNGVideoSource(root / "JPEGImages", root / "Annotations")
    if data.source == "sav":
        return sources.SAVSource(root)
    if data.source == "sa1b":
        return sources.SA1BSource(root)
    if data.source == "array_record":
        return sources.ArrayRecordSource([str(root)])
    raise TrainError(
        f"unknown data.source {data.source!r}; expected synthetic, png, sav, sa1b, array_record"
    )


def host_batch(example: dict[str, np.ndarray]) -> TrainBatch:
    """A pipeline batch -> TrainBatch (images normalised to f32)."""
    images = (example["images"] / np.float32(255) - np.float32(IMAGE_MEAN)) / np.float32(IMAGE_STD)
    return TrainBatch(images.astype(np.float32), example["masks"], example["object_valid"])


def batch_plan(batch: TrainBatch, prompts: PromptConfig, seed: int, step: int):
    """The prompts of step `step`: a function of (seed, step) only, so a resumed run draws the
    same ones. Objects are flattened clip-major, as `clip_forward` does."""
    b, t, o = batch.masks.shape[:3]
    masks = np.moveaxis(batch.masks, 1, 0).reshape(t, b * o, *batch.masks.shape[3:])
    rng = np.random.default_rng([seed, step, 0])
    point_rng = np.random.default_rng([seed, step, 1])
    return sample_plan(rng, point_rng, masks, prompts)


def compile_step(step_fn, state: TrainState, batch: TrainBatch, plan):
    """The train step compiled ahead of time for these argument shapes, and its FLOPs from XLA's
    cost analysis of the lowered (unoptimised) program: forward, backward (with its
    rematerialisation) and the optimizer, over all devices. One trace and one compile."""
    lowered = step_fn.lower(state, batch, plan)
    flops = float((lowered.cost_analysis() or {}).get("flops", 0.0))
    return lowered.compile(), flops


def log_metrics(
    window: list[dict[str, float]], times: list[float], step: int, cfg, opt_cfg, flops: float
) -> dict:
    """The metrics logged at `step`: means over the step outputs of `window` (loss terms, grad
    norm, finite fraction) and over `times` (step seconds; NaN when empty), the lrs,
    throughput and, with `peak_flops_per_device` > 0, the MFU (FLOPs / step time / (peak x
    devices))."""
    metrics = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
    seconds = float(np.mean(times)) if times else float("nan")
    metrics.update(
        step_seconds=seconds,
        lr=float(learning_rate(step, cfg.total_steps, opt_cfg, vision=False)),
        lr_vision=float(learning_rate(step, cfg.total_steps, opt_cfg, vision=True)),
        clips_per_second=cfg.batch_size / seconds,
        tflops_per_second=flops / seconds / 1e12,
    )
    if cfg.peak_flops_per_device > 0:
        metrics["mfu"] = flops / seconds / (cfg.peak_flops_per_device * jax.device_count())
    return metrics


def _checkpoint_manager(run_dir: Path, cfg) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg.checkpoint.max_to_keep, enable_async_checkpointing=True
    )
    return ocp.CheckpointManager(run_dir / "checkpoints", options=options)


def _save(manager: ocp.CheckpointManager, state: TrainState, data_iter) -> None:
    step = int(state.step)
    data_state = json.dumps(data_iter.get_state(), default=str)
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave({"iterator": data_state})
        ),
    )


def _restore(manager, step: int, abstract_state, data_iter) -> TrainState:
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
        ),
    )
    data_iter.set_state(json.loads(restored["data"]["iterator"]))
    return restored["state"]


def read_out_examples(cfg, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first frames of the first `count` training clips (seed `cfg.seed`, as one host) that
    hold an object: (frame [S, S, 3] uint8, the valid objects' masks [O, S, S] bool)."""
    clip_cfg = _dataclass(ClipConfig, cfg.clip)
    dataset = make_train_dataset(make_source(cfg.data, cfg.seed), clip_cfg, cfg.seed, 1, 0, 1)
    examples = []
    for batch in dataset:
        if len(examples) == count:
            break
        valid = batch["object_valid"][0]
        if valid.any():
            examples.append((batch["images"][0, 0], batch["masks"][0, 0][valid]))
    return examples


def initial_model(cfg, model_overrides: Sequence[str], fit_read_out: bool = True):
    """The model to train: `init_from` (checked strictly), or random weights from `seed` with
    `init_scheme` applied ("memory_path": `memory_path_init`, then, with `fit_read_out`, the
    decoder read-out fitted on `init_read_out_clips` training clips, `read_out_init`; "": as
    initialised). A resumed run passes fit_read_out=False: its restored params replace these."""
    if cfg.init_scheme not in INIT_SCHEMES:
        raise TrainError(f"unknown init_scheme {cfg.init_scheme!r}; known: {INIT_SCHEMES}")
    model = build_sam2(
        cfg.model, cfg.init_from or None, model_overrides, apply_postprocessing=False,
        seed=cfg.seed,
    )  # fmt: skip
    unknown = set(cfg.frozen) - set(model.params["params"])
    if unknown:
        raise TrainError(
            f"frozen names {sorted(unknown)} are not modules of the model; known: "
            f"{sorted(model.params['params'])}"
        )
    if cfg.init_scheme == "memory_path" and not cfg.init_from:
        heads = model.config.memory_attention.layer.cross_attention.num_heads
        params = memory_path_init(model.params["params"], heads)
        model = dataclasses.replace(model, params={"params": params})
        if fit_read_out and cfg.init_read_out_clips > 0:
            examples = read_out_examples(cfg, cfg.init_read_out_clips)
            params = decoder_read_out_init(model, examples)
            model = dataclasses.replace(model, params={"params": params})
    return model


class _Logger:
    """metrics.jsonl and TensorBoard events (process 0 only)."""

    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter

        self.enabled = jax.process_index() == 0
        if self.enabled:
            self.jsonl = open(run_dir / "metrics.jsonl", "a")
            self.writer = SummaryWriter(str(run_dir / "tb"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self.jsonl.flush()
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.writer.close()


def export(run_dir: Path, cfg, params) -> Path:
    """Params for inference (`<run_dir>/params`, orbax; a later export replaces it, written
    aside first) and `<run_dir>/model.json`."""
    path, new, old = (run_dir / name for name in ("params", "params.new", "params.old"))
    for stale in (new, old):
        shutil.rmtree(stale, ignore_errors=True)
    save_params(params, new, cfg.model)
    if path.exists():
        path.rename(old)
    new.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    model_json = {"config": cfg.model, "overrides": list(cfg.model_overrides),
                  "checkpoint": str(path)}  # fmt: skip
    (run_dir / "model.json").write_text(json.dumps(model_json, indent=2) + "\n")
    return path


def _evaluate(run_dir: Path, cfg, step: int) -> dict:
    """The `eval.py` semi-supervised run of the exported params on `cfg.eval.data`."""
    from sam2_jax.data.synthetic import write_davis_dataset
    from sam2_jax.eval.run import DEFAULT_SYNTHETIC_VAL, SYNTHETIC_VAL_SEEDS, run

    data = Path(cfg.eval.data)
    if data == DEFAULT_SYNTHETIC_VAL and not (data / "ImageSets").is_dir():
        write_davis_dataset(data, SYNTHETIC_VAL_SEEDS, split="val")
    out = run_dir / f"eval_step{step:06d}"
    summary = run(
        ["--config", cfg.model, "--checkpoint", str(run_dir / "params"), "--data", str(data),
         "--out", str(out), "--max-videos", str(cfg.eval.max_videos), *cfg.model_overrides]
    )  # fmt: skip
    return summary


def _initial_only(run_dir: Path, cfg, params) -> dict[str, Any]:
    """`total_steps=0`: export the initial model (and evaluate it unless eval.every_steps < 0),
    the untrained baseline of a recipe."""
    metrics: dict[str, Any] = {}
    if jax.process_index() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(cfg.to_json(indent=2) + "\n")
        export(run_dir, cfg, jax.device_get(params))
        if cfg.eval.every_steps >= 0:
            metrics["eval_J&F"] = _evaluate(run_dir, cfg, 0)["J&F-Mean"]
        (run_dir / FINAL_METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train.py", description="SAM 2 training.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config file[:arg]")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--distributed", action="store_true", help="jax.distributed.initialize()")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p.parse_intermixed_args(argv)


def train(argv: Sequence[str]) -> dict[str, Any]:
    """The training command; returns the last metrics."""
    args = _parse(argv)
    if args.distributed:
        jax.distributed.initialize()
    cfg = config_lib.load(args.config, args.overrides)
    if cfg.nan_policy not in ("stop", "skip"):
        raise TrainError(f"nan_policy must be 'stop' or 'skip', got {cfg.nan_policy!r}")
    run_dir = Path(cfg.run_dir).absolute()  # orbax needs absolute paths
    manager = _checkpoint_manager(run_dir, cfg)
    if manager.latest_step() is not None and not args.resume:
        raise TrainError(
            f"'{run_dir}' already holds checkpoints (latest step {manager.latest_step()}); pass "
            "--resume to continue it, or another run_dir=... (nothing was overwritten)"
        )
    model_overrides = (*cfg.model_overrides, f"dtype={cfg.dtype}")
    clip_cfg = _dataclass(ClipConfig, cfg.clip)
    prompts = _dataclass(PromptConfig, cfg.prompts)
    loss_cfg = _dataclass(LossConfig, cfg.loss)
    opt_cfg = _dataclass(OptimizerConfig, cfg.optimizer)
    image_size = config_lib.load(cfg.model, model_overrides).image_size
    if clip_cfg.image_size != image_size:
        raise TrainError(
            f"clip.image_size={clip_cfg.image_size} but the model's image_size is "
            f"{image_size}; set both"
        )
    source = make_source(cfg.data, cfg.seed)
    resuming = args.resume and manager.latest_step() is not None
    model = initial_model(cfg, model_overrides, fit_read_out=not resuming)
    if cfg.total_steps == 0:
        return _initial_only(run_dir, cfg, model.params["params"])
    mesh = make_mesh(**cfg.mesh)
    if cfg.batch_size % (mesh.shape["data"] * mesh.shape["fsdp"] * cfg.grad_accum_steps):
        raise TrainError(
            f"batch_size={cfg.batch_size} is not divisible by data x fsdp devices x "
            f"grad_accum_steps={cfg.grad_accum_steps}"
        )
    tx = make_optimizer(model.params["params"], opt_cfg, cfg.total_steps)
    state = init_state(model.params["params"], tx, cfg.seed)
    state_sharding = shardings(state, mesh, fsdp_min_size=cfg.fsdp_min_size)
    data_sharding = batch_sharding(mesh)
    step_fn = jit_train_step(
        model.module, tx, loss_cfg, prompts.max_cond_frames(clip_cfg.num_frames),
        state_sharding, data_sharding, cfg.grad_accum_steps, cfg.frozen,
    )  # fmt: skip
    per_host = cfg.batch_size // jax.process_count()
    dataset = make_train_dataset(
        source, clip_cfg, cfg.seed, per_host, jax.process_index(), jax.process_count(),
        num_threads=cfg.data.num_threads,
    )  # fmt: skip
    data_iter = iter(dataset)
    if resuming:
        abstract = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_sharding
        )
        state = _restore(manager, manager.latest_step(), abstract, data_iter)
    else:
        state = jax.device_put(state, state_sharding)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json(indent=2) + "\n")
    stop = {"signal": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(signal=True))
    logger = _Logger(run_dir)
    start_step = int(state.step)
    metrics: dict[str, Any] = {}
    window: list[dict[str, float]] = []  # step outputs since the last log line
    times: list[float] = []  # their step times, the first step of the process (compile) aside
    compiled, flops = None, 0.0
    try:
        bar = tqdm(total=cfg.total_steps, initial=start_step, unit="step", desc="train")
        for step in range(start_step, cfg.total_steps):
            t0 = time.perf_counter()
            batch = host_batch(next(data_iter))
            plan = batch_plan(batch, prompts, cfg.seed, step)
            device_batch = jax.device_put(batch, data_sharding)
            if compiled is None:
                compiled, flops = compile_step(step_fn, state, device_batch, plan)
            state, out = compiled(state, device_batch, plan)
            out = {k: float(v) for k, v in out.items()}
            seconds = time.perf_counter() - t0
            if not out["finite"] and cfg.nan_policy == "stop":
                manager.wait_until_finished()
                raise TrainError(
                    f"non-finite loss or gradient at step {step} (loss {out['core_loss']}, grad "
                    f"norm {out['grad_norm']}); the last good checkpoint is step "
                    f"{manager.latest_step()} (nan_policy=skip to go on)"
                )
            bar.update(1)
            bar.set_postfix(loss=f"{out['core_loss']:.3f}", s_per_step=f"{seconds:.2f}")
            window.append(out)
            if step == start_step:
                logger.log(step + 1, {"first_step_seconds": seconds})  # compile included
            else:
                times.append(seconds)
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.total_steps:
                metrics = log_metrics(window, times, step, cfg, opt_cfg, flops)
                logger.log(step + 1, metrics)
                window, times = [], []
            done = step + 1 == cfg.total_steps
            if (step + 1) % cfg.checkpoint.every_steps == 0 or done or stop["signal"]:
                _save(manager, state, data_iter)
            every = cfg.eval.every_steps
            evaluate = done if every == 0 else every > 0 and (step + 1) % every == 0
            if jax.process_index() == 0 and (done or evaluate):
                export(run_dir, cfg, jax.device_get(state.params))
            if jax.process_index() == 0 and evaluate:
                summary = _evaluate(run_dir, cfg, step + 1)
                metrics["eval_J&F"] = summary["J&F-Mean"]
                logger.log(step + 1, {"eval_J&F": summary["J&F-Mean"]})
            if stop["signal"]:
                break
        bar.close()
        if metrics and int(state.step) == cfg.total_steps and jax.process_index() == 0:
            (run_dir / FINAL_METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    finally:
        manager.wait_until_finished()
        logger.close()
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        metrics = train(sys.argv[1:] if argv is None else argv)
    except (TrainError, FileNotFoundError, ValueError, KeyError, TypeError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    if metrics:
        loss = f"loss {metrics['core_loss']:.4f}, " if "core_loss" in metrics else ""
        print(f"done: {loss}eval J&F {metrics.get('eval_J&F')}")
    return 0
