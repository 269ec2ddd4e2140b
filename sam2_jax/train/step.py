"""One training step (<- the forward / loss / backward / clip / step of
`training/trainer.py::Trainer._run_step` and `_step`), jitted as one XLA program.

The state is an explicit pytree (step, params, optimizer state, rng key); everything a step
needs besides it is static (the module, the optimizer, the loss settings). A non-finite loss or
gradient norm never reaches the parameters: the update is skipped and the metrics say so
(`train.py` stops or goes on, per its `nan_policy`). Frozen modules (top-level param subtrees)
get no gradient (their backward is not computed) and no update, weight decay included.
"""

import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from sam2_jax.models.sam2 import SAM2
from sam2_jax.train.forward import TrainBatch
from sam2_jax.train.losses import LossConfig
from sam2_jax.train.objective import batch_loss
from sam2_jax.train.optimizer import global_grad_norm
from sam2_jax.train.prompts import PromptPlan, split_objects


class TrainState(flax.struct.PyTreeNode):
    """step [] int32; params (the "params" collection, fp32); opt_state; key [2] uint32 (raw
    PRNG key data, so that it checkpoints as a plain array)."""

    step: jax.Array
    params: Any
    opt_state: Any
    key: jax.Array


def init_state(params: Any, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """The state before step 0. Every leaf is its own buffer (optimizer states may share
    arrays, and a donated state must not hold one buffer twice)."""
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        key=jax.random.key_data(jax.random.key(seed)),
    )
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def train_step(
    module: SAM2,
    tx: optax.GradientTransformation,
    loss_config: LossConfig,
    max_cond_frames: int,
    state: TrainState,
    batch: TrainBatch,
    plan: PromptPlan,
    accum_steps: int = 1,
    frozen: tuple[str, ...] = (),
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Forward, loss, backward and optimizer update of one batch.

    `accum_steps` > 1: the batch is cut into that many micro-batches of whole clips (clips i,
    i + accum_steps, ...), run one after the other (`lax.scan`: one micro-batch's activations
    live at a time); the update uses the mean of their gradients and the metrics the mean of
    their losses (the full batch's when the micro-batches have the same number of objects).
    `frozen`: top-level modules of the params (e.g. "image_encoder") that keep their values.

    Returns the new state and scalar metrics: the loss terms, `grad_norm` (before clipping),
    `finite` (False: the update was skipped, the state only advanced its step).
    """
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)

    def loss_fn(params, batch, plan, key):
        params = {k: jax.lax.stop_gradient(v) if k in frozen else v for k, v in params.items()}
        return batch_loss(
            module, {"params": params}, batch, plan, key, max_cond_frames, loss_config
        )

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if accum_steps == 1:
        (loss, terms), grads = grad_fn(state.params, batch, plan, key)
    else:
        (loss, terms), grads = _accumulate(grad_fn, state.params, batch, plan, key, accum_steps)
    grad_norm = global_grad_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updates = {k: jax.tree.map(jnp.zeros_like, v) if k in frozen else v for k, v in updates.items()}
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    new_state = state.replace(
        step=state.step + 1,
        params=jax.tree.map(keep, params, state.params),
        opt_state=jax.tree.map(keep, opt_state, state.opt_state),
    )
    return new_state, {**terms, "grad_norm": grad_norm, "finite": finite}


def _accumulate(grad_fn, params, batch: TrainBatch, plan: PromptPlan, key, parts: int):
    """((mean loss, mean terms), mean grads) of `grad_fn` over `parts` micro-batches."""
    clips = batch.images.shape[0]
    if clips % parts:
        raise ValueError(f"{clips} clips do not split into {parts} micro-batches")
    micro = jax.tree.map(lambda x: x.reshape(-1, parts, *x.shape[1:]).swapaxes(0, 1), batch)
    xs = (micro, split_objects(plan, parts, clips), jnp.arange(parts))

    def one(total, x):
        b, p, i = x
        out = grad_fn(params, b, p, jax.random.fold_in(key, i))
        return jax.tree.map(jnp.add, total, out), None

    zero = jax.eval_shape(grad_fn, params, *jax.tree.map(lambda x: x[0], xs[:2]), key)
    zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zero)
    total, _ = jax.lax.scan(one, zero, xs)
    return jax.tree.map(lambda x: x / parts, total)


def jit_train_step(
    module: SAM2,
    tx: optax.GradientTransformation,
    loss_config: LossConfig,
    max_cond_frames: int,
    state_sharding: Any = None,
    batch_sharding: Any = None,
    accum_steps: int = 1,
    frozen: tuple[str, ...] = (),
) -> Callable[[TrainState, TrainBatch, PromptPlan], tuple[TrainState, dict[str, jax.Array]]]:
    """`train_step` jitted with the state donated (and shardings, when given)."""
    fn = functools.partial(
        train_step, module, tx, loss_config, max_cond_frames, accum_steps=accum_steps,
        frozen=tuple(frozen),
    )  # fmt: skip
    if state_sharding is None:
        return jax.jit(fn, donate_argnums=(0,))
    return jax.jit(
        fn,
        in_shardings=(state_sharding, batch_sharding, None),
        out_shardings=(state_sharding, None),
        donate_argnums=(0,),
    )
