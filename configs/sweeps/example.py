"""An ablation sweep: `python -m sam2_jax.sweep configs/sweeps/example.py [key=value ...]`.

Learning rate x correction clicks on the default small run; each run is `train.py` with the
shared overrides from the command line, then these.
"""

from sam2_jax.sweep import grid


def get_sweep() -> list[dict]:
    return grid(**{
        "optimizer.base_lr": [1e-4, 3e-4],
        "prompts.num_correction_pt_per_frame": [0, 3],
    })  # fmt: skip
