"""sam2_jax.transforms vs the official sam2.utils.transforms.SAM2Transforms.

The official module runs on the stand-in torchvision (tests/support/torchvision), whose Resize
is the same F.interpolate(bilinear, antialias=True) call that torchvision makes on tensors.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from oracle import assert_close, nchw_to_nhwc
from PIL import Image
from sam2.utils.transforms import SAM2Transforms

from sam2_jax.transforms import (
    postprocess_masks,
    preprocess_image,
    transform_boxes,
    transform_coords,
)

# Normalised pixels O(2.6): resize weights equal torch's, the rest is fp32 summation order.
TOL_IMAGE = 1e-5
# The same fp32 operations in the same order (true division included) give the same bits.
TOL_COORDS = 0.0
# Mask logits O(40): identical bilinear weights, ~2 fp32 ulps of summation order (FMA or not).
TOL_MASKS = 2e-5

IMAGES_DIR = SHARED_DATA / "sam2_demo" / "images"


@functools.lru_cache(maxsize=None)
def _official(resolution: int) -> SAM2Transforms:
    return SAM2Transforms(resolution=resolution, mask_threshold=0.0)


@pytest.mark.parametrize("name,resolution", [("groceries.jpg", 1024), ("truck.jpg", 512)])
def test_preprocess_real_image(name, resolution):
    image = np.array(Image.open(IMAGES_DIR / name).convert("RGB"))
    ref = _official(resolution)(image)
    ours = preprocess_image(image, resolution)
    assert ours.shape == (1, resolution, resolution, 3) and ours.dtype == jnp.float32
    assert_close(ours[0], nchw_to_nhwc(ref[None])[0], TOL_IMAGE, f"{name} @ {resolution}")


@pytest.mark.parametrize("hw,resolution", [((75, 130), 128), ((300, 200), 256), ((64, 64), 64)])
def test_preprocess_random_batch(hw, resolution):
    images = np.random.default_rng(0).integers(0, 256, size=(2, *hw, 3), dtype=np.uint8)
    ref = _official(resolution).forward_batch(list(images))
    ours = jax.jit(preprocess_image, static_argnums=1)(images, resolution)
    assert_close(ours, nchw_to_nhwc(ref), TOL_IMAGE, f"batch {hw} @ {resolution}")


def test_preprocess_pil_input_matches_array():
    """The official predictor also takes PIL images; ToTensor makes them the same tensor."""
    image = np.random.default_rng(1).integers(0, 256, size=(40, 70, 3), dtype=np.uint8)
    ref = _official(96)(Image.fromarray(image))
    assert_close(preprocess_image(image, 96), nchw_to_nhwc(ref[None]), TOL_IMAGE, "PIL input")


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="RGB"):
        preprocess_image(np.zeros((8, 8), np.uint8), 16)
    with pytest.raises(TypeError, match="dtype"):
        preprocess_image(np.zeros((8, 8, 3), np.int32), 16)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shape", [(5, 2), (3, 4, 2), (2,)])
def test_transform_coords(shape, normalize):
    orig_hw = (534, 800)
    scale = 800.0 if normalize else 1.0
    coords = (np.random.default_rng(2).uniform(size=shape) * scale).astype(np.float32)
    ref = _official(1024).transform_coords(
        torch.as_tensor(coords, dtype=torch.float), normalize=normalize, orig_hw=orig_hw
    )
    ours = transform_coords(coords, orig_hw, 1024, normalize)
    assert ours.dtype == jnp.float32
    assert_close(ours, ref, TOL_COORDS, f"coords {shape} normalize={normalize}")


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4), (3, 2, 2)])
def test_transform_boxes(shape, normalize):
    orig_hw = (1200, 1800)
    scale = 1800.0 if normalize else 1.0
    boxes = (np.random.default_rng(3).uniform(size=shape) * scale).astype(np.float32)
    ref = _official(512).transform_boxes(
        torch.as_tensor(boxes, dtype=torch.float), normalize=normalize, orig_hw=orig_hw
    )
    ours = transform_boxes(boxes, orig_hw, 512, normalize)
    assert ours.shape[1:] == (2, 2)
    assert_close(ours, ref, TOL_COORDS, f"boxes {shape} normalize={normalize}")


@pytest.mark.parametrize(
    "low_hw,orig_hw", [((64, 64), (150, 227)), ((64, 64), (40, 50)), ((256, 256), (534, 800))]
)
def test_postprocess_masks(low_hw, orig_hw):
    logits = (10 * np.random.default_rng(4).normal(size=(2, 3, *low_hw))).astype(np.float32)
    ref = _official(1024).postprocess_masks(torch.from_numpy(logits), orig_hw)
    ours = jax.jit(postprocess_masks, static_argnums=1)(logits, orig_hw)
    assert_close(ours, ref, TOL_MASKS, f"masks {low_hw} -> {orig_hw}")
