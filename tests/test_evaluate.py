import json
import math

import numpy as np
import pytest

from asteroid_unet import evaluate

RATE = 16000


@pytest.fixture(scope="module")
def sources():
    """A vibrato tone over noise bursts: 4 s stereo, all energy below 4 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(4 * RATE) / RATE
    f0 = 220 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(h * phase) / h for h in range(1, 10)) * 0.2
    noise = np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same")
    bursts = noise * (np.sin(2 * np.pi * 2 * t) > 0) * 0.3
    return {"vocals": np.stack([voice, 0.8 * voice], 1), "accompaniment": np.stack([bursts, np.roll(bursts, 50)], 1)}


def test_perfect_estimate_beats_mix(sources):
    perfect = evaluate.bss_eval(sources, sources, RATE)
    mix = evaluate.bss_eval(sources, evaluate.mix_estimates(sum(sources.values())), RATE)
    assert set(perfect) == {"vocals", "accompaniment"} and set(perfect["vocals"]) == {"SDR", "SIR", "SAR"}
    assert perfect["vocals"]["SDR"] > 40
    assert perfect["vocals"]["SDR"] > mix["vocals"]["SDR"] + 30


def test_reference_rows_irm_between_mix_and_perfect(sources):
    rows = evaluate.reference_rows(sources, RATE)
    assert set(rows) == {"MIX", "IRM"}
    for target in ("vocals", "accompaniment"):
        assert rows["IRM"][target]["SDR"] > rows["MIX"][target]["SDR"] + 3
        assert rows["IRM"][target]["SDR"] < 40  # band-limited oracle at a coarse STFT, not perfect
    assert rows["IRM"]["time_s"] > 0


def test_irm_estimates_sum_to_band_limited_mix(sources):
    est = evaluate.irm_estimates(sources, RATE)
    assert est["vocals"].shape == sources["vocals"].shape
    total = est["vocals"] + est["accompaniment"]
    mix = sum(sources.values())
    core = slice(RATE // 2, -RATE // 2)
    err = np.mean((total[core] - mix[core]) ** 2) / np.mean(mix[core] ** 2)
    assert err < 1e-2  # masks sum to one; only the resampling band limit is lost


def test_bad_inputs(sources):
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.bss_eval({"vocals": sources["vocals"]}, {"vocals": sources["vocals"]}, RATE)
    with pytest.raises(ValueError, match="miss"):
        evaluate.bss_eval(sources, {"vocals": sources["vocals"]}, RATE)
    with pytest.raises(ValueError, match="shape"):
        evaluate.bss_eval(sources, {k: v[:-5] for k, v in sources.items()}, RATE)


def test_summary_and_writers(tmp_path):
    per_track = {
        "a": {"MIX": {"vocals": {"SDR": -3.0, "SIR": 0.0, "SAR": 10.0}, "accompaniment": {"SDR": 3.0, "SIR": 1.0, "SAR": 9.0}, "time_s": 1.0},
              "IRM": {"vocals": {"SDR": 8.0, "SIR": 15.0, "SAR": 9.0}, "accompaniment": {"SDR": 12.0, "SIR": 20.0, "SAR": 13.0}, "time_s": 2.0}},
        "b": {"MIX": {"vocals": {"SDR": -5.0, "SIR": float("nan"), "SAR": 12.0}, "accompaniment": {"SDR": 5.0, "SIR": 2.0, "SAR": 8.0}, "time_s": 1.5},
              "IRM": {"vocals": {"SDR": 10.0, "SIR": 17.0, "SAR": 11.0}, "accompaniment": {"SDR": 14.0, "SIR": 22.0, "SAR": 15.0}, "time_s": 2.5}},
    }
    summary = evaluate.summarize(per_track)
    assert summary["MIX"]["vocals"]["SDR"] == -4.0
    assert summary["MIX"]["vocals"]["SIR"] == 0.0  # NaN windows/tracks are ignored
    assert summary["IRM"]["time_s"] == 4.5 and summary["IRM"]["n_tracks"] == 2
    table = evaluate.markdown_table(summary)
    lines = table.splitlines()
    assert lines[0].startswith("| method | vocals SDR") and lines[2].startswith("| MIX | -4.00")
    assert lines[3].startswith("| IRM | 9.00")
    path = evaluate.write_json(per_track, tmp_path / "x" / "tracks.json")
    loaded = json.loads(path.read_text())
    assert loaded["b"]["MIX"]["vocals"]["SIR"] is None
    assert math.isclose(evaluate.summarize(loaded)["MIX"]["vocals"]["SIR"], 0.0)
    md = evaluate.write_markdown(summary, tmp_path / "summary.md", title="Test")
    assert md.read_text().startswith("# Test\n\n| method")


def test_scoring_without_ffmpeg_names_the_fix_in_one_line():
    """museval imports musdb, whose stempeg refuses to import without ffmpeg on the PATH."""
    import subprocess
    import sys

    code = ("import sys\nfrom asteroid_unet.evaluate import museval_module\n"
            "try:\n    museval_module()\nexcept RuntimeError as err:\n    sys.exit(str(err))")
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/nonexistent"}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip() == ("scoring needs ffmpeg and ffprobe on the PATH (museval imports musdb and "
                                  "stempeg): install ffmpeg, e.g. sudo apt-get install ffmpeg")
