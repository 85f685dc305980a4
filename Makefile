# agent-runner — common tasks. `make test` and `make demo` first install what is
# missing (scripts/bootstrap.sh), then run against a private throwaway database
# (scripts/with-db.sh exports MONGODB_URI for the duration of one command).
SWIFT ?= swift

.PHONY: all build bootstrap test demo bench clean

all: build

build:
	$(SWIFT) build -c release

bootstrap:
	scripts/bootstrap.sh

# Swift Testing runs tests in parallel by itself; no --parallel needed.
test: bootstrap
	$(SWIFT) build --build-tests
	scripts/with-db.sh $(SWIFT) test --skip-build

demo: bootstrap
	$(SWIFT) build -c release
	scripts/with-db.sh scripts/demo.sh

# Release build, then one JSON line of figures (scripts/bench.py) against a private database.
bench: bootstrap
	$(SWIFT) build -c release
	scripts/with-db.sh .venv/bin/python scripts/bench.py

clean:
	scripts/db.sh stop >/dev/null 2>&1 || true
	rm -rf .build .run
