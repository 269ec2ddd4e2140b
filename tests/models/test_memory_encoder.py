"""Parity of memory_encoder.py with the official MaskDownSampler / CXBlock / Fuser /
MemoryEncoder (hyperparameters of sam2.1_hiera_t.yaml; 16×16 features, 256×256 masks).
"""

import jax
import numpy as np
import pytest
import torch
from oracle import assert_close, module_params, nchw_to_nhwc, perturb_constant_tensors_
from sam2.modeling.memory_encoder import CXBlock as TorchCXBlock
from sam2.modeling.memory_encoder import Fuser as TorchFuser
from sam2.modeling.memory_encoder import MaskDownSampler as TorchMaskDownSampler
from sam2.modeling.memory_encoder import MemoryEncoder as TorchMemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine

from sam2_jax.models.memory_encoder import CXBlock, Fuser, MemoryEncoder

TOL = 1e-4  # fp32 on CPU: 4 stride-2 convs + LayerNorm2d, 7×7 depthwise and 1024-wide MLPs.

B, SIDE, IN_DIM, OUT_DIM = 2, 16, 256, 64


def _rand(*shape: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _seeded(build, seed: int) -> torch.nn.Module:
    """Build an official module under a seed, re-initialise each (deep-copied) submodule."""
    torch.manual_seed(seed)
    module = build()
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    perturb_constant_tensors_(module, seed=seed)
    return module.eval()


def _torch_memory_encoder(out_dim: int = OUT_DIM) -> TorchMemoryEncoder:
    return TorchMemoryEncoder(
        out_dim=out_dim,
        mask_downsampler=TorchMaskDownSampler(kernel_size=3, stride=2, padding=1),
        fuser=TorchFuser(
            TorchCXBlock(
                dim=IN_DIM, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True
            ),
            num_layers=2,
        ),
        position_encoding=PositionEmbeddingSine(
            num_pos_feats=out_dim, normalize=True, temperature=10000
        ),
    )


def _tree_shapes(tree) -> dict[str, tuple[int, ...]]:
    return {
        jax.tree_util.keystr(p): tuple(v.shape)
        for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def _abstract_params(module, *args) -> dict:
    return jax.eval_shape(lambda: module.init(jax.random.key(0), *args))


@pytest.mark.parametrize("skip_mask_sigmoid", [False, True])
def test_memory_encoder_parity(skip_mask_sigmoid):
    ref = _seeded(_torch_memory_encoder, seed=0)
    pix_feat = _rand(B, IN_DIM, SIDE, SIDE, seed=1)
    # With skip_mask_sigmoid the official caller passes sigmoid(logits) * 20 - 10.
    masks = _rand(B, 1, 16 * SIDE, 16 * SIDE, seed=2, scale=3.0)
    if skip_mask_sigmoid:
        masks = 20.0 / (1.0 + np.exp(-masks)) - 10.0
    with torch.no_grad():
        out = ref(torch.from_numpy(pix_feat), torch.from_numpy(masks), skip_mask_sigmoid)
    ours = MemoryEncoder()
    args = (nchw_to_nhwc(pix_feat), nchw_to_nhwc(masks), skip_mask_sigmoid)
    params = module_params(ref)
    assert _tree_shapes(_abstract_params(ours, *args)) == _tree_shapes(params)
    feats, pos = ours.apply(params, *args)
    assert feats.shape == pos.shape == (B, SIDE, SIDE, OUT_DIM)
    assert_close(feats, nchw_to_nhwc(out["vision_features"]), TOL, "vision_features")
    assert_close(pos, nchw_to_nhwc(out["vision_pos_enc"][0]), TOL, "vision_pos_enc")


def test_memory_encoder_without_out_proj_param_tree():
    ref = _torch_memory_encoder(out_dim=IN_DIM)
    ours = MemoryEncoder(out_dim=IN_DIM, pos_num_feats=IN_DIM)
    args = (np.zeros((1, 2, 2, IN_DIM), np.float32), np.zeros((1, 32, 32, 1), np.float32))
    tree = _tree_shapes(_abstract_params(ours, *args))
    assert not any("out_proj" in k for k in tree)
    assert tree == _tree_shapes(module_params(ref))


def test_fuser_with_input_projection_parity():
    dim = 32
    ref = _seeded(
        lambda: TorchFuser(
            TorchCXBlock(dim=dim, kernel_size=3, padding=1),
            num_layers=2,
            dim=dim,
            input_projection=True,
        ),
        seed=3,
    )
    x = _rand(B, dim, 8, 8, seed=4)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x))
    ours = Fuser(num_layers=2, dim=dim, kernel_size=3, padding=1, input_projection=True)
    params = module_params(ref)
    assert _tree_shapes(_abstract_params(ours, nchw_to_nhwc(x))) == _tree_shapes(params)
    assert_close(ours.apply(params, nchw_to_nhwc(x)), nchw_to_nhwc(expected), TOL, "Fuser")


def test_cxblock_drop_path_only_when_not_deterministic():
    block = CXBlock(dim=8, kernel_size=3, padding=1, drop_path=0.5, layer_scale_init_value=1.0)
    x = _rand(8, 4, 4, 8, seed=5)
    params = jax.jit(block.init)(jax.random.key(0), x)
    apply = jax.jit(
        lambda key, det: block.apply(params, x, det, rngs={"dropout": key}), static_argnums=1
    )
    det = np.asarray(jax.jit(lambda: block.apply(params, x))())
    np.testing.assert_array_equal(det, np.asarray(apply(jax.random.key(1), True)))
    train = [np.asarray(apply(jax.random.key(s), False)) for s in (1, 2)]
    assert np.max(np.abs(train[0] - train[1])) > 0.0
    # each sample either keeps its branch scaled by 1 / keep_prob or drops it entirely
    branch = det - x
    for out in train:
        for b in range(x.shape[0]):
            dropped = np.allclose(out[b], x[b], atol=1e-6)
            kept = np.allclose(out[b], x[b] + 2.0 * branch[b], atol=1e-5)
            assert dropped != kept
