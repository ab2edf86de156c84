# revgnn: two commands on a fresh machine
#   make book   executes every notebook (shipped data) and builds the Jupyter Book in _build/html; a notebook whose
#               notebook, parameters, files read and environment are unchanged comes from the cache (FRESH=1: none)
#   make test   runs pytest for the package and nbmake for the notebooks
# make book needs npm (MathJax, once).
# Both create .venv on first use. GPU users choose their torch build, e.g.
#   make setup TORCH_SPEC="torch==2.5.1" PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu121"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PARAMS ?=
FRESH ?=
# pytest processes (pytest-xdist): the tests run one torch thread each, so one process per core
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
# Tiny tensors: one intra-op thread avoids oversubscription (10x slower tests on a busy 2-core box).
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS
STAMP := $(VENV)/.revgnn-installed

.PHONY: setup test test-fast book clean lint

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,book,lab]"
	-$(BIN)/python -m revgnn.nn.native --all  # pre-build the native GENConv kernel, every build this CPU runs (~1-2 min)
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) tests
	$(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) --nbmake --nbmake-timeout=600 notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -rs -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check revgnn tests benchmarks

book: $(STAMP)
	$(BIN)/python -m revgnn.book --params "$(PARAMS)" $(if $(filter 1 yes true,$(FRESH)),--fresh)

clean:
	rm -rf _build book/_executed book/_generated .pytest_cache
