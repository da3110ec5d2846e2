"""Seconds to execute each chapter top to bottom in a fresh kernel (the target is
<= 60 s each on 2 cores). Prints numbers; writes nothing back to the notebooks.

    .venv/bin/python benchmarks/chapters.py [book/03_importance_sampling.ipynb ...]
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main(paths):
    paths = [Path(p) for p in paths] or sorted((ROOT / "book").glob("[0-9]*.ipynb"))
    total = 0.0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{path.name:40s} {seconds:6.1f} s")
    print(f"{'total':40s} {total:6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
