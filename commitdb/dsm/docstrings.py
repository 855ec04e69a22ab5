"""Verbatim doc strings of DSM declarations, as the definitions keep them."""

from __future__ import annotations

import inspect

__all__ = ("normalize_doc",)


def normalize_doc(doc: str | None) -> str | None:
    """Normalize a verbatim doc string: strip surrounding blank space and common indentation.

    Args:
        doc: The text between the triple quotes, or None.

    Returns:
        The cleaned text (trailing blanks removed from each line), or None when empty.
    """
    if doc is None:
        return None
    text = "\n".join(line.rstrip() for line in inspect.cleandoc(doc).split("\n")).strip()
    return text or None
