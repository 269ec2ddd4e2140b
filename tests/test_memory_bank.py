"""Memory bank rules: the official conditioning-frame selection and lookup, as masks."""

import types

import jax.numpy as jnp
import numpy as np
import pytest
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

from sam2_jax.memory_bank import (
    empty_bank,
    memory_layout,
    num_recent_slots,
    select_cond_frames,
    write_frame,
)
from sam2_jax.predictors.video import build_sam2_video_predictor

TOL = 1e-4  # max abs error of the mask logits at video resolution (fp32, bf16 memory both sides)


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


def _official_recent_frames(t, reverse, stride, num_maskmem=7):
    """{frame: tpos index} that `SAM2Base._prepare_memory_conditioned_features` looks up as
    recent memory at frame t (its loop over t_pos, written out)."""
    frames = {}
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        if t_rel == 1:
            prev = t + 1 if reverse else t - 1
        elif not reverse:
            prev = ((t - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(t + 2) // stride) * stride + (t_rel - 2) * stride
        frames[prev] = num_maskmem - t_pos - 1
    return frames


def test_strided_recent_memory_matches_official_lookup():
    """memory_temporal_stride_for_eval r: the ring written while tracking holds exactly the
    frames the official lookup picks, with its temporal positions (stride 1 included)."""
    feats, ptr, yes, no = (
        jnp.zeros((1, 4, 8)),
        jnp.zeros((1, 16)),
        jnp.array([True]),
        jnp.array([False]),
    )
    for stride in (1, 2, 3):
        for reverse in (False, True):
            d, start = (-1, 40) if reverse else (1, 0)
            bank = empty_bank(1, 1, num_recent_slots(7, stride), 15, 4, 8, 16)
            bank = write_frame(bank, start, feats, ptr, yes, yes, stride)  # prompted
            for t in range(start + d, start + 41 * d, d):
                lay = memory_layout(
                    bank, jnp.int32(t), jnp.int32(41), jnp.int32(d), num_maskmem=7,
                    max_obj_ptrs=16, max_cond_frames=-1, signed_ptr_pos=True,
                    only_past_ptrs=True, stride=stride,
                )  # fmt: skip
                got = {
                    int(f): int(p)
                    for f, u, p in zip(bank.recent_frame[0], lay.recent_use[0], lay.recent_tpos[0])
                    if u
                }
                tracked = range(start + d, t, d)
                want = {
                    f: p
                    for f, p in _official_recent_frames(t, reverse, stride).items()
                    if f in tracked
                }
                assert got == want, (stride, reverse, t)
                bank = write_frame(bank, t, feats, ptr, no, yes, stride)
    assert num_recent_slots(7, 1) == 6 and num_recent_slots(7, 4) == 7
    with pytest.raises(ValueError, match="memory_temporal_stride_for_eval"):
        num_recent_slots(7, 0)


def _official_and_ours(tmp_path, overrides, ours_overrides, seed):
    """The official video predictor (tiny 2.1 at 128 px, random weights, hydra `overrides`) and
    ours on the same weights with `ours_overrides`."""
    official = build_official(
        "sam2.1_hiera_t",
        image_size=128,
        seed=seed,
        video=True,
        apply_postprocessing=False,
        extra_overrides=overrides,
    )
    official.fill_hole_area = 0
    patch_bf16_memory_storage(official)
    save_official_checkpoint(official, tmp_path / "t.pt")
    ours = build_sam2_video_predictor(
        "sam2.1_hiera_t",
        tmp_path / "t.pt",
        ["image_size=128", *ours_overrides],
        apply_postprocessing=False,
    )
    return official, ours


def _compare_scenario(official, ours, video, steps, name, count):
    with torch_num_threads(1):
        ref = run_scenario(official, video, steps)
    got = run_scenario(ours, video, steps)
    err = max(float(np.abs(a.logits - b.logits).max()) for a, b in zip(ref, got))
    print(f"{name}: max abs err {err:.2e} over {len(ref)} outputs")
    assert [r.frame_idx for r in ref] == [g.frame_idx for g in got]
    assert len(ref) == count and err <= TOL


def _click(frame_idx, obj_id=1):
    sy, sx = BEDROOM_HEIGHT / 540, BEDROOM_WIDTH / 960
    return Points(frame_idx, obj_id, np.array([[210.0 * sx, 350.0 * sy]]), np.array([1]))


def test_memory_stride_matches_official(tmp_path):
    """memory_temporal_stride_for_eval=2 (memories reach 11 frames back): forward from a click,
    then a second object and reverse from frame 9 (object 1's bank seeded from the outputs of
    frames 10-13)."""
    stride = ("memory_temporal_stride_for_eval=2",)
    official, ours = _official_and_ours(tmp_path, [f"++model.{stride[0]}"], stride, seed=5)
    steps = [_click(0), Propagate(), _click(6, 2), Propagate(start_frame_idx=9, reverse=True)]
    video = copy_frames(14, tmp_path / "v")
    _compare_scenario(official, ours, video, steps, "stride 2", 1 + 14 + 1 + 10)


def test_clear_non_cond_mem_around_input_matches_official(tmp_path):
    """clear_non_cond_mem_around_input (with add_all_frames_to_correct_as_cond): the official
    1.1.0 calls `_clear_obj_non_cond_mem_around_input`, which it lacks; the official
    `_clear_non_cond_mem_around_input` restricted to the one object stands in for it."""
    flags = ("clear_non_cond_mem_around_input=True", "add_all_frames_to_correct_as_cond=True")
    official, ours = _official_and_ours(tmp_path, [f"++model.{f}" for f in flags], flags, seed=6)

    def clear_one(self, inference_state, frame_idx, obj_idx):
        r = self.memory_temporal_stride_for_eval
        outputs = inference_state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
        for t in range(frame_idx - r * self.num_maskmem, frame_idx + r * self.num_maskmem + 1):
            outputs.pop(t, None)

    official._clear_obj_non_cond_mem_around_input = types.MethodType(clear_one, official)
    steps = [_click(0), _click(0, 2), Propagate(), _click(8), Propagate(), _click(11, 2),
             Propagate(start_frame_idx=13, reverse=True)]  # fmt: skip
    video = copy_frames(14, tmp_path / "v")
    _compare_scenario(official, ours, video, steps, "clear around input", 2 + 14 + 1 + 14 + 1 + 14)


def test_limited_conditioning_frames_match_official(tmp_path):
    """max_cond_frames_in_attn=2 with 3 prompted frames: unselected ones act as recent memory."""
    limit = ("max_cond_frames_in_attn=2",)
    official, ours = _official_and_ours(tmp_path, [f"++model.{limit[0]}"], limit, seed=4)
    steps = [_click(0), _click(3), _click(5), Propagate()]
    video = copy_frames(9, tmp_path / "v")
    _compare_scenario(official, ours, video, steps, "max_cond_frames_in_attn=2", 3 + 9)
