"""The kill switch: ACTIVE, REDUCING (only position-reducing orders) or HALTED; latched; persisted in a file.

``KillSwitch()`` lives in memory (the seed's behaviour). ``KillSwitch(path)`` keeps its state in a small JSON file
(default ``$AGENT_PIPELINE_HOME/kill_switch.json``), not in DuckDB, so the gate, the CLI, the sensor and the
metrics exporter can read it while another process holds the DuckDB write lock. The file is replaced atomically
(write a temporary file, fsync, ``os.replace``), so a reader sees the old or the new state, never half of one.
Every read ``stat``s the file and re-reads it whenever it changed (a replace is a new inode), so the gate pays
one system call per order for the persisted state.

State file (read it with ``KillSwitch(path).status()``; the metrics exporter may parse it directly)::

    {"state": "HALTED", "reason": "...", "by": "alice", "at": "2026-01-01T00:00:00+00:00", "version": 3,
     "checksum": "<sha256 of the other fields as sorted compact JSON>"}

Fail closed: a state file that cannot be read, does not parse, fails its checksum or names an unknown state reads
as HALTED. A missing file reads as ACTIVE only if the audit log is missing too (nothing was ever tripped).

Audit: every trip, reduce and clear appends one JSON line to ``<state file>.audit.jsonl`` with
``at, action, from_state, to_state, by, reason, version``.

Races: a trip takes an exclusive ``flock`` on ``<state file>.lock``; the execution layer holds a shared lock on it
from reading the state until its orders are committed (``guard()``). So once ``trip`` returns, every order accepted
before it is already committed and no order can be accepted after it.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

STATE_FILE = "kill_switch.json"
_POLL_S = 0.002
_REVALIDATE_S = 1.0


class KillSwitchState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class KillSwitchBusy(TimeoutError):
    """The kill switch lock could not be taken in time."""


@dataclass(frozen=True)
class KillSwitchStatus:
    state: KillSwitchState
    reason: str = ""
    by: str = ""
    at: str = ""
    version: int = 0
    readable: bool = True

    @property
    def enabled(self) -> bool:
        return self.state is not KillSwitchState.ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "by": self.by, "at": self.at,
                "version": self.version, "readable": self.readable}


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


def _checksum(body: dict[str, Any]) -> str:
    payload = {k: body[k] for k in ("state", "reason", "by", "at", "version")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def default_path(home=None) -> Path:
    from agent_pipeline.settings import pipeline_home

    return pipeline_home(home) / STATE_FILE


class KillSwitch:
    """Manual and automatic halt. ``enabled`` is True unless ACTIVE (the seed's meaning: "trading is stopped")."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 10.0,
                 clock: Callable[[], datetime] | None = None):
        self.path = Path(path) if path is not None else None
        self.lock_timeout_s = lock_timeout_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._mem = KillSwitchStatus(KillSwitchState.ACTIVE)
        self._mem_audit: list[dict[str, Any]] = []
        self._tls = threading.local()
        self._cache: tuple[tuple[int, ...], float, KillSwitchStatus] | None = None
        if self.path is not None:
            self.audit_path = self.path.with_name(self.path.name + ".audit.jsonl")
            self.lock_path = self.path.with_name(self.path.name + ".lock")
            self.turnstile_path = self.path.with_name(self.path.name + ".turnstile")

    # -- reading ---------------------------------------------------------------------------------------------
    def status(self) -> KillSwitchStatus:
        override = getattr(self._tls, "override", None)
        if override is not None:
            return override
        if self.path is None:
            return self._mem
        return self._read()

    def _read(self) -> KillSwitchStatus:
        """The state on disk. One ``stat`` per call; the file is re-read and re-verified whenever its identity
        (inode, size, mtime, ctime) changes, and at least every ``_REVALIDATE_S`` regardless. Writers replace the
        file (a new inode), so a trip is seen by the very next read."""
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._cache = None
            try:
                audited = self.audit_path.stat().st_size > 0
            except FileNotFoundError:
                audited = False
            except OSError as exc:
                return self._unreadable(f"audit log unreadable: {exc}")
            if audited:
                return self._unreadable("state file missing although the audit log has entries")
            return KillSwitchStatus(KillSwitchState.ACTIVE, reason="never tripped")
        except OSError as exc:
            self._cache = None
            return self._unreadable(f"{type(exc).__name__}: {exc}")
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._cache
        now = time.monotonic()
        if cached is not None and cached[0] == identity and now - cached[1] < _REVALIDATE_S:
            return cached[2]
        self._cache = None
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                raw = os.read(fd, 65_536)
            finally:
                os.close(fd)
        except OSError as exc:
            return self._unreadable(f"{type(exc).__name__}: {exc}")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            if body.get("checksum") != _checksum(body):
                raise ValueError("checksum mismatch (edited by hand or damaged)")
            state = KillSwitchState(body["state"])
            version = body["version"]
            if isinstance(version, bool) or not isinstance(version, int):
                raise ValueError("version is not an integer")
            status = KillSwitchStatus(state, str(body["reason"]), str(body["by"]), str(body["at"]), version)
        except Exception as exc:  # anything odd in the file is a halt
            return self._unreadable(f"corrupt state file: {type(exc).__name__}: {exc}")
        self._cache = (identity, now, status)
        return status

    def _unreadable(self, why: str) -> KillSwitchStatus:
        return KillSwitchStatus(KillSwitchState.HALTED, reason=f"kill switch state unreadable ({why}); "
                                f"reads as HALTED until cleared", readable=False)

    @property
    def state(self) -> KillSwitchState:
        return self.status().state

    @property
    def enabled(self) -> bool:
        return self.status().enabled

    @property
    def reason(self) -> str:
        return self.status().reason

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Trip/clear rows, oldest first (the last ``limit``). Damaged lines are returned as ``{"raw": ...}``."""
        if self.path is None:
            rows = list(self._mem_audit)
        else:
            try:
                lines = self.audit_path.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            rows = []
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    rows.append({"raw": line})
        return rows[-limit:] if limit else rows

    # -- changing --------------------------------------------------------------------------------------------
    def trip(self, reason: str = "", *, by: str | None = None) -> KillSwitchStatus:
        """Halt trading. Latched: only ``clear`` undoes it, also across restarts."""
        return self._set(KillSwitchState.HALTED, "trip", reason or "tripped without a reason", by)

    def reduce(self, reason: str = "", *, by: str | None = None) -> KillSwitchStatus:
        """Allow only orders that reduce an existing position."""
        return self._set(KillSwitchState.REDUCING, "reduce", reason or "reduce-only without a reason", by)

    def clear(self, reason: str = "", *, by: str | None = None) -> KillSwitchStatus:
        """Resume trading. A person does this (the CLI requires a reason); nothing clears automatically."""
        return self._set(KillSwitchState.ACTIVE, "clear", reason or "cleared", by)

    def _set(self, state: KillSwitchState, action: str, reason: str, by: str | None) -> KillSwitchStatus:
        by = by or _default_actor()
        if getattr(self._tls, "depth", 0) > 0:
            # Inside guard(): this thread holds the shared lock, so the persisted change waits for the guard's
            # exit; meanwhile this process already behaves as if it had happened.
            current = self.status()
            if action != "clear" and _rank(state) >= _rank(current.state):
                self._tls.override = KillSwitchStatus(state, reason, by, self._now(), current.version)
            self._tls.pending.append((state, action, reason, by))
            return self.status()
        if self.path is None:
            return self._apply_memory(state, action, reason, by)
        with self._lock(fcntl.LOCK_EX):
            return self._apply_file(state, action, reason, by)

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat()

    def _row(self, before: KillSwitchStatus, after: KillSwitchStatus, action: str, reason: str,
             by: str) -> dict[str, Any]:
        """What was asked (who, why) and what it did; the state keeps the first trip's reason while latched."""
        return {"at": self._now(), "action": action, "from_state": before.state.value,
                "to_state": after.state.value, "by": by, "reason": reason, "version": after.version,
                "committed_at_epoch": time.time()}

    def _apply_memory(self, state, action, reason, by) -> KillSwitchStatus:
        before = self._mem
        after = _next(before, state, action, reason, by, self._now())
        self._mem = after
        self._mem_audit.append(self._row(before, after, action, reason, by))
        return after

    def _apply_file(self, state, action, reason, by) -> KillSwitchStatus:
        assert self.path is not None
        self._cache = None  # a writer always reads the file itself
        before = self._read()
        after = _next(before, state, action, reason, by, self._now())
        body = {"state": after.state.value, "reason": after.reason, "by": after.by, "at": after.at,
                "version": after.version}
        body["checksum"] = _checksum(body)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._cache = None
        _fsync_dir(self.path.parent)
        with open(self.audit_path, "a") as fh:
            fh.write(json.dumps(self._row(before, after, action, reason, by)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return after

    # -- serialising orders against trips ------------------------------------------------------------------
    @contextmanager
    def guard(self) -> Iterator[KillSwitchStatus]:
        """Hold the state steady while orders are checked and committed; yields the state at entry.

        If the shared lock cannot be had (a trip is being written), the block runs as HALTED: fail closed.
        Trips requested inside the block apply at once in this process and reach the file on exit.
        """
        depth = getattr(self._tls, "depth", 0)
        if depth > 0 or self.path is None:
            self._tls.depth = depth + 1
            if depth == 0:
                self._tls.pending = []
            try:
                yield self.status()
            finally:
                self._tls.depth -= 1
                if self._tls.depth == 0:
                    self._flush_pending()
            return
        self._tls.pending = []
        try:
            lock = self._lock(fcntl.LOCK_SH)
            lock.__enter__()
        except KillSwitchBusy:
            lock = None
            self._tls.override = KillSwitchStatus(KillSwitchState.HALTED, "kill switch busy: a trip is being "
                                                  "written; orders wait for the next run", readable=False)
        self._tls.depth = 1
        try:
            yield self.status()
        finally:
            self._tls.depth = 0
            if lock is not None:
                lock.__exit__(None, None, None)
            self._flush_pending()

    def _flush_pending(self) -> None:
        pending, self._tls.pending = list(getattr(self._tls, "pending", [])), []
        self._tls.override = None
        for state, action, reason, by in pending:
            self._set(state, action, reason, by)

    @contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        """Shared (orders) or exclusive (trip/clear) hold on the state, with writer preference.

        ``flock`` lets new shared holders in while a writer waits, so a steady flow of orders could starve a
        trip. Everyone therefore passes a turnstile (``<state>.turnstile``, held exclusively for an instant by
        readers, and for the whole write by a writer): once a trip is waiting, no new order batch starts.
        """
        assert self.path is not None
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        turnstile = self._flock(self.turnstile_path, fcntl.LOCK_EX, deadline)
        try:
            main = self._flock(self.lock_path, mode, deadline)
        except BaseException:
            os.close(turnstile)
            raise
        if mode == fcntl.LOCK_SH:
            os.close(turnstile)  # readers only pass through
            turnstile = -1
        try:
            yield
        finally:
            os.close(main)
            if turnstile >= 0:
                os.close(turnstile)

    @staticmethod
    def _flock(path: Path, mode: int, deadline: float) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise KillSwitchBusy(f"{path}: locked for too long") from None
                time.sleep(_POLL_S)


def _rank(state: KillSwitchState) -> int:
    return {KillSwitchState.ACTIVE: 0, KillSwitchState.REDUCING: 1, KillSwitchState.HALTED: 2}[state]


def _next(before: KillSwitchStatus, state: KillSwitchState, action: str, reason: str, by: str,
          at: str) -> KillSwitchStatus:
    """Latching: a trip never downgrades HALTED to REDUCING and keeps the first trip's reason."""
    if action != "clear" and _rank(before.state) > _rank(state):
        state = before.state
    if action != "clear" and before.state is state and before.readable and before.state is not KillSwitchState.ACTIVE:
        return KillSwitchStatus(state, before.reason, before.by, before.at, before.version + 1)
    return KillSwitchStatus(state, reason, by, at, before.version + 1)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
