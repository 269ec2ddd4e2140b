"""Training entry point: not implemented yet (the training issue)."""

import sys

if __name__ == "__main__":
    print("train.py: not yet implemented (see the training issue)", file=sys.stderr)
    sys.exit(2)
