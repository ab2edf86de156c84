# revgnn: two commands on a fresh machine
#   make book   executes every notebook (shipped data) and builds the Jupyter Book in _build/html
#   make test   runs pytest for the package and nbmake for the notebooks
#   make records regenerates the records of results/ that today's code no longer gives (results/README.md)
# Both create .venv on first use. GPU users choose their torch build, e.g.
#   make setup TORCH_SPEC="torch==2.5.1" PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu121"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PARAMS ?=
BIN := $(VENV)/bin
# Tiny tensors: one intra-op thread avoids oversubscription (10x slower tests on a busy 2-core box).
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS
STAMP := $(VENV)/.revgnn-installed

.PHONY: setup test test-fast book clean lint records

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,book,lab]"
	-$(BIN)/python -c "from revgnn.nn import native; native.load()"  # pre-build the native GENConv kernel (~1-2 min)
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs tests
	$(BIN)/python -m pytest -q -rs --nbmake --nbmake-timeout=600 notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -rs -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check revgnn tests benchmarks

# Regenerate every record of results/ that today's code no longer gives (revgnn records check says which and why),
# then the numbers that README.md, results/README.md and the book's pages quote from them. A timing record is only
# re-timed on an idle machine of the CPU it names (revgnn records regenerate NAME --force overrides).
records: $(STAMP)
	$(BIN)/revgnn records regenerate stale
	$(BIN)/python -m revgnn.book.quotes

book: $(STAMP)
	$(BIN)/python -m revgnn.book --params "$(PARAMS)"

clean:
	rm -rf _build book/_executed .pytest_cache
