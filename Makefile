# agent-runner — common tasks. `make test` and `make demo` first install what is
# missing (scripts/bootstrap.sh), then run against a private throwaway database
# (scripts/with-db.sh exports MONGODB_URI for the duration of one command).
SWIFT ?= swift
# Release binaries carry the Swift runtime and Foundation statically: fewer
# shared objects to load and relocate, and a smaller idle supervisor.
RELEASE = -c release --static-swift-stdlib
# A target may import only the targets it declares in Package.swift: an
# `import ChildGeneration` in a supervisor module is a build error, not luck
# (docs/architecture.md, Module rule).
CHECKED = --explicit-target-dependency-import-check error

.PHONY: all build commit bootstrap test test-deploy image demo bench clean

all: build

# The git commit both binaries print (--version, doctor, /metrics): a
# git-ignored header (scripts/build-commit.sh). A plain `swift build` without
# it builds too, and says "unknown".
commit:
	@scripts/build-commit.sh

build: commit
	$(SWIFT) build $(CHECKED) $(RELEASE)

bootstrap:
	scripts/bootstrap.sh

# Swift Testing runs tests in parallel by itself; no --parallel needed. It
# would start every test at once: dozens of supervisors, children and stand-in
# servers on two cores, and one shared test database answering in seconds
# (leases lapsed, waits timed out). TEST_WIDTH bounds how many run at once: at 6
# the whole suite passed in 188 s, unbounded it failed 14 tests in 234 s.
TEST_WIDTH ?= 6
# Then the dashboard's browser and HTTP tests (Tests/Browser: pytest, Selenium, Chromium).
# Then the deployment files (Tests/Deploy): the compose file's and the
# Kubernetes manifest's schemas; where podman is installed (scripts/bootstrap.sh
# installs it), `make image` and a job run inside that image.
test: bootstrap commit
	$(SWIFT) build $(CHECKED) --build-tests
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH) scripts/with-db.sh $(SWIFT) test --skip-build
	PYTHONDONTWRITEBYTECODE=1 scripts/with-db.sh .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Browser
	$(MAKE) test-deploy

test-deploy:
	if command -v podman >/dev/null; then $(MAKE) image; fi
	PYTHONDONTWRITEBYTECODE=1 scripts/with-db.sh .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Deploy

# localhost/agent-runner:<version> and :latest, offline: a cached debootstrap
# base and the release binaries (scripts/image.sh; README, Containers). Only
# the image's two products are built: not the dashboard (SwiftNIO, Hummingbird).
image: commit
	$(SWIFT) build $(CHECKED) $(RELEASE) --product agent-runner
	$(SWIFT) build $(CHECKED) $(RELEASE) --product agent-runner-job
	scripts/image.sh "$$($(SWIFT) build $(RELEASE) --show-bin-path)"

demo: bootstrap commit
	$(SWIFT) build $(CHECKED) $(RELEASE)
	scripts/with-db.sh scripts/demo.sh

# Release build, then one JSON line of figures (scripts/bench.py) against a private database.
bench: bootstrap commit
	$(SWIFT) build $(CHECKED) $(RELEASE)
	scripts/with-db.sh .venv/bin/python scripts/bench.py

clean:
	scripts/db.sh stop >/dev/null 2>&1 || true
	rm -rf .build .run
