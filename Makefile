# podbgp — `make test` and `make demo` do all set-up on a fresh machine (run as root).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Debian packages `make demo` needs: namespaces, veths and routes (iproute2), FRR (the
# ToRs), etcd (the cluster lab's datastore), ping for the matrix, procps, and venv.
DEMO_PKGS := python3-venv frr etcd-server etcd-client iproute2 iputils-ping procps
# What the tests add: the other BGP daemons they peer with, packet capture, and
# nftables (nat_outgoing, the BFD drop tests), chattr (a read-only store), setpriv, and
# pmacct (pmbmpd, the BMP collector of the monitoring tests), openssl (the etcd TLS tests make a CA).
TEST_PKGS := bird2 gobgpd openbgpd exabgp tcpdump nftables e2fsprogs util-linux pmacct openssl
FUZZ_SECONDS ?= 60

.PHONY: all venv venv-runtime deps deps-demo lint typecheck unit test fuzz demo bench clean

all: test

# Two stamps: podbgp with its runtime dependencies (the demo), then the test and dev
# extras on top (the tests). `make demo` after `make test` finds both and installs nothing.
$(VENV)/.installed-runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-runtime
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@

venv-runtime: $(VENV)/.installed-runtime
venv: $(VENV)/.installed-test

# Install whichever of the listed Debian packages are missing (apt-get update only then).
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps-demo:
	$(call apt_install,$(DEMO_PKGS))

deps: deps-demo
	$(call apt_install,$(TEST_PKGS))
	@mkdir -p /run/openbgpd

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check bgp bfd rib fib ipam podbgp

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest tests/unit tests/property -q

test: deps venv lint typecheck
	$(VENV)/bin/pytest -q

fuzz: venv
	$(PY) tests/fuzz/fuzz_decode.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096

# Two labs side by side: the dual-stack one, then a cluster of two racks configured by one
# resources file (`podbgp apply`) and five-line node files.
demo: deps-demo venv-runtime
	$(PY) -m podbgp lab up --demo --family dual
	$(PY) -m podbgp lab up --topology cluster --demo --prefix podbgp-cluster- --state-dir /tmp/podbgp-cluster

bench: deps venv
	$(PY) benchmarks/codec.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
