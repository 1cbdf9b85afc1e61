"""Average the model weights of several training snapshots (a cheap ensemble, beyond the paper).

Inputs are Lightning checkpoints (``.ckpt``) or snapshot files holding a ``state_dict`` with
``model.``-prefixed keys (``local/snapshot_checkpoints.sh``); batch-norm statistics are averaged
too. Writes an Asteroid package (``UNet.serialize()``), fp32.

    python local/average_checkpoints.py --conf exp/default_weights/conf.yaml \
        --out exp/default_weights/averaged.pth exp/default_weights/snapshots/epoch0{30,35,40}.pt
"""
import argparse
from pathlib import Path

import torch
import yaml

from asteroid_unet import UNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--conf", type=Path, required=True, help="conf.yaml of the run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    states = []
    for path in args.checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        states.append({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    avg = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            avg[key] = sum(s[key] for s in states) / len(states)
        else:
            avg[key] = value
    model = UNet(**yaml.safe_load(args.conf.read_text())["model"])
    model.load_state_dict(avg)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.serialize(), args.out)
    print(f"Averaged {len(states)} checkpoints into {args.out}")


if __name__ == "__main__":
    main()
