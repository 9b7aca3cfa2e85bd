# The README's two commands: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MANAGE := cd example_site && ../$(PY) manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: demo test lint bench migrations install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,demo]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(MANAGE) migrate --noinput
	$(MANAGE) calltracking_demo
	$(MANAGE) demo_superuser
	@echo ""
	@echo "  Site:  http://$(HOST):$(PORT)/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST"
	@echo "  Admin: http://$(HOST):$(PORT)/admin/  (admin / admin, demo only)"
	@echo ""
	$(MANAGE) runserver $(HOST):$(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,demo,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) bench/middleware.py
	$(PY) bench/peers.py
	$(PY) bench/leasing.py
	$(PY) bench/webhooks.py
	$(PY) bench/admin.py

# Regenerate the (pre-release, single) initial migrations, portable across Wagtail 7 and 8.
migrations: $(VENV)/.installed
	rm -f wagtail_calltracking/migrations/0*.py example_site/home/migrations/0*.py
	$(MANAGE) makemigrations wagtail_calltracking home
	$(PY) scripts/fix_migrations.py wagtail_calltracking/migrations/0*.py example_site/home/migrations/0*.py

clean:
	rm -rf $(VENV) example_site/db.sqlite3 build dist *.egg-info
