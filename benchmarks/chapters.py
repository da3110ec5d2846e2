"""Seconds to execute each chapter top to bottom in a fresh kernel, as nbval
does (progress bars off), against its budget on 2 cores: Part I (chapters 1-5)
30 s each, Part II (6-9) 45 s each but chapter 8 60 s, Part III (10-12) 60 s
each, and the whole book 8 minutes. Prints numbers; writes nothing back to the
notebooks. Measure on a fresh clone with the machine otherwise idle.

    .venv/bin/python benchmarks/chapters.py [book/03_importance_sampling.ipynb]
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PARTS = {
    "Part I": range(1, 6),
    "Part II": range(6, 10),
    "Part III": (10, 11, 12),
}
BUDGET = {"Part I": 30, "Part II": 45, "Part III": 60}  # seconds per chapter
EXCEPTIONS = {8: 60}  # chapter 8 has 60 s
BOOK_BUDGET = 8 * 60


def part(number):
    return next(name for name, chapters in PARTS.items() if number in chapters)


def main(paths):
    os.environ["VAEBOOK_PROGRESS"] = "0"  # the kernel inherits it, as nbval
    paths = [Path(p) for p in paths] or sorted(
        (ROOT / "book").glob("[0-9]*.ipynb")
    )
    totals = {}
    for path in paths:
        number = int(path.name[:2])
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        seconds = time.perf_counter() - start
        name = part(number)
        totals[name] = totals.get(name, 0.0) + seconds
        budget = EXCEPTIONS.get(number, BUDGET[name])
        verdict = "ok" if seconds <= budget else "OVER"
        print(
            f"{path.name:40s} {seconds:6.1f} s  (budget {budget} s) {verdict}"
        )
    for name, seconds in totals.items():
        print(f"{name + ' total':40s} {seconds:6.1f} s")
    total = sum(totals.values())
    print(f"{'total':40s} {total:6.1f} s  (budget {BOOK_BUDGET} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
