"""Benchmark kit for the signaling server: ``python -m bench run`` (see docs/benchmarks.md).

Owns load generation, server start-up for measurement, and the published numbers. Imports
nothing from the server; talks to it only over 127.0.0.1 (REST and raw WebSocket frames).
"""
