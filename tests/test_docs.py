"""Every snippet and command of the README and the model card, as written, from the repository root
after the README's two set-up commands: each Python snippet runs in a fresh interpreter, and each
shell command line either runs (before the snippets, in order: they make what the snippets use,
such as ``hub/``) or is named in :data:`NOT_RUN_HERE` with the place that runs it instead.

The commands and snippets run in a folder that holds only the user's songs (``song.wav``, a
stereo 44.1 kHz song, and the files the commands name) and ``.venv``, the test's own venv. The
recipe README's snippets and the generated Hub card's run there too; the card's repo id comes
from an offline Hugging Face cache."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import populate_hf_cache

ROOT = Path(__file__).resolve().parents[1]
PAPER_WEIGHTS = ROOT / "asteroid_unet" / "weights" / "unet_default.pth"
DEFAULT_WEIGHTS = ROOT / "asteroid_unet" / "weights" / "spleeter_2stems.pth"
DOCS = ["README.md", "model_card.md", "recipes/MUSDB18/separation/README.md"]
COMMAND_DOCS = ["README.md", "model_card.md"]
REPO_ID = "your-name/unet-paper"  # the README's hub export names it in the card
# Shell lines that this test does not run, and where they run instead.
NOT_RUN_HERE = [
    (r"^make (demo|test)\b", "the set-up itself: CI runs make test, and make demo shares its steps"),
    (r"^pip install ", ".ci/first_contact.sh installs these in a fresh venv without constraints"),
    (r"--device cuda", "needs a GPU"),
    (r"--jobs \d", "tests/test_parallel_separation.py (--jobs 2)"),
    (r"asteroid_unet\.ray_separate", "tests/test_parallel_separation.py (Ray)"),
    (r"asteroid-unet app\b", "starts a server: tests/test_app.py and tests/test_app_security.py"),
    (r"convert-spleeter path/to/", "a placeholder folder: tests/test_spleeter.py converts checkpoints"),
    (r"-m benchmarks\.", "benchmarks, minutes to hours each"),
    (r"^(cd egs/musdb18|\./run\.sh|python local/train_minimal\.py|(\.\./\.\./\.venv/bin/)?python local/pack_weights\.py)",
     "training on MUSDB18: tests/test_recipe_asteroid.py and .ci/first_contact.sh run the recipe on tiny data"),
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PAPER_WEIGHTS.is_file() and DEFAULT_WEIGHTS.is_file()),
                       reason="the packaged weights are missing (make weights)"),
]


def shell_lines(text):
    """The command lines of the ``bash`` blocks (continuations joined, comments dropped)."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                lines.append(line)
    return lines


def not_run_here(line):
    return next((reason for pattern, reason in NOT_RUN_HERE if re.search(pattern, line)), None)


def commands():
    """The command lines to run, each once (the README and the model card both show the export)."""
    lines = (line for doc in COMMAND_DOCS for line in shell_lines((ROOT / doc).read_text()) if not not_run_here(line))
    return list(dict.fromkeys(lines))


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def snippets():
    return [pytest.param(doc, i, id=f"{doc}#{i}")
            for doc in DOCS for i, _ in enumerate(python_blocks((ROOT / doc).read_text()))]


def write_song(path, seconds, rate=44100, channels=2, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * k * 220 * t) / k for k in range(1, 8)) * (np.sin(2 * np.pi * t) > 0)
    noise = np.random.default_rng(seed).standard_normal((t.size, channels))
    sf.write(path, (0.1 * voice[:, None] + 0.03 * noise).astype(np.float32), rate)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The user's folder: songs, ``.venv``, then whatever the documented commands make (``hub/``)."""
    work = tmp_path_factory.mktemp("docs")
    write_song(work / "song.wav", 2)
    write_song(work / "song.mp3", 2, seed=1)
    write_song(work / "other.flac", 2, rate=48000, channels=1, seed=2)
    (work / "my_album").mkdir()
    write_song(work / "my_album" / "track 1.wav", 2, seed=3)
    (work / ".venv").symlink_to(Path(sys.executable).parents[1])
    populate_hf_cache(work / "asteroid_cache", REPO_ID, PAPER_WEIGHTS)
    for line in commands():
        out = subprocess.run(line, shell=True, cwd=work, env=user_env(work), capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"documented command failed: {line}\n{out.stderr[-3000:]}"
    return work


def user_env(workdir):
    """The user's shell: the venv active (its ``bin`` first on PATH), offline, the Hub cache populated."""
    return dict(os.environ, ASTEROID_CACHE=str(workdir / "asteroid_cache"), HF_HUB_OFFLINE="1",
                HF_HOME=str(workdir / "hf_home"),
                PATH=os.pathsep.join([str(workdir / ".venv" / "bin"), os.environ.get("PATH", "")]))


def run_snippet(code, workdir):
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=user_env(workdir),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"snippet failed:\n{code}\n{out.stderr[-3000:]}"


def test_docs_have_snippets():
    assert len(snippets()) >= 4


def test_every_command_runs_here_or_names_where_it_runs():
    """A new command in the README or the model card runs in :func:`workdir`, or is named in
    NOT_RUN_HERE; the ones that make the snippets' files are among those run."""
    run = commands()
    assert any(re.match(r"(\.venv/bin/)?python -m asteroid_unet\.hub export --model paper --out hub", line) for line in run)
    assert any("asteroid-infer hub/pytorch_model.bin" in line for line in run)
    for line in run:  # as a pip user types them, in the venv that holds the package
        program = shlex.split(line)[0]
        assert program in ("asteroid-unet", "asteroid-infer", "python") or program.startswith(".venv/bin/"), line


def test_documented_commands_wrote_what_they_say(workdir):
    for song in ("song", "other"):
        info = sf.info(next((workdir / "separated" / song).glob("vocals.*")))
        source = sf.info(next(workdir.glob(f"{song}.*")))
        assert (info.samplerate, info.channels) == (source.samplerate, source.channels)
    assert (workdir / "separated" / "track 1" / "accompaniment.wav").is_file()
    assert [p.name for p in (workdir / "karaoke" / "song").iterdir()] == ["accompaniment.m4a"]
    assert sf.info(workdir / "excerpt" / "song" / "vocals.wav").frames == 44100 // 2
    assert (workdir / "by_stem" / "spleeter-2stems" / "vocals" / "other.flac").is_file()
    assert {"pytorch_model.bin", "hyperparams.yaml", "README.md"} <= {p.name for p in (workdir / "hub").iterdir()}
    for i in (1, 2):  # asteroid-infer --resample: the first channel, at the song's rate
        info = sf.info(workdir / f"song_est{i}.wav")
        assert (info.samplerate, info.channels, info.frames) == (44100, 1, 2 * 44100)


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
        assert (info.samplerate, info.channels, info.frames) == (44100, 2, 2 * 44100)
    stems = [sf.read(workdir / f"song_est{i}.wav", dtype="float32")[0] for i in (1, 2)]
    song = sf.read(workdir / "song.wav", dtype="float32")[0]
    np.testing.assert_allclose(stems[0] + stems[1], song, atol=1e-5)
