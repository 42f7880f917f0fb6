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


def rendered_dom(page: Path, *, budget_ms: int = 15000) -> str:
    """The page's DOM after its scripts ran in headless Chromium (offline, 15 s of virtual time by default)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need(chromium is not None, "Debian's chromium for the rendered-page check (.ci/run installs it)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()],
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
        # a Markdown object glued with {glue:text} instead of {glue:md} shows as its repr
        assert "IPython.core.display" not in text, f"{chapter.stem}: glue a Markdown object with {{glue:md}}"


def prose(page: str) -> list[str]:
    """The text of a page's paragraphs, without code, math or notebook outputs."""
    page = re.sub(r'<div class="cell_output.*?</div>\s*</div>', " ", page, flags=re.S)
    paragraphs = re.findall(r"<p>(.*?)</p>", page, flags=re.S)
    strip = [r"<code.*?</code>", r'<span class="math.*?</span>', r"\\\(.*?\\\)", r"<[^>]+>"]
    for pattern in strip:
        paragraphs = [re.sub(pattern, " ", p, flags=re.S) for p in paragraphs]
    return paragraphs


def test_glued_negative_numbers_read_with_a_minus_sign(html):
    # book/_ext/minus_sign.py: Python's "-0.038" becomes "−0.038" in prose; "blocks 4-6" stays
    pages = sorted((html / "notebooks").glob("*.html"))
    minus = 0
    for page in pages:
        for text in prose(page.read_text()):
            hyphen = re.search(r"(^|[\s(\[])-\.?\d", text)
            context = text[max(0, hyphen.start() - 60):hyphen.end() + 20] if hyphen else ""
            assert hyphen is None, f"{page.name}: a hyphen as a minus sign in {context!r}"
            minus += len(re.findall("\u2212\\d", text))
    assert minus > 0, "no glued negative number found: is book/_ext/minus_sign.py loaded?"


def test_wide_pages_hide_the_themes_second_search_bar(html):
    page = (html / "notebooks" / "14_word_embeddings.html").read_text()
    assert 'href="../_static/book.css' in page
    assert re.search(r"min-width:\s*960px\)\s*\{\s*\.bd-header\s*\{\s*display:\s*none", (html / "_static" / "book.css").read_text())


def test_no_page_declares_a_script_twice(html):
    # Jupyter Book 1.x registers thebe's inline config twice ("THEBE_JS_URL has already been declared");
    # book/_ext/dedupe_scripts.py keeps the first copy
    for page in [html / "index.html", *sorted((html / "notebooks").glob("*.html"))]:
        scripts = re.findall(r"<script[^>]*>.*?</script>", page.read_text(), flags=re.S)
        repeated = {s for s in scripts if scripts.count(s) > 1}
        assert not repeated, f"{page.name}: {sorted(repeated)[0][:120]}"


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


MATH_PAGES = ["01_understanding_transfer_learning", "05_fine_tuning", "08_hyperparameter_search", "09_evaluation", "10_healthcare_pneumonia", "11_agriculture_weeds", "12_manufacturing_tiles", "15_bert_encoder", "16_gpt_decoder"]   # chapters whose prose holds $...$ and $$...$$ math


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


CLICK_THROUGH = """<script>
setTimeout(() => {   // open the 7th transform, then its 3rd picture, as a reader would
  document.querySelectorAll('.jupyter-widget-Collapse-header')[6].click();
  const tab = document.querySelectorAll('.lm-TabBar-tab')[20], box = tab.getBoundingClientRect();
  for (const kind of ['pointerdown', 'pointerup'])
    tab.dispatchEvent(new PointerEvent(kind, {bubbles: true, button: 0, clientX: box.x + 5, clientY: box.y + 5}));
  setTimeout(() => {
    const open = [...document.querySelectorAll('.jupyter-widget-Collapse-contents')]
      .map(e => e.classList.contains('lm-mod-hidden') ? '-' : 'O').join('');
    const tabs = [...document.querySelectorAll('.lm-TabBar-tab')].slice(18, 21)
      .map(e => e.classList.contains('lm-mod-current') ? 'C' : '-').join('');
    document.body.setAttribute('data-clicked', open + ' ' + tabs);
  }, 2000);
}, 6000);
</script></body>"""


def test_augmentation_explorer_is_clickable_offline(html):
    """Chapter 7's explorer (an accordion of transforms, a tab per picture) works from the saved state alone."""
    page = html / "notebooks" / "07_data_augmentation.html"
    text = page.read_text()
    assert "application/vnd.jupyter.widget-state+json" in text and not CDN.search(text)
    assert text.count('"model_name": "ImageModel"') == 24          # 8 transforms x 3 pictures, stored in the page
    dom = rendered_dom(page)
    for title in ["RandomResizedCrop", "TrivialAugmentWide", "AugMix"]:
        assert title in dom, title
    assert re.search(r"TabBar-tabLabel[^>]*>tile \(blowhole\)<", dom)
    assert re.search(r"<img[^>]+src=\"(blob:|data:image/jpeg)", dom), "no picture strip rendered"
    clicked = page.with_name("07_clicked.html")                      # beside it, so _static/ resolves
    clicked.write_text(text.replace("</body>", CLICK_THROUGH))
    try:
        result = re.search(r'data-clicked="([^"]*)"', rendered_dom(clicked, budget_ms=20000))
    finally:
        clicked.unlink()
    assert result and result.group(1) == "------O- --C", result and result.group(1)


def test_a_page_that_glues_from_a_notebook_is_rebuilt_when_the_notebook_changes(tmp_path):
    # book/_ext/cross_glue.py: an incremental build re-pastes course.md's CPU times after a notebook is re-run
    import importlib.util

    spec = importlib.util.spec_from_file_location("cross_glue", ROOT / "book" / "_ext" / "cross_glue.py")
    cross_glue = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cross_glue)
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book" / "course.md").write_text("| 5 | {glue:text}`/notebooks/05.ipynb::runtime_s:.0f` |")
    (tmp_path / "book" / "intro.md").write_text("no glue from elsewhere: {glue:text}`n`")
    (tmp_path / "notebooks" / "05.ipynb").write_text("{}")

    class Env:  # the four things the hook asks of Sphinx's BuildEnvironment
        found_docs = {"book/course", "book/intro", "notebooks/05"}

        def doc2path(self, doc):
            return tmp_path / (doc + (".ipynb" if doc.startswith("notebooks/") else ".md"))

        def relfn2path(self, ref, docname):
            return ref, str(tmp_path / ref.lstrip("/"))

        def path2doc(self, path):
            return str(Path(path).relative_to(tmp_path).with_suffix(""))

    assert cross_glue.outdated(None, Env(), set(), {"notebooks/05"}, set()) == ["book/course"]
    assert cross_glue.outdated(None, Env(), set(), {"book/intro"}, set()) == []
