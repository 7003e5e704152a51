#!/usr/bin/env bash
# Install and run the main job on the embedded defaults: tags a generated sample video
# end to end through the local stack (api + worker + consumer) and prints the result.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -r requirements-offline.txt
# the project itself (shared/, functions/, scripts/ and the vtt-* commands), editable
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
exec .venv/bin/python scripts/demo.py "$@"
