"""The kill switch: ACTIVE, REDUCING (only position-reducing orders) or HALTED; latched; persisted in a file.

``KillSwitch()`` lives in memory (the prototype's behaviour). ``KillSwitch(path)`` keeps its state in a small JSON
file (default ``$AGENT_PIPELINE_HOME/kill_switch.json``), not in DuckDB, so the gate, the CLI, the sensor and the
metrics exporter can read it while another process holds the DuckDB write lock.

State file and audit log::

    kill_switch.json              {"state": "HALTED", "reason": "...", "by": "alice", "at": "...", "version": 7,
                                   "alg": "sha256" | "hmac-sha256", "checksum": "<digest of the other fields>"}
    kill_switch.json.audit.jsonl  one row per trip, reduce and clear: at, action, from_state, to_state, by
                                  (claimed), os_user (the account that ran it), reason, version, committed_at_epoch,
                                  state_checksum (the checksum of the state it wrote), prev (sha256 of the previous
                                  line), alg, checksum

Validity is tied to the audit trail, so an old file cannot be replayed. The state file reads as what it says only
if the audit log's last row is the change that wrote it: same version, same state, same ``state_checksum``; that
row follows the one before it (``prev``, increasing versions); and the version is not below one this process has
already seen. An older valid file copied or linked back in, a hand-written file with a recomputed checksum, or a
state whose audit row is missing therefore reads HALTED with a reason saying which. With
``AGENT_PIPELINE_KILL_SWITCH_KEY`` set, checksums are HMAC-SHA256 under that key (state and audit rows), so neither
can be forged without it, a file written without the key reads HALTED, and a switch with no state yet starts
HALTED until a person clears it. Without a key, anyone who can write both files can still forge a matching pair,
and someone who truncates the audit log and restores the matching old state together fools a process that starts
afterwards: set the key where that matters.

Fail closed: a state or audit file that is missing (once anything was audited), not a regular file (a FIFO, socket,
device, directory or symbolic link: nothing is ever followed or waited on, see ``agent_pipeline.safe_files``), too
large, unparsable, fails its checksum or names an unknown state reads as HALTED. A missing state file reads ACTIVE
only if nothing was ever audited and no key is configured.

Order of writes: the audit row is appended and fsynced first, then the state file is replaced atomically (a fresh
temporary file, fsync, rename). A crash in between leaves a state that does not match the audit: HALTED. If the
audit cannot be written, ``reduce`` and ``clear`` change nothing and raise ``KillSwitchError`` saying so. A trip
always ends HALTED: if the lock is damaged or busy it is written without the lock, if the audit cannot be written
the state is written anyway (it then reads HALTED for lack of its audit row), and if even that fails the state file
is truncated (an empty file reads HALTED); what failed is listed in the returned status's ``problems``.

Cost: every read ``lstat``s the state file and the audit log and re-validates only when either changed (a replace
is a new inode, an append a new size), and at least every ``_REVALIDATE_S``: the gate pays two system calls per
order.

Races: a change takes an exclusive ``flock`` on ``<state file>.lock``; the execution layer holds a shared lock on
it from reading the state until its orders are committed (``guard()``). So once ``trip`` returns (with the lock),
every order accepted before it is already committed and no order can be accepted after it.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent_pipeline.safe_files import FileTooLarge, fsync_dir, open_regular, read_regular, read_tail, replace_atomically
from agent_pipeline.trading.identities import os_user

STATE_FILE = "kill_switch.json"
KEY_ENV = "AGENT_PIPELINE_KILL_SWITCH_KEY"
ALG_PLAIN = "sha256"
ALG_KEYED = "hmac-sha256"
MAX_STATE_BYTES = 65_536
AUDIT_TAIL_BYTES = 262_144  # far more than the last two rows (texts are clipped to MAX_TEXT_CHARS)
_SMALL_TAIL_BYTES = 8_192  # what two ordinary rows take: read first
MAX_AUDIT_LIST_BYTES = 16 * 1024 * 1024
MAX_TEXT_CHARS = 2_000
_POLL_S = 0.002
_REVALIDATE_S = 1.0
_PAST = {"trip": "tripped", "reduce": "set to reduce-only", "clear": "cleared"}


class KillSwitchState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class KillSwitchBusy(TimeoutError):
    """The kill switch lock could not be taken in time."""


class KillSwitchError(RuntimeError):
    """A change could not be made; the message says what failed and what state the switch is in."""


@dataclass(frozen=True)
class KillSwitchStatus:
    state: KillSwitchState
    reason: str = ""
    by: str = ""
    at: str = ""
    version: int = 0
    readable: bool = True
    problems: tuple[str, ...] = ()  # what went wrong while writing this state (a trip that ended HALTED anyway)

    @property
    def enabled(self) -> bool:
        return self.state is not KillSwitchState.ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "by": self.by, "at": self.at,
                "version": self.version, "readable": self.readable, "problems": list(self.problems)}


class _Bad(ValueError):
    """The files on disk do not make a valid state; the message says why."""


@dataclass
class _Disk:
    """What the files say, for the reader's verdict and the writer's next version."""

    status: KillSwitchStatus
    file_version: int = 0
    audit_version: int = 0
    last_line: bytes | None = None
    audit_ends_open: bool = False  # the last line has no newline (a torn append): the next row starts on a new one


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in body.items() if k != "checksum"}, sort_keys=True,
                      separators=(",", ":")).encode()


def _seal(body: dict[str, Any], key: bytes | None) -> str:
    data = _canonical(body)
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()


def _legacy_checksum(body: dict[str, Any]) -> str:
    """The prototype's unkeyed checksum over five fields (state files written before ``alg`` existed)."""
    payload = {k: body[k] for k in ("state", "reason", "by", "at", "version")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_seal(body: dict[str, Any], key: bytes | None, what: str,
                legacy: Callable[[dict[str, Any]], str] | None) -> None:
    """Raise _Bad unless ``body`` carries a valid checksum: HMAC under ``key`` when one is configured.

    Without a key, a body without ``alg`` was written by the prototype: ``legacy`` gives its expected checksum
    (None: such bodies carried none and are accepted; only the audit tie vouches for them).
    """
    alg = body.get("alg")
    if key:
        if alg != ALG_KEYED:
            raise _Bad(f"{what} is not signed with {KEY_ENV} (alg {alg!r}): written without the key, or forged")
        expected = _seal(body, key)
    elif alg == ALG_KEYED:
        raise _Bad(f"{what} is signed with a key, but {KEY_ENV} is not set in this process")
    elif alg == ALG_PLAIN:
        expected = _seal(body, None)
    elif alg is None:
        if legacy is None:
            return
        expected = legacy(body)
    else:
        raise _Bad(f"{what} names an unknown checksum algorithm {alg!r}")
    checksum = body.get("checksum")
    if not isinstance(checksum, str) or not hmac.compare_digest(checksum, expected):
        raise _Bad(f"{what} fails its checksum (edited by hand, forged or damaged)")


def _int_version(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad(f"{what} has no valid version ({value!r})")
    return value


def _clip(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " [clipped]"


def _env_key() -> bytes | None:
    """The configured MAC key (``secrets.secret``: the environment, or what was taken from it at start)."""
    from agent_pipeline.trading.secrets import secret

    raw = secret(KEY_ENV)
    return raw.encode() if raw else None


def default_path(home=None) -> Path:
    from agent_pipeline.settings import pipeline_home

    return pipeline_home(home) / STATE_FILE


def unreadable(why: str) -> KillSwitchStatus:
    """The state a switch reads when what holds it cannot vouch for one: HALTED, saying why."""
    return KillSwitchStatus(KillSwitchState.HALTED, reason=f"kill switch state unreadable ({why}); reads as HALTED "
                            f"until cleared", readable=False)


def refuse_unless_trip(action: str, problems: list[str], refused: str, noted: str) -> None:
    """What a failed write does: a reduce or clear stops with ``KillSwitchError`` saying ``refused`` (the caller
    says what state that leaves); a trip adds ``noted`` to its problems and goes on, as it must end HALTED."""
    if action != "trip":
        raise KillSwitchError(f"kill switch not {_PAST[action]}: {refused}") from None
    problems.append(noted)


class LatchedSwitch:
    """What every kill switch shares, whatever holds its state (a file, a database): the three changes, the reads
    of the current state, and the in-process deferral inside ``guard()``.

    A subclass sets ``_tls`` (a ``threading.local``) and ``_clock``, reads its state in ``_read_status`` and writes
    a change in ``_write`` (which a change inside ``guard()`` reaches only when the guard ends).
    """

    _tls: threading.local
    _clock: Callable[[], datetime]

    # -- reading ---------------------------------------------------------------------------------------------
    def status(self) -> KillSwitchStatus:
        override = getattr(self._tls, "override", None)
        if override is not None:
            return override
        return self._read_status()

    def _read_status(self) -> KillSwitchStatus:
        raise NotImplementedError

    @property
    def state(self) -> KillSwitchState:
        return self.status().state

    @property
    def enabled(self) -> bool:
        return self.status().enabled

    @property
    def reason(self) -> str:
        return self.status().reason

    # -- changing --------------------------------------------------------------------------------------------
    def trip(self, reason: str = "", *, by: str | None = None) -> KillSwitchStatus:
        """Halt trading, latched: only ``clear`` undoes it, also across restarts. Always ends HALTED; what failed
        on the way is in the returned status's ``problems`` (raises ``KillSwitchError`` only if nothing at all
        could make the state read HALTED)."""
        return self._set(KillSwitchState.HALTED, "trip", reason or "tripped without a reason", by)

    def reduce(self, reason: str = "", *, by: str | None = None) -> KillSwitchStatus:
        """Allow only orders that reduce an existing position. Raises ``KillSwitchError`` if it cannot be audited."""
        return self._set(KillSwitchState.REDUCING, "reduce", reason or "reduce-only without a reason", by)

    def clear(self, reason: str = "", *, by: str | None = None) -> KillSwitchStatus:
        """Resume trading. A person does this (the CLI requires a reason); nothing clears automatically. Raises
        ``KillSwitchError`` (and changes nothing) if the change cannot be locked or audited."""
        return self._set(KillSwitchState.ACTIVE, "clear", reason or "cleared", by)

    def _set(self, state: KillSwitchState, action: str, reason: str, by: str | None) -> KillSwitchStatus:
        by = _clip(by or _default_actor())
        reason = _clip(reason)
        if getattr(self._tls, "depth", 0) > 0:
            # Inside guard(): this thread holds what a change waits for, so the persisted change waits for the
            # guard's exit; meanwhile this process already behaves as if it had happened.
            current = self.status()
            if action != "clear" and _rank(state) >= _rank(current.state):
                self._tls.override = KillSwitchStatus(state, reason, by, self._now(), current.version)
            self._tls.pending.append((state, action, reason, by))
            return self.status()
        return self._write(state, action, reason, by)

    def _write(self, state: KillSwitchState, action: str, reason: str, by: str) -> KillSwitchStatus:
        raise NotImplementedError

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat()

    # -- serialising orders against changes ------------------------------------------------------------------
    @contextmanager
    def guard(self) -> Iterator[KillSwitchStatus]:
        """The state at entry; changes asked for inside apply at once in this process and are written on exit."""
        depth = getattr(self._tls, "depth", 0)
        self._tls.depth = depth + 1
        if depth == 0:
            self._tls.pending = []
        try:
            yield self.status()
        finally:
            self._tls.depth -= 1
            if self._tls.depth == 0:
                self._flush_pending()

    def _flush_pending(self) -> None:
        pending, self._tls.pending = list(getattr(self._tls, "pending", [])), []
        self._tls.override = None
        for state, action, reason, by in pending:
            self._set(state, action, reason, by)


class KillSwitch(LatchedSwitch):
    """Manual and automatic halt. ``enabled`` is True unless ACTIVE (the prototype's meaning: "trading is stopped").

    ``key``: the MAC key for the persisted state; None reads ``$AGENT_PIPELINE_KILL_SWITCH_KEY``, ``b""`` means
    unkeyed whatever the environment says.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 10.0,
                 clock: Callable[[], datetime] | None = None, key: bytes | None = None, anchor: Any = None):
        self.path = Path(path) if path is not None else None
        self.anchor = anchor  # kill_switch_anchor.StoreAnchor: the version the files must match (None: files only)
        self.lock_timeout_s = lock_timeout_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._key = _env_key() if key is None else (key or None)
        self._mem = KillSwitchStatus(KillSwitchState.ACTIVE)
        self._mem_audit: list[dict[str, Any]] = []
        self._tls = threading.local()
        self._cache: tuple[tuple[Any, ...], float, KillSwitchStatus] | None = None
        self._high_water = 0  # the highest version this instance has seen valid: never accepted going back
        if self.path is not None:
            self.audit_path = self.path.with_name(self.path.name + ".audit.jsonl")
            self.lock_path = self.path.with_name(self.path.name + ".lock")
            self.turnstile_path = self.path.with_name(self.path.name + ".turnstile")

    @property
    def keyed(self) -> bool:
        return self._key is not None

    # -- reading ---------------------------------------------------------------------------------------------
    def _read_status(self) -> KillSwitchStatus:
        return self._mem if self.path is None else self._read()

    def _read(self) -> KillSwitchStatus:
        """The state on disk, re-validated whenever the state file or the audit log changed identity (mode,
        inode, size, mtime, ctime) and at least every ``_REVALIDATE_S``."""
        assert self.path is not None
        try:
            identity = (_identity(self.path), _identity(self.audit_path))
        except OSError as exc:
            self._cache = None
            return unreadable(f"{type(exc).__name__}: {exc}")
        cached = self._cache
        now = time.monotonic()
        if cached is not None and cached[0] == identity and now - cached[1] < _REVALIDATE_S:
            return cached[2]
        status = self._load().status
        self._cache = (identity, now, status)
        return status

    def _load(self) -> _Disk:
        """Read both files (bounded, never blocking, never following a link) and decide what they mean."""
        assert self.path is not None
        disk = _Disk(KillSwitchStatus(KillSwitchState.HALTED, readable=False))
        audit_problem = ""
        lines: list[bytes] = []
        try:
            lines, disk.audit_ends_open = _last_lines(self.audit_path)
        except FileNotFoundError:
            pass
        except (OSError, _Bad) as exc:
            audit_problem = str(exc) if isinstance(exc, _Bad) else f"audit log unusable: {exc}"
        disk.last_line = lines[-1] if lines else None
        last_row: dict[str, Any] | None = None
        if disk.last_line is not None:
            try:
                last_row = json.loads(disk.last_line)
                if not isinstance(last_row, dict):
                    raise TypeError("not a JSON object")
                disk.audit_version = _int_version(last_row.get("version"), "the last audit row")
            except (TypeError, ValueError) as exc:
                audit_problem = audit_problem or f"the audit log's last row is damaged ({exc})"
        try:
            body = self._state_body(disk)
        except FileNotFoundError:
            if audit_problem:
                disk.status = unreadable(audit_problem)
            elif disk.last_line is not None:
                disk.status = unreadable("state file missing although the audit log has entries")
            elif self._key is not None:
                disk.status = unreadable(f"no state file yet and {KEY_ENV} is set: a keyed switch starts "
                                               f"HALTED until `agent-pipeline kill-switch clear` writes a signed state")
            elif self._high_water:
                disk.status = unreadable(f"state file disappeared after version {self._high_water} was seen")
            else:
                anchored, problem = self._anchored()
                if problem:
                    disk.status = unreadable(problem)
                elif anchored is not None:
                    disk.audit_version = max(disk.audit_version, anchored)
                    disk.status = unreadable(f"the state file and its audit log are missing although the "
                                                   f"store anchors version {anchored} (both were deleted or moved)")
                else:
                    disk.status = KillSwitchStatus(KillSwitchState.ACTIVE, reason="never tripped")
            return disk
        except (OSError, FileTooLarge, _Bad) as exc:
            disk.status = unreadable(str(exc) if isinstance(exc, _Bad) else f"{type(exc).__name__}: {exc}")
            return disk
        if audit_problem:
            disk.status = unreadable(audit_problem)
            return disk
        try:
            self._check_audit_tie(body, last_row, lines)
        except _Bad as exc:
            disk.status = unreadable(str(exc))
            return disk
        version = body["version"]
        if version < self._high_water:
            disk.status = unreadable(f"state version {version} is older than version {self._high_water} "
                                           f"this process already saw (rolled back)")
            return disk
        anchored, problem = self._anchored()
        if anchored is not None:
            disk.audit_version = max(disk.audit_version, anchored)  # a writer's next version passes the anchor
        if not problem and anchored is None and self.anchor is not None and getattr(self._tls, "depth", 0) == 0:
            problem = (f"state version {version} has no anchor in the store (the files were replaced, or written "
                       f"before anchoring): a person's `kill-switch clear` anchors a new version")
        elif not problem and anchored is not None and anchored != version:
            problem = (f"state version {version} is older than version {anchored} anchored in the store (the state "
                       f"file and its audit log were rolled back together)" if anchored > version else
                       f"state version {version} is newer than version {anchored} anchored in the store (its "
                       f"anchor was never written)")
        if problem:
            disk.status = unreadable(problem)
            return disk
        self._high_water = max(version, anchored or 0)
        disk.status = KillSwitchStatus(KillSwitchState(body["state"]), body["reason"], body["by"], body["at"],
                                       version)
        return disk

    def _anchored(self) -> tuple[int | None, str]:
        """(the anchored version, why it cannot be read). Inside ``guard()`` (the execution layer holds the store)
        it is not read again: the version checked on entry is this process's high-water mark."""
        if self.anchor is None or getattr(self._tls, "depth", 0) > 0:
            return None, ""
        try:
            return self.anchor.read(), ""
        except Exception as exc:  # noqa: BLE001 - an anchor nobody can read vouches for nothing
            return None, f"the store's kill-switch anchor cannot be read ({type(exc).__name__}: {exc})"

    def _state_body(self, disk: _Disk) -> dict[str, Any]:
        """The parsed, checksum-verified state file; raises _Bad (or OSError) saying what is wrong with it."""
        assert self.path is not None
        raw = read_regular(self.path, MAX_STATE_BYTES)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _Bad(f"corrupt state file: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict):
            raise _Bad("corrupt state file: not a JSON object")
        if isinstance(body.get("version"), int) and not isinstance(body.get("version"), bool):
            disk.file_version = max(0, body["version"])
        try:
            _check_seal(body, self._key, "the state file", _legacy_checksum)
            KillSwitchState(body.get("state"))
            for name in ("reason", "by", "at"):
                if not isinstance(body.get(name), str):
                    raise _Bad(f"the state file's {name!r} is not text")
        except (KeyError, ValueError) as exc:
            raise _Bad(f"corrupt state file: {exc}") from None
        _int_version(body.get("version"), "the state file")
        return body

    def _check_audit_tie(self, body: dict[str, Any], row: dict[str, Any] | None, lines: list[bytes]) -> None:
        """The state is valid only as the result of the audit log's last row."""
        version, state = body["version"], body["state"]
        if row is None:
            raise _Bad(f"state version {version} has no audit row (written by hand, copied in, or its audit "
                       f"row was lost)")
        _check_seal(row, self._key, "the last audit row", None)
        audited = _int_version(row.get("version"), "the last audit row")
        if version < audited:
            raise _Bad(f"state version {version} is older than the last audited version {audited} (an old copy "
                       f"was put back, or a change was interrupted)")
        if version > audited:
            raise _Bad(f"state version {version} has no audit row; the last audited version is {audited} "
                       f"(written by hand or without its audit row)")
        if row.get("to_state") != state:
            raise _Bad(f"the state file says {state} but the last audit row says the switch became "
                       f"{row.get('to_state')!r}")
        if "state_checksum" in row and row["state_checksum"] != body.get("checksum"):
            raise _Bad(f"the state file is not the one audit row {audited} wrote")
        previous = lines[-2] if len(lines) >= 2 else None
        if "prev" in row:
            expected = hashlib.sha256(previous).hexdigest() if previous is not None else ""
            if row["prev"] != expected:
                raise _Bad(f"audit row {audited} does not follow the row before it (rows removed, reordered "
                           f"or copied)")
        if previous is not None:
            try:
                before = json.loads(previous)
                earlier = before.get("version") if isinstance(before, dict) else None
            except ValueError:
                earlier = None
            if isinstance(earlier, int) and not isinstance(earlier, bool) and earlier >= audited:
                raise _Bad(f"audit versions do not increase ({earlier} then {audited})")

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Trip/clear rows, oldest first (the last ``limit``; at most the last 16 MiB of the log). Damaged lines,
        and an audit log that cannot be read, are returned as ``{"raw": ...}``."""
        if self.path is None:
            rows = list(self._mem_audit)
        else:
            try:
                tail, truncated = read_tail(self.audit_path, MAX_AUDIT_LIST_BYTES)
            except FileNotFoundError:
                tail, truncated = b"", False
            except OSError as exc:
                return [{"raw": f"(audit log unreadable: {exc})"}]
            lines = tail.split(b"\n")
            if truncated:
                lines = lines[1:]
            rows = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    rows.append(row if isinstance(row, dict) else {"raw": line.decode(errors="replace")})
                except ValueError:
                    rows.append({"raw": line.decode(errors="replace")})
        return rows[-limit:] if limit else rows

    # -- changing --------------------------------------------------------------------------------------------
    def _write(self, state: KillSwitchState, action: str, reason: str, by: str) -> KillSwitchStatus:
        """In memory, or under the exclusive lock (a trip that cannot have it is written without it)."""
        if self.path is None:
            return self._apply_memory(state, action, reason, by)
        with ExitStack() as stack:
            try:
                stack.enter_context(self._lock(fcntl.LOCK_EX))
            except (KillSwitchBusy, OSError) as exc:
                problems: list[str] = []
                refuse_unless_trip(action, problems,
                                   f"cannot take its lock ({exc}); nothing was changed{_lock_advice(exc)}",
                                   f"the trip was written without the lock ({exc}); orders being committed at this "
                                   f"moment may still complete")
                return self._trip_anyway(reason, by, problems)
            if action == "trip":
                return self._trip_anyway(reason, by, [])
            return self._apply_file(state, action, reason, by, [])

    def _row(self, before: KillSwitchStatus, after: KillSwitchStatus, action: str, reason: str,
             by: str) -> dict[str, Any]:
        """What was asked (who, why) and what it did; the state keeps the first trip's reason while latched."""
        return {"at": self._now(), "action": action, "from_state": before.state.value,
                "to_state": after.state.value, "by": by, "os_user": os_user(), "reason": reason,
                "version": after.version, "committed_at_epoch": time.time()}

    def _apply_memory(self, state, action, reason, by) -> KillSwitchStatus:
        before = self._mem
        after = _next(before, state, action, reason, by, self._now(), before.version + 1)
        self._mem = after
        self._mem_audit.append(self._row(before, after, action, reason, by))
        return after

    def _trip_anyway(self, reason: str, by: str, problems: list[str]) -> KillSwitchStatus:
        """A trip that ends HALTED whatever fails: the normal write, else an empty state file, then a re-read."""
        try:
            status = self._apply_file(KillSwitchState.HALTED, "trip", reason, by, problems)
        except Exception as exc:  # anything at all: fall through to the last resort
            problems.append(f"{type(exc).__name__}: {exc}")
            status = self._read()
        if status.state is not KillSwitchState.HALTED:
            problems.append(self._blank_state())
            self._cache = None
            status = self._read()
        if status.state is not KillSwitchState.HALTED:
            raise KillSwitchError("kill switch trip FAILED, trading is not halted: " + "; ".join(problems))
        return dataclasses.replace(status, problems=tuple(problems))

    def _blank_state(self) -> str:
        """Last resort of a trip: an empty state file reads HALTED (truncating works even on a full disk)."""
        assert self.path is not None
        try:
            os.close(open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
            return f"the state file {self.path} was emptied so that it reads HALTED"
        except OSError as exc:
            return f"the state file {self.path} could not be emptied either ({exc})"

    def _apply_file(self, state: KillSwitchState, action: str, reason: str, by: str,
                    problems: list[str]) -> KillSwitchStatus:
        """Audit row first (appended, fsynced), then the state file. Raises KillSwitchError for reduce and clear
        when either cannot be written; a trip records the problem and goes on."""
        assert self.path is not None
        self._cache = None  # a writer always reads the files itself
        disk = self._load()
        before = disk.status
        version = max(disk.file_version, disk.audit_version, self._high_water, before.version) + 1
        after = _next(before, state, action, reason, by, self._now(), version)
        body = {"state": after.state.value, "reason": after.reason, "by": after.by, "at": after.at,
                "version": version, "alg": ALG_KEYED if self._key else ALG_PLAIN}
        body["checksum"] = _seal(body, self._key)
        row = self._row(before, after, action, reason, by)
        row.update(state_checksum=body["checksum"], alg=body["alg"],
                   prev=hashlib.sha256(disk.last_line).hexdigest() if disk.last_line is not None else "")
        row["checksum"] = _seal(row, self._key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._append_audit(row, disk.audit_ends_open)
        except OSError as exc:
            refuse_unless_trip(action, problems, f"the audit log {self.audit_path} cannot be written ({exc}); the "
                               f"state is unchanged ({before.state.value})",
                               f"the audit log {self.audit_path} cannot be written ({exc}); the HALTED state was "
                               f"written without its audit row")
        try:
            replace_atomically(self.path, json.dumps(body).encode())
        except OSError as exc:
            refuse_unless_trip(action, problems, f"its audit row was written but the state file {self.path} cannot "
                               f"be replaced ({exc}); the switch reads HALTED until a change succeeds",
                               f"the state file {self.path} cannot be replaced ({exc})")
        if self.anchor is not None:
            try:
                self.anchor.advance(version, after.state.value)
            except Exception as exc:  # noqa: BLE001 - the files now run ahead of the anchor: reads HALTED
                failure = f"the store anchor cannot be advanced ({type(exc).__name__}: {exc})"
                refuse_unless_trip(action, problems, f"its files were written but {failure}; the switch reads "
                                   f"HALTED until a change is anchored",
                                   f"{failure}; the switch reads HALTED until a change is anchored")
        self._cache = None
        status = self._read()
        if action != "trip" and status.state is not after.state:
            raise KillSwitchError(f"kill switch not {_PAST[action]}: after writing the change it reads "
                                  f"{status.state.value} ({status.reason}); repair the files named there")
        return dataclasses.replace(status, problems=tuple(problems))

    def _append_audit(self, row: dict[str, Any], start_new_line: bool) -> None:
        data = (b"\n" if start_new_line else b"") + json.dumps(row).encode() + b"\n"
        fd = open_regular(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.audit_path.parent)

    # -- serialising orders against trips ------------------------------------------------------------------
    @contextmanager
    def guard(self) -> Iterator[KillSwitchStatus]:
        """Hold the state steady while orders are checked and committed; yields the state at entry.

        If the shared lock cannot be had (a trip is being written, or the lock file is damaged), the block runs as
        HALTED: fail closed. Trips requested inside the block apply at once in this process and reach the file on
        exit.
        """
        if getattr(self._tls, "depth", 0) > 0 or self.path is None:
            with super().guard() as entry:
                yield entry
            return
        self._tls.pending = []
        lock = self._lock(fcntl.LOCK_SH)
        try:
            lock.__enter__()
        except KillSwitchBusy:
            lock = None
            self._tls.override = KillSwitchStatus(KillSwitchState.HALTED, "kill switch busy: a trip is being "
                                                  "written; orders wait for the next run", readable=False)
        except OSError as exc:
            lock = None
            self._tls.override = KillSwitchStatus(KillSwitchState.HALTED, f"kill switch lock unusable ({exc}); "
                                                  f"no orders until it is repaired", readable=False)
        entry = self.status()  # read (with the anchor) before the depth is set: the caller's store is not open yet
        self._tls.depth = 1
        try:
            yield entry
        finally:
            self._tls.depth = 0
            if lock is not None:
                lock.__exit__(None, None, None)
            self._flush_pending()

    @contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        """Shared (orders) or exclusive (trip/clear) hold on the state, with writer preference.

        ``flock`` lets new shared holders in while a writer waits, so a steady flow of orders could starve a
        trip. Everyone therefore passes a turnstile (``<state>.turnstile``, held exclusively for an instant by
        readers, and for the whole write by a writer): once a trip is waiting, no new order batch starts.
        Both lock files are opened like every other file here: regular files only, never a link or a FIFO.
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
        fd = open_regular(path, os.O_RDWR | os.O_CREAT)
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


def _last_lines(audit_path: Path) -> tuple[list[bytes], bool]:
    """The last two non-blank lines of the audit log (fewer when it has fewer), oldest first, and whether its
    last line lacks a newline.

    Read backwards from the end in chunks, so blank padding (newlines, spaces, tabs), after the newest row or
    between the last two, can neither push a row out of the window read nor make an older row the last one.
    Fail closed: a line longer than ``AUDIT_TAIL_BYTES`` (no row this code writes is) or more than
    ``MAX_AUDIT_LIST_BYTES`` scanned without finding two rows is damage (``_Bad``).
    """
    fd = open_regular(audit_path)
    try:
        size = os.fstat(fd).st_size
        ends_open = size > 0 and _pread(fd, size - 1, 1) != b"\n"
        lines: list[bytes] = []
        pos, partial, step = size, b"", _SMALL_TAIL_BYTES
        while pos > 0 and len(lines) < 2:
            if size - pos > MAX_AUDIT_LIST_BYTES:
                raise _Bad(f"the audit log's last {MAX_AUDIT_LIST_BYTES} bytes hold fewer than two rows (blank "
                           f"padding or damage)")
            start = max(0, pos - step)
            pieces = (_pread(fd, start, pos - start) + partial).split(b"\n")
            partial, pos, step = pieces[0], start, 65_536  # the first piece may continue before `start`
            for piece in reversed(pieces[1:]):
                if piece.strip() and len(lines) < 2:
                    lines.insert(0, piece)
            if len(partial) > AUDIT_TAIL_BYTES:
                raise _Bad("the audit log's last rows are longer than any this code writes")
        if pos == 0 and partial.strip() and len(lines) < 2:
            lines.insert(0, partial)
        return lines, ends_open
    finally:
        os.close(fd)


def _pread(fd: int, offset: int, length: int) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, length - done, offset + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_mode, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _lock_advice(exc: BaseException) -> str:
    if isinstance(exc, KillSwitchBusy):
        return "; orders are being committed or another change is running: retry"
    return "; replace the damaged lock file with an empty regular file (or remove it) and retry"


def _rank(state: KillSwitchState) -> int:
    return {KillSwitchState.ACTIVE: 0, KillSwitchState.REDUCING: 1, KillSwitchState.HALTED: 2}[state]


def _next(before: KillSwitchStatus, state: KillSwitchState, action: str, reason: str, by: str, at: str,
          version: int) -> KillSwitchStatus:
    """Latching: a trip never downgrades HALTED to REDUCING and keeps the first trip's reason."""
    if action != "clear" and _rank(before.state) > _rank(state):
        state = before.state
    if action != "clear" and before.state is state and before.readable and before.state is not KillSwitchState.ACTIVE:
        return KillSwitchStatus(state, before.reason, before.by, before.at, version)
    return KillSwitchStatus(state, reason, by, at, version)
