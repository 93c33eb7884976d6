# podbgp — `make test` and `make demo` do all set-up on a fresh machine (run as root).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Debian packages the tests and the lab need: real BGP peers, etcd, capture and ping.
APT_PKGS := python3-venv frr bird2 gobgpd openbgpd exabgp etcd-server etcd-client tcpdump iputils-ping iproute2 procps nftables
FUZZ_SECONDS ?= 60

.PHONY: all venv deps lint typecheck unit test fuzz demo bench clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@

venv: $(VENV)/.installed

# Install whatever Debian packages are missing (apt-get update only when needed).
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p /run/openbgpd

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check bgp rib fib ipam podbgp

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest tests/unit tests/property -q

test: deps venv lint typecheck
	$(VENV)/bin/pytest -q

fuzz: venv
	$(PY) tests/fuzz/fuzz_decode.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096

demo: deps venv
	$(PY) -m podbgp lab up --demo

bench: deps venv
	$(PY) benchmarks/codec.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
