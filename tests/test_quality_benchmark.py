"""benchmarks/quality.py: scoring tracks in worker processes gives the serial numbers."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "musdb-preview").is_dir(), reason="needs the MUSDB18 previews in ../shared/data")
def test_quality_in_worker_processes_gives_the_serial_numbers(tmp_path):
    results = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--untrained", "--no-references",
               "--tracks", "80s Rock", "Falcon 69", "--jobs", str(jobs), "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        tracks = json.loads(out.with_suffix(".json").read_text())["tracks"]
        for rows in tracks.values():
            for scores in rows.values():
                scores.pop("time_s"), scores.pop("separate_s", None)
        results[jobs] = tracks
    assert list(results[1]) == ["80s Rock", "Falcon 69"] and results[1] == results[2]
