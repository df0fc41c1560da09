"""The ``[store]`` table: which database holds the pipeline's state.

    [store]
    url = ""        # empty: the DuckDB file in $AGENT_PIPELINE_HOME (no server); or postgresql://user@host/db

``$AGENT_PIPELINE_STORE_URL``, when set, wins. A password never goes in config.toml (anyone who can read the home
reads it): leave it out of the URL and let libpq find it (``PGPASSWORD``, ``~/.pgpass``, a client certificate),
or put the whole URL in the environment variable. Wherever a URL is shown (errors, logs, the Dagster UI) its
password is replaced by ``***``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_pipeline.config_fields import TEXT, ConfigTable, setting

STORE_URL_ENV = "AGENT_PIPELINE_STORE_URL"
URL_SCHEMES = ("postgresql", "postgres", "duckdb")
_PASSWORD = re.compile(r"^[^:/]+://[^/@:]*:[^/@]*@|[?&]password=", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with its password (in the authority or as a ``password=`` parameter) replaced by ``***``."""
    url = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url, flags=re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class StoreConfig(ConfigTable):
    """Where the store is; empty is the embedded DuckDB file. ``$AGENT_PIPELINE_STORE_URL`` overrides ``url``."""

    SECTION = "[store]"

    url: str = setting("", TEXT, doc="empty: the DuckDB file in $AGENT_PIPELINE_HOME; postgresql://user@host:port/db "
                                     "for a database shared by several hosts (no password here: PGPASSWORD, "
                                     "~/.pgpass or $AGENT_PIPELINE_STORE_URL)")

    def check(self, where: str) -> None:
        if not self.url:
            return
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
        if scheme not in URL_SCHEMES or not self.url.split("://", 1)[1]:
            raise self.ERROR(f"{where} url {redact(self.url)!r} must be empty (the DuckDB file in the home) or a "
                             f"{', '.join(s + '://' for s in URL_SCHEMES)} URL naming the store")
        if _PASSWORD.search(self.url) and not where.startswith("$"):
            raise self.ERROR(f"{where} url carries a password ({redact(self.url)}): config.toml is no place for "
                             f"it; use PGPASSWORD, ~/.pgpass or ${STORE_URL_ENV}")

    def __repr__(self) -> str:
        return f"StoreConfig(url={redact(self.url)!r})"
