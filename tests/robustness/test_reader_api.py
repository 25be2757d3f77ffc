"""Generated requests to the reader app (Flask's test client): a bad request is answered 4xx, never 5xx."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from taskloss.readers import create_app

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10)


def deep(depth: int, kind: str) -> bytes:
    return (("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)).encode()


BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"score": JSON_VALUES}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.tuples(st.integers(500, 3000), st.sampled_from(["list", "dict"])).map(lambda t: deep(*t)),
    st.sampled_from([b'{"score": NaN}', b'{"score": 1e999}', b'{"score": 3, "score": 4}', b"\xff\xfe{",
                     b'{"score": "3"}', b'{"score": 3.0}', b'{"score": true}', b"", b"x" * 5000]),
)
TEXT = st.text(max_size=40)


@settings(max_examples=50)
@given(body=BODIES, image=st.one_of(TEXT, st.just("")), header=st.booleans())
def test_bad_rating_bodies_and_ids_get_a_4xx(reader_study, body, image, header, kit):
    client = create_app(reader_study.study_dir).test_client()
    token = reader_study.reader_tokens["alice"]
    session = client.get("/api/session", headers={"Authorization": f"Bearer {token}"}).json
    image_id = image if image else session["items"][0]["image_id"]
    kit.count("test_reader_api")
    response = client.put(f"/api/ratings/{image_id}", data=body,
                          headers={"Authorization": f"Bearer {token}"} if header else {},
                          content_type="application/json")
    assert response.status_code < 500, (body[:80], image_id, response.get_data()[:200])
    valid = body.strip() in {b'{"score": %d}' % s for s in range(1, 6)}
    assert valid or 400 <= response.status_code < 500, (body[:80], response.status_code)


@settings(max_examples=50)
@given(token=TEXT, path=st.sampled_from(["/api/session", "/api/images/{t}", "/api/admin/progress",
                                         "/api/admin/ratings.csv", "/r/{t}", "/admin/{t}", "/{t}"]),
       method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]), scheme=st.sampled_from(["Bearer ", "", "Basic "]))
def test_bad_tokens_paths_and_methods_get_a_4xx(reader_study, token, path, method, scheme, kit):
    client = create_app(reader_study.study_dir).test_client()
    kit.count("test_reader_api")
    target = path.replace("{t}", token.replace("/", "%2F").replace("?", "%3F").replace("#", "%23"))
    try:
        headers = {"Authorization": f"{scheme}{token}"}
        response = client.open(target, method=method, headers=headers)
    except ValueError:  # a header value the HTTP client itself refuses to send (a newline)
        return
    assert 400 <= response.status_code < 500, (method, target, response.status_code)
