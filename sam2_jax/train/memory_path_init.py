"""A from-scratch initialisation in which the memory path tracks the object before training.

No official counterpart: the official recipe fine-tunes a pretrained SAM 2. From plain random
weights the tracked object barely reaches the tracked frame's masks: the memory is mostly image
features, the memory attention mixes all positions, and the decoder adds high-res image features
that drown what is left. A linear read-out of the objects' masks on the synthetic validation
frames at 192 px (`python -m sam2_jax.train.memory_probe`) finds them in the memory at J 0.23
and after the memory attention at 0.05 from the plain init. Training from the plain init does
not find the path either (README, Training). This init changes these weights so that the memory
holds the object and what it looks like, and each tracked position reads the memory where the
image looks the same, near its own position:

- memory encoder: the memory's first half of channels is a random projection of the image
  features alone (`pix_feat_proj` into the first half of its channels, `out_proj` block
  diagonal), its second half the mask alone (the mask downsampler's last 1x1 conv into the
  second half, scaled by `MASK_GAIN`);
- memory attention, every cross-attention layer (single-scale RoPE heads of dim D):
  - keys and queries on the slow RoPE pairs (the last half of the pairs of each axis, nearly
    unrotated over a frame) compare appearance: a query is `APPEARANCE_GAIN` x LN(x) @ K and the
    key the memory's image half read so that it equals f @ K, with K = P_a O_a B (image
    projection, out_proj block, the random key projection of the image half), normalised;
    the other query columns start at zero;
  - the fastest `LOCAL_PAIRS` RoPE pairs of each axis get `LOCAL_BIAS` in the q and k biases: a
    prior for the memory at the query's own position (rotations of equal angle align);
  - values read the mask half only; the output projection is scaled by `CROSS_GAIN`;
- every memory-attention self-attention's output projection starts at zero (random RoPE
  self-attention over the frame averages positions: it erased where the memory put the object);
- mask decoder: the high-res feature projections `conv_s0` / `conv_s1` are scaled by
  `HIGH_RES_GAIN`, so that they refine rather than drown the memory-conditioned embedding (the
  decoder's read-out of the mask is fitted to data: `sam2_jax.train.read_out_init`).

Everything else keeps its random init; training moves all of these weights freely.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MASK_GAIN = 4.0
LOCAL_BIAS = 2.0
LOCAL_PAIRS = 8
APPEARANCE_GAIN = 1.0
HIGH_RES_GAIN = 0.1
CROSS_GAIN = 4.0


def _scaled(tree: Any, gain: float) -> Any:
    return jax.tree.map(lambda x: x * gain, tree)


def rope_dims(num_heads: int, head_dim: int, first: int, count: int) -> np.ndarray:
    """Indices into a [num_heads * head_dim] q/k vector of the complex pairs first ..
    first + count - 1 of the x half and of the y half of each head (RoPE layout of
    `sam2_jax.models.rope`: pair k of an axis rotates at theta^(-4k / head_dim), so the first
    pairs are the fastest)."""
    pair = np.arange(2 * first, 2 * (first + count))
    per_head = np.concatenate([pair, head_dim // 2 + pair])
    return (np.arange(num_heads)[:, None] * head_dim + per_head[None]).reshape(-1)


def _split_memory(encoder: dict) -> tuple[jax.Array, jax.Array]:
    """Makes the memory [image half | mask half] (see the module docstring); returns the image
    half's two projections P_a [C, C/2] and O_a [C/2, D_mem/2]."""
    proj = encoder["pix_feat_proj"]["kernel"]  # [1, 1, C, C]
    c = proj.shape[-1]
    encoder["pix_feat_proj"]["kernel"] = proj.at[..., c // 2 :].set(0.0)
    downsampler = encoder["mask_downsampler"]
    last = max((k for k in downsampler if k.startswith("encoder_")), key=lambda k: int(k[8:]))
    mask_proj = _scaled(downsampler[last], MASK_GAIN)
    mask_proj["kernel"] = mask_proj["kernel"].at[..., : c // 2].set(0.0)
    mask_proj["bias"] = mask_proj["bias"].at[: c // 2].set(0.0)
    downsampler[last] = mask_proj
    out = encoder["out_proj"]["kernel"]  # [1, 1, C, D_mem]
    d = out.shape[-1]
    out = out.at[..., c // 2 :, : d // 2].set(0.0).at[..., : c // 2, d // 2 :].set(0.0)
    encoder["out_proj"]["kernel"] = out
    return encoder["pix_feat_proj"]["kernel"][0, 0, :, : c // 2], out[0, 0, : c // 2, : d // 2]


def _appearance_cross_attention(
    attention: dict, image_proj: jax.Array, out_proj: jax.Array, num_heads: int
) -> dict:
    """The cross-attention of one layer as described in the module docstring."""
    q, k, v = attention["q_proj"], attention["k_proj"], attention["v_proj"]
    dim = q["kernel"].shape[-1]
    head_dim = dim // num_heads
    image_rows = out_proj.shape[-1]  # the memory's image half
    slow = rope_dims(num_heads, head_dim, head_dim // 8, head_dim // 8)
    key_slow = k["kernel"][:image_rows, slow]
    appearance = image_proj @ out_proj @ key_slow  # K before normalisation [C, |slow|]
    norm = jnp.sqrt(jnp.mean(jnp.sum(appearance**2, axis=0)))
    q["kernel"] = jnp.zeros_like(q["kernel"]).at[:, slow].set(APPEARANCE_GAIN * appearance / norm)
    k["kernel"] = k["kernel"].at[:, slow].set(0.0).at[:image_rows, slow].set(key_slow / norm)
    local = rope_dims(num_heads, head_dim, 0, LOCAL_PAIRS)
    for proj in (q, k):
        proj["bias"] = proj["bias"].at[local].set(LOCAL_BIAS)
    v["kernel"] = v["kernel"].at[:image_rows].set(0.0)
    attention["out_proj"] = _scaled(attention["out_proj"], CROSS_GAIN)
    return attention


def memory_path_init(params: Any, memory_attention_heads: int) -> Any:
    """The "params" collection of a randomly initialised SAM 2 with the changes above (a new
    tree; `params` is not modified)."""
    params = jax.tree.map(lambda x: x, params)
    image_proj, out_proj = _split_memory(params["memory_encoder"])
    for name, layer in params["memory_attention"].items():
        if name.startswith("layers_"):
            layer["cross_attn_image"] = _appearance_cross_attention(
                layer["cross_attn_image"], image_proj, out_proj, memory_attention_heads
            )
            layer["self_attn"]["out_proj"] = _scaled(layer["self_attn"]["out_proj"], 0.0)
    decoder = params["sam_mask_decoder"]
    for name in ("conv_s0", "conv_s1"):
        decoder[name] = _scaled(decoder[name], HIGH_RES_GAIN)
    return params
