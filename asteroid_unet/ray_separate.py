"""Separating a catalogue with Ray Data: one model per actor, GPU actors where there are GPUs.

Every actor runs the file driver of the CLI (:func:`asteroid_unet.files.separate_files`),
so the stems are the same bytes as ``asteroid-unet separate`` writes, and a bad file gives
its one-line error while the others complete. Needs the ``[ray]`` extra::

    pip install '.[ray]'                  # in the asteroid-unet folder
    python -m asteroid_unet.ray_separate /music -o separated --actors 8            # local Ray
    RAY_ADDRESS=auto python -m asteroid_unet.ray_separate /data/catalogue -o /data/stems --gpus-per-actor 1
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from . import files
from .errors import load_failure
from .files import FileResult, expand_inputs
from .model import UNet
from .separate import ModelSpec, resolve_model


class SeparatorActor:
    """A Ray Data actor: receives the model once, then separates the files of each batch it is given."""

    def __init__(self, model: UNet, outdir: str, device: str, options: dict):
        self.model = model
        self.outdir, self.device, self.options = outdir, device, options

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        results = list(files.separate_files([str(p) for p in batch["path"]], self.outdir, self.model,
                                            device=self.device, **self.options))
        return {
            "index": batch["index"],
            "path": np.array([r["path"] for r in results], dtype=object),
            "stems": np.array([json.dumps(r["stems"] or {}) for r in results], dtype=object),
            "error": np.array([r["error"] or "" for r in results], dtype=object),
        }


def separate_with_ray(
    paths: Sequence[Union[str, Path]],
    outdir: Union[str, Path],
    model: ModelSpec = None,
    actors: Optional[int] = None,
    gpus_per_actor: Optional[float] = None,
    cpus_per_actor: float = 1,
    **options,
) -> List[FileResult]:
    """Separate ``paths`` on the current Ray cluster (a local one is started when none is running).

    Args:
        paths: audio files, each read by the actor that separates it (a shared file system on a cluster).
        outdir: output folder (``outdir/<name>/<stem>.<fmt>``), the same as the CLI's.
        model: a UNet, or a model name, file, hub folder or repo id (None: the default model), loaded
            here once and sent to every actor.
        actors (int): actors to run at once. Default: as many as the cluster's CPUs (or GPUs) allow.
        gpus_per_actor (float): GPUs per actor; default 1 when the cluster has GPUs, else 0 (CPU actors).
        cpus_per_actor (float): CPUs per actor. Default 1.
        options: ``fmt``, ``force`` and the separator settings of :func:`~asteroid_unet.files.separate_files`.

    Returns:
        one :data:`~asteroid_unet.files.FileResult` per input, in the inputs' order:
        ``stems`` (written paths) or a one-line ``error``.
    """
    import ray

    model = resolve_model(model)
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    if gpus_per_actor is None:
        gpus_per_actor = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    device = "cuda" if gpus_per_actor > 0 else "cpu"
    if actors is None:
        free = ray.cluster_resources().get("GPU" if gpus_per_actor > 0 else "CPU", 1)
        actors = max(1, int(free // (gpus_per_actor or cpus_per_actor)))
    items = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    results = (
        ray.data.from_items(items, override_num_blocks=max(1, len(items)))  # one file per block: spread over actors
        .map_batches(SeparatorActor, fn_constructor_args=(model, str(outdir), device, dict(options)), batch_size=1,
                     compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus_per_actor, num_cpus=cpus_per_actor)
        .take_all()
    )
    results.sort(key=lambda row: int(row["index"]))
    return [{"path": r["path"], "stems": json.loads(r["stems"]) or None, "error": r["error"] or None, "traceback": None}
            for r in results]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asteroid_unet.ray_separate", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="audio files, or folders searched for audio files")
    parser.add_argument("-o", "--outdir", default="separated")
    parser.add_argument("--model", default=None, help="model file, hub folder or Hub repo id (default: packaged weights)")
    parser.add_argument("--actors", type=int, default=None, help="default: one per CPU, or per GPU")
    parser.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 on a cluster with GPUs, else 0")
    parser.add_argument("--format", default=None, choices=["flac", "mp3", "wav"])
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:  # a bad --model is one line here, not one traceback per actor
        model = resolve_model(args.model)
    except Exception as err:
        print(f"asteroid-unet: error: {load_failure(args.model, err)}", file=sys.stderr)
        return 2
    results = separate_with_ray(expand_inputs(args.inputs), args.outdir, model, args.actors, args.gpus_per_actor,
                                fmt=args.format, force=args.force)
    for result in results:
        if result["error"]:
            print(f"asteroid-unet: error: {result['path']}: {result['error']}", file=sys.stderr)
        else:
            for name, out in result["stems"].items():
                print(f"{name}: {out}")
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
