# Shortcuts; the README's two commands are `bash scripts/demo.sh` and `bash scripts/test.sh`.
.PHONY: demo test test-fast lint stack migrate bench fuzz

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

test-fast:
	.venv/bin/python -m pytest -m "not slow"

lint:
	.venv/bin/ruff check .

stack:
	.venv/bin/python scripts/stack.py

migrate:
	.venv/bin/alembic upgrade head

bench:
	.venv/bin/python -m benchmarks.create_throughput

fuzz:
	.venv/bin/python -m benchmarks.contract_fuzz --minutes 10 --seeds 10
