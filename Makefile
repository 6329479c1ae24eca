# The two commands of the README (make run, make test). Both bootstrap .venv on a fresh machine.
#   make run   - the whole workflow on the embedded default config (config/config.yaml),
#                written under runs/config-<digest>/ (every config has its own folder under runs/:
#                python -m resnet_scaling.runs CONFIGFILES... prints it)
#   make test  - the fast tier: unit and property tests, one smoke run of the DAG and the dry runs
#                of the profiles (about 5 minutes on 2 cores)
#   make test-all - every test, the slow workflow tests and the real-Slurm one included (what CI
#                runs: about 25 minutes on 2 cores)
#   make phase-diagram - the opt-in training-side phase diagram (docs/maths.md §8), same folder
#   make gallery - copy the default run's figures and small tables into the committed figures/
#                (CONFIGS="config/paper.yaml config/overlays/fc_cpu.yaml" GALLERY=figures/paper for
#                another gallery, or RUN_DIR=<its run folder>; GALLERY_ARGS
#                for --time-report/--time-label/--replace of resnet_scaling.gallery)
PYTHON ?= python3
SHELL := bash
.SHELLFLAGS := -o pipefail -ec
VENV := .venv
CORES ?= all
# The run folder of the config files CONFIGS (runs/<names>-<digest of their values>), found when used.
CONFIGS ?= config/config.yaml
RUN_DIR ?= $(shell $(VENV)/bin/python -m resnet_scaling.runs $(CONFIGS))
GALLERY ?= figures

.PHONY: transfer-gallery run test test-all phase-diagram transfer gallery

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip 2>&1 | { grep -v 'is ignored' || true; }
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt 2>&1 | { grep -v 'is ignored' || true; }
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | { grep -v 'is ignored' || true; }
	$(VENV)/bin/python -c "import torch, snakemake, resnet_scaling"
	touch $@

run: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/snakemake --cores $(CORES) --configfile config/config.yaml
	$(VENV)/bin/snakemake --cores 1 --configfile config/config.yaml --report report.html

# The committed default gallery changes only here, on purpose (docs/running.md: "Where a run writes").
gallery: $(VENV)/.installed
	$(VENV)/bin/python -m resnet_scaling.gallery $(RUN_DIR) $(GALLERY) $(GALLERY_ARGS)

# The opt-in training-side phase diagram (docs/results.md: "Which training choices give which regime").
phase-diagram: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/snakemake phase_diagram --cores $(CORES) --configfile config/config.yaml

# The opt-in learning-rate transfer study (docs/maths.md §9), in the run folder of its overlay.
transfer: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/snakemake transfer --cores $(CORES) --configfile config/config.yaml config/overlays/transfer.yaml

# The committed transfer gallery from that run (add GALLERY_ARGS=--replace after a code change).
transfer-gallery: $(VENV)/.installed
	$(VENV)/bin/python -m resnet_scaling.gallery $$($(VENV)/bin/python -m resnet_scaling.runs config/config.yaml config/overlays/transfer.yaml) figures/transfer --target transfer $(GALLERY_ARGS)

# The fast tier leaves out the tests marked slow (pyproject.toml) and the real-Slurm test.
test: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest -m "not slow and not slurm"

test-all: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest
