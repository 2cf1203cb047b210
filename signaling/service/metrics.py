"""Prometheus metrics of this instance (SPEC section 10), with the official prometheus_client.

Owns the series an operator scrapes from ``GET /metrics`` on every instance:

- ``signaling_connections{transport}``, ``signaling_participants``, ``signaling_rooms_active``:
  gauges read at scrape time from the instance's own state (no cost on the hot path);
- ``signaling_connects_total{result}``: CONNECTs accepted (``ok``) or refused (the code);
- ``signaling_events_total{event,result}`` and ``signaling_event_seconds{event}``: every
  client event, by name (``other`` for names the server does not know) and outcome (``ok``
  or the error code), accumulated in plain numbers (:class:`EventStats`) and exposed at
  scrape time;
- ``signaling_recoveries_total{result}``: connection state recoveries (section 7);
- the process and GC collectors of prometheus_client.

Labels never hold room, client or agent ids. prometheus_client was chosen over
django-prometheus: the series are the signaling server's own (sockets, events), not Django
request/ORM metrics, and the hot path needs pre-bound children, not middleware.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from signaling.service import events

if TYPE_CHECKING:
    from signaling.service.instance import Instance

OK = "ok"
OTHER_EVENT = "other"
# Handling time of one event: relays take tens of microseconds, joins a few milliseconds.
EVENT_SECONDS_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

CONNECTS = Counter("signaling_connects", "Socket.IO CONNECTs by result (ok or the refusal code).", ["result"])
RECOVERIES = Counter("signaling_recoveries", "Connection state recoveries, by result.", ["result"])
# Series exist from the start (a labelled counter without children is not exposed at all).
CONNECTS.labels(OK)
RECOVERIES.labels(OK)
RECOVERIES.labels("refused")  # a pid that could not resume (unknown, expired, foreign, unknown offset)


class EventStats:
    """Per-event counts and handling-time histograms, accumulated in plain ints and floats.

    prometheus_client's ``Counter.inc`` + ``Histogram.observe`` cost about 2.8 us per event
    here (a lock per child, a scan of the buckets); this costs a dict lookup, a bisect and
    three additions, and the same series are exposed at scrape time by :meth:`collect`.
    Only the event loop thread records, so no lock is needed.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        # event -> [bucket counts..., +Inf count], sum of seconds
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def record(self, label: str, result: str, seconds: float) -> None:
        key = (label, result)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        buckets = self.buckets.get(label)
        if buckets is None:
            buckets = self.buckets[label] = [0] * (len(EVENT_SECONDS_BUCKETS) + 1)
            self.sums[label] = 0.0
        buckets[bisect_left(EVENT_SECONDS_BUCKETS, seconds)] += 1
        self.sums[label] += seconds

    def collect(self) -> Iterator[Any]:
        total = CounterMetricFamily(
            "signaling_events", "Client events handled, by event name and result.", labels=["event", "result"]
        )
        for (label, result), count in sorted(self.counts.items()):
            total.add_metric([label, result], count)
        yield total
        seconds = HistogramMetricFamily("signaling_event_seconds", "Time to handle one client event.", labels=["event"])
        for label, buckets in sorted(self.buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip((*EVENT_SECONDS_BUCKETS, float("inf")), buckets, strict=True):
                running += count
                cumulative.append((floatToGoString(bound), running))
            seconds.add_metric([label], cumulative, sum_value=self.sums[label])
        yield seconds


EVENT_STATS = EventStats()


def record_event(name: object, result: str, seconds: float) -> None:
    """Count one handled event and its handling time."""
    label = name if type(name) is str and name in events.CLIENT_EVENTS else OTHER_EVENT
    EVENT_STATS.record(label, result, seconds)  # type: ignore[arg-type]


def record_connect(result: str) -> None:
    """Count one CONNECT (``ok`` or the refusal code)."""
    CONNECTS.labels(result).inc()


def record_recovery(result: str) -> None:
    """Count one CONNECT that asked to resume a session (``ok`` or ``refused``)."""
    RECOVERIES.labels(result).inc()


class InstanceCollector(Collector):
    """The gauges, read from the instance at scrape time."""

    def __init__(self, instance_getter: Any) -> None:
        self._instance_getter = instance_getter

    def collect(self) -> Iterator[GaugeMetricFamily]:
        instance: Instance | None = self._instance_getter()
        connections = GaugeMetricFamily(
            "signaling_connections", "Connected Socket.IO sockets on this instance, by transport.", labels=["transport"]
        )
        by_transport = {"polling": 0, "websocket": 0}
        participants = rooms_active = 0
        if instance is not None:
            for conn in list(instance.sockets.values()):
                transport = str(getattr(conn.session.transport, "value", conn.session.transport))
                by_transport[transport] = by_transport.get(transport, 0) + 1
            for room_id in instance.membership.room_ids():
                view = instance.membership.view(room_id)
                if view is not None and view.local:
                    participants += len(view.local)
                    rooms_active += 1
        for transport, count in sorted(by_transport.items()):
            connections.add_metric([transport], count)
        yield connections
        yield GaugeMetricFamily("signaling_participants", "Room members on this instance.", value=participants)
        yield GaugeMetricFamily(
            "signaling_rooms_active", "Rooms with at least one member on this instance.", value=rooms_active
        )
        yield from EVENT_STATS.collect()


_collector_registered = False


def register_instance_collector() -> None:
    """Register the gauges once per process (they read whichever instance is current)."""
    global _collector_registered
    if _collector_registered:
        return
    from signaling.service import instance as instance_module

    REGISTRY.register(InstanceCollector(lambda: instance_module._instance))
    _collector_registered = True
