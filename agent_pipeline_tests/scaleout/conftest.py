"""Scale-out tests: several "hosts" (separate homes and processes) sharing only a PostgreSQL database."""

from agent_pipeline_tests.postgres_server import postgres_server, postgres_url  # noqa: F401 (fixtures)
