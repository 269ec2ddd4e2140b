"""`python -m sam2_jax.convert`: a checkpoint (official `.pt`, sam2-jax orbax directory or Hugging
Face `transformers` directory / `.safetensors`) -> a sam2-jax orbax checkpoint (`--out DIR`) or an
official `.pt` file (`--export-pt OUT.pt`, loadable by the official `build_sam2`)."""

import argparse
import json
import sys
from pathlib import Path

from sam2_jax import config as config_lib
from sam2_jax.build import abstract_params
from sam2_jax.checkpoint.export import export_official_checkpoint
from sam2_jax.checkpoint.formats import load_params, save_params
from sam2_jax.checkpoint.hf import CONFIG_FILE, hf_config_name, is_hf_checkpoint
from sam2_jax.checkpoint.torch_file import CheckpointError


def _config_name(config: str | None, checkpoint: str) -> str:
    """`--config`, or for a HF model directory the official name its config.json describes."""
    if config:
        return config
    hf_config = Path(checkpoint) / CONFIG_FILE
    if is_hf_checkpoint(checkpoint) and hf_config.is_file():
        return hf_config_name(json.loads(hf_config.read_text()))
    raise ValueError("--config is required unless --checkpoint is a HF model directory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config",
        help="model config name, e.g. sam2.1_hiera_t (optional for a HF model directory)",
    )
    parser.add_argument("--checkpoint", required=True, help=".pt, orbax dir or HF dir/.safetensors")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="output orbax directory (must not exist)")
    out.add_argument("--export-pt", help="output official .pt file (must not exist)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    try:
        cfg = config_lib.load(_config_name(args.config, args.checkpoint), args.overrides)
        params = load_params(args.checkpoint, abstract_params(cfg), cfg.name)
        if args.export_pt:
            written = export_official_checkpoint(params, args.export_pt)
        else:
            written = save_params(params, args.out, cfg.name)
    except (CheckpointError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {written} ({cfg.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
