"""`python -m sam2_jax.convert`: official `.pt` checkpoint -> sam2-jax orbax checkpoint."""

import argparse
import sys

from sam2_jax import config as config_lib
from sam2_jax.build import abstract_params
from sam2_jax.checkpoint.formats import load_params, save_params
from sam2_jax.checkpoint.torch_file import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="model config name, e.g. sam2.1_hiera_t")
    parser.add_argument("--checkpoint", required=True, help="official .pt file")
    parser.add_argument("--out", required=True, help="output directory (must not exist)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    try:
        cfg = config_lib.load(args.config, args.overrides)
        params = load_params(args.checkpoint, abstract_params(cfg), cfg.name)
        out = save_params(params, args.out, cfg.name)
    except (CheckpointError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({cfg.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
