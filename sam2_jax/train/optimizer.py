"""The SAM 2 fine-tune optimizer: AdamW with the official param groups, as one optax transform.

Counterparts: `training/optimizer.py` of the official trainer (`construct_optimizer`,
`layer_decay_param_modifier`, `GradientClipper`, `Optimizer.step_schedulers`), the `optim`
section of `sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml`, fvcore's
`CosineParamScheduler`, `torch.optim.AdamW` and `torch.nn.utils.clip_grad_norm_`.

Per parameter (our tree path; `L` = number of trunk blocks, `blocks_0..blocks_{L-1}`):
- group lr: `image_encoder/*` ("vision") cosine `vision_lr -> vision_lr_end`, everything else
  cosine `base_lr -> base_lr_end` (`learning_rate`);
- lr scale (`lr_scales`, the official `layer_decay_param_modifier` with `apply_to=
  'image_encoder.trunk'` and the override `*pos_embed*` -> 1.0): `layer_decay ** (L + 1 - id)`
  with id 0 for `patch_embed`, k + 1 for `blocks_k`, L + 1 for anything else in the trunk;
  `pos_embed` and `pos_embed_window` 1.0; every param outside the trunk (the neck included) 1.0;
- weight decay (`weight_decays`): 0.0 for names containing `bias` (the official `*bias*`) and
  for the `scale` of modules that are `torch.nn.LayerNorm` in the official model; `weight_decay`
  otherwise (LayerNorm2d scales, `gamma`, embeddings, `pos_embed`, `no_*` tokens included).

Our tree also stores an official *buffer*, the prompt encoder's
`pe_layer/positional_encoding_gaussian_matrix`, which the official trainer never updates: its
gradient is zeroed before clipping (so it is not in the clipped norm either), its lr scale and
weight decay are 0.

The step (`make_optimizer`), as the official trainer does it:
1. clip: g *= min(1, grad_clip_norm / (||g||_2 + 1e-6)), the global L2 norm over all trainable
   leaves (`clip_by_global_norm_torch`; `GradientClipper` = `clip_grad_norm_`);
2. `adamw_torch`: Adam moments with bias correction (torch defaults b1 0.9, b2 0.999, eps 1e-8
   added to sqrt(v_hat)) and decoupled weight decay as torch AdamW: p <- p (1 - lr wd) - lr
   m_hat / (sqrt(v_hat) + eps), i.e. the update -lr (adam + wd p) with p the params *before* the
   step, lr = group lr of the step * lr scale of the leaf; a leaf without a gradient is skipped
   as torch skips a parameter whose `.grad` is None.

Schedules are evaluated at where = step / total_steps, step = number of updates already applied
(0 for the first). Once where >= 1 the official trainer skips the *scheduler* update (the
parameter update still happens with the last lr), so steps >= total_steps keep the lr of step
total_steps - 1. The fine-tune recipe has no warmup; `warmup_steps > 0` multiplies the cosine by
min(1, (step + 1) / warmup_steps).

The training step logs the pre-clip gradient norm as `global_grad_norm(grads)`.
"""

import dataclasses
import fnmatch
import math
import re
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

# `scheduler_cfgs` of the fine-tune YAML: `image_encoder.*` gets the vision lr schedule.
_VISION_PREFIX = ("image_encoder",)
# `layer_decay_param_modifier(apply_to='image_encoder.trunk', overrides=[*pos_embed* -> 1.0])`.
_TRUNK_PREFIX = ("image_encoder", "trunk")
_LAYER_DECAY_OVERRIDES = (("*pos_embed*", 1.0),)
# Official buffers that our param tree holds: never trained.
_FROZEN = (("sam_prompt_encoder", "pe_layer", "positional_encoding_gaussian_matrix"),)
# Modules that are `sam2_utils.LayerNorm2d` (not `torch.nn.LayerNorm`) in the official model:
# their `scale` keeps the default weight decay. Every other `scale` is a torch LayerNorm weight.
_LAYER_NORM_2D = re.compile(
    r"(^|/)(mask_downsampler/encoder_\d+|fuser/layers_\d+/norm|mask_downscaling_\d+"
    r"|output_upscaling_\d+)$"
)
_BLOCK = re.compile(r"blocks_(\d+)")
# torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6).
_TORCH_CLIP_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Hyper-parameters of the fine-tune recipe (defaults: sam2.1_hiera_b+_MOSE_finetune.yaml)."""

    base_lr: float = 5e-6
    base_lr_end: float = 5e-7
    vision_lr: float = 3e-6
    vision_lr_end: float = 3e-7
    layer_decay: float = 0.9
    weight_decay: float = 0.1
    grad_clip_norm: float = 0.1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    warmup_steps: int = 0


def _path_names(path: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _map_with_names(fn: Callable[[tuple[str, ...]], Any], params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(lambda p, _: fn(_path_names(p)), params)


def _num_trunk_blocks(params: Any) -> int:
    try:
        trunk = params[_TRUNK_PREFIX[0]][_TRUNK_PREFIX[1]]
    except (KeyError, TypeError) as e:
        raise ValueError("params have no image_encoder/trunk: not a SAM 2 param tree") from e
    ids = [int(m.group(1)) for k in trunk if (m := _BLOCK.fullmatch(str(k)))]
    if not ids or sorted(ids) != list(range(len(ids))):
        raise ValueError(f"image_encoder/trunk blocks are not blocks_0..blocks_n-1: {sorted(ids)}")
    return len(ids)


def _is_frozen(names: tuple[str, ...]) -> bool:
    return names in _FROZEN


def _trunk_lr_scale(names: tuple[str, ...], num_blocks: int, decay: float) -> float:
    """`layer_decay_param_modifier` for one trunk param (names below image_encoder/trunk)."""
    name = "/".join(names)
    for pattern, value in _LAYER_DECAY_OVERRIDES:
        if fnmatch.fnmatchcase(name, pattern):
            return value
    # Hiera.get_layer_id (with get_num_layers() = num_blocks).
    if "rel_pos" in name:
        layer_id = num_blocks + 1
    elif "pos_embed" in name or "patch_embed" in name:
        layer_id = 0
    elif m := _BLOCK.search(name):
        layer_id = int(m.group(1)) + 1
    else:
        layer_id = num_blocks + 1
    # The modifier's num_layers = get_num_layers() + 1; same float expression as the official.
    return decay ** (num_blocks + 1 - layer_id)


def lr_scales(params: Any, layer_decay: float = OptimizerConfig.layer_decay) -> Any:
    """Per-leaf lr multiplier (python floats, same tree as `params`): the layer decay over
    image_encoder/trunk, 1.0 elsewhere, 0.0 for the frozen official buffer."""
    num_blocks = _num_trunk_blocks(params)

    def scale(names: tuple[str, ...]) -> float:
        if _is_frozen(names):
            return 0.0
        if names[: len(_TRUNK_PREFIX)] == _TRUNK_PREFIX:
            return _trunk_lr_scale(names[len(_TRUNK_PREFIX) :], num_blocks, layer_decay)
        return 1.0

    return _map_with_names(scale, params)


def weight_decays(params: Any, weight_decay: float = OptimizerConfig.weight_decay) -> Any:
    """Per-leaf weight decay (python floats, same tree as `params`): 0.0 for `*bias*` names,
    torch.nn.LayerNorm scales and the frozen official buffer, `weight_decay` otherwise."""

    def decay(names: tuple[str, ...]) -> float:
        module, leaf = "/".join(names[:-1]), names[-1]
        layer_norm = leaf == "scale" and not _LAYER_NORM_2D.search(module)
        if _is_frozen(names) or "bias" in "/".join(names) or layer_norm:
            return 0.0
        return weight_decay

    return _map_with_names(decay, params)


def trainable(params: Any) -> Any:
    """Per-leaf bool (same tree as `params`): False for official buffers stored as params."""
    return _map_with_names(lambda names: not _is_frozen(names), params)


def global_grad_norm(grads: Any) -> jax.Array:
    """[] f32: the L2 norm over all trainable leaves of `grads` (a tree like the params), i.e.
    the pre-clip norm that the optimizer clips (and that the official trainer clips)."""
    mask = trainable(grads)
    kept = jax.tree.map(lambda g, m: g if m else jnp.zeros((), g.dtype), grads, mask)
    return optax.tree.norm(kept)


def learning_rate(
    step: jax.Array | int, total_steps: int, config: OptimizerConfig, vision: bool
) -> jax.Array:
    """[] f32: the group lr (before the per-leaf scale) for the update at `step` (0-based).

    fvcore CosineParamScheduler at where = min(step, total_steps - 1) / total_steps:
    end + (start - end) * (1 + cos(pi where)) / 2, written as cos^2(pi where / 2) (same value,
    no cancellation in f32 near where = 1); times min(1, (step + 1) / warmup_steps) if warmup.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    start, end = (
        (config.vision_lr, config.vision_lr_end) if vision else (config.base_lr, config.base_lr_end)
    )
    step = jnp.minimum(jnp.asarray(step, jnp.int32), total_steps - 1)
    where = step.astype(jnp.float32) / total_steps
    lr = end + (start - end) * jnp.square(jnp.cos(jnp.pi * where / 2))
    if config.warmup_steps > 0:
        lr = lr * jnp.minimum(1.0, (step + 1).astype(jnp.float32) / config.warmup_steps)
    return lr


def clip_by_global_norm_torch(max_norm: float) -> optax.GradientTransformation:
    """`torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2)`: every leaf times
    min(1, max_norm / (global L2 norm + 1e-6)). `optax.clip_by_global_norm` has no 1e-6."""

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        coef = jnp.minimum(1.0, max_norm / (optax.tree.norm(updates) + _TORCH_CLIP_EPS))
        return jax.tree.map(lambda g: g * coef.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


class AdamWState(NamedTuple):
    """count [] int32: updates applied (the schedules' step); steps: per-leaf [] int32, the
    updates that leaf took part in (torch's per-parameter `state["step"]`); mu, nu: the Adam
    moments (trees like the params)."""

    count: jax.Array
    steps: Any
    mu: Any
    nu: Any


def adamw_torch(
    params: Any, config: OptimizerConfig, total_steps: int
) -> optax.GradientTransformation:
    """`torch.optim.AdamW` with the official groups: g -> -lr (m_hat / (sqrt(v_hat) + eps) +
    wd p), lr = group schedule at the step times the leaf's scale, wd the leaf's decay.

    As torch, a leaf without a gradient (a parameter the forward did not use, e.g. the box
    corner embeddings in a batch without boxes; here: an all-zero gradient) is not touched at
    all: no moment decay, no weight decay, its own step count (bias correction) stays.
    `optax.scale_by_adam` computes the bias corrections 1 - b^t in f32 from b rounded to f32:
    1 - f32(0.999) is 1.3e-5 off 1e-3, so the first updates differ from torch's (python
    doubles) by ~6e-6 relative. Here 1 - b^t = -expm1(t log b) with log b taken in double.
    """
    scales = lr_scales(params, config.layer_decay)
    decays = weight_decays(params, config.weight_decay)
    vision = _map_with_names(lambda n: n[: len(_VISION_PREFIX)] == _VISION_PREFIX, params)
    b1, b2, eps = config.b1, config.b2, config.eps
    log_b1, log_b2 = math.log(b1), math.log(b2)

    def init_fn(params: Any) -> AdamWState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        steps = jax.tree.map(lambda _: jnp.zeros([], jnp.int32), params)
        return AdamWState(jnp.zeros([], jnp.int32), steps, zeros, zeros)

    def update_fn(updates: Any, state: AdamWState, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError("the SAM 2 optimizer needs params in update() (weight decay)")
        group_lr = {v: learning_rate(state.count, total_steps, config, v) for v in (False, True)}

        def leaf(g, p, step, m, v, scale: float, wd: float, vis: bool):
            used = jnp.any(g != 0)
            step = step + used.astype(step.dtype)
            m_new, v_new = m + (1 - b1) * (g - m), b2 * v + (1 - b2) * g * g
            t = step.astype(jnp.float32)
            bc1, bc2 = -jnp.expm1(t * log_b1), -jnp.expm1(t * log_b2)
            direction = (m_new / bc1) / (jnp.sqrt(v_new / bc2) + eps)
            update = -group_lr[vis] * scale * (direction + wd * p)
            return (
                jnp.where(used, update, 0).astype(g.dtype),
                step,
                jnp.where(used, m_new, m),
                jnp.where(used, v_new, v),
            )

        out = jax.tree.map(
            leaf, updates, params, state.steps, state.mu, state.nu, scales, decays, vision
        )
        pick = lambda i: jax.tree.map(lambda _, o: o[i], updates, out)  # noqa: E731
        new_state = AdamWState(optax.safe_increment(state.count), pick(1), pick(2), pick(3))
        return pick(0), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(
    params: Any, config: OptimizerConfig, total_steps: int
) -> optax.GradientTransformation:
    """The fine-tune AdamW for a SAM 2 param tree (the "params" collection).

    `update(grads, state, params)` needs `params`; apply with `optax.apply_updates`. Frozen
    official buffers get zero gradients first (so they are never updated), then torch-style
    global-norm clipping and `adamw_torch` (see the module docstring).
    """
    frozen = jax.tree.map(lambda t: not t, trainable(params))
    return optax.chain(
        optax.masked(optax.set_to_zero(), frozen),
        clip_by_global_norm_torch(config.grad_clip_norm),
        adamw_torch(params, config, total_steps),
    )
