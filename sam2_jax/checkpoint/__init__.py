"""Official SAM 2 checkpoints <-> sam2-jax params."""
