# kcp-ingress. `make test` is the one test command (CI runs it through .ci/run).
CARGO ?= cargo
SCRIPTS := $(wildcard hack/*.sh hack/lib/*.sh .ci/run)

# The kubectl that `make tools` builds (the servers' version) comes first on PATH.
KUBECTL_DIR := $(shell hack/build-tools.sh --print-dir | sed -n 's/^kubectl=//p')
export PATH := $(KUBECTL_DIR):$(PATH)

PROVIDER ?= auto
CONTROL_PLANE ?= kube
DATA_PLANE ?= traefik
DNS ?= bind
.PHONY: help build install-plugin deps tools tools-kcp tools-traefik tools-peers crds crd-check gateway-types gateway-types-check fmt-check clippy lint-scripts lint-imports unit e2e test bench clean local-setup local-teardown

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-19s %s\n", $$1, $$2}'

build: ## build the kcp-ingress binary
	$(CARGO) build --release

PLUGIN_DIR ?= $(HOME)/.local/bin
install-plugin: build ## link the binary as the kubectl plugin kubectl-kcp_ingress into PLUGIN_DIR (default ~/.local/bin): `kubectl kcp-ingress explain ...`
	mkdir -p $(PLUGIN_DIR)
	ln -sf $(abspath $(or $(CARGO_TARGET_DIR),target))/release/kcp-ingress $(PLUGIN_DIR)/kubectl-kcp_ingress

deps: ## install missing Debian packages (bind9, dnsutils, shellcheck, ...)
	hack/install-deps.sh

tools: ## build the test servers (kube-apiserver, etcd) and kubectl into the cache
	hack/build-tools.sh

tools-kcp: ## build kcp (a control plane for CONTROL_PLANE=kcp and its e2e test) into the cache
	hack/build-tools.sh --with-kcp

tools-traefik: ## build Traefik (the ingress controller of each process-mode cluster) into the cache
	hack/build-tools.sh --with-traefik

tools-peers: ## build the peers of `make bench PEERS=1` (Karmada, external-dns) into the cache; never needed by `make test`
	hack/build-peers.sh

crds: ## regenerate config/crd/ from the Rust types
	$(CARGO) run --quiet -- crdgen --dir config/crd

crd-check: ## fail when config/crd/ differs from what crdgen writes
	$(CARGO) run --quiet -- crdgen --check --dir config/crd

gateway-types: ## regenerate src/gateway_api/ from the Gateway API CRDs with kopium (installed into the cache)
	hack/gateway-types.sh

gateway-types-check: ## fail when src/gateway_api/ differs from what gateway-types writes
	hack/gateway-types.sh --check

fmt-check: ## cargo fmt --check
	$(CARGO) fmt --all -- --check

clippy: ## clippy on every target, warnings are errors
	$(CARGO) clippy --all-targets -- -D warnings

lint-scripts: deps ## shellcheck every script
	shellcheck $(SCRIPTS)

lint-imports: deps ## fail when two files under src/ import each other, directly or in a circle
	hack/check-imports.py src

unit: ## unit and property tests of the pure core (and the bench's own: its model and tables)
	$(CARGO) test --lib --bins
	$(CARGO) test --bench bench -- --unit-tests

e2e: deps tools tools-kcp tools-traefik ## end-to-end tests against real etcd, kube-apiservers and BIND 9
	$(CARGO) test --test e2e
	$(CARGO) test --test quickstart -- --test-threads=1

test: fmt-check clippy crd-check gateway-types-check lint-scripts lint-imports unit e2e ## everything CI checks

PEERS ?= 0
MANY ?= 0
bench: deps tools $(if $(and $(filter traefik,$(DATA_PLANE)),$(filter 0,$(MANY))),tools-traefik) $(if $(filter-out 0,$(PEERS)),tools-peers) ## benchmarks against the real servers, table into docs/BENCHMARKS.md (QUICK=1: a smoke run under 4 min; DATA_PLANE=traefik|standin; PEERS=1: side by side with Karmada + external-dns; MANY=1: 2,000 roots on 20 clusters alone, stand-in data plane, and the 100 x 10,000 model)
	$(CARGO) bench --bench bench -- --data-plane $(DATA_PLANE) $(if $(filter-out 0,$(QUICK)),--quick) $(if $(filter-out 0,$(PEERS)),--peers) $(if $(filter-out 0,$(MANY)),--many-clusters)

local-setup: deps tools ## run it all locally: control plane, clusters, DNS, kcp-ingress (PROVIDER=auto|process|kind, CONTROL_PLANE=kube|kcp, DATA_PLANE=traefik|standin, DNS=bind|embedded)
	hack/local-setup.sh up --provider $(PROVIDER) --control-plane $(CONTROL_PLANE) --data-plane $(DATA_PLANE) --dns $(DNS)

local-teardown: ## stop everything local-setup started
	hack/local-setup.sh down

clean: ## remove build output (not the tool cache)
	$(CARGO) clean
