"""The official PyTorch `sam2` as a test oracle: random weights, perturbed constants, conversion.

Every parity test builds an official module here, perturbs the tensors its initialiser leaves
constant (zeros, ones, layer-scale, tokens) so nothing matches by accident, and pushes the
state dict through *our* converter naming rules.
"""

from typing import Any, Mapping

import numpy as np
import torch

from sam2_jax.checkpoint.naming import official_to_ours


def perturb_constant_tensors_(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    """In place: add N(0, scale²) noise to every parameter/buffer whose elements are all equal."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, t in sorted(module.state_dict(keep_vars=True).items()):
            if t.is_floating_point() and t.numel() > 0 and bool((t == t.flatten()[0]).all()):
                t.add_(scale * torch.randn(t.shape, generator=gen, dtype=t.dtype))


def state_dict_to_params(state_dict: Mapping[str, torch.Tensor], strip: str = "") -> dict[str, Any]:
    """Official state dict (optionally with a key prefix `strip` removed) -> nested param dict."""
    params: dict[str, Any] = {}
    for key, t in state_dict.items():
        if strip:
            if not key.startswith(strip):
                continue
            key = key[len(strip) :]
        path, value = official_to_ours(key, t.detach().cpu().numpy())
        node = params
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return params


def module_params(module: torch.nn.Module) -> dict[str, Any]:
    """`{"params": ...}` for a Flax module mirroring the official `module`."""
    return {"params": state_dict_to_params(module.state_dict())}


def to_np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def nchw_to_nhwc(x: Any) -> np.ndarray:
    return np.moveaxis(to_np(x), 1, -1)


def assert_close(ours: Any, ref: Any, tol: float, name: str) -> float:
    """Assert max |ours - ref| <= tol; report the error next to the reference's magnitude."""
    ours, ref = to_np(ours), to_np(ref)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != reference {ref.shape}"
    assert np.all(np.isfinite(ref)), f"{name}: reference has non-finite values"
    err = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    mag = float(np.max(np.abs(ref))) if ref.size else 0.0
    print(f"{name}: max abs err {err:.3e} (max |ref| {mag:.3e}, tol {tol:.0e})")
    assert mag > 0, f"{name}: reference is all zeros, comparison would be vacuous"
    assert err <= tol, f"{name}: max abs err {err:.3e} > {tol:.0e} (max |ref| {mag:.3e})"
    return err


def assert_nontrivial_mask_logits(logits: Any, name: str) -> None:
    """Both signs present and foreground between 1% and 99% of pixels."""
    x = to_np(logits)
    fg = float(np.mean(x > 0))
    assert (x > 0).any() and (x < 0).any(), f"{name}: logits have a single sign"
    assert 0.01 <= fg <= 0.99, f"{name}: foreground fraction {fg:.4f} outside [0.01, 0.99]"


OFFICIAL_CONFIG_FILES = {
    f"{release}_hiera_{size}": f"configs/{release}/{release}_hiera_{size}.yaml"
    for release in ("sam2", "sam2.1")
    for size in ("t", "s", "b+", "l")
}


def build_official(
    name: str,
    image_size: int = 1024,
    seed: int = 0,
    apply_postprocessing: bool = True,
    video: bool = False,
    extra_overrides: tuple[str, ...] = (),
    object_score_bias: float | None = 4.0,
    vos_optimized: bool = False,
) -> torch.nn.Module:
    """The official model of config `name` at `image_size`, seeded random weights with every
    constant-initialised tensor perturbed, in eval mode.

    `object_score_bias` sets the bias of the object-score head's last layer so that objects are
    predicted present (> 0) or absent (< 0) instead of at random; None keeps the random bias.
    `vos_optimized` builds the official `SAM2VideoPredictorVOS` (torch.compile'd components).
    """
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    torch.manual_seed(seed)
    overrides = [f"++model.image_size={image_size}", *extra_overrides]
    builder = build_sam2_video_predictor if video else build_sam2
    extra = {"vos_optimized": True} if vos_optimized else {}
    model = builder(
        OFFICIAL_CONFIG_FILES[name],
        None,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=overrides,
        apply_postprocessing=apply_postprocessing,
        **extra,
    )
    perturb_constant_tensors_(model, seed=seed)
    if object_score_bias is not None:
        head = model.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        with torch.no_grad():
            last.bias.fill_(object_score_bias)
    return model.eval()


def save_official_checkpoint(model: torch.nn.Module, path) -> None:
    """Write `{"model": state_dict}` exactly as Meta publishes checkpoints."""
    torch.save({"model": model.state_dict()}, path)
