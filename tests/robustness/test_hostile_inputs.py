"""Generated hostile inputs of round three: YAML alias bombs, deep nesting and too many aliases;
degenerate images (constant, all zero, constant up to float32 rounding) anywhere in a pair folder;
one name in two formats.

Each case runs ``taskloss study plan`` or ``study run`` in this process and must be refused in one
``taskloss: error:`` line that names the file, before anything is written. Merge keys are the
benign counterpart: a merged mapping equals the mapping written out.
"""

import imageio.v3 as iio
import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from taskloss.training.config import MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_NODES, _parse_yaml

SIZE = 16
PAIRS = 6
STUDY = {"name": "h", "data": {"path": "pairs", "size": SIZE},
         "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}},
         "losses": {"l1": {"l1": 1.0}}, "training": {"epochs": 1, "batch_size": 2}}
KEYS = st.text(alphabet="abcdefghij", min_size=1, max_size=4).map(lambda k: f"k_{k}")


@st.composite
def alias_bomb(draw: st.DrawFn) -> str:
    """``levels`` anchors, each a list of ``fan`` aliases of the one before: about fan**(levels + 1) values."""
    fan = draw(st.integers(min_value=4, max_value=12))
    levels = draw(st.integers(min_value=2, max_value=9).filter(lambda n: fan ** (n + 1) > MAX_YAML_NODES))
    flow = draw(st.booleans())
    lines = [f"a0: &a0 [{', '.join(['lol'] * fan)}]"]
    for level in range(1, levels + 1):
        aliases = [f"*a{level - 1}"] * fan
        if flow:
            lines.append(f"a{level}: &a{level} [{', '.join(aliases)}]")
        else:
            lines.append(f"a{level}: &a{level}\n" + "\n".join(f"  - {a}" for a in aliases))
    key = draw(st.sampled_from(["name", "networks", "data", "bomb"]))
    return "\n".join(lines) + f"\n{key}: *a{levels}\n"


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    """Sections or lists nested deeper than MAX_YAML_DEPTH, in flow or block style."""
    depth = draw(st.integers(min_value=MAX_YAML_DEPTH + 1, max_value=20_000))
    kind = draw(st.sampled_from(["flow list", "flow map", "block map"]))
    if kind == "flow list":
        return "name: " + "[" * depth + "1" + "]" * depth + "\n"
    if kind == "flow map":
        return "name: " + "{a: " * depth + "1" + "}" * depth + "\n"
    depth = min(depth, 300)  # block style: two characters of indentation per level
    return "".join(f"{'  ' * level}k{level}:\n" for level in range(depth)) + f"{'  ' * depth}leaf: 1\n"


def many_aliases(count: int) -> str:
    return "a: &a 1\nname: [" + ", ".join(["*a"] * count) + "]\n"


@given(text=st.one_of(alias_bomb(), deep_nesting(),
                      st.integers(MAX_YAML_ALIASES + 1, 3 * MAX_YAML_ALIASES).map(many_aliases)))
def test_yaml_bombs_and_deep_nesting_are_refused_in_one_line(text, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("bomb")
    (cwd / "study.yaml").write_text(text)
    args = ["study", "plan", "study.yaml"]
    line = kit.assert_refused(kit.invoke(args, cwd), args)
    assert line.startswith("taskloss: error: config file study.yaml: ")
    assert any(word in line for word in ("aliases", "nests")), line


@given(base=st.dictionaries(KEYS, st.integers(-5, 5), min_size=1, max_size=5),
       over=st.dictionaries(KEYS, st.integers(-5, 5), max_size=5))
def test_a_merge_key_gives_the_mapping_written_out(base, over, kit):
    kit.count("test_hostile_inputs")

    def flow(mapping: dict[str, int]) -> str:
        return ", ".join(f"{key}: {value}" for key, value in mapping.items())

    text = f"base: &b {{{flow(base)}}}\nmerged: {{<<: *b{', ' if over else ''}{flow(over)}}}\n"
    assert _parse_yaml(text)["merged"] == {**base, **over}


def make_pairs(folder, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in ("input", "target"):
        (folder / name).mkdir(parents=True)
    for k in range(PAIRS):
        for name in ("input", "target"):
            np.save(folder / name / f"s{k}_0.npy", rng.random((SIZE, SIZE), np.float32))


@st.composite
def degenerate_image(draw: st.DrawFn) -> tuple[str, int, str, np.ndarray]:
    """(folder, pair, suffix, image): a constant image, all zero, or constant up to float32 rounding."""
    folder = draw(st.sampled_from(["input", "target"]))
    pair = draw(st.integers(0, PAIRS - 1))
    suffix = draw(st.sampled_from([".npy", ".png"]))
    if suffix == ".png":
        return folder, pair, suffix, np.full((SIZE, SIZE), draw(st.integers(0, 255)), np.uint8)
    value = draw(st.one_of(st.just(0.0), st.floats(-1e6, 1e6, allow_nan=False, width=32)))
    wobble = draw(st.sampled_from([0.0, 1e-8]))  # 1e-8 of the value: at most one float32 step apart
    rng = np.random.default_rng(pair)
    return folder, pair, suffix, (value * (1 + wobble * rng.random((SIZE, SIZE)))).astype(np.float32)


@given(case=degenerate_image())
def test_a_degenerate_image_is_refused_naming_it_before_anything_is_written(case, tmp_path_factory, kit):
    folder, pair, suffix, image = case
    cwd = tmp_path_factory.mktemp("flat")
    make_pairs(cwd / "pairs", seed=pair)
    bad = cwd / "pairs" / folder / f"s{pair}_0{suffix}"
    (cwd / "pairs" / folder / f"s{pair}_0.npy").unlink()
    if suffix == ".png":
        iio.imwrite(bad, image)
    else:
        np.save(bad, image)
    (cwd / "study.yaml").write_text(yaml.safe_dump(STUDY))
    args = ["study", "run", "study.yaml", "--out", "out", "--accelerator", "cpu"]
    line = kit.assert_refused(kit.invoke(args, cwd), args)
    assert f"{bad.resolve()} is " in line and ("constant" in line or "all zero" in line), line
    assert not (cwd / "out").exists()


@given(folder=st.sampled_from(["input", "target"]), pair=st.integers(0, PAIRS - 1),
       suffix=st.sampled_from([".png", ".tif"]))
def test_one_name_in_two_formats_is_refused_naming_both(folder, pair, suffix, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("twice")
    make_pairs(cwd / "pairs")
    ramp = np.arange(SIZE * SIZE, dtype=np.uint8).reshape(SIZE, SIZE)
    iio.imwrite(cwd / "pairs" / folder / f"s{pair}_0{suffix}", ramp)
    (cwd / "study.yaml").write_text(yaml.safe_dump(STUDY))
    args = ["study", "run", "study.yaml", "--out", "out", "--accelerator", "cpu"]
    line = kit.assert_refused(kit.invoke(args, cwd), args)
    assert f"s{pair}_0.npy and s{pair}_0{suffix} are both the image 's{pair}_0'" in line, line
    assert not (cwd / "out").exists()
