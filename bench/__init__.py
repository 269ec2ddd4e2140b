"""Benchmarks: ours vs the official PyTorch SAM 2 in the same run (never collected as tests)."""
