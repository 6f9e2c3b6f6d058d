"""The search page in a real browser: type, search, see, play; speak.

Starts ``python -m speechbrain_sense.search serve`` on a free loopback
port over the synthetic archive of :mod:`speechbrain_sense.synthetic.
synthetic_search` (four recordings, a tiny model trained in the fixture
against the real multilingual Universal Sentence Encoder), and drives
Debian's Chromium headless through Selenium. A French question must bring
the English recording that answers it to the top of the page.

The screenshot is kept in the test's temporary folder and in
``$SENSE_TEST_ARTIFACTS`` (default ``test-artifacts/``, not tracked);
``SENSE_UPDATE_FIGURES=1`` also refreshes ``docs/figures/search_page.png``.

The test skips when Chromium or its driver is missing, unless
``SENSE_REQUIRE_BROWSER=1`` (CI), where it fails instead (``make
browser`` installs them).
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FIGURE = ROOT / "docs" / "figures" / "search_page.png"
ARTIFACTS = Path(
    os.environ.get("SENSE_TEST_ARTIFACTS", ROOT / "test-artifacts")
)
QUESTION = "le chat dort sur le canapé"  # the cat is sleeping on the sofa

pytestmark = pytest.mark.integration


def browser_missing():
    """Why the browser test cannot run here, or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        return f"{' and '.join(missing)} missing (make browser installs them)"
    return None


if browser_missing() and os.environ.get("SENSE_REQUIRE_BROWSER") != "1":
    pytest.skip(browser_missing(), allow_module_level=True)


def wait_until_up(url, process, log, timeout=90):
    """Polls ``url`` until the server answers (fails if it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the server did not start:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The ``serve`` command over a three-recording index; its base URL."""
    from speechbrain_sense.search.indexer import index_folder
    from speechbrain_sense.search.query import SearchModel
    from speechbrain_sense.synthetic.search import (
        TARGETS,
        make_search_archive,
        synthesize,
        train_search_model,
    )
    from speechbrain_sense.testing import free_port

    tmp = tmp_path_factory.mktemp("search_page")
    audio = tmp / "recordings"
    spoken = make_search_archive(audio)
    model = train_search_model(audio, spoken, tmp / "model")
    soundfile.write(tmp / "question.wav", synthesize(TARGETS[2]), 16000)
    (tmp / "broken.mp3").write_bytes(b"this is not audio " * 64)
    db = tmp / "index.db"
    index_folder(audio, SearchModel(model), db, progress=False)

    port = free_port()
    log = tmp / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "speechbrain_sense.search", "serve"]
            + [str(db), "--port", str(port)],
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2"),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/status", process, log)
        yield {"url": base, "tmp": tmp}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser(server):
    """Headless Chromium (Debian's, through its own chromedriver)."""
    reason = browser_missing()
    if reason:
        pytest.fail(f"SENSE_REQUIRE_BROWSER=1 but {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={server['tmp'] / 'chromium'}",
        "--window-size=1100,800",
        # The microphone: granted without asking, fed with a spoken wav.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={server['tmp'] / 'question.wav'}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    # An explicit driver: Selenium Manager never tries to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout=30):
    """Waits until ``condition(driver)`` is true; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def results_or_error(driver):
    """The result rows, or the error shown, once the page has either."""
    from selenium.webdriver.common.by import By

    error = driver.find_element(By.ID, "error")
    if error.is_displayed():
        return error.text
    return driver.find_elements(By.CSS_SELECTOR, "#results li") or False


def fresh_page(driver, url):
    """Loads the page and waits for the index status in its header."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(driver, lambda d: "files" in d.find_element(By.ID, "status").text)


def test_typed_query_shows_playable_results(server, browser):
    from selenium.webdriver.common.by import By

    fresh_page(browser, server["url"])
    header = browser.find_element(By.ID, "status").text
    assert "recordings: 4 files" in header and "model model" in header
    browser.find_element(By.ID, "query").send_keys(QUESTION)
    browser.find_element(By.ID, "search").click()
    rows = wait_for(browser, results_or_error)
    assert not isinstance(rows, str), f"the page shows an error: {rows}"
    # The English recording that answers the French question comes first.
    assert rows[0].text.splitlines()[1] == "rec0.wav", rows[0].text
    assert "score" in rows[0].text
    summary = browser.find_element(By.ID, "summary").text
    assert f"passages for “{QUESTION}”" in summary

    # The first player loads its recording and stands at the passage.
    player = rows[0].find_element(By.TAG_NAME, "audio")
    assert "/audio/" in player.get_attribute("src")
    assert "#t=" in player.get_attribute("src")
    state = browser.execute_async_script(
        """
        const [player, done] = arguments;
        player.addEventListener("loadedmetadata", () => done({
          time: player.currentTime, duration: player.duration,
          start: parseFloat(player.src.split("#t=")[1]),
        }));
        player.addEventListener("error", () => done({error: player.error.code}));
        player.load();
        """,
        player,
    )
    assert "error" not in state, state
    assert state["duration"] > 0
    assert abs(state["time"] - state["start"]) < 0.05

    shot = server["tmp"] / "search_page.png"
    assert browser.save_screenshot(str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
    if os.environ.get("SENSE_UPDATE_FIGURES") == "1":
        shutil.copyfile(shot, FIGURE)


def test_spoken_query_from_the_microphone(server, browser):
    from selenium.webdriver.common.by import By

    fresh_page(browser, server["url"])
    record = browser.find_element(By.ID, "record")
    record.click()
    wait_for(browser, lambda d: record.get_attribute("aria-pressed") == "true")
    time.sleep(2.0)  # the fake microphone plays the spoken question
    record.click()
    rows = wait_for(browser, results_or_error)
    assert not isinstance(rows, str), f"the page shows an error: {rows}"
    # Three passages per recording, ten results: rec2 is always listed.
    assert "rec2.wav" in browser.find_element(By.ID, "results").text
    summary = browser.find_element(By.ID, "summary").text
    assert "your recording" in summary


def test_an_undecodable_upload_shows_the_reason(server, browser):
    from selenium.webdriver.common.by import By

    fresh_page(browser, server["url"])
    upload = browser.find_element(By.ID, "upload")
    upload.send_keys(str(server["tmp"] / "broken.mp3"))
    shown = wait_for(browser, results_or_error)
    assert isinstance(shown, str)
    assert shown.startswith("cannot decode the uploaded audio")
