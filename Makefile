# The commands from the README: `make run`, `make run-prod` and `make test`.
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run run-prod test lint messages

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python 3.12 or newer is needed (pyenv install 3.12)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py compilemessages --ignore '.venv/*' -v 0
	$(PY) manage.py seed_demo
	@echo ""
	@echo "  Privacy Portal: http://localhost:8000/   (Ctrl-C stops everything)"
	@echo ""
	$(PY) manage.py runall

# PostgreSQL, Redis, gunicorn, two Celery workers and beat with production settings (bin/run-prod).
run-prod: $(VENV)/.installed
	PY=$(PY) bin/run-prod

test: $(VENV)/.installed
	.ci/test

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l zh_Hans --ignore '.venv/*' --ignore 'tests/*' --ignore 'bench/*'
