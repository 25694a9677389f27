"""The browser front end end to end: `wmhseg web` in its own process, driven by a real headless Chromium.

Playwright drives Debian's chromium (never a downloaded browser); the server renders offscreen with
EGL/Mesa, as on any machine without a GPU or display. One server serves the whole module, as one
user's session would: refusals first, then load the sample, Segment, see the overlay in the slice
view's pixels, paint a stroke, save, and check the saved files on the input grid; last, the shipped WMH
model on the same sample, scored against its reference. Set WMHSEG_UPDATE_SCREENSHOT=1 to also refresh
the README's screenshot (docs/web_screenshot.png) from that last run.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_bundled_models import WMH_DICE_FLOOR, WMH_MODEL

from conftest import make_bundle
from WMHSegmenterLib.engine.bundle import find_bundle
from WMHSegmenterLib.engine.metrics import evaluate_wmh
from WMHSegmenterLib.engine.samples import sample_inputs, sample_reference
from WMHSegmenterLib.engine.volume import read_volume, write_volume

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "needs Debian's chromium at /usr/bin/chromium: run scripts/install_browser.sh as root",
        allow_module_level=True,
    )

from PIL import Image  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "web_screenshot.png"
#: Runs `wmhseg web` through its own sub-command module, whether or not `wmhseg` lists it yet.
LAUNCH = (
    "import argparse, sys\n"
    "from WMHSegmenterLib.cli import web\n"
    "parser = argparse.ArgumentParser()\n"
    "web.add_parser(parser.add_subparsers())\n"
    "args = parser.parse_args(['web', *sys.argv[1:]])\n"
    "sys.exit(args.func(args))\n"
)
CASE_KEY = "wmh__PanelState__case_key"  # the panel's case selector in the page's trame state


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`wmhseg web` on a free port over a data folder holding a broken file and an escaping symlink."""
    root = tmp_path_factory.mktemp("web")
    models, data = root / "models", root / "data"
    data.mkdir()
    # native grid at 2 mm keeps the sample's prediction to seconds on a CPU
    make_bundle(models / "test-wmh", "wmh", patch=(32, 64, 64), spacing=(2.0, 2.0, 2.0), seed=2)
    (data / "broken_flair.nii.gz").write_bytes(b"\x1f\x8b this is not an image")
    _, sample = sample_inputs("wmh")
    write_volume(read_volume(sample["flair"]), root / "secret_flair.nii.gz")
    os.symlink(root / "secret_flair.nii.gz", data / "leak_flair.nii.gz")
    port = _free_port()
    log = (root / "server.log").open("w")
    env = {**os.environ, "WMHSEG_MODELS": str(models), "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--port", str(port), "--data", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_until_serving(process, port, root / "server.log")
        yield f"http://127.0.0.1:{port}/", data
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 850})
        page.set_default_timeout(30_000)
        page.goto(server[0])
        page.wait_for_selector("#wmh-open")
        yield page
        browser.close()


def test_the_page_refuses_paths_outside_the_data_folder_and_survives_bad_files(page, server):
    choose(page, "wmh-model", "test-wmh")
    page.locator(".v-field:has(#wmh-case)").click()
    page.get_by_role("option").first.wait_for()  # the menu opens with an animation
    offered = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert "broken" in offered and not any("leak" in title or "secret" in title for title in offered)

    for hostile in ("../secret_flair.nii.gz", "leak_flair.nii.gz", "/etc/passwd"):
        page.evaluate(f"window.trame.state.set('{CASE_KEY}', {hostile!r})")  # what a forged page could send
        page.wait_for_timeout(300)
        page.click("#wmh-open")
        expect_message(page, "refused")

    choose(page, "wmh-case", "broken")
    page.click("#wmh-open")
    expect_message(page, "not a readable image")


def test_segment_paint_and_save_in_the_browser(page, server):
    data = server[1]
    open_sample(page, "test-wmh")
    axial = page.locator(".remote-controlled-area").first  # the large view of the default layout
    page.wait_for_timeout(1500)
    assert overlay_fraction(axial) < 0.001

    segment_open_case(page)
    wait_for(lambda: overlay_fraction(axial) > 0.01, "the segmentation overlay in the axial view")

    page.click("#wmh-save")
    expect_message(page, "Saved patient26_seg.seg.nrrd, patient26_seg.nii.gz")
    before = voxels(page)
    page.click("#wmh-editor-tools button:has(i.mdi-brush)")
    paint_stroke(page, axial)
    wait_for(lambda: voxels(page) > before, "the statistics to count the painted voxels")
    painted = settled_voxels(page)
    page.click("#wmh-save")
    expect_message(page, "Saved patient26_seg_1.seg.nrrd, patient26_seg_1.nii.gz")

    flair = read_volume(sample_inputs("wmh")[1]["flair"])
    first, second = (read_volume(data / f"patient26_seg{suffix}.nii.gz") for suffix in ("", "_1"))
    assert second.geometry.matches(flair.geometry) and second.shape == flair.shape
    assert set(np.unique(second.array)) <= {0, 1}
    added = (second.array == 1) & (first.array == 0)
    assert not np.any((first.array == 1) & (second.array == 0)), "painting removed voxels"
    assert int(added.sum()) == painted - before
    centre = np.argwhere(added).mean(axis=0) / np.asarray(flair.shape)
    assert abs(centre[2] - 0.5) < 0.15, "the stroke was drawn across the middle of the axial view"
    segmentation = sitk.ReadImage(str(data / "patient26_seg_1.seg.nrrd"))
    assert segmentation.GetSize() == flair.shape[::-1]
    np.testing.assert_allclose(segmentation.GetOrigin(), flair.geometry.origin, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segmentation), second.array)


def test_the_shipped_wmh_model_finds_the_samples_lesions_in_the_browser(page, server):
    """The real bundle through the web app's own path (brain mask, refinement, labels back to MRML)."""
    open_sample(page, find_bundle(WMH_MODEL).meta["name"])
    segment_open_case(page)
    assert "meaningless" not in page.inner_text("#wmh-message")
    wait_for(
        lambda: overlay_fraction(page.locator(".remote-controlled-area").first) > 0,
        "lesions in the axial view",
    )
    if os.environ.get("WMHSEG_UPDATE_SCREENSHOT") == "1":
        save_screenshot(page.screenshot())

    page.click("#wmh-save")
    expect_message(page, "Saved")
    (saved,) = re.findall(r"[\w.]+\.nii\.gz", page.inner_text("#wmh-message"))
    scores = evaluate_wmh(read_volume(sample_reference("wmh")), read_volume(server[1] / saved))
    assert scores["dice"] >= WMH_DICE_FLOOR, scores


def open_sample(page: Page, model_title: str) -> None:
    choose(page, "wmh-model", model_title)
    choose(page, "wmh-case", "Sample: patient26")
    page.click("#wmh-open")
    expect_message(page, "Opened patient26")


def segment_open_case(page: Page) -> None:
    page.click("#wmh-segment")
    page.wait_for_selector("#wmh-progress", state="visible")
    page.wait_for_selector("#wmh-progress", state="detached", timeout=180_000)
    expect_message(page, "Done in")


def choose(page: Page, select_id: str, title: str) -> None:
    page.locator(f".v-field:has(#{select_id})").click()
    page.get_by_role("option", name=title).first.click()
    page.wait_for_timeout(500)  # the server answers with the dependent lists


def expect_message(page: Page, text: str) -> None:
    wait_for(lambda: text in page.inner_text("#wmh-message"), f"the message {text!r}")


def voxels(page: Page) -> int:
    return int(page.locator("#wmh-statistics tbody td").nth(3).inner_text())


def settled_voxels(page: Page, seconds: float = 30) -> int:
    """The voxel count once a second has passed without it changing (the stroke fully applied)."""
    deadline, previous = time.monotonic() + seconds, -1
    while (current := voxels(page)) != previous and time.monotonic() < deadline:
        previous = current
        page.wait_for_timeout(1000)
    return current


def overlay_fraction(view) -> float:
    """Share of the view's pixels in the WMH colour (yellow), which no grey MRI pixel has."""
    rgb = np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB")).astype(int)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return float(np.mean((red > 120) & (green > 100) & (red - blue > 60)))


def paint_stroke(page: Page, view) -> None:
    """A horizontal drag across the middle of the view, in small steps as a hand would draw it."""
    box = view.bounding_box()
    x, y = box["x"] + 0.35 * box["width"], box["y"] + 0.5 * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for _ in range(15):
        x += 0.02 * box["width"]
        page.mouse.move(x, y)
        page.wait_for_timeout(40)
    page.mouse.up()


def wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def save_screenshot(png: bytes) -> None:
    """The README's picture, quantised to a palette so it stays small."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    image.save(SCREENSHOT, optimize=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen, port: int, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the server did not answer within {seconds} s:\n{log.read_text()[-3000:]}")
