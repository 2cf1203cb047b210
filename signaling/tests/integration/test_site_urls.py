"""The ``/`` index, trailing-slash tolerance where a person types, and the serve banner."""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from signaling.management.commands.serve import banner

pytestmark = pytest.mark.django_db


def test_index_lists_the_demo_docs_and_admin(api_client: APIClient) -> None:
    response = api_client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    for link in ("/demo/", "/api/docs", "/admin/", "/healthz"):
        assert f'href="{link}"'.encode() in response.content


def test_index_in_development_mode_leads_to_the_demo(api_client: APIClient, settings: object) -> None:
    settings.SIGNALING = dataclasses.replace(django_settings.SIGNALING, dev_mode=True)  # type: ignore[attr-defined]
    response = api_client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/demo/")


@pytest.mark.parametrize(
    ("_case", "path", "location"),
    [
        ("admin", "/admin", "/admin/"),
        ("rooms list", "/api/rooms/", "/api/rooms"),
        ("query", "/api/rooms/?type=voice", "/api/rooms?type=voice"),
    ],
)
def test_path_off_by_a_slash_redirects(api_client: APIClient, _case: str, path: str, location: str) -> None:
    response = api_client.get(path)
    assert (response.status_code, response["Location"]) == (301, location)


def test_post_off_by_a_slash_keeps_method_with_308(api_client: APIClient) -> None:
    response = api_client.post("/api/rooms/", {"name": "x"}, format="json")
    assert (response.status_code, response["Location"]) == (308, "/api/rooms")


def test_banner_lists_demo_docs_admin_and_how_to_run_manage_py() -> None:
    text = banner("127.0.0.1", 8080, "daphne", dev_mode=True)
    lines = text.splitlines()
    assert lines[0] == "serving on http://127.0.0.1:8080 with daphne"
    assert any(line.startswith("  http://127.0.0.1:8080/demo/") for line in lines)
    assert any(line.startswith("  http://127.0.0.1:8080/api/docs") for line in lines)
    assert "DEV_MODE=1 .venv/bin/python manage.py createsuperuser" in text
    assert "DEV_MODE=1" not in banner("0.0.0.0", 9000, "uvicorn", dev_mode=False)


def test_banner_names_the_interpreter_it_is_given() -> None:
    text = banner("0.0.0.0", 8080, "daphne", dev_mode=False, python="python")
    assert "  http://127.0.0.1:8080/admin/    admin (add a user: python manage.py createsuperuser)" in text


def test_openapi_description_points_to_a_document_in_the_repository(api_client: APIClient) -> None:
    response = api_client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert b"SPEC" not in response.content
    assert b"docs/protocol.md" in response.content
