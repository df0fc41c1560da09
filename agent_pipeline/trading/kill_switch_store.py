"""The kill switch kept in the store's database, for stores shared by several hosts (PostgreSQL).

Same contract as the file-backed ``KillSwitch``: ACTIVE, REDUCING or HALTED, latched, audited, failing closed.
Its state is the newest row of ``kill_switch_audit`` (one table: a state and its audit cannot disagree), each
row sealed (SHA-256, or HMAC-SHA256 under ``AGENT_PIPELINE_KILL_SWITCH_KEY``) and chained to the one before
(``prev``), with versions that only grow.

What makes it hold across hosts:

- every ``status()`` reads the newest row from the database (one indexed query on a connection the instance
  keeps), so a trip on one host denies on every other host at its next check;
- ``trip``, ``reduce`` and ``clear`` write under the store's write lock, which the execution layer holds from
  its checks until its orders are committed: once a change returns, every order accepted before it is committed
  and none is accepted after it. A trip that cannot have the lock in time is written without it (saying so);
- fail closed: a database that does not answer, a damaged, unsealed or forged row, a chain that does not follow,
  or a version below one this process has seen reads HALTED. With a key and no row yet the switch starts HALTED.

Within ``guard()`` (the execution layer holds the store's lock) a trip applies at once in this process and is
written when the guard ends, as with the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent_pipeline.store import Schema, Store, StoreBusy, begin, database_errors
from agent_pipeline.trading import kill_switch as files
from agent_pipeline.trading.identities import os_user
from agent_pipeline.trading.kill_switch import (
    KEY_ENV,
    KillSwitchError,
    KillSwitchState,
    KillSwitchStatus,
    LatchedSwitch,
    refuse_unless_trip,
    unreadable,
)

KILL_SWITCH = Schema("kill_switch", [
    """
    CREATE TABLE kill_switch_audit (
        version BIGINT PRIMARY KEY,
        changed_at VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        from_state VARCHAR NOT NULL,
        to_state VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        changed_by VARCHAR NOT NULL,
        asked_reason VARCHAR NOT NULL,
        asked_by VARCHAR NOT NULL,
        os_user VARCHAR,
        alg VARCHAR NOT NULL,
        prev VARCHAR NOT NULL,
        checksum VARCHAR NOT NULL
    );
    """,
])
_COLUMNS = ("version", "changed_at", "action", "from_state", "to_state", "reason", "changed_by", "asked_reason", "asked_by",
            "os_user", "alg", "prev", "checksum")
_NEWEST = f"SELECT {', '.join(_COLUMNS)} FROM kill_switch_audit ORDER BY version DESC LIMIT 2"
_INSERT = (f"INSERT INTO kill_switch_audit ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")
_ATTEMPTS = 5


class DatabaseKillSwitch(LatchedSwitch):
    """The kill switch of one store. ``key``: the MAC key (None reads ``$AGENT_PIPELINE_KILL_SWITCH_KEY``,
    ``b""`` means unkeyed).

    A trip halts trading on every host; it always ends HALTED unless the database cannot be written at all
    (``KillSwitchError``; every gate then reads HALTED anyway, as none can read the switch). Inside ``guard()``
    the execution layer holds the store's lock, which a change waits for.
    """

    def __init__(self, store: Store, *, lock_timeout_s: float = 10.0, key: bytes | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.store = store
        self.path = f"{store.location} (table kill_switch_audit)"  # where it lives, for people
        self.lock_timeout_s = lock_timeout_s
        self._key = files._env_key() if key is None else (key or None)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tls = threading.local()
        self._high_water = 0
        self._reader: tuple[int, Any, Any] | None = None  # (pid, context manager, connection)
        self._audit_seen = False  # the reader has seen kill_switch_audit exist (then it is not asked again)
        self._mutex = threading.Lock()

    @property
    def keyed(self) -> bool:
        return self._key is not None

    # -- reading ---------------------------------------------------------------------------------------------
    def _read_status(self) -> KillSwitchStatus:
        try:
            rows = self._read_newest()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the switch reads HALTED
            self._drop_reader()
            return unreadable(f"the database does not answer ({type(exc).__name__}: {exc})")
        return self._verdict(rows)

    def _read_newest(self) -> list[tuple]:
        with self._mutex:
            if self._reader is None or self._reader[0] != os.getpid():  # a forked child opens its own
                context = self.store.connect(read_only=True, timeout_s=self.lock_timeout_s)
                try:
                    self._reader = (os.getpid(), context, context.__enter__())
                except FileNotFoundError:  # a database without the store's tables yet: nothing was tripped
                    return []
                self._audit_seen = False
            conn = self._reader[2]
            if not self._audit_seen:  # asked until the table exists; a table dropped later fails the read (HALTED)
                if not self.store.has_table(conn, "kill_switch_audit"):
                    return []
                self._audit_seen = True
            return conn.execute(_NEWEST).fetchall()

    def _drop_reader(self) -> None:
        with self._mutex:
            reader, self._reader = self._reader, None
        if reader is not None and reader[0] == os.getpid():
            with contextlib.suppress(Exception):
                reader[1].__exit__(None, None, None)

    def close(self) -> None:
        self._drop_reader()

    def _verdict(self, rows: list[tuple]) -> KillSwitchStatus:
        if not rows:
            if self._high_water:
                return unreadable(f"the audit rows disappeared after version {self._high_water} was seen")
            if self._key is not None:
                return unreadable(f"no state yet and {KEY_ENV} is set: a keyed switch starts HALTED until "
                                   f"`agent-pipeline kill-switch clear` writes a signed state")
            return KillSwitchStatus(KillSwitchState.ACTIVE, reason="never tripped")
        newest = dict(zip(_COLUMNS, rows[0], strict=True))
        try:
            files._check_seal(newest, self._key, f"kill switch row {newest['version']}", None)
            state = KillSwitchState(newest["to_state"])
            previous = dict(zip(_COLUMNS, rows[1], strict=True)) if len(rows) > 1 else None
            expected = files._seal(previous, None) if previous is not None else ""
            if newest["prev"] != expected:
                raise files._Bad(f"kill switch row {newest['version']} does not follow the row before it "
                                 f"(rows removed or rewritten)")
        except (files._Bad, ValueError) as exc:
            return unreadable(str(exc))
        version = int(newest["version"])
        if version < self._high_water:
            return unreadable(f"state version {version} is older than version {self._high_water} this process "
                               f"already saw (rolled back)")
        self._high_water = version
        return KillSwitchStatus(state, newest["reason"], newest["changed_by"], newest["changed_at"], version)

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Trip/reduce/clear rows, oldest first (the last ``limit``)."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM kill_switch_audit ORDER BY version DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        try:
            with self.store.connect(read_only=True, timeout_s=self.lock_timeout_s) as conn:
                if not self.store.has_table(conn, "kill_switch_audit"):
                    return []
                rows = conn.execute(sql).fetchall()
        except (FileNotFoundError, StoreBusy, *database_errors()) as exc:
            return [{"raw": f"(audit unreadable: {exc})"}]
        out = []
        for row in reversed(rows):  # named as the file's audit rows are (at, by: the state's; the ask's beside)
            record = dict(zip(_COLUMNS, row, strict=True))
            record["at"], record["by"] = record.pop("changed_at"), record.pop("asked_by")
            out.append(record)
        return out

    # -- changing --------------------------------------------------------------------------------------------
    def _write(self, state: KillSwitchState, action: str, reason: str, by: str) -> KillSwitchStatus:
        """Under the store's write lock (a trip that cannot have it in time is written without it)."""
        problems: list[str] = []
        try:
            with self.store.transaction(timeout_s=self.lock_timeout_s, schema=KILL_SWITCH) as conn:
                self._append(conn, state, action, reason, by)
        except StoreBusy as exc:
            refuse_unless_trip(action, problems, f"the store is busy ({exc}); nothing was changed; retry",
                               f"the trip was written without the store's lock ({exc}); orders being committed at "
                               f"this moment may still complete")
            try:
                self._write_unlocked(state, action, reason, by)
            except Exception as inner:  # noqa: BLE001
                raise KillSwitchError(f"kill switch trip FAILED, not written to {self.store.location}: "
                                      f"{type(inner).__name__}: {inner}") from None
        except Exception as exc:  # noqa: BLE001 - the database refused: say so, never pretend it changed
            raise KillSwitchError(f"kill switch not {files._PAST[action]}: {self.store.location} refused the "
                                  f"change ({type(exc).__name__}: {exc})") from None
        return dataclasses.replace(self.status(), problems=tuple(problems))

    def _write_unlocked(self, state, action, reason, by) -> None:
        for attempt in range(_ATTEMPTS):  # another writer may take the same version: the key says so, retry
            try:
                with self.store.connect(timeout_s=self.lock_timeout_s, exclusive=False) as conn:
                    self.store.ensure(conn, KILL_SWITCH)
                    with begin(conn):
                        self._append(conn, state, action, reason, by)
                return
            except database_errors():
                if attempt == _ATTEMPTS - 1:
                    raise

    def _append(self, conn, state: KillSwitchState, action: str, reason: str, by: str) -> None:
        rows = conn.execute(_NEWEST).fetchall()
        before = self._verdict(rows)
        last = dict(zip(_COLUMNS, rows[0], strict=True)) if rows else None
        version = max(int(last["version"]) if last else 0, self._high_water, before.version) + 1
        after = files._next(before, state, action, reason, by, self._now(), version)
        row = {"version": version, "changed_at": after.at, "action": action, "from_state": before.state.value,
               "to_state": after.state.value, "reason": after.reason, "changed_by": after.by, "asked_reason": reason,
               "asked_by": by, "os_user": os_user(), "alg": files.ALG_KEYED if self._key else files.ALG_PLAIN,
               "prev": files._seal(last, None) if last else ""}
        row["checksum"] = files._seal(row, self._key)
        conn.execute(_INSERT, [row[c] for c in _COLUMNS])


def kill_switch_for(store_location, file_path, **kwargs):
    """The switch the gates of a store read: in the database for a shared store, else the file of the home with its
    version anchored in the embedded store (``store_location``: a location, a ``Store``, or empty for the store
    beside the file)."""
    from agent_pipeline.trading.kill_switch_anchor import anchored_switch

    store = store_location if isinstance(store_location, Store) else (Store(store_location) if store_location
                                                                       else None)
    if store is None or not store.shared:  # the DuckDB file of one host: the switch is the file beside it
        return anchored_switch(file_path, store, **kwargs)
    return DatabaseKillSwitch(store, **kwargs)
