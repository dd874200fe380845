"""The three PATCH formats over real HTTP: run_store on 127.0.0.1 port 0, httpx as the client.

The fixture and helpers are those of ``test_store_admin_api``, imported, not copied.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.store.test_store_admin_api import FLAG, JUNK_BODIES, client, error_of, make_env

__all__ = ["client"]  # the fixture, used by name

SEMANTIC = "application/json; domain-model=launchdarkly.semanticpatch"
JSON_PATCH = "application/json-patch+json"
URL = "/api/v1/environments/prod/flags/f"
SEG_URL = "/api/v1/environments/prod/segments/s"
ORG = {"contextKind": "org", "attribute": "key", "op": "in", "values": ["o1"]}


async def send(c: httpx.AsyncClient, url: str, ctype: str, body: Any) -> httpx.Response:
    return await c.patch(url, content=orjson.dumps(body), headers={"Content-Type": ctype})


async def stored(c: httpx.AsyncClient, url: str = URL) -> dict[str, Any]:
    r = await c.get(url)
    assert r.status_code == 200, r.text
    item: dict[str, Any] = r.json()
    return item


async def setup(c: httpx.AsyncClient) -> dict[str, Any]:
    await make_env(c)
    assert (await c.put(URL, json=FLAG)).status_code == 201
    assert (await c.put(SEG_URL, json={"included": ["u1"]})).status_code == 201
    return await stored(c)


@pytest.mark.parametrize("ctype", [
    SEMANTIC,
    "application/json;domain-model=launchdarkly.semanticpatch",
    'Application/JSON; Domain-Model="LaunchDarkly.SemanticPatch"',
    "application/json ; charset=utf-8; domain-model = launchdarkly.semanticpatch",
])
async def test_semantic_patch_turns_the_flag_off_and_stores_no_instructions(
        client: httpx.AsyncClient, ctype: str) -> None:
    before = await setup(client)
    assert before["on"] is True
    r = await send(client, URL, ctype, {"comment": "incident 42", "environmentKey": "prod",
                                        "instructions": [{"kind": "turnFlagOff"}]})
    assert r.status_code == 200, r.text
    flag = await stored(client)
    assert flag == r.json()
    assert flag["on"] is False and "instructions" not in flag and "comment" not in flag
    assert flag["version"] == before["version"] + 1
    assert flag == {**before, "on": False, "version": before["version"] + 1}
    change = (await client.get("/api/v1/environments/prod/changes")).json()["items"][0]
    assert change["key"] == "f" and change["comment"] == "incident 42"


async def test_semantic_patch_instructions_over_http(client: httpx.AsyncClient) -> None:
    await setup(client)
    r = await send(client, URL, SEMANTIC, {"instructions": [
        {"kind": "addRule", "clauses": [ORG], "variationId": 1, "description": "orgs"},
        {"kind": "addTargets", "variationId": 1, "values": ["u1", "u2"]},
        {"kind": "updateFallthroughVariationOrRollout",
         "rolloutWeights": {"0": 25000, "1": 75000}, "rolloutBucketBy": "email"},
        {"kind": "updateOffVariation", "variationId": "0"},
    ]})
    assert r.status_code == 200, r.text
    flag = await stored(client)
    [rule] = flag["rules"]
    assert rule["clauses"] == [{**ORG, "negate": False}] and rule["variation"] == 1
    assert isinstance(rule["id"], str) and rule["id"]
    assert flag["targets"] == [{"variation": 1, "values": ["u1", "u2"]}]
    assert flag["fallthrough"] == {"rollout": {"bucketBy": "email", "variations": [
        {"variation": 0, "weight": 25000}, {"variation": 1, "weight": 75000}]}}
    assert flag["offVariation"] == 0
    r = await send(client, URL, SEMANTIC, {"instructions": [
        {"kind": "addClauses", "ruleId": rule["id"], "clauses": [ORG]},
        {"kind": "removeTargets", "variationId": 1, "values": ["u1"]},
    ]})
    assert r.status_code == 200, r.text
    flag = await stored(client)
    assert len(flag["rules"][0]["clauses"]) == 2
    assert flag["targets"] == [{"variation": 1, "values": ["u2"]}]
    r = await send(client, URL, SEMANTIC, {"instructions": [
        {"kind": "replaceRules", "rules": [{"clauses": [ORG], "variationId": 0}]}]})
    assert r.status_code == 200, r.text
    [rule] = (await stored(client))["rules"]
    r = await send(client, URL, SEMANTIC,
                   {"instructions": [{"kind": "removeRule", "ruleId": rule["id"]}]})
    assert r.status_code == 200 and (await stored(client))["rules"] == []


@pytest.mark.parametrize(("body", "words"), [
    ({"instructions": [{"kind": "turnFlagOff"}, {"kind": "deleteEverything"}]},
     'instruction 1: unknown kind "deleteEverything"'),
    ({"instructions": [{"kind": "turnFlagOff"}, {"kind": "removeRule", "ruleId": "nope"}]},
     "instruction 1 (removeRule): ruleId: the flag has no rule"),
    ({"instructions": [{"kind": "updateOffVariation", "variationId": 7}]},
     "the flag has no variation 7"),
    # the result is validated as a PUT is: weights must sum to 100 %
    ({"instructions": [{"kind": "updateFallthroughVariationOrRollout",
                        "rolloutWeights": {"0": 1}}]},
     "fallthrough.rollout.variations: weights sum to 1, not 100000"),
    ({"environmentKey": "staging", "instructions": [{"kind": "turnFlagOff"}]},
     'environmentKey "staging" is not the environment of the path, "prod"'),
    ({"instructions": []}, "instructions: expected a non-empty array"),
])
async def test_semantic_patch_refused_with_400_and_nothing_stored(
        client: httpx.AsyncClient, body: Any, words: str) -> None:
    before = await setup(client)
    err = error_of(await send(client, URL, SEMANTIC, body), 400)
    assert words in err["message"]
    assert await stored(client) == before


async def test_semantic_patch_of_a_segment(client: httpx.AsyncClient) -> None:
    before = await setup(client)
    r = await send(client, SEG_URL, SEMANTIC, {"comment": "add o1", "instructions": [
        {"kind": "addIncludedTargets", "contextKind": "org", "values": ["o1"]},
        {"kind": "removeIncludedTargets", "values": ["u1"]},
        {"kind": "addExcludedUsers", "values": ["u2"]}]})
    assert r.status_code == 200, r.text
    seg = await stored(client, SEG_URL)
    assert seg["included"] == [] and seg["excluded"] == ["u2"] and "instructions" not in seg
    assert seg["includedContexts"] == [{"contextKind": "org", "values": ["o1"]}]
    err = error_of(await send(client, SEG_URL, SEMANTIC,
                              {"instructions": [{"kind": "turnFlagOff"}]}), 400)
    assert 'unknown kind "turnFlagOff" for segments' in err["message"]
    assert await stored(client) == before  # the flag was never touched


async def test_json_patch_applies_atomically(client: httpx.AsyncClient) -> None:
    before = await setup(client)
    rule = {"id": "r1", "clauses": [{**ORG, "negate": False}], "variation": 1}
    r = await send(client, URL, JSON_PATCH, [
        {"op": "test", "path": "/version", "value": before["version"]},
        {"op": "replace", "path": "/on", "value": False},
        {"op": "add", "path": "/rules/-", "value": rule},
        {"op": "copy", "from": "/variations/0", "path": "/variations/-"},
    ])
    assert r.status_code == 200, r.text
    flag = await stored(client)
    assert flag["on"] is False and flag["rules"] == [rule]
    assert flag["variations"] == [*before["variations"], before["variations"][0]]
    assert flag["version"] == before["version"] + 1
    r = await send(client, SEG_URL, JSON_PATCH, [{"op": "add", "path": "/excluded/-",
                                                  "value": "u9"}])
    assert r.status_code == 200 and (await stored(client, SEG_URL))["excluded"] == ["u9"]


@pytest.mark.parametrize(("patch", "status", "words"), [
    # a stale test: the change must not happen, 409 as LaunchDarkly's PATCH answers a conflict
    ([{"op": "replace", "path": "/on", "value": False},
      {"op": "test", "path": "/version", "value": 999}], 409, "operation 1 (test /version)"),
    ([{"op": "replace", "path": "/on", "value": False},
      {"op": "remove", "path": "/rules/3"}], 400, "operation 1 (remove /rules/3)"),
    ([{"op": "jump", "path": "/on"}], 400, "operation 0: op must be"),
    ([{"op": "add", "path": "on", "value": 1}], 400, 'operation 0 (add): path: pointer "on"'),
    ({"op": "add"}, 400, "must be an array"),
    # the result is validated as a PUT is
    ([{"op": "replace", "path": "/variations", "value": "x"}], 400, "variations"),
    ([{"op": "replace", "path": "/fallthrough/variation", "value": 9}], 400,
     "fallthrough.variation: variation index 9 is out of range"),
])
async def test_json_patch_refused_and_nothing_stored(
        client: httpx.AsyncClient, patch: Any, status: int, words: str) -> None:
    before = await setup(client)
    err = error_of(await send(client, URL, JSON_PATCH, patch), status)
    assert words in err["message"]
    assert await stored(client) == before


async def test_merge_patch_unchanged(client: httpx.AsyncClient) -> None:
    before = await setup(client)
    for ctype in ("application/json", "application/merge-patch+json",
                  "application/json; charset=utf-8"):
        r = await send(client, URL, ctype, {"on": False, "offVariation": None})
        assert r.status_code == 200, r.text
    flag = await stored(client)
    assert flag["on"] is False and "offVariation" not in flag
    assert flag["version"] == before["version"] + 3


@pytest.mark.parametrize("ctype", [
    "text/plain", "application/xml", "application/json; domain-model=other.model",
    "application/patch+json", None,
])
async def test_other_types_are_415_naming_the_supported(
        client: httpx.AsyncClient, ctype: str | None) -> None:
    before = await setup(client)
    headers = {"Content-Type": ctype} if ctype else {}
    r = await client.patch(URL, content=b'{"on": false}', headers=headers)
    err = error_of(r, 415)
    for supported in ("application/merge-patch+json", "application/json-patch+json",
                      "application/json; domain-model=launchdarkly.semanticpatch"):
        assert supported in err["message"]
    assert await stored(client) == before


async def test_never_500_for_junk_patches(client: httpx.AsyncClient) -> None:
    before = await setup(client)
    junk = [*JUNK_BODIES, b'[{"op": "add", "path": "/~", "value": 1}]',
            b'{"instructions": [{"kind": null}]}', b'{"instructions": [[]]}',
            b'[{"op": "move", "from": "", "path": "/a"}]',
            b'[{"op": {}, "path": ""}]',
            b'[{"op": "remove", "path": "/rules/' + b"9" * 5000 + b'"}]',
            b'{"instructions": [{"kind": "addRule", "clauses": [1], "variationId": 0}]}',
            b'{"instructions": [{"kind": "addTargets", "variationId": [], "values": [1]}]}']
    for body in junk:
        for ctype in (SEMANTIC, JSON_PATCH):
            if body == b"[]" and ctype == JSON_PATCH:
                continue  # an empty JSON Patch is valid
            r = await client.patch(URL, content=body, headers={"Content-Type": ctype})
            assert 400 <= r.status_code < 500, (ctype, body[:60], r.text)
            error_of(r, r.status_code)
    assert await stored(client) == before
