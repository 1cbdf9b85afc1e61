"""Separation quality on the project's real evaluation set, next to the floor and the ceiling.

Two sets of real test tracks (never used for training, or for choosing anything): the 25
MUSDB18-7 test previews of ``../shared/data/musdb18-7/test`` (7 s each, 44.1 kHz stereo,
accompaniment = drums + bass + other), and three shared tracks:

- ``80s Rock`` and ``Falcon 69``: the two MUSDB18 previews in ``../shared/data/musdb-preview``
  (44.1 kHz stereo); references are the stems: vocals, and accompaniment = drums + bass + other;
  the mixture is the sum of all four (Falcon 69's stored mixture is not the plain sum);
- ``clips-8k``: the 57 consecutive 3 s clips of ``../shared/data/musdb-clips-8k`` concatenated in
  order (171 s, 8 kHz, mono duplicated to stereo for museval); accompaniment = mix - vocals.

A third set, ``--set "musdb18-7 valid"``, is musdb's 14 validation previews of
``musdb18-7/train``: the set on which to compare checkpoints and settings.

Rows (museval 0.4.1, BSSEval v4, 1 s windows and hops, median over windows; SDR/SIR/SAR in dB):

- ``MIX``: the mixture as both estimates (floor);
- ``GAIN``: the best constant split ``g * mix`` / ``(1 - g) * mix``; museval's SDR is not
  scale-invariant, so this is the honest floor. ``g`` is searched per track on a grid
  (0.01 steps) to maximise the vocals SDR; the accompaniment row uses ``1 - g``;
- ``IRM``: the oracle ratio mask at the model's STFT (8192 Hz, window 1024, hop 768),
  resampled to the track rate (ceiling of a band-limited mask);
- ``IRM full band``: the oracle ratio mask at 44.1 kHz, window 4096, hop 1024 (n/a at 8 kHz);
- ``UNet`` (``Spleeter 2stems in asteroid-unet`` for the Spleeter model): the model (default:
  the package's default model) through ``asteroid_unet.separate`` with the model's own default settings;
- ``<model>, <setting>``: the same with the separator settings of ``--settings`` (``mask``: ratio masks
  only; ``wiener<N>``: N iterations of the multichannel Wiener filter; ``tta``: outputs averaged with
  the channel-swapped input's; ``band``: every stem silent above the model's band, as Spleeter's own
  output; ``bf16`` / ``fp32``: the U-Net in bfloat16 / float32, where the default ``auto`` lets the machine
  choose), e.g. ``--settings mask wiener1 wiener1+tta wiener1+band wiener1+fp32 wiener1+bf16``;
- ``--extra-model LABEL=SPEC`` adds the rows of another model (name, file, hub folder), e.g.
  ``"paper UNet=paper"`` or a fine-tuned checkpoint, with the same settings;
- ``UNet (paper path, 8 kHz, raw masks)``: with ``--paper-row``, the 2017 inference path for
  comparison: every channel at 8192 Hz through ``UNet.forward``, each target's own mask, band-limited;
- ``Spleeter 2stems, TensorFlow`` and ``Spleeter 2stems, TensorFlow, MWF``: Deezer's Spleeter in its own
  TensorFlow venv, without and with its Wiener filter (``Separator(MWF=True)``), read from
  ``benchmarks/results-stored/spleeter_tf_2stems{,_mwf}.json``, or recomputed with ``--spleeter-tf-venv PATH``
  (see ``benchmarks/spleeter_tf/README.md``).

A summary per set gives each row's median over tracks and, per track, how far each
asteroid-unet Spleeter row lies from the TensorFlow MWF row (vocals and accompaniment SDR); for
each ``bf16`` row with its ``fp32`` twin, how bfloat16 moves the median SDR and the worst track.

Usage::

    .venv/bin/python -m benchmarks.quality --no-references --extra-model "paper UNet=paper"  # both sets
    .venv/bin/python -m benchmarks.quality --settings mask wiener1 tta wiener1+tta --paper-row
    .venv/bin/python -m benchmarks.quality --model PATH     # any checkpoint / hub folder
    .venv/bin/python -m benchmarks.quality --untrained      # a randomly initialised UNet

Writes ``benchmarks/results/quality.json`` and ``benchmarks/results/quality.md``.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from asteroid_unet import evaluate as ev
from benchmarks.spleeter_tf import reference
from benchmarks.tracks import DATA, load_test_previews, load_tracks

SPLEETER = "Spleeter 2stems in asteroid-unet"
SETS = ("musdb18-7 test", "shared tracks")
VALIDATION = "musdb18-7 valid"  # for choosing a checkpoint or a setting: never part of "all"

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("vocals", "accompaniment")
TRACKS = ("80s Rock", "Falcon 69", "clips-8k")
# Fixed floor (GAIN) and ceiling (IRM at the paper STFT) of the vocals SDR, and the accompaniment
# GAIN, as measured when the goal was set: the goal column uses these, not the rows of a run.
GOALS = {"80s Rock": (1.77, 11.56, 4.68), "Falcon 69": (0.97, 6.84, 7.21), "clips-8k": (0.42, 6.86, 10.22)}


def gain_row(refs: dict, rate: int, step: float = 0.01) -> dict:
    """The best constant split: vocals ``g * mix``, accompaniment ``(1 - g) * mix``.

    museval's SDR of one estimate depends only on that estimate and its reference, so the
    grid is scored for both targets at once: vocals at ``g``, accompaniment at ``1 - g``
    (the grid is symmetric). ``g`` maximises the vocals SDR.
    """
    mixture = refs["vocals"] + refs["accompaniment"]
    start = time.perf_counter()
    grid = np.round(np.arange(step, 1.0, step), 6)

    def vocals_sdr(g):
        return ev.bss_eval(refs, {"vocals": g * mixture, "accompaniment": (1 - g) * mixture}, rate)

    # Coarse grid, then refine around the best point (museval is slow on long tracks).
    coarse = grid[4::10]
    scores = {float(g): vocals_sdr(g) for g in coarse}
    best = max(scores, key=lambda g: scores[g]["vocals"]["SDR"])
    fine = grid[np.abs(grid - best) <= 0.05 + 1e-9]
    scores.update({float(g): vocals_sdr(g) for g in fine if float(g) not in scores})
    g = max(scores, key=lambda g: scores[g]["vocals"]["SDR"])
    return {**scores[g], "g": g, "time_s": time.perf_counter() - start}


def paper_row(model, refs: dict, rate: int) -> dict:
    """The 2017 paper's inference path, for comparison: each channel resampled to the model rate,
    masked by each target's own sigmoid mask (no normalisation: the stems need not sum to the mix),
    and resampled back (so nothing above 4096 Hz)."""
    import torchaudio.functional as AF

    mixture = refs["vocals"] + refs["accompaniment"]
    start = time.perf_counter()
    x = torch.from_numpy(mixture.T.copy()).float()  # (channels, n)
    low = AF.resample(x, rate, int(model.sample_rate))
    with torch.inference_mode():
        est = model(low.unsqueeze(0))[0]  # (targets, channels, n_low)
    est = AF.resample(est.contiguous(), int(model.sample_rate), rate)[..., : x.shape[-1]]
    est = torch.nn.functional.pad(est, (0, x.shape[-1] - est.shape[-1]))
    estimates = {t: est[i].numpy().T for i, t in enumerate(model.targets)}
    return {**ev.bss_eval(refs, estimates, rate), "time_s": time.perf_counter() - start}


def separated_row(model, refs: dict, rate: int, **settings) -> dict:
    """Scores of ``asteroid_unet.separate`` with ``model`` and ``settings`` (``full_band``,
    ``wiener_iterations``, ``tta``, ``precision``; the model's own defaults where not given)."""
    from asteroid_unet.separate import separate

    mixture = refs["vocals"] + refs["accompaniment"]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stems = separate(torch.from_numpy(mixture.T.copy()).float(), rate, model, **settings)
    sep_s = time.perf_counter() - start
    est = {"vocals": stems["vocals"].numpy().T, "accompaniment": stems["accompaniment"].numpy().T}
    return {**ev.bss_eval(refs, est, rate), "time_s": time.perf_counter() - start, "separate_s": sep_s}


def parse_setting(text: str) -> dict:
    """``"wiener1+tta"`` -> ``{"wiener_iterations": 1, "tta": True}``; ``"mask"``: neither; ``"band"``:
    band-limited (Spleeter's own output band); ``"bf16"`` / ``"fp32"``: the U-Net in bfloat16 / float32 (``precision``)."""
    settings = {"wiener_iterations": 0, "tta": False}
    for part in text.split("+"):
        if part == "tta":
            settings["tta"] = True
        elif part == "band":
            settings["full_band"] = False
        elif part in ("bf16", "fp32"):
            settings["precision"] = {"bf16": "bfloat16", "fp32": "float32"}[part]
        elif part.startswith("wiener") and part[len("wiener"):].isdigit():
            settings["wiener_iterations"] = int(part[len("wiener"):])
        elif part != "mask":
            raise argparse.ArgumentTypeError(f"unknown setting {part!r} in {text!r}: use mask, wiener<N>, tta, band, bf16, fp32")
    return settings


def model_label(model) -> str:
    return SPLEETER if model.audio_channels == 2 and model.n_fft == 4096 else "UNet"


def model_rows(model, refs: dict, rate: int, settings=(), paper: bool = False, label: Optional[str] = None) -> dict:
    """The model's rows, named ``label`` (default: :func:`model_label`): the package's defaults, then
    one per setting of ``settings`` (see :func:`parse_setting`)."""
    rows = {}
    label = label or model_label(model)
    rows[label] = separated_row(model, refs, rate)
    for setting in settings:
        rows[f"{label}, {setting}"] = separated_row(model, refs, rate, **parse_setting(setting))
    if paper:
        rows["UNet (paper path, 8 kHz, raw masks)"] = paper_row(model, refs, rate)
    return rows


def load_set(name: str, data: Path = DATA) -> Dict[str, dict]:
    if name == "shared tracks":
        return load_tracks(data)
    if name == VALIDATION:
        return load_test_previews(data, "train", "valid")
    return load_test_previews(data)


def evaluate_all(model=None, settings=(), data: Path = DATA, references: bool = True,
                 paper: bool = False, spleeter_tf_venv: Optional[str] = None, track_set: str = "shared tracks",
                 extra_models: Optional[Dict[str, object]] = None) -> dict:
    """``{track: {row: {target: {metric: dB}, ...}}}`` for the tracks of ``track_set`` (:data:`SETS`)."""
    tracks = load_set(track_set, data)
    results = {}
    for name, track in tracks.items():
        refs, rate = track["refs"], track["rate"]
        rows = {}
        if references:
            base = ev.reference_rows(refs, rate)  # MIX and IRM at the model STFT
            rows["MIX"] = base["MIX"]
            rows["GAIN"] = gain_row(refs, rate)
            rows["IRM"] = base["IRM"]
            if rate >= 44100:
                start = time.perf_counter()
                est = ev.irm_estimates(refs, rate, model_rate=rate, n_fft=4096, hop_length=1024)
                rows["IRM full band"] = {**ev.bss_eval(refs, est, rate), "time_s": time.perf_counter() - start}
        if model is not False:
            rows.update(model_rows(model, refs, rate, settings, paper))
        for label, extra in (extra_models or {}).items():
            rows.update(model_rows(extra, refs, rate, settings, label=label))
        for row_name, mwf in ((reference.ROW, False), (reference.MWF_ROW, True)):
            spleeter_tf = reference.row(name, track, spleeter_tf_venv, mwf)
            if spleeter_tf:
                rows[row_name] = spleeter_tf
        results[name] = rows
        print(f"{name}: " + ", ".join(f"{r} {s['vocals']['SDR']:.2f}/{s['accompaniment']['SDR']:.2f}"
                                     for r, s in rows.items()), flush=True)
    return results


def markdown(results: dict) -> str:
    """One table per track (vocals / accompaniment SDR, SIR, SAR) and the goal check."""
    out = []
    header = ["method"] + [f"{t} {m}" for t in TARGETS for m in ev.METRICS]
    for track, rows in results.items():
        out += [f"### {track}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row, scores in rows.items():
            label = f"GAIN (g={scores['g']:.2f})" if row == "GAIN" else row
            cells = [ev._fmt(scores.get(t, {}).get(m)) for t in TARGETS for m in ev.METRICS]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        if track in GOALS and "UNet" in rows:
            gain, irm, acc_gain = GOALS[track]
            goal = gain + 0.5 * (irm - gain)
            v = rows["UNet"]["vocals"]["SDR"]
            a = rows["UNet"]["accompaniment"]["SDR"]
            closed = (v - gain) / (irm - gain) * 100
            out += ["", f"Goal (fixed floor GAIN {gain:.2f}, IRM {irm:.2f}): UNet vocals {v:.2f} dB closes {closed:.0f}% "
                        f"of the GAIN-IRM gap (goal 50%, {goal:.2f} dB) -> {'met' if closed >= 50 else 'NOT met'}; "
                        f"accompaniment {a:.2f} vs GAIN {acc_gain:.2f} dB -> {'met' if a > acc_gain else 'NOT met'}."]
        out.append("")
    return "\n".join(out) + "\n"


def set_summary(results: dict) -> dict:
    """Per row, the median SDR over the set's tracks; per asteroid-unet Spleeter row, its largest
    distance from the TensorFlow row and its lowest difference to it (row - TensorFlow) over tracks."""
    rows = list(dict.fromkeys(row for track in results.values() for row in track))  # in order of first appearance
    summary = {}
    for row in rows:
        have = [track[row] for track in results.values() if row in track]
        entry = {t: float(np.median([r[t]["SDR"] for r in have])) for t in TARGETS}
        entry["tracks"] = len(have)
        if row.startswith(SPLEETER) or row.startswith("Spleeter 2stems in") or row.startswith("fine-tuned"):
            pairs = [(track[row], track[reference.MWF_ROW]) for track in results.values() if reference.MWF_ROW in track]
            if pairs:
                for t in TARGETS:
                    deltas = [r[t]["SDR"] - tf[t]["SDR"] for r, tf in pairs]
                    entry[f"{t}_max_abs_delta_tf"] = float(np.max(np.abs(deltas)))
                    entry[f"{t}_min_delta_tf"] = float(np.min(deltas))
        twin = row.replace("bf16", "fp32")
        if "bf16" in row and all(twin in track for track in results.values() if row in track):
            entry["bf16_vs_fp32"] = precision_change([(track[row], track[twin]) for track in results.values() if row in track])
        summary[row] = entry
    return summary


def precision_change(pairs) -> dict:
    """Per target, how the ``(bfloat16, float32)`` rows of ``pairs`` differ in SDR (dB): ``median``, the
    change of the median over tracks, and ``worst``, the lowest per-track change."""
    change = {}
    for t in TARGETS:
        low, full = (np.array([r[t]["SDR"] for r in rows]) for rows in zip(*pairs))
        change[t] = {"median": float(np.median(low) - np.median(full)), "worst": float(np.min(low - full))}
    return change


def summary_markdown(summaries: dict) -> str:
    out = ["## Summary: median SDR over each set's tracks (dB), and the distance to Spleeter TensorFlow with its "
           "Wiener filter (MWF) per track", ""]
    for set_name, summary in summaries.items():
        out += [f"### {set_name}", "",
                "| row | tracks | vocals | accompaniment | vocals: max abs / min (row - TF) | accompaniment: max abs / min (row - TF) |",
                "|---|---|---|---|---|---|"]
        for row, e in summary.items():
            delta = [f"{e[f'{t}_max_abs_delta_tf']:.2f} / {e[f'{t}_min_delta_tf']:+.2f}" if f"{t}_min_delta_tf" in e else ""
                     for t in TARGETS]
            out.append(f"| {row} | {e['tracks']} | {e['vocals']:.2f} | {e['accompaniment']:.2f} | {delta[0]} | {delta[1]} |")
        out.append("")
        for row, e in summary.items():
            if "bf16_vs_fp32" in e:
                c = e["bf16_vs_fp32"]
                out.append(f"- {row} against float32: median SDR {c['vocals']['median']:+.3f} dB vocals, "
                           f"{c['accompaniment']['median']:+.3f} dB accompaniment; worst track "
                           f"{c['vocals']['worst']:+.3f} / {c['accompaniment']['worst']:+.3f} dB")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint, hub folder or repo id (default: packaged weights)")
    parser.add_argument("--untrained", action="store_true", help="score a randomly initialised UNet (seed 0)")
    parser.add_argument("--settings", nargs="*", default=[], metavar="SETTING",
                        help="also score these separator settings for every model: mask, wiener<N>, tta, band, bf16, fp32, "
                             "joined by + (e.g. wiener1+tta)")
    parser.add_argument("--paper-row", action="store_true",
                        help="also score the paper's inference path (8 kHz, unnormalised masks)")
    parser.add_argument("--no-references", action="store_true", help="skip MIX/GAIN/IRM rows")
    parser.add_argument("--spleeter-tf-venv", default=None,
                        help="recompute the Spleeter TensorFlow row in this venv instead of reading the stored one")
    parser.add_argument("--set", choices=SETS + (VALIDATION, "all"), default="all",
                        help=f"tracks to evaluate (default: all test sets; {VALIDATION!r}: musdb's validation previews)")
    parser.add_argument("--extra-model", action="append", default=[], metavar="LABEL=SPEC",
                        help="also score this model (name, file or hub folder) as row LABEL; repeatable")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from asteroid_unet.model import UNet
    from asteroid_unet.model import load_model
    from asteroid_unet.weights import default_weights_path

    if args.untrained:
        torch.manual_seed(0)
        model, label = UNet().eval(), "untrained UNet (seed 0)"
    else:
        model = load_model(args.model)
        label = args.model or str(default_weights_path())
    extra = {}
    for item in args.extra_model:
        extra_label, _, spec = item.partition("=")
        extra[extra_label] = load_model(spec)
    sets = SETS if args.set == "all" else (args.set,)
    results = {}
    for set_name in sets:
        results[set_name] = evaluate_all(model, args.settings, references=not args.no_references,
                                         paper=args.paper_row, spleeter_tf_venv=args.spleeter_tf_venv,
                                         track_set=set_name, extra_models=extra)
    summaries = {set_name: set_summary(tracks) for set_name, tracks in results.items()}
    results_meta = {"model": label, "museval": "0.4.1, BSSEval v4, 1 s windows, median",
                    "command": "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "summary": summaries, "sets": results}
    ev.write_json(results_meta, args.out.with_suffix(".json"))
    text = (f"# Separation quality\n\nModel: `{label}`. museval 0.4.1 (BSSEval v4), 1 s windows, median over windows; dB.\n\n"
            + summary_markdown(summaries) + "".join(f"## {name}\n\n" + markdown(tracks) for name, tracks in results.items()))
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
