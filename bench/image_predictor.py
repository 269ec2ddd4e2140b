"""Image predictor latency: sam2-jax vs official SAM2ImagePredictor, same run, same machine.

    python -m bench.image_predictor [--config sam2.1_hiera_t] [--size 1024] [--batch 1]
        [--repeats 5] [--json FILE] [--official-cache FILE]

Both sides get the same random weights (official model -> .pt -> our converter), the same
images and the same click per image; both run fp32 on the same threads. `--batch 1`:
`set_image` + `predict` on truck.jpg; `--batch B`: `set_image_batch` + `predict_batch` on B of
the demo images (truck, groceries, cars, cycled). Warm-up (and our jit compile) is excluded; the
median of `--repeats` runs is reported, with images/s.
"""

import argparse
import functools
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import SHARED_DATA, add_output_args, append_json, machine, median_time, row

IMAGES = ("truck.jpg", "groceries.jpg", "cars.jpg")
CLICK = dict(point_coords=np.array([[500.0, 375.0]]), point_labels=np.array([1]))


def _images(batch: int) -> list[np.ndarray]:
    """`batch` demo images (HWC uint8 RGB), or random ones of truck.jpg's shape without them."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(batch):
        path = SHARED_DATA / "sam2_demo" / "images" / IMAGES[i % len(IMAGES)]
        if path.exists():
            out.append(np.asarray(Image.open(path).convert("RGB")))
        else:
            out.append(rng.integers(0, 256, (1200, 1800, 3), dtype=np.uint8))
    return out


def _embed_and_predict(predictor, images: list[np.ndarray]):
    if len(images) == 1:
        predictor.set_image(images[0])
        return predictor.predict(**CLICK)
    predictor.set_image_batch(images)
    return _predict(predictor, len(images))


def _predict(predictor, batch: int):
    if batch == 1:
        return predictor.predict(**CLICK)
    return predictor.predict_batch([CLICK["point_coords"]] * batch, [CLICK["point_labels"]] * batch)


def _times(predictor, images: list[np.ndarray], repeats: int) -> dict:
    """Median seconds of embedding + prediction and of prediction alone (torch: inference mode;
    no effect on ours)."""
    with torch.inference_mode():
        return {
            "embed_predict_s": median_time(lambda: _embed_and_predict(predictor, images), repeats),
            "predict_s": median_time(lambda: _predict(predictor, len(images)), repeats),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    add_output_args(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from oracle import build_official, save_official_checkpoint
    from sam2.sam2_image_predictor import SAM2ImagePredictor as Official

    from bench.common import official_result
    from sam2_jax import SAM2ImagePredictor

    images = _images(args.batch)
    official = build_official(args.config, image_size=args.size)
    s = args.size
    ref = Official(official)
    ref._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    with tempfile.TemporaryDirectory() as d:
        save_official_checkpoint(official, Path(d) / "ckpt.pt")
        ours = SAM2ImagePredictor.from_checkpoint(
            args.config, Path(d) / "ckpt.pt", [f"image_size={s}"]
        )

    ours_times = _times(ours, images, args.repeats)
    case = {"bench": "image", "config": args.config, "size": s, "batch": args.batch,
            "repeats": args.repeats}  # fmt: skip
    ref_times = official_result(
        args.official_cache, case, "cpu",
        functools.partial(_times, ref, images, args.repeats),
    )  # fmt: skip
    step = "set_image + predict" if args.batch == 1 else "set_image_batch + predict_batch"
    for side, times in (("ours", ours_times), ("official", ref_times)):
        append_json(args.json, {**case, "side": side, **times,
                                "images_per_s": args.batch / times["embed_predict_s"]})  # fmt: skip
    print(f"machine: {machine()}; torch threads {args.threads}")
    print(
        f"{args.config} at {s}px, batch {args.batch}, fp32, median of {args.repeats} after warm-up"
    )
    print("| step | sam2-jax | official | speed-up |\n|---|---|---|---|")
    print(row(step, ours_times["embed_predict_s"], ref_times["embed_predict_s"]))
    print(row("predict (embedding cached)", ours_times["predict_s"], ref_times["predict_s"]))
    print(
        f"images/s: sam2-jax {args.batch / ours_times['embed_predict_s']:.2f}, official "
        f"{args.batch / ref_times['embed_predict_s']:.2f}"
    )


if __name__ == "__main__":
    main()
