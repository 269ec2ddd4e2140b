"""SAM2ImagePredictor vs the official SAM2ImagePredictor on a real image.

Tolerances: low-res logits and IoU 1e-4 max abs (fp32 CPU); binary masks identical except at most
0.1% of pixels (pixels whose logit sits at the threshold can flip on rounding).
"""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from oracle import (
    assert_close,
    assert_nontrivial_mask_logits,
    build_official,
    save_official_checkpoint,
)
from PIL import Image
from scipy import ndimage

from sam2_jax import SAM2ImagePredictor
from sam2_jax.predictors.image import PredictorNotReadyError

TOL = 1e-4
MAX_FLIPPED = 1e-3


def _official_predictor(model, image_size):
    from sam2.sam2_image_predictor import SAM2ImagePredictor as Official

    pred = Official(model)
    s = image_size
    pred._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    return pred


def _image(name="truck.jpg"):
    path = SHARED_DATA / "sam2_demo" / "images" / name
    assert path.exists(), f"shared test data missing: {path}"
    return np.asarray(Image.open(path).convert("RGB"))


def _compare(ours, ref, name):
    masks, ious, low = ours
    rmasks, rious, rlow = ref
    assert masks.shape == rmasks.shape and masks.dtype == rmasks.dtype, (masks.shape, rmasks.shape)
    assert_nontrivial_mask_logits(rlow, f"{name} reference low-res logits")
    assert_close(low, rlow, TOL, f"{name} low-res logits")
    assert_close(ious, rious, TOL, f"{name} iou")
    if not np.isin(rmasks, (0.0, 1.0)).all():  # return_logits: full-resolution logits
        assert_close(masks, rmasks, TOL, f"{name} logits at image resolution")
        return
    flipped = float(np.mean(masks != rmasks))
    print(f"{name}: {flipped:.2e} of mask pixels differ")
    assert flipped <= MAX_FLIPPED, f"{name}: {flipped:.4%} of mask pixels differ"


def _cases(h, w):
    click = np.array([[0.45 * w, 0.55 * h]])
    box = np.array([0.1 * w, 0.2 * h, 0.8 * w, 0.9 * h])
    return [
        ("click", dict(point_coords=click, point_labels=np.array([1]), multimask_output=True)),
        (
            "clicks single",
            dict(
                point_coords=np.array([[0.45 * w, 0.55 * h], [0.2 * w, 0.3 * h]]),
                point_labels=np.array([1, 0]),
                multimask_output=False,
            ),
        ),
        ("box", dict(box=box, multimask_output=False)),
        (
            "box+click",
            dict(point_coords=click, point_labels=np.array([1]), box=box, multimask_output=False),
        ),
        ("boxes batch", dict(box=np.stack([box, box * 0.5]), multimask_output=True)),
        (
            "normalized click logits",
            dict(
                point_coords=np.array([[0.45, 0.55]]),
                point_labels=np.array([1]),
                normalize_coords=False,
                return_logits=True,
            ),
        ),
    ]


@pytest.fixture(scope="module")
def predictors_1024(tmp_path_factory):
    official = build_official("sam2.1_hiera_t", image_size=1024, seed=5)
    path = tmp_path_factory.mktemp("ckpt1024") / "t21.pt"
    save_official_checkpoint(official, path)
    ours = SAM2ImagePredictor.from_checkpoint("sam2.1_hiera_t", path)
    return ours, _official_predictor(official, 1024)


def test_predict_matches_official_at_1024(predictors_1024):
    ours, ref = predictors_1024
    image = _image()
    ours.set_image(image)
    with torch.no_grad():
        ref.set_image(image)
    h, w = image.shape[:2]
    for name, kw in _cases(h, w):
        with torch.no_grad():
            r = ref.predict(**kw)
        _compare(ours.predict(**kw), r, name)
    # Iterative refinement with the previous low-res logits as mask input.
    kw = dict(point_coords=np.array([[0.45 * w, 0.55 * h]]), point_labels=np.array([1]))
    with torch.no_grad():
        _, rs, rlow = ref.predict(**kw)
        r = ref.predict(**kw, mask_input=rlow[np.argmax(rs)][None], multimask_output=False)
    _, s, low = ours.predict(**kw)
    _compare(
        ours.predict(**kw, mask_input=low[np.argmax(s)][None], multimask_output=False),
        r,
        "click+mask_input",
    )


def test_second_predict_reuses_embedding(predictors_1024, monkeypatch):
    ours, _ = predictors_1024
    ours.set_image(_image("groceries.jpg"))
    import sam2_jax.predictors.image as mod

    def fail(*a, **k):
        raise AssertionError("image encoder ran again")

    monkeypatch.setattr(mod, "encode_images", fail)
    ours.predict(point_coords=np.array([[100, 100]]), point_labels=np.array([1]))
    ours.predict(box=np.array([50, 50, 300, 300]))


def test_batch_api_at_512(tmp_path):
    official = build_official("sam2.1_hiera_t", image_size=512, seed=6)
    save_official_checkpoint(official, tmp_path / "t21.pt")
    ours = SAM2ImagePredictor.from_checkpoint(
        "sam2.1_hiera_t", tmp_path / "t21.pt", ["image_size=512"]
    )
    ref = _official_predictor(official, 512)
    images = [_image("truck.jpg"), _image("groceries.jpg")]
    ours.set_image_batch(images)
    with torch.no_grad():
        ref.set_image_batch(images)
    pts = [np.array([[500.0, 600.0]]), np.array([[300.0, 200.0]])]
    labels = [np.array([1]), np.array([1])]
    with torch.no_grad():
        r = ref.predict_batch(pts, labels, multimask_output=True)
    o = ours.predict_batch(pts, labels, multimask_output=True)
    for i in range(2):
        _compare((o[0][i], o[1][i], o[2][i]), (r[0][i], r[1][i], r[2][i]), f"batch image {i}")


def _labels_and_areas(mask):
    """The official CUDA `get_connected_components` ([N, 1, H, W] -> labels, areas, 8-connected)
    on the CPU; `tests/ops/test_amg.py` checks our filling against it with brute-force labels."""
    labels = np.zeros(mask.shape, np.int32)
    areas = np.zeros(mask.shape, np.int32)
    for i, binary in enumerate(mask.numpy().astype(bool)[:, 0]):
        labels[i, 0], _ = ndimage.label(binary, structure=np.ones((3, 3)))
        sizes = np.bincount(labels[i, 0].ravel())
        areas[i, 0] = np.where(labels[i, 0] > 0, sizes[labels[i, 0]], 0)
    return torch.as_tensor(labels), torch.as_tensor(areas)


def test_hole_and_sprinkle_filling_matches_official(tmp_path, monkeypatch):
    """max_hole_area / max_sprinkle_area: filled on the low-res logits, then upsampled; the
    returned low-res logits stay unfilled (as the official)."""
    monkeypatch.setattr("sam2.utils.misc.get_connected_components", _labels_and_areas)
    official = build_official("sam2.1_hiera_t", image_size=256, seed=8)
    save_official_checkpoint(official, tmp_path / "t21.pt")
    model = SAM2ImagePredictor.from_checkpoint(
        "sam2.1_hiera_t", tmp_path / "t21.pt", ["image_size=256"]
    ).model
    image = _image("groceries.jpg")
    click = dict(point_coords=np.array([[400.0, 300.0]]), point_labels=np.array([1]))
    plain = SAM2ImagePredictor(model)
    plain.set_image(image)
    unfilled = plain.predict(**click, return_logits=True)[0]
    for hole, sprinkle, threshold in ((30, 0, 0.0), (0, 30, 0.0), (60, 60, 0.02)):
        from sam2.sam2_image_predictor import SAM2ImagePredictor as Official

        ref = Official(official, threshold, max_hole_area=hole, max_sprinkle_area=sprinkle)
        ref._bb_feat_sizes = [(64, 64), (32, 32), (16, 16)]
        ours = SAM2ImagePredictor(model, threshold, max_hole_area=hole, max_sprinkle_area=sprinkle)
        ours.set_image(image)
        with torch.no_grad():
            ref.set_image(image)
            for return_logits in (False, True):
                r = ref.predict(**click, return_logits=return_logits)
                o = ours.predict(**click, return_logits=return_logits)
                _compare(o, r, f"hole {hole} sprinkle {sprinkle} logits {return_logits}")
        masks = ours.predict(**click, return_logits=True)[0]
        changed = np.mean((masks > threshold) != (unfilled > threshold))
        assert changed > 0, f"hole {hole} sprinkle {sprinkle}: nothing was filled"


def test_bad_input_errors(predictors_1024):
    ours, _ = predictors_1024
    ours.reset_predictor()
    with pytest.raises(PredictorNotReadyError, match="set_image"):
        ours.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="set_image"):  # also a ValueError
        ours.predict(box=np.array([0, 0, 5, 5]))
    ours.set_image(_image("groceries.jpg"))
    bad = [
        (dict(point_coords=np.array([[1, 1]])), "point_labels must be supplied"),
        (
            dict(point_coords=np.array([[1, 1], [2, 2]]), point_labels=np.array([1])),
            "does not match",
        ),
        (dict(point_coords=np.array([1, 1]), point_labels=np.array([1])), r"\[N, 2\]"),
        (dict(), "no prompt given"),
        (dict(box=np.array([1, 2, 3])), "box must be"),
        (dict(box=np.array([0, 0, 5, 5]), mask_input=np.zeros((1, 64, 64))), "mask_input must be"),
        (
            dict(point_coords=np.array([[1, 1]]), point_labels=np.array([7])),
            "point_labels must be in",
        ),
    ]
    for kwargs, msg in bad:
        with pytest.raises(ValueError, match=msg):
            ours.predict(**kwargs)
    with pytest.raises(ValueError, match="3 channels"):
        ours.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        ours.set_image(np.zeros((10, 10, 3), np.float32))
