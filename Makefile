# Bootstrap: `make demo` and `make test` create .venv on first use and install portfwd into it.
# `make demo` installs what running portfwd needs (its dependencies and uvloop); `make test`
# adds the developer tools (pytest, mypy, ruff, the kubernetes client, build, PyInstaller).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint install dist wheel

$(BIN)/.venv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	touch $@

$(BIN)/.runtime: pyproject.toml $(BIN)/.venv
	$(BIN)/python -m pip install -q -e '.[fast]'
	touch $@

$(BIN)/.installed: pyproject.toml $(BIN)/.venv
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.runtime
	$(BIN)/portfwd demo

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench packaging
	$(BIN)/ruff format --check src tests bench packaging
	$(BIN)/mypy --strict src/
	$(BIN)/lint-imports --no-cache

# Three workers: most tests wait on sockets, so even two CPUs run them about twice as fast.
# loadfile keeps a module's tests (and its module-scoped fixtures, such as the binary build)
# on one worker.
test: lint
	$(BIN)/pytest -n 3 --dist loadfile

# The single-file executable (PyInstaller, one file), rebuilt when a source changes.
DIST_SOURCES := $(shell find src -name '*.py' -o -name '*.tcss' -o -name '*.yaml') \
	packaging/portfwd.spec packaging/entry.py pyproject.toml

dist: dist/portfwd

dist/portfwd: $(BIN)/.installed $(DIST_SOURCES)
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist \
		--workpath build/pyinstaller packaging/portfwd.spec

# The wheel and the sdist, as a release would upload them.
wheel: $(BIN)/.installed
	$(BIN)/python -m build --outdir dist .
