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
    for stem in ("vocals", "accompaniment"):
        info = sf.info(song / f"{stem}.wav")
        assert info.samplerate == 44100 and info.channels == 2 and info.duration > 5
        line = next(l for l in out.stdout.splitlines() if l.strip().startswith(stem))
        sdr, mix = map(float, re.findall(r"-?\d+\.\d+", line.split(".wav")[-1]))
        assert -20 < sdr < 30 and -20 < mix < 30
    vocals_mix = float(re.findall(r"MIX\s+(-?\d+\.\d+)", out.stdout)[0])
    assert vocals_mix == pytest.approx(-6.23, abs=0.05)  # museval's floor for this track (STACK.md)
