"""Blocks of a Markdown page that a program writes, between a pair of HTML comments.

A block is what a page quotes from a committed artifact or from the code, so that the page
never holds a copy typed by hand:

    <!-- NAME: written by tools/TOOL.py from SOURCE -->
    ...the block, rewritten by the tool...
    <!-- /NAME -->

NAME has no spaces (``wall-times``, ``facts:ablation-runs``); the note after ``NAME: `` says
who writes the block and from what, for the reader of the page's source. Both comments stand on
lines of their own. The tool rewrites both marker lines and everything between them; its check
mode compares what it would write with what is there (tools/docs_facts.py, tools/wall_times.py).
"""

from __future__ import annotations

import re

from lenet_compare.core.errors import PipelineError

_BEGIN = re.compile(r"^<!-- (?P<name>[A-Za-z][\w.:-]*?)(?:: (?P<note>[^\n]*?))? -->$", re.MULTILINE)


def begin_marker(name: str, note: str = "") -> str:
    return f"<!-- {name}: {note} -->" if note else f"<!-- {name} -->"


def end_marker(name: str) -> str:
    return f"<!-- /{name} -->"


def _span(text: str, name: str) -> tuple[int, int]:
    """(start of the begin line, end of the end line) of the one block called ``name``."""
    begins = [m for m in _BEGIN.finditer(text) if m["name"] == name]
    end = re.compile(rf"^{re.escape(end_marker(name))}$", re.MULTILINE)
    ends = list(end.finditer(text))
    if len(begins) != 1 or len(ends) != 1 or begins[0].start() > ends[0].start():
        raise PipelineError(
            f"the page needs exactly one pair of markers for the block {name!r}, "
            f"{begin_marker(name, '...')!r} ... {end_marker(name)!r}, in that order, each on a line of its own "
            f"(found {len(begins)} and {len(ends)})"
        )
    return begins[0].start(), ends[0].end()


def names(text: str) -> list[str]:
    """The names of the blocks that ``text`` opens, in order (a name twice is listed twice)."""
    return [m["name"] for m in _BEGIN.finditer(text) if not m["name"].startswith("/")]


def block(text: str, name: str) -> str:
    """The block called ``name`` as it stands in ``text``, its two marker lines included."""
    start, stop = _span(text, name)
    return text[start:stop]


def write(name: str, body: str, note: str = "") -> str:
    """The block called ``name`` holding ``body``, with its two marker lines."""
    return f"{begin_marker(name, note)}\n{body.strip(chr(10))}\n{end_marker(name)}"


def replace(text: str, name: str, body: str, note: str = "") -> str:
    """``text`` with the block called ``name`` (markers included) rewritten to hold ``body``."""
    start, stop = _span(text, name)
    return text[:start] + write(name, body, note) + text[stop:]
