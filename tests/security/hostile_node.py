"""A real node for the adversarial suite, the requests it gets, and the verdict on each.

:func:`start_security_node` runs ``flagstream serve`` with two workers (tests/e2e/node_proc.py)
and gives it an environment ``sec`` whose credentials the probes use (its SDK and mobile keys
rotated once, so the rotated-out keys are still in their grace period), a secure-mode
environment ``secure``, and a ``victim`` environment that admin probes may change freely.

:class:`Prober` sends raw HTTP/1.1 requests over loopback and judges each: a 5xx,
no answer within the deadline (a hang), a refused connection, or a worker process that exited
(the supervisor's children, read from ``/proc``, changed) are findings; so is a 2xx for a
credential the route must not accept. A stream answered 200 is read until its head and first
event, then closed. Findings are collected, not raised, so one run reports every distinct
failure (route, input, what happened) instead of stopping at the first; the tests assert the
collection is empty. After a worker exit the prober waits (bounded) for the supervisor to
replace it, and after ``MAX_WORKER_EXITS`` it stops sending so a node that keeps crashing
cannot stretch the run. Probes go out in parallel batches (see :meth:`Prober.flush`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from tests.e2e.node_proc import NodeProcess, addr, bool_flag, open_stream, serve_argv, wait_until
from tests.security.hostile_inputs import b64url
from tests.security.routes import Body, Cred, Route

WORKERS = 2
REQUEST_TIMEOUT_S = 5.0
MAX_WORKER_EXITS = 4
BATCH = 48
STREAM_BATCH = 8
EXIT_NOTICE_S = 2.0
EXAMPLES = int(os.environ.get("FLAGSTREAM_SECURITY_EXAMPLES", "60"))

CONTEXT = b'{"kind":"user","key":"u1","name":"Ann"}'
SEGMENT = {"included": [], "excluded": [], "rules": [], "salt": "s"}
VICTIM = "victim"


def worker_pids(supervisor: int) -> frozenset[int]:
    """The supervisor's living child processes (its workers), from every thread's
    ``children``: trio starts processes from worker threads, so the main thread's list alone
    is empty. A child that exited but is not reaped yet (state Z) does not count."""
    pids: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{supervisor}/task").iterdir())
    except OSError:
        return frozenset()
    for task in tasks:
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # the thread ended while we read
            continue
    return frozenset(p for p in pids if _alive(p))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@dataclass
class SecurityNode:
    node: NodeProcess
    credentials: dict[str, bytes]  # kind -> value as sent (bytes: some are not text)
    secure_client_id: str
    initial_pids: frozenset[int] = frozenset()
    bystanders: list[socket.socket] = field(default_factory=list)

    @property
    def pids(self) -> frozenset[int]:
        assert self.node.proc is not None
        return worker_pids(self.node.proc.pid)

    def addr(self, listener: str) -> tuple[str, int]:
        return addr(self.node.urls[listener])

    def wait_for_workers(self, timeout: float = 15.0) -> frozenset[int]:
        """The worker pids once all ``WORKERS`` run and answer ``/readyz`` with 200 (or
        whatever runs after ``timeout``): a replaced worker has no flag data at first."""
        deadline = time.monotonic() + timeout
        stable, last = 0, frozenset[int]()
        while time.monotonic() < deadline and stable < 5:  # the same full set for 0.25 s
            pids = self.pids
            stable = stable + 1 if pids == last and len(pids) == WORKERS else 0
            last = pids
            time.sleep(0.05)
        ready = 0
        while time.monotonic() < deadline and ready < 4 * WORKERS:  # the kernel picks a worker
            answer = exchange(self.addr("sdk"), b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
                              timeout=max(0.1, deadline - time.monotonic()))
            ready = ready + 1 if answer.status == 200 else 0
            if answer.status != 200:
                time.sleep(0.05)
        return self.pids


def start_security_node(data_dir: Path) -> SecurityNode:
    node = NodeProcess(serve_argv(data_dir, workers=WORKERS,
                                  extra=["--header-timeout", "2", "--key-grace", "86400"]),
                       data_dir).start()
    try:
        with node.admin as admin:
            envs = {}
            for key, secure in (("sec", False), ("secure", True), (VICTIM, False)):
                r = admin.post("/api/v1/environments",
                               json={"key": key, "name": key, "secureMode": secure})
                assert r.status_code == 201, r.text
                envs[key] = r.json()
                for k in ("f1", "f2"):
                    r = admin.put(f"/api/v1/environments/{key}/flags/{k}", json=bool_flag())
                    assert r.status_code == 201, r.text
                r = admin.put(f"/api/v1/environments/{key}/segments/f1", json=SEGMENT)
                assert r.status_code == 201, r.text
            old = envs["sec"]
            for which in ("sdk", "mobile"):
                r = admin.post("/api/v1/environments/sec/rotate",
                               json={"key": which, "graceSeconds": 86400})
                assert r.status_code == 200, r.text
            new = r.json()
        sec = SecurityNode(node, {
            "sdk": new["sdkKey"].encode(),
            "mobile": new["mobileKey"].encode(),
            "client-side ID": new["clientSideId"].encode(),
            "admin": node.token.encode(),
            "old sdk": old["sdkKey"].encode(),
            "old mobile": old["mobileKey"].encode(),
            "other env's SDK key": envs["secure"]["sdkKey"].encode(),
            "garbage": b"sdk-00000000-0000-0000-0000-000000000000",
            "empty": b"",
            "long": b"k" * 10_000,
            "non-ASCII": "sdk-\u00e9\u4e2d".encode(),
            "invalid UTF-8": b"sdk-\xff\xfe",
            "two words": b"api_key a b",
        }, envs["secure"]["clientSideId"])
        # Every worker must have the rotated keys before the probes start.
        for _ in range(2 * WORKERS):
            wait_until(lambda: _stream_ok(sec, new["sdkKey"]) and _stream_ok(sec, old["sdkKey"]),
                       10.0, "streams with the new and the old SDK key")
        for _ in range(4):  # with two workers, most likely on both
            sock, buf = open_stream(node, new["sdkKey"])
            assert b"event: put" in buf, buf[:300]
            sec.bystanders.append(sock)
        sec.initial_pids = sec.wait_for_workers()
        return sec
    except BaseException:
        node.stop()
        raise


def _stream_ok(sec: SecurityNode, key: str) -> bool:
    sock, buf = open_stream(sec.node, key)
    sock.close()
    return b"event: put" in buf


# -- requests ---------------------------------------------------------------------------------

def request_bytes(route: Route, sec: SecurityNode, *, cred: str = "", path: dict[bytes, bytes]
                  | None = None, query: bytes = b"", body: bytes | None = None,
                  headers: tuple[bytes, ...] = ()) -> bytes:
    """The raw request for ``route``: credential kind ``cred`` (the route's own kind when
    empty), path placeholders replaced by ``path`` (raw, already encoded), ``query`` (raw,
    without "?") and ``body`` (the route's valid body when None)."""
    kind = cred or {Cred.SDK: "sdk", Cred.MOBILE: "mobile", Cred.CLIENT_ID: "client-side ID",
                    Cred.ADMIN: "admin", Cred.NONE: "garbage"}[route.cred]
    value = sec.credentials[kind]
    fill: dict[bytes, bytes] = {
        b"{cred}": quote(value, safe="").encode(), b"{b64}": b64url(CONTEXT).encode(),
        b"{env}": VICTIM.encode(), b"{key}": b"f1", **(path or {})}
    target = route.path.encode()
    for name, raw in fill.items():
        target = target.replace(name, raw)
    if query or route.default_query:
        target += b"?" + (query or route.default_query.encode())
    elif route.path.startswith("/a/"):
        target += b"?d=" + b64url(b"[]").encode()
    lines = [route.method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"User-Agent: flagstream-security"]
    if route.cred in (Cred.SDK, Cred.MOBILE):
        lines.append(b"Authorization: " + value)
    elif route.cred is Cred.ADMIN:
        lines.append(b"Authorization: Bearer " + value)
    if body is None:
        body = b'{"kind": "diagnostic"}' if "diagnostic" in route.path else valid_body(route.body)
    if route.body is not Body.NONE or body:
        ctype = b"application/merge-patch+json" if route.body in MERGE_PATCHES \
            else b"application/json"
        lines += [b"Content-Type: " + ctype, b"Content-Length: " + str(len(body)).encode()]
    lines += [*headers, b"", b""]
    return b"\r\n".join(lines) + (body or b"")


_env_counter = iter(range(10**9))


MERGE_PATCHES = (Body.MERGE_PATCH, Body.SEGMENT_PATCH)


def valid_body(body: Body) -> bytes:
    match body:
        case Body.NONE:
            return b""
        case Body.CONTEXT:
            return CONTEXT
        case Body.EVENTS:
            return b"[]"
        case Body.FLAG:
            return orjson.dumps(bool_flag())
        case Body.SEGMENT:
            return orjson.dumps(SEGMENT)
        case Body.MERGE_PATCH:
            return b'{"on": false}'
        case Body.SEGMENT_PATCH:  # validation refuses fields a segment does not have
            return b'{"included": ["probe"]}'
        case Body.NEW_ENV:
            return orjson.dumps({"key": f"made-{os.getpid()}-{next(_env_counter)}"})
        case Body.ROTATE:
            return b'{"key": "sdk", "graceSeconds": 0}'
        case Body.IMPORT:
            return orjson.dumps({"flags": {"imported": bool_flag()}})
        case Body.REVERT:
            return b'{"version": 1}'
    raise ValueError(body)


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: str  # "answered", "closed" (no answer), "hang", "refused"
    status: int | None = None
    first_line: bytes = b""

    def describe(self) -> str:
        if self.verdict == "answered":
            return self.first_line.decode("latin-1")[:80]
        return self.verdict


def exchange(where: tuple[str, int], data: bytes, timeout: float = REQUEST_TIMEOUT_S) -> Answer:
    """Send ``data``; read the answer's head and body (a stream: its head and first event)."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection(where, timeout=timeout)
    except ConnectionRefusedError:
        return Answer("refused")
    except TimeoutError:
        return Answer("hang")
    buf = b""
    with sock:
        # Reset on close: thousands of probes must not leave thousands of TIME_WAIT sockets.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading a big body: read what it said
        except TimeoutError:
            return Answer("hang")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return _head_answer(buf) if _complete(buf) else Answer("hang", *_status(buf))
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except TimeoutError:
                continue
            buf += chunk
            if not chunk or _complete(buf):
                return _head_answer(buf) if b"\r\n\r\n" in buf else Answer("closed")


def _status(buf: bytes) -> tuple[int | None, bytes]:
    first = buf.split(b"\r\n", 1)[0]
    parts = first.split(b" ")
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1]), first
    return None, first


def _head_answer(buf: bytes) -> Answer:
    status, first = _status(buf)
    return Answer("answered", status, first) if status is not None else Answer("closed")


def _complete(buf: bytes) -> bool:
    """Whether ``buf`` holds a whole answer: head and Content-Length body, or a stream's head
    and first event (a blank line), or a chunked body's last chunk."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    lower = head.lower()
    if b"text/event-stream" in lower:
        return b"\n\n" in rest
    for line in lower.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length" and value.strip().isdigit():
            return len(rest) >= int(value)
    if b"chunked" in lower:
        return rest.endswith(b"0\r\n\r\n")
    return False  # until EOF


# -- judging ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Probe:
    route: Route
    what: str
    data: bytes
    may_2xx: bool | None


@dataclass
class Prober:
    """Sends probes in batches and collects findings (see the module docstring)."""

    sec: SecurityNode
    findings: dict[tuple[str, str, str], str] = field(default_factory=dict)
    worker_exits: int = 0
    sent: int = 0
    baseline: frozenset[int] = frozenset()
    queue: list[Probe] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.baseline = self.sec.wait_for_workers()

    def send(self, route: Route, what: str, data: bytes, *, may_2xx: bool | None = None) -> None:
        """Queue ``data`` for ``route``'s listener; ``what`` names the input. ``may_2xx``: False,
        a 2xx is a finding (wrong credential); True, anything else than a 2xx is one (the
        positive control); None, only the listener's own rules apply."""
        self.queue.append(Probe(route, what, data, may_2xx))
        # The stream listener's own parser and client actors are where a request can end a
        # worker: small batches there, so that few probes are sent again after an exit.
        small = any(p.route.listener == "stream" for p in self.queue)
        if len(self.queue) >= (STREAM_BATCH if small else BATCH):
            self.flush()

    def flush(self, *, parallel: bool = True) -> None:
        """Send the queued probes, ``BATCH`` at a time in parallel: an unknown credential is
        answered only after the directory's hold (about half a second), so one at a time
        would take minutes. After a worker exit during a batch, each probe of it that did not
        pass is sent again alone, so the finding names the input that ends a worker."""
        if not parallel:
            batch, self.queue = self.queue[:1], self.queue[1:]
        else:
            batch, self.queue = self.queue, []
        if not batch or self.worker_exits >= MAX_WORKER_EXITS:
            return
        mark = len(self.sec.node.output)
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            answers = list(pool.map(
                lambda p: exchange(self.sec.addr(p.route.listener), p.data), batch))
        self.sent += len(batch)
        gone = self._gone()
        if not gone and any(a.verdict == "closed" for a in answers):
            # A worker that dies on a request closes the connection first and exits only once
            # its other tasks are cancelled: look again for a while, or the exit is blamed on
            # the next probe (which its dying worker closes too).
            deadline = time.monotonic() + EXIT_NOTICE_S
            while time.monotonic() < deadline and not gone:
                time.sleep(0.02)
                gone = self._gone()
        if not gone:
            for probe, answer in zip(batch, answers, strict=True):
                self._judge(probe, answer)
            return
        log = [line[:240] for line in self.sec.node.output[mark:]
               if "exited" in line or "Error" in line][-3:]
        self.worker_exits += 1
        self.baseline = self.sec.wait_for_workers()
        if len(batch) == 1:
            # An answered probe did not end its worker: a request of an earlier batch that
            # waited in the listen queue of a restarting worker did.
            cause = "" if answers[0].verdict == "closed" else " (probably not by this probe)"
            self._add(batch[0], f"worker exited{cause} (answer: {answers[0].describe()}; "
                                f"log: {log})")
            return
        # Any probe of the batch may have been the cause, and the others may have failed only
        # because their worker died: send again, one at a time, each that did not pass. The
        # batch is named too, in case the limit on exits stops the second sending.
        suspects = [p.what for p, a in zip(batch, answers, strict=True) if a.verdict == "closed"]
        self.findings.setdefault(
            (batch[0].route.label, f"a batch of {len(batch)}", "worker exited"),
            f"worker exited; closed without an answer: {suspects[:4]}; log: {log}")
        for probe, answer in zip(batch, answers, strict=True):
            if answer.verdict != "answered" or (answer.status or 0) >= 500 \
                    or self._wrong(probe, answer):
                self.queue.append(probe)
                self.flush(parallel=False)
            else:
                self._judge(probe, answer)

    def _gone(self) -> bool:
        """Whether a worker of the baseline has exited. A worker that only appeared (one
        that an earlier test's crash left backing off, started now) is taken in quietly."""
        pids = self.sec.pids
        if self.baseline - pids:
            return True
        self.baseline = pids
        return False

    @staticmethod
    def _wrong(probe: Probe, answer: Answer) -> bool:
        ok = answer.status is not None and 200 <= answer.status < 300
        return (probe.may_2xx is False and ok) or (probe.may_2xx is True and not ok)

    def _judge(self, probe: Probe, answer: Answer) -> None:
        status, may_2xx = answer.status, probe.may_2xx
        if answer.verdict in ("hang", "refused"):
            self._add(probe, f"{answer.verdict} ({answer.describe()})")
        elif status is not None and status >= 500:
            self._add(probe, f"5xx: {answer.describe()}")
        elif may_2xx is False and status is not None and 200 <= status < 300:
            self._add(probe, f"served a wrong credential: {answer.describe()}")
        elif may_2xx is True and not (status is not None and 200 <= status < 300):
            self._add(probe, f"refused the right credential: {answer.describe()}")

    def _add(self, probe: Probe, problem: str) -> None:
        self.findings.setdefault((probe.route.label, probe.what, problem.split(":")[0]),
                                 f"{problem}; request {probe.data[:160]!r}")

    def report(self) -> str:
        self.flush()
        lines = [f"{route}  <-  {what}: {detail}"
                 for (route, what, _), detail in sorted(self.findings.items())]
        if self.worker_exits >= MAX_WORKER_EXITS:
            lines.append(f"stopped probing after {MAX_WORKER_EXITS} worker exits")
        shown = lines[:60]
        more = f"\n... and {len(lines) - 60} more" if len(lines) > 60 else ""
        return f"{len(lines)} finding(s) in {self.sent} probes:\n" + "\n".join(shown) + more


def settings_kwargs() -> dict[str, Any]:
    """Hypothesis settings for probes against the node: no deadline (the network decides), no
    shrinking (findings are collected, nothing fails inside), reproducible draws."""
    from hypothesis import HealthCheck, Phase

    return {"max_examples": EXAMPLES, "deadline": None, "database": None, "derandomize": True,
            "phases": [Phase.explicit, Phase.generate],
            "suppress_health_check": list(HealthCheck)}


def read_all(where: tuple[str, int], data: bytes, timeout: float = 15.0,
             answers: int | None = None) -> tuple[bytes, bool]:
    """Send ``data`` and read until the server closes, ``answers`` status lines have come
    (then: not closed, as far as this knows), or ``timeout`` passes: everything received,
    and whether the server closed the connection. The timeout is a bound for a server that
    never answers, not a measure: a loaded machine may take seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    with socket.create_connection(where, timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except (ConnectionResetError, BrokenPipeError):
                return buf, True
            if not chunk:
                return buf, True
            buf += chunk
            if answers is not None and buf.count(b"HTTP/1.1 ") >= answers:
                break
    return buf, False
