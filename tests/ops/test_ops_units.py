"""The systemd units in ops/: ``systemd-analyze verify`` accepts them without one complaint,
and they carry the operating settings the runbook promises.

``systemd-analyze`` comes with Debian's ``systemd`` package (``apt-get install -y systemd``,
done by tests/run.sh); without the binary these tests are skipped with that reason.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from node.config import OPTIONS, load_toml, resolve

OPS = Path(__file__).resolve().parents[2] / "ops"
UNITS = ["flagstream.service", "flagstream-store.service", "flagstream-streamer@.service"]
BINARY = "/opt/flagstream/bin/flagstream"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze missing: apt-get install -y systemd")


def _service_section(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in (OPS / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def _verify(tmp_path: Path, texts: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # verify insists that ExecStart= names an executable: stand in a stub for the install path.
    stub = tmp_path / "flagstream"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    names = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text.replace(BINARY, str(stub)))
        names.append(str(tmp_path / name.replace("@.service", "@edge.service")))
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "verify", *names], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


@needs_analyze
def test_units_verify_clean(tmp_path: Path) -> None:
    texts = {name: (OPS / name).read_text() for name in UNITS}
    done = _verify(tmp_path, texts)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if any(u.split("@")[0] in line for u in UNITS)]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    text = (OPS / "flagstream.service").read_text().replace("KillSignal=SIGTERM",
                                                             "KillSignal=SIGTREM")
    done = _verify(tmp_path, {"flagstream.service": text})
    assert "SIGTREM" in done.stdout + done.stderr


@pytest.mark.parametrize("name", UNITS)
def test_unit_operating_settings(name: str) -> None:
    svc = _service_section(name)
    assert svc["KillSignal"] == ["SIGTERM"]
    assert svc["Restart"] == ["on-failure"]
    assert int(svc["LimitNOFILE"][0]) >= 65536
    assert svc["NoNewPrivileges"] == ["yes"]
    assert svc["ProtectSystem"] == ["strict"]
    assert svc["User"] == ["flagstream"]
    assert svc["StateDirectory"][0].startswith("flagstream")
    # systemd must wait longer than the drain deadline (and the store's commit grace).
    stop = float(svc["TimeoutStopSec"][0])
    drain = OPTIONS["drain-timeout"].default
    assert stop > drain + OPTIONS["drain-window"].default


# The sandbox of issue 12 (finding 7), on every unit.
HARDENING = {
    "SystemCallFilter": ["@system-service"],
    "ProtectProc": ["invisible"],
    "ProcSubset": ["pid"],
    "PrivateUsers": ["true"],
    "RemoveIPC": ["true"],
    "UMask": ["0077"],
    "StateDirectoryMode": ["0700"],
}


def _bytes(value: str) -> float:
    """A systemd memory size in bytes, or a percentage as a fraction of 1 (of the host)."""
    if value.endswith("%"):
        return float(value[:-1]) / 100
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)


@pytest.mark.parametrize("name", UNITS)
def test_unit_hardening_and_memory_limits(name: str) -> None:
    svc = _service_section(name)
    assert {k: svc.get(k) for k in HARDENING} == HARDENING
    high, peak = svc["MemoryHigh"], svc["MemoryMax"]
    assert len(high) == len(peak) == 1
    # throttling starts below the hard limit, and both are given in the same terms
    assert high[0].endswith("%") == peak[0].endswith("%")
    assert 0 < _bytes(high[0]) < _bytes(peak[0])
    if peak[0].endswith("%"):
        assert _bytes(peak[0]) < 1


@needs_analyze
def test_verify_catches_an_unknown_syscall_group(tmp_path: Path) -> None:
    """The filter is checked by systemd too: a misspelt group is reported."""
    text = (OPS / "flagstream.service").read_text().replace("@system-service", "@system-servic")
    done = _verify(tmp_path, {"flagstream.service": text})
    assert "system-servic" in done.stdout + done.stderr


def test_example_config_is_valid() -> None:
    """Every key of ops/flagstream.toml is a known option with a valid value."""
    path = OPS / "flagstream.toml"
    toml = load_toml(path)
    assert toml, "the example sets options"
    settings = resolve(list(toml), {}, {}, toml)
    assert set(settings) == {OPTIONS[n].attr for n in toml}
    with path.open("rb") as f:
        raw = tomllib.load(f)
    assert raw["drain_timeout"] + raw["drain_window"] < float(
        _service_section("flagstream.service")["TimeoutStopSec"][0])
