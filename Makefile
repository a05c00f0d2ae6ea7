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
PYTEST_ARGS ?=
# Parameter files run side by side (each kernel gets cores/JOBS threads); use JOBS=1 on one GPU.
JOBS   ?= 2

.PHONY: setup report test lint clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed

report: setup
	$(PY) -m llmrec assets fetch movielens-100k
	$(PY) -m llmrec report --jobs $(JOBS) $(PARAMS)

test: setup
	$(PY) -m llmrec assets fetch movielens-100k
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check llmrec tests notebooks

clean-venv:
	rm -rf $(VENV)
