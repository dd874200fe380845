"""Loader for LaunchDarkly's sdk-test-harness evaluation suites (``conformance/ldharness``).

It does what the harness's Go loader does (``data/substitutions.go``, ``data/parser.go``,
``mockld/sdk_data.go``, ``sdktests/helpers.go``; docs/research/real-components.md Part C):

1. parse ``constants`` and ``parameters`` from the file as YAML 1.2 (``on:`` stays a string key,
   ``yes``/``no`` stay strings, no timestamps);
2. for each parameter set (a list of maps, or a list of lists expanded to their cartesian
   product), substitute on the *raw text*: constants, then the parameters, then constants
   again; ``"<NAME>"`` becomes the value's JSON, a bare ``<NAME>`` its text;
3. parse each expanded text as one suite; give every flag and segment its map key as ``key``
   and version 1 when it has none;
4. a ``null``/absent ``default`` becomes the zero value of the type of the flag's first variation.

Public functions (reused by the HTTP conformance test):

- ``conformance_dir() -> Path``: the ``ldharness`` folder (``FLAGSTREAM_CONFORMANCE_DIR`` or
  ``conformance/ldharness`` beside this file, a copy kept in the repository);
- ``load_suites(folder="server-side-eval", base=None) -> list[Suite]``: every expanded suite;
- ``all_evaluations(suites) -> list[tuple[Suite, Evaluation]]``;
- ``legacy_user_to_context(obj) -> dict``: an old-style user as a new-format ``kind: user`` context;
- ``typed(value)``: a JSON value made comparable type-strictly (Python has ``True == 1 == 1.0``);
- ``sdk_normalized_flag(flag)`` / ``sdk_normalized_segment(segment)``: the dict with the
  properties Go's model writes when re-marshalling (empty arrays, ``negate``...), which strict
  SDK parsers such as the Python SDK's require.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flagmodel.schema import SHAPES

# -- YAML 1.2 core schema -----------------------------------------------------------------


# PyYAML's safe loader with the YAML 1.2 core-schema scalars (as Go's yaml.v3 resolves them
# into ``interface{}``) instead of YAML 1.1's (``on``/``yes`` booleans, timestamps, sexagesimal
# and ``010`` octal numbers).
_Yaml12Loader: Any = type("_Yaml12Loader", (yaml.SafeLoader,), {})


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))


def _construct_int(loader: Any, node: Any) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_bool(loader: Any, node: Any) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def yaml12_load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass


# -- substitution -------------------------------------------------------------------------


def _go_json(value: Any) -> str:
    """JSON as Go's ldvalue writes it: integral numbers without a fraction, raw UTF-8."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return json.dumps(norm(value), ensure_ascii=False, separators=(",", ":"))


def _replace(text: str, substs: dict[str, Any]) -> str:
    text = text.replace("\\u003c", "<").replace("\\u003e", ">")
    for name, value in substs.items():
        typed = _go_json(value)
        text = text.replace(f'"<{name}>"', typed)
        text = text.replace(f"<{name}>", value if isinstance(value, str) else typed)
    return text


def _parameter_sets(params: list[Any]) -> list[dict[str, Any]]:
    if not params:
        return []
    if isinstance(params[0], dict):
        return [dict(p) for p in params]
    if not isinstance(params[0], list):
        raise ValueError("parameters must be a list of maps or a list of lists")
    # Go's order: the first list varies fastest.
    out = []
    for combo in itertools.product(*reversed(params)):
        merged: dict[str, Any] = {}
        for part in reversed(combo):
            merged.update(part)
        out.append(merged)
    return out


def expand_text(text: str) -> list[tuple[dict[str, Any], str]]:
    """The expanded texts of one data file, each with the parameter set that produced it."""
    head = yaml12_load(text) or {}
    constants: dict[str, Any] = head.get("constants") or {}
    sets = _parameter_sets(head.get("parameters") or [])
    if not constants and not sets:
        return [({}, text)]
    if not sets:
        return [({}, _replace(text, constants))]
    return [(p, _replace(_replace(_replace(text, constants), p), constants)) for p in sets]


# -- the suites ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    name: str
    flag_key: str
    context: Any  # the context JSON exactly as in the file (may be a legacy user)
    value_type: str
    default: Any  # after the null-default inference
    expect_value: Any
    expect_variation: int | None
    expect_reason: dict[str, Any]


@dataclass(frozen=True)
class Suite:
    file: str
    index: int  # position of this parameter set within the file
    name: str
    require_capability: str
    skip_evaluate_all_flags: bool
    flags: dict[str, dict[str, Any]]  # key → flag JSON with key and version filled in
    segments: dict[str, dict[str, Any]]
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def sdk_data(self) -> dict[str, Any]:
        """``{"flags": ..., "segments": ...}`` as the harness serves it to an SDK: its Go
        model re-marshals the data, dropping the properties it does not read
        (``segment-recursion.yml`` misspells ``clauses`` as ``clauss``) and writing the
        arrays it reads as empty; flagstream refuses the former and requires ``clauses``."""
        return {"flags": {k: sdk_normalized_flag(_known_only(v, "Flag"))
                          for k, v in self.flags.items()},
                "segments": {k: sdk_normalized_segment(_known_only(v, "Segment"))
                             for k, v in self.segments.items()}}


def _known_only(obj: dict[str, Any], shape: str) -> dict[str, Any]:
    fields = SHAPES[shape]
    out = {}
    for name, value in obj.items():
        if name not in fields:
            continue
        element = fields[name].type.strip("[]")
        if element in SHAPES and isinstance(value, dict):
            value = _known_only(value, element)
        elif element in SHAPES and isinstance(value, list):
            value = [_known_only(v, element) if isinstance(v, dict) else v for v in value]
        out[name] = value
    return out


def conformance_dir() -> Path:
    env = os.environ.get("FLAGSTREAM_CONFORMANCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "conformance" / "ldharness"


def _with_key(key: str, item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    out["key"] = key
    if not out.get("version"):
        out["version"] = 1
    return out


def _zero_default(flag: dict[str, Any] | None) -> Any:
    variations = (flag or {}).get("variations")
    if not isinstance(variations, list) or not variations:
        return None
    first = variations[0]
    if isinstance(first, bool):
        return False
    if isinstance(first, int | float):
        return 0
    if isinstance(first, str):
        return ""
    return None


def _suite(file: str, index: int, doc: dict[str, Any]) -> Suite:
    data = doc.get("sdkData") or {}
    flags = {k: _with_key(k, v) for k, v in (data.get("flags") or {}).items()}
    segments = {k: _with_key(k, v) for k, v in (data.get("segments") or {}).items()}
    evals = []
    for e in doc.get("evaluations") or []:
        default = e.get("default")
        if default is None:
            default = _zero_default(flags.get(e["flagKey"]))
        expect = e["expect"]
        evals.append(Evaluation(
            name=str(e.get("name") or e["flagKey"]), flag_key=e["flagKey"],
            context=e.get("context"), value_type=e.get("valueType") or "",
            default=default, expect_value=expect.get("value"),
            expect_variation=expect.get("variationIndex"),
            expect_reason=dict(expect.get("reason") or {})))
    return Suite(file, index, str(doc.get("name", file)), doc.get("requireCapability") or "",
                 bool(doc.get("skipEvaluateAllFlags")), flags, segments, evals)


def load_suites(folder: str = "server-side-eval", base: Path | None = None) -> list[Suite]:
    """Every expanded suite of every ``*.yml`` in ``folder``, in file-name order."""
    root = (base or conformance_dir()) / folder
    suites = []
    for path in sorted(root.glob("*.yml")):
        for index, (_, text) in enumerate(expand_text(path.read_text(encoding="utf-8"))):
            suites.append(_suite(path.name, index, yaml12_load(text)))
    return suites


def all_evaluations(suites: list[Suite]) -> list[tuple[Suite, Evaluation]]:
    return [(s, e) for s in suites for e in s.evaluations]


# -- helpers for feeding other implementations ------------------------------------------------

_LEGACY_BUILTINS = ("name", "firstName", "lastName", "email", "country", "avatar", "ip")


def legacy_user_to_context(obj: dict[str, Any]) -> dict[str, Any]:
    """An old-style user JSON as the equivalent new-format context (what Go's ldcontext
    produces); new-format contexts are returned unchanged."""
    if "kind" in obj:
        return obj
    out: dict[str, Any] = {"kind": "user", "key": obj.get("key")}
    for name in _LEGACY_BUILTINS:
        if obj.get(name) is not None:
            out[name] = obj[name]
    if obj.get("anonymous") is not None:
        out["anonymous"] = obj["anonymous"]
    for name, value in (obj.get("custom") or {}).items():
        if name not in ("kind", "key", "name", "anonymous", "_meta") and value is not None:
            out[name] = value
    private = obj.get("privateAttributeNames")
    if private:
        out["_meta"] = {"privateAttributes": [
            "/" + p.replace("~", "~0").replace("/", "~1") if p.startswith("/") else p
            for p in private]}
    return out


def _norm_clauses(clauses: Any) -> list[Any]:
    out = []
    for c in clauses or []:
        c = dict(c)
        c.setdefault("attribute", "")
        if c["attribute"] is None:
            c["attribute"] = ""
        c.setdefault("values", [])
        c.setdefault("negate", False)
        out.append(c)
    return out


def sdk_normalized_flag(flag: dict[str, Any]) -> dict[str, Any]:
    """The flag with every property an SDK's strict parser may require, as Go writes it."""
    f = dict(flag)
    for name in ("prerequisites", "targets", "contextTargets", "rules", "variations"):
        if f.get(name) is None:
            f[name] = []
    f["targets"] = [{**t, "values": t.get("values") or []} for t in f["targets"]]
    f["contextTargets"] = [{**t, "values": t.get("values") or []} for t in f["contextTargets"]]
    f["rules"] = [{**r, "clauses": _norm_clauses(r.get("clauses"))} for r in f["rules"]]
    f.setdefault("salt", "")
    f.setdefault("on", False)
    if f.get("fallthrough") is None:
        f["fallthrough"] = {}
    return f


def sdk_normalized_segment(segment: dict[str, Any]) -> dict[str, Any]:
    s = dict(segment)
    for name in ("included", "excluded", "includedContexts", "excludedContexts", "rules"):
        if s.get(name) is None:
            s[name] = []
    s["rules"] = [{**r, "clauses": _norm_clauses(r.get("clauses"))} for r in s["rules"]]
    s.setdefault("salt", "")
    return s


def typed(v: Any) -> Any:
    """A JSON value made comparable type-strictly: ``typed(True) != typed(1)``, while
    ``typed(1) == typed(1.0)`` (JSON numbers compare by value)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return (type(v).__name__, v)
    if isinstance(v, int | float):
        return ("number", float(v))
    if isinstance(v, list | tuple):
        return ("array", tuple(typed(x) for x in v))
    if isinstance(v, dict):
        return ("object", tuple(sorted((k, typed(x)) for k, x in v.items())))
    raise TypeError(f"not JSON: {v!r}")
