"""agent_pipeline: trading-signal and LLM agents run as a measured, allocated and guarded portfolio."""

__version__ = "0.1.0"
