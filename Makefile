# speechbrain-sense: one-command setup, test and demo.
#   make demo   -> tiny SENSE training on a synthetic multilingual corpus
#   make test   -> install, lint, then the full test suite (CPU only)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# torchaudio 2.11 links against the CUDA build of torch; the CPU-only 2.13
# wheel cannot load it. The CUDA build runs fine on CPU-only machines.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
LINT_PATHS := $(wildcard speechbrain_sense recipes tests bench setup.py)
SPELL_PATHS := $(LINT_PATHS) $(wildcard docs README.md)

.PHONY: install lint browser test demo architecture clean

install: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e ".[dev,demo,onnx,search]" $(TORCH_PINS)
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/codespell $(SPELL_PATHS)

# The search page's browser test drives Debian's Chromium; without it (and
# without root to install it) that test skips, unless SENSE_REQUIRE_BROWSER=1.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }; \
	else \
		echo "chromium or chromedriver missing: the search page test will be skipped"; \
	fi

test: install lint browser
	$(PY) -m pytest -q

# The tiny SENSE recipe: synthesises a 4-language corpus and a tiny random
# w2v-BERT on first use, trains on CPU, prints the retrieval table.
demo: install
	cd recipes/CommonVoice/SENSE && $(abspath $(PY)) train.py hparams/sense_tiny.yaml

# The picture of docs/architecture.md, drawn from the package's imports.
architecture: install
	$(PY) tests/consistency/import_graph.py --png docs/figures/architecture.png

clean:
	rm -rf $(VENV) recipes/*/*/results
