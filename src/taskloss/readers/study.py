"""Create a blinded reader study from a study's results folder.

The results folder (written by ``taskloss study``) holds::

    RESULTS_DIR/methods.json                      {"methods": [{"key": ..., "label": ...}, ...]}
    RESULTS_DIR/images/<method_key>/<case_id>.npy 2-D float32 magnitudes in [0, 1]

with ``ground_truth`` among the method folders and the same case ids in every folder. A study copies
the images of N cases (every method and the ground truth) under random anonymous ids, gives every
reader a seeded random order of all of them, and stores one secret token per reader and one for the
admin, hashed. The study is built in a temporary folder beside ``study_dir`` and renamed into place at
the end, so a failure leaves nothing behind.
"""

import json
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskloss.errors import DataError, InputError
from taskloss.readers.scale import LikertScale
from taskloss.readers.store import IMAGES_FOLDER, Method, ReaderPlan, Store, StudyImage, StudyInfo, utc_now
from taskloss.readers.tokens import hash_token, new_token

GROUND_TRUTH = "ground_truth"
GROUND_TRUTH_LABEL = "Ground truth"
METHODS_FILE = "methods.json"
IMAGE_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
"""Anonymous image ids: 16 random hex digits (64 bits), unrelated to case or method."""

DEFAULT_RUBRIC = (
    "Rate the overall image quality for diagnostic use: how clearly anatomy and pathology can be "
    "seen, sharpness, noise, and artefacts (aliasing, blurring, unnatural texture). Judge each image "
    "on its own; there is no reference image. Adjust window/level and zoom as you would when reading."
)


@dataclass(frozen=True)
class ResultsFolder:
    """A results folder checked against the contract above.

    Attributes:
        root: the folder.
        methods: every method in table order; ground truth last unless ``methods.json`` places it.
        case_ids: the case ids common to every method folder, sorted.
    """

    root: Path
    methods: tuple[Method, ...]
    case_ids: tuple[str, ...]

    def image_path(self, method: str, case_id: str) -> Path:
        """Path of one method's image of one case."""
        return self.root / IMAGES_FOLDER / method / f"{case_id}.npy"


@dataclass(frozen=True)
class CreatedStudy:
    """What :func:`create_study` made. The tokens exist nowhere else: show them once.

    Attributes:
        study_dir: the study folder.
        reader_tokens: secret token of each reader, by name, in creation order.
        admin_token: secret token of the admin page.
        case_ids: the cases in the study, sorted.
        methods: the methods in table order.
        n_images: images per reader (cases x methods).
    """

    study_dir: Path
    reader_tokens: dict[str, str]
    admin_token: str
    case_ids: tuple[str, ...]
    methods: tuple[Method, ...]
    n_images: int


def read_results(results_dir: Path) -> ResultsFolder:
    """Read and check a results folder's method list and case ids (images are checked on copy).

    Raises:
        DataError: naming the file or folder that breaks the contract and how to fix it.
    """
    if results_dir.exists() and not results_dir.is_dir():
        raise DataError(f"results folder {results_dir} is a file, not a folder; pass the --out folder of "
                        "`taskloss study csmri`")
    if not results_dir.is_dir():
        raise DataError(f"results folder {results_dir} does not exist; pass the --out folder of "
                        "`taskloss study csmri`")
    methods = _read_methods(results_dir / METHODS_FILE)
    images_dir = results_dir / IMAGES_FOLDER
    folders = {p.name for p in images_dir.iterdir() if p.is_dir()} if images_dir.is_dir() else set()
    if GROUND_TRUTH not in folders:
        raise DataError(f"{images_dir / GROUND_TRUTH} is missing; a reader study needs the ground-truth "
                        "images beside every method's images")
    keys = [m.key for m in methods]
    if GROUND_TRUTH not in keys:
        methods.append(Method(GROUND_TRUTH, GROUND_TRUTH_LABEL))
        keys.append(GROUND_TRUTH)
    for key in keys:
        if key not in folders:
            raise DataError(f"{images_dir / key} is missing; {METHODS_FILE} lists method {key!r}, so "
                            "its images must be there")
    unlisted = sorted(folders - set(keys))
    if unlisted:
        raise DataError(f"{images_dir / unlisted[0]} has no entry in {results_dir / METHODS_FILE}; add "
                        "the method there or remove the folder")
    case_ids = _common_case_ids(images_dir, keys)
    return ResultsFolder(root=results_dir, methods=tuple(methods), case_ids=case_ids)


def _read_methods(path: Path) -> list[Method]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["methods"]
        methods = [Method(key=str(e["key"]), label=str(e["label"])) for e in entries]
    except FileNotFoundError:
        raise DataError(f"{path} is missing; the results folder must list its methods there as "
                        '{"methods": [{"key": ..., "label": ...}]}') from None
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path} is not of the form {{\"methods\": [{{\"key\": ..., \"label\": ...}}]}} "
                        f"({type(error).__name__}: {error}); fix the file") from None
    keys = [m.key for m in methods]
    if not methods or len(set(keys)) != len(keys):
        raise DataError(f"{path} must list at least one method and each key once, got {keys}")
    return methods


def _common_case_ids(images_dir: Path, keys: list[str]) -> tuple[str, ...]:
    truth = {p.stem for p in (images_dir / GROUND_TRUTH).glob("*.npy")}
    if not truth:
        raise DataError(f"{images_dir / GROUND_TRUTH} holds no .npy images; run the study's evaluation "
                        "so that it saves its test images")
    for key in keys:
        found = {p.stem for p in (images_dir / key).glob("*.npy")}
        if found != truth:
            missing = sorted(truth - found) or sorted(found - truth)
            raise DataError(f"{images_dir / key} and {images_dir / GROUND_TRUTH} hold different case ids "
                            f"(e.g. {', '.join(missing[:3])}); every method needs the same cases")
    return tuple(sorted(truth))


def load_image(path: Path) -> np.ndarray:
    """Load one results image and check it: 2-D, real floating point, finite, within [0, 1].

    Returns:
        The image as float32, shape (H, W).

    Raises:
        DataError: naming the file and what is wrong with it.
    """
    try:
        image = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npy image ({error}); save it again with "
                        "numpy.save") from None
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.floating):
        raise DataError(f"{path} holds a {image.dtype} array of shape {image.shape}; expected a 2-D "
                        "float32 magnitude image (H, W)")
    if not np.isfinite(image).all():
        raise DataError(f"{path} holds NaN or infinite values; fix the method that produced it")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise DataError(f"{path} has values in [{low:.4g}, {high:.4g}], outside [0, 1]; scale the "
                        "magnitude by the ground truth's maximum and clip to [0, 1]")
    return image.astype(np.float32)


def select_cases(case_ids: tuple[str, ...], n_cases: int | None, seed: int) -> tuple[str, ...]:
    """A seeded random choice of ``n_cases`` case ids (all when None), returned sorted.

    Raises:
        InputError: when ``n_cases`` is below 1 or above the number of cases.
    """
    if n_cases is None:
        return case_ids
    if not 1 <= n_cases <= len(case_ids):
        raise InputError(f"--cases {n_cases} is not possible: the results hold {len(case_ids)} cases; "
                         f"pass a number from 1 to {len(case_ids)}")
    chosen = np.random.default_rng(seed).choice(len(case_ids), size=n_cases, replace=False)
    return tuple(case_ids[i] for i in sorted(chosen))


def reader_order(n_images: int, seed: int, reader_index: int) -> np.ndarray:
    """The seeded random order in which reader ``reader_index`` (0-based) sees the study's images.

    Args:
        n_images: number of images, listed by case then method (table order).
        seed: the study's seed.
        reader_index: the reader's 0-based index in creation order.

    Returns:
        A permutation of ``range(n_images)``, int64, shape (n_images,).
    """
    return np.random.default_rng([seed, reader_index]).permutation(n_images)


def check_reader_names(names: list[str]) -> list[str]:
    """Strip the names and check that there is at least one, each non-empty and unique.

    Raises:
        InputError: naming the problem.
    """
    stripped = [name.strip() for name in names]
    if not stripped or any(not name or not name.isprintable() for name in stripped):
        raise InputError(f"--readers {','.join(names)!r} must be comma-separated, non-empty, printable "
                         "names, e.g. --readers alice,bob,carol")
    if len(set(stripped)) != len(stripped):
        raise InputError(f"--readers lists a name twice ({','.join(stripped)}); each reader needs a "
                         "unique name")
    return stripped


def create_study(
    study_dir: Path,
    results_dir: Path,
    *,
    reader_names: list[str],
    n_cases: int | None = None,
    scale: LikertScale | None = None,
    rubric: str = DEFAULT_RUBRIC,
    seed: int | None = None,
) -> CreatedStudy:
    """Create a blinded reader study in ``study_dir`` from the results in ``results_dir``.

    Args:
        study_dir: a new (or empty) folder for the study.
        results_dir: the results folder (see the module docstring).
        reader_names: one unique name per reader.
        n_cases: number of test cases, chosen at random (seeded); None takes every case.
        scale: the rating scale; default 1-5.
        rubric: the rating instructions shown beside every image.
        seed: seed of the case choice and of the readers' orders; None draws one at random. Either
            way it is recorded in the study (and never shown to readers, who could otherwise
            recompute which method is at which position).

    Returns:
        The created study with its tokens (shown once, stored only as hashes).

    Raises:
        InputError: bad arguments (an existing non-empty ``study_dir``, bad names, too many cases).
        DataError: a results folder or image that breaks the contract.
    """
    names = check_reader_names(reader_names)
    if study_dir.exists() and (not study_dir.is_dir() or any(study_dir.iterdir())):
        raise InputError(f"{study_dir} already exists and is not an empty folder; choose a new study "
                         "folder (a study is never overwritten: it may hold ratings)")
    if not rubric.strip():
        raise InputError("--rubric is empty; give readers instructions or leave the default")
    results = read_results(results_dir.resolve())
    seed = secrets.randbits(63) if seed is None else seed
    case_ids = select_cases(results.case_ids, n_cases, seed)
    study_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{study_dir.name}.", dir=study_dir.parent))
    try:
        images = _copy_images(results, case_ids, staging / IMAGES_FOLDER)
        tokens = {name: new_token() for name in names}
        admin_token = new_token()
        plans = [ReaderPlan(name, hash_token(tokens[name]),
                            tuple(images[i].image_id for i in reader_order(len(images), seed, index)))
                 for index, name in enumerate(names)]
        info = StudyInfo(results_dir=results.root, scale=scale or LikertScale(1, 5),
                         rubric=rubric.strip(), seed=seed, created_at=utc_now())
        Store.create(staging, info, results.methods, images, plans, hash_token(admin_token)).close()
        staging.rename(study_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return CreatedStudy(study_dir=study_dir, reader_tokens=tokens, admin_token=admin_token,
                        case_ids=case_ids, methods=results.methods, n_images=len(images))


def _copy_images(results: ResultsFolder, case_ids: tuple[str, ...], images_dir: Path) -> list[StudyImage]:
    images_dir.mkdir()
    images = []
    for case_id in case_ids:
        shapes = {}
        for method in results.methods:
            path = results.image_path(method.key, case_id)
            pixels = load_image(path)
            shapes[path] = pixels.shape
            image = StudyImage(image_id=secrets.token_hex(8), case_id=case_id, method=method.key)
            np.save(images_dir / f"{image.image_id}.npy", pixels)
            images.append(image)
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{p.parent.name} {s}" for p, s in shapes.items())
            raise DataError(f"the images of case {case_id} differ in shape ({listing}); every method's "
                            "image of a case must have the ground truth's shape, or readers could tell "
                            "the methods apart")
    return images


def reissue_token(study_dir: Path, reader_name: str | None) -> str:
    """Give a reader (or, for None, the admin) a new secret token; the old one stops working.

    For a lost link: tokens are stored only as hashes, so a lost token cannot be shown again.

    Args:
        study_dir: the study folder.
        reader_name: the reader's name, or None for the admin token.

    Returns:
        The new token (shown once, stored hashed).

    Raises:
        InputError: when the study has no reader of that name.
    """
    token = new_token()
    with Store.open(study_dir) as store:
        store.replace_token_hash(reader_name, hash_token(token))
    return token
