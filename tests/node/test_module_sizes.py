"""The module-size distribution (node/module_sizes.py): bands, empty files, band edges."""

from __future__ import annotations

from pathlib import Path

from node.module_sizes import distribution, module_lines


def test_bands_count_every_module_once_edges_included() -> None:
    sizes = {"a.py": 1, "b.py": 100, "c.py": 101, "d.py": 300, "e.py": 301, "f.py": 601}
    assert distribution(sizes) == [("1-100", 2), ("101-200", 1), ("201-300", 1),
                                   ("301-400", 1), ("401-600", 0), ("601+", 1)]


def test_module_lines_reads_packages_and_skips_empty_files(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "m.py").write_text("x = 1\ny = 2\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "n.py").write_text("z = 3\n")
    assert module_lines(tmp_path, ("pkg",)) == {"pkg/sub/m.py": 2}
