#!/bin/sh
# The container's entry command (Dockerfile CMD): migrate the database, collect the static
# files WhiteNoise serves (hashed, compressed), then serve on HOST:PORT. Runs as the image's
# unprivileged user; a configuration error stops it here with one line naming the variable.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" manage.py migrate --noinput -v 0
"$PYTHON" manage.py collectstatic --noinput -v 0
exec "$PYTHON" manage.py serve "$@"
