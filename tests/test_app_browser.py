"""The web page in a real browser: Debian's headless Chromium, driven by Selenium through chromedriver.

The app runs as ``asteroid-unet app`` on 127.0.0.1; the page must work offline (every request goes
to that address), separate a real song as ``separate_file`` does, byte for byte, show a bad file's
one-line message, and delete a session's files when its tab goes away.

Chromium's fake microphone (a beep) records a song as well.
``ASTEROID_UNET_SCREENSHOT=docs/app.png`` also saves the page's picture there (as in the README).
"""
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import soundfile as sf
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from asteroid_unet.audio import AudioError, AudioReader
from asteroid_unet.demo import PREVIEW
from asteroid_unet.separate import separate_file
from helpers import live_files

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1400,1000",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")  # a beeping microphone


def fetch(url: str) -> bytes:
    """GET from the app, never through a proxy the environment may name."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=30).read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``asteroid-unet app`` on a free port, with its Gradio cache in a temporary folder."""
    tmp = tmp_path_factory.mktemp("app")
    port = free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp / "gradio"), GRADIO_HEARTBEAT_INTERVAL="1", HF_HUB_OFFLINE="1")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "asteroid_unet", "app", "--port", str(port), "--max-seconds", "60",
                             "--idle-seconds", "5"],  # Gradio's copy of an upload the page took goes this long after
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    while True:
        try:
            fetch(url)
            break
        except OSError:
            assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the app did not answer in 240 s"
            time.sleep(1)
    yield {"url": url, "cache": tmp / "gradio"}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and chromedriver, "needs Debian's chromium and chromium-driver (make system-deps installs them)"
    tmp = tmp_path_factory.mktemp("browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp / "downloads"),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp / "downloads")})
    driver.get("about:blank")
    driver.get_log("performance")  # start the network record with the page
    driver.downloads = tmp / "downloads"
    yield driver
    driver.quit()


def wait_for(driver, condition, seconds=60, message=""):
    return WebDriverWait(driver, seconds, poll_frequency=0.25).until(lambda d: condition(d), message)


def upload_and_separate(driver, url, path, seconds=300) -> str:
    """Open the page, upload ``path``, press Separate; returns the status line once the job ended."""
    driver.get(url)
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text.startswith(f"{path.name}: ready"), message="upload")
    return separate(driver, seconds)


def separate(driver, seconds=300) -> str:
    """Press Separate; returns the status line once the job ended."""
    driver.find_element(By.ID, "separate").click()
    return wait_for(driver, lambda d: (lambda t: t if t.startswith(("Separated", "Error")) else None)(
        d.find_element(By.ID, "status").text.strip()), seconds, "separation")


def off_page_requests(driver, url):
    """Requests the page made to anything but the app, requests that failed (not cancelled), console errors."""
    bad, seen = [], 0
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            target = params["request"]["url"]
            seen += target.startswith(url)
            if not target.startswith((url, "blob:" + url.rstrip("/"), "data:")):
                bad.append(f"request to {target[:120]}")
        elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
            bad.append(f"failed: {params.get('errorText')} ({params.get('type')})")
    bad += [f"console: {e['message'][:200]}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert seen > 10, "the network record holds no page requests"
    return bad


def full_page_png(driver) -> bytes:
    """A screenshot of the whole page, below the fold included."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
    return base64.b64decode(shot["data"])


def waveform_pixels(driver, elem_id) -> int:
    """Drawn pixels in the waveform canvas of the audio player ``elem_id`` (WaveSurfer, in a shadow root)."""
    return driver.execute_script("""
        const host = document.querySelector(`#${arguments[0]} #waveform > div`);
        const canvas = host && host.shadowRoot && host.shadowRoot.querySelector('canvas');
        if (!canvas || !canvas.width) return 0;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let drawn = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
        return drawn;""", elem_id)


def test_separate_a_real_song_in_the_browser(server, browser, tmp_path):
    url = server["url"]
    with AudioReader(PREVIEW) as reader:
        frames, rate, channels = reader.frames, reader.sample_rate, reader.channels
    status = upload_and_separate(browser, url, PREVIEW)
    assert status == f"Separated {PREVIEW.name} ({frames / rate:.1f} s)."

    reference = separate_file(PREVIEW, tmp_path / "reference")  # the command line's stems, default model
    for name in ("vocals", "accompaniment"):
        link = browser.find_element(By.CSS_SELECTOR, f"#{name} a[data-testid=download-link]").get_attribute("href")
        assert link.startswith(url)
        data, served_rate = sf.read(io.BytesIO(fetch(link)), always_2d=True)
        assert data.shape == (frames, channels) and served_rate == rate  # the player's source: the input's length
        shown = browser.find_element(By.CSS_SELECTOR, f"#{name} time#duration").text
        assert shown == f"0:{round(frames / rate):02d}"
        wait_for(browser, lambda d: waveform_pixels(d, name) > 1000, 30, f"{name} waveform")
    for name in ("mix", "vocals", "accompaniment"):
        image = browser.find_element(By.CSS_SELECTOR, f"#spec-{name} img")
        wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image),
                 30, f"{name} spectrogram")
        assert image.get_attribute("src").endswith(f"/{name}.png")

    browser.find_element(By.CSS_SELECTOR, "#downloads a[download='vocals.wav']").click()
    downloaded = browser.downloads / "vocals.wav"
    wait_for(browser, lambda d: downloaded.is_file() and not list(browser.downloads.glob("*.crdownload")), 60, "download")
    assert downloaded.read_bytes() == reference["vocals"].read_bytes()

    picture = tmp_path / "app.png"
    picture.write_bytes(full_page_png(browser))
    assert Image.open(picture).size[0] >= 1000
    if os.environ.get("ASTEROID_UNET_SCREENSHOT"):  # the README's picture: 256 colours keep it small
        Image.open(picture).convert("RGB").quantize(256).save(os.environ["ASTEROID_UNET_SCREENSHOT"], optimize=True)
    assert off_page_requests(browser, url) == []

    # Closing the tab ends the session: its folder goes, and Gradio's copy of its upload after --idle-seconds.
    sessions = server["cache"] / "asteroid-unet"
    assert len(list(sessions.iterdir())) == 1
    assert live_files(server["cache"], PREVIEW.name)
    browser.get("about:blank")
    wait_for(browser, lambda d: not list(sessions.iterdir()) and not live_files(server["cache"], PREVIEW.name),
             60, "session cleanup")


def test_a_bad_file_gives_one_line_in_the_page(server, browser, tmp_path):
    bad = tmp_path / "not a song.wav"
    bad.write_text("these are words, not samples\n" * 50)
    with pytest.raises(AudioError) as err:
        separate_file(bad, tmp_path / "out")
    status = upload_and_separate(browser, server["url"], bad)
    assert status == f"Error: {bad.name}: {err.value}"
    assert "Traceback" not in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "#vocals a[data-testid=download-link]")
    assert off_page_requests(browser, server["url"]) == []


def test_an_upload_left_unseparated_goes_with_its_tab(server, browser, tmp_path):
    song = tmp_path / "dropped.wav"
    sf.write(str(song), [[0.0, 0.0]] * 4410, 44100)
    browser.get(server["url"])
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(song))
    wait_for(browser, lambda d: d.find_element(By.ID, "status").text == f"{song.name}: ready, press Separate.")
    assert live_files(server["cache"], song.name)
    browser.get("about:blank")
    wait_for(browser, lambda d: not live_files(server["cache"], song.name), 60, "upload deleted")


def test_record_a_song_with_the_microphone(server, browser):
    browser.get(server["url"])
    record = "//*[@id='record']//button[contains(., '{}')]"
    wait_for(browser, lambda d: d.find_elements(By.XPATH, record.format("Record")))
    browser.find_element(By.XPATH, record.format("Record")).click()
    wait_for(browser, lambda d: d.find_elements(By.XPATH, record.format("Stop")))
    time.sleep(2)
    browser.find_element(By.XPATH, record.format("Stop")).click()
    wait_for(browser, lambda d: d.find_element(By.ID, "status").text.endswith(": ready, press Separate."))
    status = separate(browser, 120)
    seconds = float(status.rsplit("(", 1)[1].split(" s)")[0])
    assert status.startswith("Separated") and seconds >= 1.5
    link = browser.find_element(By.CSS_SELECTOR, "#vocals a[data-testid=download-link]").get_attribute("href")
    info = sf.info(io.BytesIO(fetch(link)))
    assert abs(info.duration - seconds) < 0.05
    assert off_page_requests(browser, server["url"]) == []
