# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: run test test-database setup lint format bench clean

run: setup
	@$(PY) manage.py collectstatic --noinput -v0
	@$(PY) -m prepsite.devstack

# Test processes: the suite mostly waits (on workers, browsers, Redis), so more than the cores pay off.
# Measured on 2 cores, quiet: 4 -> 6 min 57 s, 6 -> 6 min 1 s, 8 -> 6 min 52 s (each process boots its own pool).
TEST_PROCESSES ?= 6
PYTEST := $(VENV)/bin/pytest -n $(TEST_PROCESSES)

test: $(STAMP)
	@$(PY) manage.py check --fail-level WARNING
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(PYTEST) $(PYTEST_ARGS)

# The PostgreSQL pass of CI: what can differ between databases. Browser journeys and process faults
# (workers, SIGKILL, Redis restarts, the run stack) behave the same on either and ran under `make test`.
test-database: $(STAMP)
	@$(PYTEST) -m "not browser and not process" $(PYTEST_ARGS)

setup: $(STAMP)
	@$(PY) manage.py migrate --noinput -v0
	@$(PY) manage.py load_content

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11+ (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "error: Python 3.11+ is required, $(PYTHON) is $$($(PYTHON) --version 2>&1)"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) lacks venv/ensurepip (on Debian: apt-get install python3-venv)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned requirements into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt || { echo "error: pip could not install requirements-dev.txt (is the package index reachable?)"; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $@

lint:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) var staticfiles artifacts db.sqlite3*
