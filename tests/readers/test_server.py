"""The served app over real HTTP on loopback: no acknowledged rating is lost, under load or a kill.

Traffic goes only to 127.0.0.1, in bounded loops with timeouts.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager

import numpy as np
import pytest
from waitress import wasyncore

from taskloss.readers import CreatedStudy, Store, make_server

TIMEOUT_S = 30


class ReaderClient:
    """A reader's HTTP client with one keep-alive connection."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        self.headers = {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        self.connection.close()

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def items(self) -> list[str]:
        status, data = self.call("GET", "/api/session")
        assert status == 200
        return [item["image_id"] for item in json.loads(data)["items"]]

    def rate(self, image_id: str, score: int) -> bool:
        """True when the server acknowledged the rating."""
        status, _ = self.call("PUT", f"/api/ratings/{image_id}", {"score": score})
        return status == 200


@pytest.fixture
def served(study: CreatedStudy) -> Iterator[int]:
    """The study served by waitress in a thread; yields the port."""
    with serving(study) as port:
        yield port


@contextmanager
def serving(study: CreatedStudy) -> Iterator[int]:
    """Serve ``study`` with waitress in a thread while the block runs; gives the port."""
    server, urls = make_server(study.study_dir, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(urls[0].rsplit(":", 1)[1])
    finally:
        # Close every socket from the server's own loop thread (closing them from here would pull
        # them from under its select()); the loop ends when nothing is left to watch.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(TIMEOUT_S)
        server.task_dispatcher.shutdown()


def test_served_page_and_image_over_http(served: int, study: CreatedStudy) -> None:
    with closing(ReaderClient(served, study.reader_tokens["alice"])) as client:
        status, page = client.call("GET", f"/r/{study.reader_tokens['alice']}")
        assert status == 200 and b"rate.js" in page
        image_id = client.items()[0]
        status, data = client.call("GET", f"/api/images/{image_id}")
        assert status == 200 and len(data) == 13 * 11 * 4
        status, body = client.call("PUT", f"/api/ratings/{image_id}", {"score": 9})
    assert status == 400 and b"integer from 1 to 5" in body


def test_twenty_concurrent_readers_lose_no_rating(make_study: Callable[..., CreatedStudy]) -> None:
    names = [f"reader-{i:02d}" for i in range(20)]
    study = make_study(reader_names=names, n_cases=3)
    def read(port: int, name: str) -> dict[str, int]:
        rng = np.random.default_rng(names.index(name))
        acknowledged = {}
        with closing(ReaderClient(port, study.reader_tokens[name])) as client:
            image_ids = client.items()
            # Rate every image, then change a third of them, as readers going back would.
            for image_id in [*image_ids, *image_ids[::3]]:
                score = int(rng.integers(1, 6))
                if client.rate(image_id, score):
                    acknowledged[image_id] = score
        return acknowledged

    with serving(study) as port, ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = dict(zip(names, pool.map(lambda name: read(port, name), names), strict=True))
    with Store.open(study.study_dir) as store:
        stored = {(r.reader, r.image_id): r.score for r in store.ratings()}
    expected = {(name, image_id): score for name, acks in results.items() for image_id, score in acks.items()}
    assert all(len(acks) == 12 for acks in results.values()), "every rating was acknowledged"
    assert stored == expected


@contextmanager
def serving_process(study: CreatedStudy) -> Iterator[tuple[subprocess.Popen, int]]:
    """``taskloss readers serve STUDY --port 0`` as a child process; gives it and its port."""
    code = (f"import sys; sys.argv = ['taskloss', 'readers', 'serve', {str(study.study_dir)!r}, "
            "'--port', '0']; from taskloss.cli import main; main()")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving reader study ... at http://127.0.0.1:PORT (...)"
        assert "serving reader study" in line, line
        yield server, int(line.split(" at http://127.0.0.1:")[1].split(" ")[0])
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(TIMEOUT_S)
        if server.stdout is not None:
            server.stdout.close()


def test_killed_server_keeps_every_acknowledged_rating(study: CreatedStudy) -> None:
    with serving_process(study) as (server, port):
        with closing(ReaderClient(port, study.reader_tokens["bob"])) as client:
            acknowledged = {image_id: 1 + i % 5 for i, image_id in enumerate(client.items())
                            if client.rate(image_id, 1 + i % 5)}
        server.send_signal(signal.SIGKILL)  # right after the last acknowledgement
        server.wait(TIMEOUT_S)
    assert len(acknowledged) == 12
    with Store.open(study.study_dir) as store:
        assert {r.image_id: r.score for r in store.ratings() if r.reader == "bob"} == acknowledged
    with serving_process(study) as (server, port):
        with closing(ReaderClient(port, study.reader_tokens["bob"])) as client:
            status, data = client.call("GET", "/api/session")
        assert status == 200 and json.loads(data)["rated"] == 12, "a restarted server resumes"
        server.send_signal(signal.SIGTERM)  # as systemd or docker stop send it: a clean stop
        assert server.wait(TIMEOUT_S) == 0
        assert server.stdout is not None and "server stopped" in server.stdout.read()
