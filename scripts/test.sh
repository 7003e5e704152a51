#!/usr/bin/env bash
# Install the test dependencies, start Redis and MariaDB when they are not reachable,
# then run the whole test suite (slow end-to-end tests included). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
# gcloud-tasks-emulator pins protobuf<5: installed without its dependencies
.venv/bin/pip install -q --disable-pip-version-check --no-deps -r requirements-emulators.txt \
  -r requirements-offline.txt
# the project itself (shared/, functions/, scripts/ and the vtt-* commands), editable
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
bash scripts/ensure_services.sh
.venv/bin/ruff check .
# Two phases: every test not marked `serial` in parallel workers (each with its own MariaDB
# database and Redis db: tests/conftest.py), then the few that time themselves against a
# real limit, alone. Exit code 5 (no test selected in a phase) is not a failure.
status=0
.venv/bin/python -m pytest -n "${TEST_WORKERS:-3}" --phase parallel "$@" || status=$?
[ "$status" -eq 5 ] && status=0
serial=0
.venv/bin/python -m pytest --phase serial "$@" || serial=$?
[ "$serial" -eq 5 ] && serial=0
exit $(( status != 0 ? status : serial ))
