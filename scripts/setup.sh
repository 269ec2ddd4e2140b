#!/usr/bin/env bash
# Create .venv and install sam2-jax (runtime stack). With --test, also the test-only oracle:
# pytest, the CPU torch wheel and the official sam2 1.1.0 built from its sdist without CUDA
# (no build isolation, otherwise pip would pull a CUDA torch into the build environment).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q -r requirements.txt
pip install -q --no-deps -e .
if [ "${1:-}" = "--test" ]; then
  pip install -q -r requirements-test.txt
  pip install -q --no-deps vos-benchmark==0.1.0
  python -c "import sam2" 2>/dev/null || \
    SAM2_BUILD_CUDA=0 pip install -q --no-deps --no-build-isolation sam2==1.1.0
fi
