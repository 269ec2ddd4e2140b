"""SAM2VideoPredictor with the official API (<- sam2/sam2_video_predictor.py, sam2 1.1.0).

The calls, their arguments and their results mirror the official predictor: `init_state`,
`add_new_points_or_box`, `add_new_mask`, `propagate_in_video` (yields `(frame_idx, obj_ids,
video_res_masks [N, 1, H, W])`), `clear_all_prompts_in_frame`, `remove_object`, `reset_state`.
Underneath, every object is tracked at once through the scanned tracker (`tracker.track_chunk`,
chunks of `tracking.chunk_size` frames), not frame by frame. Like the official predictor it keeps
a host-side store of every frame's outputs per object, so prompts may be added on any frame at
any time; its cost per frame and object is the memory features (h*w*64 bf16: 512 KiB at 1024 px,
32 KiB at 256 px), the low-res logits (s*s fp32: 256 KiB at 1024 px) and the pointer (1 KiB).
Results are numpy arrays.
"""

import functools
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from sam2_jax.build import SAM2Model, build_sam2
from sam2_jax.data.frames import load_video_frames
from sam2_jax.memory_bank import (
    MemoryBank,
    capacity_bucket,
    clear_radius,
    empty_bank,
    num_recent_slots,
    recent_ring_slots,
)
from sam2_jax.models.sam2 import NO_OBJ_SCORE, SAM2
from sam2_jax.ops.fill_holes import fill_holes_in_mask_scores
from sam2_jax.ops.interpolate import resize
from sam2_jax.ops.non_overlap import apply_non_overlapping_constraints
from sam2_jax.tracker import FramePrompt, track_chunk, track_frame_features, tracking_prompt

# What the official `build_sam2_video_predictor` adds with apply_postprocessing=True, on top of
# what `build_sam2` adds for images.
VIDEO_POSTPROCESSING = ("binarize_mask_from_pts_for_mem_enc=True", "fill_hole_area=8")
_COND, _NON_COND = "cond_frame_outputs", "non_cond_frame_outputs"


def build_sam2_video_predictor(
    config_name: str,
    ckpt_path: Optional[str | Path] = None,
    overrides: Iterable[str] = (),
    apply_postprocessing: bool = True,
    seed: int = 0,
) -> "SAM2VideoPredictor":
    """The video predictor, like the official `build_sam2_video_predictor`."""
    extra = VIDEO_POSTPROCESSING if apply_postprocessing else ()
    model = build_sam2(config_name, ckpt_path, (*extra, *overrides), apply_postprocessing, seed)
    return SAM2VideoPredictor(model)


@functools.partial(jax.jit, static_argnames=("module",))
def _frame_features(module: SAM2, params: Any, image: jax.Array):
    return module.apply(params, image[None], method=SAM2.forward_image)


@functools.partial(jax.jit, static_argnames=("module",))
def _single_frame(module, params, bank, features, prompt, t, num_frames, direction):
    out, _ = track_frame_features(module, params, bank, features, prompt, t, num_frames, direction)
    return out


def _prompt_memory_fn(model: SAM2, features, low_res, score, binarize):
    size = (model.cfg.image_size, model.cfg.image_size)
    high_res = resize(low_res[:, None], size, "bilinear")[:, 0]
    o = low_res.shape[0]
    raw = jnp.broadcast_to(features.vision_features, (o, *features.vision_features.shape[1:]))
    return model.encode_memory(raw, high_res, score, binarize)


@functools.partial(jax.jit, static_argnames=("module", "dtype"))
def _prompt_memory(module, params, features, low_res, score, binarize, dtype):
    """Memory of prompted frames from their low-res logits (the official preflight)."""
    mem = module.apply(params, features, low_res, score, binarize, method=_prompt_memory_fn)
    return mem.astype(dtype)


@functools.partial(jax.jit, static_argnames=("size", "non_overlap"))
def _to_video_res(masks: jax.Array, size: tuple[int, int], non_overlap: bool) -> jax.Array:
    """[N, 1, s, s] logits -> [N, 1, H, W] (bilinear), with the non-overlap rule if asked."""
    out = resize(masks, size, "bilinear")
    return apply_non_overlapping_constraints(out) if non_overlap else out


class SAM2VideoPredictor:
    """Official-compatible video predictor over a `SAM2Model` (see the module docstring)."""

    def __init__(self, model: SAM2Model) -> None:
        cfg = model.config
        self._stride = cfg.memory_temporal_stride_for_eval
        self._num_recent = num_recent_slots(cfg.num_maskmem, self._stride)
        self.model = model
        self.cfg = cfg
        self.image_size = cfg.image_size
        self.fill_hole_area = cfg.fill_hole_area
        self.non_overlap_masks = cfg.non_overlap_masks
        self.add_all_frames_to_correct_as_cond = cfg.add_all_frames_to_correct_as_cond
        self.clear_non_cond_mem_around_input = cfg.clear_non_cond_mem_around_input
        self._mem_dtype = jnp.dtype(cfg.tracking.memory_dtype)

    # ----------------------------------------------------------------------------- state
    def init_state(
        self,
        video_path: Any,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> dict[str, Any]:
        """A new inference state for a JPEG folder, a video file or a [T, H, W, 3] uint8 array.

        Frames are decoded lazily (a bounded cache), so the offload flags are accepted for
        compatibility only: frames and the per-frame store always live in host memory.
        """
        frames = load_video_frames(video_path, self.image_size, async_loading=async_loading_frames)
        return {
            "images": frames,
            "num_frames": frames.num_frames,
            "video_height": frames.video_height,
            "video_width": frames.video_width,
            "offload_video_to_cpu": offload_video_to_cpu,
            "offload_state_to_cpu": offload_state_to_cpu,
            "cached_features": {},
            "obj_id_to_idx": {},
            "obj_idx_to_id": {},
            "obj_ids": [],
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }

    def reset_state(self, inference_state: dict) -> None:
        """Remove every object and its prompts and outputs (frames stay loaded)."""
        for key in (
            "obj_id_to_idx",
            "obj_idx_to_id",
            "point_inputs_per_obj",
            "mask_inputs_per_obj",
            "output_dict_per_obj",
            "temp_output_dict_per_obj",
            "frames_tracked_per_obj",
        ):
            inference_state[key].clear()
        inference_state["obj_ids"].clear()

    def _obj_id_to_idx(self, state: dict, obj_id: Any) -> int:
        idx = state["obj_id_to_idx"].get(obj_id)
        if idx is not None:
            return idx
        idx = len(state["obj_id_to_idx"])
        state["obj_id_to_idx"][obj_id] = idx
        state["obj_idx_to_id"][idx] = obj_id
        state["obj_ids"] = list(state["obj_id_to_idx"])
        state["point_inputs_per_obj"][idx] = {}
        state["mask_inputs_per_obj"][idx] = {}
        state["output_dict_per_obj"][idx] = {_COND: {}, _NON_COND: {}}
        state["temp_output_dict_per_obj"][idx] = {_COND: {}, _NON_COND: {}}
        state["frames_tracked_per_obj"][idx] = {}
        return idx

    def _check_frame(self, state: dict, frame_idx: Any) -> int:
        n = state["num_frames"]
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise TypeError(f"frame_idx must be an int, got {type(frame_idx).__name__}")
        if not 0 <= frame_idx < n:
            raise ValueError(
                f"frame_idx {frame_idx} is out of range: the video has {n} frames (0 .. {n - 1})"
            )
        return int(frame_idx)

    # ----------------------------------------------------------------------------- prompts
    def add_new_points_or_box(
        self,
        inference_state: dict,
        frame_idx: int,
        obj_id: Any,
        points: Optional[np.ndarray] = None,
        labels: Optional[np.ndarray] = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Optional[np.ndarray] = None,
    ) -> tuple[int, list, np.ndarray]:
        """Add clicks (points [N, 2] in video pixels, labels [N]: 1 positive, 0 negative) and/or
        a box [4] XYXY for `obj_id` on `frame_idx`; returns the frame's masks for all objects."""
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        if (points is not None) != (labels is not None):
            raise ValueError("points and labels must be provided together")
        if points is None and box is None:
            raise ValueError("at least one of points or box must be provided as input")
        pts = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
        lab = np.zeros((0,), np.int32) if labels is None else np.asarray(labels)
        pts = pts.reshape(-1, 2) if pts.ndim == 3 and pts.shape[0] == 1 else pts
        lab = lab.reshape(-1) if lab.ndim == 2 and lab.shape[0] == 1 else lab
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be [N, 2] (x, y), got shape {np.shape(points)}")
        if lab.shape != (pts.shape[0],):
            raise ValueError(
                f"labels must be [N] with N = {pts.shape[0]} points, got shape {np.shape(labels)}"
            )
        if not np.isin(lab, (-1, 0, 1, 2, 3)).all():
            raise ValueError(f"labels must be in {{0, 1}} (or -1, 2, 3), got {np.unique(lab)}")
        lab = lab.astype(np.int32)
        if box is not None:
            if not clear_old_points:
                raise ValueError(
                    "cannot add box without clearing old points, since box prompt must be "
                    "provided before any point prompt (please use clear_old_points=True instead)"
                )
            b = np.asarray(box, np.float32)
            if b.size != 4:
                raise ValueError(f"box must be [4] (x0, y0, x1, y1), got shape {b.shape}")
            pts = np.concatenate([b.reshape(2, 2), pts])
            lab = np.concatenate([np.array([2, 3], np.int32), lab])
        obj_idx = self._obj_id_to_idx(state, obj_id)
        if normalize_coords:
            pts = pts / np.array([state["video_width"], state["video_height"]], np.float32)
        pts = (pts * self.image_size).astype(np.float32)
        stored = state["point_inputs_per_obj"][obj_idx].get(frame_idx)
        if not clear_old_points and stored is not None:
            pts = np.concatenate([stored[0], pts])
            lab = np.concatenate([stored[1], lab])
        state["point_inputs_per_obj"][obj_idx][frame_idx] = (pts, lab)
        state["mask_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        return self._add_prompt(state, frame_idx, obj_idx, points=(pts, lab), mask=None)

    def add_new_mask(
        self, inference_state: dict, frame_idx: int, obj_id: Any, mask: np.ndarray
    ) -> tuple[int, list, np.ndarray]:
        """Add a mask [H, W] (bool or {0, 1}, any size; resized as official) for `obj_id`."""
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        m = np.asarray(mask)
        if m.ndim != 2 or m.size == 0:
            raise ValueError(f"mask must be a non-empty 2-D [H, W] array, got shape {m.shape}")
        m = m.astype(bool).astype(np.float32)
        s = self.image_size
        if m.shape != (s, s):
            m = np.asarray(
                resize(jnp.asarray(m), (s, s), "bilinear", antialias=True) >= 0.5, np.float32
            )
        obj_idx = self._obj_id_to_idx(state, obj_id)
        state["mask_inputs_per_obj"][obj_idx][frame_idx] = m
        state["point_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        return self._add_prompt(state, frame_idx, obj_idx, points=None, mask=m)

    def _add_prompt(self, state, frame_idx, obj_idx, points, mask):
        tracked = state["frames_tracked_per_obj"][obj_idx]
        is_init_cond = frame_idx not in tracked
        reverse = False if is_init_cond else tracked[frame_idx]["reverse"]
        is_cond = is_init_cond or self.add_all_frames_to_correct_as_cond
        key = _COND if is_cond else _NON_COND
        prev = None
        if points is not None:
            temp = state["temp_output_dict_per_obj"][obj_idx]
            outputs = state["output_dict_per_obj"][obj_idx]
            prev_out = (
                temp[key].get(frame_idx)
                or outputs[_COND].get(frame_idx)
                or outputs[_NON_COND].get(frame_idx)
            )
            if prev_out is not None:
                prev = np.clip(prev_out["pred_masks"][0, 0], -32.0, 32.0)
        out = self._run_single_frame(
            state, obj_idx, frame_idx, is_init_cond, reverse, points, mask, prev
        )
        state["temp_output_dict_per_obj"][obj_idx][key][frame_idx] = out
        return frame_idx, state["obj_ids"], self._consolidated_video_res(state, frame_idx, is_cond)

    def _run_single_frame(
        self, state, obj_idx, frame_idx, is_init_cond, reverse, points, mask, prev
    ):
        n = 0 if points is None else len(points[1])
        p = capacity_bucket(max(n, 1))
        coords = np.zeros((1, p, 2), np.float32)
        labels = -np.ones((1, p), np.int32)
        if points is not None:
            coords[0, :n], labels[0, :n] = points
        prompt = FramePrompt(
            point_coords=coords,
            point_labels=labels,
            is_init_cond=np.array([is_init_cond]),
            as_cond=np.array([False]),
            track=np.array([True]),
            mask=None if mask is None else mask[None],
            has_mask=None if mask is None else np.array([True]),
            prev_logits=None if prev is None else prev[None],
            has_prev=None if prev is None else np.array([True]),
        )
        bank = self._seed_bank(state, [obj_idx], frame_idx, reverse)
        out = _single_frame(
            self.model.module,
            self.model.params,
            bank,
            self._features(state, frame_idx),
            prompt,
            frame_idx,
            state["num_frames"],
            -1 if reverse else 1,
        )
        pred = self._fill_holes(np.asarray(out.low_res_masks)[:, None])
        return {
            "maskmem_features": None,
            "pred_masks": pred,
            "obj_ptr": np.asarray(out.obj_ptr),
            "object_score_logits": np.asarray(out.object_score_logits),
        }

    def _fill_holes(self, pred_masks: np.ndarray) -> np.ndarray:
        if self.fill_hole_area > 0:
            return fill_holes_in_mask_scores(pred_masks, self.fill_hole_area)
        return pred_masks

    def _features(self, state: dict, frame_idx: int):
        """Backbone features of one frame; the most recent frame is cached, as official."""
        cache = state["cached_features"]
        if frame_idx not in cache:
            image = state["images"].frame(frame_idx)
            cache.clear()
            cache[frame_idx] = _frame_features(self.model.module, self.model.params, image)
        return cache[frame_idx]

    # ----------------------------------------------------------------------------- bank
    def _seed_bank(self, state, obj_indices, frame_idx, reverse, num_objects=None) -> MemoryBank:
        """The bank the official lookup sees when tracking from `frame_idx`: every committed
        conditioning output, and the non-conditioning outputs of the frames behind it."""
        c = self.cfg
        d = -1 if reverse else 1
        conds = [state["output_dict_per_obj"][i][_COND] for i in obj_indices]
        most = max((len(x) for x in conds), default=0)
        if most > c.tracking.max_cond_frames:
            raise ValueError(
                f"an object has {most} prompted (conditioning) frames, more than the memory "
                f"bank holds (tracking.max_cond_frames={c.tracking.max_cond_frames}); raise it"
            )
        s = self.image_size // c.backbone_stride
        hw, dm = s * s, c.memory_encoder.out_dim
        bank = empty_bank(
            num_objects or len(obj_indices),
            capacity_bucket(most),
            self._num_recent,
            c.max_obj_ptrs_in_encoder - 1,
            hw,
            dm,
            self.hidden_dim,
            self._mem_dtype,
        )
        arrays = {k: np.array(v) for k, v in vars(bank).items()}
        n_rec, n_ptr = arrays["recent_frame"].shape[1], arrays["ptr_frame"].shape[1]
        # The farthest frame behind the start that a memory lookup can reach from it onwards.
        reach = n_rec if self._stride == 1 else (c.num_maskmem - 2) * self._stride + 1
        num_frames = state["num_frames"]
        for o, idx in enumerate(obj_indices):
            outputs = state["output_dict_per_obj"][idx]
            for slot, (f, out) in enumerate(outputs[_COND].items()):
                arrays["cond_feats"][o, slot] = out["maskmem_features"].reshape(hw, dm)
                arrays["cond_ptr"][o, slot] = out["obj_ptr"][0]
                arrays["cond_frame"][o, slot], arrays["cond_valid"][o, slot] = f, True
            for k in range(max(reach, n_ptr), 0, -1):  # written in tracking order
                f = frame_idx - d * k
                out = outputs[_NON_COND].get(f)
                if out is None or not 0 <= f < num_frames:
                    continue
                if k <= reach:
                    slots = np.asarray(recent_ring_slots(f, self._stride, n_rec))
                    arrays["recent_feats"][o, slots] = out["maskmem_features"].reshape(hw, dm)
                    arrays["recent_frame"][o, slots] = f
                    arrays["recent_valid"][o, slots] = True
                if k <= n_ptr:
                    arrays["ptr"][o, f % n_ptr] = out["obj_ptr"][0]
                    arrays["ptr_frame"][o, f % n_ptr], arrays["ptr_valid"][o, f % n_ptr] = f, True
        return MemoryBank(**{k: jnp.asarray(v) for k, v in arrays.items()})

    @property
    def hidden_dim(self) -> int:
        return self.cfg.image_encoder.neck.d_model

    # ----------------------------------------------------------------------------- outputs
    def _consolidated_video_res(self, state: dict, frame_idx: int, is_cond: bool) -> np.ndarray:
        """Every object's mask on a frame at video resolution (-1024 where it has none)."""
        key = _COND if is_cond else _NON_COND
        preds = []
        for idx in range(len(state["obj_ids"])):
            temp = state["temp_output_dict_per_obj"][idx]
            outputs = state["output_dict_per_obj"][idx]
            out = (
                temp[key].get(frame_idx)
                or outputs[_COND].get(frame_idx)
                or outputs[_NON_COND].get(frame_idx)
            )
            preds.append(None if out is None else out["pred_masks"])
        return self._video_res(state, preds)

    def _video_res(self, state: dict, preds: list[Optional[np.ndarray]]) -> np.ndarray:
        low = self.image_size // 4
        stacked = np.stack(
            [p[0] if p is not None else np.zeros((1, low, low), np.float32) for p in preds]
        )
        size = (state["video_height"], state["video_width"])
        out = np.array(_to_video_res(stacked, size, False))
        missing = np.array([p is None for p in preds])
        out[missing] = NO_OBJ_SCORE
        if self.non_overlap_masks:
            out = np.asarray(apply_non_overlapping_constraints(jnp.asarray(out)))
        return out

    # ----------------------------------------------------------------------------- tracking
    def propagate_in_video_preflight(self, inference_state: dict) -> None:
        """Encode the memory of newly prompted frames and commit them (official semantics)."""
        state = inference_state
        if not state["obj_ids"]:
            raise RuntimeError(
                "No input points or masks are provided for any object; please add inputs first."
            )
        binarize = self.cfg.binarize_mask_from_pts_for_mem_enc
        for idx in range(len(state["obj_ids"])):
            outputs = state["output_dict_per_obj"][idx]
            temp = state["temp_output_dict_per_obj"][idx]
            for key in (_NON_COND, _COND):
                for f, out in temp[key].items():
                    if out["maskmem_features"] is None:
                        out["maskmem_features"] = np.asarray(
                            _prompt_memory(
                                self.model.module,
                                self.model.params,
                                self._features(state, f),
                                out["pred_masks"][:, 0],
                                out["object_score_logits"],
                                np.array([binarize]),
                                self._mem_dtype,
                            )
                        )
                    outputs[key][f] = out
                    self._forget_around(outputs, f)
                temp[key].clear()
            if not outputs[_COND]:
                raise RuntimeError(
                    f"No input points or masks are provided for object id "
                    f"{state['obj_idx_to_id'][idx]}; please add inputs first."
                )
            for f in outputs[_COND]:
                outputs[_NON_COND].pop(f, None)

    def propagate_in_video(
        self,
        inference_state: dict,
        start_frame_idx: Optional[int] = None,
        max_frame_num_to_track: Optional[int] = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list, np.ndarray]]:
        """Track every object through the video; yields (frame_idx, obj_ids, masks [N,1,H,W])."""
        state = inference_state
        self.propagate_in_video_preflight(state)
        num_frames = state["num_frames"]
        if start_frame_idx is None:
            start_frame_idx = min(
                f for out in state["output_dict_per_obj"].values() for f in out[_COND]
            )
        start = self._check_frame(state, start_frame_idx)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if max_frame_num_to_track < 0:
            raise ValueError(f"max_frame_num_to_track must be >= 0, got {max_frame_num_to_track}")
        if reverse:
            end = max(start - max_frame_num_to_track, 0)
            order = list(range(start, end - 1, -1)) if start > 0 else []
        else:
            end = min(start + max_frame_num_to_track, num_frames - 1)
            order = list(range(start, end + 1))
        if not order:
            return
        n_obj = len(state["obj_ids"])
        objects = list(range(n_obj))
        o = capacity_bucket(n_obj)
        banks = jax.tree.map(lambda x: x[None], self._seed_bank(state, objects, start, reverse, o))
        chunk = self.cfg.tracking.chunk_size
        module, params = self.model.module, self.model.params
        d = -1 if reverse else 1
        with tqdm(total=len(order), desc="propagate in video") as bar:
            for begin in range(0, len(order), chunk):
                frames = order[begin : begin + chunk]
                ids = np.array(frames + [frames[-1]] * (chunk - len(frames)), np.int32)
                valid = np.arange(chunk) < len(frames)
                track = np.zeros((chunk, o), bool)
                for idx in objects:
                    conds = state["output_dict_per_obj"][idx][_COND]
                    track[:, idx] = valid & np.array([f not in conds for f in ids])
                prompts = tracking_prompt(track)
                if self.clear_non_cond_mem_around_input:  # at the objects' prompted frames
                    prompts = prompts.replace(forget_recent=valid[:, None] & ~track)
                images = state["images"].frames(ids)
                banks, out = track_chunk(  # a batch of one video: [L, 1, ...]
                    module,
                    params,
                    banks,
                    images[:, None],
                    jax.tree.map(lambda x: x[:, None], prompts),
                    ids[:, None],
                    valid[:, None],
                    np.full(1, num_frames, np.int32),
                    np.full(1, d, np.int32),
                    return_memory=True,
                )
                out = jax.tree.map(lambda x: np.asarray(x)[:, 0], out)
                for step, f in enumerate(frames):
                    preds = []
                    for idx in objects:
                        outputs = state["output_dict_per_obj"][idx]
                        if track[step, idx]:
                            stored = {
                                "maskmem_features": out.mem_feats[step, idx][None],
                                "pred_masks": self._fill_holes(
                                    out.low_res_masks[step, idx][None, None]
                                ),
                                "obj_ptr": out.obj_ptr[step, idx][None],
                                "object_score_logits": out.object_score_logits[step, idx][None],
                            }
                            outputs[_NON_COND][f] = stored
                        else:
                            stored = outputs[_COND][f]
                            self._forget_around(outputs, f)
                        state["frames_tracked_per_obj"][idx][f] = {"reverse": reverse}
                        preds.append(stored["pred_masks"])
                    bar.update(1)
                    yield f, state["obj_ids"], self._video_res(state, preds)

    def _forget_around(self, outputs: dict, frame_idx: int) -> None:
        """`clear_non_cond_mem_around_input`: drop one object's tracked outputs within
        stride * num_maskmem frames of a prompted frame (the official per-object
        `_clear_obj_non_cond_mem_around_input`, which 1.1.0 calls but lacks)."""
        if self.clear_non_cond_mem_around_input:
            radius = clear_radius(self.cfg.num_maskmem, self._stride)
            for f in range(frame_idx - radius, frame_idx + radius + 1):
                outputs[_NON_COND].pop(f, None)

    # ----------------------------------------------------------------------------- editing
    def clear_all_prompts_in_frame(
        self, inference_state: dict, frame_idx: int, obj_id: Any, need_output: bool = True
    ):
        """Remove `obj_id`'s prompts on `frame_idx` (its conditioning output becomes a normal
        tracked output, as official)."""
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        obj_idx = self._obj_id_to_idx(state, obj_id)
        state["point_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        state["mask_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        temp = state["temp_output_dict_per_obj"]
        temp[obj_idx][_COND].pop(frame_idx, None)
        temp[obj_idx][_NON_COND].pop(frame_idx, None)
        outputs = state["output_dict_per_obj"][obj_idx]
        out = outputs[_COND].pop(frame_idx, None)
        if out is not None:
            outputs[_NON_COND][frame_idx] = out
            state["frames_tracked_per_obj"][obj_idx].pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in t[_COND] for t in temp.values())
        return frame_idx, state["obj_ids"], self._consolidated_video_res(state, frame_idx, is_cond)

    def remove_object(
        self, inference_state: dict, obj_id: Any, strict: bool = False, need_output: bool = True
    ):
        """Remove `obj_id`; returns (obj_ids, [(frame_idx, masks) for its prompted frames])."""
        state = inference_state
        old_idx = state["obj_id_to_idx"].get(obj_id)
        updated: list = []
        if old_idx is None:
            if not strict:
                return state["obj_ids"], updated
            raise RuntimeError(
                f"Cannot remove object id {obj_id} as it doesn't exist. "
                f"All existing object ids: {state['obj_ids']}."
            )
        if len(state["obj_id_to_idx"]) == 1:
            self.reset_state(state)
            return state["obj_ids"], updated
        input_frames = set(state["point_inputs_per_obj"][old_idx])
        input_frames |= set(state["mask_inputs_per_obj"][old_idx])
        for f in input_frames:
            self.clear_all_prompts_in_frame(state, f, obj_id, need_output=False)
        remaining = [i for i in range(len(state["obj_ids"])) if i != old_idx]
        new_ids = [state["obj_ids"][i] for i in remaining]
        for key in (
            "point_inputs_per_obj",
            "mask_inputs_per_obj",
            "output_dict_per_obj",
            "temp_output_dict_per_obj",
            "frames_tracked_per_obj",
        ):
            old = state[key]
            state[key] = {new: old[i] for new, i in enumerate(remaining)}
        state["obj_id_to_idx"] = {oid: i for i, oid in enumerate(new_ids)}
        state["obj_idx_to_id"] = dict(enumerate(new_ids))
        state["obj_ids"] = new_ids
        if need_output:
            temp = state["temp_output_dict_per_obj"]
            for f in input_frames:
                is_cond = any(f in t[_COND] for t in temp.values())
                updated.append((f, self._consolidated_video_res(state, f, is_cond)))
        return state["obj_ids"], updated
