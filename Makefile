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

# pip compiles each installed file to bytecode one at a time; compileall does it on every core,
# which makes the install a fifth quicker on 2 cores (docs/RESULTS.md). A file that is not
# Python 3.11 source (torch ships one for 3.12) stays uncompiled, as pip leaves it: "|| true".
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -c requirements/constraints.txt -e
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true

$(INSTALLED): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) '.[cpu,test]'
	$(COMPILE)
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python driver_train_save_evaluate.py --run-dir runs/demo --overwrite \
		--num-synthetic 240 --size 96 --base-filters 8 --epochs 12 --batch-size 8 --augment --inspect

# The benchmarks also need the peer of benchmark 5 (torch CPU build + monai, about 1 GB).
$(PEER_INSTALLED): $(INSTALLED)
	$(PIP_INSTALL) '.[cpu,test,peer]'
	$(COMPILE)
	touch $(PEER_INSTALLED)

bench: $(PEER_INSTALLED)
	$(BIN)/python benchmarks/run.py

lint: $(INSTALLED)
	$(BIN)/ruff check .

# Two workers (one per core), each taking whole test files: 8-14 minutes on 2 cores with the
# install, depending on the machine (docs/RESULTS.md, "The two commands on a fresh clone").
# The project's own modules are compiled first as well: where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machines), each of the suite's 60-odd Python processes would compile them again.
test: lint
	$(BIN)/python -m compileall -q -j 0 segment tests benchmarks conftest.py > /dev/null
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The review page in a real browser: Debian's chromium (apt-get, as root or through sudo) and
# Playwright for Python, then tests/test_review_browser.py. About 30 s with the installs.
$(BROWSER_INSTALLED): $(INSTALLED)
	test -x $(CHROMIUM) || { command -v apt-get > /dev/null && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium' \
		> /dev/null; }
	$(PIP_INSTALL) '.[cpu,test,browser]'
	touch $(BROWSER_INSTALLED)

test-browser: $(BROWSER_INSTALLED)
	$(BIN)/python -m pytest -p no:cacheprovider -m browser tests/test_review_browser.py

clean:
	rm -rf $(VENV) runs data/synthetic .pytest_cache .ruff_cache
