"""The SLO runner, small (the CI smoke test): 2,000 streams, 3 changes, a reconnect storm, an
overload past the workers' open-file capacity, the raw floor, 300 client-side `/eval` streams
and the two baselines with the same clients. Asserts delivery, shedding and that the report
files exist, never timing; the 50k run is only started by hand (`python3 -m loadtest.slo`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loadtest import slo


@pytest.mark.e2e
def test_small_slo_run_delivers_everything(tmp_path: Path) -> None:
    scenarios = "fanout,storm,overload,floor,eval" + (",baselines" if shutil.which("node") else "")
    args = slo.build_parser().parse_args(
        ["--connections", "2000", "--workers", "2", "--changes", "3", "--warmup", "0",
         "--pace", "0.3", "--round-timeout", "15", "--connect-timeout", "30",
         "--storm-timeout", "30", "--baseline-connections", "300", "--baseline-changes", "2",
         "--worker-open-files", "1400",  # 1,144 streams a worker: 2,288 for the overload
         "--eval-connections", "300", "--eval-contexts", "30",
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
    assert storm["delivered_after"] is True and storm["workers_died"] == 0
    over = report["overload"]  # 2,517 offered to a node that holds 2,288
    assert over["capacity"] == 2 * 1144 and over["workers_survived"] is True
    assert over["held"] == over["capacity"]
    assert over["refused_503"] == over["offered"] - over["admitted"] > 0
    assert slo.merge_retry_after(over["retry_after"])["distinct"] > 1  # jittered
    assert over["all_delivered"] is True
    assert all(c["received"] == c["expected"] == over["held"] for c in over["changes"])
    floor = report["floor"]
    assert floor["connect"]["held"] == 2000 and floor["all_delivered"] is True
    floor_storm = report["storm_floor"]  # the floor's processes killed and started again
    assert floor_storm["workers_killed"] == 2
    assert floor_storm["recovered"] == floor_storm["streams_before"] == 2000
    for name, fig in report.get("baselines", {}).items():
        assert fig["connect"]["held"] == 300, name
        assert fig["all_delivered"] is True, name
    ev = report["eval"]  # client-side /eval streams on a node of their own
    assert ev["connect"]["held"] == 300 and ev["all_delivered"] is True
    assert len([r for r in ev["rounds"] if not r["warmup"]]) == 3
    assert "client-side: 300 /eval streams, 30 contexts" in text
    assert "fan-out P99 / floor P99" in text
    assert "overload: saturated node sheds with 503 + jittered Retry-After" in text
    assert "storm: time until all are back / the floor's" in text
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"report.txt", "report.hgrm", "report.html", "report.json", "floor.hgrm"} <= set(names)
    assert "<svg" in (tmp_path / "report.html").read_text()
