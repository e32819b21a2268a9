# simbi-workers: every target installs what it needs first, so a fresh clone on a fresh
# Debian machine needs only `make demo` or `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TS := workers/typescript
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := redis-server ruby ruby-minitest nodejs npm

.PHONY: install system-deps build demo test test-python test-ruby test-node lint bench chaos clean

install: system-deps $(VENV)/.installed $(TS)/dist/.built

# Debian packages, only the ones whose commands are missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v ruby >/dev/null || missing="$$missing ruby ruby-minitest"; \
	ruby -e 'require "minitest"' 2>/dev/null || missing="$$missing ruby-minitest"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	$(PYTHON) -c "import ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(TS)/node_modules/.installed: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TS)/dist/.built: $(TS)/node_modules/.installed $(shell find $(TS)/src $(TS)/test -name '*.ts' 2>/dev/null) $(TS)/tsconfig.json
	cd $(TS) && npm run --silent build
	touch $@

build: $(TS)/dist/.built

demo: install
	$(BIN)/simbi-workers demo

test: install test-python test-ruby test-node

test-python: install
	$(BIN)/pytest -q

test-ruby: install
	ruby workers/ruby/test/run.rb

test-node: install
	cd $(TS) && node --test dist/test/*.test.js

lint: install
	$(BIN)/ruff format --check simbi_workers tests benchmarks
	$(BIN)/ruff check simbi_workers tests benchmarks

bench: install
	$(BIN)/python benchmarks/throughput.py

chaos: install
	$(BIN)/python benchmarks/chaos.py

clean:
	rm -rf $(VENV) $(TS)/node_modules $(TS)/dist var
