"""Creating a study: the results contract, anonymous copies, seeded orders, hashed tokens, scale."""

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from taskloss.errors import DataError, InputError
from taskloss.readers import CreatedStudy, LikertScale, Store, create_study, parse_scale, read_results
from taskloss.readers.store import DATABASE_NAME
from taskloss.readers.study import IMAGE_ID_PATTERN, reader_order, select_cases
from taskloss.readers.tokens import hash_token, matching_key, new_token


def test_read_results_orders_methods_and_appends_ground_truth(results_dir: Path) -> None:
    results = read_results(results_dir)
    assert [m.key for m in results.methods] == ["zero_filled", "recnet", "refined", "ground_truth"]
    assert results.methods[-1].label == "Ground truth"
    assert results.case_ids == ("slice_000", "slice_001", "slice_002", "slice_003")


def test_ground_truth_listed_in_methods_json_keeps_its_place_and_label(
    tmp_path: Path, write_results: Callable[..., Path]
) -> None:
    root = write_results(tmp_path / "r", methods=(("ground_truth", "Reference"), ("recnet", "RecNet")))
    assert [(m.key, m.label) for m in read_results(root).methods] == [
        ("ground_truth", "Reference"), ("recnet", "RecNet")]


def test_study_copies_every_image_exactly_under_anonymous_ids(study: CreatedStudy, results_dir: Path) -> None:
    with Store.open(study.study_dir) as store:
        images = store.images()
        assert store.journal_mode() == "wal"
    assert len(images) == study.n_images == 3 * 4
    assert {(i.case_id, i.method) for i in images} == {
        (c, m.key) for c in study.case_ids for m in study.methods}
    for image in images:
        assert IMAGE_ID_PATTERN.match(image.image_id)
        copied = np.load(study.study_dir / "images" / f"{image.image_id}.npy")
        source = np.load(results_dir / "images" / image.method / f"{image.case_id}.npy")
        assert copied.dtype == np.float32
        np.testing.assert_array_equal(copied, source)


def test_each_reader_gets_a_seeded_permutation_of_every_image(
    make_study: Callable[..., CreatedStudy]
) -> None:
    first = make_study(seed=11)
    again = make_study(seed=11)
    with Store.open(first.study_dir) as store:
        ids = [i.image_id for i in store.images()]
        orders = [[item.image_id for item in store.items(r)] for r in (1, 2)]
    with Store.open(again.study_dir) as store:
        ids_again = [i.image_id for i in store.images()]
        orders_again = [[item.image_id for item in store.items(r)] for r in (1, 2)]
    for order in orders:
        assert sorted(order) == sorted(ids)
    assert orders[0] != orders[1]
    # Same seed, same order of (case, method) positions, though the anonymous ids are new.
    for order, order_again in zip(orders, orders_again, strict=True):
        assert [ids.index(i) for i in order] == [ids_again.index(i) for i in order_again]
    assert set(ids).isdisjoint(ids_again)


def test_reader_order_and_case_choice_are_seeded() -> None:
    np.testing.assert_array_equal(reader_order(10, 3, 0), reader_order(10, 3, 0))
    assert sorted(reader_order(10, 3, 1)) == list(range(10))
    cases = tuple(f"c{i}" for i in range(20))
    assert select_cases(cases, 5, seed=4) == select_cases(cases, 5, seed=4)
    assert select_cases(cases, 5, seed=4) != select_cases(cases, 5, seed=5)
    assert select_cases(cases, None, seed=4) == cases


def test_tokens_are_stored_only_as_hashes(study: CreatedStudy) -> None:
    raw = (study.study_dir / DATABASE_NAME).read_bytes()
    for token in [*study.reader_tokens.values(), study.admin_token]:
        assert token.encode() not in raw
    with Store.open(study.study_dir) as store:
        hashes = store.reader_token_hashes()
        assert store.admin_token_hash() == hash_token(study.admin_token)
    assert matching_key(study.reader_tokens["bob"], hashes) == 2
    assert matching_key(new_token(), hashes) is None
    assert matching_key("x" * 1000, hashes) is None


def test_study_records_its_settings(make_study: Callable[..., CreatedStudy], results_dir: Path) -> None:
    created = make_study(scale=LikertScale(1, 4), rubric="  Judge sharpness.  ", seed=5)
    with Store.open(created.study_dir) as store:
        info = store.info()
    assert info.results_dir == results_dir.resolve()
    assert (info.scale, info.rubric, info.seed) == (LikertScale(1, 4), "Judge sharpness.", 5)


def test_a_random_seed_is_drawn_and_recorded(make_study: Callable[..., CreatedStudy]) -> None:
    with Store.open(make_study(seed=None).study_dir) as store:
        assert 0 <= store.info().seed < 2**63


def test_scale_parsing_labels_and_checks() -> None:
    five = parse_scale(" 1 - 5 ")
    assert five.values == (1, 2, 3, 4, 5)
    assert five.labels == ("Bad", "Poor", "Fair", "Good", "Excellent")
    assert parse_scale("0-3").labels == ("Worst", "", "", "Best")
    assert five.check(3) == 3
    for bad in (0, 6, 3.0, True, "3", None):
        with pytest.raises(InputError, match="score must be an integer from 1 to 5"):
            five.check(bad)


@pytest.mark.parametrize(("text", "message"), [
    ("1..5", "is not of the form LOW-HIGH"),
    ("5-1", "lowest first"),
    ("1-10", "single-digit"),
    ("3-3", "lowest first"),
])
def test_bad_scales_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_scale(text)


def _break_missing_methods_json(root: Path) -> None:
    (root / "methods.json").unlink()


def _break_methods_json_syntax(root: Path) -> None:
    (root / "methods.json").write_text('{"methods": [{"key": "recnet"}]}')


def _break_ground_truth(root: Path) -> None:
    for path in (root / "images" / "ground_truth").iterdir():
        path.unlink()
    (root / "images" / "ground_truth").rmdir()


def _break_unlisted_folder(root: Path) -> None:
    (root / "images" / "dagan").mkdir()


def _break_listed_folder(root: Path) -> None:
    data = json.loads((root / "methods.json").read_text())
    data["methods"].append({"key": "dlmri", "label": "DLMRI"})
    (root / "methods.json").write_text(json.dumps(data))


def _break_case_ids(root: Path) -> None:
    (root / "images" / "recnet" / "slice_001.npy").unlink()


def _break_range(root: Path) -> None:
    for case in range(4):
        np.save(root / "images" / "recnet" / f"slice_{case:03d}.npy", np.full((13, 11), 1.5, np.float32))


def _break_nan(root: Path) -> None:
    image = np.zeros((13, 11), np.float32)
    image[2, 3] = np.nan
    for case in range(4):
        np.save(root / "images" / "recnet" / f"slice_{case:03d}.npy", image)


def _break_dtype(root: Path) -> None:
    for case in range(4):
        np.save(root / "images" / "recnet" / f"slice_{case:03d}.npy", np.zeros((13, 11), np.uint8))


def _break_shape(root: Path) -> None:
    for case in range(4):
        np.save(root / "images" / "recnet" / f"slice_{case:03d}.npy", np.zeros((12, 11), np.float32))


def _break_file(root: Path) -> None:
    for case in range(4):
        (root / "images" / "recnet" / f"slice_{case:03d}.npy").write_bytes(b"not a numpy file")


@pytest.mark.parametrize(("damage", "message"), [
    (_break_missing_methods_json, r"methods.json is missing"),
    (_break_methods_json_syntax, r"is not of the form .*KeyError"),
    (_break_ground_truth, r"ground_truth is missing"),
    (_break_unlisted_folder, r"images/dagan has no entry in .*methods.json"),
    (_break_listed_folder, r"images/dlmri is missing; methods.json lists method 'dlmri'"),
    (_break_case_ids, r"hold different case ids \(e.g. slice_001\)"),
    (_break_range, r"values in \[1.5, 1.5\], outside \[0, 1\]"),
    (_break_nan, r"NaN or infinite"),
    (_break_dtype, r"uint8 array of shape \(13, 11\); expected a 2-D float32"),
    (_break_shape, r"differ in shape .*could tell the methods apart"),
    (_break_file, r"not a readable .npy image"),
])
def test_results_that_break_the_contract_are_refused(
    tmp_path: Path, write_results: Callable[..., Path], damage: Callable[[Path], None], message: str
) -> None:
    root = write_results(tmp_path / "results")
    damage(root)
    with pytest.raises(DataError, match=message):
        create_study(tmp_path / "study", root, reader_names=["a"], seed=0)
    assert not (tmp_path / "study").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["results"], "a failed create leaves nothing behind"


def test_missing_results_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; pass the --out folder"):
        create_study(tmp_path / "study", tmp_path / "nowhere", reader_names=["a"])


def test_an_existing_study_is_never_overwritten(study: CreatedStudy, results_dir: Path) -> None:
    with pytest.raises(InputError, match="already exists and is not an empty folder"):
        create_study(study.study_dir, results_dir, reader_names=["a"])
    with Store.open(study.study_dir) as store:
        assert store.reader_names() == ["alice", "bob"]


def test_an_empty_folder_may_hold_the_study(tmp_path: Path, results_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    created = create_study(tmp_path / "empty", results_dir, reader_names=["a"], seed=0)
    assert (created.study_dir / DATABASE_NAME).is_file()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reader_names": ["a", " a"]}, "lists a name twice"),
    ({"reader_names": ["a", ""]}, "non-empty, printable names"),
    ({"n_cases": 5}, r"--cases 5 is not possible: the results hold 4 cases"),
    ({"n_cases": 0}, r"--cases 0 is not possible"),
    ({"rubric": "  "}, "--rubric is empty"),
])
def test_bad_arguments_are_refused(tmp_path: Path, results_dir: Path, kwargs: dict, message: str) -> None:
    options = {"reader_names": ["a", "b"], "seed": 0, **kwargs}
    with pytest.raises(InputError, match=message):
        create_study(tmp_path / "study", results_dir, **options)


def test_open_refuses_what_is_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a reader study"):
        Store.open(tmp_path)
    (tmp_path / DATABASE_NAME).write_bytes(b"garbage" * 100)
    with pytest.raises(DataError, match="not a readable study database"):
        Store.open(tmp_path)


def test_open_refuses_another_schema_version(study: CreatedStudy) -> None:
    with sqlite3.connect(study.study_dir / DATABASE_NAME) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DataError, match="schema version 99"):
        Store.open(study.study_dir)
