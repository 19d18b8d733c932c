# lading — build, demo, test, bench.
# `make demo` and `make test` install what they need (Debian packages) first.

GO        ?= go
BIN       := bin/lading
PKGS      := ./...
DEBS      := busybox-static skopeo umoci buildah docker-registry git time passt
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps demo test test-short lint bench clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/lading

# deps installs the Debian packages the tests and the demo use, when missing.
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# demo builds examples/hello into an OCI tarball and prints its digest.
demo: deps build
	cp /bin/busybox examples/hello/busybox
	@mkdir -p out
	$(BIN) build -t hello:1.0 --output type=oci,dest=out/hello.tar examples/hello
	@echo "image tarball: $(CURDIR)/out/hello.tar"
	skopeo inspect oci-archive:out/hello.tar:1.0 | head -n 20

test: deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest $(PKGS)

bench: deps build
	./bench/run.sh

clean:
	rm -rf bin out examples/hello/busybox
