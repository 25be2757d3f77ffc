"""The rating page in a real browser: headless Chromium (Debian's package) driven by Playwright.

A reader opens the personal link, rates every image (keyboard and mouse alternately), adjusts
window/level and zoom, goes back and changes one rating; the stored ratings and the MOS must then
be exactly what was entered. When Chromium is missing the setup installs it with apt-get if it can
(root with apt-get); otherwise the test is skipped with the reason (pytest -ra prints it).
"""

import csv
import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from taskloss.readers import CreatedStudy, Store, admin_link, make_server, reader_link, score_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_TIMEOUT_S = 900
STEP_TIMEOUT_MS = 15_000


def _install_chromium() -> str | None:
    """Install Debian's chromium when possible; returns why the browser is unavailable, or None."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=environment,
                                  timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` took over {INSTALL_TIMEOUT_S} s"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"`{' '.join(command)}` failed: {tail[0]}"
    return None if CHROMIUM.exists() else f"apt-get installed chromium but {CHROMIUM} is missing"


@pytest.fixture(scope="session")
def browser_context_factory() -> Iterator[Callable[[], object]]:
    """Opens Chromium contexts (fresh, empty profile each); skips with the reason when impossible."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not "
                                   "installed (pip install -c constraints.txt -e '.[test]')")
    reason = _install_chromium()
    if reason is not None:
        pytest.skip(f"browser test needs Debian's Chromium: {reason}")
    with sync_api.sync_playwright() as playwright:
        profiles = []

        def open_context() -> object:
            profile = tempfile.mkdtemp(prefix="taskloss-chromium-")
            profiles.append(profile)
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            return context

        yield open_context
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def served_url(make_study: Callable[..., CreatedStudy]) -> Iterator[tuple[CreatedStudy, str]]:
    study = make_study(n_cases=2)  # 2 cases x 4 methods = 8 images per reader
    server, urls = make_server(study.study_dir, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield study, urls[0]
    from waitress import wasyncore

    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(30)
    server.task_dispatcher.shutdown()


def test_reader_rates_every_image_in_chromium(browser_context_factory: Callable[[], object],
                                              served_url: tuple[CreatedStudy, str]) -> None:
    from playwright.sync_api import expect

    study, base_url = served_url
    context = browser_context_factory()
    page = context.pages[0] if context.pages else context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.goto(reader_link(base_url, study.reader_tokens["alice"]))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#reader")).to_have_text("Reader: alice")
    expect(page.locator("#scale button")).to_have_count(5)

    # Window/level by dragging, zoom by the wheel: the view readout follows.
    canvas = page.locator("#image")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 - 100, box["y"] + box["height"] / 2 + 40, steps=5)
    page.mouse.up()
    expect(page.locator("#view-info")).not_to_have_text("W 1.00  L 0.500  zoom 100 %")
    page.mouse.wheel(0, -300)
    expect(page.locator("#zoom-value")).not_to_have_text("100 %")
    page.keyboard.press("r")
    expect(page.locator("#view-info")).to_have_text("W 1.00  L 0.500  zoom 100 %")

    entered: dict[str, int] = {}
    for index in range(8):
        expect(page.locator("#position")).to_have_text(f"Image {index + 1} of 8")
        image_id = canvas.get_attribute("data-image-id")
        score = 1 + (index * 3) % 5
        if index % 2:
            page.locator(f'#scale button[data-score="{score}"]').click()
        else:
            page.keyboard.press(str(score))
        expect(page.locator("#progress-text")).to_have_text(f"{index + 1} of 8 rated")
        entered[image_id] = score
    expect(page.locator("#status")).to_contain_text("All 8 images are rated")

    # Back three images (keys and the button), change that rating by mouse.
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.locator("#prev").click()
    expect(page.locator("#position")).to_have_text("Image 5 of 8")
    changed_id = canvas.get_attribute("data-image-id")
    expect(page.locator(f'#scale button[data-score="{entered[changed_id]}"]')).to_have_attribute(
        "aria-pressed", "true")
    new_score = 5 if entered[changed_id] != 5 else 1
    page.locator(f'#scale button[data-score="{new_score}"]').click()
    expect(page.locator("#position")).to_have_text("Image 6 of 8")
    entered[changed_id] = new_score

    # The admin page shows the progress and exports the ratings as CSV.
    admin = context.new_page()
    admin.goto(admin_link(base_url, study.admin_token))
    expect(admin.locator("#readers tr")).to_have_count(2)
    expect(admin.locator("#readers tr").first.locator("td")).to_have_text(
        ["alice", "8", "8", "100 %", re.compile(r"^\d{4}-\d\d-\d\dT")])
    expect(admin.locator("#readers tr").nth(1).locator("td")).to_have_text(["bob", "0", "8", "0 %", "–"])
    with admin.expect_download() as download_info:
        admin.locator("#export").click()
    exported = Path(download_info.value.path()).read_text()
    context.close()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {row["image_id"]: int(row["score"]) for row in rows} == entered

    assert len(entered) == 8
    assert console_errors == []
    with Store.open(study.study_dir) as store:
        stored = {r.image_id: r.score for r in store.ratings() if r.reader == "alice"}
        method_of = {image.image_id: image.method for image in store.images()}
        report = score_study(store)
    assert stored == entered
    for row in report.methods:
        scores = [score for image_id, score in entered.items() if method_of[image_id] == row.method]
        assert row.mos == pytest.approx(np.mean(scores))
        assert row.n_ratings == 2
