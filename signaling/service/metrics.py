"""Prometheus metrics of this instance (SPEC section 10), with the official prometheus_client.

Owns the series an operator scrapes from ``GET /metrics`` on every instance:

- ``signaling_connections{transport}``, ``signaling_participants``, ``signaling_rooms_active``:
  gauges read at scrape time from the instance's own state (no cost on the hot path);
- ``signaling_connects_total{result}``: CONNECTs accepted (``ok``) or refused (the code);
- ``signaling_events_total{event,result}`` and ``signaling_event_seconds{event}``: every
  client event, by name (``other`` for names the server does not know) and outcome (``ok``
  or the error code); the label children are bound once, so recording costs a dict lookup,
  one counter increment and one histogram observation;
- ``signaling_recoveries_total{result}``: connection state recoveries (section 7);
- the process and GC collectors of prometheus_client.

Labels never hold room, client or agent ids. prometheus_client was chosen over
django-prometheus: the series are the signaling server's own (sockets, events), not Django
request/ORM metrics, and the hot path needs pre-bound children, not middleware.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from signaling.service import events

if TYPE_CHECKING:
    from signaling.service.instance import Instance

OK = "ok"
OTHER_EVENT = "other"
# Handling time of one event: relays take tens of microseconds, joins a few milliseconds.
EVENT_SECONDS_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

CONNECTS = Counter("signaling_connects", "Socket.IO CONNECTs by result (ok or the refusal code).", ["result"])
EVENTS = Counter("signaling_events", "Client events handled, by event name and result.", ["event", "result"])
EVENT_SECONDS = Histogram(
    "signaling_event_seconds", "Time to handle one client event.", ["event"], buckets=EVENT_SECONDS_BUCKETS
)
RECOVERIES = Counter("signaling_recoveries", "Connection state recoveries, by result.", ["result"])

_event_children: dict[tuple[str, str], Any] = {}
_seconds_children: dict[str, Any] = {}


def event_label(name: object) -> str:
    """The ``event`` label: a client event name, else ``other`` (bounded cardinality)."""
    return name if type(name) is str and name in events.CLIENT_EVENTS else OTHER_EVENT


def record_event(name: object, result: str, seconds: float) -> None:
    """Count one handled event and its handling time."""
    label = event_label(name)
    key = (label, result)
    counter = _event_children.get(key)
    if counter is None:
        counter = _event_children[key] = EVENTS.labels(label, result)
    counter.inc()
    histogram = _seconds_children.get(label)
    if histogram is None:
        histogram = _seconds_children[label] = EVENT_SECONDS.labels(label)
    histogram.observe(seconds)


def record_connect(result: str) -> None:
    """Count one CONNECT (``ok`` or the refusal code)."""
    CONNECTS.labels(result).inc()


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


_collector_registered = False


def register_instance_collector() -> None:
    """Register the gauges once per process (they read whichever instance is current)."""
    global _collector_registered
    if _collector_registered:
        return
    from signaling.service import instance as instance_module

    REGISTRY.register(InstanceCollector(lambda: instance_module._instance))
    _collector_registered = True
