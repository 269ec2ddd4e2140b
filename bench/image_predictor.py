"""Image predictor latency: sam2-jax vs official SAM2ImagePredictor, same run, same CPU.

    python -m bench.image_predictor [--config sam2.1_hiera_t] [--size 1024] [--repeats 5]

Both sides get the same random weights (official model -> .pt -> our converter), the same image
and the same click; both run fp32 on the same threads. Warm-up (and our jit compile) is excluded;
the median of `--repeats` runs of `set_image` + `predict` is reported.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import SHARED_DATA, machine, median_time, row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from oracle import build_official, save_official_checkpoint
    from sam2.sam2_image_predictor import SAM2ImagePredictor as Official

    from sam2_jax import SAM2ImagePredictor

    image_path = SHARED_DATA / "sam2_demo" / "images" / "truck.jpg"
    if image_path.exists():
        image = np.asarray(Image.open(image_path).convert("RGB"))
    else:  # same shape as truck.jpg
        image = np.random.default_rng(0).integers(0, 256, (1200, 1800, 3), dtype=np.uint8)
    click = dict(point_coords=np.array([[500.0, 375.0]]), point_labels=np.array([1]))

    official = build_official(args.config, image_size=args.size)
    s = args.size
    ref = Official(official)
    ref._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    with tempfile.TemporaryDirectory() as d:
        save_official_checkpoint(official, Path(d) / "ckpt.pt")
        ours = SAM2ImagePredictor.from_checkpoint(
            args.config, Path(d) / "ckpt.pt", [f"image_size={s}"]
        )

    def run_ours():
        ours.set_image(image)
        return ours.predict(**click)

    def run_official():
        with torch.inference_mode():
            ref.set_image(image)
            return ref.predict(**click)

    def predict_ours():
        return ours.predict(**click)

    def predict_official():
        with torch.inference_mode():
            return ref.predict(**click)

    t_ours = median_time(run_ours, args.repeats)
    t_ref = median_time(run_official, args.repeats)
    p_ours = median_time(predict_ours, args.repeats)
    p_ref = median_time(predict_official, args.repeats)
    print(f"machine: {machine()}; torch threads {args.threads}")
    print(
        f"{args.config} at {s}px, image {image.shape[1]}x{image.shape[0]}, fp32, "
        f"median of {args.repeats} after warm-up"
    )
    print("| step | sam2-jax | official | speed-up |\n|---|---|---|---|")
    print(row("set_image + predict", t_ours, t_ref))
    print(row("predict (embedding cached)", p_ours, p_ref))


if __name__ == "__main__":
    main()
