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

.PHONY: all build bootstrap test demo bench clean

all: build

build:
	$(SWIFT) build $(CHECKED) $(RELEASE)

bootstrap:
	scripts/bootstrap.sh

# Swift Testing runs tests in parallel by itself; no --parallel needed.
# Then the dashboard's browser and HTTP tests (Tests/Browser: pytest, Selenium, Chromium).
test: bootstrap
	$(SWIFT) build $(CHECKED) --build-tests
	scripts/with-db.sh $(SWIFT) test --skip-build
	PYTHONDONTWRITEBYTECODE=1 scripts/with-db.sh .venv/bin/python -m pytest -q -p no:cacheprovider Tests/Browser

demo: bootstrap
	$(SWIFT) build $(CHECKED) $(RELEASE)
	scripts/with-db.sh scripts/demo.sh

# Release build, then one JSON line of figures (scripts/bench.py) against a private database.
bench: bootstrap
	$(SWIFT) build $(CHECKED) $(RELEASE)
	scripts/with-db.sh .venv/bin/python scripts/bench.py

clean:
	scripts/db.sh stop >/dev/null 2>&1 || true
	rm -rf .build .run
