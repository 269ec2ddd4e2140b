"""Image-predictor transforms (<- sam2/utils/transforms.py SAM2Transforms, as used by
sam2/sam2_image_predictor.py).

Pure functions, channels-last:
- `preprocess_image`: torchvision ToTensor (/255) -> Resize((res, res)) on the float tensor
  (bilinear, antialias=True, aspect ratio not kept) -> Normalize(ImageNet mean/std).
- `transform_coords` / `transform_boxes`: pixel or normalised [0, 1] coordinates -> model input
  coordinates (x by width, y by height, times the resolution).
- `postprocess_masks`: low-resolution mask logits -> original image size (bilinear,
  align_corners=False, no antialias). The official hole / sprinkle filling (`max_hole_area`,
  `max_sprinkle_area`, a CUDA connected-components kernel) is off by default in
  SAM2ImagePredictor and is not implemented.
The resizes are jnp ops, so all of this can run under jit (sizes are static).
"""

from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from sam2_jax.ops.interpolate import resize

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)

ArrayLike = Union[np.ndarray, jax.Array]


def _divide(x: jax.Array, divisor: ArrayLike) -> jax.Array:
    """`x / divisor` (broadcast) as a true division, like torch.

    XLA rewrites a division by a broadcast into a multiplication by the reciprocal, which is up
    to 1 ulp off; an optimization barrier on the full-shape divisor keeps the true division
    (bit-exact on CPU; XLA's GPU fp32 division itself may still differ by 1 ulp).
    """
    den = jnp.broadcast_to(jnp.asarray(divisor, x.dtype), x.shape)
    return x / jax.lax.optimization_barrier(den)


def preprocess_image(image: ArrayLike, resolution: int) -> jax.Array:
    """RGB image(s) [H, W, 3] or [B, H, W, 3] -> normalised model input [B, res, res, 3] float32.

    uint8 input is scaled by 1/255 (torchvision ToTensor); floating input is taken as already in
    [0, 1] (ToTensor leaves it unscaled too).
    """
    x = jnp.asarray(image)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3] or [B, H, W, 3], got {x.shape}")
    if x.dtype == jnp.uint8:
        x = _divide(x.astype(jnp.float32), 255.0)
    elif jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    else:
        raise TypeError(f"image dtype must be uint8 or floating, got {x.dtype}")
    x = resize(x, (resolution, resolution), "bilinear", antialias=True, axes=(1, 2))
    mean = jnp.asarray(IMAGE_MEAN, jnp.float32)
    std = jnp.asarray(IMAGE_STD, jnp.float32)
    return _divide(x - mean, std)


def transform_coords(
    coords: ArrayLike, orig_hw: tuple[int, int], resolution: int, normalize: bool
) -> jax.Array:
    """Point coordinates [..., 2] (x, y) -> model input coordinates [..., 2] float32.

    normalize=True: `coords` are pixels of the original (H, W) image and are first divided by
    (W, H); normalize=False: `coords` are already in [0, 1]. Then multiplied by `resolution`.
    """
    coords = jnp.asarray(coords, jnp.float32)
    if normalize:
        h, w = orig_hw
        coords = _divide(coords, jnp.asarray([w, h], jnp.float32))
    return coords * resolution


def transform_boxes(
    boxes: ArrayLike, orig_hw: tuple[int, int], resolution: int, normalize: bool
) -> jax.Array:
    """Boxes [..., 4] (x1, y1, x2, y2) or [..., 2, 2] -> corner points [N, 2, 2] float32.

    N is the number of boxes (all leading axes flattened, as the official reshape(-1, 2, 2)).
    """
    boxes = jnp.asarray(boxes, jnp.float32).reshape(-1, 2, 2)
    return transform_coords(boxes, orig_hw, resolution, normalize)


def postprocess_masks(masks: ArrayLike, orig_hw: tuple[int, int]) -> jax.Array:
    """Mask logits [B, K, h, w] -> float32 [B, K, H, W] at the original image size (H, W).

    The official method also fills small holes and sprinkles first when asked; that filling
    runs on the host (`sam2_jax.ops.fill_holes.fill_holes_and_sprinkles`).
    """
    masks = jnp.asarray(masks).astype(jnp.float32)
    out_hw = (int(orig_hw[0]), int(orig_hw[1]))
    return resize(masks, out_hw, "bilinear", antialias=False)
