"""Serialise a training source into an ArrayRecord file, one record per video.

No official counterpart: the official trainer reads JPEG folders and annotation files directly
(`training/dataset/vos_raw_dataset.py`) after extracting SA-V frames with
`training/scripts/sav_frame_extraction_submitit.py`. Here every entry of a source
(`sam2_jax.data.sources`) becomes one msgpack record (format in that module's docstring): the
JPEG bytes of each frame (the original file when the frame is a JPEG file, else the decoded frame
encoded at `--jpeg_quality`, 95 = cv2.imwrite's default used by the official SA-V extraction)
and each frame's masks as COCO compressed RLEs (taken as stored when the source holds them).
`ArrayRecordSource(path)` reads the file back.

Usage:
  python -m sam2_jax.data.prepare --source png --root DIR --out FILE.array_record
  python -m sam2_jax.data.prepare --source png --img_folder DIR/JPEGImages/480p \\
      --gt_folder DIR/Annotations/480p --out davis.array_record
  python -m sam2_jax.data.prepare --source sav --root sav_000 --out sav_000.array_record
  python -m sam2_jax.data.prepare --source sa1b --root sa_000000 --out sa1b.array_record
  python -m sam2_jax.data.prepare --source synthetic --num_videos 64 --out synth.array_record
"""

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
from array_record.python.array_record_module import ArrayRecordWriter

from sam2_jax.data.sources import (
    DEFAULT_JPEG_QUALITY,
    RECORD_FORMAT,
    LazyMasks,
    PNGVideoSource,
    SA1BSource,
    SAVSource,
    SyntheticSource,
    VideoEntry,
)
from sam2_jax.ops.amg import coco_encode_rle, mask_to_rle

SOURCES = ("png", "sav", "sa1b", "synthetic")
FRAMES_PER_READ = 16  # frames decoded at once while writing a record (bounds memory)


def _counts_bytes(masks: Mapping[int, np.ndarray], object_id: int) -> tuple[list[int], bytes]:
    """([H, W], COCO compressed counts) of one object, reusing a stored compressed RLE."""
    if isinstance(masks, LazyMasks):
        rle = masks.rle(object_id)
        if isinstance(rle["counts"], (str, bytes)):
            counts = rle["counts"]
            return [int(v) for v in rle["size"]], (
                counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
            )
    mask = np.asarray(masks[object_id], bool)
    rle = coco_encode_rle(mask_to_rle(mask[None])[0])
    return list(mask.shape), rle["counts"].encode("ascii")


def entry_record(entry: VideoEntry, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """One video as a record: msgpack {"format", "name", "frame_ids", "frames", "masks"}."""
    frames: list[bytes] = []
    masks: list[list[list[Any]]] = []
    for start in range(0, entry.num_frames, FRAMES_PER_READ):
        ts = list(range(start, min(start + FRAMES_PER_READ, entry.num_frames)))
        frames.extend(entry.encoded_frames(ts, jpeg_quality))
        for frame_masks in entry.load_masks(ts):
            objects = []
            for object_id in frame_masks:
                size, counts = _counts_bytes(frame_masks, object_id)
                objects.append([int(object_id), size, counts])
            masks.append(objects)
    record = {
        "format": RECORD_FORMAT,
        "name": entry.name,
        "frame_ids": [int(f) for f in entry.frame_ids],
        "frames": frames,
        "masks": masks,
    }
    return msgpack.packb(record, use_bin_type=True)


def write_array_record(
    source: Sequence[VideoEntry], out: str | os.PathLike, jpeg_quality: int = DEFAULT_JPEG_QUALITY
) -> int:
    """Write every entry of `source` to `out` (written to a temporary name, then renamed);
    returns the number of records."""
    out = os.fspath(out)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = out + ".tmp"
    writer = ArrayRecordWriter(tmp, "group_size:1")
    try:
        try:
            for index in range(len(source)):
                writer.write(entry_record(source[index], jpeg_quality))
        finally:
            writer.close()
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return len(source)


def build_source(args: argparse.Namespace) -> Sequence[VideoEntry]:
    """The source named by the parsed command line."""
    if args.source == "synthetic":
        return SyntheticSource(
            args.num_videos,
            seed=args.seed,
            num_frames=24 if args.num_frames is None else args.num_frames,
            height=args.height,
            width=args.width,
            num_objects=args.num_objects,
        )
    lists = dict(file_list_txt=args.file_list, excluded_videos_list_txt=args.excluded_list)
    if args.source == "png":
        img_folder = args.img_folder or (args.root and os.path.join(args.root, "JPEGImages"))
        gt_folder = args.gt_folder or (args.root and os.path.join(args.root, "Annotations"))
        if not img_folder or not gt_folder:
            raise ValueError("--source png needs --root or both --img_folder and --gt_folder")
        return PNGVideoSource(
            img_folder,
            gt_folder,
            sample_rate=args.sample_rate,
            is_palette=not args.per_object_pngs,
            truncate_video=args.truncate_video,
            **lists,
        )
    if not args.root:
        raise ValueError(f"--source {args.source} needs --root")
    if args.source == "sav":
        return SAVSource(
            args.root,
            gt_folder=args.gt_folder,
            sample_rate=args.sample_rate,
            rm_unannotated=not args.keep_unannotated,
            ann_every=args.ann_every,
            frames_fps=args.frames_fps,
            frame_stride=args.frame_stride,
            include_auto=args.include_auto,
            **lists,
        )
    return SA1BSource(
        args.root,
        gt_folder=args.gt_folder,
        num_frames=1 if args.num_frames is None else args.num_frames,
        mask_area_frac_thresh=args.mask_area_frac_thresh,
        uncertain_iou=args.uncertain_iou,
        **lists,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sam2_jax.data.prepare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--source", required=True, choices=SOURCES)
    parser.add_argument("--out", required=True, help="output .array_record file")
    parser.add_argument(
        "--root",
        help="dataset folder (png: holds JPEGImages/ and Annotations/; sav: <video>.mp4 and "
        "<video>_manual.json; sa1b: sa_<id>.jpg and sa_<id>.json)",
    )
    parser.add_argument("--img_folder", help="png: frame folder (default ROOT/JPEGImages)")
    parser.add_argument(
        "--gt_folder", help="annotation folder (png: default ROOT/Annotations; sav, sa1b: ROOT)"
    )
    parser.add_argument("--file_list", help="text file of the videos to use, one per line")
    parser.add_argument("--excluded_list", help="text file of videos to leave out")
    parser.add_argument("--sample_rate", type=int, default=1, help="png, sav: keep every n-th")
    parser.add_argument("--jpeg_quality", type=int, default=DEFAULT_JPEG_QUALITY)
    png = parser.add_argument_group("png")
    png.add_argument("--truncate_video", type=int, default=-1, help="keep the first n frames")
    png.add_argument(
        "--per_object_pngs",
        action="store_true",
        help="annotations are <video>/<obj:03d>/<frame:05d>.png (MultiplePNGSegmentLoader)",
    )
    sav = parser.add_argument_group("sav")
    sav.add_argument("--ann_every", type=int, default=4)
    sav.add_argument("--frames_fps", type=int, default=24)
    sav.add_argument("--frame_stride", type=int, default=4, help="mp4 frames kept (official 4)")
    sav.add_argument("--include_auto", action="store_true", help="add <video>_auto.json")
    sav.add_argument(
        "--keep_unannotated", action="store_true", help="keep frames without every masklet"
    )
    sa1b = parser.add_argument_group("sa1b")
    sa1b.add_argument("--mask_area_frac_thresh", type=float, default=1.1)
    sa1b.add_argument("--uncertain_iou", type=float, default=-1.0)
    synthetic = parser.add_argument_group("synthetic")
    synthetic.add_argument("--num_videos", type=int, default=16)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--height", type=int, default=128)
    synthetic.add_argument("--width", type=int, default=160)
    synthetic.add_argument("--num_objects", type=int, default=3)
    parser.add_argument(
        "--num_frames", type=int, help="sa1b: copies of the image (1); synthetic: frames (24)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    count = write_array_record(build_source(args), args.out, args.jpeg_quality)
    print(f"wrote {count} videos to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
