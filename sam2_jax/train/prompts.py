"""Prompt simulation for training (<- `training/model/sam2.py::SAM2Train.prepare_prompt_inputs`,
`_iter_correct_pt_sampling`, `sam2/modeling/sam2_utils.py::sample_box_points`,
`sample_random_points_from_errors`, `sam2/utils/misc.py::mask_to_box`).

The decisions the official takes once per batch with its own `np.random.default_rng` (mask or
point input, which and how many initial conditioning frames, which frames get correction clicks,
the per-click coin "sample from the ground truth") are drawn here on the host in the same order,
so the same generator gives the same plan. The initial click or box of each object is drawn from
its ground-truth mask on the host; the correction clicks depend on the predictions and are drawn
inside the jitted step (`sample_error_points`), unless given explicitly (`PromptPlan.correction_*`,
used to replay the official trainer's clicks in parity tests).
"""

import dataclasses
from typing import Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

PAD_LABEL = -1
BOX_LABELS = (2, 3)


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    """`SAM2Train` training settings; defaults from sam2.1_hiera_b+_MOSE_finetune.yaml."""

    prob_to_use_pt_input: float = 0.5
    prob_to_use_box_input: float = 0.5
    num_init_cond_frames: int = 2
    rand_init_cond_frames: bool = True
    num_frames_to_correct: int = 2
    rand_frames_to_correct: bool = True
    num_correction_pt_per_frame: int = 7
    prob_to_sample_from_gt: float = 0.1
    add_all_frames_to_correct_as_cond: bool = True

    def max_cond_frames(self, num_frames: int) -> int:
        """An upper bound of the conditioning frames of a clip (the bank's capacity)."""
        n = self.num_init_cond_frames
        if self.add_all_frames_to_correct_as_cond:
            n = max(n, self.num_frames_to_correct)
        return max(1, min(n, num_frames))


class PromptPlan(flax.struct.PyTreeNode):
    """The prompts of one batch (T frames, N objects, C correction clicks per corrected frame).

    order [T] int32: processing order (initial conditioning frames first, then the others);
    is_init_cond, correct, as_cond [T] bool: per frame (shared by all objects, as official);
    use_points [] bool: point/box input on the initial conditioning frames (else their masks);
    point_coords [T, N, 2, 2] f32 (input-image pixels) / point_labels [T, N, 2] int32: each
    initial conditioning frame's click (one point, one -1 pad) or box (labels 2, 3);
    sample_from_gt [T, C] bool: correction click c of frame t is drawn from the ground truth only;
    correction_coords [T, C, N, 2] / correction_labels [T, C, N]: explicit correction clicks, or
    None to draw them from the errors in the step.
    """

    order: jax.Array
    is_init_cond: jax.Array
    correct: jax.Array
    as_cond: jax.Array
    use_points: jax.Array
    point_coords: jax.Array
    point_labels: jax.Array
    sample_from_gt: jax.Array
    correction_coords: Optional[jax.Array] = None
    correction_labels: Optional[jax.Array] = None


def split_objects(plan: PromptPlan, parts: int, num_clips: int) -> PromptPlan:
    """The plans of `parts` micro-batches of a batch of `num_clips` clips, micro-batch i holding
    the clips i, i + parts, ... (so that a batch sharded over devices by clips stays balanced);
    objects are clip-major. The per-object fields get a leading [parts] axis, the per-frame
    fields are repeated. For gradient accumulation (`train_step`)."""
    object_axis = {"point_coords": 1, "point_labels": 1, "correction_coords": 2,
                   "correction_labels": 2}  # fmt: skip

    def split(name: str, x):
        if x is None:
            return None
        x = jnp.asarray(x)
        if name not in object_axis:
            return jnp.broadcast_to(x, (parts, *x.shape))
        axis = object_axis[name]
        shape = x.shape[:axis], x.shape[axis + 1 :]
        x = x.reshape(*shape[0], num_clips // parts, parts, -1, *shape[1])
        x = jnp.moveaxis(x, axis + 1, 0)
        return x.reshape(parts, *shape[0], -1, *shape[1])

    return plan.replace(**{f.name: split(f.name, getattr(plan, f.name))
                           for f in dataclasses.fields(plan)})  # fmt: skip


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """[H, W] bool -> [4] int (x0, y0, x1, y1), inclusive extremes; (W, H, -1, -1) when empty."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.array([w, h, -1, -1])
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()])


def sample_box(mask: np.ndarray, rng: np.random.Generator, noise: float = 0.1, bound: float = 20):
    """A noisy box of `mask` [H, W] as two corner points [2, 2] (x, y) with labels (2, 3)."""
    h, w = mask.shape
    box = mask_to_box(mask).astype(np.float32)
    max_dx = np.minimum((box[2] - box[0]) * noise, bound)
    max_dy = np.minimum((box[3] - box[1]) * noise, bound)
    jitter = (2 * rng.random(4, dtype=np.float32) - 1) * np.array([max_dx, max_dy, max_dx, max_dy])
    box = np.clip(box + jitter, 0, np.array([w, h, w, h], np.float32) - 1)
    return box.reshape(2, 2), np.array(BOX_LABELS, np.int32)


def sample_point(gt: np.ndarray, pred: Optional[np.ndarray], rng: np.random.Generator):
    """One click drawn uniformly from the error region (`sample_random_points_from_errors`,
    one point): [2] (x, y) and its label (1 in a missed region, 0 in a false one; a negative
    click in the background when the prediction is exact)."""
    pred = np.zeros_like(gt) if pred is None else pred
    exact = np.array_equal(gt, pred)
    noise = rng.random((*gt.shape, 2), dtype=np.float32)
    noise[..., 0] *= (~gt & pred) | (exact & ~gt)
    noise[..., 1] *= gt & ~pred
    index = int(np.argmax(noise.reshape(-1)))
    label, pixel = index % 2, index // 2
    return np.array([pixel % gt.shape[1], pixel // gt.shape[1]], np.float32), label


def sample_error_points(
    key: jax.Array, gt: jax.Array, pred: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """`sample_random_points_from_errors` in JAX: gt, pred [N, H, W] bool -> points [N, 2]
    (x, y) f32 and labels [N] int32, one per object."""
    n, h, w = gt.shape
    exact = jnp.all(gt == pred, axis=(1, 2), keepdims=True)
    noise = jax.random.uniform(key, (n, h, w, 2))
    weight = jnp.stack([(~gt & pred) | (exact & ~gt), gt & ~pred], axis=-1)
    index = jnp.argmax((noise * weight).reshape(n, -1), axis=1)
    label, pixel = index % 2, index // 2
    points = jnp.stack([pixel % w, pixel // w], axis=1).astype(jnp.float32)
    return points, label.astype(jnp.int32)


def sample_plan(
    rng: np.random.Generator,
    point_rng: np.random.Generator,
    gt_masks: np.ndarray,
    config: PromptConfig,
    training: bool = True,
) -> PromptPlan:
    """The prompts of a batch from its ground truth `gt_masks` [T, N, H, W] bool.

    Decisions come from `rng` in the order of `SAM2Train.prepare_prompt_inputs`, then the
    per-click ground-truth coins in processing order (the official draws them from the same
    generator while tracking); clicks and box noise from `point_rng` (the official uses torch's
    generator for those). Single-frame clips use one point or box input with one corrected frame.
    """
    num_frames, num_objects = gt_masks.shape[:2]
    p_points, n_init, n_correct = (
        config.prob_to_use_pt_input,
        config.num_init_cond_frames,
        config.num_frames_to_correct,
    )
    if num_frames == 1:
        p_points, n_init, n_correct = 1.0, 1, 1
    use_points = rng.random() < p_points
    if config.rand_init_cond_frames and n_init > 1:
        n_init = int(rng.integers(1, n_init, endpoint=True))
    if use_points and config.rand_frames_to_correct and n_correct > n_init:
        n_correct = int(rng.integers(n_init, n_correct, endpoint=True))
    init = [0]
    if n_init > 1:
        init += rng.choice(range(1, num_frames), n_init - 1, replace=False).tolist()
    rest = [t for t in range(num_frames) if t not in init]
    coords = np.zeros((num_frames, num_objects, 2, 2), np.float32)
    labels = np.full((num_frames, num_objects, 2), PAD_LABEL, np.int32)
    if use_points:
        for t in init:
            use_box = rng.random() < config.prob_to_use_box_input
            for n in range(num_objects):
                if use_box:
                    coords[t, n], labels[t, n] = sample_box(gt_masks[t, n], point_rng)
                else:
                    point = sample_point(gt_masks[t, n], None, point_rng)
                    coords[t, n, 0], labels[t, n, 0] = point
    corrected = []
    if use_points:
        corrected = list(init)
        if n_correct > n_init:
            corrected += rng.choice(rest, n_correct - n_init, replace=False).tolist()
    order = init + rest
    num_clicks = config.num_correction_pt_per_frame
    from_gt = np.zeros((num_frames, num_clicks), bool)
    if training and config.prob_to_sample_from_gt > 0:
        for t in (t for t in order if t in corrected):
            from_gt[t] = [rng.random() < config.prob_to_sample_from_gt for _ in range(num_clicks)]
    frames = np.arange(num_frames)
    correct = np.isin(frames, corrected)
    is_init = np.isin(frames, init)
    return PromptPlan(
        order=np.array(order, np.int32),
        is_init_cond=is_init,
        correct=correct,
        as_cond=is_init | (correct & config.add_all_frames_to_correct_as_cond),
        use_points=np.asarray(use_points),
        point_coords=coords,
        point_labels=labels,
        sample_from_gt=from_gt,
    )
