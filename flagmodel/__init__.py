"""The pure flag evaluation engine (no IO): LaunchDarkly's evaluation semantics, PROTOCOL.md §4.

Parse once, evaluate many times::

    flag = Flag.from_json(flag_json)              # precompiles clauses, targets, rollouts
    context = parse_context(context_json)          # raises ContextError on invalid input
    detail = Evaluator(flags.get, segments.get).evaluate(flag, context)

Modules: ``values`` (numbers, RFC 3339 times, semver), ``attrref`` (attribute references),
``context`` (context JSON), ``clauses`` (operators compiled to closures), ``bucketing``
(float32-exact rollouts), ``model`` (flag and segment JSON), ``evaluator`` (the algorithm),
``client_side`` (client-side payload fields, availability, secure mode).
"""

from flagmodel.client_side import (
    client_side_flag,
    client_side_payload,
    is_client_side_available,
    secure_mode_hash,
)
from flagmodel.context import Context, ContextError, fully_qualified_key, parse_context
from flagmodel.evaluator import EvalDetail, Evaluator, error_detail
from flagmodel.model import Flag, Segment

__all__ = [
    "Context",
    "ContextError",
    "EvalDetail",
    "Evaluator",
    "Flag",
    "Segment",
    "client_side_flag",
    "client_side_payload",
    "error_detail",
    "fully_qualified_key",
    "is_client_side_available",
    "parse_context",
    "secure_mode_hash",
]
