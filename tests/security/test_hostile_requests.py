"""Hostile requests against one real node's three listeners (issue 12, "What to build" 6).

Every test sends its probes through a :class:`~tests.security.hostile_node.Prober`, which
finds 5xx answers, hangs, refused connections, worker exits and wrongly accepted credentials,
and asserts that it found none; the failure message lists each distinct finding with its
route and input. The last test checks that the node came through: the same worker pids as
at the start, and bystander ``/all`` streams opened before the first probe still receive a
flag change. See README.md beside this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.e2e.node_proc import bool_flag, open_stream, wait_for_bytes
from tests.security.hostile_inputs import (
    CANON_BODIES,
    CANON_SEGMENTS,
    CANON_VALUES,
    b64url,
    context_with,
    hostile_bodies,
    hostile_contexts,
    hostile_segments,
    render,
)
from tests.security.hostile_node import (
    Prober,
    SecurityNode,
    exchange,
    read_all,
    request_bytes,
    settings_kwargs,
    start_security_node,
)
from tests.security.routes import ROUTES, Body, Cred, Route, accepts

pytestmark = pytest.mark.e2e

CONTEXT_ROUTES = [r for r in ROUTES if "{b64}" in r.path or r.body is Body.CONTEXT]
BODY_ROUTES = [r for r in ROUTES if r.body not in (Body.NONE, Body.CONTEXT)]


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityNode]:
    data = tmp_path_factory.mktemp("security") / "data"
    node = start_security_node(data)
    try:
        yield node
    finally:
        for sock in node.bystanders:
            sock.close()
        node.node.stop()


def _context_request(sec: SecurityNode, route: Route, raw: bytes, *, secure: bool,
                     query: bytes = b"") -> bytes:
    path = {b"{cred}": quote(sec.secure_client_id).encode()} if secure else {}
    if "{b64}" in route.path:
        path[b"{b64}"] = b64url(raw).encode()
        return request_bytes(route, sec, path=path, query=query)
    return request_bytes(route, sec, path=path, query=query, body=raw)


def _assert_clean(prober: Prober) -> None:
    prober.flush()
    assert not prober.findings and prober.worker_exits == 0, prober.report()


def test_every_credential_on_every_route(sec: SecurityNode) -> None:
    """Each credential kind on each route: the kinds the route accepts get a 2xx (so the
    request reaches the handler), every other kind gets no 2xx; nothing gets a 5xx."""
    prober = Prober(sec)
    for route in ROUTES:
        if route.cred is Cred.NONE:
            prober.send(route, "no credential", request_bytes(route, sec), may_2xx=True)
            continue
        for kind in sec.credentials:
            prober.send(route, f"credential {kind}", request_bytes(route, sec, cred=kind),
                        may_2xx=accepts(route, kind))
    _assert_clean(prober)


@pytest.mark.parametrize("listener", ["sdk", "stream"])
def test_canonical_hostile_contexts(sec: SecurityNode, listener: str) -> None:
    """Each category of hostile value (deep nesting, huge numbers, NaN, lone surrogates,
    invalid UTF-8, long strings) inside a context, on every context route, on a normal and a
    secure-mode environment."""
    prober = Prober(sec)
    routes = [r for r in CONTEXT_ROUTES if r.listener == listener and not r.alias]
    for label, value in CANON_VALUES.items():
        for where in ("attribute", "key", "multi"):
            raw = render(context_with(value, where))
            for route in routes:
                secure = route.cred is Cred.CLIENT_ID
                prober.send(route, f"{label} at {where}",
                            _context_request(sec, route, raw, secure=False))
                if secure and where == "attribute":
                    prober.send(route, f"{label} at {where} (secure mode)",
                                _context_request(sec, route, raw, secure=True))
    for label, raw in CANON_BODIES.items():
        for route in routes:
            prober.send(route, label, _context_request(sec, route, raw, secure=False))
    _assert_clean(prober)


@pytest.mark.parametrize("listener", ["sdk", "stream"])
def test_generated_hostile_contexts(sec: SecurityNode, listener: str) -> None:
    prober = Prober(sec)
    routes = [r for r in CONTEXT_ROUTES if r.listener == listener]

    @settings(**settings_kwargs())
    @given(st.sampled_from(routes), hostile_contexts(), st.booleans())
    def probe(route: Route, context: tuple[str, bytes], secure: bool) -> None:
        label, raw = context
        secure = secure and route.cred is Cred.CLIENT_ID
        prober.send(route, label + (" (secure mode)" if secure else ""),
                    _context_request(sec, route, raw, secure=secure))

    probe()
    _assert_clean(prober)


def _placeholders(route: Route) -> list[bytes]:
    return [p for p in (b"{cred}", b"{b64}", b"{env}", b"{key}") if p.decode() in route.path]


@pytest.mark.parametrize("listener", ["sdk", "admin", "stream"])
def test_canonical_hostile_segments_and_queries(sec: SecurityNode, listener: str) -> None:
    """Each hostile segment in every path placeholder and every query parameter of every
    route; query parameters also on the secure-mode environment (its hash ``h``)."""
    prober = Prober(sec)
    for route in (r for r in ROUTES if r.listener == listener and not r.alias):
        for label, seg in CANON_SEGMENTS.items():
            for placeholder in _placeholders(route):
                prober.send(route, f"{placeholder.decode()} = {label}",
                            request_bytes(route, sec, path={placeholder: seg}))
            for name in route.query:  # unknown names: the generated test below
                query = name.encode() + b"=" + seg
                prober.send(route, f"?{name}= {label}", request_bytes(route, sec, query=query))
                if route.cred is Cred.CLIENT_ID:
                    cred = quote(sec.secure_client_id).encode()
                    prober.send(route, f"?{name}= {label} (secure mode)",
                                request_bytes(route, sec, query=query, path={b"{cred}": cred}))
    _assert_clean(prober)


@pytest.mark.parametrize("listener", ["sdk", "admin", "stream"])
def test_generated_hostile_segments_and_queries(sec: SecurityNode, listener: str) -> None:
    prober = Prober(sec)
    routes = [r for r in ROUTES if r.listener == listener]

    @settings(**settings_kwargs())
    @given(st.sampled_from(routes), st.data())
    def probe(route: Route, data: st.DataObject) -> None:
        path: dict[bytes, bytes] = {}
        for placeholder in _placeholders(route):
            if data.draw(st.booleans()):
                path[placeholder] = data.draw(hostile_segments)
        names = st.sampled_from([n.encode() for n in route.query or ("x",)])
        params = data.draw(st.lists(st.tuples(st.one_of(names, hostile_segments),
                                              hostile_segments), max_size=3))
        query = b"&".join(n + b"=" + v for n, v in params)
        secure = route.cred is Cred.CLIENT_ID and data.draw(st.booleans())
        if secure:
            path.setdefault(b"{cred}", quote(sec.secure_client_id).encode())
        what = f"path {path!r:.120} query {query!r:.120}"
        prober.send(route, what, request_bytes(route, sec, path=path, query=query))

    probe()
    _assert_clean(prober)


@pytest.mark.parametrize("listener", ["sdk", "admin"])
def test_hostile_bodies(sec: SecurityNode, listener: str) -> None:
    """Every canonical hostile value and body, then generated ones, on every route that reads
    a body (events, the admin writes)."""
    prober = Prober(sec)
    routes = [r for r in BODY_ROUTES if r.listener == listener]
    for route in routes:
        for label, raw in CANON_BODIES.items():
            prober.send(route, label, request_bytes(route, sec, body=raw))
        for label, value in CANON_VALUES.items():
            prober.send(route, label, request_bytes(route, sec, body=render(value)))
            prober.send(route, f"[{label}]", request_bytes(route, sec, body=render([value])))

    @settings(**settings_kwargs())
    @given(st.sampled_from(routes), hostile_bodies())
    def probe(route: Route, body: tuple[str, bytes]) -> None:
        prober.send(route, body[0], request_bytes(route, sec, body=body[1]))

    probe()
    _assert_clean(prober)


MARKER = b"Marker-7f3a9c"


def _edge_cases(sec: SecurityNode) -> list[tuple[str, str, bytes, str]]:
    """(listener, name, bytes, rule): the HTTP edges of issue 12, finding 6."""
    sdk = b"Authorization: " + sec.credentials["sdk"] + b"\r\n"
    admin = b"Authorization: Bearer " + sec.credentials["admin"] + b"\r\n"
    many = b"".join(b"a%d: b\r\n" % i for i in range(1000))  # 9 kB: under the size limit
    cases = []
    for listener, post, auth in (("sdk", b"/bulk", sdk), ("admin", b"/api/v1/environments",
                                                          admin)):
        cases += [
            (listener, "1000 header lines", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many
             + b"\r\n", "4xx"),
            (listener, "Content-Length and Transfer-Encoding together",
             b"POST " + post + b" HTTP/1.1\r\nHost: x\r\n" + auth
             + b"Content-Type: application/json\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "closes"),
            (listener, "a body on GET, then a pipelined request",
             b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
             b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "answers both"),
        ]
    cases += [
        ("stream", "1000 header lines", b"GET /all HTTP/1.1\r\nHost: x\r\n" + sdk + many
         + b"\r\n", "4xx"),
        ("stream", "a 400 does not echo the request",
         b"GET /all HTTP/1.1\r\nHost: x\r\n" + MARKER + b"\r\n\r\n", "no echo"),
    ]
    return cases


def test_http_edges(sec: SecurityNode) -> None:
    """Framing edges that are not a single hostile value: RFC 9112 §6.1 (close after a
    request with both Content-Length and Transfer-Encoding), a body on a method that takes
    none (the next pipelined request is still answered), the number of header lines on the
    stream listener, and 400 bodies that must not carry the client's bytes back."""
    before = sec.wait_for_workers()
    findings = []
    cases = _edge_cases(sec)
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        # read until the answers a rule judges have come; "closes" waits for the close
        answers = {"answers both": 2, "4xx": 1, "no echo": 1, "closes": None}
        results = list(pool.map(lambda c: read_all(sec.addr(c[0]), c[2], answers=answers[c[3]]),
                                cases))
    for (listener, name, _, rule), (got, closed) in zip(cases, results, strict=True):
        # a status line follows the previous answer's body directly, with no CRLF between
        statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", got)]
        problem = None
        if any(s >= 500 for s in statuses):
            problem = f"5xx: {statuses}"
        elif rule == "closes" and not closed:
            problem = f"answered {statuses} and kept the connection open"
        elif rule == "answers both" and len(statuses) < 2 and not (
                statuses and statuses[0] == 400 and closed):
            problem = f"answered {statuses} of 2 pipelined requests"
        elif rule == "4xx" and not (statuses and 400 <= statuses[0] < 500):
            problem = f"answered {statuses}, not a 4xx"
        elif rule == "no echo" and MARKER in got:
            problem = f"the answer carries the request's bytes: {got[:200]!r}"
        if problem:
            findings.append(f"{listener}: {name}: {problem}")
    if sec.wait_for_workers() != before:
        findings.append(f"worker pids changed: {sorted(before)} -> {sorted(sec.pids)}")
    assert not findings, "\n".join(findings)


def test_node_came_through(sec: SecurityNode) -> None:
    """After every probe above: the same worker processes as before the first, bystander
    streams opened before the first probe receive a flag change, and a new stream opens."""
    problems = []
    if sec.pids != sec.initial_pids:
        problems.append(f"worker pids changed: {sorted(sec.initial_pids)} -> {sorted(sec.pids)}")
    with sec.node.admin as admin:
        r = admin.put("/api/v1/environments/sec/flags/after-attack", json=bool_flag())
        assert r.status_code == 201, r.text
    silent = [i for i, sock in enumerate(sec.bystanders)
              if not wait_for_bytes(sock, b"after-attack", 10.0)]
    if silent:
        problems.append(f"bystander streams {silent} of {len(sec.bystanders)} got no patch")
    assert not problems, "; ".join(problems)
    sock, buf = open_stream(sec.node, sec.credentials["sdk"].decode())
    sock.close()
    assert b"after-attack" in buf, buf[:300]
    assert exchange(sec.addr("sdk"), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
