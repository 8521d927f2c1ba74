"""The event journal's figures as Prometheus metrics, read at scrape time (no hot-path cost)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sensor_backend.core.journal import RowState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric

    from sensor_backend.events.service import EventService


class JournalCollector(Collector):
    def __init__(self, service: EventService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        journal = self._service.journal
        confirmer = self._service.confirmer
        rows = GaugeMetricFamily(
            "events_journal_rows",
            "Accepted events not yet confirmed stored, by state",
            labels=["state"],
        )
        for state in RowState:
            rows.add_metric([state.name.lower()], float(journal.count(state)))
        yield rows
        yield GaugeMetricFamily(
            "events_journal_depth",
            "Accepted events kept until a consumer stored them",
            value=float(journal.unconfirmed),
        )
        yield GaugeMetricFamily(
            "events_journal_oldest_unconfirmed_age_seconds",
            "Age of the oldest accepted event not yet confirmed stored (0 when none)",
            value=journal.oldest_unconfirmed_age_s() or 0.0,
        )
        yield CounterMetricFamily(
            "events_journal_reproduced",
            "Events produced again because the broker lost them or they stayed unconfirmed",
            value=float(journal.reproduced),
        )
        yield CounterMetricFamily(
            "events_journal_resend_rounds",
            "Times the broker was found to have lost its data",
            value=float(journal.resend_rounds),
        )
        confirmed = CounterMetricFamily(
            "events_journal_confirmed",
            "Journal rows confirmed stored, by path",
            labels=["path"],
        )
        confirmed.add_metric(["consumer"], float(confirmer.confirmed_by_consumer))
        confirmed.add_metric(["database"], float(confirmer.confirmed_from_database))
        yield confirmed
