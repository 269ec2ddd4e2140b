"""Build a SAM 2 model from a config name and an optional checkpoint (<- sam2/build_sam.py)."""

import dataclasses
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
# Params do not depend on the image size: initialise at a small one.
_INIT_IMAGE_SIZE = 128


@dataclasses.dataclass(frozen=True)
class SAM2Model:
    """A SAM 2 module with its params (`{"params": ...}`) and its frozen config."""

    module: SAM2
    params: Any
    config: ml_collections.FrozenConfigDict


def abstract_params(cfg: ml_collections.FrozenConfigDict) -> Any:
    """Shapes/dtypes of the param tree of `cfg` (no compute)."""
    return jax.eval_shape(lambda: _init(cfg, jax.random.key(0)))


def _init(cfg: ml_collections.FrozenConfigDict, key: jax.Array) -> Any:
    small = ml_collections.ConfigDict(cfg.to_dict())
    small.image_size = _INIT_IMAGE_SIZE
    module = SAM2(ml_collections.FrozenConfigDict(small))
    images = jnp.zeros((1, _INIT_IMAGE_SIZE, _INIT_IMAGE_SIZE, 3), jnp.float32)
    return module.init(key, images)["params"]


def init_params(cfg: ml_collections.FrozenConfigDict, seed: int = 0) -> Any:
    """Random params for `cfg` (fp32)."""
    return jax.jit(lambda k: _init(cfg, k))(jax.random.key(seed))


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
