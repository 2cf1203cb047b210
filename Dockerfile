# WebRTC signaling server: daphne serving the Django Channels application.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8080
WORKDIR /app

# Node.js/npm install socket.io-client for the demo page (from package.json, at build time).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

COPY . .

EXPOSE 8080
# Migrate (SQLite file or DATABASE_URL), then serve on HOST:PORT.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python manage.py serve"]
