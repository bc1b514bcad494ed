# pvectl — make help lists the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION := v0.8.2
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
TEST_FLAGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/pvectl and bin/pvesim
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/pvectl ./cmd/pvectl
	@if [ -d cmd/pvesim ] && ls cmd/pvesim/*.go >/dev/null 2>&1; then $(GO) build -o $(BIN)/pvesim ./cmd/pvesim; fi

.PHONY: deps
deps: ## Install what the tests need: Go modules, BIND 9 (named) and dig
	$(GO) mod download
	scripts/install-test-deps.sh

.PHONY: lint
lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: test
test: deps lint ## Lint and run every test (what CI runs)
	$(GO) test -count=1 $(TEST_FLAGS) ./...

.PHONY: bench
bench: ## Run the benchmarks (numbers go to docs/performance.md)
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

.PHONY: demo
demo: ## Deploy three VMs against a local pvesim, printing the live lines
	scripts/demo.sh

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN)
