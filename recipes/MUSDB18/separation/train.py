#!/usr/bin/env python3
"""Recipe for training the U-Net singing voice separator (Jansson et al., ISMIR
2017) on MUSDB18.

The network is ``asteroid_unet.UNet`` and the loss ``asteroid_unet.unet_loss``,
so the weights this recipe trains load in Asteroid too. Training examples are
random mono chunks of exactly one patch (``model.patch_samples`` samples at 8192
Hz): the stereo stems are downmixed to mono, as in the paper, and the mixture is
the sum of the stems. The final evaluation separates each full test track at its
own rate and full band with ``asteroid_unet.separate`` (the user API), and
scores it with museval (BSSEval v4, 1 s windows) through
``asteroid_unet.evaluate``, next to the MIX floor and IRM ceiling.

To run it (the .stem.mp4 release and the wav layout are both detected):
> python train.py hparams/unet.yaml --data_folder=/path/to/musdb18hq
> python train.py hparams/unet.yaml --data_folder=/path/to/musdb18

Authors
 * asteroid-unet contributors 2026
"""

import csv
import math
import os
import sys

try:
    import numpy as np
    import speechbrain as sb
    import torch
    from asteroid_unet import UNet, evaluate, hub, provenance
    from asteroid_unet.model import batch_norm_eval
    from asteroid_unet.parallel import ordered_map
    from asteroid_unet.separator import stem_names
    from hyperpyyaml import load_hyperpyyaml
    from scipy.signal import resample_poly
    from speechbrain.dataio.dataio import read_audio
    from speechbrain.utils.distributed import (
        ddp_init_group,
        get_rank,
        run_on_main,
    )
    from speechbrain.utils.logger import get_logger
    from torch.nn.parallel import DistributedDataParallel
except ModuleNotFoundError as err:
    sys.exit(
        f"train.py: {err} in {sys.executable}: install the recipe's packages "
        "with pip install '.[speechbrain]' from the asteroid-unet folder, "
        "or run train.py with the Python of the venv that has them"
    )

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from prepare_musdb18 import STEMS, prepare_musdb18  # noqa: E402

logger = get_logger(__name__)


class Separation(sb.Brain):
    """Trains the U-Net on one-patch chunks with the paper's masked-magnitude L1
    loss."""

    def compute_forward(self, batch, stage):
        """The mixture ``(batch, time)`` and targets ``(batch, n_targets,
        time)`` on the device.

        The network runs inside the loss: the paper's objective compares masked
        mix magnitudes with target magnitudes, so it needs the masks, not
        waveforms.
        """
        batch = batch.to(self.device)
        return batch.mix_sig.data, batch.targets_sig.data

    def on_fit_batch_start(self, batch, should_step):
        """With ``freeze_norm``, batch norm keeps its running statistics while
        the rest trains (fine-tuning on batches of one or two patches)."""
        if self.hparams.freeze_norm:
            batch_norm_eval(self.hparams.model)

    def compute_objectives(self, predictions, batch, stage):
        """The paper loss, ``asteroid_unet.unet_loss``, on the chunks."""
        mix, targets = predictions
        return self.modules.objective(mix, targets)

    def _wrap_distributed(self):
        """SpeechBrain's DDP wrapping; on the CPU (gloo) without its
        SyncBatchNorm conversion, which runs on GPUs only: batch norm
        statistics then stay per process, as in Lightning. The recipe's one
        module, ``objective`` (the model inside its loss), is wrapped."""
        if (
            not self.distributed_launch
            or torch.device(self.device).type != "cpu"
        ):
            return super()._wrap_distributed()
        objective = self.modules.objective
        if any(p.requires_grad for p in objective.parameters()):
            self.modules.objective = DistributedDataParallel(
                objective, find_unused_parameters=self.find_unused_parameters
            )

    def on_stage_end(self, stage, stage_loss, epoch):
        """Logs the losses; after validation keeps the best checkpoint by
        validation loss."""
        stage_stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stage_stats
        elif stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                },
                train_stats=self.train_stats,
                valid_stats=stage_stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss}, min_keys=["loss"]
            )
        elif stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stage_stats,
            )

    @torch.no_grad()
    def evaluate_tracks(self, manifest, output_folder):
        """Separate every full test track and score it with museval
        (``asteroid_unet.evaluate``).

        Each track is separated full band at its own rate by
        ``asteroid_unet.separate``, the user API; ``eval_jobs`` tracks are
        scored at once in worker processes, with the same numbers as one.
        Writes ``test_results.csv`` (median SDR/SIR/SAR over 1 s frames per
        track and target, then a ``median`` row over tracks), and, with
        ``eval_reference_rows``, the MIX floor and IRM ceiling in
        ``test_results.json`` (per track) and ``test_results.md``.
        Returns the model's summary ``{target: {metric: dB}}``.
        """
        model = self.hparams.model.eval()
        targets = stem_names(model)
        tracks = _read_manifest(manifest)
        tracks = tracks[: self.debug_batches] if self.debug else tracks
        worker = (
            model.serialize(),
            str(self.device),
            bool(self.hparams.eval_reference_rows),
        )
        per_track = {}
        for track, rows in zip(
            tracks,
            ordered_map(
                score_track,
                tracks,
                int(self.hparams.eval_jobs),
                start_eval_worker,
                worker,
            ),
        ):
            per_track[track["ID"]] = rows
            logger.info(
                f"{track['ID']}: "
                + ", ".join(
                    f"{t} SDR {rows['UNet'][t]['SDR']:.2f}" for t in targets
                )
            )
        summary = evaluate.summarize(per_track)
        _write_results_csv(
            os.path.join(output_folder, "test_results.csv"),
            per_track,
            summary,
            targets,
        )
        if self.hparams.eval_reference_rows:
            evaluate.write_json(
                per_track, os.path.join(output_folder, "test_results.json")
            )
            evaluate.write_markdown(
                summary,
                os.path.join(output_folder, "test_results.md"),
                "MUSDB18 test, museval",
            )
        self.hparams.train_logger.log_stats(
            stats_meta={"museval": "median over frames, then over tracks"},
            test_stats={
                f"SDR_{t}": round(summary["UNet"][t]["SDR"], 2) for t in targets
            },
        )
        return summary["UNet"]


# Per evaluation process: the model, its device and whether to score MIX, IRM.
_eval_worker = {}


def start_eval_worker(package, device, reference_rows):
    """Rebuild the model from its ``serialize()`` package, once per evaluation
    process."""
    _eval_worker.update(
        model=UNet.from_pretrained(package).eval(),
        device=device,
        reference_rows=reference_rows,
    )


def score_track(track):
    """``{row: scores}`` of one manifest row: the model (``UNet``) and,
    optionally, MIX and IRM (``asteroid_unet.evaluate.score_track``)."""
    model = _eval_worker["model"]
    stems = {
        s: read_audio(track[s]).reshape(int(track["frames"]), -1).T
        for s in STEMS
    }
    references = {
        t: target_source(stems, t).T.numpy() for t in stem_names(model)
    }  # (time, channels)
    return evaluate.score_track(
        model,
        references,
        int(track["sample_rate"]),
        with_references=_eval_worker["reference_rows"],
        device=_eval_worker["device"],
    )


def target_source(stems, target):
    """The reference of ``target``: a stem, or ``accompaniment`` = every stem
    but vocals."""
    if target == "accompaniment":
        return sum(stems[s] for s in STEMS if s != "vocals")
    if target not in stems:
        raise ValueError(
            f"Unknown target {target!r}: "
            f"use one of {STEMS + ('accompaniment',)}"
        )
    return stems[target]


def resample(audio, orig, new):
    """Polyphase resampling of ``(..., time)`` (fast for 44100 -> 8192, unlike a
    sinc kernel)."""
    g = math.gcd(int(orig), int(new))
    return torch.from_numpy(
        resample_poly(
            audio.numpy(), int(new) // g, int(orig) // g, axis=-1
        ).astype(np.float32)
    )


def dataio_prep(hparams):
    """Train, valid and test datasets of one-patch chunks, ``samples_per_track``
    per train track, at the model's rate and channel count."""
    model = hparams["model"]
    patch_samples = model.patch_samples
    model_rate = int(model.sample_rate)
    channels = model.audio_channels
    targets = list(model.targets)

    def read_chunk(track, start_fraction):
        """Stems ``(4, [channels,] patch_samples)`` at the model rate, from
        ``start_fraction`` of the track: the downmix for a mono model, a mono
        file on every channel for a stereo one."""
        rate, frames = int(track["sample_rate"]), int(track["frames"])
        length = int(np.ceil(patch_samples * rate / model_rate)) + 1
        start = int(start_fraction * max(0, frames - length))
        stems = torch.zeros(len(STEMS), channels, length)
        for i, stem in enumerate(STEMS):
            if not track[stem]:  # an extra-data row without this stem: silence
                continue
            audio = read_audio(
                {"file": track[stem], "start": start, "stop": start + length}
            )
            audio = audio.reshape(audio.shape[0], -1)[:length].T
            if channels == 1:
                audio = audio.mean(dim=0, keepdim=True)
            stems[i, :, : audio.shape[-1]] = audio
        stems = resample(stems, rate, model_rate)
        stems = torch.nn.functional.pad(
            stems, (0, max(0, patch_samples - stems.shape[-1]))
        )[..., :patch_samples]
        return stems[:, 0] if channels == 1 else stems

    def make_pipeline(random_start):
        @sb.utils.data_pipeline.takes(
            "chunk", "n_chunks", "sample_rate", "frames", *STEMS
        )
        @sb.utils.data_pipeline.provides("mix_sig", "targets_sig")
        def audio_pipeline(chunk, n_chunks, sample_rate, frames, *paths):
            track = dict(
                sample_rate=sample_rate,
                frames=frames,
                **dict(zip(STEMS, paths)),
            )
            fraction = (
                torch.rand(()).item()
                if random_start
                else (chunk + 0.5) / n_chunks
            )
            audio = read_chunk(track, fraction)
            swap = random_start and hparams["channel_swap"] and channels == 2
            if swap and torch.rand(()).item() < 0.5:
                audio = audio.flip(1)  # left and right swapped, every stem
            stems = dict(zip(STEMS, audio))
            yield audio.sum(0)
            yield torch.stack([target_source(stems, t) for t in targets])

        return audio_pipeline

    datasets = {}
    for name, manifest, chunks, random_start in (
        ("train", hparams["train_data"], hparams["samples_per_track"], True),
        (
            "valid",
            hparams["valid_data"],
            hparams["valid_chunks_per_track"],
            False,
        ),
        (
            "test",
            hparams["test_data"],
            hparams["valid_chunks_per_track"],
            False,
        ),
    ):
        items = {}
        for track in _read_manifest(manifest):
            for k in range(chunks):
                items[f"{track['ID']}#{k}"] = dict(
                    track, chunk=k, n_chunks=chunks
                )
        datasets[name] = sb.dataio.dataset.DynamicItemDataset(
            items,
            dynamic_items=[make_pipeline(random_start)],
            output_keys=["id", "mix_sig", "targets_sig"],
        )
    return datasets


def evaluate_and_export(separator, hparams):
    """Score the test tracks, then export the model with those scores."""
    scores = separator.evaluate_tracks(
        hparams["test_data"], hparams["output_folder"]
    )
    export_model(
        separator.hparams.model,
        hparams,
        {"UNet": scores},
        separator.optimizer_step,
        separator.hparams.epoch_counter.current,
    )


def export_model(model, hparams, summary, steps, epochs):
    """The best checkpoint as an Asteroid package (``best_model.pth``, loads
    with ``UNet.from_pretrained``) and as a Hub folder (``hub/``: the same file
    as ``pytorch_model.bin``, a model card, and SpeechBrain's
    ``hyperparams.yaml``), its provenance record extended by this run and its
    scores on the test tracks."""
    model = getattr(model, "module", model)  # unwrapped from DDP
    model.provenance = provenance.with_training(
        model.provenance,
        "recipes/MUSDB18/separation (SpeechBrain Brain, hparams/unet.yaml)",
        training_datasets(hparams),
        steps,
        public_config(hparams),
        epochs,
    )
    path = os.path.join(hparams["output_folder"], "best_model.pth")
    torch.save(model.serialize(), path)
    eval_set = (
        f"{os.path.basename(os.path.normpath(hparams['data_folder']))} test"
    )
    hub.export(
        path,
        hparams["hub_folder"],
        hparams["hub_repo_id"],
        summary,
        eval_set=eval_set,
    )
    logger.info(f"Asteroid package {path}, Hub folder {hparams['hub_folder']}")


def training_datasets(hparams):
    """The training sets of the manifests, for the provenance record: the
    MUSDB18 root (or the synthetic set in its layout) and each extra root, by
    its folder name, with tracks and hours."""
    rows = {
        split: _read_manifest(hparams[f"{split}_data"])
        for split in ("train", "valid")
    }
    synthetic = os.path.isfile(
        os.path.join(hparams["data_folder"], "synth.json")
    )
    groups = {"synthetic-musdb18" if synthetic else "musdb18": ""}
    for entry in hparams["extra_roots"]:
        folder = os.path.basename(
            os.path.normpath(str(entry).partition(":")[2])
        )
        groups[folder] = folder + "-"

    def origin(row):  # the longest matching prefix; MUSDB18 rows have none
        return max(
            (g for g, prefix in groups.items() if row["ID"].startswith(prefix)),
            key=lambda g: len(groups[g]),
        )

    return [
        provenance.dataset(
            name,
            tracks=sum(origin(r) == name for r in rows["train"]),
            hours=sum(
                float(r["duration"]) for r in rows["train"] if origin(r) == name
            )
            / 3600,
            validation_tracks=sum(origin(r) == name for r in rows["valid"]),
        )
        for name in groups
    ]


def public_config(hparams):
    """The plain settings of the run for the provenance record: numbers,
    flags and names, without the paths of this machine."""
    plain = (int, float, bool, str, type(None))
    return {
        key: value
        for key, value in hparams.items()
        if isinstance(value, plain)
        and not (isinstance(value, str) and os.sep in value)
        and not key.endswith(("_folder", "_data", "_log"))
    }


def _write_results_csv(path, per_track, summary, targets):
    """One row per track and a final ``median`` row: the model's scores per
    target and metric."""
    columns = [f"{m}_{t}" for t in targets for m in evaluate.METRICS]
    rows = [(name, scores["UNet"]) for name, scores in per_track.items()] + [
        ("median", summary["UNet"])
    ]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["track"] + columns)
        for name, scores in rows:
            writer.writerow(
                [name]
                + [scores[t][m] for t in targets for m in evaluate.METRICS]
            )


def _read_manifest(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    ddp_init_group(
        run_opts
    )  # under torchrun: one process per device, gradients averaged (DDP)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    # DDP: the weights are rank 0's (DDP broadcasts them); each process draws
    # its own chunks.
    if get_rank():
        torch.manual_seed(int(hparams["seed"]) + int(get_rank()))

    try:  # the test tracks are scored at the end: stop now, not after training
        evaluate.museval_module()
    except RuntimeError as err:
        sys.exit(f"train.py: {err}")

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    try:
        run_on_main(
            prepare_musdb18,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["save_folder"],
                "is_wav": hparams["is_wav"],
                "valid_fraction": hparams["valid_fraction"],
                "skip_prep": hparams["skip_prep"],
                "extra_roots": hparams["extra_roots"],
                "instrumental_exclude": hparams["instrumental_exclude"],
            },
        )
    except (OSError, ValueError) as err:  # not a MUSDB18 root, no tracks
        sys.exit(f"train.py: {err}")
    datasets = dataio_prep(hparams)

    separator = Separation(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    separator.fit(
        separator.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=dict(hparams["dataloader_opts"], shuffle=True),
        valid_loader_kwargs=hparams["dataloader_opts"],
    )
    separator.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["dataloader_opts"],
    )
    # museval and the export once, on the main process (the others wait),
    # not once per DDP process.
    run_on_main(evaluate_and_export, args=[separator, hparams])
