"""Make arbitrary client input safe to quote inside a one-line Spanish message.

Why: error messages echo what the client sent (``El RFC "..." ...``). The values
are not escaped (the messages are JSON strings, and the JSON encoder does the
escaping), but a message must stay one readable line of bounded size whatever
the client sends: newlines, NULs, bidi overrides or a megabyte-long string.
"""

from __future__ import annotations

import unicodedata

MAX_SHOWN_CHARS = 40
ELLIPSIS = "…"

# Unicode categories that break or disguise a single line of text:
# Cc controls (\n, \r, \t, NUL, NEL), Cf format characters (bidi overrides,
# zero-width), Zl/Zp line and paragraph separators, Cs lone surrogates (which
# cannot even be encoded as UTF-8).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def shown(value: object) -> str:
    """Return *value* as it should appear quoted inside a message.

    Characters in unsafe categories become ``?``; text longer than
    ``MAX_SHOWN_CHARS`` is cut to that many characters, the last being ``…``.
    Truncation happens first so huge inputs cost O(40), not O(len).
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - 1] + ELLIPSIS
    return "".join("?" if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
