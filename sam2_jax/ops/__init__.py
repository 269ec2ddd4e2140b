"""Numerical ops shared by the models and predictors (torch-exact where torch semantics matter)."""

from sam2_jax.ops.interpolate import resize

__all__ = ["resize"]
