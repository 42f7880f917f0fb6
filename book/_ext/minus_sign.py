"""Sphinx extension: a hyphen used as a minus sign in prose becomes a real minus sign (U+2212).

Python formats negative numbers with the ASCII hyphen-minus, so a glued
difference read "-0.038" in the text, a hyphen that is shorter than "+" and
breaks a line after it. Only a hyphen standing alone before a digit changes:
after a space, an opening bracket or the start of a text ("[-0.038", " -2.1
points"); a hyphen inside a word or a range ("blocks 4-6", "1e-5",
"2026-11-28") is left alone. Code, math and the notebooks' outputs (literal
blocks, raw HTML) are never touched, so everything a reader copies still runs.
"""

import re

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

MINUS = "\u2212"
_HYPHEN_BEFORE_DIGIT = re.compile(r"(?<![\w.\-\u2212])-(?=\.?\d)")
_SKIP = (nodes.literal, nodes.math, nodes.FixedTextElement)   # the last: literal, math and doctest blocks, raw


def minus_signs(text: str) -> str:
    """``text`` with each hyphen that stands for a minus sign replaced by U+2212.

    >>> minus_signs("+0.013 [-0.038, +0.065]; blocks 4-6 at 1e-5, (-2 points), -.5")
    '+0.013 [\u22120.038, +0.065]; blocks 4-6 at 1e-5, (\u22122 points), \u2212.5'
    """
    return _HYPHEN_BEFORE_DIGIT.sub(MINUS, text)


def _in_code(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, _SKIP):
            return True
        parent = parent.parent
    return False


class MinusSigns(SphinxPostTransform):
    """Runs after myst-nb has pasted every glued value (its own post-transform has priority 5)."""

    default_priority = 800

    def run(self, **kwargs) -> None:
        for text in list(self.document.findall(nodes.Text)):
            if "-" not in text or _in_code(text):
                continue
            fixed = minus_signs(str(text))
            if fixed != str(text):
                text.parent.replace(text, nodes.Text(fixed))


def setup(app):
    app.add_post_transform(MinusSigns)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
