"""Image encoder, Hiera trunk + FPN neck (<- sam2/modeling/backbones/image_encoder.py).

The official returns a dict of NCHW tensors; ours is a NamedTuple of channels-last arrays.
"""

from typing import NamedTuple

import flax.linen as nn
import jax

from sam2_jax.models.fpn_neck import FpnNeck
from sam2_jax.models.hiera import Hiera


class ImageEncoderOutput(NamedTuple):
    """Official output dict; levels are high resolution first, `scalp` lowest levels dropped.

    vision_features: [B, h, w, d] (= backbone_fpn[-1]); vision_pos_enc and backbone_fpn: tuples of
    [B, h_i, w_i, d].
    """

    vision_features: jax.Array
    vision_pos_enc: tuple[jax.Array, ...]
    backbone_fpn: tuple[jax.Array, ...]


class ImageEncoder(nn.Module):
    """`ImageEncoder(trunk, neck, scalp)`; the trunk and neck are submodules `trunk` and `neck`.

    Image sides must satisfy `Hiera.check_input_size` (multiples of 32 for every official
    config); a ValueError says so otherwise.
    """

    trunk: Hiera
    neck: FpnNeck
    scalp: int = 0

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ValueError if the trunk cannot encode a height x width image."""
        self.trunk.check_input_size(height, width)

    @nn.compact
    def __call__(self, images: jax.Array, deterministic: bool = True) -> ImageEncoderOutput:
        """images: [B, H, W, 3] (normalised) -> ImageEncoderOutput."""
        if list(self.trunk.channel_list) != list(self.neck.backbone_channel_list):
            raise ValueError(
                f"trunk channels {self.trunk.channel_list} != neck backbone_channel_list "
                f"{self.neck.backbone_channel_list}"
            )
        self.check_input_size(images.shape[1], images.shape[2])
        features, pos = self.neck(self.trunk(images, deterministic))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return ImageEncoderOutput(features[-1], tuple(pos), tuple(features))
