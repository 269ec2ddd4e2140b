"""Build a SAM 2 model from a config name and an optional checkpoint (<- sam2/build_sam.py)."""

import dataclasses
import functools
from pathlib import Path
from typing import Any, Iterable, Optional

import jax
import jax.numpy as jnp
import ml_collections

from sam2_jax import config as config_lib
from sam2_jax.checkpoint.formats import load_params
from sam2_jax.models.sam2 import SAM2

# What the official builders switch on with apply_postprocessing=True (build_sam.py).
IMAGE_POSTPROCESSING = ("sam_mask_decoder_extra_args.dynamic_multimask_via_stability=True",)
# Params (always float32) depend on neither the image size nor the compute dtype: initialise at a
# small size in float32.
_INIT_IMAGE_SIZE = 128


@dataclasses.dataclass(frozen=True)
class SAM2Model:
    """A SAM 2 module with its params (`{"params": ...}`) and its frozen config."""

    module: SAM2
    params: Any
    config: ml_collections.FrozenConfigDict


def abstract_params(cfg: ml_collections.FrozenConfigDict) -> Any:
    """Shapes/dtypes of the param tree of `cfg` (no compute)."""
    return jax.eval_shape(functools.partial(_init, _init_config(cfg)), jax.random.key(0))


def init_params(cfg: ml_collections.FrozenConfigDict, seed: int = 0) -> Any:
    """Random params for `cfg` (fp32). Compiled once per config, whatever its image size and
    compute dtype."""
    return _init(_init_config(cfg), jax.random.key(seed))


def _init_config(cfg: ml_collections.FrozenConfigDict) -> ml_collections.FrozenConfigDict:
    small = ml_collections.ConfigDict(cfg.to_dict())
    small.image_size = _INIT_IMAGE_SIZE
    small.dtype = "float32"
    return ml_collections.FrozenConfigDict(small)


@functools.partial(jax.jit, static_argnums=0)
def _init(cfg: ml_collections.FrozenConfigDict, key: jax.Array) -> Any:
    images = jnp.zeros((1, cfg.image_size, cfg.image_size, 3), jnp.float32)
    return SAM2(cfg).init(key, images)["params"]


def build_sam2(
    config_name: str,
    ckpt_path: Optional[str | Path] = None,
    overrides: Iterable[str] = (),
    apply_postprocessing: bool = True,
    seed: int = 0,
) -> SAM2Model:
    """The SAM 2 image model, like the official `build_sam2`.

    `config_name`: an official name (`sam2.1_hiera_t`, ...) or a config file path;
    `ckpt_path`: an official `.pt` or a sam2-jax orbax directory (random weights from `seed` when
    None); `overrides`: `key=value` strings applied after the postprocessing settings.
    """
    extra = IMAGE_POSTPROCESSING if apply_postprocessing else ()
    cfg = config_lib.load(config_name, (*extra, *overrides))
    if ckpt_path is None:
        params = init_params(cfg, seed)
    else:
        params = load_params(ckpt_path, abstract_params(cfg), cfg.name)
    return SAM2Model(SAM2(cfg), {"params": params}, cfg)
