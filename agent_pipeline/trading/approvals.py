"""Two-person rule: a strategy trades only with approvals from two distinct people, bound to its hash.

A strategy is identified by ``AgentSpec.fingerprint()`` (a hash of its code reference and configuration), so
changing the code reference or any parameter makes earlier approvals stop counting. A token is

    base64url(JSON payload) "." hex(HMAC-SHA256(key, base64url part))

with payload ``{"v": 1, "strategy_hash", "agent", "approver", "issued_at", "expires_at", "nonce"}`` (times as
Unix seconds). The key comes from the environment variable ``AGENT_PIPELINE_APPROVAL_KEY``; without it nothing
can be approved or verified. Tokens are stored in the DuckDB table ``strategy_approvals`` by
``agent-pipeline approve``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent_pipeline.trading.config import APPROVAL_KEY_ENV
from agent_pipeline.trading.reasons import Reason

REQUIRED_APPROVERS = 2
DEFAULT_TTL = timedelta(days=30)


class ApprovalError(ValueError):
    """An approval cannot be issued (no key, bad input)."""


def approval_key(environ=None) -> bytes | None:
    raw = (environ if environ is not None else os.environ).get(APPROVAL_KEY_ENV, "")
    return raw.encode() if raw else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Approval:
    strategy_hash: str
    agent: str
    approver: str
    issued_at: float
    expires_at: float
    nonce: str
    token: str


def issue(strategy_hash: str, approver: str, *, agent: str = "", key: bytes | None = None,
          ttl: timedelta = DEFAULT_TTL, now: datetime | None = None) -> Approval:
    """Sign one person's approval of one strategy hash."""
    key = key if key is not None else approval_key()
    if not key:
        raise ApprovalError(f"set {APPROVAL_KEY_ENV} to sign approvals")
    if not strategy_hash or not isinstance(strategy_hash, str):
        raise ApprovalError("strategy_hash must be a non-empty string")
    if not approver or not isinstance(approver, str) or not approver.strip():
        raise ApprovalError("approver must be a non-empty name")
    seconds = ttl.total_seconds()
    if not math.isfinite(seconds) or seconds <= 0:
        raise ApprovalError(f"ttl must be positive, got {ttl}")
    issued = (now or datetime.now(UTC)).timestamp()
    payload = {"v": 1, "strategy_hash": strategy_hash, "agent": agent, "approver": approver.strip(),
               "issued_at": issued, "expires_at": issued + seconds, "nonce": secrets.token_hex(8)}
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    token = f"{body}.{_sign(key, body)}"
    return Approval(strategy_hash, agent, payload["approver"], issued, payload["expires_at"], payload["nonce"], token)


def decode(token: str) -> dict:
    """The unverified payload of a token (for display); raises ValueError when it does not parse."""
    body, _, _sig = str(token).partition(".")
    payload = json.loads(_unb64(body))
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


@dataclass(frozen=True)
class ApprovalCheck:
    ok: bool
    code: Reason
    message: str
    approvers: tuple[str, ...] = ()


def verify(tokens: Iterable[str] | None, strategy_hash: str, *, key: bytes | None,
           now: datetime) -> ApprovalCheck:
    """Two valid approvals from distinct approvers for exactly this hash, else the most telling denial."""
    tokens = list(tokens or [])
    if not tokens:
        return ApprovalCheck(False, Reason.APPROVAL_MISSING,
                             f"strategy {strategy_hash[:12]} has no approvals; run `agent-pipeline approve` twice")
    if not key:
        return ApprovalCheck(False, Reason.APPROVAL_KEY_MISSING,
                             f"{APPROVAL_KEY_ENV} is not set: approvals cannot be verified")
    stamp = now.timestamp()
    approvers: set[str] = set()
    problems: dict[Reason, str] = {}
    for token in tokens:
        if not isinstance(token, str):
            problems.setdefault(Reason.APPROVAL_FORGED, f"token is not a string: {type(token).__name__}")
            continue
        body, dot, sig = token.partition(".")
        if not dot or not hmac.compare_digest(_sign(key, body), sig):
            problems.setdefault(Reason.APPROVAL_FORGED, "a token's signature does not verify")
            continue
        try:
            payload = decode(token)
            expires = float(payload["expires_at"])
            approver = str(payload["approver"])
            bound = payload["strategy_hash"]
        except Exception as exc:
            problems.setdefault(Reason.APPROVAL_FORGED, f"a signed token does not parse: {exc}")
            continue
        if bound != strategy_hash:
            problems.setdefault(Reason.APPROVAL_MISMATCH,
                                f"a token approves strategy {str(bound)[:12]}, not {strategy_hash[:12]}")
            continue
        if not math.isfinite(expires) or expires <= stamp:
            problems.setdefault(Reason.APPROVAL_EXPIRED, f"{approver}'s approval expired")
            continue
        approvers.add(approver)
    if len(approvers) >= REQUIRED_APPROVERS:
        return ApprovalCheck(True, Reason.OK, "approved by " + ", ".join(sorted(approvers)), tuple(sorted(approvers)))
    for code in (Reason.APPROVAL_FORGED, Reason.APPROVAL_EXPIRED, Reason.APPROVAL_MISMATCH):
        if code in problems:
            return ApprovalCheck(False, code, problems[code], tuple(sorted(approvers)))
    return ApprovalCheck(False, Reason.APPROVAL_SINGLE_APPROVER,
                         f"only {len(approvers)} distinct approver(s) ({', '.join(sorted(approvers))}); "
                         f"{REQUIRED_APPROVERS} needed", tuple(sorted(approvers)))


def builtin_fingerprints() -> frozenset[str]:
    """Hashes of the stock built-in agents, exempt when ``approval_exempt_builtins`` is on."""
    from agent_pipeline.agents.registry import builtin_specs

    return frozenset(spec.fingerprint() for spec in builtin_specs())
