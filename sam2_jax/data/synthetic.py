"""Deterministic synthetic videos for video object segmentation (no official counterpart).

A video is a slowly panning background of coloured smooth noise with `num_objects` textured
objects on top: ellipses, rectangles and convex polygons (3 to 6 sides), each with its own two
colours, a texture (stripes, checker or smooth noise) and a shading gradient that move, scale and
rotate with it. Objects move smoothly (constant velocity plus a small acceleration, bouncing off
the borders so that at most about a third of an object leaves the frame) and occlude each other in
a fixed random depth order; the label map holds the visible part only (the top object wins).

With `objects_enter_later=False` every object is in frame 0, each covering at least
`min(2%, 10% / num_objects)` of the frame (2% for up to 5 objects) whenever a placement allows it
within a few random tries, and always at least one pixel (an evenly spaced grid of shrunk objects
is the last resort). With `objects_enter_later=True` (training-style clips), 1 to N - 1 objects
(none when N = 1) start outside the frame and enter within about the first half of the clip, and
about 40% of the objects do not bounce, so they may leave the frame.

Determinism: the only randomness is `np.random.default_rng(seed)` (`random`, `uniform`,
`integers`, `permutation`: bit-exact draws), and all geometry, textures and colours use +, -, *,
/, sqrt, floor and rounding only (IEEE-754 exact-rounded; sines and cosines come from a Taylor
polynomial, not libm), so a seed gives bitwise identical arrays on every platform. Rasterisation
samples pixel centres without antialiasing.

`write_davis_dataset` writes videos in the DAVIS-2017 layout that `sam2_jax.eval.formats` reads.
"""

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_jax.eval.formats import write_label_png

MIN_SIZE = 16
MAX_OBJECTS = 254  # ids 1..254; 255 is the DAVIS void label
SHAPES = ("ellipse", "rectangle", "polygon")
TEXTURES = ("stripes", "checker", "noise")
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 0  # 4:4:4, fixed (PIL's default depends on the quality)
DAVIS_RESOLUTION = "480p"
TWO_PI = 2.0 * math.pi
# Taylor coefficients of sin(x) / x and cos(x) in x^2; with |x| <= pi / 2 the first omitted
# term is below 1e-12.
_SIN_COEFFS = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(9))
_COS_COEFFS = tuple((-1) ** k / math.factorial(2 * k) for k in range(9))
# Motion, in units of min(height, width) per frame (or per frame squared).
SPEED_RANGE = (0.004, 0.02)
MAX_SPEED = 0.035
MAX_ACCELERATION = 0.0004
ENTER_SPEED_RANGE = (0.012, 0.03)
BOUNCE_INSET = 0.3  # a bouncing object's centre stays >= 0.3 radius inside each border
PLACEMENT_TRIES = 200  # random frame-0 placements tried: max(4, PLACEMENT_TRIES // N)


@dataclasses.dataclass(frozen=True)
class SyntheticVideo:
    """A generated video: frames [T, H, W, 3] uint8 RGB and labels [T, H, W] uint8 object ids
    (0 background, 1..N objects, the visible part of each object only)."""

    frames: np.ndarray
    labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Object:
    """Appearance of one object in its own frame (pixels at scale 1, centred at the origin).

    geometry: ellipse and rectangle (a, b) half axes along (u, v); polygon [K, 2] counter-
    clockwise vertices on the circle of `radius`. colours [2, 3] float64; the texture mixes them.
    noise [G, G] values in [0, 1] spanning [-radius, radius]^2 (noise texture).
    """

    shape: str
    geometry: np.ndarray
    radius: float
    texture: str
    colours: np.ndarray
    period: float
    stripe_direction: np.ndarray
    noise: np.ndarray
    shading: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Scene:
    """A whole video before rendering.

    background [H + 2p, W + 2p, 3] float64, cropped at offsets [T, 2] (row, column) per frame;
    centre [N, T, 2] (x, y) pixels; scale [N, T]; rotation [N, T, 2] (cos, sin); order [N]
    object indices from bottom to top (object i has id i + 1).
    """

    height: int
    width: int
    background: np.ndarray
    offsets: np.ndarray
    objects: tuple[_Object, ...]
    centre: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    order: np.ndarray


# ----------------------------------------------------------------------------- arithmetic


def _polynomial(x: np.ndarray, coeffs: Sequence[float]) -> np.ndarray:
    """sum_k coeffs[k] x^k by Horner's rule."""
    out = np.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        out = out * x + c
    return out


def _cos_sin(angle: np.ndarray | float) -> np.ndarray:
    """[..., 2] (cos, sin) of angles in radians, |error| < 1e-12, from a Taylor polynomial of
    the half angle (in [-pi/2, pi/2]) and the double-angle formulas: bitwise reproducible."""
    angle = np.asarray(angle, np.float64)
    half = (angle - TWO_PI * np.round(angle / TWO_PI)) * 0.5
    square = half * half
    sin_half = _polynomial(square, _SIN_COEFFS) * half
    cos_half = _polynomial(square, _COS_COEFFS)
    return np.stack([cos_half * cos_half - sin_half * sin_half, 2.0 * cos_half * sin_half], axis=-1)


def _interpolate(grid: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smoothstep-weighted bilinear interpolation of grid [GY, GX] at grid coordinates y, x
    (broadcastable arrays, clipped to the grid)."""
    gy, gx = grid.shape
    y = np.clip(y, 0.0, gy - 1.0)
    x = np.clip(x, 0.0, gx - 1.0)
    iy = np.minimum(np.floor(y).astype(np.int64), max(gy - 2, 0))
    ix = np.minimum(np.floor(x).astype(np.int64), max(gx - 2, 0))
    fy, fx = y - iy, x - ix
    wy, wx = fy * fy * (3.0 - 2.0 * fy), fx * fx * (3.0 - 2.0 * fx)
    iy1, ix1 = np.minimum(iy + 1, gy - 1), np.minimum(ix + 1, gx - 1)
    top = grid[iy, ix] + (grid[iy, ix1] - grid[iy, ix]) * wx
    bottom = grid[iy1, ix] + (grid[iy1, ix1] - grid[iy1, ix]) * wx
    return top + (bottom - top) * wy


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Value noise [height, width] float64 in [0, 1] with `cells` cells along the longer side."""
    gy = max(1, round(cells * height / max(height, width)))
    gx = max(1, round(cells * width / max(height, width)))
    grid = rng.random((gy + 1, gx + 1))
    y = (np.arange(height) + 0.5) * (gy / height)
    x = (np.arange(width) + 0.5) * (gx / width)
    return _interpolate(grid, y[:, None], x[None, :])


# ----------------------------------------------------------------------------- scene


def _background(
    rng: np.random.Generator, num_frames: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(canvas [H + 2p, W + 2p, 3] float64, crop offsets [T, 2] int64): two octaves of coloured
    smooth noise on a base colour, panned linearly between two random crops."""
    pad = max(2, round(0.08 * max(height, width)))
    ch, cw = height + 2 * pad, width + 2 * pad
    base = rng.uniform(60.0, 195.0, 3)
    coarse = _smooth_noise(rng, ch, cw, int(rng.integers(2, 5))) - 0.5
    fine = _smooth_noise(rng, ch, cw, int(rng.integers(8, 16))) - 0.5
    canvas = (
        base
        + coarse[..., None] * rng.uniform(-110.0, 110.0, 3)
        + fine[..., None] * rng.uniform(-50.0, 50.0, 3)
    )
    start = rng.integers(0, 2 * pad + 1, 2)
    end = rng.integers(0, 2 * pad + 1, 2)
    steps = np.arange(num_frames) / max(num_frames - 1, 1)
    offsets = np.floor(start + (end - start) * steps[:, None] + 0.5).astype(np.int64)
    return canvas, offsets


def _shape_geometry(rng: np.random.Generator, shape: str) -> tuple[np.ndarray, float]:
    """(geometry at radius 1, its area)."""
    if shape == "ellipse":
        b = rng.uniform(0.55, 1.0)
        return np.array([1.0, b]), math.pi * b
    if shape == "rectangle":
        a = rng.uniform(0.5, 0.85)
        b = math.sqrt(1.0 - a * a)
        return np.array([a, b]), 4.0 * a * b
    sides = int(rng.integers(3, 7))
    # Angles jittered by at most 0.2 of a slot: every gap is < pi, so the polygon is convex and
    # contains its centre.
    slots = np.arange(sides) + rng.uniform(-0.2, 0.2, sides)
    vertices = _cos_sin(rng.uniform(0.0, TWO_PI) + slots * (TWO_PI / sides))
    following = np.roll(vertices, -1, axis=0)
    twice_area = vertices[:, 0] * following[:, 1] - following[:, 0] * vertices[:, 1]
    return vertices, 0.5 * math.fsum(twice_area.tolist())


def _appearance(
    rng: np.random.Generator, shape: str, texture: str, area: float, max_radius: float
) -> _Object:
    """An object of `shape` and `texture` covering about `area` pixels (radius <= max_radius)."""
    geometry, unit_area = _shape_geometry(rng, shape)
    radius = max(1.0, min(math.sqrt(area / unit_area), max_radius))
    first = rng.uniform(20.0, 235.0, 3)
    delta = rng.uniform(50.0, 110.0, 3) * np.where(rng.random(3) < 0.5, -1.0, 1.0)
    second = first + delta
    second = np.where((second < 0.0) | (second > 255.0), first - delta, second)
    return _Object(
        shape=shape,
        geometry=geometry * radius,
        radius=radius,
        texture=texture,
        colours=np.stack([first, second]),
        period=rng.uniform(0.15, 0.4) * radius,
        stripe_direction=_cos_sin(rng.uniform(0.0, TWO_PI)),
        noise=rng.random((int(rng.integers(3, 6)) + 1,) * 2),
        shading=rng.uniform(-25.0, 25.0, 2),
    )


def _shrunk(obj: _Object, radius: float) -> _Object:
    """`obj` scaled down to `radius` (texture periods included)."""
    factor = radius / obj.radius
    return dataclasses.replace(
        obj, geometry=obj.geometry * factor, radius=radius, period=obj.period * factor
    )


def _entering_start(
    rng: np.random.Generator, num_frames: int, height: int, width: int, reach: float, unit: float
) -> tuple[np.ndarray, np.ndarray]:
    """(centre (x, y), velocity) of an object of frame-0 extent `reach` that starts just outside
    a random border (by 0.5 pixel plus its travel during a delay of 0 to 0.35 num_frames frames)
    and moves in at constant velocity."""
    inward = rng.uniform(*ENTER_SPEED_RANGE) * unit
    tangential = rng.uniform(-0.3, 0.3) * inward
    outside = reach + 0.5 + inward * rng.uniform(0.0, 0.35 * num_frames)
    along = rng.uniform(0.2, 0.8)
    side = int(rng.integers(0, 4))
    if side == 0:
        return np.array([-outside, along * height]), np.array([inward, tangential])
    if side == 1:
        return np.array([width + outside, along * height]), np.array([-inward, tangential])
    if side == 2:
        return np.array([along * width, -outside]), np.array([tangential, inward])
    return np.array([along * width, height + outside]), np.array([tangential, -inward])


def _simulate(
    start: np.ndarray,
    velocity: np.ndarray,
    acceleration: np.ndarray,
    extent: np.ndarray,
    bounces: np.ndarray,
    height: int,
    width: int,
    max_speed: float,
) -> np.ndarray:
    """Centres [N, T, 2] from start [N, 2], velocity and acceleration [N, 2] and extents [N, T]
    (radius x scale). A bouncing object leaving the band BOUNCE_INSET * extent inside a border
    has that velocity component reversed and its acceleration turned inwards; speed is capped."""
    num_frames = extent.shape[1]
    centre = np.empty((len(start), num_frames, 2))
    position, velocity, acceleration = start.copy(), velocity.copy(), acceleration.copy()
    centre[:, 0] = position
    for t in range(1, num_frames):
        position = position + velocity
        inset = BOUNCE_INSET * extent[:, t]
        for axis, size in ((0, width), (1, height)):
            low = (position[:, axis] < inset) & (velocity[:, axis] < 0.0) & bounces
            high = (position[:, axis] > size - inset) & (velocity[:, axis] > 0.0) & bounces
            velocity[low | high, axis] *= -1.0
            acceleration[low, axis] = np.abs(acceleration[low, axis])
            acceleration[high, axis] = -np.abs(acceleration[high, axis])
        velocity = velocity + acceleration
        speed = np.sqrt(velocity[:, 0] * velocity[:, 0] + velocity[:, 1] * velocity[:, 1])
        fast = speed > max_speed
        velocity[fast] = velocity[fast] * (max_speed / speed[fast])[:, None]
        centre[:, t] = position
    return centre


def _frame_labels(
    objects: Sequence[_Object],
    centre: np.ndarray,
    scale: np.ndarray,
    rotation: np.ndarray,
    order: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Visible object ids [H, W] uint8 of one frame (centre [N, 2], scale [N], rotation [N, 2])."""
    labels = np.zeros((height, width), np.uint8)
    for i in order:
        hit = _rasterise(objects[i], centre[i], scale[i], rotation[i], height, width)
        if hit is not None:
            rows, cols, mask, _, _ = hit
            labels[rows, cols][mask] = i + 1
    return labels


def _visible_areas(labels: np.ndarray, num_objects: int) -> np.ndarray:
    """[N] pixel counts of ids 1..N."""
    return np.bincount(labels.ravel(), minlength=num_objects + 1)[1 : num_objects + 1]


def _place_first_frame(
    rng: np.random.Generator,
    objects: list[_Object],
    visible: np.ndarray,
    scale: np.ndarray,
    rotation: np.ndarray,
    order: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Frame-0 centres [V, 2] of the objects `visible` (indices), all inside the frame.

    Random positions are tried until each object shows >= min(2%, 10% / N) of the frame; if none
    works, the objects are shrunk onto the centres of an evenly spaced grid of cells (pixel
    centres, no overlap: each then covers at least its centre pixel). `objects` may be shrunk
    in place.
    """
    count = len(visible)
    need = min(0.02, 0.1 / len(objects)) * height * width
    size = np.array([width, height], np.float64)
    reach = np.array([objects[i].radius for i in visible]) * scale[visible, 0]
    low = np.minimum(reach[:, None], size / 2.0)
    all_centres = np.zeros((len(objects), 2))
    for _ in range(max(4, PLACEMENT_TRIES // len(objects))):
        centres = low + (size - 2.0 * low) * rng.random((count, 2))
        all_centres[visible] = centres
        labels = _frame_labels(
            objects,
            all_centres,
            scale[:, 0],
            rotation[:, 0],
            order[np.isin(order, visible)],
            height,
            width,
        )
        if np.all(_visible_areas(labels, len(objects))[visible] >= need):
            return centres
    rows = int(np.clip(round(math.sqrt(count * height / width)), -(-count // width), height))
    cols = -(-count // rows)
    cell_h, cell_w = height / rows, width / cols
    limit = max(0.5, 0.5 * min(cell_h, cell_w) - 0.5)
    cells = rng.permutation(rows * cols)[:count]
    centres = np.stack(
        [
            np.floor((cells % cols + 0.5) * cell_w) + 0.5,
            np.floor((cells // cols + 0.5) * cell_h) + 0.5,
        ],
        axis=1,
    )
    for i in visible:
        if objects[i].radius * scale[i, 0] > limit:
            objects[i] = _shrunk(objects[i], limit / scale[i, 0])
    return centres


def _scene(
    seed: int,
    num_frames: int,
    height: int,
    width: int,
    num_objects: int,
    objects_enter_later: bool,
) -> _Scene:
    """Draw everything of a video from `np.random.default_rng(seed)`."""
    rng = np.random.default_rng(seed)
    background, offsets = _background(rng, num_frames, height, width)
    unit = float(min(height, width))
    largest = min(0.11, 0.55 / num_objects)
    smallest = max(0.35 * largest, 1.5 * min(0.02, 0.1 / num_objects))
    areas = rng.uniform(smallest, largest, num_objects) * (height * width)
    shape_start, texture_start = rng.integers(0, 3, 2)
    objects = [
        _appearance(
            rng,
            SHAPES[(shape_start + i) % 3],
            TEXTURES[(texture_start + i) % 3],
            areas[i],
            0.42 * unit,
        )
        for i in range(num_objects)
    ]
    frames = np.arange(num_frames)
    amplitude = rng.uniform(0.05, 0.2, num_objects)
    scale = (
        1.0
        + amplitude[:, None]
        * _cos_sin(
            rng.uniform(0.0, TWO_PI, num_objects)[:, None]
            + rng.uniform(0.04, 0.15, num_objects)[:, None] * frames
        )[..., 1]
    )
    spin = rng.uniform(0.005, 0.05, num_objects) * np.where(rng.random(num_objects) < 0.5, -1, 1)
    rotation = _cos_sin(rng.uniform(0.0, TWO_PI, num_objects)[:, None] + spin[:, None] * frames)
    order = rng.permutation(num_objects)

    entering = np.zeros(num_objects, bool)
    bounces = np.ones(num_objects, bool)
    if objects_enter_later:
        if num_objects >= 2:
            entering[rng.permutation(num_objects)[: int(rng.integers(1, num_objects))]] = True
        bounces = rng.random(num_objects) < 0.6
    speed = rng.uniform(*SPEED_RANGE, num_objects) * unit
    velocity = _cos_sin(rng.uniform(0.0, TWO_PI, num_objects)) * speed[:, None]
    acceleration = (
        _cos_sin(rng.uniform(0.0, TWO_PI, num_objects))
        * (rng.uniform(0.0, MAX_ACCELERATION, num_objects) * unit)[:, None]
    )
    start = np.zeros((num_objects, 2))
    for i in np.flatnonzero(entering):
        reach = objects[i].radius * scale[i, 0]
        start[i], velocity[i] = _entering_start(rng, num_frames, height, width, reach, unit)
        acceleration[i] = 0.0
    visible = np.flatnonzero(~entering)
    start[visible] = _place_first_frame(
        rng, objects, visible, scale, rotation, order, height, width
    )
    extent = np.array([obj.radius for obj in objects])[:, None] * scale
    centre = _simulate(
        start, velocity, acceleration, extent, bounces, height, width, MAX_SPEED * unit
    )
    return _Scene(
        height=height,
        width=width,
        background=background,
        offsets=offsets,
        objects=tuple(objects),
        centre=centre,
        scale=scale,
        rotation=rotation,
        order=order,
    )


# ----------------------------------------------------------------------------- rendering


def _inside(obj: _Object, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether object-frame points (u, v) (pixels at scale 1) are in the shape, bool."""
    if obj.shape == "ellipse":
        a, b = obj.geometry
        return (u / a) * (u / a) + (v / b) * (v / b) <= 1.0
    if obj.shape == "rectangle":
        a, b = obj.geometry
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    mask = np.ones(np.broadcast_shapes(u.shape, v.shape), bool)
    vertices = obj.geometry
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        mask &= (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0) >= 0.0
    return mask


def _rasterise(
    obj: _Object,
    centre: np.ndarray,
    scale: float,
    rotation: np.ndarray,
    height: int,
    width: int,
) -> tuple[slice, slice, np.ndarray, np.ndarray, np.ndarray] | None:
    """The footprint of `obj` at centre (x, y), scale and rotation (cos, sin) within its
    bounding box: (rows, cols, mask [h, w] bool, u, v [h, w] object-frame coordinates of the
    pixel centres), or None when the box misses the frame."""
    cx, cy = float(centre[0]), float(centre[1])
    reach = obj.radius * scale + 1.0
    x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach) + 1)
    y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = (np.arange(x0, x1) + 0.5 - cx)[None, :]
    dy = (np.arange(y0, y1) + 0.5 - cy)[:, None]
    cos, sin = float(rotation[0]), float(rotation[1])
    u = (cos * dx + sin * dy) / scale
    v = (cos * dy - sin * dx) / scale
    return slice(y0, y1), slice(x0, x1), _inside(obj, u, v), u, v


def _texture(obj: _Object, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours [P, 3] float64 of object-frame points u, v [P]."""
    if obj.texture == "stripes":
        across = u * obj.stripe_direction[0] + v * obj.stripe_direction[1]
        mix = np.floor(across / obj.period) % 2.0
    elif obj.texture == "checker":
        mix = (np.floor(u / obj.period) + np.floor(v / obj.period)) % 2.0
    else:
        to_grid = 0.5 * (len(obj.noise) - 1) / obj.radius
        mix = _interpolate(obj.noise, (v + obj.radius) * to_grid, (u + obj.radius) * to_grid)
    shade = (u * obj.shading[0] + v * obj.shading[1]) / obj.radius
    first, second = obj.colours
    return first + mix[:, None] * (second - first) + shade[:, None]


def _render(scene: _Scene) -> SyntheticVideo:
    """Frames and visible labels of a scene; objects painted bottom to top."""
    num_frames, height, width = len(scene.offsets), scene.height, scene.width
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    labels = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        top, left = scene.offsets[t]
        image = scene.background[top : top + height, left : left + width].copy()
        for i in scene.order:
            obj = scene.objects[i]
            hit = _rasterise(
                obj, scene.centre[i, t], scene.scale[i, t], scene.rotation[i, t], height, width
            )
            if hit is None:
                continue
            rows, cols, mask, u, v = hit
            image[rows, cols][mask] = _texture(obj, u[mask], v[mask])
            labels[t, rows, cols][mask] = i + 1
        frames[t] = np.clip(np.rint(image), 0.0, 255.0).astype(np.uint8)
    return SyntheticVideo(frames=frames, labels=labels)


def _footprints(seed: int, **video_kwargs) -> np.ndarray:
    """Full (unoccluded) object footprints [T, N, H, W] bool of `synthetic_video(seed, ...)`."""
    scene = _scene(seed, **_checked_arguments(**video_kwargs))
    num_frames, num_objects = scene.scale.shape[1], len(scene.objects)
    out = np.zeros((num_frames, num_objects, scene.height, scene.width), bool)
    for t in range(num_frames):
        for i, obj in enumerate(scene.objects):
            hit = _rasterise(
                obj,
                scene.centre[i, t],
                scene.scale[i, t],
                scene.rotation[i, t],
                scene.height,
                scene.width,
            )
            if hit is not None:
                rows, cols, mask, _, _ = hit
                out[t, i, rows, cols] = mask
    return out


# ----------------------------------------------------------------------------- public API


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _checked_arguments(
    num_frames: int = 24,
    height: int = 128,
    width: int = 160,
    num_objects: int = 3,
    objects_enter_later: bool = False,
) -> dict:
    """The video arguments, validated (ValueError naming the bad one)."""
    _check_int("num_frames", num_frames, 1)
    _check_int("height", height, MIN_SIZE)
    _check_int("width", width, MIN_SIZE)
    _check_int("num_objects", num_objects, 1, MAX_OBJECTS)
    if not isinstance(objects_enter_later, (bool, np.bool_)):
        raise ValueError(f"objects_enter_later must be a bool, got {objects_enter_later!r}")
    return dict(
        num_frames=int(num_frames),
        height=int(height),
        width=int(width),
        num_objects=int(num_objects),
        objects_enter_later=bool(objects_enter_later),
    )


def synthetic_video(
    seed: int,
    num_frames: int = 24,
    height: int = 128,
    width: int = 160,
    num_objects: int = 3,
    objects_enter_later: bool = False,
) -> SyntheticVideo:
    """The synthetic video of `seed` (an integer >= 0): frames [T, H, W, 3] uint8 RGB and
    labels [T, H, W] uint8 (0 background, 1..num_objects the visible part of each object).

    The same arguments give bitwise identical arrays on every platform. Raises ValueError for
    num_frames < 1, height or width < 16, num_objects outside 1..254, or a bad seed.
    """
    _check_int("seed", seed, 0)
    arguments = _checked_arguments(num_frames, height, width, num_objects, objects_enter_later)
    return _render(_scene(int(seed), **arguments))


def _remove_stale(folder: Path, written: set[str], extension: str) -> None:
    """Delete the `extension` files of `folder` that this write did not produce."""
    for path in folder.iterdir():
        if path.suffix.lower() == extension and path.name not in written and path.is_file():
            path.unlink()


def write_davis_dataset(
    root: str | os.PathLike, seeds: Sequence[int], split: str = "val", **video_kwargs
) -> list[str]:
    """Write `synthetic_video(seed, **video_kwargs)` for each seed in the DAVIS-2017 layout.

    root/JPEGImages/480p/<name>/<t:05d>.jpg (PIL JPEG, quality 90, 4:4:4),
    root/Annotations/480p/<name>/<t:05d>.png (palette PNGs, `write_label_png`) and
    root/ImageSets/2017/<split>.txt (the names, one per line, replacing an existing list), with
    <name> = synth_<seed:05d>. Frames left in those video folders by an earlier, longer write
    are removed. Returns the names, in the order of `seeds`. Raises ValueError (before writing
    anything) for empty or repeated seeds, a seed that is not an integer >= 0, a split that is
    not a plain file name, or bad video arguments.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    for seed in seeds:
        _check_int("seed", seed, 0)
    repeated = sorted({int(s) for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds must be unique; repeated: {repeated}")
    if (
        not isinstance(split, str)
        or not split
        or split in (".", "..")
        or "/" in split
        or (os.sep in split)
    ):
        raise ValueError(f"split must be a plain file name such as 'val', got {split!r}")
    arguments = _checked_arguments(**video_kwargs)
    root = Path(root)
    names = []
    for seed in seeds:
        video = _render(_scene(int(seed), **arguments))
        name = f"synth_{int(seed):05d}"
        frames_dir = root / "JPEGImages" / DAVIS_RESOLUTION / name
        annotations_dir = root / "Annotations" / DAVIS_RESOLUTION / name
        frames_dir.mkdir(parents=True, exist_ok=True)
        stems = [f"{t:05d}" for t in range(len(video.frames))]
        for stem, frame, labels in zip(stems, video.frames, video.labels):
            Image.fromarray(frame).save(
                frames_dir / f"{stem}.jpg", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING
            )
            write_label_png(annotations_dir / f"{stem}.png", labels)
        _remove_stale(frames_dir, {f"{s}.jpg" for s in stems}, ".jpg")
        _remove_stale(annotations_dir, {f"{s}.png" for s in stems}, ".png")
        names.append(name)
    list_file = root / "ImageSets" / "2017" / f"{split}.txt"
    list_file.parent.mkdir(parents=True, exist_ok=True)
    list_file.write_text("".join(f"{name}\n" for name in names))
    return names
