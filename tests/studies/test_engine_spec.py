"""The study file: the issue's example accepted as it stands, one exact line per bad key, the terms."""

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskloss.data.mr2xray import Mr2XrayConfig, mr2xray_splits
from taskloss.errors import ConfigError
from taskloss.networks import create_network
from taskloss.studies import STUDIES, Study, StudyRequest, get_study, study_of_run
from taskloss.studies.common import subject_half
from taskloss.studies.engine import FileStudy
from taskloss.studies.seeds import seed_table
from taskloss.studies.spec import EXTRA_METRICS, StudySpec, build_runs, extra_metrics, parse_study
from taskloss.studies.terms import TERMS, LossSpec, Term, TermContext, build_loss, term_values

ISSUE_EXAMPLE = """\
name: denoise-t1
task: paired                 # paired: image -> image; csmri: undersampled k-space -> image
data:
  path: pairs/               # paired: input/ and target/ matched by name (PNG, TIFF, NPY, DICOM, NIfTI); csmri: fastMRI HDF5
  size: 64
  split: {val: 0.2, test: 0.2, seed: 0}
networks:
  unet: {name: unet, options: {widths: [16, 32, 64, 128]}}
  resnet: {name: resnet}
losses:                      # each loss is a weighted sum of library terms
  l1: {l1: 1.0}
  ssim_l1: {ssim: 0.84, l1: 0.16}
  perceptual: {perceptual: {weight: 1.0, network: domain, layers: [conv1_2, conv2_2, conv3_2], balance: 10}}
metrics: [mae, psnr, ssim, hfen]
baseline: l1                 # every loss is tested against this one, per network
training: {epochs: 5, batch_size: 8, lr: 0.001}
"""  # noqa: E501 (the issue's text, as it stands)


def example() -> dict:
    return yaml.safe_load(ISSUE_EXAMPLE)


def test_the_issue_example_is_accepted_as_it_stands(tmp_path):
    spec = parse_study(example(), "study.yaml", tmp_path)
    assert spec.data.path == (tmp_path / "pairs").resolve()
    assert spec.losses["ssim_l1"].terms() == {"l1": spec.losses["ssim_l1"].l1, "ssim": spec.losses["ssim_l1"].ssim}
    assert spec.losses["ssim_l1"].ssim.weight == 0.84 and spec.losses["ssim_l1"].l1.weight == 0.16
    perceptual = spec.losses["perceptual"].perceptual
    assert (perceptual.network, perceptual.layers, perceptual.balance) == ("domain", ["conv1_2", "conv2_2",
                                                                                      "conv3_2"], 10)
    runs = build_runs(spec)
    assert list(runs) == ["unet-l1", "unet-ssim_l1", "unet-perceptual", "resnet-l1", "resnet-ssim_l1",
                          "resnet-perceptual"]
    training = runs["unet-l1"].training
    assert (training.epochs, training.batch_size, training.optimizer.lr) == (5, 8, 0.001)
    assert (training.monitor, training.monitor_mode) == ("mae", "min")  # the first metric picks the best epoch
    assert spec.baseline_loss == "l1"


CHOICES = "l1, mse, nmse, ssim, frequency, perceptual, adversarial, feature_matching, penalty, task"


@pytest.mark.parametrize(("change", "line"), [
    (lambda d: d.update(epochs=3), "study.yaml: (root): unknown key 'epochs'; choose one of name, task, data, "
     "networks, losses, metrics, baseline, primary, seeds, training, segmentation, figure_cases, slurm, "
     "detection"),
    (lambda d: d["losses"]["ssim_l1"].update(sssim=1), f"study.yaml: losses.ssim_l1: unknown key 'sssim'; choose "
     f"one of {CHOICES}"),
    (lambda d: d["networks"]["unet"].update(name="unett"), "study.yaml: networks.unet.name: unknown network "
     "'unett'; choose one of crn_128, crn_256, crn_64, dagan_discriminator, dagan_generator, patch_discriminator, "
     "recnet, recnet_d5c5, refinement_unet, resnet, segmentation_resnet, segmentation_unet, unet, visual_refinement"),
    (lambda d: d["training"].update(epochs="five"), "study.yaml: training.epochs: Input should be a valid integer, "
     "unable to parse string as an integer"),
    (lambda d: d.update(baseline="l2"), "study.yaml: baseline: 'l2' is not a loss of this study; choose one of "
     "l1, ssim_l1, perceptual"),
    (lambda d: d.update(metrics=["mae", "lpips"]), "study.yaml: metrics.1: Input should be 'mae', 'psnr', 'ssim', "
     "'hfen', 'nmse', 'haarpsi', 'vsi' or 'ms_ssim'"),
    (lambda d: d.update(metrics=["mae", "ms_ssim"]), "study.yaml: metrics: ms_ssim needs data.size >= 161 (five "
     "scales of an 11-tap window), got 64; leave it out or change the data"),
    (lambda d: (d.update(metrics=["haarpsi"]), d["data"].update(normalize="none")), "study.yaml: metrics: haarpsi "
     "takes images in [0, data_range], so the data must be normalised (data.normalize other than none); leave it "
     "out or change the data"),
    (lambda d: d["losses"].update(fm={"feature_matching": 1}), "study.yaml: losses.fm: feature_matching needs an "
     "adversarial term (its discriminator) in the same loss"),
    (lambda d: d["losses"].update(empty={}), f"study.yaml: losses.empty: a loss needs at least one term; choose "
     f"from {CHOICES}"),
    (lambda d: d["losses"].update(**{"l1-x": {"l1": 1}}), "study.yaml: losses: loss name 'l1-x' may hold only "
     "letters, digits, '_' and '.'"),
    (lambda d: d["losses"]["l1"].update(l1={"weight": 1, "balance": 0}), "study.yaml: losses.l1.l1.balance: "
     "balance must be 'first' or a number of batches >= 1"),
    (lambda d: d["losses"]["l1"].update(adversarial={"discriminator": {"name": "patch"}}),
     "study.yaml: losses.l1.adversarial.discriminator.name: unknown network 'patch'; choose one of crn_128, "
     "crn_256, crn_64, dagan_discriminator, dagan_generator, patch_discriminator, recnet, recnet_d5c5, "
     "refinement_unet, resnet, segmentation_resnet, segmentation_unet, unet, visual_refinement"),
    (lambda d: d["data"].pop("path"), "study.yaml: data.path: Field required"),
    (lambda d: d.update(seeds=[1, 1]), "study.yaml: seeds: seeds [1, 1] repeat a seed; give each seed once"),
    (lambda d: d.update(seeds=[-1]), "study.yaml: seeds.0: Input should be greater than or equal to 0"),
    (lambda d: d.update(primary=["nmse"]), "study.yaml: primary: nmse is not among the study's metrics "
     "(mae, psnr, ssim, hfen) or dice / sis; add it to metrics or leave it out of primary"),
    (lambda d: d["training"].update(optimizer={"lr": 0.01}), "study.yaml: training: lr is given twice, as "
     "training.lr and training.optimizer.lr; keep one"),
    (lambda d: d["training"].update(optimizer={"betaz": [0.5, 0.9]}), "study.yaml: training.optimizer: unknown key "
     "'betaz'; choose one of lr, betas, weight_decay, step_epochs, gamma"),
])
def test_a_bad_key_is_one_line_naming_the_key_and_the_choices(change, line):
    data = copy.deepcopy(example())
    change(data)
    with pytest.raises(ConfigError) as error:
        parse_study(data, "study.yaml")
    assert str(error.value) == line


def test_training_optimizer_is_the_built_in_files_shape_and_lr_its_shorthand():
    """A study file's ``training.optimizer`` takes the keys of the built-in files' (``OptimizerConfig``);
    ``lr`` and ``betas`` are its shorthands, and the study file's defaults fill what neither gives."""
    data = copy.deepcopy(example())
    data["training"] = {"epochs": 5, "optimizer": {"betas": [0.5, 0.999], "step_epochs": 2, "weight_decay": 1e-5}}
    spec = parse_study(data, "study.yaml")
    optimizer = build_runs(spec)["unet-l1"].training.optimizer
    assert (optimizer.lr, optimizer.betas, optimizer.step_epochs, optimizer.weight_decay) == (1e-3, (0.5, 0.999), 2,
                                                                                               1e-5)
    data["training"] = {"lr": 0.01}
    assert build_runs(parse_study(data, "study.yaml"))["unet-l1"].training.optimizer.lr == 0.01
    # The study as recorded in OUT/<name>/study.yaml reads back to the same runs.
    again = parse_study(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json"))), "study.yaml")
    assert build_runs(again) == build_runs(spec)


def test_the_test_only_metrics_are_accepted_where_the_data_allow_them_and_never_pick_the_checkpoint(tmp_path):
    spec = parse_study({**example(), "metrics": ["haarpsi", "vsi", "psnr"]}, "study.yaml", tmp_path)
    assert spec.metrics == ["haarpsi", "vsi", "psnr"] and spec.monitor == "psnr"  # validation has no HaarPSI
    assert parse_study({**example(), "metrics": ["vsi"]}, "study.yaml", tmp_path).monitor == "mae"
    big = {**example(), "metrics": ["ms_ssim", "ssim"], "data": {**example()["data"], "size": 192},
           "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}}}
    assert parse_study(big, "study.yaml", tmp_path).metrics == ["ms_ssim", "ssim"]
    assert extra_metrics(160, "target") == ("haarpsi", "vsi") and extra_metrics(161, "each") == EXTRA_METRICS
    assert extra_metrics(15, "target") == ("vsi",) and extra_metrics(512, "none") == ("ms_ssim",)


def test_balanced_term_starts_at_its_weight_then_keeps_its_first_divisor():
    spec = parse_study({**example(), "baseline": None,
                        "losses": {"mix": {"l1": {"weight": 2.0, "balance": "first"}, "mse": 3.0}}},
                       "study.yaml")
    loss = build_loss(spec.losses["mix"], 1.0).train()
    target = torch.zeros(1, 1, 8, 8)
    first = {"target": target, "input": target}
    pred = torch.full((1, 1, 8, 8), 0.5)
    values = term_values(loss, pred, first)
    assert values["l1"].item() == pytest.approx(1.0)  # 0.5 / 0.5
    assert values["mse"].item() == pytest.approx(0.25)  # fixed: the raw mean squared error
    assert loss(values).total.item() == pytest.approx(2.0 * 1.0 + 3.0 * 0.25)
    later = term_values(loss, torch.full((1, 1, 8, 8), 0.25), first)
    assert later["l1"].item() == pytest.approx(0.25 / 0.5)  # divided by the first batch's value, now frozen
    restored = build_loss(spec.losses["mix"], 1.0)
    restored.load_state_dict(loss.state_dict())
    assert term_values(restored.eval(), torch.full((1, 1, 8, 8), 0.25), first)["l1"].item() == pytest.approx(0.5)


def test_every_registered_term_is_a_loss_key_and_builds_with_its_defaults():
    assert list(LossSpec.model_fields) == list(TERMS)  # one entry per term, nothing listed twice
    network = create_network("segmentation_unet", widths=(4, 8))
    batch = {"input": torch.rand(2, 1, 16, 16), "target": torch.rand(2, 1, 16, 16)}
    pred = batch["input"].clone().requires_grad_()
    for name, entry in TERMS.items():
        settings = entry.spec(network="domain") if name == "perceptual" else entry.spec()
        term = entry.build(name, settings, TermContext(1.0, network))
        assert isinstance(term, Term)
        if name in ("adversarial", "feature_matching"):
            continue  # they need the discriminator's outputs (test_an_adversarial_loss_... below)
        value = term(pred, batch)
        assert value.ndim == 0 and torch.isfinite(value)
    with pytest.raises(ConfigError, match=r"^the task term needs its task network"):
        TERMS["task"].build("task", TERMS["task"].spec(), TermContext(1.0))


def test_penalty_is_the_mean_change_the_network_makes():
    spec = parse_study({**example(), "baseline": None, "losses": {"p": {"penalty": 1.0}}}, "s")
    term = build_loss(spec.losses["p"], 1.0)
    batch = {"input": torch.zeros(2, 1, 4, 4), "target": torch.ones(2, 1, 4, 4)}
    pred = torch.arange(32.0).reshape(2, 1, 4, 4)
    assert term_values(term, pred, batch)["penalty"].item() == pytest.approx(pred.mean().item())
    assert isinstance(term.losses["penalty"], Term)


def test_one_study_interface_for_built_in_and_file_studies(tmp_path):
    assert all(isinstance(study, Study) for study in STUDIES.values())
    assert list(STUDIES) == ["mr2xray", "csmri"]
    with pytest.raises(ConfigError, match=r"unknown study 'ct'; choose one of mr2xray, csmri"):
        get_study("ct")
    assert study_of_run({"study": "csmri"}, "run.yaml") is STUDIES["csmri"]
    assert isinstance(study_of_run({"study": "file", "task": "paired"}, "run.yaml"), FileStudy)
    with pytest.raises(ConfigError, match=r"run.yaml: key 'study' must be one of mr2xray, csmri, file, got 'x'"):
        study_of_run({"study": "x"}, "run.yaml")
    spec = parse_study(example(), "study.yaml", tmp_path)
    assert isinstance(spec, StudySpec) and FileStudy(spec).name == "denoise-t1"


def test_a_built_in_study_refuses_an_option_it_does_not_take(tmp_path):
    with pytest.raises(ConfigError, match=r"study 'mr2xray' takes no option acceleration; it takes jobs"):
        STUDIES["mr2xray"].run(tmp_path, StudyRequest(options={"acceleration": 4.0}))
    with pytest.raises(ConfigError, match=r"study 'csmri' takes no option acceleration; it takes jobs"):
        STUDIES["csmri"].run(tmp_path, StudyRequest(options={"acceleration": 4.0}))
    assert list(tmp_path.iterdir()) == []


def test_an_adversarial_loss_brings_its_discriminator_and_checkpoints_its_balance():
    from lightning.fabric import Fabric

    from taskloss.studies.engine import build_task
    from taskloss.training.adversarial import AdversarialTask

    small = {"widths": [8, 16, 16], "strides": [2, 2, 1], "dropout_layers": []}
    data = {**example(), "baseline": None, "losses": {"gan": {
        "l1": 1.0, "adversarial": {"weight": 0.01, "criterion": "lsgan", "discriminator": {"options": small}},
        "feature_matching": {"weight": 0.1, "balance": "first"}}}}
    run = build_runs(parse_study(data, "study.yaml"))["unet-gan"]
    assert run.training.monitor is None  # adversarial runs keep their last epoch
    task, description = build_task(run, Path())
    assert isinstance(task, AdversarialTask)
    assert description == ("1 l1 + 0.01 adversarial + 0.1 feature_matching (balanced over 1 batch) "
                           "(discriminator patch_discriminator)")
    fabric = Fabric(accelerator="cpu", devices=1)
    task.setup(fabric, run.training.model_copy(update={"accelerator": "cpu"}))
    task.set_training(True)
    logs = task.training_step({"input": torch.rand(2, 1, 32, 32), "target": torch.rand(2, 1, 32, 32)}, fabric)
    assert float(logs["feature_matching_weighted"]) == pytest.approx(0.1)  # its first value / itself x weight
    assert float(logs["adversarial_weighted"]) == pytest.approx(0.01 * float(logs["adversarial_raw"]))
    assert "losses.feature_matching.normalizer.total" in task.checkpoint_state()["composite"].state_dict()


def test_the_seed_table_is_mean_and_sd_of_per_seed_means_and_sis_a_per_seed_ratio():
    # Seed 0: SIS (0.5 + 0.3) / (1 + 0.5) on the cases with a region (NaN: none); seed 1: 0.6 / 0.8.
    rows = [{"method": "a", "subject": "s0", "case": c, "seed": s, "psnr": p, "dice": d, "dice_truth": t}
            for c, s, p, d, t in [("c0", "0", 30.0, 0.5, 1.0), ("c1", "0", 32.0, 0.3, 0.5),
                                  ("c2", "0", 34.0, math.nan, math.nan), ("c0", "1", 31.0, 0.6, 0.8)]]
    lines = seed_table(rows, {"a": "A"}).splitlines()
    assert lines[0] == "| Method | PSNR | DICE | SIS |"
    psnr, dice, sis = [32.0, 31.0], [0.4, 0.6], [0.8 / 1.5, 0.6 / 0.8]
    assert lines[2] == (f"| A | {np.mean(psnr):.4g} ± {np.std(psnr, ddof=1):.2g} | {np.mean(dice):.4g} ± "
                        f"{np.std(dice, ddof=1):.2g} | {np.mean(sis):.4g} ± {np.std(sis, ddof=1):.2g} |")


def test_subject_halves_are_disjoint_and_cover_the_training_subjects():
    train = mr2xray_splits(Mr2XrayConfig(subjects=6, angles=2, size=32, anatomy="ellipsoid")).train
    halves = [{train[i]["subject"] for i in subject_half(train, half).indices}
              for half in ("first_half", "second_half")]
    everyone = {train[i]["subject"] for i in range(len(train))}
    assert halves[0] | halves[1] == everyone and not halves[0] & halves[1] and len(halves[0]) == len(everyone) // 2
    assert subject_half(train, "all") is train
