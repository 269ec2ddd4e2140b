"""The test-only stand-in torchvision (tests/support/torchvision) that the official sam2 imports."""

import importlib.metadata
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from oracle import assert_close
from PIL import Image
from torchvision.ops.boxes import batched_nms, box_area, nms
from torchvision.transforms import Normalize, Resize, ToTensor

# Same torch calls on both sides: any difference is a bug.
TOL_EXACT = 0.0
# PIL's uint8 bilinear against the same resize computed by PIL on the same bytes.
TOL_PIL = 0.0

SUPPORT_DIR = Path(__file__).resolve().parent / "support"
SAM2_JAX_DIR = Path(__file__).resolve().parent.parent / "sam2_jax"


def _brute_force_nms(
    boxes: np.ndarray, scores: np.ndarray, cats: np.ndarray, thresh: float
) -> list[int]:
    """Greedy NMS in pure Python (float64), per category; kept indices by score, ties by index."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # stable: ties by index
    kept: list[int] = []
    for i in order:
        box = [float(v) for v in boxes[i]]
        if all(
            cats[j] != cats[i] or iou([float(v) for v in boxes[j]], box) <= thresh for j in kept
        ):
            kept.append(i)
    return kept


def _random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes [n, 4] clustered around a few centres (many overlaps), tied scores, 4 categories."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 200, size=(6, 2))[rng.integers(0, 6, size=n)]
    centres = centres + rng.normal(scale=3.0, size=(n, 2))
    half = rng.uniform(12, 24, size=(n, 2))
    boxes = np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)
    boxes[n // 2] = boxes[0]  # an exact duplicate
    scores = np.round(rng.uniform(size=n), 2).astype(np.float32)  # plenty of exact ties
    cats = rng.integers(0, 4, size=n)
    return boxes, scores, cats


@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("n", [300, 1100])  # 1100 boxes > 4000 numbers: the per-category loop
def test_batched_nms_matches_brute_force(n, thresh):
    boxes, scores, cats = _random_boxes(n, seed=n)
    keep = batched_nms(
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        torch.from_numpy(cats),
        iou_threshold=thresh,
    )
    assert keep.dtype == torch.int64
    expected = _brute_force_nms(boxes, scores, cats, thresh)
    assert 20 <= len(expected) <= 0.9 * n  # the case is not trivial
    assert keep.tolist() == expected


def test_nms_single_category_and_empty():
    boxes, scores, _ = _random_boxes(200, seed=7)
    keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5)
    assert keep.tolist() == _brute_force_nms(boxes, scores, np.zeros(200, np.int64), 0.5)
    empty = batched_nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert empty.dtype == torch.int64 and empty.numel() == 0


def test_box_area():
    boxes, _, _ = _random_boxes(50, seed=3)
    expected = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert_close(box_area(torch.from_numpy(boxes)), expected, TOL_EXACT, "box_area fp32")
    assert box_area(torch.from_numpy(boxes).half()).dtype == torch.float32
    int_boxes = torch.tensor([[1, 2, 4, 7], [0, 0, 3, 3]], dtype=torch.int16)
    area = box_area(int_boxes)
    assert area.dtype == torch.int32 and area.tolist() == [15, 9]


def test_to_tensor():
    image = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    out = ToTensor()(image)
    assert out.shape == (3, 5, 7) and out.dtype == torch.float32
    assert_close(out, np.moveaxis(image, -1, 0).astype(np.float32) / 255, TOL_EXACT, "uint8")
    assert_close(ToTensor()(Image.fromarray(image)), out, TOL_EXACT, "PIL RGB")
    assert ToTensor()(image[..., 0]).shape == (1, 5, 7)
    floats = image.astype(np.float32)
    assert_close(ToTensor()(floats), np.moveaxis(floats, -1, 0), TOL_EXACT, "float kept")


def test_resize_and_normalize_scripted():
    x = torch.rand(3, 30, 50)
    resize = Resize((64, 40))
    ref = F.interpolate(x[None], (64, 40), mode="bilinear", align_corners=False, antialias=True)[0]
    assert_close(resize(x), ref, TOL_EXACT, "Resize tensor")
    assert Resize(20)(x).shape == (3, 20, 33)  # shorter edge -> 20, as torchvision
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    expected = (ref - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert_close(Normalize(mean, std)(ref), expected, TOL_EXACT, "Normalize")
    scripted = torch.jit.script(torch.nn.Sequential(resize, Normalize(mean, std)))
    assert_close(scripted(x), expected, TOL_EXACT, "scripted Resize + Normalize")


def test_resize_pil():
    image = Image.fromarray(
        np.random.default_rng(1).integers(0, 256, size=(30, 50, 3), dtype=np.uint8)
    )
    out = Resize((17, 23))(image)
    assert isinstance(out, Image.Image) and out.size == (23, 17)
    expected = np.asarray(image.resize((23, 17), Image.BILINEAR), np.float32)
    assert_close(np.asarray(out, np.float32), expected, TOL_PIL, "Resize PIL")


def test_official_sam2_imports_with_standin():
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    assert SAM2ImagePredictor.__name__ and SAM2AutomaticMaskGenerator.__name__
    assert Path(torchvision.__file__).resolve().is_relative_to(SUPPORT_DIR)
    assert "test-only" in torchvision.__doc__.lower()
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("torchvision")  # no real torchvision in the environment


def test_sam2_jax_never_imports_torchvision():
    pattern = re.compile(r"^\s*(import|from)\s+torchvision\b", re.MULTILINE)
    offenders = [str(p) for p in SAM2_JAX_DIR.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
