"""Every server-side evaluation of LaunchDarkly's sdk-test-harness against the engine.

Each expanded evaluation is one test case: value (the default when there is no variation, as
an SDK returns it), variation index and reason must equal ``expect``. The only skips are suites
that require a capability the engine does not claim (``strongly-typed``: the engine is untyped,
type checks belong to the caller).
"""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel import (
    ContextError,
    EvalDetail,
    Evaluator,
    Flag,
    Segment,
    error_detail,
    parse_context,
)
from tests.flagmodel.harness_data import (
    Evaluation,
    Suite,
    all_evaluations,
    conformance_dir,
    load_suites,
    typed,
)

CLAIMED_CAPABILITIES: frozenset[str] = frozenset()
EXPECTED_SUITES = 301
EXPECTED_EVALUATIONS = 728

if not (conformance_dir() / "server-side-eval").is_dir():
    pytest.fail(f"conformance data not found in {conformance_dir()} (set "
                "FLAGSTREAM_CONFORMANCE_DIR)", pytrace=False)

SUITES = load_suites()
CASES = all_evaluations(SUITES)


def test_loader_finds_every_suite_and_evaluation() -> None:
    assert len(SUITES) == EXPECTED_SUITES
    assert len(CASES) == EXPECTED_EVALUATIONS


def _case_id(case: tuple[Suite, Evaluation]) -> str:
    suite, ev = case
    return f"{suite.file}[{suite.index}]:{ev.name}"


def _evaluate(suite: Suite, ev: Evaluation) -> EvalDetail:
    flags = {k: Flag.from_json(v) for k, v in suite.flags.items()}
    segments = {k: Segment.from_json(v) for k, v in suite.segments.items()}
    try:
        context = parse_context(ev.context)
    except ContextError:
        return error_detail("USER_NOT_SPECIFIED")
    return Evaluator(flags.get, segments.get).evaluate_key(ev.flag_key, context)


def _app_value(detail: EvalDetail, default: Any) -> Any:
    # An SDK hands the application its default whenever there is no variation.
    return default if detail.variation_index is None else detail.value


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_harness_evaluation(case: tuple[Suite, Evaluation]) -> None:
    suite, ev = case
    if suite.require_capability and suite.require_capability not in CLAIMED_CAPABILITIES:
        pytest.skip(f"suite {suite.name!r} requires capability {suite.require_capability!r}, "
                    "which the engine does not claim (it is untyped; callers check valueType)")
    detail = _evaluate(suite, ev)
    got = (_app_value(detail, ev.default), detail.variation_index, detail.reason)
    assert typed(got[0]) == typed(ev.expect_value)
    assert typed(got[1]) == typed(ev.expect_variation)
    assert typed(got[2]) == typed(ev.expect_reason)
