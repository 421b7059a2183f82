"""Text from file names, shown safely: escaped for logs and terminals, neutralised for spreadsheets.

A file name may hold newlines (which forge lines in ``batch.log``), terminal escape sequences
(which recolour or rewrite a terminal) and bidirectional overrides (which reorder what is shown).
:func:`printable` escapes all of them; :class:`EscapingFormatter` does it for every log record.
A CSV cell starting with ``=``, ``+``, ``-``, ``@`` (or their full-width forms, which some
spreadsheets read as the same), or with any control character (tab, carriage return, ESC, NUL...)
may be taken for a formula or mangled by a spreadsheet; :func:`csv_cell` makes it text (OWASP's
advice: prefix a single quote). Every CSV wsi-screen writes passes its text cells through it.
"""

from __future__ import annotations

import logging
import re
import unicodedata

FORMULA_START_RE = r"^[=+\-@\uff0b\uff0d\uff1d\uff20\x00-\x1f\x7f-\x9f]"
r"""A regular expression matching a text that starts as a spreadsheet formula (see :func:`csv_cell`).

Control characters are every Unicode ``Cc`` (``\x00``-``\x1f``, ``\x7f``-``\x9f``); written with
escapes that Python's ``re`` and polars' (Rust) regex engine both read.
"""
_FORMULA_START = re.compile(FORMULA_START_RE)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def printable(text: object, *, keep_newlines: bool = False) -> str:
    r"""``str(text)`` with control characters, line separators and bidi overrides escaped (``\x1b``).

    Args:
        text: anything; converted with ``str``.
        keep_newlines: leave ``\n`` as it is (for multi-line text of our own, such as tracebacks).

    Example:
        >>> printable("a\nb\x1b[31m")
        'a\\x0ab\\x1b[31m'
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(_escape(c) if _unsafe(c) and not (keep_newlines and c == "\n") else c for c in s)


def csv_cell(value: str) -> str:
    r"""``value`` as a spreadsheet shows it as text: a leading ``'`` before a formula character.

    Example:
        >>> csv_cell("=cmd|' -c calc'!A0.png")
        "'=cmd|' -c calc'!A0.png"
        >>> csv_cell("\x1b[31mred.png")
        "'\x1b[31mred.png"
    """
    return "'" + value if _FORMULA_START.match(value) else value


class EscapingFormatter(logging.Formatter):
    """A logging formatter that escapes control characters in every message and traceback.

    The record's own message and arguments are left untouched (other handlers see them as logged).
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  # logging's name
        """Format with the message escaped."""
        message = record.message
        record.message = printable(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: object) -> str:  # noqa: N802  # logging's name
        """Format a traceback, escaping all but its own line breaks."""
        return printable(super().formatException(ei), keep_newlines=True)  # type: ignore[arg-type]
