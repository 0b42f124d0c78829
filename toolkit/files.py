"""Staged, atomic, all-or-nothing writes (the command layer's owner of file writes).

The smallest stand-in until the restructuring of issue 7 lands: the functions live in
toolkit/render.py today.
"""

from __future__ import annotations

from toolkit.render import write_atomic, write_files

__all__ = ["write_atomic", "write_files"]
