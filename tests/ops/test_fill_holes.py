"""sam2_jax.ops.fill_holes vs a brute-force flood fill.

The official fill_holes_in_mask_scores needs the CUDA extension `sam2._C` (absent here: it then
warns and returns the input), so the reference is its definition written out: 8-connected
components of `mask <= 0` with area <= max_area, border-touching ones included, are set to 0.1.
"""

from collections import deque

import numpy as np
import pytest
from oracle import assert_close

from sam2_jax.ops.fill_holes import fill_holes_in_mask_scores

# Selected pixels are replaced by float32(0.1) and the others copied: identical results.
TOL = 0.0
NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _brute_force(mask: np.ndarray, max_area: int) -> np.ndarray:
    """BFS over the 8-neighbourhood of every background pixel of each [H, W] image."""
    out = mask.copy()
    for n in range(mask.shape[0]):
        background = mask[n, 0] <= 0
        height, width = background.shape
        seen = np.zeros_like(background)
        for y0 in range(height):
            for x0 in range(width):
                if not background[y0, x0] or seen[y0, x0]:
                    continue
                seen[y0, x0] = True
                component, queue = [], deque([(y0, x0)])
                while queue:
                    y, x = queue.popleft()
                    component.append((y, x))
                    for dy, dx in NEIGHBOURS:
                        v, u = y + dy, x + dx
                        if (
                            0 <= v < height
                            and 0 <= u < width
                            and background[v, u]
                            and not seen[v, u]
                        ):
                            seen[v, u] = True
                            queue.append((v, u))
                if len(component) <= max_area:
                    for y, x in component:
                        out[n, 0, y, x] = np.float32(0.1)
    return out


def _random_masks(seed: int, shape=(3, 1, 24, 32)) -> np.ndarray:
    """Foreground logits with background blobs of sizes 1..~40, noise pixels and exact zeros."""
    rng = np.random.default_rng(seed)
    mask = rng.uniform(0.5, 5.0, shape).astype(np.float32)
    height, width = shape[-2:]
    for n in range(shape[0]):
        for _ in range(12):
            h, w = rng.integers(1, 7, size=2)
            y, x = rng.integers(-2, height, size=1)[0], rng.integers(-2, width, size=1)[0]
            mask[n, 0, max(y, 0) : y + h, max(x, 0) : x + w] = -rng.uniform(0.0, 5.0)
        noise = rng.random((height, width)) < 0.05
        mask[n, 0][noise] = rng.choice([-1.0, 0.0], size=int(noise.sum()))
    return mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_area", [1, 2, 5, 8, 20, 100])
def test_random_masks_match_brute_force(seed, max_area):
    mask = _random_masks(seed)
    ref = _brute_force(mask, max_area)
    ours = fill_holes_in_mask_scores(mask, max_area)
    assert ours.shape == mask.shape and ours.dtype == np.float32
    assert_close(ours, ref, TOL, f"fill holes seed={seed} max_area={max_area}")
    if max_area >= 5:
        assert (ours != mask).any()


def _single(image: list[list[float]]) -> np.ndarray:
    return np.asarray(image, np.float32)[None, None]


def test_diagonal_neighbours_are_connected():
    # Two background pixels touching only at a corner form one component of area 2.
    mask = _single([[1, 1, 1, 1], [1, -1, 1, 1], [1, 1, -1, 1], [1, 1, 1, 1]])
    assert_close(fill_holes_in_mask_scores(mask, 1), mask, TOL, "area 2 > max_area 1")
    filled = fill_holes_in_mask_scores(mask, 2)
    assert_close(filled, _brute_force(mask, 2), TOL, "diagonal pair filled")
    assert filled[0, 0, 1, 1] == np.float32(0.1) and filled[0, 0, 2, 2] == np.float32(0.1)


def test_border_touching_holes_and_area_boundary():
    # A 3-pixel corner region (touches the border) and a 4-pixel interior hole.
    mask = _single(
        [
            [-1, -2, 1, 1, 1, 1],
            [0, 1, 1, 1, 1, 1],
            [1, 1, 1, -1, -1, 1],
            [1, 1, 1, -1, -1, 1],
            [1, 1, 1, 1, 1, 1],
        ]
    )
    for max_area in [2, 3, 4, 5]:
        ours = fill_holes_in_mask_scores(mask, max_area)
        assert_close(ours, _brute_force(mask, max_area), TOL, f"boundary max_area={max_area}")
        corner_filled = bool((ours[0, 0, :2, :2][mask[0, 0, :2, :2] <= 0] == 0.1).all())
        interior_filled = bool((ours[0, 0, 2:4, 3:5] == np.float32(0.1)).all())
        assert corner_filled == (max_area >= 3)  # area == max_area is filled, +1 is not
        assert interior_filled == (max_area >= 4)


def test_all_background_and_non_positive_max_area():
    mask = np.full((2, 1, 5, 7), -3.0, np.float32)
    assert_close(
        fill_holes_in_mask_scores(mask, 35),
        np.full_like(mask, 0.1),
        TOL,
        "whole image is one component of area 35",
    )
    assert_close(fill_holes_in_mask_scores(mask, 34), mask, TOL, "area 35 > 34")
    random = _random_masks(5)
    for max_area in [0, -4]:
        assert fill_holes_in_mask_scores(random, max_area) is random
