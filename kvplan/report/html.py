"""One self-contained HTML report of a plan (PNG plots embedded as base64)."""

from __future__ import annotations

import base64
import html


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(title: str, summary: list[str], tables: dict[str, tuple[list[str], list[list[str]]]],
           images: dict[str, bytes], settings: dict[str, str]) -> str:
    """The report: summary sentences, tables (headers, formatted rows), images and engine
    settings blocks."""
    parts = [f"<h1>{html.escape(title)}</h1>", "<ul>"]
    parts += [f"<li>{html.escape(s)}</li>" for s in summary] + ["</ul>"]
    for name, png in images.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{html.escape(name)}</h2><img src='data:image/png;base64,{data}'>")
    for name, (headers, rows) in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_table(headers, rows)}")
    for name, text in settings.items():
        parts.append(f"<h2>{html.escape(name)}</h2><pre>{html.escape(text)}</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
