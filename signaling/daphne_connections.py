"""Less per websocket in daphne: autobahn's configuration copy, the HTTP request after the upgrade.

Two changes, made by :func:`install` (``signaling.daphne_launcher``) when daphne and autobahn
are the tested releases (their sources are hash-checked here, at install, and by
``signaling/tests/integration/test_server_internals.py``); elsewhere nothing is changed:

1. autobahn's ``WebSocketProtocol._connectionMade`` copies the ~30 options of
   ``CONFIG_ATTRS`` from the factory onto every protocol instance (that pushes daphne's
   protocol ``__dict__`` past 85 keys: 3.3 KB instead of 1.6 KB per socket) and eagerly
   ``pformat``\\ s them for a debug line (~0.2 ms per connect). daphne's
   ``WebSocketFactory`` here gives its protocol the factory's options as *class* attributes
   of a subclass made at each ``setProtocolOptions``/``resetProtocolOptions``, whose
   ``CONFIG_ATTRS`` is empty: instances read the same values through the class, an instance
   that sets one (``setTrackTimings``) still gets its own. Only the content of autobahn's
   debug log line at connect differs (an empty list); daphne discards autobahn's log at its
   default verbosity anyway.
2. After a websocket upgrade, daphne's ``WebRequest`` (its headers, body buffer, addresses:
   ~2 KB) stays in the HTTP channel's ``requests`` list for the life of the socket though
   nothing reads it again (the channel is no longer the transport's protocol; it stays its
   producer, whose pause/resume/stop do not touch ``requests``). The request is dropped
   from that list once the upgrade is done.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from signaling.source_guard import source_sha256

TESTED_DAPHNE = "4.2.3"
TESTED_AUTOBAHN = "26.11.1"
# sha256 of inspect.getsource(...) in the tested releases: what the two changes rely on.
SOURCE_SHA256 = {
    "autobahn.websocket.protocol.WebSocketProtocol._connectionMade": (
        "7ac58d8bb6c3c752dc6753e09d2358573a2a47da90275e962830af0600fdf077"
    ),
    "daphne.http_protocol.WebRequest.process": "e9babd1c97ce710bda699578b21feafd1f490df6ad8bec45960eba4bbb31e306",
    "twisted.web.http.HTTPChannel.pauseProducing": "8fe306cf284ba8e71b43a4e4219986e3521ddc9b8766d2101e9984b3090bf6ed",
    "twisted.web.http.HTTPChannel.resumeProducing": "561ac237d3468e84939ec6c3d856dd7a556d3df459dd02969d43543105fb54fb",
    "twisted.web.http.HTTPChannel.stopProducing": "4a69f745d6382f0ad17fddfec31ddc1c669f92d7600eb276044c12b06025d170",
}
CONFIGURED = "_signaling_configured_by"  # class attribute: the factory whose options it carries


def changed_internals() -> list[str]:
    """What differs from the tested releases (empty: :func:`install` may patch)."""
    changed = []
    if version("daphne") != TESTED_DAPHNE:
        changed.append(f"daphne {version('daphne')}")
    if version("autobahn") != TESTED_AUTOBAHN:
        changed.append(f"autobahn {version('autobahn')}")
    changed += [name for name, digest in SOURCE_SHA256.items() if source_sha256(name) != digest]
    return changed


def configured_protocol(factory: Any, base: Any) -> type:
    """A subclass of ``base`` carrying ``factory``'s options as class attributes, copying none."""
    options = {}
    for attr in base.CONFIG_ATTRS:
        value = getattr(factory, attr)
        # A function (perMessageCompressionAccept) as a class attribute would read as a bound
        # method: staticmethod gives instances the factory's object itself, as the copy did.
        options[attr] = staticmethod(value) if hasattr(type(value), "__get__") else value
    return type(
        base.__name__, (base,), {**options, "CONFIG_ATTRS": (), CONFIGURED: factory, "__module__": base.__module__}
    )


def install() -> bool:
    """Make both changes; False (nothing done) when a release or a source differs."""
    if changed_internals():
        return False
    from daphne.http_protocol import WebRequest
    from daphne.ws_protocol import WebSocketFactory

    base = WebSocketFactory.protocol
    stock_set, stock_reset = WebSocketFactory.setProtocolOptions, WebSocketFactory.resetProtocolOptions

    def setProtocolOptions(self: Any, *args: Any, **kwargs: Any) -> None:
        stock_set(self, *args, **kwargs)
        self.protocol = configured_protocol(self, base)

    def resetProtocolOptions(self: Any) -> None:
        stock_reset(self)
        self.protocol = configured_protocol(self, base)

    WebSocketFactory.setProtocolOptions = setProtocolOptions
    WebSocketFactory.resetProtocolOptions = resetProtocolOptions

    stock_process = WebRequest.process

    def process(self: Any) -> Any:
        result = stock_process(self)
        # daphne's upgrade branch hands the transport to the websocket protocol and sets
        # self.transport to None; nothing reads this request afterwards.
        channel = self.channel
        if self.transport is None and channel is not None:
            requests = channel.requests
            if self in requests:
                requests.remove(self)
        return result

    WebRequest.process = process
    return True
