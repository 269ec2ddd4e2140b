"""`dot_product_attention`: query chunking per backend and key blocks on CPU (the same function
either way), and the value projection after the weights (the same values as before them)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam2_jax.models import attention


@pytest.mark.parametrize(
    "backend, shape, chunks",
    [
        ("cpu", (1, 1, 4096, 28736), 128),  # memory cross-attention at 1024 px: 2^20 per chunk
        ("cpu", (4, 1, 4096, 28736), 128),  # objects do not count on CPU
        ("gpu", (1, 1, 4096, 28736), 1),  # accelerators: the batch's logits up to 2^28
        ("gpu", (16, 1, 4096, 28736), 8),
        ("tpu", (1, 1, 4096, 4096), 1),
    ],
)
def test_num_query_chunks_per_backend(monkeypatch, backend, shape, chunks):
    monkeypatch.setattr(attention.jax, "default_backend", lambda: backend)
    assert attention._num_query_chunks(*shape) == chunks


def test_chunked_equals_unchunked(monkeypatch):
    """The CPU's chunked attention and the accelerators' single pass give the same values,
    masked keys included."""
    rng = np.random.default_rng(0)
    b, h, nq, nk, d = 2, 2, 2048, 1024, 16
    q, k, v = (
        rng.standard_normal(s).astype(np.float32) for s in [(b, h, nq, d)] + [(b, h, nk, d)] * 2
    )
    valid = rng.random((b, nk)) < 0.7
    assert attention._num_query_chunks(b, h, nq, nk) == 2  # this CPU: two chunks
    chunked, chunked_mass = attention.dot_product_attention(q, k, v, valid)
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "gpu")
    assert attention._num_query_chunks(b, h, nq, nk) == 1
    whole, whole_mass = attention.dot_product_attention(q, k, v, valid)
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(chunked_mass), np.asarray(whole_mass))
    assert np.abs(np.asarray(whole)).max() > 0.1


@pytest.mark.parametrize(
    "backend, shape, dropout, block",
    [
        ("cpu", (4096, 28736, 256), False, 256),  # memory attention at 1024 px: 7.4M key floats
        ("cpu", (4096, 28736, 256), True, None),  # dropout keeps the single-pass path
        ("cpu", (1024, 7232, 256), False, None),  # memory attention at 512 px: keys in cache
        ("cpu", (4096, 4096, 96), False, None),  # image encoder's global attention
        ("gpu", (4096, 28736, 256), False, None),
    ],
)
def test_key_block_per_backend(monkeypatch, backend, shape, dropout, block):
    monkeypatch.setattr(attention.jax, "default_backend", lambda: backend)
    assert attention._key_block(*shape, dropout) == block


def test_key_blocks_equal_single_pass(monkeypatch):
    """The online softmax over key blocks (padded: 1000 keys in blocks of 128) gives the single
    pass's values, weight mass and gradients, with masked keys and a batch row without a valid
    key (zeros, mass 0)."""
    rng = np.random.default_rng(2)
    b, h, nq, nk, d = 2, 1, 512, 1000, 32
    q, k, v = (
        rng.standard_normal(s).astype(np.float32) for s in [(b, h, nq, d)] + [(b, h, nk, d)] * 2
    )
    valid = rng.random((b, nk)) < 0.7
    valid[1] = False
    loss = lambda q, k, v: jnp.sum(attention.dot_product_attention(q, k, v, valid)[0] ** 2)  # noqa: E731
    monkeypatch.setattr(attention, "CPU_CACHED_KEYS", 1 << 12)
    monkeypatch.setattr(attention, "CPU_CHUNK_LOGITS", 1 << 16)
    assert attention._key_block(nq, nk, d, False) == 128
    blocked, blocked_mass = attention.dot_product_attention(q, k, v, valid)
    blocked_grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "gpu")
    assert attention._key_block(nq, nk, d, False) is None
    whole, whole_mass = attention.dot_product_attention(q, k, v, valid)
    whole_grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    np.testing.assert_allclose(np.asarray(blocked), np.asarray(whole), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(blocked_mass), np.asarray(whole_mass))
    assert np.all(np.asarray(whole_mass)[0] == 1) and np.all(np.asarray(whole_mass)[1] == 0)
    assert np.all(np.asarray(blocked)[1] == 0) and np.abs(np.asarray(whole)[0]).max() > 0.1
    for got, want in zip(blocked_grads, whole_grads):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)
        assert np.abs(np.asarray(want)).max() > 0.01


@pytest.mark.parametrize("dropout_rate", [0.0, 0.5])
def test_value_projection_after_the_weights(dropout_rate):
    """A (M W + b) = (A M) W + (A 1) b: the memory attention's one head over 64-channel keys
    projects its values after the weights; against projecting them first, with masked keys, a
    batch row with no valid key (zeros) and dropout (the same mask: the same rng and shapes)."""
    rng = np.random.default_rng(1)
    b, nq, nk, kv_dim, dim = 2, 64, 96, 16, 32
    q, k = (rng.standard_normal((b, 1, n, dim)).astype(np.float32) for n in (nq, nk))
    memory = rng.standard_normal((b, 1, nk, kv_dim)).astype(np.float32)
    kernel = rng.standard_normal((kv_dim, dim)).astype(np.float32)
    bias = rng.standard_normal(dim).astype(np.float32)
    valid = rng.random((b, nk)) < 0.7
    valid[1] = False
    key = jax.random.key(0)
    first, first_mass = attention.dot_product_attention(
        q, k, memory @ kernel + bias, valid, dropout_rate, key
    )
    weighted, mass = attention.dot_product_attention(q, k, memory, valid, dropout_rate, key)
    last = np.asarray(weighted) @ kernel + np.asarray(mass) * bias
    np.testing.assert_allclose(last, np.asarray(first), rtol=0, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(mass), np.asarray(first_mass))
    assert np.all(np.asarray(first)[1] == 0) and np.abs(np.asarray(first)[0]).max() > 0.5
    if dropout_rate == 0.0:
        assert np.all(np.asarray(mass)[0] == 1.0)
    else:
        assert np.abs(np.asarray(mass)[0] - 1.0).max() > 0.01  # dropout leaves rows off 1


def test_attention_module_projects_values_last_only_where_cheaper():
    """`Attention` keeps the official params either way; it projects values after the weights
    only with one head and keys narrower than the projections (the memory attention)."""
    one_head = attention.Attention(256, 1, kv_in_dim=64)
    assert one_head._project_values_last(64) and not one_head._project_values_last(256)
    assert not attention.Attention(256, 8, downsample_rate=2)._project_values_last(256)
    x, memory = jax.numpy.ones((1, 4, 256)), jax.numpy.ones((1, 8, 64))
    params = one_head.init(jax.random.key(0), x, memory, memory)["params"]
    assert params["v_proj"]["kernel"].shape == (64, 256)
