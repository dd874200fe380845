"""The SLO runner, small (the CI smoke test): 2,000 streams, 3 changes, a reconnect storm, the
raw floor and the two baselines with the same clients. Asserts delivery and that the report
files exist, never timing; the 50k run is only started by hand (`python3 -m loadtest.slo`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loadtest import slo


@pytest.mark.e2e
def test_small_slo_run_delivers_everything(tmp_path: Path) -> None:
    scenarios = "fanout,storm,floor" + (",baselines" if shutil.which("node") else "")
    args = slo.build_parser().parse_args(
        ["--connections", "2000", "--workers", "2", "--changes", "3", "--warmup", "0",
         "--pace", "0.3", "--round-timeout", "15", "--connect-timeout", "30",
         "--storm-timeout", "30", "--baseline-connections", "300", "--baseline-changes", "2",
         "--scenarios", scenarios, "--out", str(tmp_path)]
    )  # fmt: skip
    report = slo.run(args)
    text = slo.write(report, args)
    fan = report["fanout"]
    assert fan["connect"]["held"] == 2000 and fan["connect"]["failed"] == 0
    assert [(r["received"], r["expected"]) for r in fan["rounds"]] == [(2000, 2000)] * 3
    assert fan["all_delivered"] is True
    storm = report["storm"]
    assert storm["workers_killed"] == 2
    assert storm["recovered"] == storm["streams_before"] == 2000  # every stream: a fresh put
    assert storm["delivered_after"] is True
    floor = report["floor"]
    assert floor["connect"]["held"] == 2000 and floor["all_delivered"] is True
    floor_storm = report["storm_floor"]  # the floor's processes killed and started again
    assert floor_storm["workers_killed"] == 2
    assert floor_storm["recovered"] == floor_storm["streams_before"] == 2000
    for name, fig in report.get("baselines", {}).items():
        assert fig["connect"]["held"] == 300, name
        assert fig["all_delivered"] is True, name
    assert "fan-out P99 / floor P99" in text
    assert "storm: time until all are back / the floor's" in text
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"report.txt", "report.hgrm", "report.html", "report.json", "floor.hgrm"} <= set(names)
    assert "<svg" in (tmp_path / "report.html").read_text()
