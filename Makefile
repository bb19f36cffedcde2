# One install path for `make run`, `make test` and the Dockerfile.
# Idempotent: apt runs only for missing packages, pip only when a
# requirements file changed.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

APT_RUNTIME := orthanc orthanc-python orthanc-dicomweb orthanc-postgresql orthanc-gdcm dcmtk python3-venv fonts-dejavu-core fonts-droid-fallback
APT_TEST := chromium poppler-utils

# Front-end files from npm, pinned: only their prebuilt dist/ is unpacked
# into build/vendor (git-ignored); npm checks each tarball's integrity.
VENDOR := build/vendor
CHARTJS := chart.js@4.6.1
OHIF := @ohif/app@3.13.2

.PHONY: install install-test run test lint test-other-release bench clean-data

install: apt-runtime $(VENV)/.installed $(VENDOR)/.installed

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

$(VENDOR)/.installed: Makefile
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt PACKAGES="nodejs npm"
	rm -rf $(VENDOR).tmp && mkdir -p $(VENDOR).tmp/packs $(VENDOR).tmp/chartjs $(VENDOR).tmp/ohif
	cd $(VENDOR).tmp/packs && npm pack --silent $(CHARTJS) $(OHIF) >/dev/null
	tar -xzf $(VENDOR).tmp/packs/chart.js-*.tgz -C $(VENDOR).tmp/chartjs --strip-components=2 package/dist/chart.umd.min.js
	tar -xzf $(VENDOR).tmp/packs/ohif-app-*.tgz -C $(VENDOR).tmp/ohif --strip-components=2 package/dist
	rm -rf $(VENDOR).tmp/packs $(VENDOR) && mv $(VENDOR).tmp $(VENDOR)
	touch $@

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

# ruff (lint and format, settings in pyproject.toml) and mypy on the typed modules.
lint: install-test
	$(PY) -m ruff check plugin tests bench
	$(PY) -m ruff format --check plugin tests bench
	$(PY) -m mypy

# The same `make test` on a clean clone of HEAD, in a cached debootstrap root of
# the other Debian release (bookworm <-> trixie). Needs root.
test-other-release:
	.ci/other-release

bench: install-test
	$(PY) bench/ingest.py
