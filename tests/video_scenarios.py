"""Scripted interactive sessions for video predictors with the official API
(<- sam2/sam2_video_predictor.py::SAM2VideoPredictor, built by sam2/build_sam.py).

A scenario is a list of steps (`Points`, `Mask`, `Propagate`, `ClearFrame`, `Remove`, `Reset`).
`run_scenario` drives any predictor with the official public API through it and records every
returned mask as float32 numpy, so the official predictor (random weights from `oracle`) and ours
can be replayed through the same session and compared record by record.

The official fp32 CPU build needs one patch (`patch_bf16_memory_storage`) to run every scenario;
it leaves every value the unpatched build produces unchanged.
"""

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, NamedTuple, Sequence

import av
import numpy as np
import oracle
import torch
from conftest import SHARED_DATA
from PIL import Image

BEDROOM_DIR = SHARED_DATA / "sam2_demo" / "bedroom"
# The scenario coordinates below are bedroom pixels (the frames are 960 x 540, W x H).
BEDROOM_HEIGHT, BEDROOM_WIDTH = 540, 960
# With random weights the decoder's object score is ~0.2 (sam2.1) / ~-0.1 (sam2) before the
# bias: -2 puts every decoder-scored frame at about -2 (absent), far from the 0 threshold.
DISAPPEARING_OBJECT_SCORE_BIAS = -2.0


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True, eq=False)
class Points:
    """`add_new_points_or_box`: points [N, 2] (x, y) and labels [N] in video pixels, box
    [4] XYXY in video pixels (then points may be None)."""

    kind: ClassVar[str] = "points"
    frame_idx: int
    obj_id: int
    points: np.ndarray | None
    labels: np.ndarray | None
    clear_old_points: bool = True
    box: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Mask:
    """`add_new_mask`: mask [H, W] bool at video resolution."""

    kind: ClassVar[str] = "mask"
    frame_idx: int
    obj_id: int
    mask: np.ndarray


@dataclass(frozen=True)
class Propagate:
    """`propagate_in_video(start_frame_idx, max_frame_num_to_track, reverse)`."""

    kind: ClassVar[str] = "propagate"
    start_frame_idx: int | None = None
    max_frame_num_to_track: int | None = None
    reverse: bool = False


@dataclass(frozen=True)
class ClearFrame:
    """`clear_all_prompts_in_frame(frame_idx, obj_id)`."""

    kind: ClassVar[str] = "clear_frame"
    frame_idx: int
    obj_id: int


@dataclass(frozen=True)
class Remove:
    """`remove_object(obj_id)`."""

    kind: ClassVar[str] = "remove"
    obj_id: int


@dataclass(frozen=True)
class Reset:
    """`reset_state()`."""

    kind: ClassVar[str] = "reset"


Step = Points | Mask | Propagate | ClearFrame | Remove | Reset


class Record(NamedTuple):
    """One mask output: logits [N_obj, 1, H, W] float32 at video resolution for `obj_ids`."""

    step: int
    kind: str
    frame_idx: int
    obj_ids: tuple[int, ...]
    logits: np.ndarray


# ----------------------------------------------------------------------------- official build


def build_official_video_predictor(
    name: str,
    image_size: int,
    seed: int,
    apply_postprocessing: bool,
    object_score_bias: float | None = 4.0,
) -> torch.nn.Module:
    """The official `SAM2VideoPredictor` of config `name` with `oracle` random weights, eval mode.

    `fill_hole_area` is set to 0 (the builder sets 8 with post-processing): hole filling needs
    the CUDA extension `sam2._C`; without it the official code warns and returns the masks
    unchanged, so 0 gives the same values, silently.
    `image_size` must be a multiple of 32 (Hiera halves the stride-4 map three times; 240 fails
    with a shape mismatch in the trunk).
    """
    if image_size % 32:
        raise ValueError(f"image_size {image_size} is not a multiple of 32")
    predictor = oracle.build_official(
        name,
        image_size=image_size,
        seed=seed,
        apply_postprocessing=apply_postprocessing,
        video=True,
        object_score_bias=object_score_bias,
    )
    predictor.fill_hole_area = 0
    return predictor


def _bf16_as_f32(features: torch.Tensor | None) -> torch.Tensor | None:
    if features is None:
        return None
    assert features.dtype == torch.bfloat16, f"expected the official bf16 cast: {features.dtype}"
    return features.float()


def patch_bf16_memory_storage(predictor: torch.nn.Module) -> torch.nn.Module:
    """In place (returns `predictor`): store the official bf16-rounded `maskmem_features` as fp32.

    The official `_run_single_frame_inference` and `_run_memory_encoder` cast `maskmem_features`
    to bfloat16 for storage. Read back, `torch.cat` with the fp32 object-pointer tokens promotes
    the memory to fp32; with no pointer in range (an object whose only prompt is on a later
    frame tracked from an earlier one, reverse tracking away from the prompts) the memory stays
    bf16 and the fp32 CPU build raises "mat1 and mat2 must have the same dtype". Widening the
    rounded values after the cast is exact, so every value the unpatched build computes is kept.
    """
    if "_run_memory_encoder" in vars(predictor):
        raise ValueError("predictor is already patched")
    run_single_frame_inference = predictor._run_single_frame_inference
    run_memory_encoder = predictor._run_memory_encoder

    def single_frame_inference(*args: Any, **kwargs: Any) -> tuple[dict, torch.Tensor]:
        compact_out, pred_masks = run_single_frame_inference(*args, **kwargs)
        compact_out["maskmem_features"] = _bf16_as_f32(compact_out["maskmem_features"])
        return compact_out, pred_masks

    def memory_encoder(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features, pos_enc = run_memory_encoder(*args, **kwargs)
        return _bf16_as_f32(features), pos_enc

    predictor._run_single_frame_inference = single_frame_inference
    predictor._run_memory_encoder = memory_encoder
    return predictor


@contextlib.contextmanager
def torch_num_threads(n: int) -> Iterator[None]:
    """Run torch on `n` intra-op threads inside the block.

    The official predictor issues many small ops; on 2 cores shared with other processes, 2
    OpenMP threads measured 8-16x slower than 1 (0.28 s vs 4.6 s a frame, 2 objects, 256 px).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ----------------------------------------------------------------------------- running


def as_float32_numpy(x: Any) -> np.ndarray:
    """A torch tensor, jax array or array-like -> a new float32 numpy array (never a view of
    predictor state, which later steps may overwrite)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    return np.array(x, dtype=np.float32, copy=True)


def _obj_ids(obj_ids: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(i) for i in obj_ids)


def _run_step(predictor: Any, state: Any, i: int, step: Step) -> list[Record]:
    """Call the public method for `step`; the official return values, as records."""
    if isinstance(step, Points):
        frame_idx, obj_ids, masks = predictor.add_new_points_or_box(
            state,
            frame_idx=step.frame_idx,
            obj_id=step.obj_id,
            points=step.points,
            labels=step.labels,
            clear_old_points=step.clear_old_points,
            normalize_coords=True,
            box=step.box,
        )
        return [Record(i, step.kind, int(frame_idx), _obj_ids(obj_ids), as_float32_numpy(masks))]
    if isinstance(step, Mask):
        frame_idx, obj_ids, masks = predictor.add_new_mask(
            state, frame_idx=step.frame_idx, obj_id=step.obj_id, mask=step.mask
        )
        return [Record(i, step.kind, int(frame_idx), _obj_ids(obj_ids), as_float32_numpy(masks))]
    if isinstance(step, Propagate):
        outputs = predictor.propagate_in_video(
            state,
            start_frame_idx=step.start_frame_idx,
            max_frame_num_to_track=step.max_frame_num_to_track,
            reverse=step.reverse,
        )
        return [
            Record(i, step.kind, int(f), _obj_ids(obj_ids), as_float32_numpy(masks))
            for f, obj_ids, masks in outputs
        ]
    if isinstance(step, ClearFrame):
        frame_idx, obj_ids, masks = predictor.clear_all_prompts_in_frame(
            state, frame_idx=step.frame_idx, obj_id=step.obj_id
        )
        return [Record(i, step.kind, int(frame_idx), _obj_ids(obj_ids), as_float32_numpy(masks))]
    if isinstance(step, Remove):
        obj_ids, updated = predictor.remove_object(state, obj_id=step.obj_id)
        return [
            Record(i, step.kind, int(f), _obj_ids(obj_ids), as_float32_numpy(masks))
            for f, masks in updated
        ]
    if isinstance(step, Reset):
        predictor.reset_state(state)
        return []
    raise TypeError(f"unknown scenario step {step!r}")


def run_scenario(
    predictor: Any, video_path: str | os.PathLike, steps: Sequence[Step]
) -> list[Record]:
    """`init_state(video_path)`, then each step through the public API; every mask output it
    returns, in order. A torch predictor runs under `torch.inference_mode()`."""
    is_torch = isinstance(predictor, torch.nn.Module)
    with torch.inference_mode() if is_torch else contextlib.nullcontext():
        state = predictor.init_state(os.fspath(video_path))
        return [rec for i, step in enumerate(steps) for rec in _run_step(predictor, state, i, step)]


# ----------------------------------------------------------------------------- data


def copy_frames(n: int, dst_dir: str | os.PathLike) -> str:
    """Copy the first `n` bedroom JPEGs (00000.jpg ...) into `dst_dir` (a temporary folder, never
    the repository); returns `dst_dir` as a string (the official loader needs a `str`)."""
    frames = sorted(BEDROOM_DIR.glob("*.jpg"), key=lambda p: int(p.stem))
    if len(frames) < n:
        raise FileNotFoundError(f"{BEDROOM_DIR} has {len(frames)} frames, need {n}")
    dst = Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    for frame in frames[:n]:
        shutil.copyfile(frame, dst / frame.name)
    return os.fspath(dst)


def make_mp4(frames_dir: str | os.PathLike, path: str | os.PathLike, fps: int = 24) -> str:
    """Encode the JPEGs of `frames_dir` (sorted by integer stem) as H.264 mp4 with PyAV; lossy
    (yuv420p), so its frames differ from the JPEGs. The official predictor reads mp4 only
    through decord."""
    paths = sorted(Path(frames_dir).glob("*.jpg"), key=lambda p: int(p.stem))
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = frames[0].shape[:2]
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return os.fspath(path)


# ----------------------------------------------------------------------------- scenarios


def _xy(points: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Bedroom pixel coordinates [N, 2] (x, y) -> pixels of a height x width video."""
    scale = np.array([width / BEDROOM_WIDTH, height / BEDROOM_HEIGHT], np.float32)
    return np.asarray(points, np.float32) * scale


def _box(xyxy: Sequence[float], height: int, width: int) -> np.ndarray:
    return _xy(np.reshape(xyxy, (2, 2)), height, width).reshape(4)


def ellipse_mask(
    height: int, width: int, center: tuple[float, float], axes: tuple[float, float]
) -> np.ndarray:
    """A filled ellipse, centre (x, y) and semi-axes (a_x, a_y) in bedroom pixels -> [H, W] bool."""
    (cx, cy), (ax, ay) = _xy([center], height, width)[0], _xy([axes], height, width)[0]
    y, x = np.mgrid[:height, :width]
    return ((x + 0.5 - cx) / ax) ** 2 + ((y + 0.5 - cy) / ay) ** 2 <= 1.0


def _labels(*labels: int) -> np.ndarray:
    return np.array(labels, np.int32)


BOY_CLICK = (210.0, 350.0)  # the official video notebook's first click (the boy)
GIRL_BOX = (300.0, 0.0, 500.0, 400.0)  # the official video notebook's box prompt (the girl)
PILLOW = ((598.0, 355.0), (75.0, 58.0))  # the pink pillow right of centre (centre, semi-axes)
BOY = ((225.0, 270.0), (75.0, 140.0))  # an ellipse over the boy on the first frames


def demo_scenario(height: int, width: int) -> list[Step]:
    """Three objects, the official demo workflow; needs >= 10 frames (run on 12).

    0 click (210, 350) +, frame 0, obj 1 (boy) | 1 box (300, 0, 500, 400), frame 0, obj 2 (girl)
    2 ellipse mask centre (598, 355) semi-axes (75, 58), frame 6, obj 3 (pillow): a later frame
    3 propagate forward from the first prompted frame (0) to the end: obj 3 is tracked on frames
      0-5 before its prompt (needs `patch_bf16_memory_storage` on the official CPU build)
    4 correction click (230, 300) + on frame 9, obj 1 (a tracked frame: stored non-conditioning)
    5 click (360, 250) - on frame 9, obj 1, appended (clear_old_points=False): 2 points
    6 re-propagate forward from frame 9 (the correction is recomputed away, as official)
    7 propagate in reverse from frame 9 (the last prompted frame) to frame 0
    Coordinates are bedroom pixels (x, y), scaled to height x width.
    """
    return [
        Points(0, 1, _xy([BOY_CLICK], height, width), _labels(1)),
        Points(0, 2, None, None, box=_box(GIRL_BOX, height, width)),
        Mask(6, 3, ellipse_mask(height, width, *PILLOW)),
        Propagate(),
        Points(9, 1, _xy([(230.0, 300.0)], height, width), _labels(1)),
        Points(9, 1, _xy([(360.0, 250.0)], height, width), _labels(0), clear_old_points=False),
        Propagate(9),
        Propagate(9, reverse=True),
    ]


def late_object_scenario(height: int, width: int) -> list[Step]:
    """An object added after tracking, prompted on a later frame, then tracked from frame 0;
    needs >= 5 frames (run on 6). Unpatched, the official CPU build crashes in step 3.

    0 click (210, 350) +, frame 0, obj 1 | 1 propagate from frame 0, at most 2 more frames (0-2)
    2 box (300, 0, 500, 400), frame 4, obj 2 (new object; obj 1 has no output on frame 4: -1024)
    3 propagate forward from frame 0: obj 2 on frames 0-3 sees only its future prompt
    """
    return [
        Points(0, 1, _xy([BOY_CLICK], height, width), _labels(1)),
        Propagate(0, 2),
        Points(4, 2, None, None, box=_box(GIRL_BOX, height, width)),
        Propagate(0),
    ]


def disappearing_object_scenario(height: int, width: int) -> list[Step]:
    """Objects predicted absent (score <= 0: logits all -1024) on some frames and present on
    others; needs >= 5 frames (run on 6) and the build's `object_score_bias` at
    `DISAPPEARING_OBJECT_SCORE_BIAS`, so every decoder-scored frame is absent.

    0 ellipse mask centre (225, 270) semi-axes (75, 140), frame 0, obj 1 (present: score +10)
    1 box (300, 0, 500, 400), frame 0, obj 2 (absent from its own prompt on)
    2 the same ellipse mask on frame 3, obj 1 (reappears; absent on the tracked frames between)
    3 propagate forward from frame 0 to the end
    """
    boy = ellipse_mask(height, width, *BOY)
    return [
        Mask(0, 1, boy),
        Points(0, 2, None, None, box=_box(GIRL_BOX, height, width)),
        Mask(3, 1, boy),
        Propagate(),
    ]


def editing_scenario(height: int, width: int) -> list[Step]:
    """Clearing, re-prompting, removing and resetting; needs >= 4 frames (run on 6).

    0 click (210, 350) +, frame 0, obj 1 | 1 box (300, 0, 500, 400), frame 0, obj 2
    2 propagate frames 0-2
    3 correction click (400, 150) +, frame 1, obj 2 (tracked frame: non-conditioning)
    4 clear obj 2's prompts on frame 1 (drops the correction; the tracked mask is shown again)
    5 clear obj 2's prompts on frame 0 (its conditioning output is downgraded, still shown)
    6 the box again on frame 0, obj 2 (an initial conditioning frame again)
    7 remove obj 1 (one record: its prompted frame 0, obj 2 only)
    8 propagate frames 0-3 | 9 reset | 10 click (400, 150) +, frame 2, new obj 5
    11 propagate from its prompt (frame 2) to the end
    """
    girl_click = _xy([(400.0, 150.0)], height, width)
    return [
        Points(0, 1, _xy([BOY_CLICK], height, width), _labels(1)),
        Points(0, 2, None, None, box=_box(GIRL_BOX, height, width)),
        Propagate(None, 2),
        Points(1, 2, girl_click, _labels(1)),
        ClearFrame(1, 2),
        ClearFrame(0, 2),
        Points(0, 2, None, None, box=_box(GIRL_BOX, height, width)),
        Remove(1),
        Propagate(0, 3),
        Reset(),
        Points(2, 5, girl_click, _labels(1)),
        Propagate(),
    ]
