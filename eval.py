"""Video evaluation entry point: not implemented yet (the evaluation issue)."""

import sys

if __name__ == "__main__":
    print("eval.py: not yet implemented (see the evaluation issue)", file=sys.stderr)
    sys.exit(2)
