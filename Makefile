# make book  -- set up .venv and build the book into _build/html (the main job)
# make test  -- set up .venv and run every test: unit tests, doctests, notebooks (nbval), book build
# make lab   -- open JupyterLab on the notebooks
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: book test lab execute clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[book,dev]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "Book built: open _build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax --nbval-cell-timeout=900 \
		tests tlhelpers notebooks -v -rs

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-execute every notebook in place (outputs are committed so the book shows results).
execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 notebooks/*.ipynb

clean:
	rm -rf _build
