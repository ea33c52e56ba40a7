# praxis.upgrade — one entry point for people and CI.
#   make demo   upgrade a local demo fleet end to end and print the report
#   make test   the whole suite (lint, sanity, units, integration, molecule, release, version matrix),
#               then a check that nothing it started is still running
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
COLL_LINK := .build/collections/ansible_collections/praxis/upgrade
WHEELHOUSE := .cache/wheelhouse
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PRAXIS_WHEELHOUSE := $(CURDIR)/$(WHEELHOUSE)
# every process `make` starts inherits this: scripts/check-leftovers finds what outlived its test
export PRAXIS_TEST_OWNER := $(CURDIR)

# The version matrix: the dev venv runs the main ansible-core (requirements/dev.txt); `make matrix`
# runs sanity, units and one installed-tarball upgrade on the oldest ansible-core meta/runtime.yml
# claims and on the newest, each in its own venv under .cache/matrix/ (2.20+ needs Python >= 3.12).
MATRIX_OLDEST := 2.16.19
MATRIX_NEWEST := 2.21.5
MATRIX_DIR := .cache/matrix
# what can differ between ansible-core versions: module docs and argument specs, imports, compiling, plugin
# loading (the style tests, pylint included, run once on the main version in `make sanity`)
MATRIX_SANITY ?= --test compile --test import --test validate-modules --test ansible-doc --test action-plugin-docs \
	--test runtime-metadata
PY312 ?= $(or $(lastword $(sort $(wildcard $(or $(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)/versions/3.12*/bin/python3.12))),python3.12)
MATRIX_PY_$(MATRIX_OLDEST) := $(PY)
MATRIX_PY_$(MATRIX_NEWEST) := $(PY312)

.PHONY: help setup browser demo test test-suite lint sanity units unit integration faults molecule release-test matrix \
	leftovers release bench clean realworld

help:
	@echo "make demo    upgrade a local demo fleet (3 installs + 1 by install.yml) v1 -> v2 and print the report"
	@echo "make test    run the whole test suite"
	@echo "make bench [MIRROR=<praxis-os clone>]  measure the goals of issue 10 (full sizes, ~25 min; BENCH_ARGS=--quick for a few minutes)"
	@echo "make realworld MIRROR=<clone of honeyhiveai/praxis-os>  upgrade a REAL installation (opt-in; ~18 min cached, ~40 min first run)"

setup: $(VENV)/.stamp $(COLL_LINK) $(WHEELHOUSE)/.stamp .cache/ansible-test-offline.stamp browser

# The HTML run report is checked in a real headless browser (tests/integration/test_html_report.py fails
# without one): Chromium from the Debian packages, installed when missing (root, or passwordless sudo).
CHROMIUM_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || test -n "$$PRAXIS_CHROMIUM" || { \
	  echo "installing chromium (Debian package) for the HTML report test"; \
	  if [ "$$(id -u)" = 0 ]; then $(CHROMIUM_INSTALL); \
	  elif sudo -n true 2>/dev/null; then sudo sh -c '$(CHROMIUM_INSTALL)'; \
	  else echo "chromium is missing and cannot be installed without root. Next: sudo apt-get install chromium," \
	    "or set PRAXIS_CHROMIUM=/path/to/chromium" >&2; exit 2; fi; }

$(VENV)/.stamp: requirements/dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

$(COLL_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

$(WHEELHOUSE)/.stamp: requirements/fixture-wheelhouse.txt $(VENV)/.stamp
	mkdir -p $(WHEELHOUSE)
	$(BIN)/pip download --quiet --disable-pip-version-check -d $(WHEELHOUSE) -r requirements/fixture-wheelhouse.txt
	touch $@

.cache/ansible-test-offline.stamp: scripts/ansible-test-offline-pip.py scripts/setup-ansible-test-offline
	scripts/setup-ansible-test-offline
	mkdir -p .cache && touch $@

# Opt-in, not part of `make test`: a real upstream installation (docs-made, real venv, real index) upgraded
# and rolled back by the installed collection (scripts/realworld; result in tests/output/realworld.md).
realworld: setup
	@test -n "$(MIRROR)" || { echo "usage: make realworld MIRROR=<path of a git clone or bare mirror of honeyhiveai/praxis-os> [REALWORLD_ARGS=--no-forced]"; exit 2; }
	$(BIN)/python scripts/realworld --mirror "$(MIRROR)" $(REALWORLD_ARGS)

demo: setup
	$(BIN)/python -m tests.demo

# The suite stops at the first failing part; the leftover check runs in any case.
test: setup
	@status=0; $(MAKE) --no-print-directory test-suite || status=$$?; \
	$(PY) scripts/check-leftovers --kill || status=1; exit $$status

test-suite: lint sanity units integration faults molecule release-test matrix

lint: setup
	$(BIN)/ansible-lint --offline
	$(BIN)/antsibull-changelog lint

sanity: setup
	scripts/ansible-test sanity

units: setup
	COVERAGE_FILE=.cache/coverage $(BIN)/pytest -q tests/unit --cov=plugins/module_utils --cov-report=term-missing:skip-covered --cov-fail-under=90
	scripts/ansible-test units

integration: setup
	$(BIN)/pytest -q -n 2 --dist loadscope tests/integration

# fault matrix (tests/faults, README "Fault-matrix suite"); FAULTS_ARGS: more pytest arguments (e.g. -k kill)
FAULTS_ARGS ?=
faults: setup
	$(BIN)/pytest -q -n 2 tests/faults $(FAULTS_ARGS)

molecule: setup
	scripts/molecule-all

# the release as a user gets it: tarball built and installed into an empty path, FQCN playbooks
release-test: setup
	$(BIN)/pytest -q -p no:cacheprovider tests/release

matrix: setup $(MATRIX_DIR)/ansible-$(MATRIX_OLDEST)/.stamp $(MATRIX_DIR)/ansible-$(MATRIX_NEWEST)/.stamp
	@for version in $(MATRIX_OLDEST) $(MATRIX_NEWEST); do \
	  bin=$(CURDIR)/$(MATRIX_DIR)/ansible-$$version/bin; \
	  python=$$($$bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  echo "== ansible-core $$version (Python $$python): sanity, units, installed-tarball upgrade"; \
	  PRAXIS_ANSIBLE_BIN=$$bin PRAXIS_ANSIBLE_TEST_PYTHON=$$python scripts/ansible-test sanity $(MATRIX_SANITY) || exit 1; \
	  PRAXIS_ANSIBLE_BIN=$$bin PRAXIS_ANSIBLE_TEST_PYTHON=$$python scripts/ansible-test units || exit 1; \
	  PRAXIS_ANSIBLE_BIN=$$bin $(BIN)/pytest -q -p no:cacheprovider tests/release -k upgrade_succeeds || exit 1; \
	done

$(MATRIX_DIR)/ansible-%/.stamp:
	@test -n "$(MATRIX_PY_$*)" || { echo "no Python for ansible-core $* (Next: set MATRIX_PY_$*=<python>)" >&2; exit 2; }
	@$(MATRIX_PY_$*) -c 'import sys' 2>/dev/null || { echo "$(MATRIX_PY_$*) does not run; ansible-core $* needs it. \
	Next: install it (pyenv install 3.12) or run make with PY312=/path/to/python3.12" >&2; exit 2; }
	rm -rf $(dir $@)
	$(MATRIX_PY_$*) -m venv $(dir $@)
	$(dir $@)bin/pip install --quiet --disable-pip-version-check ansible-core==$*
	touch $@

# fails when a process started from this checkout is still running (and stops it, by pid)
leftovers:
	$(PY) scripts/check-leftovers --kill

# cut the release: render the changelog fragments into CHANGELOG.rst, build the tarball into .build/dist
release: setup
	$(BIN)/antsibull-changelog release --version $$($(BIN)/python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist

bench: setup
	bench/run $(if $(MIRROR),--mirror $(MIRROR)) $(BENCH_ARGS)

clean:
	rm -rf .build .cache tests/output bench/results
