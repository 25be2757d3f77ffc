"""The rating web app through Flask's test client: tokens, blinding, ratings, validation, admin."""

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from taskloss.readers import CreatedStudy, Store, create_app

STATIC_FILES = ("/static/rate.js", "/static/admin.js", "/static/readers.css")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(study: CreatedStudy) -> FlaskClient:
    return create_app(study.study_dir).test_client()


def session(client: FlaskClient, token: str) -> dict:
    response = client.get("/api/session", headers=auth(token))
    assert response.status_code == 200, response.json
    return response.json


def test_reader_page_and_session(client: FlaskClient, study: CreatedStudy) -> None:
    page = client.get(f"/r/{study.reader_tokens['alice']}")
    assert page.status_code == 200
    assert b"/static/rate.js" in page.data
    data = session(client, study.reader_tokens["alice"])
    assert data["reader"] == "alice"
    assert data["scale"] == {"low": 1, "high": 5, "labels": ["Bad", "Poor", "Fair", "Good", "Excellent"]}
    assert "diagnostic use" in data["rubric"]
    assert data["rated"] == 0
    with Store.open(study.study_dir) as store:
        assert [item["image_id"] for item in data["items"]] == [i.image_id for i in store.items(1)]


def test_image_is_sent_as_float32_rows(client: FlaskClient, study: CreatedStudy, results_dir: Path) -> None:
    with Store.open(study.study_dir) as store:
        image = store.images()[5]
    response = client.get(f"/api/images/{image.image_id}", headers=auth(study.reader_tokens["bob"]))
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    height, width = int(response.headers["X-Image-Height"]), int(response.headers["X-Image-Width"])
    assert (height, width) == (13, 11)
    pixels = np.frombuffer(response.data, dtype="<f4").reshape(height, width)
    source = np.load(results_dir / "images" / image.method / f"{image.case_id}.npy")
    np.testing.assert_array_equal(pixels, source)


def test_nothing_a_reader_receives_names_a_method_or_case(client: FlaskClient, study: CreatedStudy) -> None:
    token = study.reader_tokens["alice"]
    responses = [client.get(f"/r/{token}"), client.get("/api/session", headers=auth(token))]
    responses += [client.get(path) for path in STATIC_FILES]
    for item in session(client, token)["items"]:
        responses.append(client.get(f"/api/images/{item['image_id']}", headers=auth(token)))
        responses.append(client.put(f"/api/ratings/{item['image_id']}", json={"score": 3},
                                    headers=auth(token)))
    secrets = {m.key for m in study.methods} | {m.label for m in study.methods} | set(study.case_ids)
    secrets |= {"ground truth", "ground_truth", "slice_"}
    for response in responses:
        assert response.status_code == 200
        text = (str(dict(response.headers)) + response.data.decode("latin-1")).lower()
        leaked = [s for s in secrets if s.lower() in text]
        assert not leaked, f"{response.request.path} reveals {leaked}"


def test_rating_is_stored_changed_and_counted(client: FlaskClient, study: CreatedStudy) -> None:
    token = study.reader_tokens["alice"]
    first, second = (item["image_id"] for item in session(client, token)["items"][:2])
    assert client.put(f"/api/ratings/{first}", json={"score": 2}, headers=auth(token)).json == {
        "image_id": first, "score": 2, "rated": 1}
    assert client.put(f"/api/ratings/{second}", json={"score": 5}, headers=auth(token)).json["rated"] == 2
    changed = client.put(f"/api/ratings/{first}", json={"score": 4}, headers=auth(token))
    assert changed.json == {"image_id": first, "score": 4, "rated": 2}
    scores = {item["image_id"]: item["score"] for item in session(client, token)["items"]}
    assert (scores[first], scores[second]) == (4, 5)
    with Store.open(study.study_dir) as store:
        stored = {(r.reader, r.image_id): r.score for r in store.ratings()}
    assert stored == {("alice", first): 4, ("alice", second): 5}


def test_a_reader_sees_and_changes_only_their_own_ratings(client: FlaskClient, study: CreatedStudy) -> None:
    alice, bob = study.reader_tokens["alice"], study.reader_tokens["bob"]
    image_id = session(client, alice)["items"][0]["image_id"]
    client.put(f"/api/ratings/{image_id}", json={"score": 1}, headers=auth(alice))
    assert all(item["score"] is None for item in session(client, bob)["items"])
    client.put(f"/api/ratings/{image_id}", json={"score": 5}, headers=auth(bob))
    with Store.open(study.study_dir) as store:
        stored = {(r.reader, r.image_id): r.score for r in store.ratings()}
    assert stored == {("alice", image_id): 1, ("bob", image_id): 5}


def test_store_refuses_an_image_outside_the_readers_list(study: CreatedStudy) -> None:
    with Store.open(study.study_dir) as store:
        image_id = store.images()[0].image_id
        store._db.execute("DELETE FROM assignments WHERE reader_id = 2 AND image_id = ?", (image_id,))
        assert store.rate(2, image_id, 3) is False
        assert store.rate(1, image_id, 3) is True
        assert [(r.reader, r.image_id) for r in store.ratings()] == [("alice", image_id)]


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "bearer x" * 100,
])
def test_reader_calls_without_a_valid_token_get_401(client: FlaskClient, study: CreatedStudy,
                                                    header: str | None) -> None:
    image_id = session(client, study.reader_tokens["alice"])["items"][0]["image_id"]
    headers = {} if header is None else {"Authorization": header}
    for response in (client.get("/api/session", headers=headers),
                     client.get(f"/api/images/{image_id}", headers=headers),
                     client.put(f"/api/ratings/{image_id}", json={"score": 3}, headers=headers)):
        assert response.status_code == 401
        assert "missing or invalid token" in response.json["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with Store.open(study.study_dir) as store:
        assert store.ratings() == []


def test_pages_need_the_right_kind_of_token(client: FlaskClient, study: CreatedStudy) -> None:
    reader, admin = study.reader_tokens["alice"], study.admin_token
    for path in ("/r/nope", f"/r/{admin}", f"/admin/{reader}", "/admin/nope", "/", "/r/"):
        response = client.get(path)
        assert response.status_code in (403, 404), path
        assert response.mimetype == "text/html"
        assert b"Traceback" not in response.data
    assert b"this link is not valid" in client.get("/r/nope").data
    assert client.get(f"/admin/{admin}").status_code == 200


def test_tokens_reach_only_their_own_api(client: FlaskClient, study: CreatedStudy) -> None:
    admin_calls = client.get("/api/admin/progress", headers=auth(study.reader_tokens["alice"]))
    assert admin_calls.status_code == 403
    assert "needs the admin token" in admin_calls.json["error"]
    reader_calls = client.get("/api/session", headers=auth(study.admin_token))
    assert reader_calls.status_code == 403
    assert "reader call" in reader_calls.json["error"]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (json.dumps({"score": 7}), "application/json", 400, "integer from 1 to 5, got 7"),
    (json.dumps({"score": 0}), "application/json", 400, "integer from 1 to 5, got 0"),
    (json.dumps({"score": 3.5}), "application/json", 400, "got 3.5"),
    (json.dumps({"score": True}), "application/json", 400, "got True"),
    (json.dumps({"score": "3"}), "application/json", 400, "got '3'"),
    (json.dumps({"score": None}), "application/json", 400, "got None"),
    (json.dumps({"score": 3, "method": "x"}), "application/json", 400, 'form {"score": 1}'),
    (json.dumps([3]), "application/json", 400, 'form {"score": 1}'),
    ("score=3", "application/x-www-form-urlencoded", 400, 'form {"score": 1}'),
    ("{not json", "application/json", 400, 'form {"score": 1}'),
    ("", "application/json", 400, 'form {"score": 1}'),
    (json.dumps({"score": 3, "pad": "x" * 5000}), "application/json", 413, "request body over 4096 bytes"),
])
def test_bad_ratings_get_4xx_with_a_clear_message(client: FlaskClient, study: CreatedStudy, body: str,
                                                  content_type: str, status: int, message: str) -> None:
    token = study.reader_tokens["alice"]
    image_id = session(client, token)["items"][0]["image_id"]
    response = client.put(f"/api/ratings/{image_id}", data=body, content_type=content_type,
                          headers=auth(token))
    assert response.status_code == status
    assert message in response.json["error"]
    with Store.open(study.study_dir) as store:
        assert store.ratings() == []


@pytest.mark.parametrize("image_id", ["0123456789abcdef", "zz", "../study.sqlite3", "%2e%2e%2fx", "A" * 300])
def test_unknown_image_ids_get_404(client: FlaskClient, study: CreatedStudy, image_id: str) -> None:
    token = study.reader_tokens["alice"]
    for response in (client.get(f"/api/images/{image_id}", headers=auth(token)),
                     client.put(f"/api/ratings/{image_id}", json={"score": 3}, headers=auth(token))):
        assert response.status_code == 404
        assert response.mimetype == "application/json"


def test_wrong_methods_and_routes_get_4xx_json(client: FlaskClient, study: CreatedStudy) -> None:
    token = study.reader_tokens["alice"]
    for response in (client.post("/api/session", headers=auth(token)),
                     client.delete("/api/ratings/0123456789abcdef", headers=auth(token)),
                     client.get("/api/nothing", headers=auth(token))):
        assert response.status_code in (404, 405)
        assert "error" in response.json


def test_security_headers(client: FlaskClient, study: CreatedStudy) -> None:
    response = client.get(f"/r/{study.reader_tokens['alice']}")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_admin_progress_and_csv_export(client: FlaskClient, study: CreatedStudy) -> None:
    alice = study.reader_tokens["alice"]
    items = session(client, alice)["items"]
    for item, score in zip(items[:3], (1, 4, 5), strict=True):
        client.put(f"/api/ratings/{item['image_id']}", json={"score": score}, headers=auth(alice))
    progress = client.get("/api/admin/progress", headers=auth(study.admin_token)).json
    assert [(r["name"], r["rated"], r["total"]) for r in progress["readers"]] == [
        ("alice", 3, 12), ("bob", 0, 12)]
    assert progress["readers"][1]["last_rated_at"] is None
    export = client.get("/api/admin/ratings.csv", headers=auth(study.admin_token))
    assert export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.data.decode())))
    with Store.open(study.study_dir) as store:
        truth = {i.image_id: i for i in store.images()}
    assert sorted((r["image_id"], int(r["score"])) for r in rows) == sorted(
        (item["image_id"], score) for item, score in zip(items[:3], (1, 4, 5), strict=True))
    for row in rows:
        assert (row["reader"], row["case_id"], row["method"]) == (
            "alice", truth[row["image_id"]].case_id, truth[row["image_id"]].method)


def test_a_locked_database_gives_503_and_stores_nothing(client: FlaskClient, study: CreatedStudy,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    token = study.reader_tokens["alice"]
    image_id = session(client, token)["items"][0]["image_id"]
    monkeypatch.setattr("taskloss.readers.store.BUSY_TIMEOUT_S", 0.05)
    blocker = sqlite3.connect(study.study_dir / "study.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the lock past the busy timeout
    try:
        response = client.put(f"/api/ratings/{image_id}", json={"score": 3}, headers=auth(token))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503
    assert "database is locked" in response.json["error"]
    assert "nothing was stored" in response.json["error"]
    assert all(item["score"] is None for item in session(client, token)["items"])
