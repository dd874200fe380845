"""The cost of the fan-out loop's state check, per stream (a measurement, not a test).

``python3 -m streamer.fastpath.bench_conn_state [--streams 10000] [--loops 200]``

The fan-out loop (:func:`streamer.fastpath.fanout.fan_out`) checks ``conn.state`` once per
stream per change. This prints that check alone, in ns per stream, three ways: the integers
the states used to be (``!=`` against a module global),
:class:`~streamer.fastpath.stream_conn.ConnState`
compared by identity against a member bound to a local (what the loop does), and the same
enum compared with ``!=`` against a module global (what it avoids). The best of 7 repeats.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from functools import partial

from streamer.fastpath.stream_conn import FAST, ConnState

INT_FAST = 0


class _Conn:
    __slots__ = ("state",)

    def __init__(self, state: object) -> None:
        self.state = state


def _int_ne_global(conns: list[_Conn]) -> int:
    n = 0
    for conn in conns:
        if conn.state != INT_FAST:
            n += 1
    return n


def _enum_is_local(conns: list[_Conn]) -> int:
    n = 0
    fast = FAST
    for conn in conns:
        if conn.state is not fast:
            n += 1
    return n


def _enum_ne_global(conns: list[_Conn]) -> int:
    n = 0
    for conn in conns:
        if conn.state != FAST:
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--loops", type=int, default=200)
    a = p.parse_args()
    cases: list[tuple[str, object, Callable[[list[_Conn]], int]]] = [
        ("int, != module global (before)", INT_FAST, _int_ne_global),
        ("ConnState, is not local (the loop)", ConnState.FAST, _enum_is_local),
        ("ConnState, != module global", ConnState.FAST, _enum_ne_global),
    ]
    for name, fast, check in cases:
        conns = [_Conn(fast) for _ in range(a.streams)]
        best = min(timeit.repeat(partial(check, conns), number=a.loops, repeat=7))
        print(f"{name}: {best / a.loops / a.streams * 1e9:.1f} ns per stream")


if __name__ == "__main__":
    main()
