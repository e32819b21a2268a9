# syntax=docker/dockerfile:1
# simbi-workers: the supervisor with its Python, Ruby and Node runtimes in one image.
# Built and run by docker-compose.yml; tests/test_compose.py checks what can be checked
# without Docker (every COPY source exists, the command is a real CLI command).
#
# NOTE: COPY below names subdirectories, never `workers/` whole, so that a local
# node_modules/ or dist/ cannot leak in; a .dockerignore would make that explicit.

# ---- TypeScript workers, compiled with the Node they will run on --------------------
# workers/typescript needs Node >= 20 (package.json "engines"); Debian 12 ships 18.
FROM node:20-bookworm-slim AS typescript

WORKDIR /app/workers/typescript

# The lock file alone first, so this layer is rebuilt only when dependencies change.
COPY workers/typescript/package.json workers/typescript/package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY workers/typescript/tsconfig.json ./
COPY workers/typescript/src/ src/
RUN npm run build

# ---- The runtime image ---------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIMBI_VAR_DIR=/app/var

# Ruby runs the Ruby children; they need only its standard library (json), no gems.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ruby \
    && rm -rf /var/lib/apt/lists/*

# Node: the one binary from the build stage (same Debian release, same glibc). The
# compiled workers have no runtime dependencies, so neither npm nor node_modules ships.
COPY --from=typescript /usr/local/bin/node /usr/local/bin/node

RUN useradd --create-home --uid 10001 simbi

WORKDIR /app

# Editable install: runtimes/manager.py and catalog.py find workers/ and queues.yaml
# next to the package source, which a copy in site-packages would not have.
COPY pyproject.toml ./
COPY simbi_workers/ simbi_workers/
RUN pip install -e .

COPY queues.yaml ./
COPY workers/ruby/ workers/ruby/
COPY workers/typescript/package.json workers/typescript/
COPY --from=typescript /app/workers/typescript/dist/ workers/typescript/dist/

RUN mkdir -p /app/var && chown simbi:simbi /app/var
USER simbi

EXPOSE 9191
CMD ["simbi-workers", "start", "--host", "0.0.0.0"]
