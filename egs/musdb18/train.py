"""Stage 1: train the U-Net with Asteroid's System and a Lightning Trainer (Hydra config in conf/).

Writes into ``exp_dir``: ``conf.yaml`` (the resolved config), ``checkpoints/`` (best on
validation loss and ``last.ckpt``, every epoch), ``logs/`` (CSV), ``best_model.pth``
(an Asteroid package for ``UNet.from_pretrained``) and ``train_results.json``.
A restarted run resumes from ``checkpoints/last.ckpt``.
"""
import json
import random
from pathlib import Path

import hydra
import pytorch_lightning as pl
import soundfile as sf
import torch
from asteroid.data import MUSDB18Dataset
from asteroid.engine import System
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from asteroid_unet import UNet, unet_loss

SOURCES = ["vocals", "accompaniment"]  # prepared by stage 0; their sum is the mix


class RandomGain:
    """Source augmentation: multiply by a gain drawn uniformly in ``[low, high]``."""

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return audio * random.uniform(self.low, self.high)


class FixedChunks(Dataset):
    """Consecutive, non-overlapping chunks of a MUSDB18Dataset's tracks: a stable validation set."""

    def __init__(self, dataset: MUSDB18Dataset, max_per_track: int):
        length = int(dataset.segment * dataset.sample_rate)
        self.dataset, self.length = dataset, length
        self.items = [
            (track["path"], k * length)
            for track in dataset.tracks
            for k in range(min(max_per_track, int(track["min_duration"] * dataset.sample_rate) // length))
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        path, start = self.items[index]
        audio = {
            s: torch.tensor(sf.read(path / f"{s}.wav", start=start, stop=start + self.length, always_2d=True,
                                    dtype="float32")[0].T)
            for s in self.dataset.sources
        }
        targets = torch.stack([audio[s] for s in self.dataset.targets])
        return sum(audio.values()), targets


class UNetSystem(System):
    """Asteroid System whose step is the paper loss on one mono patch per chunk.

    Under DDP the validation loss is averaged over processes (so every process picks the same
    best checkpoint and early stop), and ``epoch_samples`` logs the training chunks seen per
    epoch, summed over processes: the same count on one device or many.
    """

    def common_step(self, batch, batch_nb, train=True):
        mix, targets = batch  # (batch, channels, time), (batch, n_targets, channels, time)
        return unet_loss(self.model, mix.mean(1), targets.mean(2))

    def on_train_epoch_start(self):
        self.epoch_samples = 0

    def training_step(self, batch, batch_nb):
        self.epoch_samples += batch[0].shape[0]
        return super().training_step(batch, batch_nb)

    def on_train_epoch_end(self):
        self.log("epoch_samples", float(self.epoch_samples), reduce_fx="sum", sync_dist=True)

    def validation_step(self, batch, batch_nb):
        loss = self.common_step(batch, batch_nb, train=False)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)


def make_datasets(cfg: DictConfig, model: UNet):
    targets = list(model.targets)
    unknown = [t for t in targets if t not in SOURCES]
    if unknown:
        raise SystemExit(f"error: model.targets must be among {SOURCES}, got {unknown}")
    common = dict(root=cfg.data.root, sources=SOURCES, targets=targets, sample_rate=int(model.sample_rate),
                  segment=model.patch_samples / model.sample_rate)
    try:
        train = MUSDB18Dataset(split="train", samples_per_track=int(cfg.data.samples_per_track), random_segments=True,
                               random_track_mix=bool(cfg.data.random_track_mix),
                               source_augmentations=RandomGain(float(cfg.data.gain_min), float(cfg.data.gain_max)),
                               **common)
        valid = FixedChunks(MUSDB18Dataset(split="valid", **common), int(cfg.data.val_chunks_per_track))
    except (RuntimeError, FileNotFoundError) as err:
        raise SystemExit(
            f"error: {err} under {cfg.data.root}: stage 0 must prepare tracks at {model.sample_rate:g} Hz "
            f"longer than one patch ({common['segment']:.2f} s)"
        ) from err
    return train, valid


def export_best(checkpoint: str, model: UNet, path: Path) -> None:
    """Load a Lightning checkpoint's weights into ``model`` and save it as an Asteroid package."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    torch.save(model.serialize(), path)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exp_dir = Path(cfg.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "conf.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(int(cfg.seed), workers=True)
    model = UNet(**OmegaConf.to_container(cfg.model, resolve=True))
    checkpoint = ModelCheckpoint(dirpath=exp_dir / "checkpoints", filename="{epoch}-{val_loss:.4f}", monitor="val_loss",
                                 mode="min", save_top_k=1)
    # Lightning's save_last only writes when the best improves: a separate, unmonitored callback keeps
    # last.ckpt at the latest epoch, so a restarted run goes on from where it stopped.
    latest = ModelCheckpoint(dirpath=exp_dir / "checkpoints", filename="last", save_top_k=1, every_n_epochs=1,
                             enable_version_counter=False)
    trainer = pl.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        callbacks=[checkpoint, latest, EarlyStopping(monitor="val_loss", mode="min", patience=int(cfg.early_stop.patience))],
        logger=CSVLogger(str(exp_dir), name="logs"),
        default_root_dir=str(exp_dir),
    )
    if trainer.global_rank:  # DDP: the weights are rank 0's, but each process draws its own chunks and gains
        random.seed(int(cfg.seed) + trainer.global_rank)
        torch.manual_seed(int(cfg.seed) + trainer.global_rank)
    train_set, valid_set = make_datasets(cfg, model)
    loader = dict(batch_size=int(cfg.data.batch_size), num_workers=int(cfg.data.num_workers))
    system = UNetSystem(  # under DDP, Lightning shards both loaders with a DistributedSampler
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=float(cfg.optim.lr), weight_decay=float(cfg.optim.weight_decay)),
        loss_func=unet_loss,
        train_loader=DataLoader(train_set, shuffle=True, **loader),
        val_loader=DataLoader(valid_set, shuffle=False, **loader),
    )
    last = exp_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        meta = torch.load(last, map_location="cpu", weights_only=True)
        print(f"Resuming from {last} (epoch {meta['epoch']}, step {meta['global_step']})", flush=True)
    trainer.fit(system, ckpt_path=str(last) if last.exists() else None)
    if not trainer.is_global_zero:  # rank 0 alone writes the package and the results
        return
    best = checkpoint.best_model_path or str(last)
    export_best(best, model, exp_dir / "best_model.pth")
    results = {"best_checkpoint": best, "best_val_loss": float(checkpoint.best_model_score or float("nan")),
               "epochs": trainer.current_epoch, "global_step": trainer.global_step}
    (exp_dir / "train_results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"Saved {exp_dir / 'best_model.pth'} from {best}")


if __name__ == "__main__":
    main()
