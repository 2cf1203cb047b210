"""Rooms app: the Room model, its lifecycle services, tokens and the REST control plane (SPEC sections 1, 2)."""
