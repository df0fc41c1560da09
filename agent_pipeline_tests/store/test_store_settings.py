"""``[store] url`` and ``$AGENT_PIPELINE_STORE_URL``: which store the pipeline opens, checked at load."""

from __future__ import annotations

import pytest

from agent_pipeline.defs.resources import shared_resources
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline.store import Store
from agent_pipeline.store.config import STORE_URL_ENV, StoreConfig
from agent_pipeline.store.duckdb_file import DuckDBStore
from agent_pipeline.store.postgres import PostgresStore


def test_without_a_url_the_store_is_the_duckdb_file_of_the_home(pipeline_home):
    settings = Settings.from_document({}, home=pipeline_home, environ={})
    assert settings.store_location == str(pipeline_home / "agent_pipeline.duckdb")
    assert isinstance(Store(settings.store_location), DuckDBStore)


def test_the_environment_variable_wins_over_the_file(pipeline_home):
    document = {"store": {"url": "postgresql://app@db-a/pipeline"}}
    assert Settings.from_document(document, home=pipeline_home, environ={}).store_location == \
        "postgresql://app@db-a/pipeline"
    settings = Settings.from_document(document, home=pipeline_home,
                                      environ={STORE_URL_ENV: "postgresql://app:pw@db-b/pipeline"})
    assert settings.store_location == "postgresql://app:pw@db-b/pipeline"
    assert isinstance(Store(settings.store_location), PostgresStore)


@pytest.mark.parametrize("url", ["mysql://h/db", "postgresql://", "/just/a/path", "http://h"])
def test_a_url_of_no_backend_is_refused_naming_the_table(pipeline_home, url):
    with pytest.raises(ConfigError, match=r"\[store\] url .* must be empty .* postgresql://"):
        Settings.from_document({"store": {"url": url}}, home=pipeline_home, environ={})


@pytest.mark.parametrize("url", ["postgresql://app:s3cret@h/db", "postgresql://app@h/db?password=s3cret"])
def test_a_password_in_the_file_is_refused_without_repeating_it(pipeline_home, url):
    with pytest.raises(ConfigError, match="carries a password") as caught:
        Settings.from_document({"store": {"url": url}}, home=pipeline_home, environ={})
    assert "s3cret" not in str(caught.value)


def test_a_password_never_shows_in_the_settings_or_the_dagster_resource(pipeline_home):
    settings = Settings.from_document({}, home=pipeline_home, environ={STORE_URL_ENV: "postgresql://a:s3cret@h/db"})
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(StoreConfig(url="postgresql://a@h/db"))
    resource = shared_resources(settings)["store"]
    assert "s3cret" not in repr(resource)  # handed over as the variable, which the UI names


def test_a_misspelt_key_names_the_right_one(pipeline_home):
    with pytest.raises(ConfigError, match="'uri'.*'url'"):
        Settings.from_document({"store": {"uri": "postgresql://h/db"}}, home=pipeline_home, environ={})
