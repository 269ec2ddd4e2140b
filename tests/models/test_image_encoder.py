"""Parity of the image encoder (Hiera + FpnNeck) with sam2/modeling/backbones/*.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_close, module_params, nchw_to_nhwc, perturb_constant_tensors_, to_np
from sam2.modeling.backbones import hieradet
from sam2.modeling.backbones import image_encoder as official
from sam2.modeling.position_encoding import PositionEmbeddingSine

from sam2_jax.models.fpn_neck import FpnNeck
from sam2_jax.models.hiera import Hiera, bicubic_resize
from sam2_jax.models.image_encoder import ImageEncoder

# fp32 on CPU through up to 48 blocks: observed errors are ~1e-5 on values of magnitude ~3.
TOL = 1e-4
# A single interpolation of O(1) values: only float32 rounding separates the two.
BICUBIC_TOL = 1e-5

# Trunk hyperparameters of the official configs (OFFICIAL_SAM2_NOTES.md §1.1), plus the neck's
# backbone_channel_list.
SIZES = {
    "tiny": {
        "embed_dim": 96,
        "num_heads": 1,
        "stages": (1, 2, 7, 2),
        "global_att_blocks": (5, 7, 9),
        "window_pos_embed_bkg_spatial_size": (7, 7),
        "window_spec": (8, 4, 14, 7),
        "channels": (768, 384, 192, 96),
    },
    "small": {
        "embed_dim": 96,
        "num_heads": 1,
        "stages": (1, 2, 11, 2),
        "global_att_blocks": (7, 10, 13),
        "window_pos_embed_bkg_spatial_size": (7, 7),
        "window_spec": (8, 4, 14, 7),
        "channels": (768, 384, 192, 96),
    },
    "base_plus": {
        "embed_dim": 112,
        "num_heads": 2,
        "stages": (2, 3, 16, 3),
        "global_att_blocks": (12, 16, 20),
        "window_pos_embed_bkg_spatial_size": (14, 14),
        "window_spec": (8, 4, 14, 7),
        "channels": (896, 448, 224, 112),
    },
    "large": {
        "embed_dim": 144,
        "num_heads": 2,
        "stages": (2, 6, 36, 4),
        "global_att_blocks": (23, 33, 43),
        "window_pos_embed_bkg_spatial_size": (7, 7),
        "window_spec": (8, 4, 16, 8),
        "channels": (1152, 576, 288, 144),
    },
}
# A 5-block trunk for the cheap drop-path and input-size tests (block 3 is global).
SMALL_TRUNK = {
    "embed_dim": 16,
    "num_heads": 1,
    "stages": (1, 1, 2, 1),
    "global_att_blocks": (3,),
    "window_pos_embed_bkg_spatial_size": (7, 7),
    "window_spec": (8, 4, 14, 7),
}


def _trunk_kwargs(size: str) -> dict:
    return {k: v for k, v in SIZES[size].items() if k != "channels"}


@functools.cache
def official_encoder(size: str) -> official.ImageEncoder:
    """Official ImageEncoder as the configs build it, seeded, constants perturbed, eval mode."""
    torch.manual_seed(0)
    kw = _trunk_kwargs(size)
    trunk = hieradet.Hiera(**{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()})
    neck = official.FpnNeck(
        position_encoding=PositionEmbeddingSine(256, temperature=10000, normalize=True),
        d_model=256,
        backbone_channel_list=list(SIZES[size]["channels"]),
        fpn_top_down_levels=[2, 3],
        fpn_interp_model="nearest",
    )
    module = official.ImageEncoder(trunk, neck, scalp=1)
    perturb_constant_tensors_(module)
    return module.eval()


@functools.cache
def official_params(size: str) -> dict:
    return module_params(official_encoder(size))


def our_encoder(size: str, **trunk_overrides) -> ImageEncoder:
    trunk = Hiera(**{**_trunk_kwargs(size), **trunk_overrides})
    neck = FpnNeck(256, SIZES[size]["channels"], fpn_top_down_levels=(2, 3))
    return ImageEncoder(trunk, neck, scalp=1)


def _leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf in leaves}


def _images(batch: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "in_hw,out_hw",
    [
        ((7, 7), (64, 64)),  # tiny/small/large at 256 px
        ((14, 14), (32, 32)),  # base_plus at 128 px
        ((7, 7), (256, 256)),  # 1024 px
        ((14, 14), (5, 9)),  # downsampling
        ((9, 13), (4, 6)),  # downsampling by a non-integer factor
        ((3, 20), (8, 5)),  # mixed
        ((7, 7), (7, 7)),  # identity
    ],
)
def test_bicubic_matches_torch(in_hw, out_hw):
    x = torch.randn(2, 3, *in_hw, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(x, size=out_hw, mode="bicubic", align_corners=False)
    ours = bicubic_resize(jnp.asarray(nchw_to_nhwc(x)), out_hw)
    assert_close(ours, nchw_to_nhwc(ref), BICUBIC_TOL, f"bicubic {in_hw}->{out_hw}")


@pytest.mark.parametrize("size", list(SIZES))
def test_param_tree_matches_official(size):
    images = jnp.zeros((1, 64, 64, 3))
    shapes = jax.eval_shape(our_encoder(size).init, jax.random.key(0), images)
    assert _leaf_shapes(shapes) == _leaf_shapes(official_params(size))
    assert all(s.dtype == jnp.float32 for s in jax.tree_util.tree_leaves(shapes))


@pytest.mark.parametrize(
    "size,batch,height,width,drop_path_rate",
    [
        # Maps 64, 32, 16, 8: windows 14 pad 16 -> 28 and, after q-pool, 7 pad 8 -> 14.
        # Our trunk has drop path on: in deterministic mode it must equal the official without.
        ("tiny", 2, 256, 256, 0.2),
        # Rectangular: stage-3 map 12x16 padded to 14x28 by windows of 14.
        ("small", 1, 192, 256, 0.0),
        # 14x14 background embedding; windows 14 on 8x8 and 7 on 4x4 (padding).
        ("base_plus", 1, 128, 128, 0.0),
        # Windows 16 on 8x8 and 8 on 4x4 (padding).
        ("large", 1, 128, 128, 0.0),
    ],
)
def test_image_encoder_matches_official(size, batch, height, width, drop_path_rate):
    module = official_encoder(size)
    images = _images(batch, height, width)
    with torch.no_grad():
        ref = module(images)
    ours = our_encoder(size, drop_path_rate=drop_path_rate)
    out = jax.jit(ours.apply)(official_params(size), jnp.asarray(nchw_to_nhwc(images)))
    assert len(out.backbone_fpn) == len(ref["backbone_fpn"]) == 3
    assert len(out.vision_pos_enc) == len(ref["vision_pos_enc"]) == 3
    assert_close(
        out.vision_features, nchw_to_nhwc(ref["vision_features"]), TOL, f"{size} vision_features"
    )
    for i, (ours, theirs) in enumerate(zip(out.backbone_fpn, ref["backbone_fpn"])):
        assert_close(ours, nchw_to_nhwc(theirs), TOL, f"{size} backbone_fpn[{i}]")
    for i, (ours, theirs) in enumerate(zip(out.vision_pos_enc, ref["vision_pos_enc"])):
        assert_close(ours, nchw_to_nhwc(theirs), TOL, f"{size} vision_pos_enc[{i}]")


def test_drop_path_active_in_training_mode():
    """deterministic=False draws per-sample masks from the 'dropout' rng (eval parity with drop
    path on is covered by the tiny case of test_image_encoder_matches_official)."""
    torch.manual_seed(0)
    ref_trunk = hieradet.Hiera(**SMALL_TRUNK)
    perturb_constant_tensors_(ref_trunk)
    images = _images(4, 64, 64)
    with torch.no_grad():
        ref = to_np(ref_trunk.eval()(images)[-1])
    trunk = Hiera(**SMALL_TRUNK, drop_path_rate=0.5)
    apply = jax.jit(functools.partial(trunk.apply, deterministic=False))
    x = jnp.asarray(nchw_to_nhwc(images))
    params = module_params(ref_trunk)
    first = to_np(apply(params, x, rngs={"dropout": jax.random.key(3)})[-1])
    again = to_np(apply(params, x, rngs={"dropout": jax.random.key(3)})[-1])
    other = to_np(apply(params, x, rngs={"dropout": jax.random.key(4)})[-1])
    np.testing.assert_array_equal(first, again)
    assert np.max(np.abs(first - other)) > 1e-3
    assert np.max(np.abs(first - np.moveaxis(ref, 1, -1))) > 1e-3


def test_fpn_neck_bilinear_avg_all_levels():
    """Non-default neck options: bilinear top-down, 'avg' fusion, top-down on every level."""
    torch.manual_seed(0)
    channels = [64, 32, 16, 8]
    ref_neck = official.FpnNeck(
        position_encoding=PositionEmbeddingSine(32),
        d_model=32,
        backbone_channel_list=channels,
        fpn_interp_model="bilinear",
        fuse_type="avg",
    ).eval()
    gen = torch.Generator().manual_seed(1)
    xs = [
        torch.randn(2, c, 16 // 2**i, 24 // 2**i, generator=gen)
        for i, c in enumerate(channels[::-1])
    ]
    with torch.no_grad():
        ref_out, ref_pos = ref_neck(xs)
    ours = FpnNeck(32, tuple(channels), None, fpn_interp_model="bilinear", fuse_type="avg")
    inputs = [jnp.asarray(nchw_to_nhwc(x)) for x in xs]
    out, pos = jax.jit(ours.apply)(module_params(ref_neck), inputs)
    for i in range(len(channels)):
        assert_close(out[i], nchw_to_nhwc(ref_out[i]), TOL, f"neck out[{i}]")
        assert_close(pos[i], nchw_to_nhwc(ref_pos[i]), TOL, f"neck pos[{i}]")


@pytest.mark.parametrize("side,ok", [(64, True), (96, True), (62, True), (80, False), (100, False)])
def test_input_size_check_matches_official(side, ok):
    """Sizes the official trunk handles pass; the others raise a ValueError (official crashes)."""
    torch.manual_seed(0)
    ref_trunk = hieradet.Hiera(**SMALL_TRUNK).eval()
    encoder = ImageEncoder(
        Hiera(**SMALL_TRUNK), FpnNeck(32, (128, 64, 32, 16), fpn_top_down_levels=(2, 3))
    )
    images = _images(1, side, side)
    if ok:
        with torch.no_grad():
            ref_trunk(images)
        encoder.check_input_size(side, side)
        return
    with pytest.raises(RuntimeError), torch.no_grad():
        ref_trunk(images)
    with pytest.raises(ValueError, match="multiple of 32"):
        encoder.check_input_size(side, side)
    with pytest.raises(ValueError, match="multiple of 32"):
        jax.eval_shape(encoder.init, jax.random.key(0), jnp.zeros((1, side, side, 3)))
