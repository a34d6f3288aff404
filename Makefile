# Thin wrappers over the `testbed` CLI. `make` alone lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

TOPO   ?=
PRESET ?= quick
SET    ?=
REPORTS ?= reports
RUN    ?= $(REPORTS)/$(or $(TOPO),edge3level)/latest
GRID   ?=
JOBS   ?=
EXECUTOR ?= local
SLURM  ?=
NPROC  ?= 2

.DEFAULT_GOAL := help
.PHONY: help install experiment experiment-dist report retime compare sweep test test-slow bench peers browser clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: TOPO=$(or $(TOPO),<the preset's>) PRESET=$(PRESET) SET=\"key=value ...\" RUN=$(RUN) TRACE=\"NAME=path.csv ...\" RESUME=run-folder NPROC=$(NPROC) RUNS=\"run run ...\" GRID=\"key=a|b ...\" JOBS=K EXECUTOR=local|submitit-local|slurm SLURM=\"key=value ...\" BENCH_ARGS=--quick"

install: $(STAMP)  ## create .venv and install the package with its dev extra

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

experiment: $(STAMP)  ## train and price the algorithms on TOPO (default: the preset's; PRESET, SET="k=v ...", RESUME=run folder) and print the report path
# TOPO and SET go along with RESUME, so the CLI refuses them instead of make dropping them
ifdef RESUME
	$(BIN)/testbed experiment --resume $(RESUME) $(if $(TOPO),--topo $(TOPO)) $(foreach s,$(SET),--set $(s))
else
	$(BIN)/testbed experiment $(if $(TOPO),--topo $(TOPO)) --preset $(PRESET) --reports $(REPORTS) $(foreach s,$(SET),--set $(s))
endif

# torchrun on this machine (--standalone: a free port); several machines: see README "Several GPUs and machines"
experiment-dist: $(STAMP)  ## experiment on NPROC processes (default 2; a GPU each with CUDA, else gloo on the CPU); TOPO, PRESET, SET, RESUME as for experiment
ifdef RESUME
	$(BIN)/torchrun --standalone --nproc-per-node $(NPROC) -m testbed experiment --resume $(RESUME) $(if $(TOPO),--topo $(TOPO)) $(foreach s,$(SET),--set $(s))
else
	$(BIN)/torchrun --standalone --nproc-per-node $(NPROC) -m testbed experiment $(if $(TOPO),--topo $(TOPO)) --preset $(PRESET) --reports $(REPORTS) $(foreach s,$(SET),--set $(s))
endif

report: $(STAMP)  ## rebuild report.html of RUN (default: the latest run on TOPO)
	$(BIN)/testbed report $(RUN)

compare: $(STAMP)  ## one report over several run folders, RUNS="reports/a reports/b" (curves, time to target, provenance side by side)
	$(BIN)/testbed compare $(RUNS)

retime: $(STAMP)  ## re-price RUN under TRACE="NAME=path.csv ..." (and network keys, SET="tcp_model=fluid") without retraining
	$(BIN)/testbed retime $(RUN) $(foreach t,$(TRACE),--trace $(t)) $(foreach s,$(SET),--set $(s))

sweep: $(STAMP)  ## a grid of runs, GRID="lr=0.05|0.1 seeds=0|1" (with TOPO, PRESET, SET): JOBS=K at a time here, or EXECUTOR=slurm SLURM="timeout_min=120 ..."; the same command resumes
	$(BIN)/testbed sweep $(if $(TOPO),--topo $(TOPO)) --preset $(PRESET) --reports $(REPORTS) $(foreach s,$(SET),--set $(s)) $(foreach g,$(GRID),--grid '$(g)') $(if $(JOBS),--jobs $(JOBS)) --executor $(EXECUTOR) $(foreach s,$(SLURM),--slurm $(s))

test: $(STAMP) browser  ## run the test suite (slow tests excluded; installs chromium for the report test)
	$(BIN)/pytest -q

test-slow: $(STAMP)  ## run only the slow tests
	$(BIN)/pytest -q -m slow

bench: $(STAMP)  ## engine, end-to-end (with peers) and network benchmarks (BENCH_ARGS="--quick" for a smoke run); figures go to bench/results/
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

peers: $(STAMP)  ## optional: Flower in its own venv (bench/.peers-venv) for the peer rows of `make bench`
	@test -x bench/.peers-venv/bin/pip || $(PYTHON) -m venv bench/.peers-venv
	bench/.peers-venv/bin/pip install --quiet 'flwr[simulation]'
	$(BIN)/python -c "import site; print(site.getsitepackages()[0])" > "$$(bench/.peers-venv/bin/python -c 'import site; print(site.getsitepackages()[0])')/zz_testbed_venv.pth"

browser:  ## install Debian's chromium for the report test (needs root; tolerated if it fails)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium could not be installed; the browser test will be skipped"

clean:  ## remove the virtualenv and caches (run folders under reports/ are kept)
	rm -rf $(VENV) .pytest_cache build *.egg-info

.PHONY: netval
netval: $(STAMP)  ## ns-3 packet-level TCP reference (own venv bench/netval/.venv; ~30 min of one core); NETVAL_ARGS="--only single --limit 3"
	@test -x bench/netval/.venv/bin/pip || $(PYTHON) -m venv bench/netval/.venv
	@bench/netval/.venv/bin/pip show ns3 2>/dev/null | grep -qx 'Version: 3.44.post0' || bench/netval/.venv/bin/pip install --quiet ns3==3.44.post0
	$(BIN)/python bench/netval/ns3run.py $(NETVAL_ARGS)
