"""An ablation sweep: `python -m sam2_jax.sweep configs/sweeps/example.py [key=value ...]`.

Prompt mix x clip length on the default small run; each run is `train.py` with the shared
overrides from the command line, then these.
"""

from sam2_jax.sweep import grid


def get_sweep() -> list[dict]:
    return grid(**{
        "prompts.prob_to_use_pt_input": [0.0, 0.5],
        "clip.num_frames": [4, 6],
    })  # fmt: skip
