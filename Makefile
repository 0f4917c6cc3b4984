# Keel's entry points. `make help` lists them.
SHELL := /bin/bash
export GOFLAGS ?= -buildvcs=false

.PHONY: help dev test build lint bench services tools migrate-new clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

dev: ## run the whole system locally (installs/starts PostgreSQL, Redis, Mailpit, versitygw for S3)
	@scripts/dev.sh

test: ## run every test against real PostgreSQL, Redis and Mailpit
	@scripts/test.sh

build: ## build api, worker, scheduler and keelctl into bin/
	go build -o bin/ ./cmd/...

lint: ## gofmt, go vet (also of the deploy/ module), staticcheck, actionlint (.github/workflows)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...
	cd deploy && go vet ./...
	@test -x .tools/bin/staticcheck || GOBIN=$$PWD/.tools/bin go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	.tools/bin/staticcheck ./...
	@scripts/tools.sh actionlint
	.tools/bin/actionlint

bench: ## run the benchmarks; results in bench/results/, summary in docs/benchmarks.md
	@scripts/bench.sh

services: ## make sure PostgreSQL and Redis run
	@scripts/services.sh --dev

tools: ## install the pinned dev servers into .tools/bin
	@scripts/tools.sh

migrate-new: ## create a migration: make migrate-new name=add_widgets
	@test -n "$(name)" || { echo "usage: make migrate-new name=what_it_does"; exit 2; }
	@n=$$(ls migrations/*.sql | sed -E 's|.*/0*([0-9]+)_.*|\1|' | sort -n | tail -1); \
	 f=migrations/$$(printf '%05d' $$((n+1)))_$(name).sql; \
	 printf -- '-- +goose Up\n\n-- +goose Down\n' > $$f; echo "created $$f"

clean: ## remove built binaries
	rm -rf bin/
