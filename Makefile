# Scripts to rule them all. `make run` and `make test` work on a fresh machine:
# they create .venv, install, regenerate the stubs, then serve / test.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(shell find protos -name '*.proto')
GEN    := clients/python/src

.PHONY: help venv proto proto-check generate run test lint fmt typecheck check bench soak clean \
	docker image-check web web-check

help:
	@echo "make run        serve the dev profile (gRPC 127.0.0.1:50051, HTTP 127.0.0.1:8080)"
	@echo "make test       install everything and run the whole test suite"
	@echo "make proto      lint, format and regenerate the stubs from protos/"
	@echo "make proto-check  fail if committed stubs differ from the protos"
	@echo "make lint | fmt | typecheck | check | bench | clean"
	@echo "make soak       5 min of gRPC+HTTP load at 80% of the measured max (SOAK_ARGS=)"
	@echo "make docker     build the container image (docker, podman or buildah; IMAGE=, BASE_IMAGE=)"
	@echo "make image-check  CI proof: build on a local Debian base with buildah, run it, health-check it"
	@echo "make web        rebuild the order chat page (clients/web/dist) from its sources (Node + npm)"
	@echo "make web-check  fail if the committed clients/web/dist differs from a fresh build"

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./clients/python -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Regenerate the committed stubs (protoc from grpcio-tools, .pyi from mypy-protobuf).
generate: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
		--python_out=$(GEN) --grpc_python_out=$(GEN) \
		--mypy_out=$(GEN) --mypy_grpc_out=$(GEN) $(PROTOS)

proto: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/buf format -w
	$(MAKE) generate

proto-check: generate
	$(BIN)/buf lint
	$(BIN)/buf format --exit-code -d
	git diff --exit-code -- $(GEN) protos || \
		(echo "generated stubs are out of date: run 'make proto' and commit" >&2; exit 1)

run: generate
	$(PY) -m gateway serve --dev

test: generate
	scripts/test-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy gateway clients/python/src tests

check: lint typecheck proto-check test

# Load tools come from Debian (nghttp2-client: h2load; wrk; gcc + libnghttp2-dev build
# grpcload; postgresql for the new-orders suite), the Node peers from npm.
# A subset: make bench BENCH_ARGS="--only http-distinct" (results in tests/bench/results/tmp/).
GRPCLOAD := build/bench/grpcload

$(GRPCLOAD): tests/bench/grpcload.c
	mkdir -p $(@D)
	gcc -O2 -Wall -Wextra -o $@ $< -lnghttp2

bench: generate
	@command -v h2load >/dev/null && command -v wrk >/dev/null && command -v curl >/dev/null \
		&& command -v gcc >/dev/null && test -f /usr/include/nghttp2/nghttp2.h \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq nghttp2-client wrk curl gcc \
			libnghttp2-dev postgresql)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	cd tests/bench/peers && npm ci --no-audit --no-fund --silent
	$(MAKE) $(GRPCLOAD)
	$(PY) -m tests.bench $(BENCH_ARGS)

# Soak (not part of `make test`): SOAK_ARGS="--duration 300 --load 0.8" by default.
soak: generate
	@command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client)
	$(PY) -m tests.soak $(SOAK_ARGS)

# Container image: wheels are built here on the host, the image installs only from them.
docker: $(STAMP)
	scripts/build-image.sh build

image-check: $(STAMP)
	scripts/build-image.sh check

# The browser side (clients/web): the built page is committed, so `make run` needs only
# Python. These rebuild it with Node + npm (esbuild and the SDKs from the lockfile).
WEB        := clients/web
WEB_STAMP  := $(WEB)/node_modules/.lock.sha256

$(WEB_STAMP): $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund
	cd $(WEB) && sha256sum package-lock.json > node_modules/.lock.sha256

web: $(WEB_STAMP)
	cd $(WEB) && npm run --silent typecheck && npm run --silent build

web-check: web
	@git diff --exit-code --stat -- $(WEB)/dist && \
	test -z "$$(git status --porcelain --untracked-files=all -- $(WEB)/dist)" || \
		(echo "clients/web/dist differs from its sources: run 'make web' and commit" >&2; exit 1)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
