# `make demo`: create .venv, install, train a small model on the synthetic data set, evaluate, report.
# `make test`: lint + the whole test suite. `make bench`: benchmarks -> benchmarks/RESULTS.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PEER_INSTALLED := $(VENV)/.peer-installed
BROWSER_INSTALLED := $(VENV)/.browser-installed
CHROMIUM := /usr/bin/chromium

.PHONY: venv demo test test-browser lint bench clean

venv: $(INSTALLED)

# The install compiles no bytecode (16,000 files, 50 s on 2 cores); instead each module is
# compiled the first time a process imports it and cached for every later process (about 6,000
# modules: 10 s, once). Where the environment turns that cache off (PYTHONDONTWRITEBYTECODE, as
# on our CI machines), the suite's 60-odd Python processes would each compile again what they
# import, so the commands below turn it back on. docs/RESULTS.md has the measurements.
export PYTHONDONTWRITEBYTECODE =
# uv installs the pinned packages (pip where uv cannot be had): requirements/install.py.
INSTALL := $(PYTHON) requirements/install.py $(BIN)/python

$(INSTALLED): pyproject.toml requirements/constraints.txt requirements/install.py
	$(PYTHON) -m venv --without-pip $(VENV)
	$(INSTALL) '.[cpu,test]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python driver_train_save_evaluate.py --run-dir runs/demo --overwrite \
		--num-synthetic 240 --size 96 --base-filters 8 --epochs 12 --batch-size 8 --augment --inspect

# The benchmarks also need the peer of benchmark 5 (torch CPU build + monai, about 1 GB).
$(PEER_INSTALLED): $(INSTALLED)
	$(INSTALL) '.[cpu,test,peer]'
	touch $(PEER_INSTALLED)

bench: $(PEER_INSTALLED)
	$(BIN)/python benchmarks/run.py

lint: $(INSTALLED)
	$(BIN)/ruff check .

# Two workers (one per core), each taking whole test files, those with the most slow tests first
# (conftest.py): 9-13 minutes on 2 cores with the install, depending on the machine
# (docs/RESULTS.md, "The two commands on a fresh clone").
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# The review page in a real browser: Debian's chromium (apt-get, as root or through sudo) and
# Playwright for Python, then tests/test_review_browser.py. About 30 s with the installs.
$(BROWSER_INSTALLED): $(INSTALLED)
	test -x $(CHROMIUM) || { command -v apt-get > /dev/null && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium' \
		> /dev/null; }
	$(INSTALL) '.[cpu,test,browser]'
	touch $(BROWSER_INSTALLED)

test-browser: $(BROWSER_INSTALLED)
	$(BIN)/python -m pytest -p no:cacheprovider -m browser tests/test_review_browser.py

clean:
	rm -rf $(VENV) runs data/synthetic .pytest_cache .ruff_cache
