"""Generated bad command-line arguments, thrown at every command: always one line and exit 2.

Each property draws one bad value for one option (the rest valid and small) and checks the
promise (exit 2, one ``taskloss: error:`` line, no traceback) and that no file that existed
before was changed. Values are drawn so that every case is bad: a case that would start real
work (simulate, train, serve) is never generated.
"""

import math
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

NOT_A_NUMBER = st.sampled_from(["abc", "", "1,5", "0x", "one", "--", "1e", "NaN%", "[1]"])
NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"])
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=12)


def small_simulation(kind: str, out: Path) -> list[str]:
    common = ["simulate", kind, "--out", str(out), "--subjects", "3", "--size", "8", "--anatomy", "ellipsoid"]
    return common + (["--angles", "1"] if kind == "mr2xray" else ["--slices", "1"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, kit) -> Path:
    """A folder that holds a small simulated dataset (a bad command must leave it as it is)."""
    out = tmp_path_factory.mktemp("dataset") / "data"
    status, _, err = kit.invoke(small_simulation("mr2xray", out), out.parent)
    assert status == 0, err
    return out


def bad_int(low: int) -> st.SearchStrategy[str]:
    """An int option's bad value: below ``low`` or not an integer."""
    return st.one_of(st.integers(max_value=low - 1).map(str), NOT_A_NUMBER, NON_FINITE,
                     st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)).map(repr))


SIMULATE_BAD = {
    "mr2xray": {"--subjects": bad_int(3), "--angles": bad_int(1), "--size": bad_int(1),
                "--photons": st.one_of(NON_FINITE, NOT_A_NUMBER, st.floats(max_value=-1e-9).map(repr)),
                "--anatomy": WORDS.filter(lambda w: w not in ("mni152", "ellipsoid")),
                "--beam": WORDS.filter(lambda w: w not in ("cone", "parallel")),
                "--weighting": WORDS.filter(lambda w: w not in ("t1", "t2", "pd"))},
    "csmri": {"--subjects": bad_int(3), "--slices": bad_int(1), "--size": bad_int(1),
              "--acceleration": st.one_of(NON_FINITE, NOT_A_NUMBER,
                                          st.floats(max_value=0.999, allow_nan=False).map(repr)),
              "--mask": WORDS.filter(lambda w: w not in ("cartesian-vd", "random", "equispaced", "vd-2d")),
              "--anatomy": WORDS.filter(lambda w: w not in ("mni152", "ellipsoid")),
              "--weighting": WORDS.filter(lambda w: w not in ("t1", "t2", "pd"))},
}


@st.composite
def simulate_case(draw: st.DrawFn) -> tuple[str, str, str]:
    kind = draw(st.sampled_from(sorted(SIMULATE_BAD)))
    option = draw(st.sampled_from(sorted(SIMULATE_BAD[kind])))
    return kind, option, draw(SIMULATE_BAD[kind][option])


@settings(max_examples=60)
@given(case=simulate_case(), into_dataset=st.booleans())
def test_simulate_refuses_bad_options_and_leaves_a_dataset_alone(case, into_dataset, dataset, kit):
    kind, option, value = case
    out = dataset if into_dataset else dataset.parent / "new"
    before = kit.snapshot(dataset.parent)
    args = [*small_simulation(kind, out), f"{option}={value}"]
    kit.assert_refused(kit.invoke(args, dataset.parent), args)
    kit.assert_unchanged(before, dataset.parent)
    assert not (dataset.parent / "new").exists()


@settings(max_examples=10)
@given(kind=st.sampled_from(["mr2xray", "csmri"]), huge=st.integers(min_value=10**6, max_value=10**12))
def test_simulate_refuses_sizes_beyond_memory_and_a_second_dataset(kind, huge, dataset, kit):
    before = kit.snapshot(dataset.parent)
    args = [*small_simulation(kind, dataset.parent / "big"), "--size", str(huge)]
    assert "choose a smaller --size" in kit.assert_refused(kit.invoke(args, dataset.parent), args)
    args = small_simulation(kind, dataset)  # valid options, but the folder holds a dataset
    assert "already holds a dataset" in kit.assert_refused(kit.invoke(args, dataset.parent), args)
    args = small_simulation(kind, dataset / "index.csv")  # a file
    assert "is a file, not a folder" in kit.assert_refused(kit.invoke(args, dataset.parent), args)
    kit.assert_unchanged(before, dataset.parent)


STUDY_BAD = {
    "--preset": WORDS.filter(lambda w: w not in ("demo", "small", "full")),
    "--devices": bad_int(1),
    "--accelerator": WORDS.filter(lambda w: w not in ("auto", "cpu", "cuda")),
    "--acceleration": st.one_of(NON_FINITE, NOT_A_NUMBER),
    "--unknown-option": WORDS,
}


@settings(max_examples=40)
@given(study=st.sampled_from(["mr2xray", "csmri"]), option=st.sampled_from(sorted(STUDY_BAD)), data=st.data())
def test_study_refuses_bad_options_before_writing(study, option, data, tmp_path_factory, kit):
    if option == "--acceleration" and study == "mr2xray":
        option = "--preset"
    value = data.draw(STUDY_BAD[option])
    cwd = tmp_path_factory.mktemp("study")
    args = ["study", study, "--out", str(cwd / "out"), f"{option}={value}"]
    kit.assert_refused(kit.invoke(args, cwd), args)
    assert not (cwd / "out").exists()


@st.composite
def readers_case(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["create", "serve", "relink", "mos"]))
    if command == "create":
        option, value = draw(st.sampled_from([
            ("--seed", st.integers(max_value=-1).map(str)), ("--cases", st.integers(max_value=0).map(str)),
            ("--scale", WORDS), ("--seed", NOT_A_NUMBER), ("--readers", st.just(",,")),
            ("--cases", NON_FINITE)]).flatmap(lambda pair: st.tuples(st.just(pair[0]), pair[1])))
        return ["readers", "create", "study", "--from", "results", f"{option}={value}"]
    if command == "serve":
        port = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=65536)).map(str) | NOT_A_NUMBER)
        return ["readers", "serve", "study", f"--port={port}"]
    if command == "relink":
        return ["readers", "relink", "study", *draw(st.sampled_from([[], ["--admin", "--reader", "x"]]))]
    return ["readers", "mos", draw(WORDS)]


@settings(max_examples=40)
@given(args=readers_case())
def test_readers_commands_refuse_bad_arguments(args, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("readers")
    (cwd / "results").mkdir()
    before = kit.snapshot(cwd)
    kit.assert_refused(kit.invoke(args, cwd), args)
    kit.assert_unchanged(before, cwd)
    assert not (cwd / "study").exists()


def test_serve_on_a_port_in_use_names_the_port(reader_study, tmp_path, kit):
    created = reader_study
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["readers", "serve", str(created.study_dir), "--port", str(port)]
        line = kit.assert_refused(kit.invoke(args, tmp_path), args)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "choose another --port" in line


PATHS = st.sampled_from(["missing", "a_file.txt", "empty_dir", "a_file.txt/below", ""])


@settings(max_examples=40)
@given(command=st.sampled_from(["train", "evaluate", "report", "demo", "train-perception", "readers-create",
                                "study-data"]),
       path=PATHS, extra=st.sampled_from([[], ["--split", "nonsense"], ["--bogus"]]))
def test_commands_given_wrong_paths_refuse_in_one_line(command, path, extra, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("paths")
    (cwd / "a_file.txt").write_text("not what any command reads\n")
    (cwd / "empty_dir").mkdir()
    target = str(cwd / path) if path else ""
    args = {"train": ["train", target], "evaluate": ["evaluate", target, *extra[:2]],
            "report": ["report", target], "demo": ["demo", "--out", str(cwd / "a_file.txt" / "x")],
            "train-perception": ["train-perception", "--steps", "0", "--out", str(cwd / "w.pt")],
            "readers-create": ["readers", "create", str(cwd / "study"), "--from", target],
            "study-data": ["study", "csmri", "--out", str(cwd / "out"), "--data", target or str(cwd / "x")],
            }[command] + (["--bogus"] if extra == ["--bogus"] else [])
    before = kit.snapshot(cwd)
    kit.assert_refused(kit.invoke(args, cwd), args)
    kit.assert_unchanged(before, cwd)
    assert sorted(p.name for p in cwd.iterdir()) == ["a_file.txt", "empty_dir"], "a refused command wrote"


def test_finite_number_strategy_is_really_not_finite():
    assert all(not math.isfinite(float(v)) for v in ("nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"))
