"""SAM2ImagePredictor with the official API (<- sam2/sam2_image_predictor.py).

`set_image` runs the jitted image encoder once; `predict` runs the jitted prompt encoder + mask
decoder on the cached embedding, so repeated prompts on one image never recompute it. Inputs and
outputs follow the official shapes: images HWC uint8 RGB (numpy or PIL), points [N, 2] or
[B, N, 2] in pixels, boxes [4] or [B, 4] XYXY, mask_input [1, 256, 256] or [B, 1, 256, 256]
logits; returns masks [C, H, W] (or [B, C, H, W]), ious [C], low-res logits [C, 256, 256].
"""

import functools
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sam2_jax import transforms
from sam2_jax.build import SAM2Model, build_sam2
from sam2_jax.models.sam2 import SAM2
from sam2_jax.ops.fill_holes import fill_holes_and_sprinkles


class PredictorNotReadyError(RuntimeError, ValueError):
    """A predictor method was called before the state it needs was set."""


@functools.partial(jax.jit, static_argnames=("module",))
def encode_images(
    module: SAM2, params: Any, images: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """images [B, H, W, 3] uint8 (one size) -> (image_embed [B, h, w, C] with no_mem_embed,
    high-res features); resizing and normalisation run in the same program."""
    images = transforms.preprocess_image(images, module.cfg.image_size)
    bb = module.apply(params, images, method=SAM2.forward_image)
    embed = bb.vision_features
    if module.cfg.directly_add_no_mem_embed:
        embed = module.apply(params, embed, method=SAM2.add_no_mem_embed)
    return embed, bb.backbone_fpn[:2]


def decode_prompts(
    self: SAM2,
    image_embed: jax.Array,
    high_res: tuple[jax.Array, jax.Array],
    coords: Optional[jax.Array],
    labels: Optional[jax.Array],
    mask_input: Optional[jax.Array],
    multimask_output: bool,
    repeat_image: bool,
) -> tuple[jax.Array, jax.Array]:
    """Prompt encoder + mask decoder on an image embedding (a `SAM2.apply` method):
    coords [B, N, 2] model-input pixels, labels [B, N], mask_input [B, s, s] logits (each
    optional) -> (low-res mask logits [B, K, s, s], ious [B, K]), K = 3 or 1."""
    points = None if coords is None else (coords, labels)
    masks = None if mask_input is None else mask_input[..., None]
    sparse, dense = self.sam_prompt_encoder(points, None, masks)
    out = self.sam_mask_decoder(
        image_embed,
        self.sam_prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        multimask_output=multimask_output,
        repeat_image=repeat_image,
        high_res_features=high_res,
    )
    return out.masks.astype(jnp.float32), out.iou_pred.astype(jnp.float32)


@functools.partial(
    jax.jit, static_argnames=("module", "multimask_output", "repeat_image", "orig_hw")
)
def _decode(
    module: SAM2,
    params: Any,
    image_embed: jax.Array,
    high_res: tuple[jax.Array, jax.Array],
    coords: Optional[jax.Array],
    labels: Optional[jax.Array],
    mask_input: Optional[jax.Array],
    multimask_output: bool,
    repeat_image: bool,
    orig_hw: Optional[tuple[int, int]],
) -> tuple[Optional[jax.Array], jax.Array, jax.Array]:
    """Prompt encoder + mask decoder + upsampling to the original size `orig_hw`, one program:
    (masks [B, K, H, W] logits, or None without `orig_hw`; ious [B, K]; low-res [B, K, h, w]
    logits, not clamped)."""
    low_res, ious = module.apply(
        params,
        image_embed,
        high_res,
        coords,
        labels,
        mask_input,
        multimask_output,
        repeat_image,
        method=decode_prompts,
    )
    masks = None if orig_hw is None else transforms.postprocess_masks(low_res, orig_hw)
    return masks, ious, low_res


_upsample = jax.jit(transforms.postprocess_masks, static_argnums=1)


class SAM2ImagePredictor:
    """Official-compatible image predictor on a `SAM2Model`."""

    def __init__(
        self,
        sam_model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        self.model = sam_model
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.reset_predictor()

    @classmethod
    def from_checkpoint(
        cls,
        config_name: str,
        ckpt_path: Optional[str | Path],
        overrides: Iterable[str] = (),
        **kwargs: Any,
    ) -> "SAM2ImagePredictor":
        """Build the model (official `.pt` or orbax directory) and wrap it."""
        return cls(build_sam2(config_name, ckpt_path, overrides), **kwargs)

    @property
    def _module(self) -> SAM2:
        return self.model.module

    @property
    def _low_res_size(self) -> int:
        return self.model.config.image_size // 4

    # ----------------------------------------------------------------------------- images
    def reset_predictor(self) -> None:
        """Drop the cached image embedding."""
        self._features: Optional[dict[str, Any]] = None
        self._orig_hw: list[tuple[int, int]] = []
        self._is_image_set = False
        self._is_batch = False

    def set_image(self, image: np.ndarray | Image.Image) -> None:
        """Embed one image: HWC uint8 RGB numpy array or PIL image."""
        self.reset_predictor()
        array = as_rgb_array(image, "image")
        self._set([array])

    def set_image_batch(self, image_list: Sequence[np.ndarray]) -> None:
        """Embed a list of HWC uint8 RGB numpy images (sizes may differ)."""
        self.reset_predictor()
        if not isinstance(image_list, (list, tuple)) or not image_list:
            raise ValueError("set_image_batch expects a non-empty list of HWC uint8 RGB arrays")
        arrays = [as_rgb_array(im, f"image_list[{i}]") for i, im in enumerate(image_list)]
        self._set(arrays)
        self._is_batch = True

    def _set(self, arrays: list[np.ndarray]) -> None:
        if len({a.shape for a in arrays}) == 1:
            embed, high_res = encode_images(self._module, self.model.params, np.stack(arrays))
        else:  # one program per distinct image size
            outs = [encode_images(self._module, self.model.params, a[None]) for a in arrays]
            embed = jnp.concatenate([o[0] for o in outs])
            high_res = tuple(jnp.concatenate(f) for f in zip(*(o[1] for o in outs)))
        self._features = {"image_embed": embed, "high_res_feats": high_res}
        self._orig_hw = [tuple(a.shape[:2]) for a in arrays]
        self._is_image_set = True

    def get_image_embedding(self) -> jax.Array:
        """The cached embedding, [B, h, w, C] (channels-last; official is [B, C, h, w])."""
        self._require_image()
        return self._features["image_embed"]

    def _require_image(self) -> None:
        if not self._is_image_set:
            raise PredictorNotReadyError(
                "An image must be set with .set_image(...) before mask prediction."
            )

    # ----------------------------------------------------------------------------- predict
    def predict(
        self,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for prompts on the image set by `set_image` (official semantics and shapes)."""
        self._require_image()
        if self._is_batch:
            raise ValueError("an image batch is set: use predict_batch(...)")
        return self._predict_one(
            0,
            point_coords,
            point_labels,
            box,
            mask_input,
            multimask_output,
            return_logits,
            normalize_coords,
        )

    def predict_batch(
        self,
        point_coords_batch: Optional[Sequence[np.ndarray]] = None,
        point_labels_batch: Optional[Sequence[np.ndarray]] = None,
        box_batch: Optional[Sequence[np.ndarray]] = None,
        mask_input_batch: Optional[Sequence[np.ndarray]] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """`predict` for each image set by `set_image_batch`; returns lists per image."""
        self._require_image()
        if not self._is_batch:
            raise ValueError("predict_batch needs images set with set_image_batch(...)")
        n = len(self._orig_hw)
        for name, seq in (
            ("point_coords_batch", point_coords_batch),
            ("point_labels_batch", point_labels_batch),
            ("box_batch", box_batch),
            ("mask_input_batch", mask_input_batch),
        ):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} images")
        pick = lambda seq, i: None if seq is None else seq[i]  # noqa: E731
        results = [
            self._predict_one(
                i,
                pick(point_coords_batch, i),
                pick(point_labels_batch, i),
                pick(box_batch, i),
                pick(mask_input_batch, i),
                multimask_output,
                return_logits,
                normalize_coords,
            )
            for i in range(n)
        ]
        return tuple(list(r) for r in zip(*results))  # type: ignore[return-value]

    def _predict_one(
        self,
        img_idx: int,
        point_coords: Optional[np.ndarray],
        point_labels: Optional[np.ndarray],
        box: Optional[np.ndarray],
        mask_input: Optional[np.ndarray],
        multimask_output: bool,
        return_logits: bool,
        normalize_coords: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        coords, labels, mask = self._prep_prompts(
            img_idx, point_coords, point_labels, box, mask_input, normalize_coords
        )
        repeat_image = coords is not None and coords.shape[0] > 1
        embed = self._features["image_embed"][img_idx : img_idx + 1]
        high_res = tuple(f[img_idx : img_idx + 1] for f in self._features["high_res_feats"])
        orig_hw = self._orig_hw[img_idx]
        fill = self.max_hole_area > 0 or self.max_sprinkle_area > 0
        masks, ious, low_res = _decode(
            self._module,
            self.model.params,
            embed,
            high_res,
            coords,
            labels,
            mask,
            bool(multimask_output),
            repeat_image,
            None if fill else orig_hw,
        )
        ious, low_res = np.asarray(ious), np.asarray(low_res)
        if fill:  # on the host, then the upsampling (the official postprocess_masks)
            filled = fill_holes_and_sprinkles(
                low_res, self.max_hole_area, self.max_sprinkle_area, self.mask_threshold
            )
            masks = _upsample(filled, orig_hw)
        masks, low_res = np.asarray(masks), np.clip(low_res, -32.0, 32.0)
        if not return_logits:  # official returns thresholded masks as float 0/1
            masks = (masks > self.mask_threshold).astype(np.float32)
        squeeze = lambda x: x[0] if x.shape[0] == 1 else x  # noqa: E731
        return squeeze(masks), squeeze(ious), squeeze(low_res)

    def _prep_prompts(
        self,
        img_idx: int,
        point_coords: Optional[np.ndarray],
        point_labels: Optional[np.ndarray],
        box: Optional[np.ndarray],
        mask_input: Optional[np.ndarray],
        normalize_coords: bool,
    ) -> tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
        """Validate and transform prompts: -> coords [B, N, 2], labels [B, N], mask [B, s, s]."""
        orig_hw, size = self._orig_hw[img_idx], self.model.config.image_size
        if point_coords is None and box is None and mask_input is None:
            raise ValueError("no prompt given: pass point_coords/point_labels, box or mask_input")
        coords = labels = None
        if (point_coords is None) != (point_labels is None):
            raise ValueError(
                "point_labels must be supplied if point_coords is supplied, and "
                "point_coords if point_labels is supplied"
            )
        if point_coords is not None:
            coords = np.asarray(point_coords, np.float32)
            labels = np.asarray(point_labels)
            if coords.ndim not in (2, 3) or coords.shape[-1] != 2:
                raise ValueError(f"point_coords must be [N, 2] or [B, N, 2], got {coords.shape}")
            if labels.shape != coords.shape[:-1]:
                raise ValueError(
                    f"point_labels shape {labels.shape} does not match point_coords "
                    f"{coords.shape} (expected {coords.shape[:-1]})"
                )
            if coords.shape[-2] == 0:
                raise ValueError("point_coords is empty; pass None instead of an empty array")
            if not np.isin(labels, (-1, 0, 1, 2, 3)).all():
                raise ValueError(
                    f"point_labels must be in {{-1, 0, 1, 2, 3}}, got {np.unique(labels).tolist()}"
                )
            coords = np.asarray(
                transforms.transform_coords(coords, orig_hw, size, normalize_coords)
            )
            labels = labels.astype(np.int32)
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
        if box is not None:
            b = np.asarray(box, np.float32)
            if b.shape[-1] != 4 or b.ndim not in (1, 2):
                raise ValueError(f"box must be [4] or [B, 4] (XYXY), got shape {b.shape}")
            box_coords = np.asarray(
                transforms.transform_boxes(b, orig_hw, size, normalize_coords)
            ).reshape(-1, 2, 2)
            box_labels = np.tile(np.array([[2, 3]], np.int32), (box_coords.shape[0], 1))
            if coords is not None:
                if coords.shape[0] != box_coords.shape[0]:
                    raise ValueError(
                        f"{box_coords.shape[0]} boxes but {coords.shape[0]} point "
                        "sets; their batch sizes must match"
                    )
                coords = np.concatenate([box_coords, coords], axis=1)
                labels = np.concatenate([box_labels, labels], axis=1)
            else:
                coords, labels = box_coords, box_labels
        mask = None
        if mask_input is not None:
            mask = np.asarray(mask_input, np.float32)
            s = self._low_res_size
            if mask.ndim == 3:
                mask = mask[None]
            if mask.ndim != 4 or mask.shape[1:] != (1, s, s):
                raise ValueError(
                    f"mask_input must be [1, {s}, {s}] or [B, 1, {s}, {s}] "
                    f"low-res logits, got shape {np.shape(mask_input)}"
                )
            if coords is not None and mask.shape[0] not in (1, coords.shape[0]):
                raise ValueError(
                    f"mask_input batch {mask.shape[0]} does not match {coords.shape[0]} prompts"
                )
            mask = mask[:, 0]
        return coords, labels, mask


def as_rgb_array(image: Any, name: str) -> np.ndarray:
    """HWC uint8 RGB numpy from a numpy array or PIL image, with clear errors."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be HWC RGB with 3 channels, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 with values in [0, 255], got {image.dtype}")
    return image
