# WebRTC signaling server: daphne serving the Django Channels application.
# Three stages: the browser's socket.io client from npm, the Python virtualenv, and a slim
# runtime image with neither Node.js nor build tools, running as an unprivileged user.

FROM node:20-bookworm-slim AS socketio-client
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm AS python-deps
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 PORT=8080 DATABASE_URL=sqlite:////app/data/db.sqlite3
WORKDIR /app
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=python-deps /opt/venv /opt/venv
# Only the browser bundle of socket.io-client: the demo page loads it as a static file.
COPY --from=socketio-client /build/node_modules/socket.io-client/dist /app/node_modules/socket.io-client/dist
COPY . .
# The entry command writes the collected static files and (without DATABASE_URL) SQLite.
RUN mkdir -p /app/staticfiles /app/data && chown app:app /app/staticfiles /app/data
USER 10001:10001

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "docker/healthcheck.py"]
# SIGTERM (Docker's default stop signal, kept) drains the server; docker stop -t must exceed
# DRAIN_TIMEOUT (30 s). Migrate, collect the static files, serve on HOST:PORT (docker/start.sh).
CMD ["docker/start.sh"]
