"""A from-scratch initialisation in which the memory path carries the tracked object.

No official counterpart: the official recipe fine-tunes a pretrained SAM 2. From plain random
weights the tracked object barely reaches the tracked frame's masks: the memory is mostly image
features, the memory attention mixes all positions, and the decoder adds high-res image features
that drown what is left. A linear read-out of the objects' masks on the synthetic validation
frames at 192 px (`python -m sam2_jax.train.memory_probe`) finds them in the memory at J 0.23
and after the memory attention at 0.05 from the plain init; at 0.91 and 0.83 with this init.
Training from the plain init does not find the path either (README, Training). This init
changes these weights so that the object survives each stage:

- memory encoder: the image projection `pix_feat_proj` starts at zero (the memory is the mask
  alone) and the mask downsampler's last 1x1 conv is scaled by `MASK_GAIN`;
- memory attention: every cross-attention layer's q and k biases get `LOCAL_BIAS` on the
  fastest `LOCAL_PAIRS` RoPE pairs of each axis, so that a query first attends to the memory
  tokens at its own position (rotations of equal angle align: a copy of the memory), and its
  output projection is scaled by `CROSS_GAIN`; every self-attention's output projection starts
  at zero (random RoPE self-attention over the frame averages positions: after the first
  layer's copy, it erased where the memory had put the object);
- mask decoder: the high-res feature projections `conv_s0` / `conv_s1` are scaled by
  `HIGH_RES_GAIN`, so that they refine rather than drown the memory-conditioned embedding.

Everything else keeps its random init; training moves all of these weights freely.
"""

from typing import Any

import jax
import jax.numpy as jnp

MASK_GAIN = 4.0
LOCAL_BIAS = 6.0
LOCAL_PAIRS = 8
HIGH_RES_GAIN = 0.1
CROSS_GAIN = 4.0


def _scaled(tree: Any, gain: float) -> Any:
    return jax.tree.map(lambda x: x * gain, tree)


def _local_bias(bias: jax.Array, num_heads: int) -> jax.Array:
    """bias [h * D] with `LOCAL_BIAS` on the first `LOCAL_PAIRS` complex pairs of the x and
    of the y half of each head (RoPE layout of `sam2_jax.models.rope`)."""
    head_dim = bias.shape[0] // num_heads
    first = jnp.arange(2 * LOCAL_PAIRS)
    per_head = jnp.concatenate([first, head_dim // 2 + first])
    index = (jnp.arange(num_heads)[:, None] * head_dim + per_head[None]).reshape(-1)
    return bias.at[index].set(LOCAL_BIAS)


def memory_path_init(params: Any, memory_attention_heads: int) -> Any:
    """The "params" collection of a randomly initialised SAM 2 with the changes above (a new
    tree; `params` is not modified)."""
    params = jax.tree.map(lambda x: x, params)
    encoder = params["memory_encoder"]
    encoder["pix_feat_proj"] = jax.tree.map(jnp.zeros_like, encoder["pix_feat_proj"])
    downsampler = encoder["mask_downsampler"]
    last = max((k for k in downsampler if k.startswith("encoder_")), key=lambda k: int(k[8:]))
    downsampler[last] = _scaled(downsampler[last], MASK_GAIN)
    for name, layer in params["memory_attention"].items():
        if name.startswith("layers_"):
            attention = layer["cross_attn_image"]
            for proj in ("q_proj", "k_proj"):
                attention[proj]["bias"] = _local_bias(
                    attention[proj]["bias"], memory_attention_heads
                )
            attention["out_proj"] = _scaled(attention["out_proj"], CROSS_GAIN)
            layer["self_attn"]["out_proj"] = _scaled(layer["self_attn"]["out_proj"], 0.0)
    decoder = params["sam_mask_decoder"]
    for name in ("conv_s0", "conv_s1"):
        decoder[name] = _scaled(decoder[name], HIGH_RES_GAIN)
    return params
