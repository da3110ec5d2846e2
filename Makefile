# Two entry points (see README.md): `make book` and `make test`. Both install what
# they need into .venv first.
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install book test execute lab

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -r requirements.txt -e .
	touch $@

install: $(VENV)/.installed

book: install
	jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: install
	pytest

# Re-execute chapters in place (all, or NB=book/03_importance_sampling.ipynb).
NB ?= book/*.ipynb
execute: install
	VAEBOOK_PROGRESS=0 jupyter execute --inplace $(NB)

# Open the chapters in JupyterLab, in the project's environment (progress bars shown).
lab: install
	jupyter lab book/
