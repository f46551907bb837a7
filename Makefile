# The README's two commands: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
CORES ?= all
CONFIG ?=            # e.g. make run CONFIG=workflow/configs/heat2d-paper.yaml (default: config.yaml)
SNAKE_CONFIG := $(if $(strip $(CONFIG)),--configfile $(strip $(CONFIG)))

.PHONY: setup run test report bench clean

setup:
	@bash scripts/bootstrap.sh

run: setup
	$(BIN)/snakemake --cores $(CORES) $(SNAKE_CONFIG)
	$(BIN)/snakemake --cores 1 $(SNAKE_CONFIG) --report results/report.html
	@echo "report: results/report.html   metrics: results/heat2d/metrics.json"

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/heat2d_throughput.py
	$(BIN)/python benchmarks/fft_elastic.py

clean:
	rm -rf results/* .snakemake
