"""Test-only stand-in for `torchvision`: just what the official `sam2` package imports.

The PyPI torchvision wheel is a CUDA build that cannot be imported next to the CPU torch used
as the test oracle, so tests/conftest.py puts tests/support first on sys.path and the official
`sam2.utils.transforms` / `sam2.automatic_mask_generator` find this package instead:
- `torchvision.transforms`: ToTensor, Resize (tensor and PIL input), Normalize.
- `torchvision.ops.boxes`: nms, batched_nms, box_area (greedy NMS as torchvision's CPU kernel).

It is never imported by `sam2_jax`, and must not be installed or shipped.
"""

from torchvision import ops, transforms

__version__ = "0.0.0+sam2_jax.test_standin"

__all__ = ["ops", "transforms"]
