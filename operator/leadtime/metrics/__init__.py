"""Metrics: PromQL templates rendered per request class (pure) and sources that read an Observation."""

from leadtime.metrics.promql import Queries, TemplateError, render_queries
from leadtime.metrics.source import MetricsReading, MetricsSource

__all__ = ["MetricsReading", "MetricsSource", "Queries", "TemplateError", "render_queries"]
