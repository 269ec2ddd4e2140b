"""SAM2AutomaticMaskGenerator with the official API (<- sam2/automatic_mask_generator.py).

A grid of single-click prompts over the image (and over crops of it) goes through the prompt
encoder + mask decoder in jitted batches of a fixed size (`points_per_batch`, the last batch
padded), so each image / crop size compiles one program; the image embedding is computed once
per crop. A second jitted program upsamples the masks to the crop, computes stability scores,
boxes and bit-packed binary masks; the host filters them (predicted IoU, stability, crop edge)
while the device runs the next batch, run-length encodes the survivors and runs box NMS per crop
and across crops.

Differences from the official: `from_checkpoint(config_name, ckpt_path, ...)` replaces the
Hugging Face `from_pretrained`; unknown keyword arguments are rejected (the official ignores
them); `min_mask_region_area > 0` fills small holes and removes small sprinkles of the low-res
logits as the official does with its CUDA extension (a CPU-only official install skips it with
a warning).
"""

import functools
from pathlib import Path
from typing import Any, Iterable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sam2_jax import transforms
from sam2_jax.build import SAM2Model, build_sam2
from sam2_jax.models.sam2 import SAM2
from sam2_jax.ops.amg import (
    area_from_rle,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from sam2_jax.ops.fill_holes import fill_holes_and_sprinkles
from sam2_jax.ops.nms import batched_nms, box_area
from sam2_jax.predictors.image import as_rgb_array, decode_prompts, encode_images

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
_LOW_RES_CLAMP = 32.0  # the official predictor clamps the low-res logits it returns

MaskData = dict[str, Any]  # "rles": list, every other key: a NumPy array with one row per mask


@functools.partial(jax.jit, static_argnames=("module", "multimask_output", "use_m2m"))
def _predict_points(
    module: SAM2,
    params: Any,
    image_embed: jax.Array,
    high_res: tuple[jax.Array, jax.Array],
    coords: jax.Array,
    multimask_output: bool,
    use_m2m: bool,
) -> tuple[jax.Array, jax.Array]:
    """One positive click per row, coords [B, 2] (model input frame) on one image (embedding
    [1, h, w, C]) -> low-res logits [B*C, 4h, 4w] and predicted IoUs [B*C], C masks per click.

    use_m2m: the official one-step refinement, each mask's clamped low-res logits fed back as
    the mask prompt with its click (single-mask output).
    """
    coords = coords[:, None, :]
    labels = jnp.ones(coords.shape[:2], jnp.int32)
    low_res, ious = module.apply(
        params,
        image_embed,
        high_res,
        coords,
        labels,
        None,
        multimask_output,
        True,
        method=decode_prompts,
    )
    n_masks = low_res.shape[1]
    low_res = low_res.reshape((-1,) + low_res.shape[2:])
    ious = ious.reshape(-1)
    if use_m2m:
        coords = jnp.repeat(coords, n_masks, axis=0)
        labels = jnp.repeat(labels, n_masks, axis=0)
        mask_input = jnp.clip(low_res, -_LOW_RES_CLAMP, _LOW_RES_CLAMP)
        low_res, ious = module.apply(
            params,
            image_embed,
            high_res,
            coords,
            labels,
            mask_input,
            False,
            True,
            method=decode_prompts,
        )
        low_res, ious = low_res[:, 0], ious[:, 0]
    return low_res, ious


@functools.partial(jax.jit, static_argnames=("crop_hw", "mask_threshold", "stability_score_offset"))
def _mask_stats(
    low_res: jax.Array,
    crop_hw: tuple[int, int],
    mask_threshold: float,
    stability_score_offset: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Low-res logits [N, s, s] -> upsampled to the crop (h, w): stability [N] float32, boxes
    [N, 4] int32 XYXY in the crop, binary masks bit-packed in C order [N, ceil(h*w/8)] uint8."""
    masks = transforms.postprocess_masks(low_res[:, None], crop_hw)[:, 0]
    stability = calculate_stability_score(masks, mask_threshold, stability_score_offset)
    binary = masks > mask_threshold
    bits = jnp.packbits(binary.reshape(binary.shape[0], -1), axis=1)
    return stability, batched_mask_to_box(binary), bits


def _concat(parts: list[MaskData]) -> MaskData:
    """Row-wise concatenation of MaskData with the same keys."""
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "rles"}
    out["rles"] = [r for p in parts for r in p["rles"]]
    return out


def _take(data: MaskData, idx: np.ndarray) -> MaskData:
    """Rows `idx` (int indices) of every field."""
    out = {k: v[idx] for k, v in data.items() if k != "rles"}
    out["rles"] = [data["rles"][i] for i in idx]
    return out


class SAM2AutomaticMaskGenerator:
    """Masks for a whole image from a grid of point prompts (official-compatible)."""

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: Optional[int] = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Optional[list[np.ndarray]] = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        """Arguments as the official. `point_grids`: one [K, 2] grid in [0, 1]² (x, y) per crop
        layer, exclusive with `points_per_side`; `output_mode`: "binary_mask",
        "uncompressed_rle" or "coco_rle"; `points_per_batch`: clicks per jitted batch."""
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("Exactly one of points_per_side or point_grids must be provided.")
        if points_per_side is not None:
            self.point_grids = build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            self.point_grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
        for i, grid in enumerate(self.point_grids):
            if grid.ndim != 2 or grid.shape[1] != 2 or len(grid) == 0:
                raise ValueError(f"point_grids[{i}] must be [K >= 1, 2], got {grid.shape}")
        if len(self.point_grids) < crop_n_layers + 1:
            raise ValueError(
                f"point_grids has {len(self.point_grids)} grids; crop_n_layers={crop_n_layers} "
                f"needs {crop_n_layers + 1}"
            )
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"Unknown output_mode {output_mode!r}; expected one of {OUTPUT_MODES}")
        if points_per_batch < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
        self.model = model
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @classmethod
    def from_checkpoint(
        cls,
        config_name: str,
        ckpt_path: Optional[str | Path],
        overrides: Iterable[str] = (),
        **kwargs: Any,
    ) -> "SAM2AutomaticMaskGenerator":
        """Build the model (official `.pt` or orbax directory) and wrap it; `kwargs` go to
        the constructor."""
        return cls(build_sam2(config_name, ckpt_path, overrides), **kwargs)

    # ----------------------------------------------------------------------------- generate
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Masks for an HWC uint8 RGB image, as a list of records (official order):
        segmentation (bool [H, W], or an RLE dict per `output_mode`), area (int), bbox (XYWH
        floats), predicted_iou, point_coords ([[x, y]]), stability_score, crop_box (XYWH)."""
        image = as_rgb_array(image, "image")
        data = self._generate_masks(image)
        if self.output_mode == "coco_rle":
            segmentations = [coco_encode_rle(rle) for rle in data["rles"]]
        elif self.output_mode == "binary_mask":
            segmentations = [rle_to_mask(rle) for rle in data["rles"]]
        else:
            segmentations = data["rles"]
        boxes = box_xyxy_to_xywh(data["boxes"].astype(np.float32))
        crop_boxes = box_xyxy_to_xywh(data["crop_boxes"].astype(np.float32))
        return [
            {
                "segmentation": seg,
                "area": area_from_rle(rle),
                "bbox": boxes[i].tolist(),
                "predicted_iou": data["iou_preds"][i].item(),
                "point_coords": [data["points"][i].tolist()],
                "stability_score": data["stability_score"][i].item(),
                "crop_box": crop_boxes[i].tolist(),
            }
            for i, (seg, rle) in enumerate(zip(segmentations, data["rles"]))
        ]

    def _generate_masks(self, image: np.ndarray) -> MaskData:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(
            orig_size, self.crop_n_layers, self.crop_overlap_ratio
        )
        data = _concat(
            [
                self._process_crop(image, crop_box, layer_idx, orig_size)
                for crop_box, layer_idx in zip(crop_boxes, layer_idxs)
            ]
        )
        if len(crop_boxes) > 1:  # remove duplicates between crops, preferring smaller crops
            scores = np.float32(1) / box_area(data["crop_boxes"]).astype(np.float32)
            keep = batched_nms(
                data["boxes"].astype(np.float32),
                scores,
                np.zeros(len(scores), np.int64),
                self.crop_nms_thresh,
            )
            data = _take(data, keep)
        return data

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        crop_layer_idx: int,
        orig_size: tuple[int, int],
    ) -> MaskData:
        x0, y0, x1, y1 = crop_box
        cropped = np.ascontiguousarray(image[y0:y1, x0:x1])
        crop_hw = cropped.shape[:2]
        module, params = self.model.module, self.model.params
        image_embed, high_res = encode_images(module, params, cropped[None])

        points = (self.point_grids[crop_layer_idx] * np.array(crop_hw)[None, ::-1]).astype(
            np.float32
        )
        coords = np.asarray(
            transforms.transform_coords(points, crop_hw, self.model.config.image_size, True)
        )
        batch = self.points_per_batch
        parts, pending = [], None
        for start in range(0, len(points), batch):
            n = min(batch, len(points) - start)
            padded = np.zeros((batch, 2), np.float32)
            padded[:n] = coords[start : start + n]
            # Dispatch this batch before filtering the previous one on the host.
            outputs = self._run_batch(image_embed, high_res, padded, crop_hw)
            if pending is not None:
                parts.append(self._filter_batch(*pending, crop_box, orig_size))
            pending = (outputs, points[start : start + n])
        parts.append(self._filter_batch(*pending, crop_box, orig_size))
        data = _concat(parts)

        keep = batched_nms(
            data["boxes"].astype(np.float32),
            data["iou_preds"],
            np.zeros(len(data["rles"]), np.int64),
            self.box_nms_thresh,
        )
        data = _take(data, keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = np.tile(np.asarray(crop_box, np.int64), (len(data["rles"]), 1))
        return data

    def _run_batch(
        self,
        image_embed: jax.Array,
        high_res: tuple[jax.Array, jax.Array],
        coords: np.ndarray,
        crop_hw: tuple[int, int],
    ) -> tuple[jax.Array, ...]:
        """Padded model-frame clicks [B, 2] -> (ious, stability, boxes, bits) of the B*C masks
        (see `_mask_stats`); asynchronous unless small regions are filled on the host."""
        low_res, ious = _predict_points(
            self.model.module,
            self.model.params,
            image_embed,
            high_res,
            coords,
            bool(self.multimask_output),
            bool(self.use_m2m),
        )
        if self.min_mask_region_area > 0:
            area = self.min_mask_region_area
            low_res = fill_holes_and_sprinkles(np.asarray(low_res), area, area)
        stats = _mask_stats(
            low_res, crop_hw, float(self.mask_threshold), float(self.stability_score_offset)
        )
        return (ious, *stats)

    def _filter_batch(
        self,
        outputs: tuple[jax.Array, ...],
        points: np.ndarray,
        crop_box: list[int],
        orig_size: tuple[int, int],
    ) -> MaskData:
        """Filter the masks of the n = len(points) real clicks (crop pixels [n, 2]) of a batch
        by predicted IoU, stability and crop edge, and run-length encode the survivors in the
        original image frame."""
        ious, stability, boxes, bits = outputs
        per_click = ious.shape[0] // self.points_per_batch
        n = len(points) * per_click
        data = {
            "iou_preds": np.asarray(ious)[:n],
            "points": np.repeat(points, per_click, axis=0),
            "stability_score": np.asarray(stability)[:n],
            "boxes": np.asarray(boxes)[:n].astype(np.int64),
        }
        keep = np.ones(n, dtype=bool)
        if self.pred_iou_thresh > 0.0:
            keep &= data["iou_preds"] > np.float32(self.pred_iou_thresh)
        if self.stability_score_thresh > 0.0:
            keep &= data["stability_score"] >= np.float32(self.stability_score_thresh)
        orig_h, orig_w = orig_size
        keep &= ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        idx = np.flatnonzero(keep)
        data = {k: v[idx] for k, v in data.items()}
        h, w = crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]
        masks = np.unpackbits(np.asarray(bits)[idx], axis=1, count=h * w).astype(bool)
        data["rles"] = mask_to_rle(uncrop_masks(masks.reshape(-1, h, w), crop_box, orig_h, orig_w))
        return data

    # ----------------------------------------------------------------------------- extras
    @staticmethod
    def postprocess_small_regions(
        mask_data: MaskData, min_area: int, nms_thresh: float
    ) -> MaskData:
        """Official helper (not called by `generate`, as in the official): remove holes and
        islands of area < min_area from each mask of `mask_data` ("rles", "boxes" [N, 4] XYXY,
        ...), recompute the boxes of changed masks and rerun box NMS, preferring unchanged
        masks. Returns the filtered MaskData (a new dict; the input is not modified)."""
        if len(mask_data["rles"]) == 0:
            return mask_data
        new_masks, scores = [], []
        for rle in mask_data["rles"]:
            mask, changed_holes = remove_small_regions(rle_to_mask(rle), min_area, "holes")
            mask, changed_islands = remove_small_regions(mask, min_area, "islands")
            new_masks.append(mask)
            scores.append(float(not (changed_holes or changed_islands)))
        masks = np.stack(new_masks)
        boxes = np.asarray(batched_mask_to_box(masks)).astype(np.int64)
        scores = np.asarray(scores, np.float32)
        keep = batched_nms(
            boxes.astype(np.float32), scores, np.zeros(len(scores), np.int64), nms_thresh
        )
        mask_data = {k: (list(v) if k == "rles" else np.array(v)) for k, v in mask_data.items()}
        for i in keep:
            if scores[i] == 0.0:
                mask_data["rles"][i] = mask_to_rle(masks[i][None])[0]
                mask_data["boxes"][i] = boxes[i]
        return _take(mask_data, keep)
