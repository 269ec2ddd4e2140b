"""Training clip augmentations (<- training/dataset/transforms.py: RandomHorizontalFlip,
RandomAffine, RandomResizeAPI, ColorJitter, RandomGrayscale; and the torchvision functional ops
they call: F.hflip, F.affine, F.resize, F.adjust_brightness/contrast/saturation,
F.rgb_to_grayscale), in the order of `vos.train_transforms` of
sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml:

1. RandomHorizontalFlip(consistent, p=0.5): frames and masks of every frame, or none.
2. RandomAffine(degrees=25, shear=20, bilinear, consistent): one rotation U[-25, 25] degrees and
   one x-shear U[-20, 20] degrees about the image centre (no scale, translation or y-shear).
   Frames: PIL bilinear, fill (123, 116, 103). Masks: nearest, fill 0. If the transformed mask of
   any object is empty on frame 0, the whole clip is left untransformed (num_tentatives=1).
3. RandomResizeAPI(sizes=S, square=True, consistent): both sides to S, aspect ratio not kept.
   Frames: PIL bilinear (antialiased). Masks: as torchvision's tensor F.resize of the 0/1 uint8
   mask: antialiased bilinear in float32, rounded half-to-even, so a pixel is set iff the
   interpolated value is > 0.5.
4. ColorJitter(consistent, brightness 0.1, contrast 0.03, saturation 0.03, hue None).
5. RandomGrayscale(p=0.05, consistent).
6. ColorJitter(per frame, brightness 0.1, contrast 0.05, saturation 0.05, hue None).

The official frames are PIL images up to ToTensorAPI, so frame ops here are the same PIL calls
(bit-identical for the same Pillow). The official masks are torch tensors; `affine_masks` and
`resize_masks` reproduce torch's float32 arithmetic (affine grid + grid_sample nearest;
separable antialiased bilinear with fused multiply-adds) and match it bit for bit in the tests.
ToTensorAPI / NormalizeAPI are left to the model input: frames stay [T, S, S, 3] uint8.

Randomness comes from the `np.random.Generator` passed to `augment_clip` (the official uses
Python's `random` and torch's generator): the distributions are the official ones.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance

from sam2_jax.data.clips import Clip, ClipConfig

Images = list[Image.Image]
# `resize_masks` recomputes exactly (torch's float32 arithmetic) every pixel whose PIL (float64)
# value is within this margin of the 0.5 threshold; both computations of the same interpolation
# differ by < 1e-6 (float32 weights and sums of <= a few dozen terms).
TIE_MARGIN = 1e-4


# ----------------------------------------------------------------------------- flip


def hflip(images: Images, masks: np.ndarray) -> tuple[Images, np.ndarray]:
    """Mirror left-right frames (PIL) and masks [..., H, W] (F.hflip)."""
    flipped = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]
    return flipped, np.ascontiguousarray(masks[..., ::-1])


# ----------------------------------------------------------------------------- affine


def _inverse_rss(angle: float, shear_x: float) -> tuple[float, float, float, float]:
    """The inverse rotation-shear 2x2 matrix (row-major) of torchvision's
    `_get_inverse_affine_matrix` for scale 1 and y-shear 0, same float operations."""
    rot = math.radians(angle)
    sx = math.radians(shear_x)
    sy = math.radians(0.0)
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    return d, -b, -c, a


def affine_matrix(width: int, height: int, angle: float, shear_x: float) -> tuple[float, ...]:
    """PIL's inverse affine coefficients (a, b, c, d, e, f: output pixel -> input point) of a
    rotation by `angle` and an x-shear by `shear_x` (degrees) about the image centre
    (width / 2, height / 2), as torchvision's F.affine builds them for a PIL image."""
    m0, m1, m3, m4 = _inverse_rss(angle, shear_x)
    cx, cy = width * 0.5, height * 0.5
    return m0, m1, m0 * -cx + m1 * -cy + cx, m3, m4, m3 * -cx + m4 * -cy + cy


def affine_images(images: Images, angle: float, shear_x: float, fill: Sequence[int]) -> Images:
    """Rotate and x-shear PIL RGB images about their centre (bilinear, `fill` outside)."""
    out = []
    for image in images:
        matrix = affine_matrix(image.width, image.height, angle, shear_x)
        out.append(
            image.transform(
                image.size,
                Image.Transform.AFFINE,
                matrix,
                Image.Resampling.BILINEAR,
                fillcolor=tuple(int(v) for v in fill),
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class _Gather:
    """A resampling of [H, W] maps: output pixels `inside` [H * W] bool take the input pixel
    `source` [P] (flat indices); the others are 0."""

    inside: np.ndarray
    source: np.ndarray


def _affine_gather(height: int, width: int, angle: float, shear_x: float) -> _Gather:
    """Nearest-neighbour sampling of torchvision's tensor F.affine (fill 0): theta in float32,
    `_gen_affine_grid` (pixel-centre grid times theta^T / (W/2, H/2)), then grid_sample
    (align_corners=False: ((g + 1) * size - 1) / 2, round half to even, zeros outside)."""
    m0, m1, m3, m4 = _inverse_rss(angle, shear_x)
    f32 = np.float32
    theta = np.array([[m0, m1, 0.0], [m3, m4, 0.0]], f32)
    rescaled = theta.T / np.array([0.5 * width, 0.5 * height], f32)  # [3, 2]
    xs = (np.arange(width) + (-width * 0.5 + 0.5)).astype(f32)[None, :]
    ys = (np.arange(height) + (-height * 0.5 + 0.5)).astype(f32)[:, None]

    def pixel(column: int, size: int) -> np.ndarray:
        grid = xs * rescaled[0, column] + ys * rescaled[1, column] + rescaled[2, column]
        return np.rint(((grid + f32(1)) * f32(size) - f32(1)) / f32(2))

    ix, iy = pixel(0, width), pixel(1, height)
    inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
    source = iy[inside].astype(np.int64) * width + ix[inside].astype(np.int64)
    return _Gather(inside=inside.ravel(), source=source)


def _apply_gather(masks: np.ndarray, gather: _Gather) -> np.ndarray:
    """masks [..., H, W] bool resampled by `gather`."""
    flat = masks.reshape(-1, masks.shape[-2] * masks.shape[-1])
    out = np.zeros_like(flat)
    out[:, gather.inside] = flat[:, gather.source]
    return out.reshape(masks.shape)


def affine_masks(masks: np.ndarray, angle: float, shear_x: float) -> np.ndarray:
    """Rotate and x-shear masks [..., H, W] bool about the image centre: nearest, 0 outside, as
    torchvision's F.affine on the official uint8 mask tensors."""
    height, width = masks.shape[-2:]
    return _apply_gather(masks, _affine_gather(height, width, angle, shear_x))


def random_affine(
    images: Images, masks: np.ndarray, angle: float, shear_x: float, fill: Sequence[int]
) -> tuple[Images, np.ndarray]:
    """RandomAffine with drawn parameters: frames and masks [T, O, H, W] transformed together,
    or both returned unchanged when an object's transformed mask is empty on frame 0."""
    gather = _affine_gather(masks.shape[-2], masks.shape[-1], angle, shear_x)
    first = _apply_gather(masks[:1], gather)
    if not first.reshape(first.shape[1], -1).any(axis=1).all():
        return images, masks
    warped = np.concatenate([first, _apply_gather(masks[1:], gather)])
    return affine_images(images, angle, shear_x, fill), warped


# ----------------------------------------------------------------------------- resize


def resize_images(images: Images, size: int) -> Images:
    """PIL images resized to size x size (bilinear, antialiased), as F.resize on PIL."""
    return [image.resize((size, size), Image.Resampling.BILINEAR) for image in images]


def _aa_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input index [out], weights [out, K] float32) of torch's antialiased bilinear
    interpolation along one axis (aten UpSampleKernel `_compute_indices_min_size_weights_aa`,
    float32, align_corners=False); the identity when the size is unchanged (the pass is
    skipped). Weights past an output's support are 0."""
    if in_size == out_size:
        return np.arange(out_size), np.ones((out_size, 1), np.float32)
    f32 = np.float32
    scale = f32(f32(in_size) / f32(out_size))
    support = scale if scale >= 1 else f32(1)
    invscale = f32(f32(1) / scale) if scale >= 1 else f32(1)
    centre = (np.float64(scale) * (np.arange(out_size) + 0.5)).astype(f32)
    low = np.maximum(np.trunc((centre - support) + 0.5).astype(np.int64), 0)
    high = np.minimum(np.trunc((centre + support) + 0.5).astype(np.int64), in_size)
    taps = int((high - low).max())
    k = np.arange(taps)
    offset = (k[None] + low[:, None]).astype(f32) - centre[:, None]
    x = np.abs(((offset.astype(np.float64) + 0.5) * np.float64(invscale)).astype(f32))
    weights = np.where((x < 1) & (k[None] < (high - low)[:, None]), f32(1) - x, f32(0))
    total = np.zeros(out_size, f32)
    for j in range(taps):
        total = total + weights[:, j]
    weights = np.where(total[:, None] != 0, weights / total[:, None], weights)
    return low, weights.astype(f32)


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add a * b + c (the float64 product of float32 values is exact)."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


def _exact_aa_values(masks: np.ndarray, index: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """torch's float32 antialiased bilinear values [P] of the 0/1 masks [N, H, W] at output
    pixels `index` = (n, i, j) [P] each: a horizontal pass then a vertical one, each output
    t0 * w0 then fused multiply-adds in tap order (bit-exact with aten's CPU kernel)."""
    height, width = masks.shape[-2:]
    n, i, j = index
    x_low, x_weights = _aa_weights(width, size)
    y_low, y_weights = _aa_weights(height, size)
    cols = np.minimum(x_low[j, None] + np.arange(x_weights.shape[1]), width - 1)  # [P, Kx]
    rows = np.minimum(y_low[i, None] + np.arange(y_weights.shape[1]), height - 1)  # [P, Ky]
    taps = masks[n[:, None, None], rows[:, :, None], cols[:, None, :]]  # [P, Ky, Kx]
    wx = x_weights[j][:, None, :]
    # Horizontal: products of 0/1 with a weight are exact, so the FMAs are plain float32 sums.
    rows_sum = np.where(taps[..., 0], wx[..., 0], np.float32(0))
    for k in range(1, x_weights.shape[1]):
        rows_sum = rows_sum + np.where(taps[..., k], wx[..., k], np.float32(0))
    wy = y_weights[i]
    out = rows_sum[:, 0] * wy[:, 0]
    for k in range(1, y_weights.shape[1]):
        out = _fma32(rows_sum[:, k], wy[:, k], out)
    return out


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """Masks [..., H, W] bool -> [..., size, size] bool as the official
    `F.resize(mask_uint8[None, None], (size, size))`: antialiased bilinear of the 0/1 values,
    rounded (half to even), i.e. set iff the interpolated value is > 0.5.

    Values come from PIL's float resampling (the same filter and support in float64); pixels
    within TIE_MARGIN of 0.5 are recomputed with torch's float32 arithmetic.
    """
    lead, (height, width) = masks.shape[:-2], masks.shape[-2:]
    flat = masks.reshape(-1, height, width)
    if (height, width) == (size, size):
        return flat.reshape(lead + (size, size)).copy()
    values = np.stack(
        [
            np.asarray(
                Image.fromarray(m.astype(np.float32)).resize(
                    (size, size), Image.Resampling.BILINEAR
                )
            )
            for m in flat
        ]
    )
    out = values > 0.5
    near = np.nonzero(np.abs(values - 0.5) <= TIE_MARGIN)
    if near[0].size:
        out[near] = _exact_aa_values(flat, near, size) > 0.5
    return out.reshape(lead + (size, size))


# ----------------------------------------------------------------------------- colour


@dataclasses.dataclass(frozen=True)
class JitterParams:
    """One ColorJitter draw (T.ColorJitter.get_params): `order` a permutation of 0..3 (0
    brightness, 1 contrast, 2 saturation, 3 hue: never applied, hue is None) and the factors."""

    order: tuple[int, ...]
    brightness: float
    contrast: float
    saturation: float


def draw_jitter(rng: np.random.Generator, strengths: Sequence[float]) -> JitterParams:
    """ColorJitter parameters for (brightness, contrast, saturation) strengths s: each factor
    U[max(0, 1 - s), 1 + s], in random order."""
    order = tuple(int(v) for v in rng.permutation(4))
    factors = [float(rng.uniform(max(0.0, 1.0 - s), 1.0 + s)) for s in strengths]
    return JitterParams(order, *factors)


def adjust_colour(image: Image.Image, params: JitterParams) -> Image.Image:
    """ColorJitter's F.adjust_brightness / contrast / saturation on a PIL image, in
    `params.order` (PIL ImageEnhance Brightness, Contrast, Color)."""
    enhancers = {
        0: (ImageEnhance.Brightness, params.brightness),
        1: (ImageEnhance.Contrast, params.contrast),
        2: (ImageEnhance.Color, params.saturation),
    }
    for fn in params.order:
        if fn in enhancers:
            enhancer, factor = enhancers[fn]
            image = enhancer(image).enhance(factor)
    return image


def grayscale(image: Image.Image) -> Image.Image:
    """RGB -> luma (PIL "L": (299 R + 587 G + 114 B) / 1000) in all 3 channels, as
    T.Grayscale(num_output_channels=3) on a PIL image."""
    return image.convert("L").convert("RGB")


# ----------------------------------------------------------------------------- pipeline


def augment_clip(clip: Clip, rng: np.random.Generator, config: ClipConfig) -> Clip:
    """The MOSE fine-tune train transforms on a clip: frames [T, H, W, 3] uint8 and masks
    [T, O, H, W] bool -> frames [T, S, S, 3] uint8 and masks [T, O, S, S] bool, S =
    config.image_size (name, frame_indices and object_ids unchanged).

    Draws, in order: flip (uniform < hflip_prob), angle, shear, the consistent jitter, grayscale
    (uniform < grayscale_prob), then one jitter per frame.
    """
    images = [Image.fromarray(frame) for frame in clip.frames]
    masks = clip.masks
    if rng.random() < config.hflip_prob:
        images, masks = hflip(images, masks)
    angle = float(rng.uniform(-config.affine_degrees, config.affine_degrees))
    shear_x = float(rng.uniform(-config.affine_shear, config.affine_shear))
    images, masks = random_affine(images, masks, angle, shear_x, config.affine_fill)
    images = resize_images(images, config.image_size)
    masks = resize_masks(masks, config.image_size)
    consistent = draw_jitter(rng, config.jitter_consistent)
    images = [adjust_colour(image, consistent) for image in images]
    if rng.random() < config.grayscale_prob:
        images = [grayscale(image) for image in images]
    images = [adjust_colour(image, draw_jitter(rng, config.jitter_per_frame)) for image in images]
    frames = np.stack([np.asarray(image, np.uint8) for image in images])
    return dataclasses.replace(clip, frames=frames, masks=masks)
