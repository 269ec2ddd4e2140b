"""Linear probes of where a tracked mask survives the memory path (no official counterpart).

A diagnostic for training from scratch: on a "static" video (a frame whose objects' masks are
stored as conditioning memories, then the same frame tracked, so a perfect tracker returns the
masks), a ridge regression reads each object's mask, as the fractions of the 4 x 4 sub-blocks
of every token, from the features of four stages of the path:
- `memory`: the memory encoder's output [O, h, w, D];
- `conditioned`: the frame's features after the memory attention [O, h, w, C];
- `decoder input`: the mask decoder's image embedding after its two-way transformer [O, h, w, C];
- `upscaled`: the mask decoder's per-pixel embedding [O, 4h, 4w, C/8], which its hypernetwork
  reads per object (the probe reads all objects with one read-out: a lower bound).
The read-out is fitted on the first half of the videos and scored (Jaccard over the pixels of
the 4h x 4w grid, threshold 0.5) on the others. Also reported: the decoder's own masks, and the
12 x 12 block average of the ground truth (what a mask at the token grid alone can reach).

    python -m sam2_jax.train.memory_probe --run runs/default
    python -m sam2_jax.train.memory_probe                 # the untrained model of `train.py`
    python -m sam2_jax.train.memory_probe init_scheme=    # ... from the plain random init
"""

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sam2_jax import config as config_lib
from sam2_jax.build import SAM2Model, build_sam2
from sam2_jax.data.synthetic import synthetic_video
from sam2_jax.eval.metrics import region_similarity
from sam2_jax.eval.run import SYNTHETIC_VAL_SEEDS
from sam2_jax.train.run import DEFAULT_CONFIG, initial_model
from sam2_jax.train.static_frame import (
    SUB,
    per_token,
    static_stages,
    sub_block_fractions,
    token_targets,
)


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
    targets_per_token = [token_targets(t, grid) for t in targets]
    read_outs = {  # stage: (features, targets), one row per token or per pixel
        "memory": ([per_token(st.memory) for st in stages], targets_per_token),
        "conditioned": ([per_token(st.conditioned) for st in stages], targets_per_token),
        "decoder input": ([per_token(st.decoder_src) for st in stages], targets_per_token),
        "upscaled": (
            [per_token(st.upscaled) for st in stages],
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
    cfg = config_lib.load(DEFAULT_CONFIG, args.overrides)
    return initial_model(cfg, cfg.model_overrides)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a train.py run directory (its model.json and params)")
    p.add_argument(
        "overrides", nargs="*",
        help="without --run: the untrained model of `python train.py` with these overrides",
    )  # fmt: skip
    args = p.parse_args(argv)
    for stage, j in probe(_model(args)).items():
        print(f"{stage:>14}: J {j:.3f}")


if __name__ == "__main__":
    main()
