"""The SSE fast path: accepting a connection, parsing its request head, admission, the stream
actor, the fan-out loop and the bytes on the wire."""
