"""Test helpers importable from any test module (pytest puts tests/ on sys.path)."""
import shutil

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_hf_cache(cache_dir, repo_id, model_file, revision="main"):
    """Lay out a file the way ``hf_hub_download`` caches it (refs, snapshots); returns the commit."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / revision).write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    shutil.copy(model_file, snapshot / "pytorch_model.bin")
    return COMMIT


def load_from_offline_hub(cache_dir, repo_id, model_file, attribute):
    """In a fresh process with only ``ASTEROID_CACHE`` and ``HF_HUB_OFFLINE=1`` set, load ``repo_id``
    from a cache populated with ``model_file`` through ``BaseModel.from_pretrained``.

    Returns what it prints: the class name and ``str(model.<attribute>)``.
    """
    import os
    import subprocess
    import sys

    populate_hf_cache(cache_dir, repo_id, model_file)
    env = dict(os.environ, ASTEROID_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    code = ("import asteroid_unet; from asteroid.models import BaseModel; "
            f"m = BaseModel.from_pretrained({repo_id!r}); print(type(m).__name__, m.{attribute})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def voice_and_backing(seconds=8.0, seed=0):
    """A known voice-like source and a known backing, mono float64 at 44.1 kHz, each peaking at 0.1.

    The voice is ``asteroid_unet.synth``'s formant singing of a fixed 12-note melody; the
    backing is four decaying triads with a bass line and noise beats every 0.5 s.
    """
    import numpy as np

    from asteroid_unet.synth import RATE, Note, sing

    rng = np.random.default_rng(seed)
    pitches = [67, 69, 71, 72, 71, 69, 67, 64, 65, 67, 69, 67]
    step = seconds / len(pitches)
    line = [Note(i * step + 0.05, (i + 1) * step - 0.08, p, 100) for i, p in enumerate(pitches)]
    voice = sing(line, seconds, rng).astype(np.float64)
    n = voice.size
    t = np.arange(n) / RATE
    backing = np.zeros(n)
    for i, chord in enumerate([(48, 52, 55), (53, 57, 60), (55, 59, 62), (48, 52, 55)]):
        a, b = i * n // 4, (i + 1) * n // 4
        seg = t[a:b] - t[a]
        for pitch in chord:
            f = 440 * 2 ** ((pitch - 69) / 12)
            backing[a:b] += sum(np.sin(2 * np.pi * k * f * seg) / k**1.5 for k in range(1, 6)) * np.exp(-seg / 1.5)
        backing[a:b] += 0.8 * np.sin(2 * np.pi * 440 * 2 ** ((chord[0] - 81) / 12) * seg)
    beats = (np.mod(t, 0.5) < 0.06) * rng.standard_normal(n) * np.exp(-np.mod(t, 0.5) / 0.02)
    backing = 0.1 * backing / np.abs(backing).max() + 0.15 * beats
    return 0.1 * voice / np.abs(voice).max(), backing
