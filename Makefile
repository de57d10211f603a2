# The handset's build and test entry points. `make test` works on a fresh Debian
# bookworm machine: as root it installs the Debian packages the tests need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: all venv test lint check clean

all: venv

$(VENV)/.installed: pyproject.toml constraints.txt tools/apt-test-packages.txt
	mkdir -p $(VENV)
	tools/install-system-deps $(VENV)/.apt-stamp
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[test,systemd]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv lint
	$(VENV)/bin/pytest

# Benchmarks print `name value unit` lines (bench/README.md); never asserted by tests.
.PHONY: bench
bench: venv
	@for f in bench/*.py; do $(PY) $$f || exit 1; done | tee bench/results.txt

# The virtual bench (vmbench/README.md): build or find in the cache the VM's kernel and root
# image (needs root; a cold build takes a few minutes, a cached one under a second), and run the
# tests under tests/vm inside it. `make test` runs them too.
.PHONY: vm-image vm-test
test: vm-image
vm-image: venv
	@if [ "$$(id -u)" = 0 ]; then $(PY) -m vmbench build; \
	else echo "vm-image: not root, the bench tests will skip"; fi

vm-test: vm-image
	$(VENV)/bin/pytest tests/vm

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache

# Start the handset; e.g. make run HANDSET_ARGS="--interface bat0 --number 5551234 --name Kim"
.PHONY: run
HANDSET_ARGS ?=
run: venv
	$(VENV)/bin/handset run $(HANDSET_ARGS)
