"""Stage 1 without Lightning or Hydra: the same model, data and loss as ``train.py`` in a plain PyTorch loop.

For a machine that has PyTorch but not the recipe's training stack (a rented GPU machine, a
cluster image): it needs only ``asteroid_unet`` and its core dependencies. The whole
prepared set sits in the device's memory and every batch is drawn there
(``RandomChunks.batch``), so a GPU never waits for data loaders. Validation runs every
``--val_every`` steps on the same fixed chunks as ``train.py``; the best model on validation
loss is written as an Asteroid package, and ``metrics.csv`` records the curve.

    python local/train_minimal.py --data data/prepared-musdb18-7-8192 --exp_dir exp/minimal --minutes 30

A restarted run resumes from ``<exp_dir>/last.pt`` (model, optimizer, step, best loss). A new
run starts from random weights, or from a model with ``--init`` (``paper`` for the packaged
weights, or a file): fine-tuning on a CPU, for instance.
"""
import argparse
import csv
import json
import math
import time
from pathlib import Path

import torch

from asteroid_unet import UNet, load_model, unet_loss
from asteroid_unet.data import FixedChunks, RandomChunks, load_tracks

SOURCES = ["vocals", "accompaniment"]


def validation_loss(model: UNet, valid: FixedChunks, batch_size: int, device: torch.device) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(valid), batch_size):
            items = [valid[i] for i in range(start, min(len(valid), start + batch_size))]
            mix = torch.stack([m for m, _ in items]).to(device).mean(1)
            targets = torch.stack([t for _, t in items]).to(device).mean(2)
            total += float(unet_loss(model, mix, targets)) * len(items)
    model.train()
    return total / len(valid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared folder with train/ and valid/")
    parser.add_argument("--exp_dir", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=60.0, help="training time of this run")
    parser.add_argument("--max_steps", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--gain_min", type=float, default=0.25)
    parser.add_argument("--gain_max", type=float, default=1.25)
    parser.add_argument("--val_every", type=int, default=200, help="steps between validations")
    parser.add_argument("--val_chunks_per_track", type=int, default=8)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default=None, help="start a new run from this model: a name (paper) or a file")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    args.exp_dir.mkdir(parents=True, exist_ok=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.init) if args.init else UNet()
    model = model.train().to(device)
    tracks = {split: load_tracks(args.data, split, SOURCES, int(model.sample_rate)) for split in ("train", "valid")}
    train = RandomChunks(tracks["train"], model.targets, model.patch_samples, n_chunks=1,
                         gain_range=(args.gain_min, args.gain_max))
    valid = FixedChunks(tracks["valid"], model.targets, model.patch_samples, args.val_chunks_per_track)
    hours = {s: round(n / model.sample_rate / 3600, 3) for s, n in train.stream_lengths.items()}
    print(f"train: {len(tracks['train'])} tracks, hours {hours}; valid: {len(valid)} chunks", flush=True)

    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, best, last = 0, math.inf, args.exp_dir / "last.pt"
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_val_loss"]
        print(f"Resuming from {last} at step {step} (best validation loss {best:.5f})", flush=True)
    elif args.init:
        best = validation_loss(model, valid, args.batch_size, device)
        torch.save(model.serialize(), args.exp_dir / "best_model.pth")
        print(f"Starting from {args.init}: validation loss {best:.5f}", flush=True)
    generator = torch.Generator(device=device).manual_seed(args.seed * 1_000_003 + step)
    metrics = args.exp_dir / "metrics.csv"
    new_log = not metrics.exists()
    with metrics.open("a", newline="") as f:
        writer = csv.writer(f)
        if new_log:
            writer.writerow(["step", "seconds", "train_loss", "val_loss"])
        start, running, n_running = time.time(), 0.0, 0
        while time.time() - start < args.minutes * 60 and (args.max_steps is None or step < args.max_steps):
            mix, targets = train.batch(args.batch_size, generator, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = unet_loss(model, mix, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running, n_running = running + loss.detach(), n_running + 1
            if step % args.val_every == 0:
                val = validation_loss(model, valid, args.batch_size, device)
                train_loss = float(running) / n_running
                writer.writerow([step, round(time.time() - start, 1), train_loss, val])
                f.flush()
                print(f"step {step}: train {train_loss:.5f}, valid {val:.5f}, "
                      f"{time.time() - start:.0f} s", flush=True)
                running, n_running = 0.0, 0
                if val < best:
                    best = val
                    torch.save(model.serialize(), args.exp_dir / "best_model.pth")
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                            "best_val_loss": best}, last)
    results = {"steps": step, "best_val_loss": best, "batch_size": args.batch_size, "lr": args.lr,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "hours": hours}
    (args.exp_dir / "train_results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
