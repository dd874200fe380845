"""Evaluation engine benchmark: the engine against the Python SDK's evaluator, in one run.

    python3 -m loadtest.bench_eval [--flags 50] [--contexts 1000] [--repeat 3] [--profile]

Theory of operation
-------------------
A fixed-seed generator builds a realistic environment: ``--flags`` flags (targets, a few rules
over string/number/semver/date operators, segmentMatch on 5 segments with rules and weights,
percentage rollouts and experiments with bucketBy and seeds, some prerequisites) and
``--contexts`` contexts (users, users with an org in a multi-context, some devices). Every
implementation evaluates every flag for every context (flags x contexts evaluations), after
parsing flags and contexts once, as the streamer does when a change fans out to client-side
streams:

- ``engine``: ``flagmodel.Evaluator.evaluate``;
- ``sdk variation_detail``: ``LDClient.variation_detail`` on a daemon-mode client over a
  pre-filled ``InMemoryFeatureStore`` (events off), the public API;
- ``sdk Evaluator``: the SDK's internal ``ldclient.impl.evaluator.Evaluator.evaluate`` (not a
  stable API; skipped if it cannot be imported).

Each figure is the best of ``--repeat`` timed passes (evaluations per second, one thread). The
results of the engine and of ``variation_detail`` are compared value by value, so a fast wrong
engine cannot pass unnoticed. ``--profile`` prints the engine's top cProfile entries.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import random
import time
from collections.abc import Callable
from typing import Any

from flagmodel import Evaluator, Flag, Segment, parse_context

PLANS = ["free", "starter", "pro", "enterprise"]
COUNTRIES = ["US", "DE", "FR", "JP", "BR", "IN"]
VERSIONS = ["1.0.0", "1.2.0", "1.4.2", "2.0.0-beta.1", "2.0.0", "2.1.3", "3.0.0"]


def _clause(rng: random.Random) -> dict[str, Any]:
    pick = rng.randrange(7)
    if pick == 0:
        return {"contextKind": "user", "attribute": "email", "op": "endsWith",
                "values": [rng.choice(["@example.com", "@corp.io"])], "negate": False}
    if pick == 1:
        return {"contextKind": "user", "attribute": "plan", "op": "in",
                "values": rng.sample(PLANS, 2), "negate": rng.random() < 0.2}
    if pick == 2:
        return {"contextKind": "user", "attribute": "country", "op": "in",
                "values": rng.sample(COUNTRIES, 3), "negate": False}
    if pick == 3:
        return {"contextKind": "user", "attribute": "age", "op": "greaterThanOrEqual",
                "values": [rng.choice([18, 21, 30])], "negate": False}
    if pick == 4:
        return {"contextKind": "device", "attribute": "appVersion", "op": "semVerLessThan",
                "values": [rng.choice(VERSIONS)], "negate": False}
    if pick == 5:
        return {"contextKind": "user", "attribute": "signup", "op": "after",
                "values": ["2023-06-01T00:00:00Z"], "negate": False}
    return {"attribute": "", "op": "segmentMatch", "values": [f"seg-{rng.randrange(5)}"],
            "negate": False}


def _rollout(rng: random.Random, n: int) -> dict[str, Any]:
    first = rng.randrange(10000, 90000)
    rollout: dict[str, Any] = {"variations": [{"variation": 0, "weight": first},
                                              {"variation": n - 1, "weight": 100000 - first}]}
    if rng.random() < 0.3:
        rollout.update(kind="experiment", seed=rng.randrange(1000))
    elif rng.random() < 0.3:
        rollout["bucketBy"] = "country"
    return rollout


def make_flags(count: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    flags: dict[str, dict[str, Any]] = {}
    for i in range(count):
        n = rng.choice([2, 2, 3])
        variations = [True, False] if n == 2 else ["control", "a", "b"]
        rules = []
        for r in range(rng.randrange(1, 5)):
            rule: dict[str, Any] = {"id": f"rule-{i}-{r}", "trackEvents": False,
                                    "clauses": [_clause(rng) for _ in range(rng.randrange(1, 3))]}
            if rng.random() < 0.3:
                rule["rollout"] = _rollout(rng, n)
            else:
                rule["variation"] = rng.randrange(n)
            rules.append(rule)
        fallthrough = ({"rollout": _rollout(rng, n)} if rng.random() < 0.5
                       else {"variation": rng.randrange(n)})
        prereqs = ([{"key": f"flag-{rng.randrange(i)}", "variation": 0}]
                   if i > 5 and rng.random() < 0.15 else [])
        flags[f"flag-{i}"] = {
            "key": f"flag-{i}", "version": rng.randrange(1, 50), "on": rng.random() < 0.92,
            "salt": f"salt{i}", "variations": variations, "offVariation": n - 1,
            "targets": [{"values": [f"user-{rng.randrange(1000)}" for _ in range(20)],
                         "variation": 0}],
            "contextTargets": [], "prerequisites": prereqs, "rules": rules,
            "fallthrough": fallthrough, "trackEvents": False, "trackEventsFallthrough": False,
            "clientSide": True, "deleted": False,
        }
    return flags


def make_segments(rng: random.Random) -> dict[str, dict[str, Any]]:
    segments: dict[str, dict[str, Any]] = {}
    for i in range(5):
        segments[f"seg-{i}"] = {
            "key": f"seg-{i}", "version": 1, "salt": f"s{i}", "deleted": False,
            "included": [f"user-{rng.randrange(1000)}" for _ in range(50)],
            "excluded": [f"user-{rng.randrange(1000)}" for _ in range(10)],
            "includedContexts": [], "excludedContexts": [],
            "rules": [{"id": f"sr-{i}", "clauses": [_clause(rng) for _ in range(1)][:1],
                       "weight": rng.randrange(20000, 80000)}],
        }
        clause = segments[f"seg-{i}"]["rules"][0]["clauses"][0]
        if clause["op"] == "segmentMatch":  # keep segments free of recursion
            segments[f"seg-{i}"]["rules"][0]["clauses"] = [_clause_no_segment(rng)]
    return segments


def _clause_no_segment(rng: random.Random) -> dict[str, Any]:
    while True:
        c = _clause(rng)
        if c["op"] != "segmentMatch":
            return c


def make_contexts(count: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        user = {"kind": "user", "key": f"user-{i}", "name": f"User {i}",
                "email": f"u{i}@" + rng.choice(["example.com", "corp.io", "mail.net"]),
                "plan": rng.choice(PLANS), "country": rng.choice(COUNTRIES),
                "age": rng.randrange(14, 80),
                "signup": f"202{rng.randrange(1, 5)}-0{rng.randrange(1, 10)}-15T12:00:00Z"}
        shape = rng.random()
        if shape < 0.6:
            out.append(user)
        else:
            del user["kind"]
            ctx: dict[str, Any] = {"kind": "multi", "user": user,
                                   "org": {"key": f"org-{i % 37}", "tier": rng.choice(PLANS)}}
            if shape > 0.8:
                ctx["device"] = {"key": f"dev-{i}", "appVersion": rng.choice(VERSIONS)}
            out.append(ctx)
    return out


def _timed(fn: Callable[[], list[Any]], repeat: int) -> tuple[float, list[Any]]:
    best, result = float("inf"), []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flags", type=int, default=50)
    ap.add_argument("--contexts", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    flags_json = make_flags(args.flags, rng)
    segments_json = make_segments(rng)
    contexts_json = make_contexts(args.contexts, rng)
    n_evals = len(flags_json) * len(contexts_json)

    flags = {k: Flag.from_json(v) for k, v in flags_json.items()}
    segments = {k: Segment.from_json(v) for k, v in segments_json.items()}
    evaluator = Evaluator(flags.get, segments.get)
    contexts = [parse_context(c) for c in contexts_json]
    flag_list = list(flags.values())

    def run_engine() -> list[Any]:
        ev = evaluator.evaluate
        return [(d.value, d.variation_index, d.reason)
                for c in contexts for d in (ev(f, c) for f in flag_list)]

    rows: list[tuple[str, float]] = []
    t_engine, engine_results = _timed(run_engine, args.repeat)
    rows.append(("engine", n_evals / t_engine))

    logging.getLogger("ldclient").setLevel(logging.CRITICAL)
    from ldclient import Config, LDClient
    from ldclient import Context as LDContext
    from ldclient.feature_store import InMemoryFeatureStore
    from ldclient.versioned_data_kind import FEATURES, SEGMENTS

    store_class: Any = InMemoryFeatureStore  # untyped in the SDK
    store = store_class()
    store.init({FEATURES: flags_json, SEGMENTS: segments_json})
    nowhere = "http://127.0.0.1:9"
    client: Any = LDClient(Config("sdk-bench", feature_store=store, use_ldd=True,
                                  send_events=False, diagnostic_opt_out=True, base_uri=nowhere,
                                  stream_uri=nowhere, events_uri=nowhere), start_wait=0)
    try:
        ld_contexts = [LDContext.from_dict(c) for c in contexts_json]
        keys = list(flags_json)

        def run_sdk() -> list[Any]:
            vd = client.variation_detail
            return [(d.value, d.variation_index, d.reason)
                    for c in ld_contexts for d in (vd(k, c, None) for k in keys)]

        t_sdk, sdk_results = _timed(run_sdk, args.repeat)
        rows.append(("sdk variation_detail", n_evals / t_sdk))
    finally:
        client.close()

    mismatches = sum(1 for a, b in zip(engine_results, sdk_results, strict=True)
                     if (a[0], a[1]) != (b[0], b[1]) or a[2]["kind"] != b[2]["kind"])

    t_internal = None
    try:
        from ldclient.impl.evaluator import Evaluator as SdkEvaluator
        from ldclient.impl.events.types import EventFactory
        from ldclient.impl.model import FeatureFlag
        from ldclient.impl.model import Segment as SdkSegment

        sdk_flags = {k: FeatureFlag(v) for k, v in flags_json.items()}
        sdk_segments = {k: SdkSegment(v) for k, v in segments_json.items()}
        evaluator_class: Any = SdkEvaluator
        sdk_eval = evaluator_class(sdk_flags.get, sdk_segments.get,
                                   lambda key: (None, "NOT_CONFIGURED"))
        factory: Any = EventFactory(False)
        sdk_flag_list = list(sdk_flags.values())

        def run_internal() -> list[Any]:
            ev = sdk_eval.evaluate
            return [ev(f, c, factory).detail for c in ld_contexts for f in sdk_flag_list]

        t_internal, _ = _timed(run_internal, args.repeat)
        rows.append(("sdk Evaluator (internal)", n_evals / t_internal))
    except ImportError as e:
        print(f"sdk internal Evaluator not available: {e}")

    print(f"{len(flags_json)} flags x {len(contexts_json)} contexts = {n_evals} evaluations "
          f"per pass, best of {args.repeat}")
    for name, rate in rows:
        print(f"  {name:<26} {rate:>12,.0f} evaluations/s")
    print(f"  ratio engine / sdk variation_detail: {t_sdk / t_engine:.2f}")
    if t_internal is not None:
        print(f"  ratio engine / sdk Evaluator:        {t_internal / t_engine:.2f}")
    print(f"  results differing from the SDK: {mismatches} of {n_evals}")

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run_engine)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
