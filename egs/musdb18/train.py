"""Stage 1: train the U-Net with Asteroid's System and a Lightning Trainer (Hydra config in conf/).

Writes into ``exp_dir``: ``conf.yaml`` (the resolved config), ``checkpoints/`` (best on
validation and ``last.ckpt``, every epoch), ``logs/`` (CSV), ``best_model.pth``
(an Asteroid package for ``UNet.from_pretrained``) and ``train_results.json``.
A restarted run resumes from ``checkpoints/last.ckpt``.

With ``init`` (a model name such as ``spleeter-2stems``, a file or a Hub id), the run
fine-tunes that model at its own settings (rate, channels, patch size, layers, masks); the
``model`` section is then not used.

With ``val_sdr``, each validation also separates the validation tracks whole with the package's
separator at its default settings and logs their median vocals SDR (museval, 1 s windows, median
over windows, as ``benchmarks/quality.py``) as ``val_sdr``; checkpoints and early stopping then
follow it instead of the validation loss.
"""
import json
import random
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
import numpy as np
import pytorch_lightning as pl
import torch
from asteroid.engine import System
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from asteroid_unet import UNet, provenance, unet_loss
from asteroid_unet.data import FixedChunks, RandomChunks, load_tracks, prepared_datasets
from asteroid_unet.evaluate import score_track
from asteroid_unet.masknet import UNetMaskNet
from asteroid_unet.model import batch_norm_eval

SOURCES = ["vocals", "accompaniment"]  # prepared by stage 0; their sum is the mix


class UNetSystem(System):
    """Asteroid System whose step is :func:`~asteroid_unet.unet_loss` on one patch per chunk
    (mono for a mono model, else the model's channels).

    With ``freeze_norm`` the batch norm layers keep their running statistics (eval mode) while
    the rest trains: fine-tuning on batches of one or two patches would otherwise replace them.

    Under DDP the validation loss is averaged over processes (so every process picks the same
    best checkpoint and early stop), and ``epoch_samples`` logs the training chunks seen per
    epoch, summed over processes: the same count on one device or many.
    """

    freeze_norm = False
    loss_masks = "network"

    def common_step(self, batch, batch_nb, train=True):
        mix, targets = batch  # (batch, channels, time), (batch, n_targets, channels, time)
        if self.model.audio_channels == 1:
            mix, targets = mix.mean(1), targets.mean(2)
        return unet_loss(self.model, mix, targets, masks=self.loss_masks)

    def on_train_epoch_start(self):
        self.epoch_samples = 0
        if self.freeze_norm:
            batch_norm_eval(self.model)

    def training_step(self, batch, batch_nb):
        self.epoch_samples += batch[0].shape[0]
        return super().training_step(batch, batch_nb)

    def on_train_epoch_end(self):
        self.log("epoch_samples", float(self.epoch_samples), reduce_fx="sum", sync_dist=True)

    def validation_step(self, batch, batch_nb):
        loss = self.common_step(batch, batch_nb, train=False)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)


class ValidationSDR(pl.Callback):
    """Logs ``val_sdr``: the median over ``tracks`` (``{source: (channels, time)}`` at the model's rate)
    of the median vocals SDR over 1 s windows (:func:`~asteroid_unet.evaluate.score_track`), each track
    separated whole by the model as it stands, at the package's default settings."""

    def __init__(self, tracks):
        self.tracks = tracks

    def on_validation_epoch_end(self, trainer, system):
        if trainer.sanity_checking:
            return
        model, rate = system.model, int(system.model.sample_rate)
        scores = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # museval on windows of silent vocals
            for track in self.tracks:  # separated on the model's device
                refs = {s: a.mT.double().numpy() for s, a in track.items()}
                scores.append(score_track(model, refs, rate, with_references=False)["UNet"]["vocals"]["SDR"])
        system.log("val_sdr", float(np.nanmedian(scores)), prog_bar=True, sync_dist=True)


def make_datasets(cfg: DictConfig, model: UNet):
    """Random chunks across track ends for training (short tracks train too), fixed padded chunks for validation."""
    targets = list(model.targets)
    unknown = [t for t in targets if t not in SOURCES]
    if unknown:
        raise SystemExit(f"error: model.targets must be among {SOURCES}, got {unknown}")
    try:
        train_tracks, valid_tracks = (load_tracks(cfg.data.root, split, SOURCES, int(model.sample_rate),
                                                  model.audio_channels) for split in ("train", "valid"))
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}: run stage 0 first") from err
    train = RandomChunks(train_tracks, targets, model.patch_samples,
                         n_chunks=max(1, round(float(cfg.data.samples_per_track) * len(train_tracks))),
                         random_track_mix=bool(cfg.data.random_track_mix),
                         gain_range=(float(cfg.data.gain_min), float(cfg.data.gain_max)),
                         channel_swap=bool(cfg.data.channel_swap))
    valid = FixedChunks(valid_tracks, targets, model.patch_samples, int(cfg.data.val_chunks_per_track))
    print(f"Training on {len(train_tracks)} tracks ("
          + ", ".join(f"{s} {n / model.sample_rate / 3600:.2f} h" for s, n in train.stream_lengths.items())
          + f"), validating on {len(valid)} chunks of {len(valid_tracks)} tracks", flush=True)
    return train, valid, valid_tracks


def export_best(checkpoint: str, model: UNet, path: Path) -> None:
    """Load a Lightning checkpoint's weights into ``model`` and save it as an Asteroid package."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    torch.save(model.serialize(), path)


def public_config(cfg: DictConfig) -> dict:
    """The training config for the weights' record, without the paths of this machine."""
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("exp_dir", None)
    config["data"]["root"] = Path(config["data"]["root"]).name
    if config.get("init") and Path(str(config["init"])).exists():
        config["init"] = Path(str(config["init"])).name
    return config


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exp_dir = Path(cfg.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "conf.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(int(cfg.seed), workers=True)
    model = UNet.for_training(cfg.init, **OmegaConf.to_container(cfg.model, resolve=True))
    if cfg.init:
        print(f"Fine-tuning {cfg.init}: {model.get_model_args()}", flush=True)
    if cfg.freeze_encoder:
        for unet in (m for m in model.masker.modules() if isinstance(m, UNetMaskNet)):
            unet.encoder.requires_grad_(False)
    train_set, valid_set, valid_tracks = make_datasets(cfg, model)
    monitor, mode = ("val_sdr", "max") if cfg.val_sdr else ("val_loss", "min")
    checkpoint = ModelCheckpoint(dirpath=exp_dir / "checkpoints", filename=f"{{epoch}}-{{{monitor}:.4f}}", monitor=monitor,
                                 mode=mode, save_top_k=1)
    # Lightning's save_last only writes when the best improves: a separate, unmonitored callback keeps
    # last.ckpt at the latest epoch, so a restarted run goes on from where it stopped.
    latest = ModelCheckpoint(dirpath=exp_dir / "checkpoints", filename="last", save_top_k=1, every_n_epochs=1,
                             enable_version_counter=False)
    trainer = pl.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        callbacks=[checkpoint, latest, EarlyStopping(monitor=monitor, mode=mode, patience=int(cfg.early_stop.patience)),
                   *([ValidationSDR(valid_tracks)] if cfg.val_sdr else [])],
        logger=CSVLogger(str(exp_dir), name="logs"),
        default_root_dir=str(exp_dir),
    )
    if trainer.global_rank:  # DDP: the weights are rank 0's, but each process draws its own chunks and gains
        random.seed(int(cfg.seed) + trainer.global_rank)
        torch.manual_seed(int(cfg.seed) + trainer.global_rank)
    loader = dict(batch_size=int(cfg.data.batch_size), num_workers=int(cfg.data.num_workers))
    system = UNetSystem(  # under DDP, Lightning shards both loaders with a DistributedSampler
        model=model,
        optimizer=torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(cfg.optim.lr), weight_decay=float(cfg.optim.weight_decay)),
        loss_func=unet_loss,
        train_loader=DataLoader(train_set, shuffle=True, **loader),
        val_loader=DataLoader(valid_set, shuffle=False, **loader),
    )
    system.freeze_norm, system.loss_masks = bool(cfg.freeze_norm), str(cfg.loss_masks)
    last = exp_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        meta = torch.load(last, map_location="cpu", weights_only=True)
        print(f"Resuming from {last} (epoch {meta['epoch']}, step {meta['global_step']})", flush=True)
    trainer.fit(system, ckpt_path=str(last) if last.exists() else None)
    if not trainer.is_global_zero:  # rank 0 alone writes the package and the results
        return
    best = checkpoint.best_model_path or str(last)
    model.provenance = provenance.with_training(
        model.provenance, f"egs/musdb18 (Asteroid System, conf/{HydraConfig.get().job.config_name}.yaml)",
        prepared_datasets(cfg.data.root), trainer.global_step, public_config(cfg), trainer.current_epoch)
    export_best(best, model, exp_dir / "best_model.pth")
    results = {"best_checkpoint": best, f"best_{monitor}": float(checkpoint.best_model_score or float("nan")),
               "epochs": trainer.current_epoch, "global_step": trainer.global_step}
    (exp_dir / "train_results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"Saved {exp_dir / 'best_model.pth'} from {best}")


if __name__ == "__main__":
    main()
