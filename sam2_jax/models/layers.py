"""Small shared layers (<- sam2/modeling/sam2_utils.py: MLP, LayerNorm2d; torch LayerNorm, GELU).

All modules work on channels-last arrays. Parameters use the Flax names the checkpoint converter
expects (`kernel`/`bias` for Dense, `scale`/`bias` for norms); submodule names copy the official
attribute names, with list indices written as `<name>_<i>` (official `layers.0` -> `layers_0`).
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as torch `nn.GELU()`; jax.nn.gelu defaults to the tanh approximation."""
    return jax.nn.gelu(x, approximate=False)


def layer_norm(eps: float, name: str, dtype: Dtype = jnp.float32) -> nn.LayerNorm:
    """LayerNorm over the last axis with torch numerics (explicit eps, two-pass variance).

    Statistics are computed in fp32 whatever the compute dtype.
    """
    return nn.LayerNorm(
        epsilon=eps, use_fast_variance=False, dtype=jnp.float32, param_dtype=jnp.float32, name=name
    )


class LayerNorm2d(nn.Module):
    """Channel LayerNorm of `sam2_utils.LayerNorm2d` (eps 1e-6, biased variance), channels-last.

    Params `scale`/`bias` [C] (official `weight`/`bias`). Statistics in fp32.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., C] -> [..., C]."""
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        xf = x.astype(jnp.float32)
        u = jnp.mean(xf, axis=-1, keepdims=True)
        s = jnp.mean(jnp.square(xf - u), axis=-1, keepdims=True)
        y = (xf - u) / jnp.sqrt(s + self.eps)
        return (y * scale + bias).astype(x.dtype)


class MLP(nn.Module):
    """`sam2_utils.MLP`: `num_layers` Dense layers, activation between them, optional sigmoid.

    Submodules are `layers_0 ... layers_{num_layers-1}` (official `layers.{i}`).
    """

    hidden_dim: int
    output_dim: int
    num_layers: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    sigmoid_output: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., C_in] -> [..., output_dim]."""
        dims = [self.hidden_dim] * (self.num_layers - 1) + [self.output_dim]
        for i, d in enumerate(dims):
            x = nn.Dense(d, dtype=self.dtype, name=f"layers_{i}")(x)
            if i < self.num_layers - 1:
                x = self.activation(x)
        if self.sigmoid_output:
            x = jax.nn.sigmoid(x.astype(jnp.float32))
        return x
