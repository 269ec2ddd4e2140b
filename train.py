"""SAM 2 training: `python train.py -h` (see sam2_jax/train/run.py)."""

import sys

from sam2_jax.train.run import main

if __name__ == "__main__":
    sys.exit(main())
