# tune-rl: `make sweep ALGO=Rainbow_DQN`, `make test`.
# Every target sets up .venv first (idempotent: reinstalls only when
# pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ALGO    ?= Rainbow_DQN
PROFILE ?= quick
ENV     ?=
TRIALS  ?=
STEPS   ?=
SEED    ?=
SPEC    ?=
NAME    ?=
ADDRESS ?=
STORAGE ?=
TRACKING_URI ?=
ARGS    ?=
RESUME  ?=
TOP     ?= 3
SEEDS   ?= 3
OUT     ?= best.yaml
CONFIG  ?= best.yaml
MLFLOW_PORT ?= 5000
OPTUNA_PORT ?= 8080
OPTUNA_STORAGE ?=
# The MLflow UI test drives Debian's Chromium through Playwright (Playwright's
# own browser download cannot run on a closed network).
CHROMIUM ?= /usr/bin/chromium

SWEEP_FLAGS = --profile $(PROFILE) \
	$(if $(SPEC),--spec $(SPEC),--algo $(ALGO)) \
	$(if $(ENV),--env $(ENV)) \
	$(if $(TRIALS),--trials $(TRIALS)) \
	$(if $(STEPS),--max-env-steps $(STEPS)) \
	$(if $(SEED),--seed $(SEED)) \
	$(if $(NAME),--name $(NAME)) \
	$(if $(RESUME),--resume) \
	$(if $(STORAGE),--storage-path $(STORAGE)) \
	$(if $(TRACKING_URI),--tracking-uri $(TRACKING_URI)) \
	$(if $(ADDRESS),--address $(ADDRESS)) $(ARGS)

.PHONY: install chromium sweep submit reference dry-run list confirm best train evaluate report test lint bench bench-quick bench-gpu bench-profiles bench-search mlflow-ui optuna-dashboard clean

install: $(STAMP)

# torch first, pinned: that version is a CPU build here, while an unpinned
# torch (pulled in by ray or mlflow) would be a CUDA build of several GB.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# ALGO=all: one sweep per algorithm at the same budget, then a leaderboard
# (tune-rl compare; RESUME=1 NAME=... continues an interrupted one).
sweep: install
ifeq ($(ALGO),all)
	$(BIN)/tune-rl compare --profile $(PROFILE) $(if $(ENV),--env $(ENV)) \
		$(if $(TRIALS),--trials $(TRIALS)) $(if $(STEPS),--max-env-steps $(STEPS)) \
		$(if $(SEED),--seed $(SEED)) $(if $(NAME),--name $(NAME)) $(if $(RESUME),--resume) \
		$(if $(STORAGE),--storage-path $(STORAGE)) \
		$(if $(TRACKING_URI),--tracking-uri $(TRACKING_URI)) $(ARGS)
else
	$(BIN)/tune-rl sweep $(SWEEP_FLAGS)
endif

# The same sweep as a Ray job on a cluster: ADDRESS is its dashboard,
# http://<head>:8265; STORAGE a folder every node mounts (or s3://...);
# TRACKING_URI an MLflow server the nodes reach.
submit: install
	$(BIN)/tune-rl submit $(SWEEP_FLAGS)

# ALGO's published reference configuration (src/tune_rl/references.py: PPO,
# Rainbow_DQN, DQN) as a one-trial sweep, tracked in MLflow; its learning curve
# beside the published one (PNG, markdown, CSV) in the sweep folder and in
# OUTPUT when given. STEPS: env steps (default 1,000,000).
OUTPUT ?=
reference: install
	$(BIN)/tune-rl reference --algo $(ALGO) $(if $(STEPS),--env-steps $(STEPS)) \
		$(if $(NAME),--name $(NAME)) $(if $(SEED),--seed $(SEED)) \
		$(if $(STORAGE),--storage-path $(STORAGE)) \
		$(if $(TRACKING_URI),--tracking-uri $(TRACKING_URI)) $(if $(OUTPUT),--output $(OUTPUT))

dry-run: install
	$(BIN)/tune-rl sweep $(SWEEP_FLAGS) --dry-run

list: install
	$(BIN)/tune-rl list

# After a sweep (NAME): its top TOP configurations trained again on SEEDS new
# seeds each; the winner (confirmed when confirmed) as a sweep file; that file
# trained for STEPS env steps (RESUME=1 with NAME continues an interrupted one).
confirm: install
	$(BIN)/tune-rl confirm $(NAME) --top $(TOP) --seeds $(SEEDS) \
		$(if $(STEPS),--env-steps $(STEPS)) $(if $(STORAGE),--storage-path $(STORAGE))

best: install
	$(BIN)/tune-rl best $(NAME) -o $(OUT) $(if $(STORAGE),--storage-path $(STORAGE))

train: install
	$(BIN)/tune-rl train --config $(CONFIG) $(if $(STEPS),--env-steps $(STEPS)) \
		$(if $(NAME),--name $(NAME)) $(if $(RESUME),--resume) \
		$(if $(STORAGE),--storage-path $(STORAGE))

# A trained policy's complete games, greedy: SOURCE a checkpoint folder or
# models:/<name>/<version>, else sweep NAME's best; EPISODES games (default
# 10); GIF a file for the first game in colour.
EPISODES ?= 10
SOURCE   ?=
GIF      ?=
evaluate: install
	$(BIN)/tune-rl evaluate $(if $(SOURCE),$(SOURCE),--sweep $(NAME)) --episodes $(EPISODES) \
		$(if $(GIF),--gif $(GIF)) $(if $(STORAGE),--storage-path $(STORAGE)) \
		$(if $(TRACKING_URI),--tracking-uri $(TRACKING_URI))

# Sweep NAME as one self-contained HTML file (settings, trials, curves, Optuna's
# plots, confirmation), also logged to its MLflow run: REPORT the file
# (default <storage>/<NAME>/report.html); GIF a GIF to show, or WITH_GIF=1 to
# record the winner playing (3 greedy games, the first shown).
REPORT   ?=
WITH_GIF ?=
report: install
	$(BIN)/tune-rl report $(NAME) $(if $(REPORT),-o $(REPORT)) $(if $(GIF),--gif $(GIF)) \
		$(if $(WITH_GIF),--with-gif) \
		$(if $(STORAGE),--storage-path $(STORAGE)) $(if $(TRACKING_URI),--tracking-uri $(TRACKING_URI))

# Installs Chromium with apt-get when it is missing and root or sudo can;
# otherwise says how, and stops before a run that would fail.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif sudo -n true 2>/dev/null; then SUDO=sudo; \
		else echo "make test needs Chromium at $(CHROMIUM) for the MLflow UI test:" \
			"run 'sudo apt-get install chromium' (Debian/Ubuntu), or CHROMIUM=/path/to/chromium" >&2; \
			exit 1; fi; \
		echo "Installing Chromium for the MLflow UI test (apt-get install chromium)"; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# pytest's own exit code: 1 for a failed test, 5 when no test ran; both fail.
test: install chromium
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q tests

lint: install
	$(BIN)/ruff check src tests search_spaces benchmarks

# Speed figures -> benchmarks/results/latest.json and latest.md, and full.* or
# quick.* (full: 37 minutes on 2 cores; quick: about 6, same keys, smaller
# samples).
bench: install
	$(BIN)/python benchmarks/run.py

bench-quick: install
	$(BIN)/python benchmarks/run.py --quick

# On a machine with a CUDA GPU: issue 11's GPU figures, the full profiles as
# the sweep files set them -> benchmarks/results/gpu.json and .md (about 5
# minutes on an H200 machine with 16 cores). Each figure is written as it is
# measured, so a run cut short keeps what it had.
bench-gpu: install
	$(BIN)/python benchmarks/gpu.py

# What each search method finds on CartPole PPO for one budget, beside a
# stock Ray Tune script -> benchmarks/results/search.json and .md. full: 3
# seeds x 5 methods x 16 trials x 50,000 env steps (hours on 2 cores);
# SIZE=quick: 1 seed x 8 trials x 20,000.
SIZE ?= full
bench-search: install
	$(BIN)/python benchmarks/search.py --size $(SIZE) $(ARGS)

# Each quick profile timed end to end, as `make sweep` runs it (2.4 to 10.6
# minutes each on 2 cores, about 70 for all ten) -> benchmarks/results/profiles.json
# and .md.
# ALGOS="PPO DQN" times some; the other rows stay from their last run.
bench-profiles: install
	$(BIN)/python benchmarks/profiles.py $(if $(ALGOS),--algos $(ALGOS))

# The MLflow UI over the embedded store, on loopback only. MLflow 3 opens an
# experiment on its GenAI overview: the links printed first open the runs.
mlflow-ui: install
	@$(BIN)/tune-rl ui-links --tracking-uri sqlite:///mlflow.db \
		--ui http://127.0.0.1:$(MLFLOW_PORT)
	$(BIN)/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts

# Optuna Dashboard on sweep NAME's study, on loopback only: the journal beside
# its folder in STORAGE (default ray_results), or OPTUNA_STORAGE when the
# sweep was given one. PBT and PB2 sweeps have no study.
optuna-dashboard: install
	$(BIN)/tune-rl optuna-dashboard $(NAME) --port $(OPTUNA_PORT) \
		$(if $(STORAGE),--storage-path $(STORAGE)) \
		$(if $(OPTUNA_STORAGE),--optuna-storage $(OPTUNA_STORAGE))

clean:
	rm -rf ray_results mlartifacts mlflow.db .pytest_cache
