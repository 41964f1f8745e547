"""Markdown and HTML from the report's one jinja2 template, with every inserted value escaped.

The template (templates/report.md.j2) is rendered as Markdown: ``finalize`` escapes every
``{{ value }}`` for Markdown unless it is marked :class:`Markdown` (code spans, code blocks,
figure links). The HTML page is that Markdown rendered by markdown-it with raw HTML off, so any
``<`` left in a value becomes ``&lt;``, inside templates/page.html.j2 (autoescaped).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from lenet_compare.core.numbers import percent_from_fraction, signed_points
from lenet_compare.report.common import format_margin, format_p

TEMPLATES = Path(__file__).parent / "templates"


class Markdown(str):
    """Text that is already Markdown: the template's finalize leaves it as it is."""


# What could start Markdown or HTML syntax inside a line of text (CommonMark lets any ASCII
# punctuation be backslash-escaped): always the inline markers, the rest only where they act
# (a tag needs a letter after "<", an entity a name and ";", a list item a space after "-").
# Escaping these shows every string from params or run files as plain text in the .md, and
# markdown-it (raw HTML off) HTML-escapes what is left for the .html.
_MD_SPECIAL = re.compile(
    r"[\\`*\[\]|~$]"  # emphasis, code, links, table cells, strikethrough and math (GitHub)
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # "_" only where it could open or close emphasis
    r"|<(?=[A-Za-z/!?])|&(?=#?\w+;)|!(?=\[)"  # raw HTML, entities, images
    r"|^[>#]|^[-+](?=\s|$)|(?<=^\d)[.)](?=\s|$)|(?<=^\d\d)[.)](?=\s|$)"  # block starts: quote, heading, lists
)


def md_escape(value) -> str:
    text = re.sub(r"\s+", " ", str(value))  # a newline would end a table row
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _finalize(value):
    if value is None:
        return "n/a"
    if isinstance(value, Markdown):
        return value
    return md_escape(value)


def _percent_from_fraction(fraction, digits: int = 2) -> str:
    """A fraction shown as percent with two decimals (no % sign)."""
    return "n/a" if fraction is None else f"{percent_from_fraction(fraction):.{digits}f}"


def _points_from_fraction(fraction, digits: int = 2) -> str:
    """A difference of fractions in signed percentage points."""
    return signed_points(percent_from_fraction(fraction), digits)


def _fixed(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _value(value) -> str:
    """A value from a file for a reader: 61,706 for ints, true / false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    return "n/a" if value is None else str(value)


def _yaml_value(value) -> str:
    """A params value written the way params.yaml writes it (shared, true, [2, 0], 1e-08)."""
    return value if isinstance(value, str) else json.dumps(value)


def _code(text: str, lang: str = "") -> Markdown:
    """A fenced code block whose fence is longer than any backtick run inside."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markdown(f"{fence}{lang}\n{text.rstrip()}\n{fence}")


def _code_span(text) -> Markdown:
    text = " ".join(str(text).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markdown(f"{ticks}{pad}{text}{pad}{ticks}")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # Markdown, escaped by finalize; the HTML page template escapes itself
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        percent_from_fraction=_percent_from_fraction,
        points_from_fraction=_points_from_fraction,
        fixed=_fixed,
        p=format_p,
        margin=format_margin,
        code=_code,
        code_span=_code_span,
        value=_value,
        signed=signed_points,  # a value already in points
        yaml_value=_yaml_value,
        markdown=Markdown,
    )
    return env


def image_link(alt: str, src: str) -> Markdown:
    """A Markdown image; the destination goes in <...>, so spaces and parentheses in a path keep it whole."""
    if "\n" in src or "\r" in src:
        raise ValueError(f"an image path cannot hold a line break: {src!r}")
    dest = re.sub(r"[\\<>]", lambda m: "\\" + m.group(0), src)  # the only specials inside <...>
    return Markdown(f"![{md_escape(alt.replace('_', ' '))}](<{dest}>)")


def md_link(text: str, dest: str) -> Markdown:
    """A Markdown link with escaped text; the destination goes in <...>, like image_link's."""
    if "\n" in dest or "\r" in dest:
        raise ValueError(f"a link cannot hold a line break: {dest!r}")
    dest = re.sub(r"[\\<>]", lambda m: "\\" + m.group(0), dest)
    return Markdown(f"[{md_escape(text)}](<{dest}>)")


def markdown_to_html(markdown: str, title: str) -> str:
    """The Markdown as one self-contained HTML page (raw HTML in the Markdown stays escaped)."""
    md = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")
    body = md.render(markdown)
    page = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    ).get_template("page.html.j2")
    return page.render(title=title, body=Markup(body))


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
