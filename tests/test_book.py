"""Build the book (warnings are errors) and check the rendered pages, in headless Chromium too."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, need

CDN = re.compile(r"(cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com)[^\"']*(html-manager|require)")


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out), "--warningiserror",
                           "--nitpick", "--keep-going"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out / "_build" / "html"


def rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran in headless Chromium (offline, 15 s of virtual time)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need(chromium is not None, "Debian's chromium for the rendered-page check (.ci/run installs it)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=180)
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def test_every_page_is_built_with_glued_numbers(html):
    page = (html / "notebooks" / "01_understanding_transfer_learning.html").read_text()
    assert "glue:" not in page and "{glue" not in page
    # the glued accuracies appear as percentages in the prose
    assert re.search(r"linear probe reaches\s*(<[^>]+>\s*)*\d+\.\d%", page)
    for name in ["intro", "setup", "course", "glossary", "references"]:
        assert (html / "book" / f"{name}.html").exists()
    for chapter in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = (html / "notebooks" / f"{chapter.stem}.html").read_text()
        assert "{glue" not in text and "all claims hold" in text, chapter.stem


WIDGET_PAGES = {
    "01_understanding_transfer_learning": ["from scratch", "linear probe", "fine-tuning"],
    "05_fine_tuning": ["head only", "last block + head", "all layers"],
}


@pytest.mark.parametrize("name", WIDGET_PAGES)
def test_widgets_javascript_is_bundled_not_fetched(html, name):
    page = (html / "notebooks" / f"{name}.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in page
    assert "widgets/html-manager-embed-1.0.15.js" in page
    assert (html / "_static" / "widgets" / "html-manager-embed-1.0.15.js").exists()
    assert not CDN.search(page)


@pytest.mark.parametrize("name", WIDGET_PAGES)
def test_widgets_render_in_headless_chromium(html, name):
    dom = rendered_dom(html / "notebooks" / f"{name}.html")
    # The html-manager replaced the saved state by live widgets: a tab bar with our titles.
    assert re.search(r"lm-TabBar|p-TabBar|widget-tab", dom), "widgets did not render"
    for title in WIDGET_PAGES[name]:
        assert re.search(rf"TabBar-tabLabel[^>]*>{re.escape(title)}<", dom), title


def test_no_page_loads_mathjax_from_a_cdn(html):
    for page in html.rglob("*.html"):
        assert not re.search(r"https?://[^\"']*mathjax", page.read_text(), re.I), page.name


MATH_PAGES = ["08_hyperparameter_search", "09_evaluation"]   # chapters whose prose holds $...$ and $$...$$ math


@pytest.mark.parametrize("name", MATH_PAGES)
def test_math_is_typeset_offline_by_the_bundled_mathjax(html, name):
    page = html / "notebooks" / f"{name}.html"
    text = page.read_text()
    assert "_static/mathjax/tex-chtml.js" in text   # from the sphinx-mathjax-offline package
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()   # fonts too
    dom = rendered_dom(page)
    typeset = dom.count("<mjx-container")
    assert typeset >= 3, f"only {typeset} formulas typeset"   # MathJax ran, from the bundled file
    assert 'data-mjx-error' not in dom and "$$" not in dom.split("<main", 1)[-1]   # no TeX errors or raw TeX left
