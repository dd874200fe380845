"""The fan-out: the same bytes to every stream of a set, and the way onto the slow path.

Theory of operation
-------------------
:func:`fan_out` writes one payload (the frames of one change joined, so each stream costs one
``send()``) to every FAST stream in one loop of non-blocking ``send()`` calls on the stdlib
socket, with no await and no task switch inside, so nothing can interleave with it. The loop
compares ``conn.state`` by identity against a local (see :mod:`streamer.fastpath.stream_conn`). The
cyclic garbage collector is disabled for the loop (re-enabled right after, if it was enabled):
a collection in the middle would stall every stream behind it.

A stream whose send would block or is partial turns SLOW (:func:`enter_slow`): the unsent
remainder and later frames go into its mailbox (:func:`queue_slow`) and its stream actor
drains them. Mailbox overflow policy: replace the backlog with a fresh ``put`` (counted as
``slow_resyncs``; the put's bytes are shared with every stream, so a slow stream costs at most
its bound plus one frame remainder). A stream that was reset is dropped from the set and asked
to close (``reset``). The caller is the environment actor (:mod:`streamer.environments.env_actor`),
which owns the sets and knows each stream's ``put``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import TypeVar

from streamer.fastpath.mailbox import HEARTBEAT_KEY, PUT_KEY
from streamer.fastpath.stream_conn import CLOSED, FAST, StreamConn
from streamer.fastpath.worker_counters import WorkerCounters

Frames = list[tuple[tuple[str, str], bytes]]
ConnT = TypeVar("ConnT", bound=StreamConn)
PutFor = Callable[[StreamConn], bytes]  # a stream's fresh put, for the overflow policy


def fan_out(subs: set[ConnT], frames: Frames, counters: WorkerCounters, put_for: PutFor) -> None:
    """Write ``frames`` to every stream in ``subs``: the hot loop. A stream that does not take
    them whole enters (or stays on) the slow path; ``put_for`` gives a stream's fresh ``put``
    for the mailbox's overflow policy."""
    if not subs:
        return
    payload = frames[0][1] if len(frames) == 1 else b"".join(f for _, f in frames)
    size = len(payload)
    trouble: list[tuple[ConnT, int]] = []
    fast = FAST  # a local: the loop compares it once per stream
    gc_was_enabled = gc.isenabled()
    gc.disable()
    t_wall, t_cpu = time.perf_counter_ns(), time.thread_time_ns()
    try:
        for conn in subs:
            if conn.state is not fast:
                trouble.append((conn, -1))
                continue
            try:
                sent = conn.sock.send(payload)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = -2
            if sent != size:
                trouble.append((conn, sent))
    finally:
        wall, cpu = time.perf_counter_ns() - t_wall, time.thread_time_ns() - t_cpu
        if gc_was_enabled:
            gc.enable()
    counters.fanned_out(len(subs), wall, cpu)
    for conn, sent in trouble:
        if conn.state is CLOSED or sent == -2:
            subs.discard(conn)
            if sent == -2:
                conn.request_close("reset")
        elif sent == -1:
            queue_slow(conn, frames, counters, put_for)
        else:
            enter_slow(conn, frames, sent, counters, put_for)


def enter_slow(conn: StreamConn, frames: Frames, sent: int, counters: WorkerCounters,
               put_for: PutFor) -> None:
    """The first ``sent`` bytes of the joined frames went out; queue the rest."""
    counters.slow_entries += 1
    rest = frames
    for i, (_, frame) in enumerate(frames):
        if sent < len(frame):
            conn.mailbox.set_inflight(memoryview(frame)[sent:])
            rest = frames[i + 1:]
            break
        sent -= len(frame)
    conn.enter_slow()
    queue_slow(conn, rest, counters, put_for)


def queue_slow(conn: StreamConn, frames: Frames, counters: WorkerCounters,
               put_for: PutFor) -> None:
    """Queue ``frames`` in a slow stream's mailbox; past its bound, replace the backlog with a
    fresh ``put`` (the overflow policy, counted as ``slow_resyncs``)."""
    mailbox = conn.mailbox
    for key, frame in frames:
        if key == HEARTBEAT_KEY:
            mailbox.push_heartbeat(frame)
        elif key == PUT_KEY:
            mailbox.reset_to_put(frame)
        elif not mailbox.push(key, frame):
            mailbox.reset_to_put(put_for(conn))  # the put includes this change
            counters.slow_resyncs += 1
            return
