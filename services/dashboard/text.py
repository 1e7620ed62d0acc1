"""Untrusted text made safe for Streamlit's Markdown (pure: no Streamlit).

Streamlit renders Markdown in ``st.markdown`` and captions, but also in
subheaders, alerts, metric labels *and values*, expander labels and help
tooltips. Labels, names and errors that arrive over MQTT or from files on disk
(a model spec's labels, a service's counters, a manifest's subject) are any
string: ``![x](http://elsewhere/pixel.png)`` would make every viewer's browser
fetch an outside address, and ``[log in again](http://...)`` would put a link
on the page. Every such string goes through :func:`md` (plain text) or
:func:`code` (an inline code span) before it is shown.
"""

from __future__ import annotations

import re
import unicodedata

MAX_SHOWN = 200  # characters of one untrusted string on the page
# Characters that open Markdown, GFM or Streamlit constructs (links and images,
# emphasis, HTML, autolinks such as www.x or http://x, directives :red[..] and
# :material/..:, LaTeX $..$). '-' and '+' open a list only at the start of a line.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>!#|~$:&^=.])")
_LEADING = re.compile(r"^([-+])")


def _plain(value: object, limit: int) -> str:
    """One line of ``value``: control and format characters become spaces, cut at ``limit``."""
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as literal text inside Markdown (every special character backslash-escaped)."""
    return _LEADING.sub(r"\\\1", _SPECIAL.sub(r"\\\1", _plain(value, limit)))


def code(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as an inline code span (nothing inside is interpreted; backticks become ')."""
    return "`" + _plain(value, limit).replace("`", "'") + "`"
