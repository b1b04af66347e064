"""What text OPUS can carry: values end up in XML 1.0, UTF-8 and shell variables."""

from __future__ import annotations

import unicodedata

_ALLOWED_CONTROLS = frozenset("\t\n\r")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (in XML, a shell variable), or None if it can.

    XML 1.0 cannot carry control characters other than tab, newline and carriage return,
    nor lone surrogates (which also cannot be written as UTF-8).
    """
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            return f"contains the control character {char!r}"
        if category == "Cs" or char in "\ufffe\uffff":
            return f"contains the invalid character {char!r}"
    return None


def printable(value: str, replacement: str = "\ufffd") -> str:
    """``value`` with every character XML cannot carry replaced (a script's colour
    codes in an error message, say)."""
    return "".join(replacement if text_problem(char) else char for char in value)
