# lading — build, demo, test, lint, bench.
# `make demo` and `make test` install the Debian packages they use first.
# Go: scripts/go runs the Go of go.mod (1.26), fetching it through the Go
# module proxy when the go on PATH is older.

GO        ?= ./scripts/go
BIN       := bin/lading
PKGS      := ./...
MODULE    := github.com/lading-build/lading
# Packages whose tests run with the race detector (the ones that run
# containers are too slow under it).
# builder's tests run containers and are slow under -race; these, which
# walk the context from several goroutines at once, run with it too.
BUILDER_RACE_TESTS := ^(TestPrefetchWithIgnore|TestPrefetchedSelections|TestDependentStageOverlaps|TestCopyReusesEarlierOutput)$$
RACE_PKGS := parser cache store gc image progress copier remotecache snapshot passwd internal/atomicfile internal/mountinfo internal/depcheck
DEBS      := busybox-static skopeo umoci buildah docker-registry git time passt gcc libc6-dev uidmap docker.io qemu-user-static binfmt-support
# Foreign-architecture packages the multi-platform tests use (cached, gitignored).
ARM64_BUSYBOX := testdata/debs/busybox-static_arm64.deb
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The container init program (cmd/lading-init), built first and embedded
# in lading (runtime/initbin); INIT_LDFLAGS give lading its SHA-256, read
# when a recipe runs, so that lading uses the init just built and never
# a stale one. Without them (plain go build, go test) lading re-executes
# itself as the init.
INIT_BIN  := runtime/initbin/bin/lading-init
INIT_LDFLAGS = -X $(MODULE)/runtime/initbin.Digest=$$(sha256sum $(INIT_BIN) | cut -d' ' -f1)

.PHONY: all build init deps binfmt demo test test-short test-cgroup2 lint docs bench clean

all: build

build: init
	$(GO) build -ldflags "-X main.version=$(VERSION) $(INIT_LDFLAGS)" -o $(BIN) ./cmd/lading

# init builds the container init program, static, for embedding.
init:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w" -o $(INIT_BIN) ./cmd/lading-init

# deps installs the Debian packages the tests and the demo use, when missing.
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# $(ARM64_BUSYBOX) is Debian's busybox-static for arm64, from apt, for the
# multi-platform tests' arm64 base image.
$(ARM64_BUSYBOX):
	@mkdir -p $(@D)
	@dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
	apt-get update -qq
	cd $(@D) && apt-get download -qq busybox-static:arm64 2>/dev/null && mv busybox-static_*_arm64.deb $(@F)

# binfmt mounts binfmt_misc when needed and enables QEMU's arm64 handler
# (from qemu-user-static), so RUN steps of arm64 images run here. lading
# itself never registers handlers.
# Where that is not allowed (a container without the privilege), the
# emulated tests skip and say why.
binfmt: deps
	@{ test -e /proc/sys/fs/binfmt_misc/register || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; } && \
		update-binfmts --enable qemu-aarch64 2>&1 | grep -v 'already enabled' || true
	@grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || echo "warning: no arm64 emulation; the multi-platform tests that RUN arm64 will skip"

# demo builds examples/hello into an OCI tarball and prints its digest.
demo: deps build
	@mkdir -p out
	$(BIN) build --build-context tools=/bin -t hello:1.0 --output type=oci,dest=out/hello.tar examples/hello
	@echo "image tarball: $(CURDIR)/out/hello.tar"
	skopeo inspect oci-archive:out/hello.tar:1.0 | head -n 20

test: deps binfmt $(ARM64_BUSYBOX) init
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -race -timeout 20m -ldflags "$(INIT_LDFLAGS)" $(addprefix ./,$(RACE_PKGS))
	$(GO) test -count=1 -timeout 20m -ldflags "$(INIT_LDFLAGS)" $$($(GO) list $(PKGS) | grep -vxF $(addprefix -e $(MODULE)/,$(RACE_PKGS)))
	$(GO) test -count=1 -race -ldflags "$(INIT_LDFLAGS)" -run '$(BUILDER_RACE_TESTS)' ./builder
	$(GO) -C deploy/kubernetes test -count=1 ./...

# test-cgroup2 runs the runtime's cgroup and limit tests on a pure cgroup v2
# kernel (Debian's), in a VM under qemu-system-x86_64 without KVM (about a
# minute); it installs qemu-system-x86 and cpio when missing.
test-cgroup2: deps
	GO="$(GO)" ./runtime/testdata/cgroup2-vm.sh

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	test -z "$$($(GO) run cmd/gofmt -l $$(git ls-files '*.go' | grep -v -e '^testdata/' -e /testdata/))"
	$(GO) mod tidy -diff
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

# docs regenerates docs/cli.md from the commands' help.
docs:
	$(GO) test ./cmd/lading -run TestCLIReference -update

bench: deps binfmt $(ARM64_BUSYBOX) build
	./bench/run.sh

clean:
	rm -rf bin out $(INIT_BIN)
