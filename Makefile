# QUBO Compression Lab: `make run` starts the app, `make test` runs every test.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test bench lint venv dev-deps chromium weights clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
dev-deps: $(VENV)/.dev-installed

# Debian's chromium drives the browser test (Playwright's own download does not work offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: venv
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: dev-deps chromium
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: dev-deps
	$(PY) -m benchmarks

lint: dev-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

weights: venv
	$(PY) -m core.models.training

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-results
