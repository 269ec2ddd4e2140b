"""Automatic masks for a whole image, drawn as a colour overlay PNG.

    python examples/automatic_masks.py --image ../shared/data/sam2_demo/images/groceries.jpg \
        --checkpoint sam2.1_hiera_tiny.pt

Without `--checkpoint` the model has random weights (official weights cannot be downloaded
here), so the thresholds are lowered to keep some masks; with real weights use the defaults.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_jax import SAM2AutomaticMaskGenerator


def colour_overlay(image: np.ndarray, records: list[dict], seed: int = 0) -> Image.Image:
    """Blend each mask [H, W] in its own random colour, largest first (small ones stay visible)."""
    rng = np.random.default_rng(seed)
    out = image.astype(np.float32)
    for rec in sorted(records, key=lambda r: r["area"], reverse=True):
        m = rec["segmentation"]
        out[m] = 0.5 * out[m] + 0.5 * rng.integers(0, 256, 3)
    return Image.fromarray(out.astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--checkpoint", default=None, help="official .pt, HF dir or orbax dir")
    p.add_argument("--image", required=True, help="RGB image file")
    p.add_argument("--points-per-side", type=int, default=16)
    p.add_argument("--out", default="outputs/automatic_masks.png")
    p.add_argument("overrides", nargs="*", default=None, help="config overrides key=value")
    args = p.parse_args(argv)
    random_weights = args.checkpoint is None
    overrides = args.overrides or (["image_size=512"] if random_weights else [])
    thresholds = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0) if random_weights else {}

    image = np.asarray(Image.open(args.image).convert("RGB"))
    t0 = time.perf_counter()
    generator = SAM2AutomaticMaskGenerator.from_checkpoint(
        args.config,
        args.checkpoint,
        overrides,
        points_per_side=args.points_per_side,
        **thresholds,
    )
    records = generator.generate(image)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    colour_overlay(image, records).save(args.out)
    print(f"{len(records)} masks in {time.perf_counter() - t0:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
