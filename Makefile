# Two commands on a fresh machine: `make demo` (set-up + the main job), `make test`.
VENV := $(shell bash .ci/venv.sh)
PY := $(VENV)/bin/python

.PHONY: demo test lint venv
venv:
	@echo "virtual environment: $(VENV)"

demo:
	$(PY) -m fastst.commands.demo --out demo-out

# ruff, the import-layer contracts (pyproject.toml, docs/architecture.md) and the test suite; all three
# run, and the target fails if any of them does (with pytest's exit code when the tests fail)
test:
	@rc=0; \
	$(VENV)/bin/ruff check . || rc=1; \
	$(VENV)/bin/lint-imports || rc=1; \
	$(PY) -m pytest -q tests || rc=$$?; \
	exit $$rc

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
