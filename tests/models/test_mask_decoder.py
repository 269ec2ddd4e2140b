"""Parity of `MaskDecoder` / `TwoWayTransformer` with the official SAM heads.

Modules are built as `SAM2Base._build_sam_heads` builds them (two-way transformer depth 2,
embedding 256, 8 heads, MLP 2048, downsample 2; 3 multimask outputs; IoU head depth 3, hidden
256) at a 16x16 image embedding (image 256).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracle import assert_close, module_params, nchw_to_nhwc, perturb_constant_tensors_
from sam2.modeling.sam.mask_decoder import MaskDecoder as TorchMaskDecoder
from sam2.modeling.sam.transformer import TwoWayTransformer as TorchTwoWayTransformer

from sam2_jax.models.mask_decoder import (
    MaskDecoder,
    dynamic_multimask_via_stability,
    stability_fallback_index,
)
from sam2_jax.models.transformer import TwoWayTransformer

TOL = 1e-4  # fp32 two-way attention + upscaling; logits reach ~1e2 on the scaled rows
C, H = 256, 16
B, N = 4, 3
# feat_s0 scale per row: large features give large, stable single-mask logits (stability >
# 0.988), unit ones give unstable logits (stability ~0.7), so the fallback triggers on rows 0, 2.
ROW_SCALE = np.array([1.0, 30.0, 1.0, 30.0], np.float32)
TRANSFORMER = dict(depth=2, embedding_dim=C, mlp_dim=2048, num_heads=8)
VARIANTS = {
    "sam2": dict(  # the flags of every SAM 2 / 2.1 config
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
    ),
    "plain": dict(  # the MaskDecoder defaults: no object score, no sigmoid, no high-res
        use_high_res_features=False,
        iou_prediction_use_sigmoid=False,
        pred_obj_scores=False,
        pred_obj_scores_mlp=False,
        use_multimask_token_for_obj_ptr=False,
    ),
    "obj_linear": dict(  # linear object-score head, single-mask token for the pointer
        use_high_res_features=True,
        iou_prediction_use_sigmoid=False,
        pred_obj_scores=True,
        pred_obj_scores_mlp=False,
        use_multimask_token_for_obj_ptr=False,
    ),
}


@functools.lru_cache(maxsize=None)
def build(variant: str):
    """Official decoder (seeded, perturbed, eval) and the converted params."""
    torch.manual_seed(0)
    ref = TorchMaskDecoder(
        transformer_dim=C,
        transformer=TorchTwoWayTransformer(**TRANSFORMER),
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        dynamic_multimask_via_stability=True,
        **VARIANTS[variant],
    )
    perturb_constant_tensors_(ref)
    ref.eval()
    return ref, module_params(ref)


def ours(variant: str, **overrides) -> MaskDecoder:
    kwargs = dict(num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256)
    kwargs.update(VARIANTS[variant], **overrides)
    return MaskDecoder(transformer_dim=C, transformer=TwoWayTransformer(**TRANSFORMER), **kwargs)


@functools.lru_cache(maxsize=None)
def make_inputs(seed: int = 0, b: int = B, img_b: int = B) -> dict:
    """NCHW torch inputs (the official layout); high-res features are already projected."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.from_numpy(np.resize(ROW_SCALE, img_b))[:, None, None, None]
    return {
        "image_embeddings": torch.randn(img_b, C, H, H, generator=g),
        "image_pe": torch.randn(1, C, H, H, generator=g),
        "sparse_prompt_embeddings": torch.randn(b, N, C, generator=g),
        "dense_prompt_embeddings": torch.randn(b, C, H, H, generator=g),
        "high_res_features": [
            scale * torch.randn(img_b, C // 8, 4 * H, 4 * H, generator=g),
            torch.randn(img_b, C // 4, 2 * H, 2 * H, generator=g),
        ],
    }


def to_jax(x: dict) -> dict:
    """Our channels-last layout of `make_inputs`."""
    return {
        "image_embeddings": jnp.asarray(nchw_to_nhwc(x["image_embeddings"])),
        "image_pe": jnp.asarray(nchw_to_nhwc(x["image_pe"])),
        "sparse_prompt_embeddings": jnp.asarray(x["sparse_prompt_embeddings"].numpy()),
        "dense_prompt_embeddings": jnp.asarray(nchw_to_nhwc(x["dense_prompt_embeddings"])),
        "high_res_features": tuple(jnp.asarray(nchw_to_nhwc(f)) for f in x["high_res_features"]),
    }


def ref_stability(ref, x: dict, repeat_image: bool = False) -> np.ndarray:
    """Official stability score of the single-mask output, per row."""
    with torch.no_grad():
        masks = ref.predict_masks(repeat_image=repeat_image, **x)[0]
        return ref._get_stability_scores(masks[:, 0]).numpy()


def compare(out, ref_out, name: str) -> None:
    for field, a, r in zip(out._fields, out, ref_out):
        assert_close(a, r, TOL, f"{name}.{field}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_param_tree_matches_official(variant: str):
    _, params = build(variant)
    x = to_jax(make_inputs())
    shapes = jax.eval_shape(
        functools.partial(ours(variant).init, multimask_output=True, repeat_image=False),
        jax.random.key(0),
        **x,
    )
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes) == jax.tree_util.tree_map(
        np.shape, params
    )


def test_two_way_transformer():
    ref, params = build("sam2")
    x = make_inputs()
    tokens = x["sparse_prompt_embeddings"]
    with torch.no_grad():
        q_ref, k_ref = ref.transformer(x["image_embeddings"], x["image_pe"], tokens)
    xj = to_jax(x)
    q, k = TwoWayTransformer(**TRANSFORMER).apply(
        {"params": params["params"]["transformer"]},
        xj["image_embeddings"],
        xj["image_pe"],
        xj["sparse_prompt_embeddings"],
    )
    assert_close(q, q_ref, TOL, "transformer.queries")
    assert_close(k, k_ref, TOL, "transformer.keys")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_predict_masks(variant: str):
    ref, params = build(variant)
    x = make_inputs()
    with torch.no_grad():
        ref_out = ref.predict_masks(repeat_image=False, **x)
    out = ours(variant).apply(
        params, repeat_image=False, method=MaskDecoder.predict_masks, **to_jax(x)
    )
    for name, a, r in zip(("masks", "iou_pred", "mask_tokens_out", "obj_scores"), out, ref_out):
        assert_close(a, r, TOL, f"{variant}.predict_masks.{name}")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("dynamic", [True, False])
def test_forward(variant: str, multimask: bool, dynamic: bool):
    ref, params = build(variant)
    x = make_inputs()
    thresh = 0.98
    if not VARIANTS[variant]["use_high_res_features"]:
        # Without high-res features the row scaling has no effect: split the rows by threshold.
        thresh = float(np.median(ref_stability(ref, x)))
    ref.dynamic_multimask_via_stability = dynamic
    ref.dynamic_multimask_stability_thresh = thresh
    with torch.no_grad():
        ref_out = ref(multimask_output=multimask, repeat_image=False, **x)
    dec = ours(
        variant, dynamic_multimask_via_stability=dynamic, dynamic_multimask_stability_thresh=thresh
    )
    out = dec.apply(params, multimask_output=multimask, repeat_image=False, **to_jax(x))
    compare(out, ref_out, f"{variant}.mm{int(multimask)}.dyn{int(dynamic)}")

    k = 3 if multimask else 1
    k_tok = 3 if multimask and VARIANTS[variant]["use_multimask_token_for_obj_ptr"] else 1
    assert out.masks.shape == (B, k, 4 * H, 4 * H) and out.iou_pred.shape == (B, k)
    assert out.sam_tokens_out.shape == (B, k_tok, C)
    if dynamic and not multimask:
        stable = ref_stability(ref, x) >= thresh
        assert stable.any() and not stable.all(), stable  # the fallback ran on some rows only
        with torch.no_grad():
            single = ref.predict_masks(repeat_image=False, **x)[0][:, 0].numpy()
        differs = np.abs(np.asarray(out.masks[:, 0]) - single).max(axis=(1, 2)) > 1e-2
        np.testing.assert_array_equal(differs, ~stable)


def test_dynamic_fallback_off_in_training():
    """`deterministic=False` (official: training mode) never applies the fallback."""
    ref, params = build("sam2")
    x = make_inputs()
    ref.dynamic_multimask_via_stability = True
    ref.dynamic_multimask_stability_thresh = 0.98
    ref.train()
    try:
        with torch.no_grad():
            ref_out = ref(multimask_output=False, repeat_image=False, **x)
    finally:
        ref.eval()
    dec = ours("sam2", dynamic_multimask_via_stability=True)
    out = dec.apply(
        params, multimask_output=False, repeat_image=False, deterministic=False, **to_jax(x)
    )
    compare(out, ref_out, "train.dyn1")


def test_repeat_image():
    """One image (and its high-res features) shared by B prompt rows."""
    ref, params = build("sam2")
    x = dict(make_inputs(seed=1, img_b=1))
    with torch.no_grad():
        ref_out = ref(multimask_output=True, repeat_image=True, **x)
    out = ours("sam2").apply(params, multimask_output=True, repeat_image=True, **to_jax(x))
    compare(out, ref_out, "repeat_image")


def test_stability_functions():
    """The pure fallback vs the official methods, including the empty-union case (score 1)."""
    ref, _ = build("sam2")
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 4, 8, 8, generator=g)
    logits[0] = -1.0  # area_u = 0 -> stability 1 -> single mask kept
    logits[1, 0] = 0.0  # area_i = 0, area_u > 0 -> stability 0 -> fallback
    logits[2, 0] = 1.0  # stability 1
    ious = torch.rand(5, 4, generator=g)
    with torch.no_grad():
        m_ref, i_ref = ref._dynamic_multimask_via_stability(logits, ious)
    lj, ij = jnp.asarray(logits.numpy()), jnp.asarray(ious.numpy())
    m, i = dynamic_multimask_via_stability(lj, ij, 0.05, 0.98)
    assert_close(m, m_ref, 0.0, "stability.masks")
    assert_close(i, i_ref, 0.0, "stability.iou")
    idx = np.asarray(stability_fallback_index(lj, ij, 0.05, 0.98))
    assert idx[0] == 0 and idx[2] == 0 and idx[1] == 1 + int(np.argmax(ious[1, 1:].numpy()))
