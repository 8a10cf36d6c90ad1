"""A small document model for generated reports: headings, paragraphs, lists, tables and figures,
written both as Markdown (for the repository) and as one self-contained-looking HTML page (for a browser).
Inline text may hold `code` and [links](target); everything else is escaped."""
from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastst.atomic import atomic_path

_CSS = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
        "table{border-collapse:collapse;margin:0.6rem 0}td,th{border:1px solid #ccc;padding:0.2rem 0.5rem;"
        "text-align:left}th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 0.2rem}")


def fmt(x: float | str | None, digits: int = 3) -> str:
    """A number as the report prints it: 3 significant digits, exponents without '+' or leading zeros
    (3.12e10, 4e-5); missing or non-finite values as '–'."""
    try:
        x = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(x):
        return "–"
    text = f"{x:.{digits}g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)


@dataclass
class Report:
    """An ordered list of blocks, rendered to Markdown or HTML."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append((f"h{level}", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", ([str(h) for h in header], [[str(c) for c in r] for r in rows])))

    def image(self, path: str, alt: str) -> None:
        self.blocks.append(("img", (path, alt)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind.startswith("h"):
                out += ["#" * int(kind[1:]) + f" {value}", ""]
            elif kind == "p":
                out += [str(value), ""]
            elif kind == "ul":
                out += [f"- {item}" for item in value] + [""]  # type: ignore[union-attr]
            elif kind == "table":
                header, rows = value  # type: ignore[misc]
                out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows] + [""]
            elif kind == "img":
                path, alt = value  # type: ignore[misc]
                out += [f"![{alt}]({path})", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind.startswith("h"):
                body.append(f"<{kind}>{_inline(str(value))}</{kind}>")
            elif kind == "p":
                body.append(f"<p>{_inline(str(value))}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")  # type: ignore[union-attr]
            elif kind == "table":
                header, rows = value  # type: ignore[misc]
                head = "".join(f"<th>{_inline(h)}</th>" for h in header)
                cells = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><tr>{head}</tr>{cells}</table>")
            elif kind == "img":
                path, alt = value  # type: ignore[misc]
                body.append(f'<p><img src="{html.escape(path)}" alt="{html.escape(alt)}"></p>')
        return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Write PATH (Markdown) and PATH with .html beside it, atomically; links stay relative."""
        path = Path(path)
        for target, text in ((path, self.markdown()), (path.with_suffix(".html"), self.html())):
            with atomic_path(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
        return path


def _inline(text: str) -> str:
    """Escape, then turn `code` and [text](link) (link targets ending in .md become .html) into HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                  lambda m: f'<a href="{re.sub(r"[.]md$", ".html", m.group(2))}">{m.group(1)}</a>', out)
