# Two commands on a fresh machine: `make demo` (set-up + the main job), `make test`.
VENV := $(shell bash .ci/venv.sh)
PY := $(VENV)/bin/python

.PHONY: demo test venv
venv:
	@echo "virtual environment: $(VENV)"

demo:
	$(PY) -m fastst.demo --out demo-out

test:
	$(PY) -m pytest -q tests
