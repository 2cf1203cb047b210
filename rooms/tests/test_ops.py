"""Stats, health, readiness, OpenAPI docs, CORS and JSON errors outside DRF (SPEC section 2)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from django.db import DatabaseError
from rest_framework.test import APIClient

from rooms import services, views
from rooms.enums import CloseReason
from rooms.models import Room
from rooms.tests.fixtures import ANY_TEXT

pytestmark = pytest.mark.django_db

# --- /api/stats ------------------------------------------------------------------------


def test_stats_counts_every_room_ever_and_live_cluster_figures(
    api_client: APIClient,
    make_room: Callable[..., Room],
    live: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given three rooms ever, one closed, and a cluster with live sockets
    make_room()
    make_room()
    services.close_room_row(make_room().id, CloseReason.DELETED)
    cluster = {"connections": 7, "participants": 5, "activeRooms": 2, "instances": 3}
    monkeypatch.setattr(live, "cluster_stats", lambda: cluster)
    # when
    response = api_client.get("/api/stats")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "rooms": {"total": 3, "active": 2},
        "connections": 7,
        "participants": 5,
        "uptimeSeconds": body["uptimeSeconds"],
        "instances": 3,
    }
    assert isinstance(body["uptimeSeconds"], float) and body["uptimeSeconds"] >= 0


def test_stats_of_a_fresh_server_with_the_real_live_layer(api_client: APIClient, live: ModuleType) -> None:
    # the real live layer: nobody connected
    body = api_client.get("/api/stats").json()
    assert body == {
        "rooms": {"total": 0, "active": 0},
        "connections": 0,
        "participants": 0,
        "uptimeSeconds": body["uptimeSeconds"],
        # The socket layer registers this instance when its hub starts (first socket).
        "instances": live.cluster_stats()["instances"],
    }


def test_stats_ignores_a_bad_bearer_token(api_client: APIClient) -> None:
    api_client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    assert api_client.get("/api/stats").status_code == 200


# --- /healthz, /readyz -----------------------------------------------------------------


def test_healthz_answers_ok(api_client: APIClient) -> None:
    response = api_client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_answers_ready_when_database_and_channel_layer_answer(
    api_client: APIClient,
) -> None:
    response = api_client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_readyz_answers_503_when_channel_layer_does_not_answer(
    api_client: APIClient, live: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(live, "check_ready", down)
    response = api_client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Not ready: channelLayer did not answer.",
        "code": "not_ready",
        "checks": {"database": "ok", "channelLayer": "error"},
    }


class _BrokenConnection:
    """Stands in for ``django.db.connection`` when the database is unreachable."""

    def cursor(self) -> Any:
        raise DatabaseError("connection refused")


def test_readyz_answers_503_when_database_does_not_answer(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "connection", _BrokenConnection())
    response = api_client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Not ready: database did not answer.",
        "code": "not_ready",
        "checks": {"database": "error", "channelLayer": "ok"},
    }


# --- JSON errors outside DRF -----------------------------------------------------------


@pytest.mark.parametrize("_case", ["/api/nope", "/api/nope/", "/api/rooms/r_x/nope/", "/api", "/nowhere"])
def test_unknown_path_answers_json_404(api_client: APIClient, _case: str) -> None:
    response = api_client.get(_case)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_unhandled_error_answers_json_500(live: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a live layer that blows up
    def broken() -> dict[str, int]:
        raise RuntimeError("boom")

    monkeypatch.setattr(live, "cluster_stats", broken)
    client = APIClient(raise_request_exception=False)
    # when
    response = client.get("/api/stats")
    # then
    assert response.status_code == 500
    assert response.json() == {
        "detail": "Internal server error.",
        "code": "server_error",
    }


@pytest.mark.parametrize(("_case", "path"), [("healthz", "/healthz"), ("readyz", "/readyz")])
def test_wrong_method_on_health_answers_json_405(api_client: APIClient, _case: str, path: str) -> None:
    response = api_client.post(path)
    assert response.status_code == 405
    assert response.json() == {"detail": ANY_TEXT, "code": "method_not_allowed"}


# --- OpenAPI ---------------------------------------------------------------------------


def test_schema_is_openapi_3_with_every_endpoint(api_client: APIClient) -> None:
    response = api_client.get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/rooms",
        "/api/rooms/{id}",
        "/api/rooms/{id}/join",
        "/api/ice-servers",
        "/api/rooms/{id}/bans",
        "/api/rooms/{id}/bans/{agent_id}",
        "/api/rooms/{id}/participants/{client_id}",
        "/api/rooms/{id}/participants/{client_id}/kick",
        "/api/stats",
        "/api/events",
        "/healthz",
        "/readyz",
    }
    assert set(schema["paths"]["/api/rooms/{id}"]) >= {"get", "delete", "patch"}
    assert schema["components"]["securitySchemes"] == {
        "agentToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
    }


def test_swagger_ui_is_served_with_its_assets_offline(api_client: APIClient) -> None:
    # given the docs page
    response = api_client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    # then it loads Swagger UI from this server (the sidecar), not a CDN
    asset = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert asset in html
    assert "cdn.jsdelivr.net" not in html
    bundle = api_client.get(asset)
    assert bundle.status_code == 200
    assert b"".join(bundle.streaming_content)[:2]


# --- CORS ------------------------------------------------------------------------------


def test_cors_star_mode_allows_any_origin(api_client: APIClient, settings: Any) -> None:
    settings.CORS_ALLOW_ALL_ORIGINS = True
    settings.CORS_ALLOW_CREDENTIALS = False
    response = api_client.get("/api/rooms", HTTP_ORIGIN="https://anywhere.example")
    assert response["Access-Control-Allow-Origin"] == "*"


def test_cors_listed_origin_is_echoed_and_unlisted_gets_nothing(api_client: APIClient, settings: Any) -> None:
    # given CORS_ORIGIN=https://app.example,https://admin.example (as settings.py maps it)
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example", "https://admin.example"]
    settings.CORS_ALLOW_CREDENTIALS = True
    # when
    listed = api_client.get("/api/rooms", HTTP_ORIGIN="https://admin.example")
    unlisted = api_client.get("/api/rooms", HTTP_ORIGIN="https://evil.example")
    # then
    assert listed["Access-Control-Allow-Origin"] == "https://admin.example"
    assert "Access-Control-Allow-Origin" not in unlisted


def test_cors_preflight_allows_bearer_authorization(api_client: APIClient, settings: Any) -> None:
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    response = api_client.options(
        "/api/rooms",
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "POST" in response["Access-Control-Allow-Methods"]
