# One-command set-up, run and test. Everything lands in .venv/ and build/.
#   make run    start the hub (mosquitto + plugin, persister, HTTP) on SQLite
#   make test   run the test suite (pass extra pytest args in PYTEST_ARGS, the number of
#               worker processes in TEST_WORKERS; TEST_WORKERS=0 runs it in this process)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PLUGIN := build/hub_auth.so
PLUGIN_SRC := $(wildcard hub/broker_auth/*.py hub/broker_auth/*.h)
PYTEST_ARGS ?=
# The tests mostly wait on real processes (brokers, databases, servers starting and stopping),
# so three workers keep a 2-core machine busy; each worker draws ports from its own range
# (tests/support/ports.py) and starts its own PostgreSQL cluster.
TEST_WORKERS ?= 3

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients nginx chromium rabbitmq-server

.PHONY: setup system-packages plugin console rhizo-client run test lint clean constraints

setup: system-packages $(STAMP) plugin console rhizo-client

# Debian's mosquitto, its headers (for the plugin), the CLI clients, nginx (deployment test),
# chromium (console tests), rabbitmq-server (BROKER=rabbitmq: the hub starts its own nodes)
# and Node.js (console build); only what is missing. A policy-rc.d (when none is there) keeps
# the packages from starting their system services: nothing is left running system-wide.
system-packages:
	@missing="$(APT_PACKAGES)"; \
	if ! command -v npm >/dev/null; then missing="$$missing nodejs npm"; fi; \
	if ! [ -x /usr/sbin/mosquitto ] || [ ! -f /usr/include/mosquitto_broker.h ] \
	    || ! [ -x /usr/sbin/nginx ] || ! [ -x /usr/bin/chromium ] || ! command -v npm >/dev/null \
	    || ! [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then \
	  echo "installing $$missing"; \
	  rcd=; if ! [ -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && \
	    $(SUDO) chmod +x /usr/sbin/policy-rc.d && rcd=1; fi; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    $$missing </dev/null; rc=$$?; \
	  if [ -n "$$rcd" ]; then $(SUDO) rm -f /usr/sbin/policy-rc.d; fi; \
	  [ $$rc = 0 ]; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	touch $@

plugin: $(STAMP)
	@if [ -f hub/broker_auth/build.py ]; then \
	  $(MAKE) --no-print-directory $(PLUGIN); \
	else \
	  echo "note: hub/broker_auth/build.py does not exist yet; skipping the broker plugin"; \
	fi

$(PLUGIN): $(PLUGIN_SRC) $(STAMP)
	mkdir -p build
	$(PY) -m hub.broker_auth.build build/

# The web console (console/): npm ci when package-lock.json changes, esbuild when a
# source changes; the bundle lands in hub/http/static/ (git-ignored, served at /).
CONSOLE_DEPS  := console/node_modules/.installed
CONSOLE_STAMP := hub/http/static/.built
CONSOLE_SRC   := console/package.json console/package-lock.json console/build.mjs console/index.html \
                 $(shell find console/src -type f 2>/dev/null)

console: $(CONSOLE_STAMP)

$(CONSOLE_DEPS): console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONSOLE_STAMP): $(CONSOLE_SRC) $(CONSOLE_DEPS)
	cd console && node build.mjs
	touch $@

# rhizo-client 0.1.5 as on a controller, in its own virtualenv (tests/test_rhizo_client.py).
RHIZO_VENV  := .venv-rhizo
RHIZO_STAMP := $(RHIZO_VENV)/.installed

rhizo-client: $(RHIZO_STAMP)

$(RHIZO_STAMP): tests/rhizo_client/requirements.txt
	rm -rf $(RHIZO_VENV)
	$(PYTHON) -m venv $(RHIZO_VENV)
	$(RHIZO_VENV)/bin/python -m pip install --disable-pip-version-check -q -r tests/rhizo_client/requirements.txt
	touch $@

run: setup
	$(PY) run.py --init-db
	$(PY) run.py

test: setup
	$(PY) -m ruff check hub tests bench examples
	$(PY) -m mypy hub examples
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# What `make test` checks before the tests: ruff and mypy.
lint: $(STAMP)
	$(PY) -m ruff check hub tests bench examples
	$(PY) -m mypy hub examples

# Rewrite constraints.txt from the packages currently in .venv.
constraints: $(STAMP)
	{ echo "# Exact versions for development and CI: pip install -c constraints.txt -e .[dev]"; \
	  echo "# Regenerate from a working .venv with: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -i -E '^(pip|setuptools|wheel|hub)( @|==)'; \
	} > constraints.txt.new && mv constraints.txt.new constraints.txt && touch $(STAMP)

clean:
	rm -rf build $(VENV) $(RHIZO_VENV)
