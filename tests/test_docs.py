"""Every Python snippet of the README, the model card, the recipe README and the generated Hub
card runs, as written, in a fresh interpreter, in a folder holding what the snippets name:
``song.wav`` (a stereo 44.1 kHz song), ``hub/`` (the packaged weights exported as a Hub folder)
and, for the Hub card's repo id, an offline Hugging Face cache."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asteroid_unet import hub
from helpers import populate_hf_cache

ROOT = Path(__file__).resolve().parents[1]
PAPER_WEIGHTS = ROOT / "asteroid_unet" / "weights" / "unet_default.pth"
DOCS = ["README.md", "model_card.md", "recipes/MUSDB18/separation/README.md"]
REPO_ID = "someone/unet-musdb18"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PAPER_WEIGHTS.is_file(), reason="the packaged weights are missing"),
]


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def snippets():
    return [pytest.param(doc, i, id=f"{doc}#{i}")
            for doc in DOCS for i, _ in enumerate(python_blocks((ROOT / doc).read_text()))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """``song.wav`` and ``hub/`` as the snippets expect them, plus an offline Asteroid cache of REPO_ID."""
    work = tmp_path_factory.mktemp("docs")
    t = np.arange(4 * 44100) / 44100
    voice = sum(np.sin(2 * np.pi * k * 220 * t) / k for k in range(1, 8)) * (np.sin(2 * np.pi * t) > 0)
    noise = np.random.default_rng(0).standard_normal((t.size, 2))
    sf.write(work / "song.wav", (0.1 * voice[:, None] + 0.03 * noise).astype(np.float32), 44100)
    hub.export(PAPER_WEIGHTS, work / "hub", REPO_ID)
    populate_hf_cache(work / "asteroid_cache", REPO_ID, PAPER_WEIGHTS)
    return work


def run_snippet(code, workdir):
    env = dict(os.environ, ASTEROID_CACHE=str(workdir / "asteroid_cache"), HF_HUB_OFFLINE="1",
               HF_HOME=str(workdir / "hf_home"), OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"snippet failed:\n{code}\n{out.stderr[-3000:]}"


def test_docs_have_snippets():
    assert len(snippets()) >= 4


@pytest.mark.parametrize("doc, index", snippets())
def test_snippet_runs(doc, index, workdir):
    run_snippet(python_blocks((ROOT / doc).read_text())[index], workdir)


def test_hub_card_snippet_runs_and_writes_full_band_stems(workdir):
    card = (workdir / "hub" / "README.md").read_text()
    (code,) = python_blocks(card)
    assert REPO_ID in code
    for old in workdir.glob("song_est*.wav"):  # written by other snippets
        old.unlink()
    run_snippet(code, workdir)
    for i in (1, 2):
        info = sf.info(workdir / f"song_est{i}.wav")
        assert (info.samplerate, info.channels, info.frames) == (44100, 2, 4 * 44100)
    stems = [sf.read(workdir / f"song_est{i}.wav", dtype="float32")[0] for i in (1, 2)]
    song = sf.read(workdir / "song.wav", dtype="float32")[0]
    np.testing.assert_allclose(stems[0] + stems[1], song, atol=1e-5)
