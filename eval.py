"""Video object segmentation evaluation: `python eval.py -h` (see sam2_jax/eval/run.py)."""

import sys

from sam2_jax.eval.run import main

if __name__ == "__main__":
    sys.exit(main())
