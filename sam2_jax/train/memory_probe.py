"""Linear probes of where a tracked mask survives the memory path (no official counterpart).

A diagnostic for training from scratch: on a "static" video (a frame whose objects' masks are
stored as conditioning memories, then the same frame tracked, so a perfect tracker returns the
masks), a ridge regression reads each object's mask, as the fractions of the 4 x 4 sub-blocks
of every token, from the features of three stages of the path:
- `memory`: the memory encoder's output [O, h, w, D];
- `conditioned`: the frame's features after the memory attention [O, h, w, C];
- `upscaled`: the mask decoder's per-pixel embedding [O, 4h, 4w, C/8], which its hypernetwork
  reads per object (the probe reads all objects with one read-out: a lower bound).
The read-out is fitted on the first half of the videos and scored (Jaccard over the pixels of
the 4h x 4w grid, threshold 0.5) on the others. Also reported: the decoder's own masks, and the
12 x 12 block average of the ground truth (what a mask at the token grid alone can reach).

    python -m sam2_jax.train.memory_probe --run runs/default
    python -m sam2_jax.train.memory_probe --init memory_path   # the untrained default model
"""

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sam2_jax.build import SAM2Model, build_sam2
from sam2_jax.data.synthetic import synthetic_video
from sam2_jax.eval.metrics import region_similarity
from sam2_jax.eval.run import SYNTHETIC_VAL_SEEDS
from sam2_jax.memory_bank import empty_bank, num_recent_slots, write_frame
from sam2_jax.models.sam2 import SAM2
from sam2_jax.streaming import prompt_mask_at_model_size
from sam2_jax.tracker import condition_on_bank
from sam2_jax.train.memory_path_init import memory_path_init
from sam2_jax.transforms import preprocess_image

SUB = 4  # sub-blocks per token side read by the probe (the decoder's 4x upscaling)


class Stages(NamedTuple):
    """One static frame's features: memory [O, h, w, D], conditioned [O, h, w, C], upscaled
    [O, 4h, 4w, C/8], logits [O, 4h, 4w] (the decoder's single mask), masks [O, S, S] bool."""

    memory: np.ndarray
    conditioned: np.ndarray
    upscaled: np.ndarray
    logits: np.ndarray
    masks: np.ndarray


def static_stages(model: SAM2Model, image: np.ndarray, masks: np.ndarray) -> Stages:
    """image [H, W, 3] uint8, masks [O, H, W] bool -> the stages of tracking the same frame with
    its masks as conditioning memories (evaluation settings, single-mask output)."""
    module, params, cfg = model.module, model.params, model.config
    s = cfg.image_size
    o = masks.shape[0]
    gt = jnp.asarray(np.stack([prompt_mask_at_model_size(m, s) for m in masks]))
    apply = lambda *a, **k: module.apply(params, *a, **k)  # noqa: E731
    bb = apply(preprocess_image(image, s), method=SAM2.forward_image)
    raw = jnp.repeat(bb.vision_features, o, axis=0)
    high_res = tuple(jnp.repeat(f, o, axis=0) for f in bb.backbone_fpn[:2])
    prompt = apply(raw, high_res, gt, method=SAM2.use_mask_as_output)
    memory = apply(
        raw, prompt.high_res_masks[:, 0], prompt.object_score_logits, jnp.ones(o, bool),
        method=SAM2.encode_memory,
    )  # fmt: skip
    h = raw.shape[1]
    bank = empty_bank(
        o, 1, num_recent_slots(cfg.num_maskmem, 1), cfg.max_obj_ptrs_in_encoder - 1, h * h,
        memory.shape[-1], raw.shape[-1], jnp.float32,
    )  # fmt: skip
    bank = write_frame(
        bank, jnp.int32(0), memory.reshape(o, h * h, -1), prompt.obj_ptr, jnp.ones(o, bool),
        jnp.ones(o, bool),
    )  # fmt: skip
    one = jnp.int32(1)
    conditioned = apply(
        bank, raw, bb.vision_pos_enc[-1][0], one, jnp.int32(2), one, True,
        method=condition_on_bank,
    )  # fmt: skip
    heads, state = module.apply(
        params, conditioned, jnp.zeros((o, 1, 2)), -jnp.ones((o, 1), jnp.int32),
        jnp.zeros((o, 4 * h, 4 * h)), jnp.zeros(o, bool), high_res, jnp.zeros(o, bool),
        method=SAM2.track_sam_heads, mutable=["intermediates"],
    )  # fmt: skip
    (upscaled,) = jax.tree.leaves(state["intermediates"])
    return Stages(
        *(np.asarray(x) for x in (memory, conditioned, upscaled, heads.low_res_masks, gt > 0))
    )


def sub_block_fractions(masks: np.ndarray, grid: int) -> np.ndarray:
    """masks [O, S, S] -> mask fraction of each of the SUB x SUB sub-blocks of every token of
    a grid x grid map [O, grid * SUB, grid * SUB]."""
    o, s = masks.shape[:2]
    n = grid * SUB
    return masks.reshape(o, n, s // n, n, s // n).mean(axis=(2, 4))


def ridge_read_out(
    x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray, l2: float = 1e-2
) -> np.ndarray:
    """Ridge regression on standardised features: fit x_fit [N, F] -> y_fit [N, K], return its
    predictions for x [M, F] ([M, K])."""
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-8
    design = lambda a: np.concatenate([(a - mean) / std, np.ones((len(a), 1))], 1)  # noqa: E731
    a = design(x_fit)
    w = np.linalg.solve(a.T @ a + l2 * np.eye(a.shape[1]), a.T @ y_fit)
    return design(x) @ w


def jaccard(pred: np.ndarray, target: np.ndarray) -> float:
    """Jaccard index of two boolean arrays pooled over all their elements (1.0 when both are
    empty)."""
    return float(region_similarity(target.reshape(1, -1), pred.reshape(1, -1)))


def _per_token(x: np.ndarray) -> np.ndarray:
    """[O, h, w, F] -> [O * h * w, F]."""
    return x.reshape(-1, x.shape[-1])


def _token_targets(fractions: np.ndarray, grid: int) -> np.ndarray:
    """[O, 4h, 4w] sub-block fractions -> [O * h * w, SUB * SUB], one row per token."""
    o = fractions.shape[0]
    blocks = fractions.reshape(o, grid, SUB, grid, SUB).transpose(0, 1, 3, 2, 4)
    return blocks.reshape(-1, SUB * SUB)


def probe(model: SAM2Model, seeds: Sequence[int] = SYNTHETIC_VAL_SEEDS) -> dict[str, float]:
    """J of each stage's read-out (fitted on the first half of the videos' frame 0, scored on
    the rest), of the decoder's masks and of the token-grid block average, on the held-out
    videos."""
    grid = model.config.image_size // model.config.backbone_stride
    stages, targets = [], []
    for seed in seeds:
        video = synthetic_video(seed)
        ids = [i for i in np.unique(video.labels[0]) if i]
        stage = static_stages(model, video.frames[0], np.stack([video.labels[0] == i for i in ids]))
        stages.append(stage)
        targets.append(sub_block_fractions(stage.masks, grid))
    fit, held = slice(0, len(seeds) // 2), slice(len(seeds) // 2, None)
    token_targets = [_token_targets(t, grid) for t in targets]
    read_outs = {  # stage: (features, targets), one row per token or per pixel
        "memory": ([_per_token(st.memory) for st in stages], token_targets),
        "conditioned": ([_per_token(st.conditioned) for st in stages], token_targets),
        "upscaled": (
            [_per_token(st.upscaled) for st in stages],
            [t.reshape(-1, 1) for t in targets],
        ),
    }
    result = {}
    for name, (x, y) in read_outs.items():
        pred = ridge_read_out(
            np.concatenate(x[fit]), np.concatenate(y[fit]), np.concatenate(x[held])
        )
        result[name] = jaccard(pred > 0.5, np.concatenate(y[held]) > 0.5)
    truth = np.concatenate(targets[held]) > 0.5
    result["decoder"] = jaccard(np.concatenate([st.logits for st in stages[held]]) > 0, truth)
    blocks = [t.reshape(t.shape[0], grid, SUB, grid, SUB).mean(axis=(2, 4)) for t in targets]
    up = [np.repeat(np.repeat(b, SUB, 1), SUB, 2) for b in blocks[held]]
    result["block average"] = jaccard(np.concatenate(up) > 0.5, truth)
    return result


def _model(args: argparse.Namespace) -> SAM2Model:
    if args.run:
        meta = json.loads((Path(args.run) / "model.json").read_text())
        return build_sam2(
            meta["config"], meta["checkpoint"], meta["overrides"], apply_postprocessing=False
        )
    overrides = ["image_size=192", *args.overrides]
    model = build_sam2(args.config, None, overrides, apply_postprocessing=False, seed=args.seed)
    if args.init == "memory_path":
        heads = model.config.memory_attention.layer.cross_attention.num_heads
        params = memory_path_init(model.params["params"], heads)
        model = dataclasses.replace(model, params={"params": params})
    return model


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a train.py run directory (its model.json and params)")
    p.add_argument("--init", choices=("memory_path", "plain"), default="memory_path",
                   help="without --run: random weights, with this init scheme")  # fmt: skip
    p.add_argument("--config", default="sam2.1_test_tiny", help="without --run: model config")
    p.add_argument("--seed", type=int, default=0, help="without --run: weight seed")
    p.add_argument("overrides", nargs="*", help="without --run: model overrides (key=value)")
    args = p.parse_args(argv)
    for stage, j in probe(_model(args)).items():
        print(f"{stage:>14}: J {j:.3f}")


if __name__ == "__main__":
    main()
