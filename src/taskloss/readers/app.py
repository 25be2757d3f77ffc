"""The rating web app of a reader study (Flask), and :func:`make_server` to serve it with waitress.

Pages and API, each behind a token (readers' tokens reach only the reader routes, the admin token
only the admin routes; the static script, style sheet and icon hold no study data and are public):

=====================================  ===========================================================
``GET /r/<token>``                     the rating page of the reader holding ``token``
``GET /admin/<token>``                 the admin page: progress per reader, CSV export
``GET /api/session``                   reader: scale, rubric, and the reader's images in order
``GET /api/images/<image_id>``         reader: one image, float32 little-endian, row-major
``PUT /api/ratings/<image_id>``        reader: ``{"score": 3}``, stored before the response
``GET /api/admin/progress``            admin: rated / total per reader
``GET /api/admin/ratings.csv``         admin: every rating with case and method
=====================================  ===========================================================

API calls carry the token as ``Authorization: Bearer <token>`` (never in a cookie, so no request can
be forged from another site). Readers see only anonymous image ids: nothing they receive names a
method or a case. Every error is a 4xx with a JSON ``{"error": "..."}`` (an HTML page for page
routes) and never a traceback; a database that cannot be written (locked for over 30 s, disk full) gives
503 and stores nothing.
"""

import csv
import functools
import io
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import waitress
from flask import Flask, Response, abort, g, jsonify, render_template, request
from waitress.server import BaseWSGIServer, MultiSocketServer
from werkzeug.exceptions import HTTPException

from taskloss.errors import InputError
from taskloss.readers.store import IMAGES_FOLDER, Store
from taskloss.readers.study import IMAGE_ID_PATTERN
from taskloss.readers.tokens import matching_key

LOGGER = logging.getLogger(__name__)
READER_PATH = "/r/"
ADMIN_PATH = "/admin/"
MAX_REQUEST_BYTES = 4096
"""Largest request body accepted (a rating is about 15 bytes)."""

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_ADMIN = -1
"""Key of the admin token among the token hashes (reader ids are positive)."""


@dataclass(frozen=True)
class Caller:
    """Who sent the request: a reader (``reader_id`` > 0) or the admin."""

    reader_id: int

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds the admin token."""
        return self.reader_id == _ADMIN


def reader_link(base_url: str, token: str) -> str:
    """The personal link of the reader holding ``token`` on a server at ``base_url``."""
    return f"{base_url.rstrip('/')}{READER_PATH}{token}"


def admin_link(base_url: str, token: str) -> str:
    """The admin page's link on a server at ``base_url``."""
    return f"{base_url.rstrip('/')}{ADMIN_PATH}{token}"


def create_app(study_dir: Path) -> Flask:
    """The Flask app serving the study in ``study_dir``.

    Raises:
        DataError: when ``study_dir`` is not a readable study.
    """
    study_dir = Path(study_dir)
    with Store.open(study_dir) as store:
        info = store.info()
    web = Path(__file__).parent / "web"
    app = Flask(__name__, template_folder=str(web), static_folder=str(web / "static"),
                static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    images_dir = study_dir / IMAGES_FOLDER

    def store() -> Store:
        if "store" not in g:
            g.store = Store.open(study_dir)
        return g.store

    @app.teardown_appcontext
    def _close_store(_error: BaseException | None) -> None:
        opened = g.pop("store", None)
        if opened is not None:
            opened.close()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(_SECURITY_HEADERS)
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Any, int]:
        return _error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(413)
    def _too_large(_error: HTTPException) -> tuple[Any, int]:
        return _error_response(413, f"request body over {MAX_REQUEST_BYTES} bytes; a rating is a small "
                                    'JSON object such as {"score": 3}')

    @app.errorhandler(sqlite3.OperationalError)
    def _database_unavailable(error: sqlite3.OperationalError) -> tuple[Any, int]:
        LOGGER.error("study database error on %s %s: %s", request.method, request.path, error)
        if "readonly" in str(error):
            return _error_response(503, "the study database is read-only; nothing was stored, tell the "
                                        "study's organiser")
        return _error_response(503, f"the study database is unavailable ({error}); nothing was "
                                    "stored, try again in a moment")

    @app.errorhandler(InputError)
    def _input_error(error: InputError) -> tuple[Any, int]:
        return _error_response(400, str(error))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Any, int]:
        LOGGER.exception("unexpected error on %s %s", request.method, request.path)
        return _error_response(500, "internal error; the server log has the details")

    def caller(token: str) -> Caller | None:
        hashes = [*store().reader_token_hashes(), (_ADMIN, store().admin_token_hash())]
        key = matching_key(token, hashes)
        return None if key is None else Caller(key)

    def bearer() -> Caller:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        found = caller(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            abort(401, "missing or invalid token: send your personal token as 'Authorization: Bearer "
                       "<token>' (open your personal link to do so)")
        return found

    def reader_route(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Any:
            found = bearer()
            if found.is_admin:
                abort(403, "this is a reader call; the admin token reaches only /api/admin/*")
            return view(found.reader_id, **kwargs)
        return wrapped

    def admin_route(view: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(view)
        def wrapped() -> Any:
            if not bearer().is_admin:
                abort(403, "this call needs the admin token; a reader's token reaches only the rating "
                           "calls")
            return view()
        return wrapped

    def page(token: str, template: str, want_admin: bool) -> str:
        found = caller(token)
        if found is None or found.is_admin != want_admin:
            abort(403, "this link is not valid; ask the study's organiser for your personal link")
        return render_template(template)

    @app.get(f"{READER_PATH}<token>")
    def rating_page(token: str) -> str:
        return page(token, "rate.html", want_admin=False)

    @app.get(f"{ADMIN_PATH}<token>")
    def admin_page(token: str) -> str:
        return page(token, "admin.html", want_admin=True)

    @app.get("/api/session")
    @reader_route
    def session(reader_id: int) -> Any:
        items = store().items(reader_id)
        return jsonify(
            reader=store().reader_name(reader_id),
            scale={"low": info.scale.low, "high": info.scale.high, "labels": info.scale.labels},
            rubric=info.rubric,
            items=[{"image_id": item.image_id, "score": item.score} for item in items],
            rated=sum(item.score is not None for item in items),
        )

    def assigned_image_id(reader_id: int, image_id: str) -> str:
        if not IMAGE_ID_PATTERN.match(image_id) or not store().is_assigned(reader_id, image_id):
            abort(404, f"unknown image id {image_id[:32]!r}; use an id from /api/session")
        return image_id

    @app.get("/api/images/<image_id>")
    @reader_route
    def image(reader_id: int, image_id: str) -> Response:
        pixels = np.load(images_dir / f"{assigned_image_id(reader_id, image_id)}.npy", allow_pickle=False)
        response = Response(np.ascontiguousarray(pixels, dtype="<f4").tobytes(),
                            mimetype="application/octet-stream")
        response.headers["X-Image-Height"] = str(pixels.shape[0])
        response.headers["X-Image-Width"] = str(pixels.shape[1])
        return response

    @app.put("/api/ratings/<image_id>")
    @reader_route
    def rate(reader_id: int, image_id: str) -> Any:
        assigned_image_id(reader_id, image_id)
        body = _json_body()
        if not isinstance(body, dict) or set(body) != {"score"}:
            abort(400, f'the body must be JSON of the form {{"score": {info.scale.low}}}, with an integer '
                       f"from {info.scale.low} to {info.scale.high}")
        score = info.scale.check(body["score"])
        store().rate(reader_id, image_id, score)
        return jsonify(image_id=image_id, score=score, rated=store().rated_count(reader_id))

    @app.get("/api/admin/progress")
    @admin_route
    def progress() -> Any:
        return jsonify(readers=[vars(p) for p in store().progress()], scale=str(info.scale),
                       created_at=info.created_at)

    @app.get("/api/admin/ratings.csv")
    @admin_route
    def ratings_csv() -> Response:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["reader", "case_id", "method", "image_id", "score", "rated_at"])
        for r in store().ratings():
            writer.writerow([r.reader, r.case_id, r.method, r.image_id, r.score, r.rated_at])
        return Response(buffer.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=ratings.csv"})

    return app


def _json_body() -> Any:
    """The request's JSON body, or None when it is not JSON.

    Parsed here rather than by ``request.get_json(silent=True)``, which lets a ``RecursionError``
    (a body of thousands of nested brackets, still under the size limit) through as a 500 and
    keeps the last value of a repeated key.
    """
    try:
        return json.loads(request.get_data(cache=False), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: ``{"score": 1, "score": 5}`` is not a rating."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key is repeated")
    return dict(pairs)


def _error_response(status: int, message: str) -> tuple[Any, int]:
    if request.path.startswith("/api/"):
        response = jsonify(error=message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="taskloss reader study"'
        return response, status
    return render_template("error.html", status=status, message=message), status


def make_server(
    study_dir: Path, host: str = "127.0.0.1", port: int = 8080, threads: int = 8
) -> tuple[BaseWSGIServer | MultiSocketServer, list[str]]:
    """A waitress server for the study's app, bound and ready to ``run()``.

    Waitress is a production WSGI server (Flask's own is for development): each request runs on one
    of ``threads`` worker threads.

    Args:
        study_dir: the study folder.
        host: address to listen on; the default reaches only this machine. A name that resolves to
            several addresses (``localhost``: 127.0.0.1 and ::1) listens on each.
        port: TCP port; 0 picks a free one.
        threads: worker threads, i.e. requests handled at once (SQLite serialises the writes).

    Returns:
        The server and the base URL (``http://host:port``) of every address it listens on.
    """
    server = waitress.create_server(create_app(study_dir), host=host, port=port, threads=threads)
    if isinstance(server, MultiSocketServer):
        addresses = list(server.effective_listen)
    else:
        addresses = [(server.effective_host, server.effective_port)]
    return server, [f"http://{f'[{h}]' if ':' in str(h) else h}:{p}" for h, p in addresses]
