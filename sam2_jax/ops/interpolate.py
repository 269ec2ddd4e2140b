"""PyTorch-exact 2-D resampling (<- torch.nn.functional.interpolate, align_corners=False).

Mirrors aten/src/ATen/native/UpSample.h and cpu/UpSampleKernel.cpp:
- "bilinear": source coordinate `scale * (dst + 0.5) - 0.5` clamped at 0, upper neighbour
  clamped to the last pixel.
- "bicubic": Keys convolution with A = -0.75 on the unclamped source coordinate; the four tap
  indices are clamped into the image.
- antialias=True ("bilinear"/"bicubic", `_upsample_*2d_aa`): separable PIL-style filter
  (triangle, or Keys with A = -0.5) whose support is widened by the downscale factor, taps
  `[xmin, xmin + xsize)` around the centre `scale * (dst + 0.5)`, weights renormalised to sum 1.
  For bilinear upsampling this equals the plain bilinear path.
- "nearest": the legacy index `min(floor(dst * scale), in - 1)`, computed in float32 as torch.

`scale` is always `float32(in) / float32(out)`, as torch computes it when `size` is given.
Sizes are static, so the 1-D resampling matrices are built in NumPy with torch's own fp32
arithmetic (fused multiply-adds included) for coordinates and weights, cast to the input dtype
and applied with tensordot (fp32 accumulation, HIGHEST precision so GPUs do not use TF32);
"nearest" is a gather. The last spatial axis is resampled first, as torch's separable kernel does.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ("bilinear", "bicubic", "nearest")
_BICUBIC_A = -0.75  # torch upsample_bicubic2d
_BICUBIC_AA_A = -0.5  # torch _upsample_bicubic2d_aa (PIL's value)


def _torch_scale(in_size: int, out_size: int) -> np.float32:
    """`area_pixel_compute_scale<float>` without a scale factor: in / out in fp32."""
    return np.float32(in_size) / np.float32(out_size)


def _fma32(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """fp32 `p * q + r` rounded once (the fused multiply-add torch's compiled kernels use)."""
    return (np.float64(p) * np.float64(q) + np.float64(r)).astype(np.float32)


def _keys_kernel(x: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic kernel as torch's fp32 `cubic_convolution{1,2}` (fused), 0 at |x| >= 2."""
    x = np.abs(x).astype(np.float32)
    a = np.float32(a)
    near = _fma32(_fma32(a + np.float32(2), x, -(a + np.float32(3))) * x, x, np.float32(1))
    far = _fma32(a, x, -(np.float32(5) * a))
    far = _fma32(_fma32(far, x, np.float32(8) * a), x, -(np.float32(4) * a))
    return np.where(x < 1.0, near, np.where(x < 2.0, far, np.float32(0)))


def _triangle_kernel(x: np.ndarray) -> np.ndarray:
    """The bilinear antialias filter `max(1 - |x|, 0)` in fp32."""
    return np.maximum(np.float32(1) - np.abs(x).astype(np.float32), np.float32(0))


def _dense(cols: np.ndarray, vals: np.ndarray, in_size: int) -> np.ndarray:
    """Accumulate taps (cols, vals: [out, taps]) into a dense [out, in] float64 matrix.

    Taps that hit the same column (clamped borders) add up.
    """
    out_size = cols.shape[0]
    rows = np.broadcast_to(np.arange(out_size)[:, None], cols.shape)
    mat = np.zeros((out_size, in_size), np.float64)
    np.add.at(mat, (rows.ravel(), cols.ravel()), vals.astype(np.float64).ravel())
    return mat


def _source_index_and_lambda(
    in_size: int, out_size: int, cubic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """torch `area_pixel_compute_source_index` + `guard_index_and_lambda`, fp32.

    `scale * (dst + 0.5) - 0.5` is rounded once to fp32, as torch's compiled kernel (a fused
    multiply-add) does. Returns the floor index [out] (int64, may be -1 for cubic) and the
    fraction lambda [out] (fp32).
    """
    dst = np.arange(out_size, dtype=np.float64)
    src = (np.float64(_torch_scale(in_size, out_size)) * (dst + 0.5) - 0.5).astype(np.float32)
    if not cubic:
        src = np.maximum(src, np.float32(0))
    idx = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - idx.astype(np.float32), np.float32(0), np.float32(1))
    return idx, lam


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch `upsample_bilinear2d` along one axis."""
    idx0, lam1 = _source_index_and_lambda(in_size, out_size, cubic=False)
    idx1 = idx0 + (idx0 < in_size - 1)
    cols = np.stack([idx0, idx1], axis=1)
    vals = np.stack([np.float32(1) - lam1, lam1], axis=1)
    return _dense(cols, vals, in_size)


def _bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch `upsample_bicubic2d` along one axis (A = -0.75)."""
    idx, t = _source_index_and_lambda(in_size, out_size, cubic=True)
    one = np.float32(1)
    dist = np.stack([t + one, t, one - t, (one - t) + one], axis=1)
    vals = _keys_kernel(dist, _BICUBIC_A)
    cols = np.clip(idx[:, None] + np.arange(-1, 3)[None, :], 0, in_size - 1)
    return _dense(cols, vals, in_size)


def _antialias_matrix(in_size: int, out_size: int, method: str) -> np.ndarray:
    """[out, in] weights of torch `_upsample_{bilinear,bicubic}2d_aa` along one axis.

    Follows `_compute_indices_min_size_weights_aa` including its fp32/double mix.
    """
    interp_size = 2 if method == "bilinear" else 4
    scale = _torch_scale(in_size, out_size)
    if scale >= 1.0:
        support = np.float32(interp_size * 0.5 * np.float64(scale))
        invscale = np.float32(1.0 / np.float64(scale))
    else:
        support, invscale = np.float32(interp_size * 0.5), np.float32(1)
    max_taps = int(np.ceil(support)) * 2 + 1
    center = (np.float64(scale) * (np.arange(out_size) + 0.5)).astype(np.float32)
    xmin = np.maximum(np.trunc((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    xmax = np.trunc((center + support).astype(np.float64) + 0.5).astype(np.int64)
    xsize = np.clip(np.minimum(xmax, in_size) - xmin, 0, max_taps)
    taps = np.arange(max_taps)[None, :]
    cols = xmin[:, None] + taps
    offset = cols.astype(np.float32) - center[:, None]
    x = ((offset.astype(np.float64) + 0.5) * np.float64(invscale)).astype(np.float32)
    if method == "bilinear":
        vals = _triangle_kernel(x)
    else:
        vals = _keys_kernel(x, _BICUBIC_AA_A)
    vals = np.where(taps < xsize[:, None], vals, np.float32(0))
    total = np.zeros(out_size, np.float32)
    for j in range(max_taps):  # sequential fp32 sum, as torch
        total = total + vals[:, j]
    safe_total = np.where(total != 0, total, np.float32(1))[:, None]
    return _dense(np.minimum(cols, in_size - 1), vals / safe_total, in_size)


@functools.lru_cache(maxsize=None)
def resize_matrix(in_size: int, out_size: int, method: str, antialias: bool) -> np.ndarray:
    """Read-only float64 [out_size, in_size] matrix of torch's 1-D bilinear/bicubic resampling.

    Entries are the fp32 weights torch computes (float64 only where clamped taps add up).
    """
    if antialias:
        mat = _antialias_matrix(in_size, out_size, method)
    elif method == "bilinear":
        mat = _bilinear_matrix(in_size, out_size)
    else:
        mat = _bicubic_matrix(in_size, out_size)
    mat.setflags(write=False)
    return mat


@functools.lru_cache(maxsize=None)
def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Read-only int32 [out_size] source indices of torch's legacy "nearest" (fp32 arithmetic)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    idx = np.minimum(src, in_size - 1).astype(np.int32)
    idx.setflags(write=False)
    return idx


@functools.lru_cache(maxsize=None)
def _taps(in_size: int, out_size: int, method: str, antialias: bool):
    """(indices [out, K] int32, weights [out, K]) of the matrix's K nonzeros per row, or None
    when the matrix is not sparse enough for gathering to beat a dense product."""
    mat = resize_matrix(in_size, out_size, method, antialias)
    k = int((mat != 0).sum(axis=1).max())
    if 4 * k > in_size:
        return None
    idx = np.zeros((out_size, k), np.int32)
    w = np.zeros((out_size, k), np.float64)
    for o in range(out_size):
        cols = np.flatnonzero(mat[o])
        idx[o, : len(cols)], w[o, : len(cols)] = cols, mat[o, cols]
    return idx, w


def _resize_axis(x: jax.Array, out_size: int, axis: int, method: str, antialias: bool) -> jax.Array:
    """Resample one axis of `x` to `out_size` (same dtype)."""
    in_size = x.shape[axis]
    if in_size == out_size:  # every torch mode is the identity here
        return x
    if method == "nearest":
        return jnp.take(x, jnp.asarray(nearest_indices(in_size, out_size)), axis=axis)
    taps = _taps(in_size, out_size, method, antialias)
    if taps is not None:  # few taps per output (upsampling): gather + weighted sum
        idx, w = taps
        shape = [1] * x.ndim
        shape[axis] = out_size
        y = jnp.zeros(x.shape[:axis] + (out_size,) + x.shape[axis + 1 :], jnp.float32)
        for t in range(idx.shape[1]):
            wt = jnp.asarray(w[:, t], jnp.float32).reshape(shape)
            y = y + jnp.take(x, jnp.asarray(idx[:, t]), axis=axis).astype(jnp.float32) * wt
        return y.astype(x.dtype)
    mat = jnp.asarray(resize_matrix(in_size, out_size, method, antialias), dtype=x.dtype)
    y = jnp.tensordot(
        x,
        mat,
        axes=((axis,), (1,)),
        precision=jax.lax.Precision.HIGHEST,
        preferred_element_type=jnp.float32,
    )
    return jnp.moveaxis(y, -1, axis).astype(x.dtype)


def resize(
    x: jax.Array,
    size: tuple[int, int],
    method: str = "bilinear",
    antialias: bool = False,
    axes: tuple[int, int] = (-2, -1),
) -> jax.Array:
    """`F.interpolate(x, size, mode=method, align_corners=False, antialias=antialias)`.

    x: any array whose `axes` are the spatial (H, W) axes, e.g. masks [B, K, H, W] with the
    default axes or images [B, H, W, C] with axes=(1, 2). Returns x with those axes resized to
    `size` = (out_h, out_w), same dtype. "nearest" ignores `antialias` (as torch refuses it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = jnp.asarray(x)
    if method != "nearest" and not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{method} resize needs a floating dtype, got {x.dtype}")
    axis_h, axis_w = (a % x.ndim for a in axes)
    out_h, out_w = size
    x = _resize_axis(x, out_w, axis_w, method, antialias)
    return _resize_axis(x, out_h, axis_h, method, antialias)
