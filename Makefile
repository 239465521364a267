# dockyard — the two commands a newcomer needs are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Debian packages the test suite drives (real clients, the reference registry).
TEST_DEBS := skopeo podman docker-registry nginx e2fsprogs clamav-daemon rpm
BENCH_DEBS := docker-registry wrk apache2-utils curl debootstrap
# Single-node Ceph + radosgw (ci/s3/start.sh): the S3 driver's tests start it themselves, once per run.
S3_DEBS := radosgw ceph-mon ceph-osd ceph-common curl uuid-runtime

.PHONY: serve test lint typecheck unit drivers integration e2e s3 bench stress system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Where `make serve` listens and keeps its data. Set only on make's command line
# (`make serve SERVE_PORT=5001`): a PORT or HOST in the environment never moves it.
SERVE_HOST := 127.0.0.1
SERVE_PORT := 5000
SERVE_DATA := ./data

serve: $(STAMP)
	$(BIN)/dockyard serve --host $(SERVE_HOST) --port $(SERVE_PORT) --data-dir $(SERVE_DATA)

# Install missing Debian packages when running as root (CI, fresh machines); otherwise say what is missing.
system-deps:
	@missing=""; for pkg in $(DEBS); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages (tests needing them are skipped outside CI):$$missing"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP)
	$(MAKE) --no-print-directory system-deps DEBS="$(TEST_DEBS) $(S3_DEBS)"
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

unit drivers integration e2e: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/$@ $(PYTEST_ARGS)

# Only the S3 driver, against a Ceph the tests start (tests/support/s3.py).
s3: $(STAMP)
	$(MAKE) --no-print-directory system-deps DEBS="$(S3_DEBS)"
	$(BIN)/pytest -p no:cacheprovider tests/drivers -k s3 $(PYTEST_ARGS)

bench: $(STAMP)
	$(MAKE) --no-print-directory system-deps DEBS="$(BENCH_DEBS)"
	$(BIN)/python -m bench

# Longer fuzz and stress runs than CI affords, the 30-minute memory soak among them (tests/e2e/test_soak.py:
# RSS after the first 5 minutes grows by at most 5%, no 5xx; its curve is printed and written to a file).
stress: $(STAMP)
	DOCKYARD_STRESS=1 DOCKYARD_TEST_BIG_BLOB_MB=8192 DOCKYARD_TEST_BIG_LAYER_MB=8192 $(BIN)/pytest -p no:cacheprovider \
	  tests/e2e tests/unit/test_scan_layers.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
