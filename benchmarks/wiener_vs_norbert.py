"""The torch Wiener filter against sigsep's norbert (numpy), on the same separations.

Each track is separated twice with the model's default settings, once with
:func:`asteroid_unet.wiener.wiener` and once with ``norbert.wiener`` in its place (same inputs:
the network's estimates and the full-band STFT of each block). Reports the largest relative
difference of the stems (``||ours - norbert|| / ||norbert||`` per stem and channel), the median
museval SDR of each, and the seconds spent in each filter. Needs norbert (the ``test`` extra)
and the ``eval`` extra. Reporting only: the test previews choose nothing.

    python -m benchmarks.wiener_vs_norbert                      # the 25 MUSDB18-7 test previews
    python -m benchmarks.wiener_vs_norbert --model paper
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from asteroid_unet import evaluate as ev
from asteroid_unet import separator as separator_module
from asteroid_unet.separate import resolve_model
from asteroid_unet.separator import separator_for
from benchmarks.tracks import load_test_previews


def norbert_wiener(estimates: torch.Tensor, mix: torch.Tensor, iterations: int = 1, keep=None) -> torch.Tensor:
    """``norbert.wiener`` with :func:`asteroid_unet.wiener.wiener`'s arguments and layout."""
    import norbert

    out = norbert.wiener(estimates.permute(3, 2, 1, 0).cpu().numpy().copy(), mix.permute(2, 1, 0).cpu().numpy().copy(),
                         iterations)
    return torch.from_numpy(out).permute(3, 2, 1, 0)[:keep].to(mix.device)


def timed(filter_fn, clock: list):
    def run(*args, **kwargs):
        start = time.perf_counter()
        out = filter_fn(*args, **kwargs)
        clock[0] += time.perf_counter() - start
        return out
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model name or file (default: the default model)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/wiener_vs_norbert.json"))
    args = parser.parse_args()
    model = resolve_model(args.model)
    ours_filter = separator_module.wiener
    clocks = {"torch": [0.0], "norbert": [0.0]}
    filters = {"torch": timed(ours_filter, clocks["torch"]), "norbert": timed(norbert_wiener, clocks["norbert"])}
    per_track, worst = {}, 0.0
    for name, track in load_test_previews().items():
        refs, rate = track["refs"], track["rate"]
        mixture = torch.from_numpy(np.ascontiguousarray(sum(refs.values()).T)).float()
        stems = {}
        for label, filter_fn in filters.items():
            separator_module.wiener = filter_fn
            try:
                stems[label] = separator_for(model, rate).separate(mixture)
            finally:
                separator_module.wiener = ours_filter
        diffs = {t: max(((stems["torch"][t][c] - stems["norbert"][t][c]).norm() / stems["norbert"][t][c].norm()).item()
                        for c in range(mixture.shape[0])) for t in stems["torch"]}
        worst = max(worst, *diffs.values())
        per_track[name] = {label: ev.bss_eval(refs, {t: s[t].numpy().T for t in refs}, rate)
                           for label, s in stems.items()}
        print(f"{name:50s} largest relative stem difference {max(diffs.values()):.2e}", flush=True)
    summary = ev.summarize(per_track)
    result = {"model": args.model or "default", "tracks": len(per_track), "max_relative_difference": worst,
              "median_sdr": {label: {t: summary[label][t]["SDR"] for t in ev.TARGETS} for label in filters},
              "filter_seconds": {label: clock[0] for label, clock in clocks.items()},
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    print(f"\n{result['tracks']} tracks, model {result['model']}: largest relative stem difference {worst:.2e}")
    for label in filters:
        sdr = result["median_sdr"][label]
        print(f"  {label:8s} median SDR vocals {sdr['vocals']:.3f} dB, accompaniment {sdr['accompaniment']:.3f} dB; "
              f"{result['filter_seconds'][label]:.2f} s in the filter")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
