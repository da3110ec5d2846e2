"""One line length for the library, the tests, the benchmarks and the chapters'
code cells: the 79 columns of ``[tool.ruff]`` in pyproject.toml, which is what
the book's text column shows without scrolling."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_line_fits_79_columns():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--select",
            "E501",
            "--output-format",
            "concise",
            "vaelib",
            "tests",
            "benchmarks",
            "book",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
