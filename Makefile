# praxis.upgrade — one entry point for people and CI.
#   make demo   upgrade a local demo fleet end to end and print the report
#   make test   the whole suite (lint, sanity, units, integration, molecule)
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

.PHONY: help setup demo test lint sanity units unit integration molecule bench clean

help:
	@echo "make demo    upgrade a local demo fleet (3 installs) v1 -> v2 and print the report"
	@echo "make test    run the whole test suite"
	@echo "make bench   measure the goals of issue 10 (full sizes, ~30 min; BENCH_ARGS=--quick for a few minutes)"

setup: $(VENV)/.stamp $(COLL_LINK) $(WHEELHOUSE)/.stamp .cache/ansible-test-offline.stamp

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

.cache/ansible-test-offline.stamp: scripts/ansible-test-offline-pip.py
	scripts/setup-ansible-test-offline
	mkdir -p .cache && touch $@

demo: setup
	$(BIN)/python -m tests.demo

test: setup lint sanity units integration molecule

lint: setup
	$(BIN)/ansible-lint --offline

sanity: setup
	scripts/ansible-test sanity

units: setup
	COVERAGE_FILE=.cache/coverage $(BIN)/pytest -q tests/unit --cov=plugins/module_utils --cov-report=term-missing:skip-covered --cov-fail-under=90
	scripts/ansible-test units

integration: setup
	$(BIN)/pytest -q -n 2 --dist loadscope tests/integration

molecule: setup
	scripts/molecule-all

bench: setup
	bench/run $(BENCH_ARGS)

clean:
	rm -rf .build .cache tests/output bench/results
