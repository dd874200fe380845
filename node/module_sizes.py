"""How many product modules fall in each line-count band (docs/ARCHITECTURE.md shows it).

    python -m node.module_sizes [--list]

Counts every line of every ``.py`` file of the product packages (not ``loadtest``, not the
tests); ``--list`` also names the modules over 300 lines, the ones to split by concern.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from pathlib import Path

PRODUCT_PACKAGES = ("flagmodel", "bus", "store", "streamer", "ingest", "insights", "node")
BANDS = ((1, 100), (101, 200), (201, 300), (301, 400), (401, 600), (601, None))
SPLIT_ABOVE = 300


def band_label(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high is not None else f"{low}+"


def module_lines(root: Path, packages: Iterable[str] = PRODUCT_PACKAGES) -> dict[str, int]:
    """Module path (relative to ``root``) -> its line count; empty ``__init__.py`` files are
    left out (they hold no code)."""
    out: dict[str, int] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines:
                out[path.relative_to(root).as_posix()] = lines
    return out


def distribution(sizes: Mapping[str, int]) -> list[tuple[str, int]]:
    """(band, number of modules) for every band, in order, zeros included."""
    return [(band_label(low, high),
             sum(1 for n in sizes.values() if n >= low and (high is None or n <= high)))
            for low, high in BANDS]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help=f"name the modules over {SPLIT_ABOVE}")
    args = ap.parse_args(argv)
    sizes = module_lines(Path(__file__).resolve().parents[1])
    print(f"{len(sizes)} modules, {sum(sizes.values())} lines "
          f"({', '.join(PRODUCT_PACKAGES)})")
    print("| lines | modules |\n| --- | --- |")
    for label, count in distribution(sizes):
        print(f"| {label} | {count} |")
    if args.list:
        for name, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
            if n > SPLIT_ABOVE:
                print(f"{n:5d} {name}")


if __name__ == "__main__":
    main()
