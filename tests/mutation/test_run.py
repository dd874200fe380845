"""tests/mutation/run.py reads mutmut's results and names every stale `equivalent` entry."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mutation.run import ModuleSpec, read_score, stale_report

F = "flagmodel.values.x_f__mutmut_"


def _score(tmp_path: Path, codes: dict[str, int | None], equivalent: set[str]) -> list[str]:
    meta = tmp_path / "mutants" / "flagmodel" / "values.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}), "utf-8")
    spec = ModuleSpec("flagmodel/values.py", ("tests/flagmodel/test_values.py",),
                      frozenset(equivalent))
    return stale_report(read_score(spec, tmp_path))


def test_a_renumbered_equivalent_is_named_with_the_new_candidates(tmp_path: Path) -> None:
    codes = {F + "1": 1, F + "2": 0, F + "3": 0, "flagmodel.values.x_g__mutmut_1": 0}
    report = _score(tmp_path, codes, {F + "2", F + "9"})
    assert report == [
        f"stale equivalent {F}9: no mutant has this name any more (renumbered or removed); "
        f"survivors of the same function now: {F}3; update modules.toml and docs/MUTATION.md"]


def test_a_killed_equivalent_and_a_vanished_function_are_named(tmp_path: Path) -> None:
    gone = "flagmodel.values.x_h__mutmut_4"
    report = _score(tmp_path, {F + "1": 1, F + "2": 36}, {F + "1", gone})
    assert report == [
        "stale equivalent flagmodel.values.x_h__mutmut_4: no mutant has this name any more "
        "(renumbered or removed); no unexplained survivor of the same function is left; "
        "update modules.toml and docs/MUTATION.md",
        f"stale equivalent {F}1: listed as equivalent but a test detects it now; remove it "
        "from modules.toml and docs/MUTATION.md"]


def test_nothing_stale_nothing_reported(tmp_path: Path) -> None:
    assert _score(tmp_path, {F + "1": 0, F + "2": 1}, {F + "1"}) == []
