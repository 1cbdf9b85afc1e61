import re
import subprocess
import sys

import pytest
import soundfile as sf


@pytest.mark.slow
def test_make_demo_separates_the_preview_and_scores_it(tmp_path):
    """What `make demo` runs: stems of the real Falcon 69 preview, with SDR against its true stems."""
    out = subprocess.run([sys.executable, "-m", "asteroid_unet.demo", "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    song = tmp_path / "The Easton Ellises - Falcon 69"
    scores = {}
    for stem in ("vocals", "accompaniment"):
        info = sf.info(song / f"{stem}.wav")
        assert info.samplerate == 44100 and info.channels == 2 and info.duration > 5
        line = next(l for l in out.stdout.splitlines() if l.strip().startswith(stem))
        scores[stem] = tuple(map(float, re.findall(r"-?\d+\.\d+", line.split(".wav")[-1])))
    # museval's floor for this track, the mixture as the estimate: -6.23 / 6.23 dB.
    assert scores["vocals"][1] == pytest.approx(-6.23, abs=0.05)
    assert scores["accompaniment"][1] == pytest.approx(6.23, abs=0.05)
    # Between that floor (with a margin for the vocals) and the oracle full-band ratio mask
    # (7.98 / 14.96 dB, benchmarks/quality.py) plus 1 dB: a broken model falls outside.
    assert -6.23 + 3.0 < scores["vocals"][0] < 9.0
    assert 6.23 < scores["accompaniment"][0] < 16.0
