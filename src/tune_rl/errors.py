"""Errors written for the person who made the mistake."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(ValueError):
    """Bad input: a spec, a flag or a space value. The CLI exits with code 2."""


def unknown(what: str, value: object, allowed: Iterable[str]) -> UsageError:
    """`unknown algorithm 'Rainbow': expected one of ...; did you mean 'Rainbow_DQN'?`"""
    allowed = list(allowed)
    message = f"unknown {what} {value!r}: expected one of {', '.join(allowed)}"
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
    if not close:
        lowered = {a.lower(): a for a in allowed}
        close = [lowered[str(value).lower()]] if str(value).lower() in lowered else []
    if close:
        message += f"; did you mean {close[0]!r}?"
    return UsageError(message)
