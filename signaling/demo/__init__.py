"""Browser demo of the signaling server: a page at ``/demo/`` that holds a real WebRTC mesh call.

The page (``signaling/templates/demo/index.html``, ``signaling/static/demo/``) talks to the
server only through the public contract (SPEC sections 2 and 3) with the official
``socket.io-client`` served from ``node_modules`` by staticfiles. The views here render the
page and, in development mode only, mint agent tokens for it.
"""
