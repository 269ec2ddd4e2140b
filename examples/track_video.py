"""Track objects through a video with clicks and a box; write an overlay GIF.

    python examples/track_video.py --video ../shared/data/sam2_demo/bedroom \
        --checkpoint sam2.1_hiera_tiny.pt

The prompts are those of the official video notebook on the bedroom demo: two positive clicks
on the boy (object 1) and a box around the girl (object 2), on frame 0. Without `--checkpoint`
the model has random weights (official weights cannot be downloaded here).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_jax import build_sam2_video_predictor
from sam2_jax.eval.formats import merge_object_masks
from sam2_jax.eval.overlays import overlay_labels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--checkpoint", default=None, help="official .pt, HF dir or orbax dir")
    p.add_argument("--video", required=True, help="JPEG folder (or .mp4) of the bedroom demo")
    p.add_argument("--max-frames", type=int, default=30, help="frames to track after frame 0")
    p.add_argument("--out", default="outputs/track_video.gif")
    p.add_argument("overrides", nargs="*", default=None, help="config overrides key=value")
    args = p.parse_args(argv)
    overrides = args.overrides or (["image_size=512"] if args.checkpoint is None else [])

    t0 = time.perf_counter()
    predictor = build_sam2_video_predictor(args.config, args.checkpoint, overrides)
    state = predictor.init_state(args.video)
    predictor.add_new_points_or_box(state, 0, 1, points=[[210, 350], [250, 220]], labels=[1, 1])
    predictor.add_new_points_or_box(state, 0, 2, box=[300, 0, 500, 400])
    frames = state["images"]
    gif = []
    for f, obj_ids, logits in predictor.propagate_in_video(
        state, max_frame_num_to_track=args.max_frames
    ):
        frame = frames.original(f)
        masks = {oid: np.asarray(logits[i, 0]) > 0 for i, oid in enumerate(obj_ids)}
        labels = merge_object_masks(masks, *frame.shape[:2])
        gif.append(Image.fromarray(overlay_labels(frame, labels, alpha=0.55)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    gif[0].save(args.out, save_all=True, append_images=gif[1:], duration=80, loop=0)
    print(f"{len(gif)} frames tracked in {time.perf_counter() - t0:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
