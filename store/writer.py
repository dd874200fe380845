"""The writer actor: the only task that changes the store.

Theory of operation
-------------------
Callers (admin API handlers) put a request with a reply ticket into the bounded inbox and
wait on the ticket. The actor's loop receives requests until the oldest pending coalesced
change is due, then commits every due change in one SQLite transaction in a worker thread
(``trio.to_thread.run_sync`` with a ``CapacityLimiter(1)``, so the event loop never waits
for an fsync), answers the tickets (a write is acknowledged only after its commit) and then
publishes each change in ``seq`` order. An import or an environment creation is committed
at once; an import first flushes every pending change, so the order of seqs is the order in
which the writes were accepted.

Because one loop does everything, commits never overlap and the publisher sees seqs in
order. While a commit runs, new requests wait in the inbox (bounded: a full inbox makes
callers wait, which is the overflow policy: back-pressure on the admin API).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from bus.envelope import EnvChange, EnvironmentInfo, ItemKind
from bus.store_ports import ChangePublisher
from store.coalescer import Coalescer, Due, OpKind, Rejected, RejectReason, WriteOp, next_state
from store.containment import Failures
from store.db import EnvironmentExistsError, FlagDB
from store.normalize import new_salt
from store.records import ChangeRequest, CommittedChange, ItemId, ItemWrite, StoredItem

log = logging.getLogger(__name__)


class WriteError(Exception):
    """A write the store refused; ``errors`` are messages for the caller."""

    def __init__(self, *errors: str) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class NotFoundError(WriteError):
    pass


class InvalidError(WriteError):
    pass


class ConflictError(WriteError):
    pass


class CommitFailedError(WriteError):
    """The database refused the commit (disk full, I/O error); nothing was written."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    item: StoredItem
    created: bool


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    writes: int  # writes accepted into the coalescer
    commits: int  # SQLite transactions
    publishes: int  # bus messages handed to the publisher
    pending: int
    commit_failures: int = 0  # commits the database refused


class _Ticket:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None
        self.error: WriteError | None = None

    def resolve(self, value: Any = None, error: WriteError | None = None) -> None:
        self.value, self.error = value, error
        self.done.set()

    async def wait(self) -> Any:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(frozen=True, slots=True)
class _ItemRequest:
    op: WriteOp
    ticket: _Ticket


@dataclass(frozen=True, slots=True)
class _ImportRequest:
    """A change committed at once, after every pending one: an import, or a revert.

    ``precondition`` runs in the actor after the pending writes are committed and before
    this change is, so nothing can come between its reads and the commit; a message it
    returns refuses the change (409)."""

    change: ChangeRequest
    ticket: _Ticket
    precondition: Callable[[], str | None] | None = None


@dataclass(frozen=True, slots=True)
class _EnvRequest:
    key: str
    name: str
    secure_mode: bool
    require_approval: bool
    actor: str
    ticket: _Ticket


@dataclass(frozen=True, slots=True)
class _EnvEditRequest:
    """A change to an existing environment; ``edit`` runs in the commit thread and returns
    the bus message, or None when the environment does not exist."""

    env: str
    edit: Callable[[], EnvChange | None]
    what: str  # for the log: "rotating the sdk key of"
    removes: bool
    ticket: _Ticket


@dataclass(frozen=True, slots=True)
class _AtOnceRequest:
    """A write committed on its own at once; ``also`` commits in the same transaction."""

    op: WriteOp
    also: Callable[[sqlite3.Connection, int, int], None]
    ticket: _Ticket


_Request = _ItemRequest | _ImportRequest | _EnvRequest | _EnvEditRequest | _AtOnceRequest


class Writer:
    def __init__(self, db: FlagDB, publisher: ChangePublisher, *, window_s: float = 0.005,
                 inbox_size: int = 4096, shutdown_grace_s: float = 5.0,
                 failures: Failures | None = None) -> None:
        self._db = db
        self._publisher = publisher
        self._coalescer: Coalescer[_Ticket] = Coalescer(window_s)
        self._send, self._recv = trio.open_memory_channel[_Request](inbox_size)
        self._limiter = trio.CapacityLimiter(1)
        self._known_envs: set[str] = set()
        self._shutdown_grace_s = shutdown_grace_s
        # One write whose patch or validation fails unexpectedly is refused alone (503) and
        # counted here; the writer, and with it the store, goes on.
        self._contained = failures or Failures()
        self._writes = self._commits = self._publishes = self._failures = 0

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(self._writes, self._commits, self._publishes,
                                len(self._coalescer), self._failures)

    # -- the caller's side --------------------------------------------------------------

    async def put(self, env: str, kind: ItemKind, key: str, body: Any, *,
                  actor: str = "admin") -> WriteResult:
        return await self._item(WriteOp(ItemId(env, kind, key), OpKind.PUT, body, actor))

    async def patch(self, env: str, kind: ItemKind, key: str, patch: Any, *,
                    actor: str = "admin", comment: str | None = None) -> WriteResult:
        """``patch`` is a ``store.patch_format.Patch`` or a bare RFC 7386 merge patch."""
        return await self._item(
            WriteOp(ItemId(env, kind, key), OpKind.PATCH, patch, actor, comment))

    async def delete(self, env: str, kind: ItemKind, key: str, *,
                     actor: str = "admin") -> WriteResult:
        return await self._item(WriteOp(ItemId(env, kind, key), OpKind.DELETE, None, actor))

    async def patch_at_once(self, env: str, kind: ItemKind, key: str, patch: Any, *,
                            actor: str, comment: str | None,
                            also: Callable[[sqlite3.Connection, int, int], None]) -> WriteResult:
        """A PATCH committed at once and alone (after every pending write, with no coalescing
        window), with ``also`` in the same SQLite transaction (see ChangeRequest.also): the
        scheduler applies a scheduled change and marks it applied in one commit."""
        ticket = _Ticket()
        op = WriteOp(ItemId(env, kind, key), OpKind.PATCH, patch, actor, comment)
        await self._send.send(_AtOnceRequest(op, also, ticket))
        committed: CommittedChange = await ticket.wait()
        return WriteResult(committed.items[0].stored, committed.items[0].created)

    async def import_items(self, env: str, items: Sequence[ItemWrite], *,
                           actor: str = "admin") -> CommittedChange:
        """Commit ``items`` (already normalized) as one change; see ``store.importer``."""
        ticket = _Ticket()
        change = ChangeRequest(env, actor, tuple(items), label="import")
        await self._send.send(_ImportRequest(change, ticket))
        result: CommittedChange = await ticket.wait()
        return result

    async def revert(self, env: str, kind: ItemKind, key: str, data: dict[str, Any], *,
                     revert_of: int, actor: str = "admin", comment: str | None = None,
                     precondition: Callable[[], str | None] | None = None) -> WriteResult:
        """Write ``data`` (validated and normalized by the caller: store.history_revert) as
        the item's next version, recorded in the history as a revert of version
        ``revert_of``. It is committed at once, after every pending write (as an import
        is), so it never coalesces with another write and its history row is its own.
        ``precondition`` (e.g. "the items it names exist") is checked right before the
        commit, against the store with every earlier write committed; its message is a 409."""
        ticket = _Ticket()
        change = ChangeRequest(env, actor, (ItemWrite(kind, key, data),), comment=comment,
                               revert_of=revert_of)
        await self._send.send(_ImportRequest(change, ticket, precondition))
        result: CommittedChange = await ticket.wait()
        return WriteResult(result.items[0].stored, result.items[0].created)

    async def create_environment(self, key: str, name: str, *, secure_mode: bool = False,
                                 require_approval: bool = False,
                                 actor: str = "admin") -> EnvironmentInfo:
        ticket = _Ticket()
        await self._send.send(_EnvRequest(key, name, secure_mode, require_approval, actor,
                                          ticket))
        result: EnvironmentInfo = await ticket.wait()
        return result

    async def rotate_key(self, env: str, which: str, grace_s: float, *,
                         actor: str = "admin") -> EnvironmentInfo:
        """A new SDK key, mobile key or client-side ID; an old key works ``grace_s``
        longer, an old client-side ID not at all (see FlagDB.rotate_key)."""
        edit = partial(self._db.rotate_key, env, which, int(grace_s * 1000), actor=actor)
        return await self._edit_env(env, edit, f"rotating the {which} key of")

    async def update_environment(self, env: str, *, name: str | None, secure_mode: bool | None,
                                 require_approval: bool | None = None,
                                 actor: str = "admin") -> EnvironmentInfo:
        edit = partial(self._db.update_environment, env, name=name, secure_mode=secure_mode,
                       require_approval=require_approval, actor=actor)
        return await self._edit_env(env, edit, "updating")

    async def delete_environment(self, env: str, *, actor: str = "admin") -> EnvironmentInfo:
        """Remove the environment; the streamers drop it and end its streams."""
        edit = partial(self._db.delete_environment, env, actor=actor)
        return await self._edit_env(env, edit, "deleting", removes=True)

    async def _edit_env(self, env: str, edit: Callable[[], EnvChange | None], what: str,
                        removes: bool = False) -> EnvironmentInfo:
        ticket = _Ticket()
        await self._send.send(_EnvEditRequest(env, edit, what, removes, ticket))
        result: EnvironmentInfo = await ticket.wait()
        return result

    async def _item(self, op: WriteOp) -> WriteResult:
        ticket = _Ticket()
        await self._send.send(_ItemRequest(op, ticket))
        result: WriteResult = await ticket.wait()
        return result

    # -- the actor ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                request: _Request | None = None
                with trio.move_on_at(self._coalescer.next_due()):
                    request = await self._recv.receive()
                if request is None:
                    await self._commit(self._coalescer.take_due(trio.current_time()))
                else:
                    await self._handle(request)
        finally:
            # Shut down by deadline: commit what was accepted, within a grace period.
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._shutdown_grace_s
                await self._commit(self._coalescer.take_all())

    async def _handle(self, request: _Request) -> None:
        match request:
            case _ItemRequest(op, ticket):
                if not self._env_exists(op.item.env):
                    ticket.resolve(error=NotFoundError(f'environment "{op.item.env}" not found'))
                    return
                with self._contained.contain("writer", f"{op.op.value} {op.item}") as outcome:
                    rejected = self._coalescer.submit(op, ticket, trio.current_time(),
                                                      self._current)
                if outcome.error is not None:
                    ticket.resolve(error=CommitFailedError(
                        "the store could not apply this write; nothing was written"))
                elif rejected is not None:
                    ticket.resolve(error=rejection_error(rejected))
                else:
                    self._writes += 1
            case _ImportRequest(change, ticket, precondition):
                if not self._env_exists(change.env):
                    ticket.resolve(error=NotFoundError(f'environment "{change.env}" not found'))
                    return
                if precondition is not None:
                    await self._commit(self._coalescer.take_all())
                    with self._contained.contain("writer", f"checking {change.env}") as outcome:
                        problem = precondition()
                    if outcome.error is not None:
                        ticket.resolve(error=CommitFailedError(
                            "the store could not check this write; nothing was written"))
                        return
                    if problem is not None:
                        ticket.resolve(error=ConflictError(problem))
                        return
                await self._commit(self._coalescer.take_all(), (change, ticket))
            case _EnvRequest():
                await self._create_env(request)
            case _AtOnceRequest(op, also, ticket):
                await self._commit(self._coalescer.take_all())  # the latest state, seqs in order
                await self._at_once(op, also, ticket)
            case _EnvEditRequest(env, edit, what, removes, ticket):
                if removes:
                    # Writes accepted before the removal commit first (and go with it), so
                    # none is left pending for an environment that no longer exists.
                    await self._commit(self._coalescer.take_all())
                await self._apply_env_edit(env, edit, what, ticket)
                if removes:
                    self._known_envs.discard(env)

    async def _at_once(self, op: WriteOp, also: Callable[[sqlite3.Connection, int, int], None],
                       ticket: _Ticket) -> None:
        if not self._env_exists(op.item.env):
            ticket.resolve(error=NotFoundError(f'environment "{op.item.env}" not found'))
            return
        with self._contained.contain("writer", f"{op.op.value} {op.item}") as outcome:
            new = next_state(op, self._current(op.item), new_salt)
        if outcome.error is not None:
            ticket.resolve(error=CommitFailedError(
                "the store could not apply this write; nothing was written"))
        elif isinstance(new, Rejected):
            ticket.resolve(error=rejection_error(new))
        else:
            item = op.item
            change = ChangeRequest(item.env, op.actor, (ItemWrite(item.kind, item.key, new),),
                                   comment=op.comment, also=also)
            await self._commit([], (change, ticket))

    def _env_exists(self, env: str) -> bool:
        # Environments are created and removed only here (the cache is updated on both), so
        # a positive answer is cached.
        if env not in self._known_envs and self._db.get_environment(env) is not None:
            self._known_envs.add(env)
        return env in self._known_envs

    def _current(self, item: ItemId) -> dict[str, Any] | None:
        # A primary-key read of the live row (tens of µs), on the event loop on purpose: no
        # commit can be in flight while the loop runs, and a thread hop would cost more.
        stored = self._db.get_item(item.env, item.kind, item.key)
        return None if stored is None or stored.deleted else stored.as_dict()

    async def _commit(self, dues: list[Due[_Ticket]],
                      extra: tuple[ChangeRequest, _Ticket] | None = None) -> None:
        if not dues and extra is None:
            return
        batch = [ChangeRequest(d.item.env, d.actor, (ItemWrite(d.item.kind, d.item.key, d.value),),
                               comment=d.comment) for d in dues]
        if extra is not None:
            batch.append(extra[0])
        try:
            results = await trio.to_thread.run_sync(self._db.commit, batch, limiter=self._limiter)
        except Exception as exc:  # sqlite3 errors: disk full, I/O error, locked database
            log.exception("commit of %d changes failed", len(batch))
            self._failures += 1
            error = CommitFailedError(f"the store could not commit the write: {exc}")
            for d in dues:
                for ticket in d.tokens:
                    ticket.resolve(error=error)
            if extra is not None:
                extra[1].resolve(error=error)
            return
        self._commits += 1
        for d, committed in zip(dues, results, strict=False):
            result = WriteResult(committed.items[0].stored, committed.items[0].created)
            for ticket in d.tokens:
                ticket.resolve(result)
        if extra is not None:
            extra[1].resolve(results[-1])
        for committed in results:
            await self._publish(committed.change)

    async def _create_env(self, req: _EnvRequest) -> None:
        key, ticket = req.key, req.ticket
        try:
            msg = await trio.to_thread.run_sync(
                lambda: self._db.create_environment(
                    key, req.name, secure_mode=req.secure_mode,
                    require_approval=req.require_approval, actor=req.actor),
                limiter=self._limiter)
        except EnvironmentExistsError:
            ticket.resolve(error=ConflictError(f'environment "{key}" already exists'))
            return
        except Exception as exc:
            log.exception("creating environment %r failed", key)
            ticket.resolve(error=CommitFailedError(f"the store could not commit the write: {exc}"))
            return
        self._commits += 1
        self._known_envs.add(key)
        ticket.resolve(msg.env)
        await self._publish(msg)

    async def _apply_env_edit(self, env: str, edit: Callable[[], EnvChange | None], what: str,
                              ticket: _Ticket) -> None:
        try:
            msg = await trio.to_thread.run_sync(edit, limiter=self._limiter)
        except Exception as exc:
            log.exception("%s environment %r failed", what, env)
            ticket.resolve(error=CommitFailedError(f"the store could not commit the write: {exc}"))
            return
        if msg is None:
            ticket.resolve(error=NotFoundError(f'environment "{env}" not found'))
            return
        self._commits += 1
        ticket.resolve(msg.env)
        await self._publish(msg)

    async def _publish(self, msg: Any) -> None:
        try:
            await self._publisher.publish(msg)
        except trio.Cancelled:
            raise
        except Exception:
            # The change is committed; subscribers notice the missing seq from the next
            # heartbeat and fetch a snapshot, so a failed publish delays, never loses, it.
            log.exception("publishing seq %s failed", getattr(msg, "seq", "?"))
            return
        self._publishes += 1


def rejection_error(rejected: Rejected) -> WriteError:
    """The error a caller gets for a write the coalescer refused."""
    if rejected.reason is RejectReason.NOT_FOUND:
        return NotFoundError(*rejected.errors)
    if rejected.reason is RejectReason.CONFLICT:
        return ConflictError(*rejected.errors)
    return InvalidError(*rejected.errors)

