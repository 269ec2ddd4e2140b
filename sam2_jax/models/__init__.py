"""Flax (Linen) modules of SAM 2, one official component per file."""
