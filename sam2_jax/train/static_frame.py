"""A frame tracked against memories of its own masks: the features of each stage of the memory
path, and the per-token mask targets that linear read-outs of them predict (no official
counterpart; used by `memory_probe` and `read_out_init`)."""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict

from sam2_jax.build import SAM2Model
from sam2_jax.memory_bank import empty_bank, num_recent_slots, write_frame
from sam2_jax.models.sam2 import SAM2
from sam2_jax.streaming import prompt_mask_at_model_size
from sam2_jax.tracker import condition_on_bank
from sam2_jax.transforms import preprocess_image

SUB = 4  # sub-blocks per token side of the targets (the decoder's 4x upscaling)


class Stages(NamedTuple):
    """One static frame's features: memory [O, h, w, D], conditioned [O, h, w, C], decoder_src
    [O, h, w, C] (after the decoder's two-way transformer), upscaled [O, 4h, 4w, C/8], logits
    [O, 4h, 4w] (the decoder's single mask), masks [O, S, S] bool."""

    memory: np.ndarray
    conditioned: np.ndarray
    decoder_src: np.ndarray
    upscaled: np.ndarray
    logits: np.ndarray
    masks: np.ndarray


def static_stages(model: SAM2Model, image: np.ndarray, masks: np.ndarray) -> Stages:
    """image [H, W, 3] uint8, masks [O, H, W] bool -> the stages of tracking the same frame with
    its masks as conditioning memories (evaluation settings, single-mask output)."""
    module, params, cfg = model.module, model.params, model.config
    s = cfg.image_size
    o = masks.shape[0]
    gt = jnp.asarray(np.stack([prompt_mask_at_model_size(m, s) for m in masks]))
    apply = lambda *a, **k: module.apply(params, *a, **k)  # noqa: E731
    bb = apply(preprocess_image(image, s), method=SAM2.forward_image)
    raw = jnp.repeat(bb.vision_features, o, axis=0)
    high_res = tuple(jnp.repeat(f, o, axis=0) for f in bb.backbone_fpn[:2])
    prompt = apply(raw, high_res, gt, method=SAM2.use_mask_as_output)
    memory = apply(
        raw, prompt.high_res_masks[:, 0], prompt.object_score_logits, jnp.ones(o, bool),
        method=SAM2.encode_memory,
    )  # fmt: skip
    h = raw.shape[1]
    bank = empty_bank(
        o, 1, num_recent_slots(cfg.num_maskmem, 1), cfg.max_obj_ptrs_in_encoder - 1, h * h,
        memory.shape[-1], raw.shape[-1], jnp.float32,
    )  # fmt: skip
    bank = write_frame(
        bank, jnp.int32(0), memory.reshape(o, h * h, -1), prompt.obj_ptr, jnp.ones(o, bool),
        jnp.ones(o, bool),
    )  # fmt: skip
    one = jnp.int32(1)
    conditioned = apply(
        bank, raw, bb.vision_pos_enc[-1][0], one, jnp.int32(2), one, True,
        method=condition_on_bank,
    )  # fmt: skip
    heads, state = module.apply(
        params, conditioned, jnp.zeros((o, 1, 2)), -jnp.ones((o, 1), jnp.int32),
        jnp.zeros((o, 4 * h, 4 * h)), jnp.zeros(o, bool), high_res, jnp.zeros(o, bool),
        method=SAM2.track_sam_heads, mutable=["intermediates"],
    )  # fmt: skip
    sown = {path[-1]: value for path, value in flatten_dict(state["intermediates"]).items()}
    (src,), (upscaled,) = sown["src"], sown["upscaled"]
    stages = (memory, conditioned, src, upscaled, heads.low_res_masks, gt > 0)
    return Stages(*(np.asarray(x) for x in stages))


def sub_block_fractions(masks: np.ndarray, grid: int) -> np.ndarray:
    """masks [O, S, S] -> mask fraction of each of the SUB x SUB sub-blocks of every token of
    a grid x grid map [O, grid * SUB, grid * SUB]."""
    o, s = masks.shape[:2]
    n = grid * SUB
    return masks.reshape(o, n, s // n, n, s // n).mean(axis=(2, 4))


def per_token(x: np.ndarray) -> np.ndarray:
    """[O, h, w, F] -> [O * h * w, F]."""
    return x.reshape(-1, x.shape[-1])


def token_targets(fractions: np.ndarray, grid: int) -> np.ndarray:
    """[O, 4h, 4w] sub-block fractions -> [O * h * w, SUB * SUB], one row per token."""
    o = fractions.shape[0]
    blocks = fractions.reshape(o, grid, SUB, grid, SUB).transpose(0, 1, 3, 2, 4)
    return blocks.reshape(-1, SUB * SUB)
