# revgnn: two commands on a fresh machine
#   make book   executes every notebook (shipped data) and builds the Jupyter Book in _build/html; a notebook whose
#               notebook, parameters, files read and environment are unchanged comes from the cache (FRESH=1: none)
#   make test   runs pytest for the package (the browser test builds the smoke book) and nbmake for the notebooks
#   make records regenerates the records of results/ that today's code no longer gives (results/README.md)
# They need npm (MathJax, once) and, for the browser test, Chromium (`make browser` installs it as root).
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

.PHONY: setup browser test test-fast book clean lint records

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,book,lab,browser]"
	-$(BIN)/python -m revgnn.nn.native --all  # pre-build the native GENConv kernel, every build this CPU runs (~1-2 min)
	touch $(STAMP)

# Chromium for the browser test (Playwright drives Debian's build; its own download needs the internet). apt-get needs
# root, as in CI; elsewhere this says what to run, and the test is skipped, saying why, until Chromium is there.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
	  echo "make browser: run 'sudo apt-get install chromium' for the browser test (skipped without it)"

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) tests
	$(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) --nbmake --nbmake-timeout=600 notebooks

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
	$(BIN)/python -m revgnn.book --params "$(PARAMS)" $(if $(filter 1 yes true,$(FRESH)),--fresh)

clean:
	rm -rf _build book/_executed book/_generated .pytest_cache
