"""HTML building blocks: escaping, tables, and embedding a plotly figure safely.

Everything that came from a file (algorithm labels, node and trace names, config values,
status messages) goes through ``esc`` before it reaches HTML, and through ``plot_text``
before it reaches a figure: plotly renders a subset of HTML tags in its text, so a label
must reach it entity-escaped to be shown literally.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import plotly.graph_objects as go
import plotly.io as pio

# Shared by every figure so the page looks of a piece.
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Section:
    """One titled part of a report page."""

    id: str  # anchor, a fixed slug such as "accuracy-time"
    title: str  # plain text (escaped by the page)
    body: str  # HTML fragment, already escaped


def esc(value: Any) -> str:
    """Text for HTML element content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def plot_text(value: Any) -> str:
    """Text for a plotly string (trace name, hover text, tick label): entities, not tags."""
    return html.escape(str(value), quote=False)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "data", numeric: Sequence[int] = ()) -> str:
    """A table; every header and cell is escaped. ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element.

    ``plotly.io.to_json`` already writes ``<`` and ``/`` as unicode escapes, but other
    JSON (``json.dumps``) does not, and a ``</script>`` or ``<!--`` inside a string would
    end or confuse the script element. ``\\u003c`` is the same character to JSON.parse
    and to a JavaScript literal, so replacing every ``<`` is always safe.
    """
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def figure_html(fig: go.Figure, name: str, *, height_px: int | None = None) -> str:
    """A div ``fig-<name>`` plus the script that draws ``fig`` into it with the page's one
    plotly.js. ``name`` is a fixed slug chosen by the section (ids stay stable between
    rebuilds of the same folder); each name may appear once per page.

    A figure that fails to draw shows its error in place (and on the console) instead of
    leaving a blank box, so one bad figure does not hide what went wrong.
    """
    if not _SLUG.match(name):
        raise ValueError(f"figure name {name!r}: use lowercase letters, digits and '-'")
    div_id = f"fig-{name}"
    if height_px is not None:
        fig.update_layout(height=height_px)
    payload = script_json(pio.to_json(fig, validate=False))
    height = int(fig.layout.height or 450)
    return (
        f'<div class="plot" id="{div_id}" style="height:{height}px"></div>\n'
        "<script>(function () {\n"
        f'  var el = document.getElementById("{div_id}");\n'
        f"  var fig = {payload};\n"
        f"  try {{ Plotly.newPlot(el, fig.data, fig.layout, {json.dumps(PLOT_CONFIG)}); }}\n"
        "  catch (err) { el.className += ' plot-error'; el.textContent = 'figure failed to draw: ' + err; console.error(err); }\n"
        "})();</script>"
    )


def notes_list(notes: Sequence[str], *, cls: str = "notes") -> str:
    if not notes:
        return ""
    return f'<ul class="{esc(cls)}">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"


def fmt_seconds(value: float | None) -> str:
    """Simulated seconds for a table: three significant figures, or a dash."""
    if value is None:
        return "—"
    return f"{value:,.0f} s" if abs(value) >= 1000 else f"{value:.3g} s"


def fmt_number(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}g}"
