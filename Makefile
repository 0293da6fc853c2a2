# nomad-bootstrapd: `make demo` runs a local cluster, `make test` runs every check.

GO            ?= go
BIN           := bin/nomad-bootstrapd
NOMAD_VERSION := 1.6.3
# The Nomad binary is cached per user, so fresh clones on one machine share it;
# .cache/nomad-vX links to it for `go test` runs outside make.
NOMAD_CACHE   ?= $(HOME)/.cache/nomad-bootstrapd
NOMAD         := $(NOMAD_CACHE)/nomad-v$(NOMAD_VERSION)
NOMAD_LINK    := .cache/nomad-v$(NOMAD_VERSION)
# The release the upgrade tests roll from (tools/nomad-1.6.0).
NOMAD_OLD_VERSION := 1.6.0
NOMAD_OLD     := $(NOMAD_CACHE)/nomad-v$(NOMAD_OLD_VERSION)
NOMAD_OLD_LINK := .cache/nomad-v$(NOMAD_OLD_VERSION)
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME      ?= 30s
VERSION       ?= 0.1.0-dev
LDFLAGS       := -s -w -X github.com/nomad-bootstrapd/nomad-bootstrapd/internal/cli.Version=$(VERSION)

.PHONY: all build demo test check lint unit fuzz bench reliability e2e-nomad nomad nomad-old clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nomad-bootstrapd

## demo: a local cluster of 5 agents on 127.0.0.2-6 running the real Nomad; Ctrl-C stops it
demo: build nomad
	$(BIN) demo -nodes 5 -nomad $(NOMAD)

## test: everything CI runs: check, then the packages and the booted-systemd scenario (root)
test: check test-package test-system

## check: formatting, vet, staticcheck and every Go test with the race detector
check: lint unit

lint:
	@sh tools/no-binaries.sh
	@sh tools/layout.sh
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit: nomad nomad-old
	NOMAD_BIN=$(abspath $(NOMAD)) NOMAD_OLD_BIN=$(abspath $(NOMAD_OLD)) $(GO) test -race -count=1 -timeout 30m ./...

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "==> $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: every benchmark, BENCHMARKS.md written from their figures and a summary printed (10-20 min)
bench: nomad
	$(GO) run ./tools/benchreport -nomad $(abspath $(NOMAD)) -raw .cache/bench -o BENCHMARKS.md

## reliability: the fault suite with RELIABILITY_ROUNDS (default 20) rounds; figures into RELIABILITY.md
reliability: nomad
	GO=$(GO) NOMAD_BIN=$(abspath $(NOMAD)) RELIABILITY_ROUNDS=$(or $(RELIABILITY_ROUNDS),20) sh tools/reliability.sh

## e2e-nomad: Nomad v1.6.3's own end-to-end suites against the demo cluster on 127.77.0.2-6 (about 5 minutes)
e2e-nomad: build nomad
	GO=$(GO) BIN=$(abspath $(BIN)) NOMAD_BIN=$(abspath $(NOMAD)) sh tools/nomad-e2e.sh

## nomad: the real Nomad binary, built once from the Go module proxy and cached
nomad: $(NOMAD_LINK)

$(NOMAD_LINK): $(NOMAD)
	@mkdir -p .cache
	ln -sfn $(NOMAD) $(NOMAD_LINK)

$(NOMAD):
	@echo "==> building Nomad v$(NOMAD_VERSION) from source: once, about 8 minutes on 2 cores; cached in $(NOMAD)"
	@mkdir -p $(NOMAD_CACHE)
	cd tools/nomad && GOFLAGS=-mod=mod $(GO) build -trimpath -o $(NOMAD).tmp github.com/hashicorp/nomad
	mv $(NOMAD).tmp $(NOMAD)
	$(NOMAD) version

## nomad-old: Nomad v1.6.0, which the upgrade tests roll from, built and cached like `make nomad`
nomad-old: $(NOMAD_OLD_LINK)

$(NOMAD_OLD_LINK): $(NOMAD_OLD)
	@mkdir -p .cache
	ln -sfn $(NOMAD_OLD) $(NOMAD_OLD_LINK)

$(NOMAD_OLD):
	@echo "==> building Nomad v$(NOMAD_OLD_VERSION) from source: once, a few minutes after Nomad v$(NOMAD_VERSION); cached in $(NOMAD_OLD)"
	@mkdir -p $(NOMAD_CACHE)
	cd tools/nomad-$(NOMAD_OLD_VERSION) && GOFLAGS=-mod=mod $(GO) build -trimpath -o $(NOMAD_OLD).tmp github.com/hashicorp/nomad
	mv $(NOMAD_OLD).tmp $(NOMAD_OLD)
	$(NOMAD_OLD) version

clean:
	rm -rf bin dist

# Packages: nfpm runs at a pinned version through `go run`, outside go.mod.
# v2.46.0 and later need modules the Go module proxy does not serve.
NFPM         := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
PKG_ARCH     ?= $(shell $(GO) env GOARCH)
SYSTEM_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/nomad-bootstrapd

.PHONY: package test-package test-system system-deps nomad-repo

## system-deps: Debian's packaging and system-test tools, installed when missing
system-deps:
	@missing=""; for t in lintian:lintian rpm:rpm cloud-init:cloud-init debootstrap:debootstrap dpkg-scanpackages:dpkg-dev; do \
	  command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

## package: dist/*.deb and dist/*.rpm of a static build (VERSION=x.y.z make package)
package:
	CGO_ENABLED=0 $(MAKE) --no-print-directory build VERSION=$(VERSION)
	@mkdir -p dist/completion
	rm -f dist/nomad-bootstrapd_*.deb dist/nomad-bootstrapd-*.rpm
	$(BIN) completion bash > dist/completion/nomad-bootstrapd.bash
	$(BIN) completion zsh > dist/completion/_nomad-bootstrapd
	$(BIN) completion fish > dist/completion/nomad-bootstrapd.fish
	VERSION=$(VERSION) GOARCH=$(PKG_ARCH) $(GO) run $(NFPM) package --config nfpm.yaml --packager deb --target dist/
	VERSION=$(VERSION) GOARCH=$(PKG_ARCH) $(GO) run $(NFPM) package --config nfpm.yaml --packager rpm --target dist/

## test-package: lintian (no errors), rpm -qpl/-qpi and cloud-init schema on what package built and on the examples
test-package: package system-deps
	lintian --fail-on error dist/nomad-bootstrapd_*.deb
	@set -e; rpm=$$(ls dist/nomad-bootstrapd-*.rpm); rpm -qpi $$rpm; \
	  files=$$(rpm -qpl $$rpm); echo "$$files"; \
	  for f in /usr/bin/nomad-bootstrapd /usr/lib/systemd/system/nomad-bootstrapd.service /etc/nomad-bootstrapd/config.hcl \
	    /usr/share/bash-completion/completions/nomad-bootstrapd /usr/share/zsh/site-functions/_nomad-bootstrapd; do \
	    echo "$$files" | grep -qx "$$f" || { echo "FAIL: $$rpm lacks $$f"; exit 1; }; \
	  done; \
	  rpm -qpc $$rpm | grep -qx /etc/nomad-bootstrapd/config.hcl || { echo "FAIL: config.hcl is not a config file in $$rpm"; exit 1; }; \
	  rpm -qpi $$rpm | grep -q '^Name *: nomad-bootstrapd' || { echo "FAIL: rpm -qpi"; exit 1; }
	@set -e; for f in packaging/cloud-init*.yaml; do echo "cloud-init schema $$f"; cloud-init schema --config-file $$f; done

## nomad-repo: a local apt repository (dist/nomad-repo) of `nomad` .debs of Nomad v1.6.0 and v1.6.3, for the system test's upgrade
nomad-repo: nomad nomad-old system-deps
	rm -rf dist/nomad-repo dist/nomad-stage && mkdir -p dist/nomad-repo dist/nomad-stage
	cp $(NOMAD_OLD) dist/nomad-stage/nomad
	NOMAD_VERSION=$(NOMAD_OLD_VERSION) GOARCH=$(PKG_ARCH) $(GO) run $(NFPM) package --config test/system/nomad-nfpm.yaml --packager deb --target dist/nomad-repo/
	cp $(NOMAD) dist/nomad-stage/nomad
	NOMAD_VERSION=$(NOMAD_VERSION) GOARCH=$(PKG_ARCH) $(GO) run $(NFPM) package --config test/system/nomad-nfpm.yaml --packager deb --target dist/nomad-repo/
	rm -rf dist/nomad-stage
	cd dist/nomad-repo && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null

## test-system: the .deb in three booted Debian systems with real systemd, Nomad from a local apt repository rolled from v1.6.0 to v1.6.3 (root; see test/system/run.sh)
test-system: package nomad nomad-repo system-deps
	DEB=$$(ls $(abspath dist)/nomad-bootstrapd_*.deb) NOMAD_BIN=$(abspath $(NOMAD)) \
	  NOMAD_REPO=$(abspath dist/nomad-repo) NOMAD_REPO_VERSION=$(NOMAD_OLD_VERSION) NOMAD_UPGRADE_TO=$(NOMAD_VERSION) \
	  ROOTFS_CACHE=$(SYSTEM_CACHE)/rootfs-bookworm SYSTEM_TEST_HOOK=$(abspath test/system/cluster.sh) \
	  SYSTEM_TEST_HOOK_TIMEOUT=900 test/system/run.sh
