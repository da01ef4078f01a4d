"""The one text layout of every `heatctl` verb that prints: tables and labelled lines that fit
`WIDTH` columns, and the `--wide` option that lifts the limit.

A table's columns are declared once (`Col`). When a table is wider than `WIDTH`, the columns with a
`drop` rank go first (highest rank first: one line per row reads faster than wrapped rows); if it
is still too wide, the column marked `wrap` (the free text: a message, a reason, a description) is
wrapped onto continuation lines under itself.
Nothing is cut: what does not fit is either wrapped or named in a last line that says `--wide`
shows it. A single word longer than the room (a deep path) is never broken: it gets a line of its
own, whole, so that it can be copied. `--wide` prints every row on one line, however wide.
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from typing import Iterable, Sequence

# An 80-column terminal was the old rule; 100 fits a laptop's half screen and a phone's landscape
# ssh client at a readable size, which is where a 3 a.m. call is answered (issue 15).
WIDTH = 100
# The wrapped column never gets narrower than this: below it, wrapping is worse than dropping.
MIN_WRAP = 28
GAP = "  "
# ... and no column is squeezed below this to make a table fit.
MIN_SQUEEZE = 8


@dataclass(frozen=True)
class Col:
    """One column: its title, alignment, and what happens when the table is too wide."""

    title: str
    right: bool = False    # right-aligned (numbers)
    drop: int = 0          # 0: always shown; n > 0: dropped to fit, the highest n first
    wrap: bool = False     # the free-text column that takes the room left, wrapped (one per table)
    cap: int = 0           # > 0: wider cells are wrapped at this width (a value column with lists)


def add_wide_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true",
                   help=f"every column, one line per row, however wide (default: fit {WIDTH} columns)")


def is_wide(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "wide", False))


def render(cols: Sequence[Col], rows: Iterable[Sequence[object]], *, wide: bool = False,
           indent: int = 0, header: bool = True, width: int = WIDTH) -> list[str]:
    """The table as lines. `rows` are sequences of cells (str() of each; None shows as "-")."""
    cells = [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max([len(cols[i].title) if header else 0] + [len(r[i]) for r in cells]) for i in range(len(cols))]
    if not wide:
        widths = [min(w, max(c.cap, len(c.title))) if c.cap else w for c, w in zip(cols, widths)]
    keep = list(range(len(cols)))
    flex = next((i for i, c in enumerate(cols) if c.wrap), None)

    def total(ix: list[int]) -> int:
        return indent + sum(widths[i] for i in ix) + len(GAP) * (len(ix) - 1)

    def room_for_flex(ix: list[int]) -> int:
        return width - total([i for i in ix if i != flex]) - len(GAP)

    dropped: list[str] = []
    if not wide:
        for i in sorted((i for i in keep if cols[i].drop), key=lambda i: -cols[i].drop):
            if total(keep) <= width:
                break
            keep.remove(i)
            dropped.append(cols[i].title.strip() or f"column {i + 1}")
        if flex is not None and total(keep) > width:
            widths[flex] = max(MIN_WRAP, room_for_flex(keep))
        # Last resort (a site name, a path as long as the line): the widest column gives way.
        while total(keep) > width:
            i = max(keep, key=lambda j: widths[j])
            if widths[i] <= MIN_SQUEEZE:
                break
            widths[i] -= 1

    def lines_of(values: list[str]) -> list[str]:
        chunks = []
        for i, v in zip(keep, values):
            chunks.append([v] if len(v) <= widths[i] else wrap_cell(v, widths[i]))
        out = []
        for n in range(max(len(c) for c in chunks)):
            parts = []
            for i, c in zip(keep, chunks):
                v = c[n] if n < len(c) else ""
                parts.append(v.rjust(widths[i]) if cols[i].right else v.ljust(widths[i]))
            out.append((" " * indent + GAP.join(parts)).rstrip())
        return out

    out: list[str] = []
    if header:
        out += lines_of([cols[i].title for i in keep])
    for r in cells:
        out += lines_of([r[i] for i in keep])
    if dropped:
        out.append(" " * indent + f"({', '.join(dropped)}: not shown to fit {width} columns; --wide shows them)")
    return out


def wrap_cell(text: str, width: int) -> list[str]:
    """A cell's text in lines of at most `width`: at spaces, then a long path after its slashes
    (each line but the last ends in "/", so the path reads on), then, last resort, anywhere."""
    out: list[str] = []
    for chunk in textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [""]:
        while len(chunk) > width:
            cut = chunk.rfind("/", 0, width) + 1 or width
            out.append(chunk[:cut])
            chunk = chunk[cut:]
        out.append(chunk)
    return out


def fit_text(text: str, *, wide: bool = False, width: int = WIDTH) -> str:
    """Free-form text (several lines) with each long line wrapped under its own indent + 2."""
    if wide:
        return text
    out = []
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        out += fit(line.lstrip(" "), indent=indent, width=width) if len(line) > width else [line]
    return "\n".join(out)


def labelled(label: str, text: str, *, wide: bool = False, label_width: int = 13, width: int = WIDTH) -> list[str]:
    """`Label        text`, the text wrapped under itself to fit `width` (one line when wide)."""
    head = label.ljust(label_width)
    if wide or len(head) + len(text) <= width:
        return [(head + text).rstrip()]
    return textwrap.wrap(text, width, initial_indent=head, subsequent_indent=" " * label_width,
                         break_on_hyphens=False, break_long_words=False) or [head.rstrip()]


def fit(text: str, *, wide: bool = False, indent: int = 0, hang: int = 2, width: int = WIDTH) -> list[str]:
    """A free line of text wrapped to `width`, continuation lines indented by `hang` more."""
    if wide or len(text) + indent <= width:
        return [" " * indent + text]
    return textwrap.wrap(text, width, initial_indent=" " * indent, subsequent_indent=" " * (indent + hang),
                         break_on_hyphens=False, break_long_words=False)
