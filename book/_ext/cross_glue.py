"""Sphinx extension: a page that glues values from other documents is rebuilt when they change.

myst-nb pastes ``{glue:text}`/notebooks/05_fine_tuning.ipynb::runtime_s``` when the
page is written, but an incremental build writes only the pages whose own source
changed: after a notebook was re-executed, ``book/course.md`` kept showing its old
time. This marks a Markdown page outdated whenever a document it glues from was
added or changed, so its values are pasted again.
"""

import re
from pathlib import Path

_CROSS_GLUE = re.compile(r"\{glue(?::\w+)?\}`([^`]+?)::")


def glued_from(text: str) -> set[str]:
    """The documents a page's source glues values from (as written, before resolving).

    >>> sorted(glued_from("{glue:text}`/notebooks/a.ipynb::x:.0f` and {glue}`b.ipynb::y`, {glue:text}`z`"))
    ['/notebooks/a.ipynb', 'b.ipynb']
    """
    return set(_CROSS_GLUE.findall(text))


def outdated(app, env, added, changed, removed):
    touched = set(added) | set(changed)
    stale = []
    for docname in sorted(env.found_docs - touched):
        path = Path(env.doc2path(docname))
        if path.suffix != ".md":
            continue
        for ref in glued_from(path.read_text(encoding="utf-8")):
            _, filepath = env.relfn2path(ref, docname)
            if env.path2doc(filepath) in touched:
                stale.append(docname)
                break
    return stale


def setup(app):
    app.connect("env-get-outdated", outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
