# mmogit — see README.md. `make demo` runs the main job, `make test` the tests.
GO ?= go
BIN := bin/mmogit

.PHONY: all build deps demo test test-public test-full test-short test-reference cross vet bench fuzz clean

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/mmogit

# The main job, offline: private Tor network + 3 agents that advertise,
# discover each other by service and sync memories over onion services.
# PROFILE=public (or slow) runs it on a latency- and bandwidth-shaped network.
demo: deps build
	./$(BIN) demo --agents $(or $(AGENTS),3) --profile $(or $(PROFILE),loopback)

# The full suite: unit tests plus the integration tests on a private Tor
# network (real tor processes on 127.0.0.1 only).
test: deps cross
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
	@FUZZTIME=$(or $(FUZZTIME),4s) scripts/fuzz.sh

# The onion core of the e2e suite on the `public` profile (every hop of the
# private Tor network pays public-network latency and bandwidth; see
# docs/private-network.md), then one ~5 MB sync on the `slow` profile.
PUBLIC_TESTS := ^(TestTwoAgentsSyncOverOnion|TestDiscoveryFiveAgents|TestRestrictedOnionService|TestTorKilledRecovers|TestFaults|TestShapedFaults)$$
test-public: deps
	MMOGIT_TESTNET_PROFILE=public $(GO) test -count=1 -timeout 40m -run '$(PUBLIC_TESTS)' ./internal/e2e
	MMOGIT_TESTNET_PROFILE=slow $(GO) test -count=1 -v -timeout 20m -run '^TestBulkSync$$' ./internal/e2e

# Everything: the suite, then the same core under public-network conditions.
test-full: test test-public

# Interop with the original Rust mmogit: builds it offline from Debian's
# crates (third_party/reference-mmogit, cached in REFDIR; apt via sudo when
# not root; ~1-3 min the first time) and runs internal/refcompat's tests
# against the real binary in both directions.
REFDIR ?= $(HOME)/.cache/mmogit-reference
test-reference:
	@bin=$$(third_party/reference-mmogit/build.sh $(REFDIR)) && \
	MMOGIT_REFERENCE_BIN=$$bin $(GO) test -tags reference -count=1 -timeout 10m -v ./internal/refcompat

# macOS and Windows: everything builds, and vets (test files too). Linux
# is where the tests run. internal/tor is left out of the Windows vet until
# its tests stop calling syscall.Kill (integration_test.go, tor_test.go).
cross:
	GOOS=darwin $(GO) build ./... && GOOS=windows $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=windows $(GO) vet ./...

# Longer fuzzing that also saves new corpus entries into testdata/fuzz.
fuzz:
	@FUZZTIME=$(or $(FUZZTIME),60s) SAVE=1 scripts/fuzz.sh

test-short:
	$(GO) test -short ./...

# Ours vs raw tor / raw TCP side by side on a private Tor network (a table;
# bin/mmogit --json bench for rows), then the in-process go test benchmarks.
bench: deps build
	./$(BIN) bench
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

clean:
	rm -rf bin
