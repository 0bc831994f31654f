"""User-supplied text in the UI: shown as text, never interpreted as Markdown.

Rationales, concept and class names, case ids, actor names, data-set names and error messages
(which quote user input) come from people and files outside the server. Streamlit renders
Markdown in ``st.markdown``, ``st.caption``, alert boxes, subheaders and widget labels — links,
images (which the browser fetches: a beacon), ``:color[]`` directives and LaTeX. Where a
Markdown element is needed, :func:`md` escapes the user's part; otherwise use ``st.text``.
"""

from __future__ import annotations

import re
import string

__all__ = ["md"]

_PUNCT = re.compile("([" + re.escape(string.punctuation) + "])")


def md(value: object) -> str:
    """``value`` as Markdown that displays literally: every ASCII punctuation character is
    backslash-escaped (CommonMark), so no link, image, emphasis, HTML, directive, LaTeX or
    autolinked URL/e-mail can form; line breaks become spaces."""
    text = " ".join(str(value).split())
    return _PUNCT.sub(r"\\\1", text)
