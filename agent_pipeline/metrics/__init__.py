"""Metrics computed from the store: a custom collector, the Pushgateway publisher and the scrape server.

Pure Python (no dagster import); ``agent_pipeline.defs.metrics`` wires it into Dagster.
"""

from agent_pipeline.metrics.collector import Snapshot, SnapshotCollector, StoreCollector, take_snapshot
from agent_pipeline.metrics.spec import DEFAULT_JOB, METRICS, PROTOTYPE_METRIC_NAMES, Sample, exported_series_names

__all__ = ["DEFAULT_JOB", "METRICS", "PROTOTYPE_METRIC_NAMES", "Sample", "Snapshot", "SnapshotCollector",
           "StoreCollector", "exported_series_names", "take_snapshot"]
