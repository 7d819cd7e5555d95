#!/usr/bin/env bash
# Shared set-up for scripts/demo and scripts/test: system packages, then a virtual
# environment in .venv with rulesctl installed (editable) and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "rulesctl installed in .venv ($(.venv/bin/rulesctl --version))"
