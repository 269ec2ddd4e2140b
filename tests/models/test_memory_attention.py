"""Parity of rope.py and memory_attention.py with the official RoPE, RoPEAttention,
MemoryAttentionLayer and MemoryAttention (hyperparameters of sam2.1_hiera_t.yaml, 16×16 maps).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracle import assert_close, module_params, perturb_constant_tensors_, to_np
from sam2.modeling.memory_attention import MemoryAttention as TorchMemoryAttention
from sam2.modeling.memory_attention import MemoryAttentionLayer as TorchMemoryAttentionLayer
from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
from sam2.modeling.sam.transformer import RoPEAttention as TorchRoPEAttention

from sam2_jax.models.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2_jax.models.rope import RoPEAttention, apply_rotary, axial_rope_cos_sin

TOL = 1e-4  # fp32 on CPU: 256-wide dot products through 4 pre-norm layers (errors ~1e-6).
TOL_ROPE = 1e-6  # same fp32 formula, only the complex product is regrouped.

B, SIDE, D_MODEL, MEM_DIM = 2, 16, 256, 64
N = SIDE * SIDE


def _rand(*shape: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _reinit_(module: torch.nn.Module, seed: int) -> None:
    """Fresh seeded init of every submodule (get_clones deep-copies one layer), then perturb."""
    torch.manual_seed(seed)
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    perturb_constant_tensors_(module, seed=seed)
    module.eval()


def _torch_rope_attention(**kwargs) -> TorchRoPEAttention:
    return TorchRoPEAttention(
        rope_theta=10000.0,
        feat_sizes=(64, 64),
        embedding_dim=D_MODEL,
        num_heads=1,
        downsample_rate=1,
        dropout=0.1,
        **kwargs,
    )


def _torch_layer(pos_enc_at_attn: bool = False, pos_enc_at_queries: bool = False):
    return TorchMemoryAttentionLayer(
        activation="relu",
        cross_attention=_torch_rope_attention(rope_k_repeat=True, kv_in_dim=MEM_DIM),
        d_model=D_MODEL,
        dim_feedforward=2048,
        dropout=0.1,
        pos_enc_at_attn=pos_enc_at_attn,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=pos_enc_at_queries,
        self_attention=_torch_rope_attention(),
    )


def _torch_memory_attention(num_layers: int = 4) -> TorchMemoryAttention:
    ref = TorchMemoryAttention(
        d_model=D_MODEL, pos_enc_at_input=True, layer=_torch_layer(), num_layers=num_layers
    )
    for i, layer in enumerate(ref.layers):
        _reinit_(layer, seed=10 + i)
    _reinit_(ref.norm, seed=99)
    return ref.eval()


def _inputs(num_frames: int, num_ptrs: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Batch-first inputs: memory = num_frames frames of N tokens, then 4 * num_ptrs tokens."""
    m = num_frames * N + 4 * num_ptrs
    return dict(
        curr=_rand(B, N, D_MODEL, seed=seed),
        curr_pos=_rand(B, N, D_MODEL, seed=seed + 1),
        memory=_rand(B, m, MEM_DIM, seed=seed + 2),
        memory_pos=_rand(B, m, MEM_DIM, seed=seed + 3),
    )


def _run_official(ref: TorchMemoryAttention, x: dict[str, np.ndarray], num_ptr_tokens: int):
    seq = {k: torch.from_numpy(v).transpose(0, 1) for k, v in x.items()}
    with torch.no_grad():
        out = ref(seq["curr"], seq["memory"], seq["curr_pos"], seq["memory_pos"], num_ptr_tokens)
    return to_np(out.transpose(0, 1))


def _assert_same_tree(abstract, params) -> None:
    ours = {
        jax.tree_util.keystr(p): v.shape
        for p, v in jax.tree_util.tree_flatten_with_path(abstract)[0]
    }
    ref = {
        jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    assert ours == ref


# ----------------------------------------------------------------------------- RoPE functions
@pytest.mark.parametrize("dim,end_x,end_y", [(32, 6, 4), (256, 64, 64)])
def test_axial_rope_cos_sin_matches_compute_axial_cis(dim, end_x, end_y):
    ref = compute_axial_cis(dim, end_x, end_y, theta=10000.0)
    cos, sin = axial_rope_cos_sin(dim, end_x, end_y, 10000.0)
    assert cos.shape == sin.shape == (end_x * end_y, dim // 2)
    assert_close(cos, ref.real, TOL_ROPE, "cos")
    assert_close(sin, ref.imag, TOL_ROPE, "sin")


@pytest.mark.parametrize("repeat", [1, 3])
def test_apply_rotary_matches_apply_rotary_enc(repeat):
    heads, side, dim = 2, 4, 16
    xq = _rand(B, heads, side * side, dim, seed=1)
    xk = _rand(B, heads, repeat * side * side, dim, seed=2)
    cis = compute_axial_cis(dim, side, side)
    ref_q, ref_k = apply_rotary_enc(
        torch.from_numpy(xq), torch.from_numpy(xk), cis, repeat_freqs_k=repeat > 1
    )
    cos, sin = axial_rope_cos_sin(dim, side, side)
    assert_close(apply_rotary(jnp.asarray(xq), cos, sin), ref_q, TOL_ROPE, "q")
    k = apply_rotary(jnp.asarray(xk), jnp.tile(cos, (repeat, 1)), jnp.tile(sin, (repeat, 1)))
    assert_close(k, ref_k, TOL_ROPE, "k")


# cases: (rope_k_repeat, feat_sizes, Nq, memory frames of Nq keys, excluded trailing keys)
ROPE_ATTENTION_CASES = [
    (False, (64, 64), 64, 1, 0),  # self-attention, grid recomputed as 8×8
    (True, (64, 64), 64, 3, 5),  # cross-attention: 3 frames + 5 unrotated keys
    (True, (64, 64), 64, 0, 4),  # only unrotated keys
    (False, (8, 4), 32, 1, 0),  # feat_sizes fits the query: non-square 8×4 grid
]


@pytest.mark.parametrize("repeat,feat_sizes,nq,frames,excluded", ROPE_ATTENTION_CASES)
def test_rope_attention_parity(repeat, feat_sizes, nq, frames, excluded):
    kwargs = dict(embedding_dim=64, num_heads=2, downsample_rate=2, kv_in_dim=32)
    ref = TorchRoPEAttention(rope_k_repeat=repeat, feat_sizes=feat_sizes, **kwargs)
    _reinit_(ref, seed=3)
    nk = frames * nq + excluded
    q, k, v = _rand(B, nq, 64, seed=4), _rand(B, nk, 32, seed=5), _rand(B, nk, 32, seed=6)
    with torch.no_grad():
        expected = ref(*map(torch.from_numpy, (q, k, v)), num_k_exclude_rope=excluded)
    ours = RoPEAttention(rope_k_repeat=repeat, feat_sizes=feat_sizes, **kwargs)
    out = ours.apply(module_params(ref), q, k, v, excluded)
    assert_close(out, expected, TOL, "RoPEAttention")


# ----------------------------------------------------------------------------- memory attention
@pytest.mark.parametrize("pos_enc_at_attn,pos_enc_at_queries", [(False, False), (True, True)])
def test_memory_attention_layer_parity(pos_enc_at_attn, pos_enc_at_queries):
    ref = _torch_layer(pos_enc_at_attn, pos_enc_at_queries)
    _reinit_(ref, seed=1)
    num_ptrs = 2
    x = _inputs(num_frames=3, num_ptrs=num_ptrs)
    with torch.no_grad():
        expected = ref(
            torch.from_numpy(x["curr"]),
            torch.from_numpy(x["memory"]),
            pos=torch.from_numpy(x["memory_pos"]),
            query_pos=torch.from_numpy(x["curr_pos"]),
            num_k_exclude_rope=4 * num_ptrs,
        )
    ours = MemoryAttentionLayer(
        pos_enc_at_attn=pos_enc_at_attn, pos_enc_at_cross_attn_queries=pos_enc_at_queries
    )
    args = (x["curr"], x["memory"], x["memory_pos"], x["curr_pos"], 4 * num_ptrs)
    params = module_params(ref)
    _assert_same_tree(jax.eval_shape(lambda: ours.init(jax.random.key(0), *args)), params)
    assert_close(ours.apply(params, *args), expected, TOL, "MemoryAttentionLayer")


@pytest.mark.parametrize("num_frames,num_ptrs", [(2, 3), (3, 2)])
def test_memory_attention_parity(num_frames, num_ptrs):
    ref = _torch_memory_attention()
    x = _inputs(num_frames, num_ptrs, seed=7)
    expected = _run_official(ref, x, 4 * num_ptrs)
    ours = MemoryAttention()
    args = (x["curr"], x["curr_pos"], x["memory"], x["memory_pos"], 4 * num_ptrs)
    params = module_params(ref)
    _assert_same_tree(jax.eval_shape(lambda: ours.init(jax.random.key(0), *args)), params)
    assert_close(ours.apply(params, *args), expected, TOL, "MemoryAttention")


def test_masked_memory_slots_equal_official_on_valid_tokens():
    """A fixed bank of 3 frame slots + 3 pointer slots, some holding garbage, masked out."""
    ref = _torch_memory_attention()
    frame_valid = np.array([[True, False, True], [False, True, False]])
    ptr_valid = np.array([[True, False, True], [False, True, True]])
    x = _inputs(num_frames=3, num_ptrs=3, seed=20)
    valid = np.concatenate(
        [np.repeat(frame_valid, N, axis=1), np.repeat(ptr_valid, 4, axis=1)], axis=1
    )
    garbage = ~valid[..., None]
    memory = np.where(garbage, _rand(*x["memory"].shape, seed=30, scale=50.0), x["memory"])
    memory_pos = np.where(garbage, _rand(*x["memory"].shape, seed=31, scale=50.0), x["memory_pos"])
    out = MemoryAttention().apply(
        module_params(ref),
        x["curr"],
        x["curr_pos"],
        memory,
        memory_pos,
        4 * 3,
        memory_valid=jnp.asarray(valid),
    )
    for b in range(B):
        sub = dict(
            curr=x["curr"][b : b + 1],
            curr_pos=x["curr_pos"][b : b + 1],
            memory=x["memory"][b : b + 1, valid[b]],
            memory_pos=x["memory_pos"][b : b + 1, valid[b]],
        )
        expected = _run_official(ref, sub, 4 * int(ptr_valid[b].sum()))
        assert_close(out[b : b + 1], expected, TOL, f"masked MemoryAttention, batch {b}")


def _random_params(module, *args) -> dict:
    """Random params of the right tree without running `init` (eval_shape does not compile)."""
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *args))
    rng = np.random.default_rng(0)
    return jax.tree_util.tree_map(
        lambda a: 0.2 * rng.standard_normal(a.shape).astype(np.float32), abstract
    )


def _dropout_outputs(module, args) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(deterministic, deterministic with an rng, [train with rng seed 1, seed 2])."""
    params = _random_params(module, *args)
    apply = jax.jit(
        lambda key, det: module.apply(params, *args, deterministic=det, rngs={"dropout": key}),
        static_argnums=1,
    )
    det = np.asarray(jax.jit(lambda: module.apply(params, *args))())
    det_rng = np.asarray(apply(jax.random.key(1), True))
    train = [np.asarray(apply(jax.random.key(s), False)) for s in (1, 2)]
    return det, det_rng, train


def test_dropout_only_when_not_deterministic():
    n, m = 16, 2 * 16 + 8
    args = (
        _rand(B, n, 32, seed=40),
        _rand(B, n, 32, seed=41),
        _rand(B, m, 16, seed=42),
        _rand(B, m, 16, seed=43),
        8,
    )
    module = MemoryAttention(d_model=32, dim_feedforward=64, kv_in_dim=16, num_layers=2)
    det, det_rng, train = _dropout_outputs(module, args)
    np.testing.assert_array_equal(det, det_rng)
    assert np.all(np.isfinite(train[0]))
    assert np.max(np.abs(train[0] - train[1])) > 1e-3
    assert np.max(np.abs(train[0] - det)) > 1e-3


def test_attention_dropout_only_when_not_deterministic():
    module = RoPEAttention(32, 1, dropout=0.5, kv_in_dim=16, rope_k_repeat=True)
    args = (_rand(B, 16, 32, seed=44), _rand(B, 40, 16, seed=45), _rand(B, 40, 16, seed=46), 8)
    det, det_rng, train = _dropout_outputs(module, args)
    np.testing.assert_array_equal(det, det_rng)
    assert np.max(np.abs(train[0] - train[1])) > 1e-3
    assert np.max(np.abs(train[0] - det)) > 1e-3
