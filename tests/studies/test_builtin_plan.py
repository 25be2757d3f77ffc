"""The built-in studies as run graphs: their needs, ``taskloss study plan`` on their files, their errors."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from taskloss.cli import app
from taskloss.errors import ConfigError
from taskloss.studies import STUDIES, StudyRequest
from taskloss.studies.common import PRESET_DIR, load_preset
from taskloss.studies.csmri import CsmriPreset, csmri_graph, csmri_preset_runs
from taskloss.studies.mr2xray import Mr2XrayPreset, mr2xray_graph, mr2xray_runs

TINY = Path(__file__).with_name("tiny")


def fixed(task, fabric, prepared, config, steps):
    """Fixed step and validation-batch times instead of measured ones."""
    return 0.5, 0.25


def test_csmri_graph_needs_follow_the_runs_references(tmp_path):
    preset = load_preset(CsmriPreset, "csmri", PRESET_DIR / "csmri-demo.yaml")
    graph = csmri_graph(csmri_preset_runs(preset, {}, {}), tmp_path)
    needs = {node.name: node.needs for node in graph}
    assert needs["runs/refinement"] == ("runs/recnet",)
    assert needs["runs/recnet_task_1"] == ("runs/recnet", "runs/segmentation")  # init_run, then task_run
    assert needs["runs/recnet_observer"] == ("runs/recnet",)
    assert needs["runs/dagan"] == needs["runs/sis_segmentation"] == needs["runs/recnet"] == ()


def test_a_csmri_reference_to_no_run_is_refused_before_training(tmp_path):
    preset = load_preset(CsmriPreset, "csmri", TINY / "csmri-tiny.yaml")
    runs = csmri_preset_runs(preset, {}, {})
    runs["refinement"] = runs["refinement"].model_copy(update={"recnet_run": "recnet_v2"})
    with pytest.raises(ConfigError) as error:
        csmri_graph(runs, tmp_path / "csmri")
    assert str(error.value) == (
        f"runs.refinement.recnet_run: 'recnet_v2' is no run of the study file ({', '.join(runs)}) and no run folder in "
        f"{tmp_path / 'csmri' / 'runs'}; name one of the file's runs")
    (tmp_path / "csmri" / "runs" / "recnet_v2").mkdir(parents=True)  # a run trained before, outside the file
    assert dict((n.name, n.needs) for n in csmri_graph(runs, tmp_path / "csmri"))["runs/refinement"] == ()


def test_mr2xray_task_runs_need_the_bone_network_and_user_data_has_none(tmp_path):
    preset = load_preset(Mr2XrayPreset, "mr2xray", PRESET_DIR / "mr2xray-demo.yaml")
    graph = mr2xray_graph(*mr2xray_runs(preset))
    assert [n.name for n in graph[:2]] == ["task_networks/bone", "task_networks/bone_scorer"]
    assert {n.name: n.needs for n in graph if n.needs} == {"runs/unet-task": ("task_networks/bone",)}
    bones, runs = mr2xray_runs(preset, tmp_path / "pairs")
    assert bones == {} and not any(run.loss == "task" for run in runs.values())


def test_plan_of_the_tiny_csmri_file_builds_every_run_on_the_stand_ins_of_those_it_needs(tmp_path):
    """The refinement is built on the RecNet the plan timed, the task-loss runs on its segmentation
    network: every run of the graph is planned, and nothing is written into the study folder."""
    request = StudyRequest(preset=TINY / "csmri-tiny.yaml", accelerator="cpu")
    planned = STUDIES["csmri"].plan(request, tmp_path / "csmri", steps=1, measure=fixed)
    preset = load_preset(CsmriPreset, "csmri", TINY / "csmri-tiny.yaml")
    assert [p.name for p in planned] == [f"runs/{name}" for name in preset.runs]
    by_name = {p.name: p for p in planned}
    # 3 subjects x 3 slices: 1 training subject (3 slices), batch 4 -> 1 step per epoch, 1 epoch.
    assert by_name["runs/recnet"].steps == 1 and by_name["runs/recnet"].seconds_per_step == 0.5
    # The refinement's RecNet is frozen: its trainable parameters are the update network's and the discriminator's.
    recnet, refinement = by_name["runs/recnet"].parameters, by_name["runs/refinement"].parameters
    assert 0 < recnet < refinement
    assert by_name["runs/refinement"].needs == ("runs/recnet",)
    assert not any(p.finished for p in planned) and not (tmp_path / "csmri").exists()


def test_plan_of_a_seeded_mr2xray_file_lists_each_run_per_seed(tmp_path):
    data = yaml.safe_load((TINY / "mr2xray-tiny.yaml").read_text())
    request = StudyRequest(preset=Mr2XrayPreset.model_validate({**data, "seeds": [0, 2]}), accelerator="cpu")
    planned = STUDIES["mr2xray"].plan(request, tmp_path / "mr2xray", steps=1, measure=fixed)
    names = [p.name for p in planned]
    assert names[:2] == ["seeds/0/task_networks/bone", "seeds/0/task_networks/bone_scorer"]
    assert len(names) == 2 * len({n.split("/", 2)[2] for n in names}) and names[len(names) // 2].startswith("seeds/2/")
    task = next(p for p in planned if p.name == "seeds/2/runs/unet-task")
    assert task.needs == ("seeds/2/task_networks/bone",)


def test_study_plan_on_a_built_in_file_prints_its_graph_and_the_least_time_with_jobs(tmp_path):
    """The command a user runs on a built-in study's file: every run of the graph, measured on this machine."""
    result = CliRunner().invoke(app, ["study", "plan", str(TINY / "csmri-tiny.yaml"), "--out", str(tmp_path),
                                      "--steps", "1", "--accelerator", "cpu", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    rows = [line.split(" | ")[0].removeprefix("| ") for line in result.output.splitlines()
            if line.startswith("| runs/")]
    assert rows == [f"runs/{name}" for name in load_preset(CsmriPreset, "csmri", TINY / "csmri-tiny.yaml").runs]
    assert "; with --jobs 2 at best " in result.output
    assert "the longest chain of runs that need each other" in result.output
    assert f"No pilot ({tmp_path / 'csmri' / 'results' / 'per_image.csv'} does not exist)" in result.output
    assert not (tmp_path / "csmri").exists()
