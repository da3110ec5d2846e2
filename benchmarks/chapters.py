"""Seconds to execute each chapter top to bottom in a fresh kernel, as nbval
does (progress bars off), with the budget each part has on 2 cores: Part I
(chapters 1-5) <= 60 s per chapter; Part II (6-9) <= 90 s per chapter and <= 5
minutes together. Prints numbers; writes nothing back to the notebooks.

    .venv/bin/python benchmarks/chapters.py [book/03_importance_sampling.ipynb
    ...]
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PART_II = 6  # first chapter of Part II
BUDGET = {"Part I": 60, "Part II": 90}  # seconds per chapter


def part(path):
    return "Part II" if int(path.name[:2]) >= PART_II else "Part I"


def main(paths):
    os.environ["VAEBOOK_PROGRESS"] = (
        "0"  # the kernel inherits it: no bars, as under nbval
    )
    paths = [Path(p) for p in paths] or sorted(
        (ROOT / "book").glob("[0-9]*.ipynb")
    )
    totals = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        seconds = time.perf_counter() - start
        totals[part(path)] = totals.get(part(path), 0.0) + seconds
        print(
            f"{path.name:40s} {seconds:6.1f} s  (budget {BUDGET[part(path)]} "
            f"s)"
        )
    for name, seconds in totals.items():
        print(f"{name + ' total':40s} {seconds:6.1f} s")
    print(f"{'total':40s} {sum(totals.values()):6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
