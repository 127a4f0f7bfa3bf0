"""/metrics: operational figures in the Prometheus text format, for the networks allowed to scrape.

The contract serves it on loopback only: ACCRUAL_METRICS_ALLOWED_NETWORKS names the networks (loopback
by default); any other address gets the same 404 as a path that does not exist, before any work. The
address is `request.remote_addr`, which is the client's behind a trusted proxy (ACCRUAL_TRUSTED_PROXIES).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

from flask import Response, abort, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.api.context import database, settings
from services.reporting.metrics import Figures, ScrapeCache, broker_figures, database_figures

tag = Tag(name="health", description="Liveness and readiness probes")
blueprint = APIBlueprint("metrics", __name__, abp_tags=[tag])
CACHE = "accrual.metrics_cache"


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


def may_scrape(address: str | None, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    """Whether `address` lies in one of `networks`; an IPv4 client on an IPv6 socket counts as IPv4."""
    try:
        client = ip_address(address or "")
    except ValueError:
        return False  # no address (a Unix socket) or an unreadable one
    if isinstance(client, IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(client in network for network in networks)


def _exposition() -> bytes:
    figures = Figures()
    with database().reading() as session:
        database_figures(session, figures)
    broker_figures(settings().broker_url, figures)
    registry = CollectorRegistry()
    registry.register(ScrapeTimeFigures(figures))
    return generate_latest(registry)


def _cache() -> ScrapeCache:
    # One per application (so per API process); setdefault keeps the first if two threads race here.
    cache: ScrapeCache = current_app.extensions.setdefault(
        CACHE, ScrapeCache(settings().metrics_cache_seconds)
    )
    return cache


@blueprint.get("/metrics", doc_ui=False)
def metrics() -> Response:
    """Queue depth, relay lag, undecided applications, decision latency, deliveries by status."""
    if not may_scrape(request.remote_addr, settings().metrics_networks):
        abort(404)
    return Response(_cache().get(_exposition), content_type=CONTENT_TYPE_LATEST)
