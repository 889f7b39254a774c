# Every target installs what it needs first (idempotent), so each works on a fresh clone.
PYTHON ?= python3
export WANDB_MODE ?= offline
export HYDRA_FULL_ERROR ?= 1

.PHONY: install quickstart test test-slow bench clean

install:
	$(PYTHON) -m pip install -q -e ".[dev]"

quickstart: install
	$(PYTHON) -m reid_gan.pipeline

test: install
	$(PYTHON) -m pytest -q

test-slow: install
	$(PYTHON) -m pytest -q -m slow

bench: install
	@for f in benchmarks/*.py; do echo "== $$f"; $(PYTHON) $$f || exit 1; done

clean:
	rm -rf logs outputs multirun artifacts wandb .pytest_cache
