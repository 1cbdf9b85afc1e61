"""BSSEval v4 (museval) scores for vocals / accompaniment, with the MIX floor and the IRM ceiling.

Shared by the Asteroid recipe, the SpeechBrain recipe, the demo and the quality benchmark.
Scores are the median over 1 s windows per track; a summary is the median over tracks.

Two reference rows, computed on the same tracks as any model:

- ``MIX``: the mixture as the estimate of every target (the floor);
- ``IRM``: the oracle ratio mask at the model's STFT (8192 Hz, window 1024, hop 768 by
  default), computed at the model rate and resampled to the track rate: the best a
  band-limited magnitude mask with the mix phase can do (the ceiling).
"""
import json
import math
import time
from pathlib import Path
from typing import Dict, Mapping, Sequence

import numpy as np
import torch

from .fullband import fft_resample
from .separator import separator_for

TARGETS = ("vocals", "accompaniment")
MUSDB_STEMS = ("drums", "bass", "other", "vocals")
METRICS = ("SDR", "SIR", "SAR")
REFERENCE_ROWS = ("MIX", "IRM")
Scores = Dict[str, Dict[str, float]]  # target -> metric -> dB


def is_stem_root(root: Path) -> bool:
    """True for a MUSDB18 root in the stems release (``<subset>/*.stem.mp4``), False for the wav layout."""
    return any(Path(root).glob("*/*.stem.mp4"))


def museval_module():
    """museval, imported; a one-line RuntimeError naming the fix when it cannot be: museval imports
    musdb, whose stempeg refuses to import without ``ffmpeg`` and ``ffprobe`` on the PATH, whatever
    the audio's format. Recipes call it before training, so that a missing piece stops them at once."""
    try:
        import museval
    except ModuleNotFoundError as err:
        raise RuntimeError(f"scoring needs museval ({err}): pip install '.[eval]' in the asteroid-unet folder"
                           ) from None
    except RuntimeError as err:  # stempeg's own check
        if "ffmpeg" not in str(err):
            raise
        raise RuntimeError("scoring needs ffmpeg and ffprobe on the PATH (museval imports musdb and stempeg): "
                           "install ffmpeg, e.g. sudo apt-get install ffmpeg") from None
    return museval


def bss_eval(references: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray], rate: int,
             window_s: float = 1.0) -> Scores:
    """Median over windows of museval's SDR/SIR/SAR for each target.

    Args:
        references, estimates: ``{target: (samples, channels)}`` at ``rate``, same keys
            (at least two targets: SIR needs interferers). Mono ``(samples,)`` is accepted.
        rate: sample rate in Hz.
        window_s: window and hop in seconds. Default 1.
    """
    museval = museval_module()
    names = list(references)
    if len(names) < 2:
        raise ValueError(f"museval needs at least 2 targets, got {names}")
    missing = [n for n in names if n not in estimates]
    if missing:
        raise ValueError(f"estimates miss targets {missing}")
    refs = np.stack([_as_2d(references[n]) for n in names])
    ests = np.stack([_as_2d(estimates[n]) for n in names])
    if refs.shape != ests.shape:
        raise ValueError(f"references {refs.shape} and estimates {ests.shape} differ in shape")
    win = int(round(window_s * rate))
    sdr, _, sir, sar = museval.evaluate(refs, ests, win=win, hop=win)
    return {
        name: {metric: _median(values[i]) for metric, values in zip(METRICS, (sdr, sir, sar))}
        for i, name in enumerate(names)
    }


def _as_2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected (samples, channels), got shape {x.shape}")
    return x


def _median(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]  # museval gives NaN for windows with a silent reference
    return float(np.median(values)) if values.size else float("nan")


def mix_estimates(mixture: np.ndarray, targets: Sequence[str] = TARGETS) -> Dict[str, np.ndarray]:
    """The ``MIX`` row: the mixture ``(samples, channels)`` as the estimate of every target."""
    return {t: mixture for t in targets}


def irm_estimates(references: Mapping[str, np.ndarray], rate: int, model_rate: int = 8192, n_fft: int = 1024,
                  hop_length: int = 768, power: float = 1.0) -> Dict[str, np.ndarray]:
    """The ``IRM`` row: oracle ratio masks ``|S_j|^p / sum_k |S_k|^p`` at the model's STFT.

    The sources ``{target: (samples, channels)}`` at ``rate`` are resampled to ``model_rate``,
    their mixture is masked there (Hann window ``n_fft``, hop ``hop_length``, centred), and the
    estimates are resampled back to ``rate``: band-limited like the model's own output.
    """
    names = list(references)
    sources = torch.stack([torch.as_tensor(_as_2d(references[n]).T, dtype=torch.float64) for n in names])
    length = sources.shape[-1]
    low = _resample(sources, int(rate), int(model_rate))  # (sources, channels, samples)
    window = torch.hann_window(n_fft, dtype=low.dtype)
    spec = torch.stft(low.flatten(0, 1), n_fft, hop_length, window=window, center=True, return_complex=True)
    spec = spec.unflatten(0, low.shape[:2])
    weights = spec.abs() ** power
    masks = weights / weights.sum(0, keepdim=True).clamp_min(1e-12)
    masked = masks * spec.sum(0, keepdim=True)
    est_low = torch.istft(masked.flatten(0, 1), n_fft, hop_length, window=window, center=True,
                          length=low.shape[-1]).unflatten(0, low.shape[:2])
    est = _resample(est_low, int(model_rate), int(rate))
    est = torch.nn.functional.pad(est, (0, max(0, length - est.shape[-1])))[..., :length]
    return {n: est[i].T.numpy() for i, n in enumerate(names)}


def reference_rows(references: Mapping[str, np.ndarray], rate: int, model_rate: int = 8192, n_fft: int = 1024,
                   hop_length: int = 768) -> Dict[str, dict]:
    """Scores of the ``MIX`` and ``IRM`` rows for one track, each with its ``time_s``.

    Args:
        references: ``{target: (samples, channels)}``; their sum is the mixture.
        rate: their sample rate; ``model_rate``, ``n_fft``, ``hop_length``: the model's STFT.
    """
    mixture = sum(_as_2d(r) for r in references.values())
    rows = {}
    for row, make in (("MIX", lambda: mix_estimates(mixture, list(references))),
                      ("IRM", lambda: irm_estimates(references, rate, model_rate, n_fft, hop_length))):
        start = time.perf_counter()
        rows[row] = {**bss_eval(references, make(), rate), "time_s": time.perf_counter() - start}
    return rows


def vocals_and_accompaniment(stems: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The two targets of MUSDB18's four stems (:data:`MUSDB_STEMS`): vocals, and accompaniment =
    drums + bass + other."""
    return {"vocals": stems["vocals"], "accompaniment": stems["drums"] + stems["bass"] + stems["other"]}


def score_track(model, references: Mapping[str, np.ndarray], rate: int, name: str = "UNet",
                with_references: bool = True, **settings) -> Dict[str, dict]:
    """``{row: scores}`` of one track: the model's stems of the mixture (the sum of ``references``,
    ``{target: (samples, channels)}``), separated at ``rate`` with the separator ``settings``, as row
    ``name`` with its ``time_s``; then, with ``with_references``, the :func:`reference_rows` at the
    model's STFT."""
    mixture = sum(_as_2d(r) for r in references.values())
    start = time.perf_counter()
    stems = separator_for(model, rate, **settings).separate(torch.from_numpy(np.ascontiguousarray(mixture.T)).float())
    estimates = {t: stems[t].cpu().numpy().T for t in references}
    rows = {name: {**bss_eval(references, estimates, rate), "time_s": time.perf_counter() - start}}
    if with_references:
        rows.update(reference_rows(references, rate, int(model.sample_rate), model.n_fft, model.hop_length))
    return rows


def _resample(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited FFT resampling of ``(..., time)``, zero-padding the end to a whole length at both rates."""
    step = orig // math.gcd(orig, new)
    padded = torch.nn.functional.pad(x, (0, -x.shape[-1] % step))
    return fft_resample(padded, orig, new, guard=math.ceil(0.5 * orig / step) * step)


def summarize(per_track: Mapping[str, Mapping[str, Mapping]]) -> Dict[str, dict]:
    """Median over tracks of ``{track: {row: {target: {metric: dB}, "time_s": s}}}``.

    Returns ``{row: {target: {metric: dB}, "time_s": total seconds, "n_tracks": n}}``.
    """
    rows: Dict[str, dict] = {}
    for track in per_track.values():
        for row, scores in track.items():
            rows.setdefault(row, []).append(scores)
    summary = {}
    for row, tracks in rows.items():
        targets = [t for t in tracks[0] if isinstance(tracks[0][t], dict)]
        summary[row] = {
            t: {m: _median([s[t][m] for s in tracks]) for m in METRICS} for t in targets
        }
        summary[row]["time_s"] = float(sum(s.get("time_s", 0.0) for s in tracks))
        summary[row]["n_tracks"] = len(tracks)
    return summary


def markdown_table(summary: Mapping[str, dict], targets: Sequence[str] = TARGETS) -> str:
    """A markdown table of a summary: one row per method (``MIX`` and ``IRM`` first), dB values."""
    order = [r for r in REFERENCE_ROWS if r in summary] + [r for r in summary if r not in REFERENCE_ROWS]
    header = ["method"] + [f"{t} {m}" for t in targets for m in METRICS] + ["time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in order:
        cells = [_fmt(summary[row].get(t, {}).get(m)) for t in targets for m in METRICS]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {summary[row].get('time_s', 0.0):.1f} |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def write_json(obj, path) -> Path:
    """Write ``obj`` as JSON (NaN as null), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(obj), indent=2) + "\n")
    return path


def write_markdown(summary: Mapping[str, dict], path, title: str = "") -> Path:
    """Write the summary table (with an optional ``# title``) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f"# {title}\n\n" if title else "") + markdown_table(summary)
    path.write_text(text)
    return path


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
