"""A fault-injecting HTTP proxy between flagstream and a Kinesis-API emulator (tests only).

No emulator throttles or fails part of a batch by itself, so this proxy does. It forwards every
request to the emulator unchanged, except ``PutRecords`` calls while a fault is armed:

- ``partial``: records at indexes ``i % every == 0`` are removed before forwarding (so the
  emulator never stores them) and put back into the answer as failed entries with
  ``error_code`` (``ProvisionedThroughputExceededException`` or ``InternalFailure``);
- ``throttle``: HTTP 400 ``ProvisionedThroughputExceededException`` for the whole call;
- ``5xx``: HTTP 500 ``InternalFailure``, nothing stored;
- ``timeout_before``: holds the request past the client's read timeout, nothing stored;
- ``timeout_after``: forwards (the emulator stores the records), then holds the answer past the
  client's read timeout, so the client re-sends records that were stored: duplicates;
- ``outage``: closes the connection without answering, nothing stored.

A fault is armed for the next ``calls`` PutRecords calls (``None``: until ``clear()``). Body
re-serialisation breaks SigV4 payload hashes; the emulators do not check them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PUT_RECORDS = "Kinesis_20131202.PutRecords"


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, hold_s: float = 1.5) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.hold_s = hold_s
        self.lock = threading.Lock()
        self.fault: str | None = None
        self.remaining: int | None = None
        self.every = 3
        self.error_code = "ProvisionedThroughputExceededException"
        self.injected: Counter[str] = Counter()  # fault name -> calls affected
        self.failed_records = 0
        self.put_calls = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # -- control -----------------------------------------------------------------------------

    def arm(
        self,
        fault: str,
        *,
        calls: int | None = 1,
        every: int = 3,
        error_code: str = "ProvisionedThroughputExceededException",
    ) -> None:
        with self.lock:
            self.fault, self.remaining = fault, calls
            self.every, self.error_code = every, error_code

    def clear(self) -> None:
        with self.lock:
            self.fault, self.remaining = None, None

    def _take_fault(self) -> str | None:
        with self.lock:
            self.put_calls += 1
            if self.fault is None:
                return None
            fault = self.fault
            if self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.fault, self.remaining = None, None
            self.injected[fault] += 1
            return fault

    # -- server ------------------------------------------------------------------------------

    def start(self) -> int:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle(self) -> None:
                # The connection may be closed on purpose (outage) or by the client.
                with contextlib.suppress(OSError, ValueError):
                    super().handle()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                fault = proxy._take_fault() if target == PUT_RECORDS else None
                proxy._handle(self, body, fault)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.port = int(self._server.server_address[1])
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host",)}
        headers["Content-Length"] = str(len(body))
        conn.request("POST", handler.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        ctype = resp.getheader("Content-Type", "application/x-amz-json-1.1")
        conn.close()
        return resp.status, data, ctype

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes, fault: str | None) -> None:
        if fault == "outage":
            handler.close_connection = True
            handler.connection.close()
            return
        if fault == "timeout_before":
            time.sleep(self.hold_s)
            handler.close_connection = True
            return
        if fault == "throttle":
            return _reply(handler, 400, _error("ProvisionedThroughputExceededException"))
        if fault == "5xx":
            return _reply(handler, 500, _error("InternalFailure"))
        if fault == "partial":
            return self._partial(handler, body)
        status, data, ctype = self._forward(handler, body)
        if fault == "timeout_after":
            time.sleep(self.hold_s)
            handler.close_connection = True
            return
        _reply(handler, status, data, ctype)

    def _partial(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        request = json.loads(body)
        records = request["Records"]
        dropped = {i for i in range(len(records)) if i % self.every == 0}
        request["Records"] = [r for i, r in enumerate(records) if i not in dropped]
        if request["Records"]:
            status, data, ctype = self._forward(handler, json.dumps(request).encode())
            if status != 200:
                return _reply(handler, status, data, ctype)
            stored = iter(json.loads(data)["Records"])
        else:
            stored = iter([])
        answer = []
        for i in range(len(records)):
            if i in dropped:
                answer.append({"ErrorCode": self.error_code, "ErrorMessage": "injected"})
            else:
                answer.append(next(stored))
        with self.lock:
            self.failed_records += len(dropped)
        out = {"FailedRecordCount": len(dropped), "Records": answer}
        _reply(handler, 200, json.dumps(out).encode())


def _error(code: str) -> bytes:
    return json.dumps({"__type": code, "message": "injected by the fault proxy"}).encode()


def _reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    ctype: str = "application/x-amz-json-1.1",
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("x-amzn-RequestId", "fault-proxy")
    handler.end_headers()
    handler.wfile.write(data)
