# edge — build, test, demo, benchmarks. `make help` lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: all build test demo bench bench-go bench-load bench-failover bench-tls bench-cache bench-peers bench-soak lint fuzz help clean cache-tests

all: build

help:
	@echo "make build       build bin/edge and bin/edge-deploy"
	@echo "make test        go vet, then go test -race over every package (what CI runs)"
	@echo "make demo        start three demo nodes and edge with examples/edge.yaml (Ctrl-C stops)"
	@echo "make bench       Go benchmarks (-benchmem), then the load harness against refproxy"
	@echo "make bench-failover  kill and restart one origin under load; detect/recover times (DUR, KILL_AT, RESTORE_AT, RATE)"
	@echo "make bench-tls   TLS termination vs HAProxy/nginx: keep-alive and full handshakes (DUR, CONNS, RUNS, ROWS, OUT)"
	@echo "make lint        gofmt check, go vet and staticcheck (fetched through the module proxy)"
	@echo "make fuzz        run each fuzz target for FUZZTIME (default 30s)"
	@echo "make bench-cache cache hits against HAProxy, nginx and Varnish caches (peers from apt)"
	@echo "make bench-peers edge vs HAProxy/nginx/Varnish/Caddy, every scenario, one table + chart (DUR, RATE, RUNS, SCENARIOS, PEERS, OUT)"
	@echo "make bench-soak  10 min of mixed load, slow/aborting clients, a misbehaving node: edge's RSS, goroutines, fds stay flat and no well-behaved request fails (DUR, SOAK_ARGS)"
	@echo "make cache-tests the cache-tests.fyi conformance suite against edge (needs npm)"

build:
	$(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)' -o bin/edge ./cmd/edge
	$(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)' -o bin/edge-deploy ./cmd/edge-deploy

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

demo:
	bash examples/demo.sh

bench: bench-go bench-load

bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./bench/ ./router/

bench-load:
	bash bench/run.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...

STATICCHECK ?= v0.8.2
FUZZTIME ?= 30s
fuzz:
	@for pkg in ./config ./router ./deploy ./cache; do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin bench/results

bench-failover:
	bash bench/failover.sh

bench-tls:
	bash bench/tls.sh

cache-tests:
	bash bench/cachetests.sh

bench-cache:
	bash bench/cache.sh

bench-peers:
	bash bench/peers.sh

bench-soak:
	DUR=$${DUR:-10m} bash bench/soak.sh $(SOAK_ARGS)
