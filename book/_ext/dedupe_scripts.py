"""Sphinx extension: emit each <script> of a page once.

Jupyter Book 1.x registers sphinx-thebe's and sphinx-togglebutton's inline
configuration scripts twice, so every page declared ``const THEBE_JS_URL``
twice and the browser logged "Identifier 'THEBE_JS_URL' has already been
declared". This drops the repeats (same file, or same inline body, and same
attributes) before the page is written; the first copy keeps its place.
"""


def _key(script):
    filename = getattr(script, "filename", script)  # inline scripts: None or "", body in attributes
    attributes = getattr(script, "attributes", {})
    return str(filename or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))  # None == ""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
