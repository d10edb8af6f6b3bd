#!/usr/bin/env python
"""List exported notebook cells longer than a limit (60 lines by default), per notebook.

    python tools/long_cells.py [--limit N] [NOTEBOOK_OR_FOLDER ...]

An exported cell is a code cell with an nbdev `#| export`, `#| exports` or `#| exporti` directive among
its leading `#|` lines. Its length is its number of source lines, directives included. A cell is named
by the first class, function or variable it defines (or the first line of code if it defines none), so
that a listing stays readable when cells move. Exits with status 1 if any cell is too long.
tests/test_docs_config.py runs the same check over every notebook.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60
_DIRECTIVE = re.compile(r"^\s*#\|\s*(\S+)")
_EXPORTS = {"export", "exports", "exporti"}
_DEFINES = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)|^([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")


class LongCell(NamedTuple):
    notebook: str  # path relative to the repository root, with forward slashes
    index: int  # position of the cell in the notebook (0-based, counting every cell)
    lines: int  # source lines, directives included
    name: str  # the first name the cell defines


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_exported(source: str) -> bool:
    "Whether a code cell's source carries an nbdev export directive among its leading `#|` lines."
    for line in source.splitlines():
        m = _DIRECTIVE.match(line)
        if m is None:
            if line.strip():
                return False
            continue
        if m.group(1).rstrip(":") in _EXPORTS:
            return True
    return False


def first_name(source: str) -> str:
    "The first top-level class, function or variable a cell defines; else its first line of code."
    code = [ln for ln in source.splitlines() if ln.strip() and not _DIRECTIVE.match(ln)]
    for line in code:
        m = _DEFINES.match(line)
        if m:
            return m.group(1) or m.group(2)
    return code[0].strip() if code else ""


def exported_cells(notebook: Path) -> list[tuple[int, int, str]]:
    "`(index, lines, name)` of every exported code cell of a notebook."
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{notebook}: not a readable notebook ({e})") from None
    out = []
    for i, cell in enumerate(cells):
        src = _source(cell)
        if cell.get("cell_type") == "code" and is_exported(src):
            out.append((i, len(src.splitlines()), first_name(src)))
    return out


def notebooks(paths) -> list[Path]:
    "Notebooks named or found (recursively) under folders, sorted; checkpoints and hidden folders skipped."
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [f for f in p.rglob("*.ipynb") if not any(part.startswith(".") for part in f.parts)]
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise ValueError(f"{p}: not a notebook or a folder")
    return sorted(set(found))


def _relative(p: Path) -> str:
    try:
        return p.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return p.as_posix()


def long_cells(paths=(ROOT / "nbs",), limit: int = LIMIT) -> list[LongCell]:
    "Every exported cell of more than `limit` lines in the notebooks under `paths`."
    return [LongCell(_relative(nb), i, n, name)
            for nb in notebooks(paths) for i, n, name in exported_cells(nb) if n > limit]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", default=[str(ROOT / "nbs")], help="notebooks or folders (default: nbs)")
    ap.add_argument("--limit", type=int, default=LIMIT, help=f"most lines an exported cell may have ({LIMIT})")
    args = ap.parse_args(argv)
    try:
        found = long_cells(args.paths, args.limit)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = None
    for c in found:
        if c.notebook != last:
            print(c.notebook)
            last = c.notebook
        print(f"  cell {c.index:3d}: {c.lines:4d} lines  {c.name}")
    print(f"{len(found)} exported cell(s) over {args.limit} lines" if found
          else f"no exported cell over {args.limit} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
