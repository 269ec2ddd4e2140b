"""The mask decoder's read-out of the tracked mask, fitted to data at init (no official
counterpart; the second half of the from-scratch init after `memory_path_init`).

With `memory_path_init`, the memory-conditioned features of a tracked frame hold the object's
mask, but the decoder's random upscaling (C -> C/4 -> C/8 channels per pixel) and hypernetworks
lose it: a linear read-out of the upscaled embedding finds nothing, and the decoder's masks are
noise (`python -m sam2_jax.train.memory_probe init_read_out_clips=0`). From the first frames of a
few training clips, each tracked against memories of its own masks (`static_frame`), this fits
a ridge regression w [C, 16] from the decoder's image embedding (after its two-way transformer)
to the mask fraction of each of a token's 4 x 4 sub-blocks, minus 1/2, and writes it in:

- first upscaling (2x2 transposed conv): channels 0-3 of sub-pixel (a, b) are +w of the
  sub-blocks (2a + a', 2b + b'), channel 2a' + b'; channels 4-7 the same with -w;
- second upscaling: channel 0 of sub-pixel (a', b') is input channel 2a' + b' minus channel
  4 + 2a' + b', channel 1 its negative; since GELU(u) - GELU(-u) = u, channel 0 minus channel 1
  of the upscaled embedding is the read-out of the pixel's sub-block (up to the LayerNorm
  between the upscalings and the random remaining channels, which stay);
- every hypernetwork's output bias is `MASK_LOGIT_GAIN` x (e_0 - e_1), its kernel scaled by
  `HEAD_KERNEL_SCALE`: each mask token reads that difference;
- the object score head's output bias is `OBJECT_SCORE_BIAS` (kernel scaled alike): objects
  start present, so their masks are not replaced by the no-object score.
"""

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sam2_jax.build import SAM2Model
from sam2_jax.train.static_frame import (
    SUB,
    per_token,
    static_stages,
    sub_block_fractions,
    token_targets,
)

RIDGE_L2 = 1e-2
MASK_LOGIT_GAIN = 4.0
HEAD_KERNEL_SCALE = 0.1
OBJECT_SCORE_BIAS = 3.0


def fit_read_out(src: np.ndarray, targets: np.ndarray, l2: float = RIDGE_L2) -> np.ndarray:
    """Ridge regression without intercept: w [C, K] with src [N, C] @ w ~ targets [N, K] - 1/2
    (a LayerNorm output has a near-constant direction that takes the intercept's place)."""
    src = src.astype(np.float64)
    gram = src.T @ src + l2 * np.eye(src.shape[1])
    return np.linalg.solve(gram, src.T @ (targets - 0.5))


def _write_upscaling(decoder: dict, w: np.ndarray) -> None:
    """The two transposed convs as in the module docstring, from w [C, SUB * SUB]."""
    first = np.array(decoder["output_upscaling_0"]["kernel"])  # [2, 2, C, C/4]
    second = np.array(decoder["output_upscaling_3"]["kernel"])  # [2, 2, C/4, C/8]
    second[..., :2] = 0.0
    for a, b, a2, b2 in np.ndindex(2, 2, 2, 2):
        channel, block = 2 * a2 + b2, (2 * a + a2) * SUB + 2 * b + b2
        first[a, b, :, channel], first[a, b, :, 4 + channel] = w[:, block], -w[:, block]
        second[a2, b2, channel, :2] = (1.0, -1.0)
        second[a2, b2, 4 + channel, :2] = (-1.0, 1.0)
    written = (("output_upscaling_0", first, 8), ("output_upscaling_3", second, 2))
    for name, kernel, channels in written:
        decoder[name] = {
            "kernel": jnp.asarray(kernel, decoder[name]["kernel"].dtype),
            "bias": decoder[name]["bias"].at[:channels].set(0.0),
        }


def _output_layer(head: dict) -> dict:
    """The last Dense of an `MLP` (or the Dense itself)."""
    if "kernel" in head:
        return head
    return head[max(head, key=lambda k: int(k.split("_")[1]))]


def _set_output_bias(head: dict, bias: jax.Array) -> None:
    layer = _output_layer(head)
    layer["kernel"] = layer["kernel"] * HEAD_KERNEL_SCALE
    layer["bias"] = bias.astype(layer["bias"].dtype)


def decoder_read_out_init(
    model: SAM2Model, examples: Iterable[tuple[np.ndarray, np.ndarray]]
) -> Any:
    """The "params" collection of `model` with the decoder read-out fitted on `examples`: pairs
    of a frame [H, W, 3] uint8 and its objects' masks [O, H, W] bool (O >= 1). A new tree."""
    grid = model.config.image_size // model.config.backbone_stride
    src, targets = [], []
    for image, masks in examples:
        stages = static_stages(model, image, masks)
        src.append(per_token(stages.decoder_src))
        targets.append(token_targets(sub_block_fractions(stages.masks, grid), grid))
    if not src:
        raise ValueError("decoder_read_out_init needs at least one example with an object")
    w = fit_read_out(np.concatenate(src), np.concatenate(targets))
    params = jax.tree.map(lambda x: x, model.params["params"])
    decoder = params["sam_mask_decoder"]
    _write_upscaling(decoder, w)
    for name, head in decoder.items():
        if name.startswith("output_hypernetworks_mlps"):
            bias = jnp.zeros_like(_output_layer(head)["bias"])
            _set_output_bias(head, bias.at[0].set(MASK_LOGIT_GAIN).at[1].set(-MASK_LOGIT_GAIN))
    if "pred_obj_score_head" in decoder:
        head = decoder["pred_obj_score_head"]
        _set_output_bias(head, jnp.full_like(_output_layer(head)["bias"], OBJECT_SCORE_BIAS))
    return params
