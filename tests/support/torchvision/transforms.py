"""Test-only stand-in for `torchvision.transforms`: ToTensor, Resize, Normalize.

Semantics of torchvision >= 0.17 (transforms/functional.py, _functional_tensor.py):
- ToTensor: PIL image or ndarray [H, W, C] / [H, W] -> tensor [C, H, W]; uint8 is scaled to
  [0, 1] in the default float dtype, other dtypes are kept.
- Resize(size): tensors via F.interpolate (align_corners=False, antialias=True by default for
  bilinear/bicubic, computed in float32 and cast back); PIL images via PIL's `Image.resize`.
  `size` is (h, w), or an int that the shorter edge is resized to.
- Normalize(mean, std): (x - mean) / std per channel.
Resize and Normalize are TorchScript-scriptable nn.Modules (sam2 scripts them).
"""

from typing import List, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

_PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
_PIL_DTYPES = {"I": np.int32, "I;16": np.int16, "F": np.float32}


def to_tensor(pic: Union[Image.Image, np.ndarray]) -> Tensor:
    """PIL image or ndarray [H, W, C] / [H, W] -> tensor [C, H, W] (uint8 -> float / 255)."""
    if isinstance(pic, Image.Image):
        arr = np.array(pic, _PIL_DTYPES.get(pic.mode, np.uint8), copy=True)
        if pic.mode == "1":
            arr = arr * np.uint8(255)
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.ndim} dimensions")
        arr = pic
    else:
        raise TypeError(f"pic should be a PIL Image or ndarray, got {type(pic)}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    img = torch.from_numpy(np.ascontiguousarray(arr.transpose((2, 0, 1)))).contiguous()
    if img.dtype == torch.uint8:
        return img.to(dtype=torch.get_default_dtype()).div(255)
    return img


def _resized_output_size(height: int, width: int, size: List[int]) -> List[int]:
    """(h, w) target: `size` itself if it has 2 entries, else shorter edge -> size[0]."""
    if len(size) == 2:
        return [size[0], size[1]]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size[0], int(size[0] * long / short)
    if width <= height:
        return [new_long, new_short]
    return [new_short, new_long]


def resize_tensor(img: Tensor, size: List[int], interpolation: str, antialias: bool) -> Tensor:
    """Tensor [..., C, H, W] -> [..., C, h, w] as torchvision's tensor `resize`."""
    out_hw = _resized_output_size(img.shape[-2], img.shape[-1], size)
    if out_hw == [img.shape[-2], img.shape[-1]]:
        return img
    out_dtype = img.dtype
    out_is_float = img.is_floating_point()
    squeeze = img.dim() < 4
    x = img.unsqueeze(0) if squeeze else img
    if x.dtype != torch.float32 and x.dtype != torch.float64:
        x = x.to(torch.float32)
    if interpolation == "nearest":
        x = F.interpolate(x, size=out_hw, mode=interpolation)
    else:
        x = F.interpolate(
            x, size=out_hw, mode=interpolation, align_corners=False, antialias=antialias
        )
    if interpolation == "bicubic" and out_dtype == torch.uint8:
        x = x.clamp(min=0, max=255)
    if squeeze:
        x = x.squeeze(0)
    if x.dtype != out_dtype:
        if not out_is_float:
            x = torch.round(x)
        x = x.to(out_dtype)
    return x


class ToTensor:
    """`torchvision.transforms.ToTensor` (see `to_tensor`)."""

    def __call__(self, pic: Union[Image.Image, np.ndarray]) -> Tensor:
        return to_tensor(pic)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


class Resize(torch.nn.Module):
    """`torchvision.transforms.Resize(size, interpolation="bilinear", antialias=True)`.

    `interpolation` is "nearest", "bilinear" or "bicubic" (or an enum with such a `.value`).
    """

    def __init__(
        self,
        size: Union[int, Sequence[int]],
        interpolation: str = "bilinear",
        antialias: bool = True,
    ) -> None:
        super().__init__()
        self.size: List[int] = [int(size)] if isinstance(size, int) else [int(s) for s in size]
        if len(self.size) not in (1, 2):
            raise ValueError(f"size must be an int or a sequence of 1 or 2 ints, got {size}")
        self.interpolation: str = str(getattr(interpolation, "value", interpolation))
        if self.interpolation not in _PIL_FILTERS:
            raise ValueError(f"unsupported interpolation {self.interpolation!r}")
        self.antialias: bool = bool(antialias)

    def forward(self, img: Tensor) -> Tensor:
        if not isinstance(img, Tensor):
            return self._resize_pil(img)
        return resize_tensor(img, self.size, self.interpolation, self.antialias)

    @torch.jit.unused
    def _resize_pil(self, img: Image.Image) -> Image.Image:
        height, width = _resized_output_size(img.size[1], img.size[0], self.size)
        if [height, width] == [img.size[1], img.size[0]]:
            return img
        return img.resize((width, height), _PIL_FILTERS[self.interpolation])


class Normalize(torch.nn.Module):
    """`torchvision.transforms.Normalize(mean, std)` on a float tensor [..., C, H, W]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean: List[float] = [float(m) for m in mean]
        self.std: List[float] = [float(s) for s in std]

    def forward(self, tensor: Tensor) -> Tensor:
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor, got {tensor.dtype}")
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        if bool((std == 0).any()):
            raise ValueError("std evaluated to zero, leading to division by zero.")
        return tensor.sub(mean.view(-1, 1, 1)).div(std.view(-1, 1, 1))
