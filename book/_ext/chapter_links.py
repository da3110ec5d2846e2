"""Sphinx extension for the API page: "Chapter N" in a vaelib docstring becomes
a link to that chapter, so every entry points at the text that derives it."""

import re
from pathlib import Path

_BOOK = Path(__file__).resolve().parent.parent
_CHAPTERS = {int(p.name[:2]): p.stem for p in _BOOK.glob("[0-9][0-9]_*.ipynb")}


def _link(match):
    n = int(match.group(1))
    return (
        f":doc:`Chapter {n} <{_CHAPTERS[n]}>`"
        if n in _CHAPTERS
        else match.group(0)
    )


def _process(app, what, name, obj, options, lines):
    lines[:] = [re.sub(r"Chapter (\d+)", _link, line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True}
