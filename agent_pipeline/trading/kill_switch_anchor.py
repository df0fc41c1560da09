"""The kill switch's last version, anchored where its own two files cannot roll it back: a row in the store.

The state file and its audit log vouch for each other, so whoever can replace both together (older copies of
both, or deleting both) gets a pair that reads ACTIVE after a trip. Every change of an anchored switch therefore
also advances a row in the store (``kill_switch_anchor``: one row per state file, its highest version), and the
switch reads as its files say only when their version is the anchored one: a pair older than the anchor, files
missing while an anchor exists, a version the store never anchored (a change whose anchor could not be written,
files carried over from before anchoring) and an anchor that cannot be read all read HALTED. A person's
``kill-switch clear`` writes a new anchored version.

``StoreAnchor`` is the whole interface the kill switch uses (``read`` and ``advance``), so the anchor can move
with the rest of the state into another backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_pipeline.store import DB_FILE, Schema, Store, has_table

ANCHOR = Schema("kill_switch_anchor", [
    """
    CREATE TABLE kill_switch_anchor (
        switch VARCHAR PRIMARY KEY,
        version BIGINT NOT NULL,
        state VARCHAR NOT NULL,
        anchored_at TIMESTAMPTZ NOT NULL
    );
    """,
])

_ADVANCE = """
INSERT INTO kill_switch_anchor (switch, version, state, anchored_at) VALUES (?, ?, ?, ?)
ON CONFLICT (switch) DO UPDATE SET version = excluded.version, state = excluded.state,
    anchored_at = excluded.anchored_at
WHERE excluded.version > kill_switch_anchor.version
"""


class StoreAnchor:
    """The anchored version of one kill-switch file, in ``store`` (the pipeline's store beside it by default)."""

    def __init__(self, store: Store, switch: str | Path, *, timeout_s: float = 5.0):
        self.store = store
        self.switch = str(Path(switch).absolute())
        self.timeout_s = timeout_s

    @classmethod
    def beside(cls, state_path: str | Path, *, timeout_s: float = 5.0) -> StoreAnchor:
        """The anchor of the state file in the store of the same home (``<dir>/<DB_FILE>``)."""
        path = Path(state_path)
        return cls(Store(path.parent / DB_FILE), path, timeout_s=timeout_s)

    def read(self) -> int | None:
        """The highest anchored version, or None when nothing was ever anchored (no store, table or row).
        Raises when the store cannot be read (the kill switch then reads HALTED)."""
        try:
            with self.store.connect(read_only=True, timeout_s=self.timeout_s) as conn:
                if not has_table(conn, "kill_switch_anchor"):
                    return None
                row = conn.execute("SELECT version FROM kill_switch_anchor WHERE switch = ?",
                                   [self.switch]).fetchone()
        except FileNotFoundError:
            return None
        return None if row is None else int(row[0])

    def advance(self, version: int, state: str) -> None:
        """Anchor ``version`` (never lowers the anchor); raises when the store cannot be written."""
        with self.store.transaction(schema=ANCHOR, timeout_s=self.timeout_s) as conn:
            conn.execute(_ADVANCE, [self.switch, int(version), str(state), datetime.now(UTC)])


def anchored_switch(state_path: str | Path, store: Store | None = None, **kwargs: Any) -> Any:
    """The pipeline's kill switch at ``state_path``, anchored in ``store`` (default: the store beside it)."""
    from agent_pipeline.trading.kill_switch import KillSwitch

    anchor = StoreAnchor(store, state_path) if store is not None else StoreAnchor.beside(state_path)
    return KillSwitch(state_path, anchor=anchor, **kwargs)
