"""sam2-jax configs (ml_collections), loaded by path through `sam2_jax.config`."""
