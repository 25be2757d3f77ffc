"""The run graph (taskloss.studies.graph): dependency order, its errors, and the scheduler with 1 and 2 jobs."""

import json
import os
import sys
from pathlib import Path

import pytest

from taskloss.errors import ConfigError
from taskloss.studies.graph import RunNode, graph_order, train_graph

# The run kind lives in an importable module beside this file: worker processes (spawned, with this
# process's sys.path) import its functions by name.
sys.path.insert(0, str(Path(__file__).parent))
from graph_nodes import SLEEP, SleepRun


def node(name, *needs, **run):
    return RunNode(name, SleepRun(**run), SLEEP, needs)


def names(nodes):
    return [n.name for n in nodes]


def test_order_puts_needs_first_and_keeps_the_given_order_otherwise():
    given = [node("runs/b", "runs/a"), node("x"), node("runs/a"), node("runs/c", "runs/b", "x")]
    assert names(graph_order(given)) == ["runs/a", "runs/b", "x", "runs/c"]
    ordered = [node("a"), node("b", "a"), node("c")]
    assert graph_order(ordered) == ordered  # a list in order is returned as it is


def test_a_bad_graph_is_refused_naming_what_is_wrong():
    with pytest.raises(ConfigError) as missing:
        graph_order([node("runs/refinement", "runs/recnet"), node("runs/dagan")])
    assert str(missing.value) == ("run 'runs/refinement' needs run 'runs/recnet', which the study does not have; add "
                                  "it or remove the reference (runs: runs/refinement, runs/dagan)")
    with pytest.raises(ConfigError) as circle:
        graph_order([node("a", "c"), node("b", "a"), node("c", "b")])
    assert str(circle.value) == "the study's runs need each other in a circle (a -> c -> b -> a); break the circle"
    with pytest.raises(ConfigError, match="run 'a' appears twice"):
        graph_order([node("a"), node("a")])


def test_one_job_trains_in_order_in_this_process_with_the_callers_fabric(tmp_path):
    seconds = train_graph([node("b", "a", seconds=0.0), node("a", seconds=0.0)], tmp_path, jobs=1, fabric=object())
    assert list(seconds) == ["a", "b"]
    records = {name: json.loads((tmp_path / name / "record.json").read_text()) for name in "ab"}
    assert records["a"]["end"] <= records["b"]["start"]
    assert all(r["pid"] == os.getpid() and r["fabric"] and r["progress"] for r in records.values())


def test_two_jobs_start_a_run_only_after_the_runs_it_needs(tmp_path):
    # a -> b, and c free: c runs beside a; b waits for a although a worker is free once c ends.
    graph = [node("a", seconds=1.0), node("b", "a", seconds=0.1), node("c", seconds=0.1)]
    seconds = train_graph(graph, tmp_path, jobs=2, accelerator="cpu")
    assert seconds == {"a": 1.0, "b": 0.1, "c": 0.1}  # in graph order
    record = {name: json.loads((tmp_path / name / "record.json").read_text()) for name in "abc"}
    assert record["b"]["start"] >= record["a"]["end"]
    assert record["c"]["start"] < record["a"]["end"]  # the free run did not wait
    assert {r["pid"] for r in record.values()} != {os.getpid()}
    # Worker processes split the cores; their trainer sees no terminal (even where the command's stderr is one:
    # pytest's is not, so the stream's type is checked), so it prints one line per epoch; the run's own progress
    # setting, which its config.yaml records, is left alone.
    assert all(r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in record.values())
    assert all(r["stderr"] == "_NoTerminal" and not r["terminal"] and r["progress"] for r in record.values())


def test_a_failed_run_stops_the_graph_and_its_dependents_never_start(tmp_path):
    graph = [node("a", seconds=0.0, fail=True), node("b", "a", seconds=0.0)]
    with pytest.raises(ValueError, match="failed"):
        train_graph(graph, tmp_path, jobs=2, accelerator="cpu")
    assert not (tmp_path / "b").exists()


def test_jobs_with_ddp_runs_are_refused(tmp_path):
    ddp = RunNode("runs/recnet", SleepRun(training={"devices": 2}), SLEEP)
    with pytest.raises(ConfigError) as error:
        train_graph([ddp], tmp_path, jobs=2)
    assert str(error.value).startswith("--jobs 2 trains runs in local processes, and run 'runs/recnet' asks for 2 "
                                       "devices (DDP)")
    assert list(tmp_path.iterdir()) == []  # refused before any run started
