"""/metrics: operational figures in the Prometheus text format."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.api.context import database, settings
from services.metrics import Figures, broker_figures, database_figures

tag = Tag(name="health", description="Liveness and readiness probes")
blueprint = APIBlueprint("metrics", __name__, abp_tags=[tag])


class ScrapeTimeFigures(Collector):
    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (help_text, value) in self.figures.gauges.items():
            yield GaugeMetricFamily(name, help_text, value=value)
        for name, (help_text, label, values) in self.figures.labelled.items():
            family = GaugeMetricFamily(name, help_text, labels=[label])
            for label_value, value in sorted(values.items()):
                family.add_metric([label_value], value)
            yield family


@blueprint.get("/metrics", doc_ui=False)
def metrics() -> Response:
    """Queue depth, relay lag, undecided applications, decision latency, deliveries by status."""
    figures = Figures()
    with database().reading() as session:
        database_figures(session, figures)
    broker_figures(settings().broker_url, figures)
    registry = CollectorRegistry()
    registry.register(ScrapeTimeFigures(figures))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
