"""The memory bank: one fixed-shape pytree per video, batched over objects, and its pure rules.

(<- the lookups of `SAM2Base._prepare_memory_conditioned_features` and
`sam2_utils.select_closest_cond_frames`, over an explicit state instead of growing dicts.)

Slots, all with a leading object axis O:
- C conditioning (prompted) frames: memory features, pointer, frame index, validity;
- a ring of recent (non-conditioning) frame memories: the last `num_maskmem - 1` frames,
  slot = frame mod size; with an evaluation memory stride r > 1 the last `num_maskmem - 1`
  frames at multiples of r (slot = frame // r mod size) plus one slot for the previous frame;
- a ring of `max_obj_ptrs_in_encoder - 1` recent object pointers, slot = frame mod size.
Which slot is attended at frame t, and with which temporal encoding, is computed from the stored
frame indices, t, the direction d (+1 / -1) and the video length T, exactly as the official
lookup by frame index; empty or out-of-range slots are masked out of attention, never attended.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class MemoryBank:
    """Memory of O objects. HW = tokens per frame memory, D = mem_dim, C = hidden_dim.

    cond_feats [O, Nc, HW, D] (storage dtype), cond_ptr [O, Nc, C] f32, cond_frame [O, Nc] i32,
    cond_valid [O, Nc] bool; recent_feats [O, Nr, HW, D], recent_frame/valid [O, Nr];
    ptr [O, Np, C] f32, ptr_frame/valid [O, Np].
    """

    cond_feats: jax.Array
    cond_ptr: jax.Array
    cond_frame: jax.Array
    cond_valid: jax.Array
    recent_feats: jax.Array
    recent_frame: jax.Array
    recent_valid: jax.Array
    ptr: jax.Array
    ptr_frame: jax.Array
    ptr_valid: jax.Array

    @property
    def num_cond(self) -> int:
        return self.cond_frame.shape[1]


def capacity_bucket(n: int) -> int:
    """Smallest power of two >= n (>= 1): object and slot counts are padded to these, which
    bounds the number of compiled shapes."""
    return 1 << max(int(n) - 1, 0).bit_length()


def num_recent_slots(num_maskmem: int, stride: int) -> int:
    """Size of the recent-memory ring for memory stride `stride` (see the module docstring)."""
    if stride < 1:
        raise ValueError(f"memory_temporal_stride_for_eval must be >= 1, got {stride}")
    return num_maskmem - 1 + (stride > 1)


def clear_radius(num_maskmem: int, stride: int) -> int:
    """Distance in frames around a prompted frame within which `clear_non_cond_mem_around_input`
    drops tracked memories (official `_clear_obj_non_cond_mem_around_input`)."""
    return stride * num_maskmem


def recent_ring_slots(t: jax.Array, stride: int, num_recent: int) -> jax.Array:
    """[num_recent] bool: the ring slots that frame t's memory is written to."""
    slot = jnp.arange(num_recent)
    if stride == 1:
        return slot == t % num_recent
    aligned = (slot == (t // stride) % (num_recent - 1)) & (t % stride == 0)
    return aligned | (slot == num_recent - 1)


def empty_bank(
    num_objects: int,
    num_cond: int,
    num_recent: int,
    num_ptr: int,
    tokens: int,
    mem_dim: int,
    hidden_dim: int,
    dtype: Any = jnp.bfloat16,
) -> MemoryBank:
    """An all-empty bank (every slot invalid)."""
    o = num_objects

    def slots(n: int) -> tuple[jax.Array, jax.Array]:
        return jnp.full((o, n), -1, jnp.int32), jnp.zeros((o, n), bool)

    cf, cv = slots(num_cond)
    rf, rv = slots(num_recent)
    pf, pv = slots(num_ptr)
    return MemoryBank(
        cond_feats=jnp.zeros((o, num_cond, tokens, mem_dim), dtype),
        cond_ptr=jnp.zeros((o, num_cond, hidden_dim), jnp.float32),
        cond_frame=cf,
        cond_valid=cv,
        recent_feats=jnp.zeros((o, num_recent, tokens, mem_dim), dtype),
        recent_frame=rf,
        recent_valid=rv,
        ptr=jnp.zeros((o, num_ptr, hidden_dim), jnp.float32),
        ptr_frame=pf,
        ptr_valid=pv,
    )


def select_cond_frames(
    frames: jax.Array, valid: jax.Array, t: jax.Array, max_cond_frames: int
) -> jax.Array:
    """`select_closest_cond_frames` as a mask: frames/valid [O, Nc] -> selected [O, Nc].

    -1 (or at most `max_cond_frames` valid slots) selects all valid slots; otherwise the
    closest frame before t, the closest at or after t, then the rest by |frame - t| (ties by slot
    order, i.e. insertion order), up to `max_cond_frames`.
    """
    if max_cond_frames == -1:
        return valid
    if max_cond_frames < 2:
        raise ValueError(f"max_cond_frames_in_attn must be -1 or >= 2, got {max_cond_frames}")
    big = jnp.iinfo(jnp.int32).max
    before = valid & (frames < t)
    after = valid & (frames >= t)
    n = frames.shape[1]
    slot = jnp.arange(n)
    idx_before = jnp.argmax(jnp.where(before, frames, -big), axis=1)
    idx_after = jnp.argmin(jnp.where(after, frames, big), axis=1)
    chosen = ((slot == idx_before[:, None]) & before.any(1, keepdims=True)) | (
        (slot == idx_after[:, None]) & after.any(1, keepdims=True)
    )
    remain = max_cond_frames - chosen.sum(1, keepdims=True)
    # Rank the other valid slots by (distance, slot) and keep the first `remain`.
    key = jnp.where(valid & ~chosen, jnp.abs(frames - t) * n + slot, big)
    rank = jnp.argsort(jnp.argsort(key, axis=1), axis=1)
    extra = (key < big) & (rank < remain)
    selected = chosen | extra
    return jnp.where(valid.sum(1, keepdims=True) <= max_cond_frames, valid, selected)


class MemoryLayout(flax.struct.PyTreeNode):
    """Which bank slots frame t attends to, with their temporal positions.

    cond_tpos/recent_tpos [O, N] int: index into maskmem_tpos_enc (valid where *_use);
    cond_ptr_pos/ptr_pos [O, N] int: relative pointer positions (valid where *_ptr_use).
    """

    cond_use: jax.Array
    cond_tpos: jax.Array
    recent_use: jax.Array
    recent_tpos: jax.Array
    cond_ptr_use: jax.Array
    cond_ptr_pos: jax.Array
    ptr_use: jax.Array
    ptr_pos: jax.Array
    max_ptrs: jax.Array


def memory_layout(
    bank: MemoryBank,
    t: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
    *,
    num_maskmem: int,
    max_obj_ptrs: int,
    max_cond_frames: int,
    signed_ptr_pos: bool,
    only_past_ptrs: bool,
    stride: int = 1,
) -> MemoryLayout:
    """The official lookup at frame t (tracking direction d = +1 or -1, video length T).

    - Selected conditioning frames: spatial memory with tpos index num_maskmem - 1 (future ones
      too); pointers only at or before t in the direction when `only_past_ptrs` (eval rule),
      at position (t - c) * d if `signed_ptr_pos` else |t - c|.
    - The frames k = 1 .. num_maskmem - 1 steps back (k = 1: frame t - d; k >= 2: the
      (k - 2)-th multiple of `stride` back from the last one at or before t - 2d, i.e.
      t - d*k for stride 1), from the recent ring or unselected conditioning frames: spatial
      memory with tpos index k - 1.
    - Pointers of frames t - d*k, k = 1 .. min(T, max_obj_ptrs) - 1, inside [0, T): position k.
    """
    d = direction
    selected = select_cond_frames(bank.cond_frame, bank.cond_valid, t, max_cond_frames)
    unselected = bank.cond_valid & ~selected

    def back(frames: jax.Array) -> jax.Array:  # frames before t along the direction
        return (t - frames) * d

    max_ptrs = jnp.minimum(num_frames, max_obj_ptrs)
    in_video = lambda f: (f >= 0) & (f < num_frames)  # noqa: E731

    def recent_rule(frames: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(is frame t - d, is a strided frame k >= 2 steps back, tpos index) per slot."""
        previous = back(frames) == 1
        gap = jnp.floor_divide(d * t - 2, stride) * stride - d * frames
        strided = (gap >= 0) & (gap % stride == 0) & (gap <= (num_maskmem - 3) * stride)
        return previous, strided, jnp.where(previous, 0, gap // stride + 1)

    k_cond = back(bank.cond_frame)
    cond_previous, cond_strided, cond_recent_tpos = recent_rule(bank.cond_frame)
    cond_use = selected | (unselected & (cond_previous | cond_strided))
    cond_tpos = jnp.where(selected, num_maskmem - 1, cond_recent_tpos)

    previous, strided, recent_tpos = recent_rule(bank.recent_frame)
    if stride > 1:  # the last slot holds the previous frame, the others the strided ones
        last = jnp.arange(bank.recent_frame.shape[1]) == bank.recent_frame.shape[1] - 1
        previous, strided = previous & last, strided & ~last
    recent_use = bank.recent_valid & (previous | strided)

    past = (k_cond >= 0) if only_past_ptrs else jnp.ones_like(selected)
    sel_ptr = selected & past
    unsel_ptr = unselected & (k_cond >= 1) & (k_cond <= max_ptrs - 1) & in_video(bank.cond_frame)
    sel_pos = k_cond if signed_ptr_pos else jnp.abs(bank.cond_frame - t)
    cond_ptr_pos = jnp.where(selected, sel_pos, k_cond)

    k_ptr = back(bank.ptr_frame)
    ptr_use = bank.ptr_valid & (k_ptr >= 1) & (k_ptr <= max_ptrs - 1) & in_video(bank.ptr_frame)
    return MemoryLayout(
        cond_use=cond_use,
        cond_tpos=cond_tpos,
        recent_use=recent_use,
        recent_tpos=recent_tpos,
        cond_ptr_use=sel_ptr | unsel_ptr,
        cond_ptr_pos=cond_ptr_pos,
        ptr_use=ptr_use,
        ptr_pos=k_ptr,
        max_ptrs=max_ptrs,
    )


def write_frame(
    bank: MemoryBank,
    t: jax.Array,
    feats: jax.Array,
    obj_ptr: jax.Array,
    as_cond: jax.Array,
    write: jax.Array,
    stride: int = 1,
) -> MemoryBank:
    """Store frame t's memory for the objects where `write` [O] holds.

    feats [O, HW, D]; obj_ptr [O, C]; as_cond [O]: into a conditioning slot (the slot already
    holding frame t, else the first free one; the caller guarantees one is free), otherwise into
    the recent memory ring (`recent_ring_slots`) and the pointer ring (slot t mod size).
    """
    feats = feats.astype(bank.cond_feats.dtype)

    def put(slots_feats, slot_onehot, new):  # slot_onehot [O, N] selects where to write
        return jnp.where(
            slot_onehot.reshape(slot_onehot.shape + (1,) * (new.ndim - 1)),
            new[:, None],
            slots_feats,
        )

    # Conditioning slot: same frame first, else first free.
    same = bank.cond_valid & (bank.cond_frame == t)
    free = ~bank.cond_valid
    target = jnp.where(same.any(1), jnp.argmax(same, 1), jnp.argmax(free, 1))
    cond_hot = (jnp.arange(bank.num_cond) == target[:, None]) & (write & as_cond)[:, None]
    cond_hot = cond_hot & (same.any(1) | free.any(1))[:, None]

    n_rec = bank.recent_frame.shape[1]
    rec_hot = recent_ring_slots(t, stride, n_rec)[None, :] & (write & ~as_cond)[:, None]
    n_ptr = bank.ptr_frame.shape[1]
    ptr_hot = (jnp.arange(n_ptr) == t % n_ptr)[None, :] & (write & ~as_cond)[:, None]
    tt = jnp.asarray(t, jnp.int32)
    return bank.replace(
        cond_feats=put(bank.cond_feats, cond_hot, feats),
        cond_ptr=put(bank.cond_ptr, cond_hot, obj_ptr),
        cond_frame=jnp.where(cond_hot, tt, bank.cond_frame),
        cond_valid=bank.cond_valid | cond_hot,
        recent_feats=put(bank.recent_feats, rec_hot, feats),
        recent_frame=jnp.where(rec_hot, tt, bank.recent_frame),
        recent_valid=bank.recent_valid | rec_hot,
        ptr=put(bank.ptr, ptr_hot, obj_ptr),
        ptr_frame=jnp.where(ptr_hot, tt, bank.ptr_frame),
        ptr_valid=bank.ptr_valid | ptr_hot,
    )


def forget_recent(bank: MemoryBank, t: jax.Array, radius: int, forget: jax.Array) -> MemoryBank:
    """Drop the recent memories and pointers of frames within `radius` of frame t for the
    objects where `forget` [O] holds (the official `clear_non_cond_mem_around_input`)."""
    near = lambda frames: forget[:, None] & (jnp.abs(frames - t) <= radius)  # noqa: E731
    return bank.replace(
        recent_valid=bank.recent_valid & ~near(bank.recent_frame),
        ptr_valid=bank.ptr_valid & ~near(bank.ptr_frame),
    )
