# Convenience entry points; the scripts they call are the real thing (and what CI runs).
#   make run    scripts/demo.sh   - install deps, build, make dev certs, start redis + echo upstreams + ficus
#   make test   tests/run.sh      - install deps, Release and ASan+UBSan builds, unit + integration suites, -t, format
#   make man    scripts/man.sh    - the man pages, generated from the README
#   make deb    scripts/deb.sh    - the Debian package ficus_<version>_amd64.deb
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build asan run test check bench man deb clean

all: build

build:
	scripts/deps.sh build
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_DIR) -j$(JOBS)

asan:
	scripts/deps.sh build
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DFICUS_ASAN=ON -DFICUS_UBSAN=ON
	cmake --build $(ASAN_DIR) -j$(JOBS)

run:
	BUILD_DIR=$(BUILD_DIR) scripts/demo.sh

test:
	BUILD_DIR=$(BUILD_DIR) ASAN_DIR=$(ASAN_DIR) tests/run.sh

# Check every configuration file in conf/ with `ficus -t`.
check: build
	@set -e; for f in conf/*.yaml; do $(BUILD_DIR)/ficus -t -c $$f; done

# ficus(8) and ficus.yaml(5) from the README (pandoc): $(BUILD_DIR)/man/ficus.8, then `man -l build/man/ficus.8`
man:
	scripts/man.sh $(BUILD_DIR)/man

# The Debian package: $(BUILD_DIR)/ficus_<version>_amd64.deb (dpkg-deb from a staged tree; see packaging/)
deb: build
	scripts/deb.sh $(BUILD_DIR) $(BUILD_DIR)

bench:
	BUILD_DIR=$(BUILD_DIR) loadtest/bench.sh

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
