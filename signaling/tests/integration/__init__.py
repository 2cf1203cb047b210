"""Integration tier (STYLE section 3): consumers, service and REST in-process, in-memory layer."""
