# simbi-workers: every target installs what it needs first, so a fresh clone on a fresh
# Debian machine needs only `make demo` or `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TS := workers/typescript
CLIENT_TS := clients/typescript
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := redis-server ruby ruby-minitest ruby-redis ruby-sidekiq nodejs npm

.PHONY: install system-deps build demo test test-python test-ruby test-node test-clients-ts \
	test-clients-ruby lint bench chaos clean

install: system-deps $(VENV)/.installed $(TS)/dist/.built $(CLIENT_TS)/dist/.built

# Debian packages, only the ones whose commands are missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v ruby >/dev/null || missing="$$missing ruby ruby-minitest"; \
	ruby -e 'require "minitest"' 2>/dev/null || missing="$$missing ruby-minitest"; \
	ruby -e 'require "redis"' 2>/dev/null || missing="$$missing ruby-redis"; \
	ruby -e 'require "sidekiq"' 2>/dev/null || missing="$$missing ruby-sidekiq"; \
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

# The Node client: its own package (ioredis its one runtime dependency), built beside the
# repository's catalogue and Lua scripts, which it reads at run time.
$(CLIENT_TS)/node_modules/.installed: $(CLIENT_TS)/package.json $(CLIENT_TS)/package-lock.json
	cd $(CLIENT_TS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CLIENT_TS)/dist/.built: $(CLIENT_TS)/node_modules/.installed $(shell find $(CLIENT_TS)/src $(CLIENT_TS)/test -name '*.ts' 2>/dev/null) $(CLIENT_TS)/tsconfig.json
	cd $(CLIENT_TS) && npm run --silent build
	touch $@

build: $(TS)/dist/.built $(CLIENT_TS)/dist/.built

demo: install
	$(BIN)/simbi-workers demo

test: install test-python test-ruby test-node test-clients-ts test-clients-ruby

test-python: install
	$(BIN)/pytest -q

test-ruby: install
	ruby workers/ruby/test/run.rb

test-node: install
	cd $(TS) && node --test dist/test/*.test.js

test-clients-ts: install
	cd $(CLIENT_TS) && node --test dist/test/

test-clients-ruby: install
	ruby clients/ruby/test/run.rb

lint: install
	$(BIN)/ruff format --check simbi_workers tests benchmarks
	$(BIN)/ruff check simbi_workers tests benchmarks
	cd $(CLIENT_TS) && npx prettier --check src test

bench: install
	$(BIN)/python benchmarks/throughput.py

chaos: install
	$(BIN)/python benchmarks/chaos.py

clean:
	rm -rf $(VENV) $(TS)/node_modules $(TS)/dist $(CLIENT_TS)/node_modules $(CLIENT_TS)/dist var
