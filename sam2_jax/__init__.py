"""sam2-jax: SAM 2 (Segment Anything in Images and Videos) in JAX/Flax.

Public API (imported lazily, so `import sam2_jax.<submodule>` stays light):
- `build_sam2(config_name, ckpt_path=None, overrides=())` -> `SAM2Model` (module + params + config)
- `SAM2ImagePredictor(model)` / `SAM2ImagePredictor.from_checkpoint(config_name, ckpt_path)`
- `SAM2AutomaticMaskGenerator(model, ...)` / `.from_checkpoint(config_name, ckpt_path, **kw)`
- `build_sam2_video_predictor(config_name, ckpt_path=None, overrides=())` -> `SAM2VideoPredictor`
"""

import importlib
from typing import Any

_EXPORTS = {
    "SAM2Model": "sam2_jax.build",
    "build_sam2": "sam2_jax.build",
    "SAM2ImagePredictor": "sam2_jax.predictors.image",
    "SAM2AutomaticMaskGenerator": "sam2_jax.predictors.automatic",
    "SAM2VideoPredictor": "sam2_jax.predictors.video",
    "build_sam2_video_predictor": "sam2_jax.predictors.video",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sam2_jax' has no attribute {name!r}")
