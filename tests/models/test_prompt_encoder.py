"""Parity of `sam2_jax.models.prompt_encoder.PromptEncoder` with the official `PromptEncoder`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracle import assert_close, module_params, nchw_to_nhwc, perturb_constant_tensors_
from sam2.modeling.sam.prompt_encoder import PromptEncoder as TorchPromptEncoder

from sam2_jax.models.prompt_encoder import PromptEncoder

TOL = 1e-5  # fp32 sin/cos of |arg| <= ~30 and small convs: errors are ~1e-6
EMBED_DIM = 256
MASK_IN_CHANS = 16
LABELS = np.array([-1, 0, 1, 2, 3])


def build(image_size: int, seed: int = 0):
    """Official encoder (seeded, perturbed, eval), our module and the converted params."""
    emb = image_size // 16
    torch.manual_seed(seed)
    ref = TorchPromptEncoder(EMBED_DIM, (emb, emb), (image_size, image_size), MASK_IN_CHANS)
    perturb_constant_tensors_(ref)
    ref.eval()
    ours = PromptEncoder(EMBED_DIM, (emb, emb), (image_size, image_size), MASK_IN_CHANS)
    return ref, ours, module_params(ref)


def make_inputs(image_size: int, b: int = 3, n: int = 5, seed: int = 0) -> dict:
    """Random pixel points (every label -1..3 in every row), boxes and masks."""
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, image_size, (b, n, 2)).astype(np.float32)
    labels = np.stack([rng.permutation(np.resize(LABELS, n)) for _ in range(b)]).astype(np.int32)
    xy0 = rng.uniform(0, image_size / 2, (b, 2))
    boxes = np.concatenate([xy0, xy0 + rng.uniform(1, image_size / 2, (b, 2))], 1)
    m = 4 * (image_size // 16)
    masks = rng.normal(0, 3, (b, m, m, 1)).astype(np.float32)
    return {"coords": coords, "labels": labels, "boxes": boxes.astype(np.float32), "masks": masks}


def run_ref(ref, x: dict, use: str):
    points = (torch.from_numpy(x["coords"]), torch.from_numpy(x["labels"])) if "p" in use else None
    boxes = torch.from_numpy(x["boxes"]) if "b" in use else None
    masks = torch.from_numpy(np.moveaxis(x["masks"], -1, 1)).contiguous() if "m" in use else None
    with torch.no_grad():
        sparse, dense = ref(points, boxes, masks)
    return sparse, nchw_to_nhwc(dense)


def run_ours(ours, params, x: dict, use: str, mask_valid=None):
    points = (jnp.asarray(x["coords"]), jnp.asarray(x["labels"])) if "p" in use else None
    boxes = jnp.asarray(x["boxes"]) if "b" in use else None
    masks = jnp.asarray(x["masks"]) if "m" in use else None
    return ours.apply(params, points, boxes, masks, mask_valid)


def test_param_tree_matches_official():
    ref, ours, params = build(256)
    x = make_inputs(256)
    full = jax.eval_shape(
        ours.init, jax.random.key(0), (x["coords"], x["labels"]), x["boxes"], x["masks"]
    )
    # Init without prompts must still create every param.
    empty = jax.eval_shape(ours.init, jax.random.key(0), None, None, None)
    expected = jax.tree_util.tree_map(np.shape, params)
    assert jax.tree_util.tree_map(lambda s: s.shape, full) == expected
    assert jax.tree_util.tree_map(lambda s: s.shape, empty) == expected


def test_dense_pe():
    ref, ours, params = build(256)
    pe = ours.apply(params, method=PromptEncoder.get_dense_pe)
    with torch.no_grad():
        assert_close(pe, nchw_to_nhwc(ref.get_dense_pe()), TOL, "dense_pe")


@pytest.mark.parametrize("use", ["p", "b", "m", "pb", "pm", "pbm", ""])
def test_prompts_256(use: str):
    ref, ours, params = build(256)
    x = make_inputs(256)
    sparse, dense = run_ours(ours, params, x, use)
    sparse_ref, dense_ref = run_ref(ref, x, use)
    assert sparse.shape == sparse_ref.shape
    if sparse_ref.shape[1]:
        assert_close(sparse, sparse_ref, TOL, f"sparse[{use}]")
    assert_close(dense, dense_ref, TOL, f"dense[{use}]")


def test_labels_select_embeddings():
    """Each label -1..3 changes the token as official: -1 replaces the PE, 0..3 add."""
    ref, ours, params = build(256)
    x = make_inputs(256, b=2, n=10, seed=1)
    assert set(np.unique(x["labels"])) == set(LABELS)
    sparse, _ = run_ours(ours, params, x, "p")
    sparse_ref, _ = run_ref(ref, x, "p")
    assert_close(sparse, sparse_ref, TOL, "sparse[labels]")
    not_a_point = params["params"]["not_a_point_embed"]["embedding"][0]
    rows = np.asarray(sparse)[:, :-1][x["labels"] == -1]  # the last token is the padding point
    np.testing.assert_array_equal(rows, np.broadcast_to(not_a_point, rows.shape))


def test_mask_valid_mixes_rows():
    ref, ours, params = build(256)
    x = make_inputs(256, b=4)
    valid = np.array([True, False, False, True])
    sparse, dense = run_ours(ours, params, x, "pm", jnp.asarray(valid))
    sparse_m, dense_m = run_ref(ref, x, "pm")
    sparse_n, dense_n = run_ref(ref, x, "p")
    assert_close(sparse, sparse_m, TOL, "sparse[mask_valid]")
    assert_close(sparse, sparse_n, TOL, "sparse[mask_valid] vs no mask")
    for i, v in enumerate(valid):
        assert_close(dense[i], (dense_m if v else dense_n)[i], TOL, f"dense[mask_valid row {i}]")
    assert np.abs(dense_m - dense_n).max() > 1e-2  # the two choices really differ


def test_prompts_1024_config():
    """The SAM2Base shapes: 64x64 embedding, 1024 input, 256x256 mask prompt."""
    ref, ours, params = build(1024, seed=1)
    x = make_inputs(1024, b=1, n=3, seed=2)
    for use in ("pm", "pbm"):
        sparse, dense = run_ours(ours, params, x, use)
        sparse_ref, dense_ref = run_ref(ref, x, use)
        assert_close(sparse, sparse_ref, TOL, f"sparse1024[{use}]")
        assert_close(dense, dense_ref, TOL, f"dense1024[{use}]")
