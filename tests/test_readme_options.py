"""The README's options table names exactly the options of the one option table
(node/config.py OPTIONS): an option added there without a README row, or a row for an
option that does not exist, fails here."""

from __future__ import annotations

import re
from pathlib import Path

from node.config import OPTIONS

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_options(text: str) -> list[str]:
    """Every ``--name`` in the first cell of a table row that starts with an option."""
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("| `--"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`--([a-z0-9-]+)`", first_cell)
    return names


def test_readme_lists_every_option_once_and_no_other() -> None:
    names = readme_options(README.read_text())
    assert sorted(names) == sorted(set(names)), "an option has two rows"
    assert set(names) == set(OPTIONS), (
        f"missing from the README: {sorted(set(OPTIONS) - set(names))}; "
        f"not options: {sorted(set(names) - set(OPTIONS))}")


def test_readme_options_reads_the_first_cell_only() -> None:
    text = ("| `--a-b`, `--c` | `1` | like `--d` |\n| option | default | what |\n"
            "text `--e`\n")
    assert readme_options(text) == ["a-b", "c"]
