"""Memory bank rules: the official conditioning-frame selection and lookup, as masks."""

import jax.numpy as jnp
import numpy as np
from oracle import build_official, save_official_checkpoint
from sam2.modeling.sam2_utils import select_closest_cond_frames
from video_scenarios import (
    BEDROOM_HEIGHT,
    BEDROOM_WIDTH,
    Points,
    Propagate,
    copy_frames,
    patch_bf16_memory_storage,
    run_scenario,
    torch_num_threads,
)

from sam2_jax.memory_bank import empty_bank, memory_layout, select_cond_frames, write_frame
from sam2_jax.predictors.video import build_sam2_video_predictor


def _select(frames, t, limit):
    slots = np.full(8, -1)
    slots[: len(frames)] = frames
    valid = np.arange(8) < len(frames)
    mask = select_cond_frames(jnp.asarray(slots)[None], jnp.asarray(valid)[None], t, limit)
    return sorted(int(f) for f in slots[np.asarray(mask[0])])


def test_select_cond_frames_matches_official():
    assert _select([0, 18, 19, 100], 20, 2) == [19, 100]  # not simply the 2 closest
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 8))
        frames = sorted(rng.choice(60, n, replace=False).tolist())
        frames = list(rng.permutation(frames))  # insertion order
        t, limit = int(rng.integers(0, 60)), int(rng.choice([-1, 2, 3, 4]))
        ref, _ = select_closest_cond_frames(t, {f: None for f in frames}, limit)
        assert _select(frames, t, limit) == sorted(ref), (frames, t, limit)


def test_memory_layout_lookup():
    """Frame 10 forward: conditioning frame 4; ring holds frames 3..9 (3 is out of the window)."""
    bank = empty_bank(1, 2, 6, 15, 4, 8, 16)
    feats, ptr = jnp.zeros((1, 4, 8)), jnp.zeros((1, 16))
    bank = write_frame(bank, 4, feats, ptr, jnp.array([True]), jnp.array([True]))
    for f in (3, 5, 6, 7, 8, 9):
        bank = write_frame(bank, f, feats, ptr, jnp.array([False]), jnp.array([True]))
    lay = memory_layout(
        bank,
        jnp.int32(10),
        jnp.int32(30),
        jnp.int32(1),
        num_maskmem=7,
        max_obj_ptrs=16,
        max_cond_frames=-1,
        signed_ptr_pos=True,
        only_past_ptrs=True,
    )
    used = {
        int(f): int(p)
        for f, u, p in zip(bank.recent_frame[0], lay.recent_use[0], lay.recent_tpos[0])
        if u
    }
    assert used == {5: 4, 6: 3, 7: 2, 8: 1, 9: 0}  # frame 3 left the 6-frame window
    assert bool(lay.cond_use[0, 0]) and int(lay.cond_tpos[0, 0]) == 6
    assert int(lay.cond_ptr_pos[0, 0]) == 6 and bool(lay.cond_ptr_use[0, 0])
    ptrs = {
        int(f): int(p) for f, u, p in zip(bank.ptr_frame[0], lay.ptr_use[0], lay.ptr_pos[0]) if u
    }
    assert ptrs == {3: 7, 5: 5, 6: 4, 7: 3, 8: 2, 9: 1}
    # Reverse from frame 2: the conditioning frame 4 is in the past; ring frames are ahead
    # (frame 3 shared ring slot 3 with frame 9, which replaced it).
    lay = memory_layout(
        bank,
        jnp.int32(2),
        jnp.int32(30),
        jnp.int32(-1),
        num_maskmem=7,
        max_obj_ptrs=16,
        max_cond_frames=-1,
        signed_ptr_pos=True,
        only_past_ptrs=True,
    )
    assert int(lay.cond_ptr_pos[0, 0]) == 2 and bool(lay.cond_ptr_use[0, 0])
    assert {int(f) for f, u in zip(bank.recent_frame[0], lay.recent_use[0]) if u} == {5, 6, 7, 8}


def test_limited_conditioning_frames_match_official(tmp_path):
    """max_cond_frames_in_attn=2 with 3 prompted frames: unselected ones act as recent memory."""
    extra = ("++model.max_cond_frames_in_attn=2",)
    official = build_official(
        "sam2.1_hiera_t",
        image_size=128,
        seed=4,
        video=True,
        apply_postprocessing=False,
        extra_overrides=extra,
    )
    official.fill_hole_area = 0
    patch_bf16_memory_storage(official)
    save_official_checkpoint(official, tmp_path / "t.pt")
    ours = build_sam2_video_predictor(
        "sam2.1_hiera_t",
        tmp_path / "t.pt",
        ["image_size=128", "max_cond_frames_in_attn=2"],
        apply_postprocessing=False,
    )
    sy, sx = BEDROOM_HEIGHT / 540, BEDROOM_WIDTH / 960
    steps = [Points(f, 1, np.array([[210.0 * sx, 350.0 * sy]]), np.array([1])) for f in (0, 3, 5)]
    steps.append(Propagate())
    video = copy_frames(9, tmp_path / "v")
    with torch_num_threads(1):
        ref = run_scenario(official, video, steps)
    got = run_scenario(ours, video, steps)
    err = max(float(np.abs(a.logits - b.logits).max()) for a, b in zip(ref, got))
    print(f"max_cond_frames_in_attn=2: max abs err {err:.2e}")
    assert len(ref) == len(got) == 12 and err <= 1e-3
