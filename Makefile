# The handset's build and test entry points. `make test` works on a fresh Debian
# bookworm machine: as root it installs the Debian packages the tests need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: all venv test lint check clean run bench

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

# The inner loop, about a minute: lint, types, and every test that needs no VM, no network
# namespaces, no real-time audio and is not marked slow. `make test` runs it, then the rest
# of the suite.
FAST_TESTS := not netns and not realtime and not vm and not slow
check: venv lint
	$(VENV)/bin/mypy vomp hw firmware
	$(VENV)/bin/pytest -q -m "$(FAST_TESTS)"

test: venv check
	$(VENV)/bin/pytest -m "not ($(FAST_TESTS))"
	$(PY) -m image test --when-able

# Benchmarks: bench-only packages (the `bench` extra), speech clips fetched into .cache/, then
# every bench/*_bench.py; figures go to bench/results.txt.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e '.[test,systemd,bench]'
	touch $@

bench: venv $(VENV)/.bench-installed
	tools/fetch-speech .cache/speech
	$(PY) bench/run_all.py

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

# The Raspberry Pi SD image (image/README.md), as root: build/handset-VERSION-arm64.img, a .zst
# copy and sha256 sums. The Debian base is cached in ~/.cache/handset-image (cold: minutes);
# with unchanged inputs a rebuild takes seconds. `image-test` boots it under QEMU as a Pi 3
# (~2.5 min). `make test` runs the boot test when root and the base is cached (it adds ~3 min);
# otherwise it says why it skipped: a cold base build (10-20 min) is left to `make image`.
.PHONY: image image-test
image: venv
	$(PY) -m image build

image-test: venv
	$(PY) -m image test

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache .mypy_cache

# Start a handset on this machine: the daemon with HANDSET_CONFIG (default: a laptop's handset,
# unmanaged network, WAV files for audio). Then, in another terminal:
#   HANDSET_SOCKET=.handset/control.sock .venv/bin/handset status
.PHONY: run
HANDSET_CONFIG ?= examples/laptop.toml
run: venv
	$(VENV)/bin/handset run $(HANDSET_CONFIG)
