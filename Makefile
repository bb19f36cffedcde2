# One install path for `make run`, `make test` and the Dockerfile.
# Idempotent: apt runs only for missing packages, pip only when a
# requirements file changed.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

APT_RUNTIME := orthanc orthanc-python orthanc-dicomweb orthanc-postgresql dcmtk python3-venv
APT_TEST := chromium poppler-utils

.PHONY: install install-test run test bench clean-data

install: apt-runtime $(VENV)/.installed

install-test: install apt-test $(VENV)/.installed-test

apt-runtime:
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_RUNTIME)"

apt-test:
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_TEST)"

# Install only what is missing; on a systemd host, keep Debian's own
# orthanc.service (every plugin, 0.0.0.0:8042) from colliding with ours.
apt:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing || exit 1; \
	  if [ -d /run/systemd/system ] && systemctl is-enabled --quiet orthanc 2>/dev/null; then \
	    echo "Disabling Debian's orthanc.service (the PACS runs its own Orthanc)"; \
	    $(SUDO) systemctl disable --now orthanc || true; \
	  fi; \
	fi

$(VENV)/bin/python:
	/usr/bin/python3 -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

run: install
	$(PY) -m plugin.launcher run

test: install-test
	$(PY) -m pytest tests

bench: install-test
	$(PY) bench/ingest.py
