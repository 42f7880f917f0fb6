"""The project's own promises: installs agree, notebooks are executed and listed, glue keys exist."""
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_installs_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = dict(_split(r) for r in project["dependencies"])
    for extra in ("book", "dev", "nlp"):
        declared.update(_split(r) for r in project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    listed = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = _split(item)
            if name in {"python", "pip", "-e"}:
                continue
            listed[name] = spec
    assert listed == declared
    for name, spec in declared.items():
        assert "<" in spec, f"{name} needs an upper bound, not {spec!r}"
    assert declared["torch"].endswith("<=2.14.1") and declared["torchvision"].endswith("<=0.29.1")


def test_readme_and_ci_use_the_same_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_notebook_is_in_the_toc_and_every_toc_file_exists():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc) + [re.search(r"root:\s*(\S+)", toc).group(1)]
    for f in files:
        assert list(ROOT.glob(f + ".*")), f"{f} listed in _toc.yml does not exist"
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_executed_with_glued_numbers(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code), "execute the notebook before committing"
    counts = [c["execution_count"] for c in code]
    assert counts == sorted(counts), "cells were executed out of order"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in code for o in c.get("outputs", [])}
    glued.discard(None)
    used = set()
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            used.update(re.findall(r"\{glue:[a-z]+\}`([A-Za-z0-9_]+)", "".join(c["source"])))
    assert used <= glued, f"glue keys used in the prose but never glued: {used - glued}"
    assert used, "a chapter's numbers come from glue"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_table_on_a_page_shows_nan(path):
    # a reader sees "NaN" as a bug: a cell that does not apply says so (e.g. na_rep="n/a")
    for c in json.loads(path.read_text())["cells"]:
        for o in c.get("outputs", []):
            html = "".join(o.get("data", {}).get("text/html", ""))
            assert not re.search(r"<td[^>]*>\s*(NaN|nan|None)\s*</td>", html), \
                f"a table shows NaN: {''.join(c['source'])[:80]!r}"


def test_notebooks_start_with_title_objectives_and_runtime():
    for path in NOTEBOOKS:
        first = "".join(json.loads(path.read_text())["cells"][0]["source"])
        assert first.startswith("# ") and "Time to run" in first and "learn" in first


def test_readme_lists_every_registered_dataset_with_its_licence():
    from tlhelpers.data import list_datasets

    readme = (ROOT / "README.md").read_text()
    for name in list_datasets():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README's dataset table lacks {name}"
        assert row.count("|") == 5, row  # name, what, licence, cite


def test_every_notebook_installs_the_package_in_colab_from_its_first_code_cell():
    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert url.startswith("https://"), url
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert 'if "google.colab" in sys.modules:' in first, path.name
        # tlhelpers[book] or, for the text chapters, tlhelpers[book,nlp]
        assert re.search(rf"tlhelpers\[book(,\w+)*\] @ git\+{re.escape(url)}\b", first), \
            f"{path.name}: install URL differs from _config.yml's"
    for page in [ROOT / "README.md", ROOT / "book" / "setup.md"]:
        assert f"git+{url}" in page.read_text(), page.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_glue_nothing(path):
    """nbval compares every output of a checked cell, glued values (timings, floats) included."""
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if "nbval-check-output" in cell.get("metadata", {}).get("tags", []):
            assert "glue(" not in "".join(cell["source"]), f"cell {i} is checked but glues a value"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_bookkeeping_cells_are_not_shown(path):
    """A cell that only glues values (or only reports the runtime) is bookkeeping: its code stays off the page."""
    hidden = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code" or hidden & set(cell.get("metadata", {}).get("tags", [])):
            continue
        outputs = cell.get("outputs", [])
        glued = [o for o in outputs if "scrapbook" in json.dumps(o.get("metadata", {}))]
        runtime = [o for o in outputs if "notebook runtime:" in "".join(o.get("text", ""))]
        assert not (glued and len(glued) + len(runtime) == len(outputs)), \
            f"cell {i} only glues values: tag it remove-cell (or remove-input when it prints the runtime)"


def test_pages_workflow_publishes_what_the_readme_builds():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    on = workflow.get("on", workflow.get(True))            # YAML 1.1 reads a bare `on:` as True
    assert on["push"]["branches"] == ["main"]
    steps = workflow["jobs"]["build"]["steps"]
    assert any(s.get("run") == "make book" for s in steps)   # the README's first command
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert "make book" in (ROOT / "README.md").read_text()
