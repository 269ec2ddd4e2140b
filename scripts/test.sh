#!/usr/bin/env bash
# Set up (with the test oracle) and run the whole test suite. README and .ci/run call this.
# Without arguments the suite runs as two pytest processes, inference then training, so that
# neither inherits the other's compiled programs (memory); arguments are passed to one pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

run_pytest() {
  set +e
  .venv/bin/python -m pytest -q --durations=15 "$@"
  local rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: $*" >&2
  fi
  return "$rc"
}

if [ "$#" -gt 0 ]; then
  run_pytest "$@"
else
  run_pytest tests --ignore=tests/train
  run_pytest tests/train
fi
