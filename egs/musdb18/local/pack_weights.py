"""Pack a trained model as the package's default weights: an Asteroid package with an fp16 state_dict.

Reads an Asteroid package (``best_model.pth`` of train.py) or a Lightning checkpoint
(``checkpoints/*.ckpt``, with ``--conf`` giving the model arguments) and writes the
``UNet.serialize()`` dict with every floating tensor in float16 (about 20 MB instead of 40);
``asteroid_unet.load_model`` / ``UNet.from_pretrained`` cast it back to float32 on load.

    python local/pack_weights.py --model exp/minimal/best_model.pth \
        --out ../../asteroid_unet/weights/unet_default.pth \
        --separation '{"wiener_iterations": 0, "tta": false, "full_band": true}'

``--separation`` stores the separator settings chosen for the model on validation data (``UNet``'s
``separation``: its defaults in every entry point); without it the package keeps the model's own.
"""
import argparse
import json
from pathlib import Path

import torch
import yaml

from asteroid_unet import UNet
from asteroid_unet.model import separation_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="best_model.pth or a Lightning .ckpt")
    parser.add_argument("--conf", type=Path, help="conf.yaml of the run (needed for a .ckpt)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--separation", type=json.loads, default=None,
                        help="the model's separator defaults as JSON, e.g. '{\"wiener_iterations\": 0}'")
    args = parser.parse_args()
    if args.model.suffix == ".ckpt":
        if args.conf is None:
            raise SystemExit("error: --conf is needed with a Lightning checkpoint")
        model = UNet(**yaml.safe_load(args.conf.read_text())["model"])
        state = torch.load(args.model, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    else:
        model = UNet.from_pretrained(str(args.model))
    if args.separation is not None:
        model.separation = separation_settings(args.separation)
    package = model.serialize()
    package["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in package["state_dict"].items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(package, args.out)
    check = UNet.from_pretrained(str(args.out))  # loads back with weights_only=True
    err = max((a.float() - b).abs().max().item() for a, b in zip(check.state_dict().values(), model.state_dict().values()))
    print(f"Wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, max fp16 rounding error {err:.2e})")


if __name__ == "__main__":
    main()
