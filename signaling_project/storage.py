"""Static files storage: WhiteNoise's compressed, content-hashed files once collected.

After ``collectstatic`` (the container's entry command, ``./run serve``, ``./run dev``),
``{% static %}`` names carry a content hash and WhiteNoise serves them with a year-long
cache and gzip/brotli copies. Before it (a bare ``manage.py`` run, the test servers) there
is no manifest: names stay plain and WhiteNoise serves them from the app finders.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names from the manifest; the plain name for a file it does not list."""

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        """The collected (hashed) name of ``name``, or ``name`` itself when not collected."""
        if not self.hashed_files:
            return name
        try:
            return str(super().stored_name(name))
        except ValueError:
            return name
