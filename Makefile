# dualstack: a managed Docker plugin serving docker.networkdriver/1.0 and
# docker.ipamdriver/1.0 on one unix socket.
#
# The plugin rootfs (packaging/mkrootfs.sh) holds the static binary and
# iptables/ip6tables in both flavours (nft and legacy, taken from Debian's
# packages); building it needs root and a Debian machine. The plugin runs
# with CAP_NET_ADMIN (links, addresses, routes, nftables), CAP_SYS_ADMIN
# (entering container network namespaces, mounts), CAP_NET_RAW (legacy
# iptables, libiptc, programs the kernel through a SOCK_RAW socket), and the
# host's pid namespace with CAP_SYS_PTRACE (container namespaces are looked
# up in dockerd's mount namespace, /proc/<pid>/root; see "Hosts and
# privileges" in docs/operations.md).

GO              ?= go
PLUGIN          ?= dualstack:latest
# Settings applied with `docker plugin set` before enabling, e.g.
#   make install PLUGIN_SETTINGS="state.source=/tmp/x LOG_LEVEL=debug"
PLUGIN_SETTINGS ?=
BUILD           := build
BINARY          := $(BUILD)/dualstack
PLUGIN_DIR      := $(BUILD)/plugin
# The end-to-end tests' plugin: the binary built with the testseam tag and
# config.json with the test seams' settings (TEST_CRASH_AFTER) added, which
# the production plugin neither declares nor reads.
TEST_BINARY     := $(BUILD)/dualstack-testseam
TEST_PLUGIN_DIR := $(BUILD)/plugin-test
# Cache of the Debian packages the rootfs is made from.
DEBS_DIR        ?= $(BUILD)/debs

.DEFAULT_GOAL := help

.PHONY: engines help build plugin plugin-test install install-test demo release test test-arm64 test-host-forwarding fuzz integration integration-moby integration-shared integration-nftables integration-cluster integration-bgp test-all bench clean

help: ## List the targets
	@echo 'Targets:'
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## / { printf "  %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo 'Variables: PLUGIN=$(PLUGIN) PLUGIN_SETTINGS="$(PLUGIN_SETTINGS)" DOCKER_HOST=$(DOCKER_HOST)'

build: ## Build the static binary build/dualstack
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BINARY) ./cmd/dualstack

plugin: build ## Build the plugin (config.json + rootfs) in build/plugin (needs root)
	DEBS_DIR=$(DEBS_DIR) packaging/mkrootfs.sh $(PLUGIN_DIR)/rootfs $(BINARY)
	cp config.json $(PLUGIN_DIR)/config.json

plugin-test: plugin ## Build the end-to-end tests' plugin in build/plugin-test: the plugin with its test seams (TEST_CRASH_AFTER) (needs root, jq)
	CGO_ENABLED=0 $(GO) build -tags testseam -trimpath -ldflags '-s -w' -o $(TEST_BINARY) ./cmd/dualstack
	rm -rf $(TEST_PLUGIN_DIR)
	cp -a $(PLUGIN_DIR) $(TEST_PLUGIN_DIR)
	cp $(TEST_BINARY) $(TEST_PLUGIN_DIR)/rootfs/dualstack
	packaging/test-config.sh config.json > $(TEST_PLUGIN_DIR)/config.json

install-test: plugin-test ## Create and enable the end-to-end tests' plugin as PLUGIN (DOCKER_HOST, PLUGIN_SETTINGS)
	packaging/install.sh '$(PLUGIN)' $(TEST_PLUGIN_DIR) $(PLUGIN_SETTINGS)

install: plugin ## Create and enable the plugin PLUGIN in the local Docker (DOCKER_HOST, PLUGIN_SETTINGS)
	packaging/install.sh '$(PLUGIN)' $(PLUGIN_DIR) $(PLUGIN_SETTINGS)

demo: plugin ## Show the plugin at work: install it and run containers on a throwaway network (starts a private engine when no Docker daemon answers; root)
	packaging/demo.sh '$(PLUGIN)' $(PLUGIN_DIR) $(PLUGIN_SETTINGS)

# make release VERSION=1.2.3 REGISTRY=registry.example.com/net: one plugin
# per architecture, REGISTRY/dualstack:VERSION-amd64 and ...-arm64, since
# `docker plugin install` cannot pull through a manifest list (moby#34043);
# see packaging/release.sh and "Releases and upgrades" in
# docs/operations.md.
release: ## Build the plugin for linux/amd64 and linux/arm64 into build/release/VERSION and push REGISTRY/dualstack:VERSION-ARCH through DOCKER_HOST's engine (VERSION=, REGISTRY=HOST[:PORT][/NS]; root, qemu-user-static)
	@[ -n "$(VERSION)" ] || { echo 'make release: VERSION is not set: make release VERSION=1.2.3 REGISTRY=HOST[:PORT][/NAMESPACE]' >&2; exit 2; }
	@[ -n "$(REGISTRY)" ] || { echo 'make release: REGISTRY is not set: make release VERSION=$(VERSION) REGISTRY=HOST[:PORT][/NAMESPACE]' >&2; exit 2; }
	GO=$(GO) DEBS_DIR=$(DEBS_DIR) packaging/release.sh '$(VERSION)' '$(REGISTRY)'

test: ## Run the unit tests with the race detector (kernel tests need root)
	@[ "$$($(GO) env CGO_ENABLED)" = 1 ] || { \
		echo 'make test: go test -race needs cgo and a C compiler (apt-get install gcc)' >&2; exit 1; }
	$(GO) test -race ./...
	@# The test seams' build (make plugin-test) of the plugin's command.
	$(GO) test -race -tags testseam ./cmd/dualstack/
	@# The cluster store's tests again against Debian's etcd (3.4), when
	@# installed; above they ran against the current etcd in-process.
	@if command -v etcd >/dev/null; then \
		echo "cluster store tests against $$(etcd --version | head -n 1)"; \
		DUALSTACK_ETCD_BINARY=$$(command -v etcd) $(GO) test -count=1 ./cluster/...; fi

# The root-free unit tests built for linux/arm64, run under Debian's
# qemu-user-static (no binfmt_misc needed: go test -exec runs the emulator).
# unshare --user puts each test binary in a user namespace of its own, where
# it is not root (it still reads the go tool's root-only work directory):
# the tests that need root (network namespaces) skip as for any non-root
# user. Left out: cluster (its tests run etcd in-process, whose deadlines
# the emulator misses), bgp (the emulator has no TCP MD5 signatures),
# cmd/dualstack (its tests run the test binary again, which needs
# binfmt_misc; make release runs the arm64 binary's `dualstack version`
# under the emulator) and the end-to-end packages. -trimpath shares the
# dependencies' builds with make release's arm64 binary.
ARM64_PKGS = $$($(GO) list ./... | grep -v -e '/integration/' -e '/bench/' -e '/cluster$$' -e '/cluster/' -e '/bgp$$' -e '/cmd/dualstack$$')

test-arm64: ## Run the root-free unit tests built for linux/arm64 under qemu-aarch64-static (apt-get install qemu-user-static)
	@command -v qemu-aarch64-static >/dev/null || { 		echo 'make test-arm64: qemu-aarch64-static not found (apt-get install qemu-user-static)' >&2; exit 1; }
	GOARCH=arm64 CGO_ENABLED=0 $(GO) test -trimpath -count=1 -exec 'unshare --user qemu-aarch64-static' $(ARM64_PKGS)

# The kernel tests once more on a host as Docker leaves it, forwarding on
# in both families: a new network namespace copies the host's IPv4
# settings, so a kernel test that needs forwarding off must turn it off
# itself. KERNEL_PKGS are the packages with tests in network namespaces
# of their own (the others cannot see the host's forwarding).
KERNEL_PKGS := ./driver/... ./kernel/ ./firewall/ ./ndp/ ./routes/ ./delegation/ ./internal/netns/ ./internal/sysctl/
test-host-forwarding: ## Run the kernel tests with the host's ip_forward and IPv6 forwarding set to 1, as where Docker runs, then put them back (root)
	.ci/with-host-forwarding $(GO) test -count=1 $(KERNEL_PKGS)

# The end-to-end suites are packages of their own, each a test binary whose
# TestMain starts the engine, or the test bed, it needs
# (integration/harness): integration/local (single host), integration/mounts
# (the tests whose outcome depends on how the host propagates mounts),
# integration/firewall, integration/ndp (the NDP proxy, on the on-link
# test bed: an upstream router and a neighbour on the engine host's /64),
# integration/pd (prefix delegation, on the delegation test bed: Debian's
# Kea DHCPv6 server in a router namespace on the engine host's uplink;
# apt-get install kea-dhcp6-server), integration/cluster, integration/bgp.
# The targets below pick the packages, and set the engine
# (DUALSTACK_ENGINE), its root mount (DUALSTACK_ROOT) and Docker's firewall
# backend (DUALSTACK_DOCKER_FIREWALL); -p 1 runs one package, one engine, at
# a time.
E2E          := $(GO) test -tags integration -count=1 -p 1 -v
E2E_ONE_HOST := ./integration/local/ ./integration/mounts/ ./integration/firewall/ ./integration/ndp/ ./integration/pd/

integration: plugin-test ## Run the end-to-end tests against a private Engine 20.10 whose root mount is private, as on hosts without systemd (root)
	$(E2E) -timeout 40m $(E2E_ONE_HOST)

engines: ## Build the current Moby engine, runc and compose v5 into the cache (once; Engine 20.10 is Debian's docker.io)
	GO=$(GO) engines/build-moby.sh

integration-moby: plugin-test engines ## Run the end-to-end tests against the current Moby engine, root mount private (builds it once; root)
	DUALSTACK_ENGINE=moby $(E2E) -timeout 40m $(E2E_ONE_HOST)

integration-nftables: plugin-test engines ## Run the firewall's end-to-end tests on current Moby with Docker's rules in nftables (root)
	DUALSTACK_ENGINE=moby DUALSTACK_DOCKER_FIREWALL=nftables $(E2E) -timeout 20m ./integration/firewall/

integration-shared: plugin-test engines ## Run the mount-dependent end-to-end tests on both engines with a shared root mount, as on systemd hosts (root)
	DUALSTACK_ROOT=shared $(E2E) -timeout 20m ./integration/mounts/
	DUALSTACK_ROOT=shared DUALSTACK_ENGINE=moby $(E2E) -timeout 20m ./integration/mounts/

integration-cluster: plugin-test engines ## Run the cluster networks' end-to-end tests: three current Moby engines on a fabric, with Debian's etcd (apt-get install etcd-server etcd-client; root)
	DUALSTACK_ENGINE=moby $(E2E) -timeout 30m ./integration/cluster/

integration-bgp: plugin-test engines ## Run the BGP end-to-end tests: three current Moby engines, each on its own link to a bird2 router (apt-get install bird2; root)
	DUALSTACK_ENGINE=moby $(E2E) -timeout 20m ./integration/bgp/

# The fuzz targets, their packages and how many inputs each runs (a count,
# not a duration: a duration that ends while a worker is busy makes go test
# report a spurious "context deadline exceeded"). FUZZSCALE multiplies them.
FUZZ      := FuzzRequests:./plugin/:3000 FuzzParseOptions:./driver/:100000 FuzzParse:./addrbook/:100000 FuzzPortmap:./driver/portmap/:100000 FuzzCatalogue:./validate/:100000 FuzzServer:./driver/:2000
FUZZSCALE ?= 1

fuzz: ## Run each fuzz target for a fixed number of inputs (FUZZSCALE=10 for ten times more)
	@set -e; for t in $(FUZZ); do \
		name=$${t%%:*}; rest=$${t#*:}; pkg=$${rest%%:*}; n=$$(( $${rest#*:} * $(FUZZSCALE) )); \
		echo "fuzz $$name ($$n inputs)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $${n}x $$pkg; \
	done

test-all: ## Run every test: unit tests (again for linux/arm64 under qemu, and with the host's forwarding on), a short fuzz run, end to end on Engine 20.10 and on current Moby (private root mount), and the mount-dependent part again with a shared one
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory test-arm64
	@$(MAKE) --no-print-directory test-host-forwarding
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory integration-moby
	@$(MAKE) --no-print-directory integration-shared
	@$(MAKE) --no-print-directory integration-nftables
	@$(MAKE) --no-print-directory integration-cluster
	@$(MAKE) --no-print-directory integration-bgp

bench: ## Run the benchmarks (bench/run.sh); their figures go to build/bench/results.json, bench/results.json and docs/performance.md's tables (root)
	bench/run.sh

clean: ## Remove build/
	rm -rf $(BUILD)
