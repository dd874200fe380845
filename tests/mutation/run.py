"""Mutation testing of the pure cores: each module against its own unit tests only.

    python tests/mutation/run.py                      # every module in modules.toml
    python tests/mutation/run.py streamer/fastpath/sse.py  # one module (any path in modules.toml)
    python tests/mutation/run.py --show-survivors     # also print each survivor's diff

Theory of operation. mutmut 3 reads its settings from the ``pyproject.toml`` of the directory it
runs in and writes a mutated copy of the tree into ``mutants/`` there. To give every module its
own test selection, this script makes one scratch copy of the repository per module under
``mutants/<module>/`` (git-ignored), appends a ``[tool.mutmut]`` table naming that module and
its tests to the copy's ``pyproject.toml``, runs mutmut there, and reads mutmut's per-file
results (``<file>.meta``). The working tree itself is never mutated.

Score = detected / (mutants - equivalent), where detected counts mutants that a test failed on
or that ran past mutmut's timeout (a mutant that makes the code hang is caught, not missed).
mutmut 3 mutates code inside functions and methods only, not module-level constants; the tests
pin those constants directly (docs/MUTATION.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("modules.toml")
SCRATCH = REPO / "mutants"

# mutmut's exit codes per mutant (mutmut/stats.py): 1 and 3 are test failures, 36 and the
# signal codes are timeouts, 0 is a survivor; anything else (no tests, suspicious, segfault,
# not checked) is reported as "other" and counts against the score.
KILLED_CODES = frozenset({1, 3})
TIMEOUT_CODES = frozenset({36, 24, -24, 152, 255})
SURVIVED_CODES = frozenset({0})


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    path: str
    tests: tuple[str, ...]
    equivalent: frozenset[str]


@dataclass(frozen=True, slots=True)
class ModuleScore:
    path: str
    total: int
    killed: int
    timeout: int
    survived: tuple[str, ...]
    equivalent: tuple[str, ...]
    other: tuple[str, ...]
    gone_equivalent: tuple[str, ...]  # listed, but no mutant has that name any more
    killed_equivalent: tuple[str, ...]  # listed, but a test detects it now

    @property
    def score(self) -> float:
        counted = self.total - len(self.equivalent)
        return 100.0 if counted == 0 else 100.0 * (self.killed + self.timeout) / counted


def load_specs(config: Path) -> list[ModuleSpec]:
    data = tomllib.loads(config.read_text("utf-8"))
    return [
        ModuleSpec(m["path"], tuple(m["tests"]), frozenset(m.get("equivalent", [])))
        for m in data["module"]
    ]


def tracked_files() -> list[str]:
    """Files git knows or would add (committed, staged, and new but not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode()
    return [name for name in out.split("\0") if name and not name.startswith("mutants/")]


def prepare_workspace(spec: ModuleSpec, files: list[str]) -> Path:
    workspace = SCRATCH / spec.path.replace("/", "__").removesuffix(".py")
    shutil.rmtree(workspace, ignore_errors=True)
    for name in files:
        source = REPO / name
        if source.is_file():
            target = workspace / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # Every top-level package is copied into mutmut's tree, so the tests import one consistent
    # version of the code rather than a mix of the copy and the editable install.
    packages = sorted(name.split("/")[0] for name in files
                      if name.count("/") == 1 and name.endswith("/__init__.py")
                      and not name.startswith("tests/"))
    table = {
        "source_paths": packages,
        "only_mutate": [spec.path],
        "pytest_add_cli_args_test_selection": list(spec.tests),
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
        "use_git_change_detection": False,
        # mutmut copies only the packages and tests/; some tests read the docs they keep in
        # step with the code (test_schema.py: docs/FLAG_MODEL.md).
        "also_copy": ["docs"],
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    with (workspace / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return workspace


def run_mutmut(workspace: Path, max_children: int) -> None:
    log = workspace / "mutmut.log"
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
            cwd=workspace, stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if result.returncode != 0:
        sys.exit(f"mutmut failed in {workspace} (exit {result.returncode}); see {log}")


def read_score(spec: ModuleSpec, workspace: Path) -> ModuleScore:
    meta = json.loads((workspace / "mutants" / (spec.path + ".meta")).read_text("utf-8"))
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    killed = [k for k, c in codes.items() if c in KILLED_CODES]
    timeout = [k for k, c in codes.items() if c in TIMEOUT_CODES]
    survived = [k for k, c in codes.items() if c in SURVIVED_CODES]
    other = [k for k, c in codes.items()
             if c not in KILLED_CODES | TIMEOUT_CODES | SURVIVED_CODES]
    equivalent = [k for k in survived if k in spec.equivalent]
    listed_not_surviving = spec.equivalent - set(survived)
    return ModuleScore(
        path=spec.path,
        total=len(codes),
        killed=len(killed),
        timeout=len(timeout),
        survived=tuple(k for k in survived if k not in spec.equivalent),
        equivalent=tuple(equivalent),
        other=tuple(other),
        gone_equivalent=tuple(sorted(k for k in listed_not_surviving if k not in codes)),
        killed_equivalent=tuple(sorted(k for k in listed_not_surviving if k in codes)),
    )


def function_of(name: str) -> str:
    """``pkg.mod.x_f__mutmut_12`` → ``pkg.mod.x_f``: mutants are numbered per function."""
    return name.rpartition("__mutmut_")[0]


def stale_report(score: ModuleScore) -> list[str]:
    """One line per listed equivalent that no longer survives, naming it and, for a name that
    no longer exists (the function was edited, so its mutants were renumbered), the
    unexplained survivors of the same function: the candidates for its new name."""
    lines = []
    for name in score.gone_equivalent:
        same = [k for k in (*score.survived, *score.other) if function_of(k) == function_of(name)]
        hint = (f"; survivors of the same function now: {', '.join(same)}" if same
                else "; no unexplained survivor of the same function is left")
        lines.append(f"stale equivalent {name}: no mutant has this name any more (renumbered "
                     f"or removed){hint}; update modules.toml and docs/MUTATION.md")
    for name in score.killed_equivalent:
        lines.append(f"stale equivalent {name}: listed as equivalent but a test detects it now; "
                     "remove it from modules.toml and docs/MUTATION.md")
    return lines


def show_diff(workspace: Path, name: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=workspace, capture_output=True, text=True, check=False,
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths from modules.toml (default: all)")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--show-survivors", action="store_true")
    parser.add_argument("--fail-under", type=float, default=97.0)
    args = parser.parse_args()

    specs = load_specs(args.config)
    unknown = set(args.modules) - {s.path for s in specs}
    if unknown:
        parser.error(f"not in {args.config}: {', '.join(sorted(unknown))}")
    chosen = [s for s in specs if not args.modules or s.path in args.modules]
    files = tracked_files()

    scores: list[ModuleScore] = []
    for spec in chosen:
        workspace = prepare_workspace(spec, files)
        run_mutmut(workspace, args.max_children)
        score = read_score(spec, workspace)
        scores.append(score)
        for name in score.survived:
            print(f"survived  {name}")
            if args.show_survivors:
                print(show_diff(workspace, name))
        for name in score.other:
            print(f"unchecked {name} (no test of the module ran it, or mutmut could not; "
                  f"see {workspace}/mutmut.log)")
        for line in stale_report(score):
            print(f"warning: {line}")

    print(f"\n{'module':28} {'mutants':>7} {'killed':>6} {'timeout':>7} {'equiv':>5} "
          f"{'survived':>8} {'score':>7}")
    for s in scores:
        print(f"{s.path:28} {s.total:7} {s.killed:6} {s.timeout:7} {len(s.equivalent):5} "
              f"{len(s.survived) + len(s.other):8} {s.score:6.1f}%")
    return 0 if all(s.score >= args.fail_under for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
