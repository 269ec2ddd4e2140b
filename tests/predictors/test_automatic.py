"""SAM2AutomaticMaskGenerator vs the official SAM2AutomaticMaskGenerator on a real image.

Model: official sam2.1 tiny at 512 px with seeded random (perturbed) weights, and the last layer
of each hypernetwork MLP scaled by 10 so the mask logits have a spread of a few units instead of
~0.1 (both models load the same checkpoint). Random weights give predicted IoUs of ~0.47-0.55
and masks that are scattered blobs covering about half the image, whose boxes all span the
image: a high `mask_threshold` (3.0) and a small `stability_score_offset` (0.25) keep the top
blobs, so boxes differ and NMS has work to do. Image: groceries.jpg halved to 400x267 (time).

Tolerances: predicted_iou / stability_score 1e-4 max abs (fp32 CPU; stability 1e-3 with hole
filling, see FILL_STABILITY_TOL); boxes, points, crop boxes exact; masks identical except at most
0.1% of pixels and areas within 0.1% + 2 px (pixels whose logit sits at the threshold may flip
on rounding; in practice all masks, boxes and areas matched exactly).
"""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from oracle import build_official, save_official_checkpoint
from PIL import Image
from pycocotools import mask as coco_mask
from scipy import ndimage

from sam2_jax import SAM2AutomaticMaskGenerator, build_sam2
from sam2_jax.ops.amg import rle_to_mask

# pycocotools' decode trips a NumPy 2 deprecation inside its own code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SCORE_TOL = 1e-4
MAX_FLIPPED = 1e-3
IMAGE_SIZE = 512
LOGIT_SCALE = 10.0
# The top blobs of the logits (see the module docstring).
BLOBS = dict(mask_threshold=3.0, stability_score_offset=0.25, points_per_batch=48)
# A 6 x 6 grid at seeded random positions, for the `point_grids` argument.
RANDOM_GRID = np.random.default_rng(7).uniform(0.05, 0.95, (36, 2))
# A low-res logit within float error of the predictor's 0 threshold (official -1.1e-7, ours
# 8.8e-7) is a 1-pixel hole filled (+10) by the official only: ~10 image pixels of one mask cross
# the stability thresholds (+-1), moving its stability by 1.2e-4.
FILL_STABILITY_TOL = 1e-3
# name -> (settings, minimum number of official masks, stability tolerance). The official's
# count is in the comment (ours must give the same).
CASES = {
    # 100 clicks x 3 masks in 3 jitted batches (the last padded 4 -> 48): 48 masks.
    "multimask": (
        dict(**BLOBS, points_per_side=10, pred_iou_thresh=0.475, stability_score_thresh=0.1),
        20,
        SCORE_TOL,
    ),
    # Whole image (6x6 clicks, 3 batches of 16) + 4 crops (3x3 clicks each, padded to 16; two
    # crop sizes), crop-edge filter and crop NMS: 25 masks.
    "crops": (
        dict(
            **{**BLOBS, "points_per_batch": 16},
            points_per_side=6,
            crop_n_layers=1,
            crop_n_points_downscale_factor=2,
            pred_iou_thresh=0.0,
            stability_score_thresh=0.1,
            output_mode="uncompressed_rle",
        ),
        10,
        SCORE_TOL,
    ),
    # One-step refinement with the low-res mask, explicit point grid; stability filter off
    # (NaN scores of empty masks kept, as the official): 51 masks, 3 with NaN stability.
    "m2m": (
        dict(
            **BLOBS,
            points_per_side=None,
            point_grids=[RANDOM_GRID],
            use_m2m=True,
            pred_iou_thresh=0.534,
            stability_score_thresh=0.0,
            output_mode="coco_rle",
        ),
        20,
        SCORE_TOL,
    ),
    # Single-mask output (dynamic multimask via stability) with hole / sprinkle filling of the
    # low-res logits, default threshold and offset. Filled masks span the image, so box NMS is
    # off (1.0; IoU > 1 never suppresses): 32 masks.
    "single+small_regions": (
        dict(
            points_per_side=8,
            points_per_batch=48,
            multimask_output=False,
            min_mask_region_area=25,
            pred_iou_thresh=0.534,
            stability_score_thresh=0.65,
            box_nms_thresh=1.0,
        ),
        20,
        FILL_STABILITY_TOL,
    ),
}


def _cuda_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU stand-in for the official CUDA kernel `get_connected_components`: [N, 1, H, W] ->
    (labels, areas) [N, 1, H, W] int32, 8-connectivity, 0 off the mask."""
    m = mask.to(torch.bool).cpu().numpy()
    labels, areas = np.zeros(m.shape, np.int32), np.zeros(m.shape, np.int32)
    for i in range(m.shape[0]):
        lab, _ = ndimage.label(m[i, 0], structure=np.ones((3, 3), bool))
        counts = np.bincount(lab.ravel())
        counts[0] = 0
        labels[i, 0], areas[i, 0] = lab, counts[lab]
    return torch.from_numpy(labels), torch.from_numpy(areas)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    official = build_official("sam2.1_hiera_t", image_size=IMAGE_SIZE, seed=0)
    with torch.no_grad():
        for mlp in official.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(LOGIT_SCALE)
            mlp.layers[-1].bias.mul_(LOGIT_SCALE)
    path = tmp_path_factory.mktemp("amg") / "t21.pt"
    save_official_checkpoint(official, path)
    ours = build_sam2("sam2.1_hiera_t", path, [f"image_size={IMAGE_SIZE}"])
    return official, ours, path


@pytest.fixture(scope="module")
def image():
    path = SHARED_DATA / "sam2_demo" / "images" / "groceries.jpg"
    assert path.exists(), f"shared test data missing: {path}"
    im = Image.open(path).convert("RGB")
    return np.asarray(im.resize((im.width // 2, im.height // 2), Image.BILINEAR))


def _official_records(model, image, settings, monkeypatch):
    """Official records, and how many low-res pixels its hole / sprinkle filling changed."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator as Official

    area = settings.get("min_mask_region_area", 0)
    filled = []

    def connected_components(mask):
        labels, areas = _cuda_connected_components(mask)
        filled.append(int(((labels > 0) & (areas <= area)).sum()))
        return labels, areas

    # Without its CUDA extension sam2._C the official would skip the filling (with a warning).
    monkeypatch.setattr("sam2.utils.misc.get_connected_components", connected_components)
    gen = Official(model, **settings)
    s = IMAGE_SIZE
    gen.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    with torch.no_grad():
        return gen.generate(image), sum(filled)


def _binary(segmentation, mode):
    if mode == "binary_mask":
        return segmentation
    if mode == "uncompressed_rle":
        return rle_to_mask(segmentation)
    rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return coco_mask.decode(rle).astype(bool)


def _compare_scores(ours, ref, key, name, tol):
    a = np.array([o[key] for o in ours], np.float64)
    b = np.array([r[key] for r in ref], np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name} {key}: NaN positions differ"
    finite = ~np.isnan(b)
    err = float(np.max(np.abs(a[finite] - b[finite]), initial=0.0))
    print(f"{name} {key}: max abs err {err:.3e} ({int((~finite).sum())} NaN, tol {tol:.0e})")
    assert err <= tol, f"{name} {key}: max abs err {err:.3e} > {tol:.0e}"


def _compare(ours, ref, mode, name, stability_tol):
    assert len(ours) == len(ref), f"{name}: {len(ours)} masks, official {len(ref)}"
    keys = {"segmentation", "area", "bbox", "predicted_iou", "point_coords"}
    keys |= {"stability_score", "crop_box"}
    assert all(set(o) == keys for o in ours), f"{name}: record keys differ from the official"
    for key in ("bbox", "point_coords", "crop_box"):
        assert [o[key] for o in ours] == [r[key] for r in ref], f"{name}: {key} differ"
    _compare_scores(ours, ref, "predicted_iou", name, SCORE_TOL)
    _compare_scores(ours, ref, "stability_score", name, stability_tol)
    flipped = 0.0
    for i, (o, r) in enumerate(zip(ours, ref)):
        assert isinstance(o["area"], int), f"{name}: area must be an int"
        assert abs(o["area"] - r["area"]) <= 2 + 1e-3 * r["area"], f"{name} #{i}: area"
        mask, ref_mask = _binary(o["segmentation"], mode), _binary(r["segmentation"], mode)
        assert mask.dtype == bool and mask.shape == ref_mask.shape
        assert int(mask.sum()) == o["area"], f"{name} #{i}: area != mask pixel count"
        if mode != "binary_mask":  # the encoded form itself matches
            assert o["segmentation"]["size"] == r["segmentation"]["size"]
            same = o["segmentation"]["counts"] == r["segmentation"]["counts"]
            assert same or not np.array_equal(mask, ref_mask), f"{name} #{i}: RLE encoding"
        flipped = max(flipped, float(np.mean(mask != ref_mask)))
    print(f"{name}: {len(ref)} masks, max fraction of differing pixels {flipped:.2e}")
    assert flipped <= MAX_FLIPPED, f"{name}: {flipped:.4%} of a mask's pixels differ"


@pytest.mark.parametrize("name", list(CASES))
def test_generate_matches_official(models, image, name, monkeypatch):
    official, ours_model, _ = models
    settings, min_count, stability_tol = CASES[name]
    ref, n_filled = _official_records(official, image, settings, monkeypatch)
    if settings.get("min_mask_region_area", 0) > 0:
        print(f"{name}: the official filling changed {n_filled} low-res pixels")
        assert n_filled > 0, f"{name}: hole / sprinkle filling changed nothing"
    assert len(ref) >= min_count, f"{name}: official gave only {len(ref)} masks"
    if settings.get("crop_n_layers", 0) > 0:
        n_crops = len({tuple(r["crop_box"]) for r in ref})
        assert n_crops > 1, f"{name}: no mask comes from a crop"
    ours = SAM2AutomaticMaskGenerator(ours_model, **settings).generate(image)
    _compare(ours, ref, settings.get("output_mode", "binary_mask"), name, stability_tol)


def test_no_surviving_masks(models, image):
    settings = {**CASES["multimask"][0], "pred_iou_thresh": 0.99}
    assert SAM2AutomaticMaskGenerator(models[1], **settings).generate(image) == []


def test_from_checkpoint_and_argument_checks(models):
    _, ours_model, path = models
    gen = SAM2AutomaticMaskGenerator.from_checkpoint(
        "sam2.1_hiera_t", path, [f"image_size={IMAGE_SIZE}"], points_per_side=4, crop_n_layers=2
    )
    assert gen.model.config.image_size == IMAGE_SIZE
    assert [g.shape for g in gen.point_grids] == [(16, 2)] * 3
    with pytest.raises(ValueError, match="Exactly one"):
        SAM2AutomaticMaskGenerator(ours_model, points_per_side=None)
    with pytest.raises(ValueError, match="Exactly one"):
        SAM2AutomaticMaskGenerator(ours_model, point_grids=[RANDOM_GRID])
    with pytest.raises(ValueError, match="crop_n_layers"):
        SAM2AutomaticMaskGenerator(
            ours_model, points_per_side=None, point_grids=[RANDOM_GRID], crop_n_layers=1
        )
    with pytest.raises(ValueError, match="point_grids"):
        SAM2AutomaticMaskGenerator(ours_model, points_per_side=None, point_grids=[np.zeros((0, 2))])
    with pytest.raises(ValueError, match="output_mode"):
        SAM2AutomaticMaskGenerator(ours_model, output_mode="png")
    with pytest.raises(TypeError):
        SAM2AutomaticMaskGenerator(ours_model, points_per_sides=8)
    with pytest.raises(ValueError, match="uint8"):
        SAM2AutomaticMaskGenerator(ours_model).generate(np.zeros((8, 8, 3), np.float32))


def test_postprocess_small_regions_matches_official():
    """The official static helper (OpenCV components; `generate` does not call it)."""
    from copy import deepcopy

    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator as Official
    from sam2.utils.amg import MaskData, batched_mask_to_box, mask_to_rle_pytorch

    rng = np.random.default_rng(8)
    blobs = np.cumsum(np.cumsum(rng.normal(size=(6, 40, 60)), axis=1), axis=2)
    blobs = blobs > np.quantile(blobs, 0.6, axis=(1, 2), keepdims=True)
    noisy = blobs ^ (rng.uniform(size=blobs.shape) < 0.01)  # + islands and holes
    masks = torch.as_tensor(np.concatenate([noisy, blobs]))
    boxes = batched_mask_to_box(masks)
    rles = mask_to_rle_pytorch(masks)
    scores = rng.uniform(size=len(rles)).astype(np.float32)
    ref = Official.postprocess_small_regions(
        MaskData(rles=deepcopy(rles), boxes=boxes.clone(), iou_preds=torch.as_tensor(scores)),
        30,
        0.7,
    )
    data = {"rles": deepcopy(rles), "boxes": boxes.numpy(), "iou_preds": scores}
    ours = SAM2AutomaticMaskGenerator.postprocess_small_regions(data, 30, 0.7)
    assert 0 < len(ours["rles"]) < len(rles), "NMS should drop some duplicates"
    assert ours["rles"] == ref["rles"]
    np.testing.assert_array_equal(ours["boxes"], ref["boxes"].numpy())
    np.testing.assert_array_equal(ours["iou_preds"], ref["iou_preds"].numpy())
    assert any(r not in rles for r in ours["rles"]), "some masks should have been cleaned"
