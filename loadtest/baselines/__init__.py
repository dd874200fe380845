"""Minimal SSE servers the fan-out benchmark compares flagstream with (same clients, same run).

Every baseline speaks the same tiny contract, so `loadtest.slo` drives them all alike:

* any `GET` gets `200`, `Content-Type: text/event-stream`, a chunked body, and at once one
  `event: put` (`data: {}`);
* each line written to the server's stdin is fanned out to every open stream as
  `event: patch` with the line as its data;
* when listening it prints `listening <port>` on stdout.
"""
