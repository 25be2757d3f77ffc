"""Generated bad run configurations for ``taskloss train``: refused in one line before any file is written.

A valid base configuration is mutated once per case: a value of the wrong type, an unknown key,
a NaN or infinite number, a repeated key, text that is not YAML, a top level that is not a
mapping, or a bad ``key=value`` override. Every mutation is invalid, so no case starts training.
"""

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

BASE = {"study": "mr2xray", "network": "unet", "loss": "l1",
        "data": {"subjects": 3, "angles": 1, "size": 16, "anatomy": "ellipsoid"},
        "training": {"epochs": 1, "batch_size": 2, "accelerator": "cpu", "progress": False,
                     "optimizer": {"lr": 0.001}}}

TYPED_KEYS = {  # key path -> values of a wrong type or out of range for it
    ("training", "epochs"): st.one_of(st.integers(max_value=0), st.text(min_size=1, max_size=5).filter(
        lambda t: not t.strip().lstrip("+-").isdigit()), st.lists(st.integers(), max_size=2)),
    ("training", "batch_size"): st.one_of(st.integers(max_value=0), st.just({"a": 1})),
    ("training", "accelerator"): st.text(max_size=6).filter(lambda t: t not in ("auto", "cpu", "cuda")),
    ("training", "precision"): st.sampled_from(["16", "fp64", 32, None, "bf16"]),
    ("training", "monitor_mode"): st.sampled_from(["minimum", "", 1, ["min"]]),
    ("training", "devices"): st.integers(max_value=0),
    ("training", "optimizer", "lr"): st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just("fast")),
    ("training", "optimizer", "betas"): st.sampled_from([[0.9], "0.9,0.99", [0.9, "x"]]),
    ("loss",): st.text(max_size=8).filter(lambda t: t not in ("perceptual", "l1", "task")),
    ("study",): st.sampled_from(["", "mr2x", 7, None, ["mr2xray"]]),
    ("data", "size"): st.integers(max_value=0),
    ("data", "subjects"): st.integers(max_value=2),
    ("data", "beam"): st.sampled_from(["fan", "", "CONE"]),
}
NUMERIC_KEYS = [("training", "optimizer", "lr"), ("training", "grad_clip"), ("data", "photons"),
                ("training", "optimizer", "weight_decay"), ("data", "mr_noise")]
KEY_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)


def with_value(config: dict, path: tuple, value: object) -> dict:
    import copy

    changed = copy.deepcopy(config)
    node = changed
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return changed


@st.composite
def bad_config_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["wrong type", "unknown key", "non-finite", "repeated key", "not yaml",
                                 "not a mapping"]))
    if kind == "wrong type":
        path = draw(st.sampled_from(sorted(TYPED_KEYS)))
        return yaml.safe_dump(with_value(BASE, path, draw(TYPED_KEYS[path])))
    if kind == "unknown key":
        section = draw(st.sampled_from([(), ("training",), ("training", "optimizer"), ("data",)]))
        name = draw(KEY_NAMES.filter(lambda n: n not in {"study", "network", "loss", "data", "training"}))
        known = {(): BASE, ("training",): BASE["training"], ("training", "optimizer"): {"lr": 1},
                 ("data",): {"subjects", "angles", "size", "seed", "anatomy", "beam", "weighting", "photons"}}
        if name in known[section] or (section == ("training",) and name in _TRAINING_KEYS):
            name += "_x"
        if section == ("training", "optimizer") and name in ("lr", "betas", "weight_decay", "step_epochs",
                                                              "gamma"):
            name += "_x"
        return yaml.safe_dump(with_value(BASE, (*section, name), 1))
    if kind == "non-finite":
        path = draw(st.sampled_from(NUMERIC_KEYS))
        value = draw(st.sampled_from([".nan", ".inf", "-.inf", ".NaN", ".Inf"]))
        return yaml.safe_dump(with_value(BASE, path, "@@")).replace("'@@'", value)
    if kind == "repeated key":
        text = yaml.safe_dump(BASE, sort_keys=False)
        line = draw(st.sampled_from([ln for ln in text.splitlines() if ":" in ln and not ln.endswith(":")]))
        return text.replace(line, f"{line}\n{line}", 1)
    if kind == "not yaml":
        return draw(st.sampled_from(["a: [1, 2", "key: 'open", "{a: 1", "a:\n\tb: 1", "- a\nb: 1", "@x"]))
    return draw(st.sampled_from(["[1, 2]", "just text", "42", "- study: mr2xray", "3.5", "true"]))


_TRAINING_KEYS = {"epochs", "batch_size", "seed", "accelerator", "devices", "num_nodes", "precision",
                  "num_workers", "checkpoint_every_steps", "log_every_steps", "monitor", "monitor_mode",
                  "grad_clip", "progress", "deterministic", "optimizer"}


@settings(max_examples=60)
@given(text=bad_config_text())
def test_train_refuses_bad_config_files_before_writing(text, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("train")
    (cwd / "run.yaml").write_text(text)
    before = kit.snapshot(cwd)
    args = ["train", "run.yaml", "--out", "run"]
    kit.assert_refused(kit.invoke(args, cwd), args)
    kit.assert_unchanged(before, cwd)
    assert not (cwd / "run").exists(), f"a refused train wrote its run folder for:\n{text}"


@settings(max_examples=30)
@given(override=st.one_of(
    st.sampled_from(["training.epochs", "=3", "training.epochs=[1", "training.epochs=abc", "loss=nonsense",
                     "training.optimizer.lr=.nan", "training.optimizer.lr=-.inf", "study.x=1",
                     "training.optimizer={lr: 1, lr: 2}", "training.epochs.x=1"]),
    KEY_NAMES.map(lambda k: f"{k}=1").filter(lambda o: o.split("=")[0] not in BASE)))
def test_train_refuses_bad_overrides(override, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("override")
    (cwd / "run.yaml").write_text(yaml.safe_dump(BASE))
    args = ["train", "run.yaml", "--out", "run", override]
    kit.assert_refused(kit.invoke(args, cwd), args)
    assert not (cwd / "run").exists()


def test_binary_and_non_utf8_config_files_are_refused(tmp_path, kit):
    for name, data in (("latin1.yaml", "study: caf\xe9".encode("latin-1")), ("zeros.yaml", b"\x00" * 40)):
        (tmp_path / name).write_bytes(data)
        args = ["train", name, "--out", "run"]
        kit.assert_refused(kit.invoke(args, tmp_path), args)
