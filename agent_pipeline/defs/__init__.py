"""Dagster definitions only, one package per domain; the logic they call lives in the domain packages."""
