"""Parity of the whole SAM 2 image path with the official model, for all 8 official configs.

Tolerance: 1e-4 max abs error on features and logits (fp32 CPU; errors are ~1e-5 from summation
order in the 12-48 block trunk).
"""

import jax
import numpy as np
import pytest
import torch
from oracle import (
    assert_close,
    assert_nontrivial_mask_logits,
    build_official,
    nchw_to_nhwc,
    save_official_checkpoint,
    to_np,
)

from sam2_jax.build import build_sam2
from sam2_jax.models.sam2 import SAM2

TOL = 1e-4
ALL_CONFIGS = (
    "sam2.1_hiera_t",
    "sam2.1_hiera_s",
    "sam2.1_hiera_b+",
    "sam2.1_hiera_l",
    "sam2_hiera_t",
    "sam2_hiera_s",
    "sam2_hiera_b+",
    "sam2_hiera_l",
)


def _official_features(model, images):
    """Official forward_image + the image-path no_mem_embed: backbone out and SAM inputs."""
    with torch.no_grad():
        bb = model.forward_image(images)
        _, feats, _, sizes = model._prepare_backbone_features(bb)
        b = images.shape[0]
        pix = (feats[-1] + model.no_mem_embed).permute(1, 2, 0).view(b, -1, *sizes[-1])
        high_res = [f.permute(1, 2, 0).view(b, -1, *s) for f, s in zip(feats[:-1], sizes[:-1])]
    return bb, pix, high_res


def _ours_features(model, images):
    bb = model.module.apply(model.params, nchw_to_nhwc(images), method=SAM2.forward_image)
    pix = model.module.apply(model.params, bb.vision_features, method=SAM2.add_no_mem_embed)
    return bb, pix, bb.backbone_fpn[:2]


def _compare_backbone(ref_bb, bb, name):
    for i, (r, o) in enumerate(zip(ref_bb["backbone_fpn"], bb.backbone_fpn)):
        assert_close(o, nchw_to_nhwc(r), TOL, f"{name} backbone_fpn[{i}]")
    for i, (r, o) in enumerate(zip(ref_bb["vision_pos_enc"], bb.vision_pos_enc)):
        assert_close(o, nchw_to_nhwc(r), TOL, f"{name} vision_pos_enc[{i}]")
    assert_close(
        bb.vision_features, nchw_to_nhwc(ref_bb["vision_features"]), TOL, f"{name} vision_features"
    )


def _prompt_cases(size, rng):
    """(name, point coords [B,P,2] or None, labels [B,P] or None, mask [B,1,S,S] or None, multi)."""
    click = np.array([[[0.4 * size, 0.55 * size]]], np.float32)
    two = np.array([[[0.4 * size, 0.55 * size], [0.7 * size, 0.2 * size]]], np.float32)
    box = np.array([[[0.2 * size, 0.25 * size], [0.75 * size, 0.8 * size]]], np.float32)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - 0.5 * size) ** 2 + (xx - 0.45 * size) ** 2) < (0.2 * size) ** 2
    mask = disc[None, None].astype(np.float32)
    return [
        ("click multimask", click, np.array([[1]]), None, True),
        ("pos+neg single", two, np.array([[1, 0]]), None, False),
        ("box", box, np.array([[2, 3]]), None, False),
        ("mask", None, None, mask, False),
        (
            "box+click+mask multimask",
            np.concatenate([box, click], 1),
            np.array([[2, 3, 1]]),
            mask,
            True,
        ),
        ("2 objects", np.concatenate([click, two[:, 1:]], 0), np.array([[1], [-1]]), None, True),
    ]


def _run_heads(official, ours, pix_ref, high_ref, pix, high, coords, labels, mask, multi, name):
    b = 1 if coords is None else coords.shape[0]
    with torch.no_grad():
        pts = (
            None
            if coords is None
            else {
                "point_coords": torch.as_tensor(coords),
                "point_labels": torch.as_tensor(labels, dtype=torch.int32),
            }
        )
        ref = official._forward_sam_heads(
            backbone_features=pix_ref.expand(b, -1, -1, -1),
            point_inputs=pts,
            mask_inputs=None if mask is None else torch.as_tensor(mask).expand(b, -1, -1, -1),
            high_res_features=[h.expand(b, -1, -1, -1) for h in high_ref],
            multimask_output=multi,
        )
    if coords is None:
        coords, labels = np.zeros((b, 1, 2), np.float32), -np.ones((b, 1), np.int32)
    out = ours.module.apply(
        ours.params,
        np.broadcast_to(np.asarray(pix), (b, *pix.shape[1:])),
        coords,
        labels.astype(np.int32),
        None if mask is None else np.broadcast_to(mask[:, 0], (b, *mask.shape[2:])),
        tuple(np.broadcast_to(np.asarray(h), (b, *h.shape[1:])) for h in high),
        multi,
        method=SAM2.forward_sam_heads,
    )
    assert_nontrivial_mask_logits(ref[0], f"{name} reference low-res logits")
    fields = (
        "low_res_multimasks",
        "high_res_multimasks",
        "ious",
        "low_res_masks",
        "high_res_masks",
        "obj_ptr",
        "object_score_logits",
    )
    for field, r in zip(fields, ref):
        assert_close(getattr(out, field), r, TOL, f"{name} {field}")


@pytest.fixture(scope="module")
def tiny21(official_t21):
    official, path = official_t21
    ours = build_sam2("sam2.1_hiera_t", path, ["image_size=256"])
    images = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    return official, ours, images


def test_image_features_tiny21(tiny21):
    official, ours, images = tiny21
    ref_bb, _, _ = _official_features(official, images)
    bb, _, _ = _ours_features(ours, images.numpy())
    _compare_backbone(ref_bb, bb, "sam2.1_hiera_t@256")


def test_sam_heads_all_prompt_types_tiny21(tiny21):
    official, ours, images = tiny21
    _, pix_ref, high_ref = _official_features(official, images[:1])
    _, pix, high = _ours_features(ours, images[:1].numpy())
    for name, coords, labels, mask, multi in _prompt_cases(256, np.random.default_rng(0)):
        _run_heads(official, ours, pix_ref, high_ref, pix, high, coords, labels, mask, multi, name)


def test_mask_as_output_tiny21(tiny21):
    official, ours, images = tiny21
    _, pix_ref, high_ref = _official_features(official, images[:1])
    _, pix, high = _ours_features(ours, images[:1].numpy())
    mask = _prompt_cases(256, None)[3][3]
    empty = np.zeros_like(mask)
    for name, m in (("mask", mask), ("empty mask", empty)):
        with torch.no_grad():
            ref = official._use_mask_as_output(pix_ref, high_ref, torch.as_tensor(m))
        out = ours.module.apply(ours.params, pix, high, m[:, 0], method=SAM2.use_mask_as_output)
        for field, r in zip(out._fields, ref):
            assert_close(getattr(out, field), r, TOL, f"{name} {field}")


def test_absent_object_gives_no_obj_score(tmp_path):
    """With the object score negative every logit is NO_OBJ_SCORE and the pointer no_obj_ptr."""
    official = build_official("sam2.1_hiera_t", image_size=128, object_score_bias=-4.0)
    save_official_checkpoint(official, tmp_path / "absent.pt")
    ours = build_sam2("sam2.1_hiera_t", tmp_path / "absent.pt", ["image_size=128"])
    images = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    _, pix_ref, high_ref = _official_features(official, images)
    _, pix, high = _ours_features(ours, images.numpy())
    coords, labels = np.array([[[50.0, 60.0]]], np.float32), np.array([[1]], np.int32)
    with torch.no_grad():
        ref = official._forward_sam_heads(
            pix_ref,
            {"point_coords": torch.as_tensor(coords), "point_labels": torch.as_tensor(labels)},
            None,
            high_ref,
            True,
        )
    out = ours.module.apply(
        ours.params, pix, coords, labels, None, high, True, method=SAM2.forward_sam_heads
    )
    assert np.all(to_np(ref[0]) == -1024.0) and np.all(
        np.asarray(out.low_res_multimasks) == -1024.0
    )
    assert_close(out.obj_ptr, ref[5], TOL, "absent obj_ptr")


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_official_config_converts_and_matches(name, tmp_path):
    """Strict conversion of each official config's checkpoint plus one forward at 128 px."""
    size = 128
    official = build_official(name, image_size=size, seed=3)
    path = tmp_path / f"{name}.pt"
    save_official_checkpoint(official, path)
    ours = build_sam2(name, path, [f"image_size={size}"])
    n_ref = sum(t.numel() for t in official.state_dict().values())
    n_ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(ours.params))
    assert n_ours == n_ref
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(4))
    ref_bb, pix_ref, high_ref = _official_features(official, images)
    bb, pix, high = _ours_features(ours, images.numpy())
    _compare_backbone(ref_bb, bb, name)
    coords = np.array([[[40.0, 70.0]]], np.float32)
    _run_heads(
        official,
        ours,
        pix_ref,
        high_ref,
        pix,
        high,
        coords,
        np.array([[1]]),
        None,
        True,
        f"{name} click",
    )


def test_bf16_compute_runs_close_to_fp32(tmp_path):
    """`dtype=bfloat16` computes in bf16 with fp32 params; outputs stay close to fp32."""
    size = 128
    official = build_official("sam2.1_hiera_t", image_size=size, seed=7)
    save_official_checkpoint(official, tmp_path / "t.pt")
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(8)).numpy()
    coords, labels = np.array([[[40.0, 70.0]]], np.float32), np.array([[1]], np.int32)
    outs = {}
    for dtype in ("float32", "bfloat16"):
        model = build_sam2(
            "sam2.1_hiera_t", tmp_path / "t.pt", [f"image_size={size}", f"dtype={dtype}"]
        )
        leaves = jax.tree.leaves(model.params)
        assert all(x.dtype == np.float32 for x in leaves)
        bb, pix, high = _ours_features(model, images)
        outs[dtype] = model.module.apply(
            model.params, pix, coords, labels, None, high, True, method=SAM2.forward_sam_heads
        )
    ref, low = outs["float32"].low_res_multimasks, outs["bfloat16"].low_res_multimasks
    assert np.isfinite(np.asarray(low)).all()
    scale = float(np.abs(np.asarray(ref)).max())
    err = float(np.abs(np.asarray(low) - np.asarray(ref)).max())
    print(f"bf16 vs fp32 low-res logits: max abs err {err:.3e} (max |fp32| {scale:.3e})")
    assert err <= 0.1 * scale
