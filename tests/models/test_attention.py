"""Query chunking in `dot_product_attention`: per backend, and the same function either way."""

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
    chunked = attention.dot_product_attention(q, k, v, valid)
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "gpu")
    assert attention._num_query_chunks(b, h, nq, nk) == 1
    whole = attention.dot_product_attention(q, k, v, valid)
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), rtol=0, atol=1e-6)
    assert np.abs(np.asarray(whole)).max() > 0.1
