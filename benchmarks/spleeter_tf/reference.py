"""The "Spleeter 2stems, TensorFlow" reference row, for the benchmarks, without TensorFlow in this venv.

Spleeter runs in its own Python 3.11 venv (see ``README.md`` here), one fresh process per input,
through ``tf_separate.py``. Scores use :func:`asteroid_unet.evaluate.bss_eval`, like every other row.

- :func:`row`: one track's scores: stored in ``benchmarks/results-stored/spleeter_tf_2stems.json``,
  or recomputed when the venv is given (``benchmarks/quality.py --spleeter-tf-venv PATH``);
- :func:`evaluate`: recompute them for tracks in ``benchmarks/quality.py``'s format, given the venv;
- :func:`separate`: Spleeter's stems of one mixture, at any sample rate;
- :func:`time_file`: wall time and peak RSS of Spleeter on one WAV file, for ``benchmarks/speed.py``.

Each takes ``mwf``: Spleeter with its own Wiener filter (``Separator(MWF=True)``), stored apart.
"""
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

ROW = "Spleeter 2stems, TensorFlow"
MWF_ROW = "Spleeter 2stems, TensorFlow, MWF"
RATE = 44100
HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "tf_separate.py"
STORED = HERE.parent / "results-stored" / "spleeter_tf_2stems.json"
STORED_MWF = HERE.parent / "results-stored" / "spleeter_tf_2stems_mwf.json"


def venv_python(venv) -> Path:
    """The Python of the TensorFlow venv ``venv``; a clear error when it is not one."""
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"no Python at {python}: give the folder of the TensorFlow venv "
                                f"(see {HERE / 'README.md'})")
    return python


def _run(venv, src: Path, outdir: Path, mwf: bool = False) -> dict:
    proc = subprocess.run([str(venv_python(venv)), str(SCRIPT), *(["--mwf"] if mwf else []), str(src), str(outdir)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()] or ["failed"]
        raise RuntimeError(f"Spleeter TensorFlow failed on {src.name}: {lines[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def separate(mixture: np.ndarray, rate: int, venv, mwf: bool = False) -> Dict[str, np.ndarray]:
    """Spleeter's ``{"vocals", "accompaniment"}`` of ``mixture (samples, 2)`` at ``rate``, float64
    (``mwf``: with Spleeter's Wiener filter).

    Other rates are resampled to 44.1 kHz and back (band-limited FFT resampling, as the IRM rows).
    """
    import torch

    from asteroid_unet.evaluate import _resample

    x = np.asarray(mixture, dtype=np.float64)
    if rate != RATE:
        x = _resample(torch.from_numpy(x.T.copy()), rate, RATE).numpy().T
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mixture.npy"
        np.save(src, np.ascontiguousarray(x, dtype=np.float32))
        _run(venv, src, Path(tmp), mwf)
        with np.load(Path(tmp) / "stems.npz") as stems:
            out = {k: stems[k].astype(np.float64) for k in ("vocals", "accompaniment")}
    if rate != RATE:
        n = len(mixture)
        out = {k: _resample(torch.from_numpy(v.T.copy()), RATE, rate).numpy().T[:n] for k, v in out.items()}
    return out


def score(track: Mapping, venv, stems_path: Optional[Path] = None, mwf: bool = False) -> dict:
    """``{"vocals": {SDR, SIR, SAR}, "accompaniment": {...}, "time_s"}`` of Spleeter on one track given as
    ``{"rate": int, "refs": {"vocals": (n, 2), "accompaniment": (n, 2)}}`` (mixture = their sum), the
    format of ``benchmarks/quality.py``. ``stems_path``: also save the stems there (``.npz``, float32)."""
    import time

    from asteroid_unet import evaluate as ev

    refs, rate = track["refs"], track["rate"]
    start = time.perf_counter()
    stems = separate(refs["vocals"] + refs["accompaniment"], rate, venv, mwf)
    scores = {**ev.bss_eval(refs, stems, rate), "time_s": time.perf_counter() - start}
    if stems_path is not None:
        Path(stems_path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(stems_path, rate=rate, **{k: v.astype(np.float32) for k, v in stems.items()})
    return scores


def evaluate(tracks: Mapping[str, dict], venv, stems_dir: Optional[Path] = None, mwf: bool = False) -> Dict[str, dict]:
    """:func:`score` of every track of ``{name: track}``; ``stems_dir``: save stems as ``<name>.npz`` there."""
    rows = {}
    for name, track in tracks.items():
        rows[name] = score(track, venv, None if stems_dir is None else Path(stems_dir) / f"{name}.npz", mwf)
        print(f"{MWF_ROW if mwf else ROW}, {name}: vocals {rows[name]['vocals']['SDR']:.2f}, "
              f"accompaniment {rows[name]['accompaniment']['SDR']:.2f} dB", flush=True)
    return rows


def stored_rows(path: Path = STORED) -> Dict[str, dict]:
    """The committed scores, ``{track: {"vocals": {SDR, SIR, SAR}, "accompaniment": {...}}}`` over every set."""
    data = json.loads(Path(path).read_text())
    return {name: scores for tracks in data["sets"].values() for name, scores in tracks.items()}


def row(name: str, track: Mapping, venv=None, mwf: bool = False) -> Optional[dict]:
    """The row for one track of ``benchmarks/quality.py``: recomputed when ``venv`` is given, otherwise
    the stored scores of the track called ``name`` (None when there are none)."""
    if venv is not None:
        return score(track, venv, mwf=mwf)
    stored = STORED_MWF if mwf else STORED
    return stored_rows(stored).get(name) if stored.exists() else None


def time_file(wav: Path, venv, mwf: bool = False) -> dict:
    """``{"wall_s", "peak_rss_mb"}`` of Spleeter separating the 44.1 kHz stereo ``wav`` in a fresh process:
    read, separate (graph build and checkpoint restore included), write two WAV files."""
    with tempfile.TemporaryDirectory() as tmp:
        return _run(venv, Path(wav), Path(tmp), mwf)
