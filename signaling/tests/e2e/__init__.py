"""End-to-end tests: real server processes (daphne, uvicorn), real Socket.IO clients (STYLE section 3)."""
