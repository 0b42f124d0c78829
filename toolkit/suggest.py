"""Hints for names a user got wrong: the close match, and what would be accepted."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(
    name: str,
    known: Iterable[str],
    *,
    listing: str = "known",
    listed: Iterable[str] | None = None,
    otherwise: str | None = None,
) -> str:
    """``did you mean 'url'? known: url, context``, or just the list when nothing is close.

    ``known`` are the names matched against; ``listed`` the ones shown (default: ``known``;
    aliases are matched but not listed), under the label ``listing``. ``otherwise`` replaces the
    list with a hint of its own (``add it with --add 3.9``).
    """
    import difflib  # only when a name was wrong: off every command's start-up path

    choices = list(dict.fromkeys(known))
    close = difflib.get_close_matches(name, choices, n=1)
    shown = list(dict.fromkeys(listed)) if listed is not None else choices
    tail = otherwise if otherwise is not None else f"{listing}: {', '.join(shown) or 'none'}"
    return f"did you mean {close[0]!r}? {tail}" if close else tail
