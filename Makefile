# The two commands of the README:
#   make report   set up everything on a fresh machine, then run the embedded report
#   make test     set up everything on a fresh machine, then run the tests
# Set-up is idempotent: a second run does nothing it has already done.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch. For a GPU, name a CUDA build: TORCH_SPEC='torch==2.13.0+cu128'
# installs it from PyTorch's own index for that CUDA version (its wheels are not on PyPI);
# TORCH_INDEX sets another index (e.g. a mirror).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= $(if $(findstring +,$(TORCH_SPEC)),https://download.pytorch.org/whl/$(lastword $(subst +, ,$(TORCH_SPEC))))
PARAMS ?= params/smollm2-135m.yaml params/gemma3-270m.yaml
# The published run at full strength (profile paper): hours on 2 cores, resumable: each
# completed chapter is kept and merged into reports/; rerun to go on (docs/running.md).
PAPER_PARAMS ?= params/smollm2-135m-paper.yaml params/gemma3-270m-paper.yaml \
                params/qwen2.5-coder-0.5b.yaml params/qwen2.5-coder-1.5b.yaml \
                params/gemma3-270m-lora.yaml \
                params/qwen2.5-coder-0.5b-lora.yaml params/qwen2.5-coder-1.5b-lora.yaml
# the 15 slowest tests are listed at the end, so a CI log shows where its 20 minutes go
PYTEST_ARGS ?= --durations=15
# Parameter files run side by side (each kernel gets cores/JOBS threads); use JOBS=1 on one GPU.
JOBS   ?= 2
# The browser tests (tests/test_browser.py) drive this Chromium with Playwright, which cannot
# download a browser of its own here; `make test` installs Debian's chromium when it is missing.
CHROMIUM ?= /usr/bin/chromium
# The git filter's nbstripout: outputs, counts and widget state go; cell ids and the notebook's
# kernel stay; the language details a kernel adds on save (version, lexer ...) go too.
NBSTRIPOUT := -m nbstripout --keep-id --extra-keys '$(addprefix metadata.language_info.,codemirror_mode file_extension mimetype nbconvert_exporter pygments_lexer version)'

.PHONY: setup report paper test lint lab git-filters clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	touch $@

setup: $(VENV)/.installed git-filters

# nbstripout as this clone's git filter: a notebook is staged without its outputs, and one
# saved by JupyterLab equals its source again; .gitattributes names the filter.
git-filters: $(VENV)/.installed
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean "'$(abspath $(PY))' $(NBSTRIPOUT)" && \
	  git config filter.nbstripout.smudge cat && \
	  git config filter.nbstripout.required true && \
	  git config diff.ipynb.textconv "'$(abspath $(PY))' $(NBSTRIPOUT) -t"; \
	fi

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "no $(CHROMIUM) and no apt-get: install Chromium, then make test CHROMIUM=/path/to/chromium"; exit 1; }
	@echo "installing Debian's chromium for the browser tests"
	@SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

report: setup
	$(PY) -m llmrec assets fetch movielens-100k
	$(PY) -m llmrec report --jobs $(JOBS) $(PARAMS)

# the size axis's tuned points first: their committed adapters restored from reports/adapters
# (seconds), or trained and kept there where none is committed yet
paper: setup
	$(PY) -m llmrec assets fetch movielens-100k
	for f in $(filter %-lora.yaml,$(PAPER_PARAMS)); do \
	  LLMREC_THREADS=$$(nproc) $(PY) -m llmrec curve $$f --keep reports/adapters || exit 1; done
	LLMREC_THREADS=$$(nproc) $(PY) -m llmrec report --jobs 1 $(PAPER_PARAMS)

test: setup $(CHROMIUM)
	$(PY) -m llmrec assets fetch movielens-100k
	LLMREC_CHROMIUM=$(CHROMIUM) $(PY) -m pytest $(PYTEST_ARGS)

# JupyterLab from the project's environment, at the repository root (as root it needs --allow-root)
lab: setup
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: setup
	$(VENV)/bin/ruff check llmrec tests notebooks

clean-venv:
	rm -rf $(VENV)
