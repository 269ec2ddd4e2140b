"""Segment an image with a click and write a mask overlay PNG (README's first command).

With no arguments it generates a small synthetic scene, builds `sam2.1_hiera_t` at 512 px with
random weights (no checkpoint download is possible here) and clicks on the disc in the middle.
Pass `--checkpoint sam2.1_hiera_tiny.pt --image photo.jpg --point X Y` for real use.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_jax import SAM2ImagePredictor


def synthetic_scene(height: int = 360, width: int = 480, seed: int = 0) -> np.ndarray:
    """A textured background with a disc, a bar and a triangle: [H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 140 + 0 * xx], -1)
    img += rng.normal(0, 8, img.shape)
    disc = (xx - width * 0.5) ** 2 + (yy - height * 0.5) ** 2 < (height * 0.2) ** 2
    img[disc] = (220, 80, 60)
    img[int(height * 0.1) : int(height * 0.25), int(width * 0.05) : int(width * 0.6)] = (
        40,
        170,
        90,
    )
    tri = (yy > height * 0.6) & (xx > width * 0.7) & (xx - width * 0.7 < (yy - height * 0.6))
    img[tri] = (240, 220, 70)
    return np.clip(img, 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray, point: tuple[float, float]) -> Image.Image:
    """Blend `mask` [H, W] bool in blue over `image` and mark the click in green."""
    out = image.astype(np.float32)
    out[mask] = 0.45 * out[mask] + 0.55 * np.array([30, 144, 255])
    x, y = int(point[0]), int(point[1])
    out[max(y - 4, 0) : y + 5, max(x - 4, 0) : x + 5] = (0, 255, 0)
    return Image.fromarray(out.astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--checkpoint", default=None, help="official .pt or sam2-jax orbax dir")
    p.add_argument("--image", default=None, help="RGB image file (default: synthetic scene)")
    p.add_argument("--point", type=float, nargs=2, default=None, metavar=("X", "Y"))
    p.add_argument("--box", type=float, nargs=4, default=None, metavar=("X0", "Y0", "X1", "Y1"))
    p.add_argument("--out", default="outputs/segment_image.png")
    p.add_argument("overrides", nargs="*", default=None, help="config overrides key=value")
    args = p.parse_args(argv)
    overrides = args.overrides or (["image_size=512"] if args.checkpoint is None else [])

    if args.image:
        image = np.asarray(Image.open(args.image).convert("RGB"))
    else:
        image = synthetic_scene()
    point = tuple(args.point) if args.point else (image.shape[1] / 2, image.shape[0] / 2)

    t0 = time.perf_counter()
    predictor = SAM2ImagePredictor.from_checkpoint(args.config, args.checkpoint, overrides)
    predictor.set_image(image)
    box = None if args.box is None else np.array(args.box)
    masks, scores, _ = predictor.predict(
        point_coords=np.array([point]),
        point_labels=np.array([1]),
        box=box,
        multimask_output=box is None,
    )
    best = int(np.argmax(scores))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    overlay(image, masks[best] > 0.5, point).save(args.out)
    weights = args.checkpoint or "random weights"
    print(
        f"{args.config} ({weights}): best mask {best} score {scores[best]:.3f}, "
        f"{(masks[best] > 0.5).mean():.1%} of the image, {time.perf_counter() - t0:.1f}s "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
