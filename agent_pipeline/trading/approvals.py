"""Two-person rule: a strategy trades only with approvals from two distinct people, bound to its hash.

A strategy is identified by ``AgentSpec.fingerprint()`` (a hash of its code reference and configuration), so
changing the code reference or any parameter makes earlier approvals stop counting. A token is

    base64url(JSON payload) "." hex(HMAC-SHA256(key, base64url part))

with payload ``{"v": 2, "strategy_hash", "agent", "approver", "identity", "os_user", "issued_at", "expires_at",
"nonce"}`` (times as Unix seconds; version 1 tokens of the prototype, without identity and os_user, still verify).
``approver`` is the name as claimed, ``identity`` its canonical form (``identities.canonical_identity``) and
``os_user`` the OS account that ran ``agent-pipeline approve``, taken from the process's user id: a claimed name
is recorded beside who actually signed. Tokens are stored in the DuckDB table ``strategy_approvals``.

People, not spellings: two approvals count as two people only if their names' skeletons differ
(``identities.skeleton``), so "alice", "Alice", "ALICE", "ali\\u200bce", "al1ce", "a.lice" and fullwidth
"ａｌｉｃｅ" are one person; a name that mixes scripts (a Cyrillic "а" among Latin letters) is refused, both when
signing and when verifying. Verification recomputes the identity from the signed name; nothing in the token is
trusted before its signature checks.

Keys (HMAC, so whoever verifies can also sign: keep the verifier's keys where the gate runs):

- ``AGENT_PIPELINE_APPROVAL_KEY``: one shared key. Anyone who has it can sign as anyone; with only this key a name
  is a claim, kept honest by the audit columns (``os_user``).
- ``AGENT_PIPELINE_APPROVER_KEYS``: per-approver keys, a JSON object ``{"alice": "<alice's key>", "bob": "..."}``
  in the gate's environment. Once it is set, a token counts for a name only if it is signed with that name's
  key: a shared-key token, a token signed with another person's key and a token for a name not in the object do
  not count. Each approver signs with their own key from ``AGENT_PIPELINE_APPROVER_KEY`` (or, where the whole
  object is present, with their entry in it).

Without any key nothing can be approved or verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent_pipeline.trading.config import APPROVAL_KEY_ENV
from agent_pipeline.trading.identities import IdentityError, canonical_identity, display_name, os_user, skeleton
from agent_pipeline.trading.reasons import Reason

REQUIRED_APPROVERS = 2
DEFAULT_TTL = timedelta(days=30)
MAX_TTL = timedelta(days=365)
APPROVER_KEYS_ENV = "AGENT_PIPELINE_APPROVER_KEYS"
APPROVER_KEY_ENV = "AGENT_PIPELINE_APPROVER_KEY"
TOKEN_VERSIONS = (1, 2)
MAX_TOKEN_CHARS = 4096
_LIFETIME_SLACK_S = 60.0


class ApprovalError(ValueError):
    """An approval cannot be issued (no key, bad input)."""


@dataclass(frozen=True)
class ApprovalKeys:
    """The keys a verifier holds: the shared key and/or one key per approver (``skeleton`` of the name -> key).

    ``problem`` is set when the configuration itself is broken; then nothing verifies (fail closed).
    """

    shared: bytes | None = None
    approvers: Mapping[str, bytes] = field(default_factory=dict)
    problem: str = ""

    def __bool__(self) -> bool:
        return bool(self.shared or self.approvers or self.problem)


def _secrets() -> dict[str, str]:
    """The keys as configured (``trading.secrets``: from the environment, or taken from it at start)."""
    from agent_pipeline.trading.secrets import secret_environ

    return secret_environ()


def _approver_keys(raw: str) -> dict[str, bytes]:
    """Parse ``AGENT_PIPELINE_APPROVER_KEYS``; raises ApprovalError naming what is wrong."""
    try:
        table = json.loads(raw)
    except ValueError as exc:
        raise ApprovalError(f"{APPROVER_KEYS_ENV} is not JSON ({exc}); expected {{\"name\": \"key\", ...}}") from None
    if not isinstance(table, dict) or not table:
        raise ApprovalError(f"{APPROVER_KEYS_ENV} must be a non-empty JSON object {{\"name\": \"key\", ...}}")
    keys: dict[str, bytes] = {}
    for name, key in table.items():
        try:
            identity = canonical_identity(name)
        except IdentityError as exc:
            raise ApprovalError(f"{APPROVER_KEYS_ENV}: {exc}") from None
        if not isinstance(key, str) or not key:
            raise ApprovalError(f"{APPROVER_KEYS_ENV}: the key of {name!r} must be a non-empty string")
        if skeleton(identity) in keys:
            raise ApprovalError(f"{APPROVER_KEYS_ENV}: two entries are the same person ({identity!r})")
        if key.encode() in keys.values():  # whoever holds it signs as both: one person counted twice
            raise ApprovalError(f"{APPROVER_KEYS_ENV}: {identity!r} has the same key as another approver; each "
                                f"approver needs a key of their own")
        keys[skeleton(identity)] = key.encode()
    return keys


def approval_key(environ=None) -> ApprovalKeys | None:
    """The verifier's keys from the environment, or None when no key is configured at all."""
    env = environ if environ is not None else _secrets()
    shared = env.get(APPROVAL_KEY_ENV, "").encode() or None
    raw = env.get(APPROVER_KEYS_ENV, "")
    if not raw:
        return ApprovalKeys(shared) if shared else None
    try:
        keys = _approver_keys(raw)
    except ApprovalError as exc:
        return ApprovalKeys(shared, problem=f"{exc}: approvals cannot be verified")
    if shared is not None and shared in keys.values():
        return ApprovalKeys(shared, problem=f"the shared {APPROVAL_KEY_ENV} is also an approver's key in "
                                            f"{APPROVER_KEYS_ENV}: whoever has the shared key could sign as them; "
                                            f"approvals cannot be verified")
    return ApprovalKeys(shared, keys)


def signing_key(identity: str, environ=None) -> bytes:
    """The key this process signs ``identity``'s approval with: the approver's own key before the shared one."""
    env = environ if environ is not None else _secrets()
    own = env.get(APPROVER_KEY_ENV, "")
    if own:
        return own.encode()
    if env.get(APPROVER_KEYS_ENV, ""):
        keys = _approver_keys(env[APPROVER_KEYS_ENV])
        if skeleton(identity) not in keys:
            raise ApprovalError(f"{APPROVER_KEYS_ENV} has no key for {identity!r}; set {APPROVER_KEY_ENV} to "
                                f"your own approver key")
        return keys[skeleton(identity)]
    shared = env.get(APPROVAL_KEY_ENV, "")
    if not shared:
        raise ApprovalError(f"set {APPROVER_KEY_ENV} (your own approver key) or {APPROVAL_KEY_ENV} (the shared "
                            f"key) to sign approvals")
    return shared.encode()


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
    identity: str = ""
    os_user: str = ""


def check_ttl(ttl: timedelta) -> float:
    """The lifetime in seconds if it is positive and at most ``MAX_TTL``; else ApprovalError."""
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float("nan")
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TTL.total_seconds():
        raise ApprovalError(f"ttl must be more than 0 and at most {MAX_TTL.days} days, got {ttl!r}")
    return seconds


def issue(strategy_hash: str, approver: str, *, agent: str = "", key: bytes | None = None,
          ttl: timedelta = DEFAULT_TTL, now: datetime | None = None) -> Approval:
    """Sign one person's approval of one strategy hash (with ``key``, else ``signing_key``)."""
    if not strategy_hash or not isinstance(strategy_hash, str):
        raise ApprovalError("strategy_hash must be a non-empty string")
    try:
        identity = canonical_identity(approver)
    except IdentityError as exc:
        raise ApprovalError(str(exc)) from None
    key = key if key is not None else signing_key(identity)
    if not key:
        raise ApprovalError(f"set {APPROVER_KEY_ENV} (your own approver key) or {APPROVAL_KEY_ENV} (the shared "
                            f"key) to sign approvals")
    seconds = check_ttl(ttl)
    issued = (now or datetime.now(UTC)).timestamp()
    signer = os_user()
    payload = {"v": 2, "strategy_hash": strategy_hash, "agent": agent, "approver": display_name(approver),
               "identity": identity, "os_user": signer, "issued_at": issued, "expires_at": issued + seconds,
               "nonce": secrets.token_hex(8)}
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    token = f"{body}.{_sign(key, body)}"
    return Approval(strategy_hash, agent, payload["approver"], issued, payload["expires_at"], payload["nonce"], token,
                    identity, signer)


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


class _Refused(Exception):
    def __init__(self, code: Reason, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _as_keys(key: bytes | ApprovalKeys | None) -> ApprovalKeys | None:
    if isinstance(key, ApprovalKeys):
        return key if key else None
    return ApprovalKeys(bytes(key)) if key else None


def _identity(claimed: object) -> str:
    try:
        return canonical_identity(claimed)
    except IdentityError as exc:
        raise _Refused(Reason.APPROVAL_APPROVER_INVALID, f"a token's approver is refused: {exc}") from None


def _identity_of(token: object, strategy_hash: str, keys: ApprovalKeys, stamp: float) -> str:
    """The canonical identity a valid token approves for; raises _Refused with the reason it does not count."""
    if not isinstance(token, str):
        raise _Refused(Reason.APPROVAL_FORGED, f"token is not a string: {type(token).__name__}")
    if len(token) > MAX_TOKEN_CHARS:
        raise _Refused(Reason.APPROVAL_FORGED, f"a token is longer than {MAX_TOKEN_CHARS} characters")
    body, dot, sig = token.partition(".")
    try:
        payload = decode(token) if dot else None
        if payload is None:
            raise ValueError("no signature part")
        claimed = payload["approver"]
        expires, issued = float(payload["expires_at"]), float(payload.get("issued_at", "nan"))
        bound = payload["strategy_hash"]
    except Exception as exc:
        raise _Refused(Reason.APPROVAL_FORGED, f"a token does not parse: {type(exc).__name__}: {exc}") from None
    if keys.approvers:  # the signed name picks the one key that may have signed it
        identity = _identity(claimed)
        key = keys.approvers.get(skeleton(identity))
        if key is None:
            raise _Refused(Reason.APPROVAL_APPROVER_INVALID,
                           f"{identity!r} has no approver key in {APPROVER_KEYS_ENV}: their approval does not count")
        if not hmac.compare_digest(_sign(key, body), sig):
            raise _Refused(Reason.APPROVAL_FORGED, f"{identity!r}'s approval is not signed with their own key "
                           f"(a shared-key or another approver's token does not count)")
    else:
        if keys.shared is None or not hmac.compare_digest(_sign(keys.shared, body), sig):
            raise _Refused(Reason.APPROVAL_FORGED, "a token's signature does not verify")
        identity = _identity(claimed)
    if payload.get("v") not in TOKEN_VERSIONS or isinstance(payload.get("v"), bool):
        raise _Refused(Reason.APPROVAL_FORGED, f"a token has unknown version {payload.get('v')!r}")
    if bound != strategy_hash:
        raise _Refused(Reason.APPROVAL_MISMATCH,
                       f"a token approves strategy {str(bound)[:12]}, not {strategy_hash[:12]}")
    if not math.isfinite(expires) or expires <= stamp:
        raise _Refused(Reason.APPROVAL_EXPIRED, f"{identity}'s approval expired")
    if math.isfinite(issued) and issued > stamp + _LIFETIME_SLACK_S:
        raise _Refused(Reason.APPROVAL_NOT_YET_VALID, f"{identity}'s approval is issued "
                       f"{issued - stamp:.0f} s in the future (a clock set ahead, or a token made to outlive its "
                       f"lifetime): it does not count yet")
    if not math.isfinite(issued) or expires - issued > MAX_TTL.total_seconds() + _LIFETIME_SLACK_S:
        raise _Refused(Reason.APPROVAL_EXPIRED,
                       f"{identity}'s approval claims a lifetime beyond the {MAX_TTL.days}-day maximum")
    return identity


_DENIAL_ORDER = (Reason.APPROVAL_FORGED, Reason.APPROVAL_APPROVER_INVALID, Reason.APPROVAL_NOT_YET_VALID,
                 Reason.APPROVAL_EXPIRED, Reason.APPROVAL_MISMATCH)


def verify(tokens: Iterable[str] | None, strategy_hash: str, *, key: bytes | ApprovalKeys | None,
           now: datetime) -> ApprovalCheck:
    """Two valid approvals from distinct people for exactly this hash, else the most telling denial.

    ``key`` is the shared key (bytes) or the ``ApprovalKeys`` from ``approval_key()``.
    """
    tokens = list(tokens or [])
    if not tokens:
        return ApprovalCheck(False, Reason.APPROVAL_MISSING,
                             f"strategy {strategy_hash[:12]} has no approvals; run `agent-pipeline approve` twice")
    keys = _as_keys(key)
    if keys is None:
        return ApprovalCheck(False, Reason.APPROVAL_KEY_MISSING,
                             f"neither {APPROVAL_KEY_ENV} nor {APPROVER_KEYS_ENV} is set: approvals cannot be verified")
    if keys.problem:
        return ApprovalCheck(False, Reason.APPROVAL_KEY_MISSING, keys.problem)
    stamp = now.timestamp()
    people: dict[str, str] = {}  # skeleton -> the first identity seen for it
    problems: dict[Reason, str] = {}
    for token in tokens:
        try:
            identity = _identity_of(token, strategy_hash, keys, stamp)
        except _Refused as refused:
            problems.setdefault(refused.code, refused.message)
            continue
        people.setdefault(skeleton(identity), identity)
    approvers = tuple(sorted(people.values()))
    if len(people) >= REQUIRED_APPROVERS:
        return ApprovalCheck(True, Reason.OK, "approved by " + ", ".join(approvers), approvers)
    for code in _DENIAL_ORDER:
        if code in problems:
            return ApprovalCheck(False, code, problems[code], approvers)
    return ApprovalCheck(False, Reason.APPROVAL_SINGLE_APPROVER,
                         f"only {len(people)} distinct approver(s) ({', '.join(approvers)}); "
                         f"{REQUIRED_APPROVERS} needed (names are compared case- and spelling-insensitively)",
                         approvers)


def builtin_fingerprints() -> frozenset[str]:
    """Hashes of the stock built-in agents, exempt when ``approval_exempt_builtins`` is on."""
    from agent_pipeline.agents.registry import builtin_specs

    return frozenset(spec.fingerprint() for spec in builtin_specs())
