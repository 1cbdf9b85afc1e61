"""Export a trained UNet package as a Hugging Face Hub folder, and upload it.

Folder layout (what ``BaseModel.from_pretrained("org/name")`` downloads is ``pytorch_model.bin``)::

    pytorch_model.bin      the Asteroid package (``UNet.serialize()``), plain types only
    README.md              model card with the evaluation table
    training_config.yaml   the configuration the model was trained with
    results.json           the evaluation summary (when given)
    hyperparams.yaml       the SpeechBrain interface (``UNetSeparator.from_hparams``) over the same weights
    app.py                 the web page (``asteroid_unet/app.py``), serving these weights as a Gradio Space
    requirements.txt       what a Space pip-installs for it; packages.txt: what it apt-installs (ffmpeg)

The model card's front matter carries the Space metadata too (``sdk: gradio``, ``app_file: app.py``),
so the same folder uploads as a model repo or as a Space.

Command line::

    python -m asteroid_unet.hub export --model paper --out hub --repo-id me/unet-paper   # a packaged model
    python -m asteroid_unet.hub export --model exp/best_model.pth --out exp/hub \\
        --results exp/eval/summary.json --config exp/conf.yaml --repo-id org/unet-musdb18
    python -m asteroid_unet.hub upload --folder exp/hub --repo-id org/unet-musdb18
    python -m asteroid_unet.hub upload --folder exp/hub --repo-id org/unet-musdb18-demo --space
"""
import argparse
import json
import shutil
from pathlib import Path
from typing import Mapping, Optional, Sequence

import yaml

from . import __version__
from .evaluate import markdown_table
from .weights import CheckpointError, load_package, locate

MODEL_FILE = "pytorch_model.bin"
HPARAMS_FILE = "hyperparams.yaml"
CONFIG_FILE = "training_config.yaml"
APP_FILE = "app.py"
APP_REQUIREMENT = f"asteroid-unet[app]=={__version__}"
TAGS = ("asteroid", "audio", "audio-to-audio", "source-separation", "music-source-separation", "singing-voice")


def model_card(package: Mapping, repo_id: str, summary: Optional[Mapping] = None, dataset: str = "musdb18",
               license: str = "cc-by-nc-sa-4.0") -> str:
    """The README.md text: Hub and Space front matter, usage, model arguments and the evaluation table."""
    args = package["model_args"]
    spleeter = bool(args.get("spleeter_layers"))
    if spleeter:  # Deezer's weights, trained on Deezer's private catalogue
        license, dataset = "mit", None
    meta = {"library_name": "asteroid", "tags": list(TAGS), "license": license}
    if dataset:
        meta["datasets"] = [dataset]
    meta.update(space_metadata(repo_id))
    front = yaml.safe_dump(meta, sort_keys=False)
    if spleeter:
        about = ("Deezer's pretrained Spleeter U-Net (MIT licence, Copyright (c) 2019-present Deezer), converted from "
                 "its TensorFlow checkpoint by `asteroid-unet convert-spleeter`, with Spleeter's own layer order, "
                 "STFT and ratio masks.")
    else:
        about = ("Singing voice separation with the deep U-Net of Jansson et al. (ISMIR 2017), "
                 f"trained with the `asteroid-unet` Asteroid recipe (`egs/musdb18`) on {dataset}.")
    channels = args.get("audio_channels", 1)
    network_input = "the mono downmix" if channels == 1 else f"{channels} channels"
    lines = [
        f"---\n{front}---",
        f"# {repo_id.split('/')[-1]}",
        "",
        about,
        "",
        "## Usage",
        "",
        "```python",
        "import asteroid_unet  # registers UNet with Asteroid",
        "from asteroid.models import BaseModel",
        "",
        f'model = BaseModel.from_pretrained("{repo_id}")',
        'model.separate("song.wav")  # writes song_est1.wav (vocals) and song_est2.wav (accompaniment)',
        "```",
        "",
        "The stems are full band, at the file's own rate and channel count, and sum to the input: the",
        f"same as `asteroid-unet separate song.wav --model {repo_id}` or `asteroid-infer {repo_id} --files song.wav`.",
        f"The network itself runs on {network_input} at {args['sample_rate']:g} Hz. With SpeechBrain, the",
        "`hyperparams.yaml` of this folder loads with `asteroid_unet.speechbrain.UNetSeparator.from_hparams`.",
        "",
        "## Model",
        "",
        "| argument | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in args.items()],
        "",
    ]
    if summary:
        n_tracks = max((row.get("n_tracks", 0) for row in summary.values()), default=0)
        lines += [
            "## Results",
            "",
            f"BSSEval v4 (museval), median over 1 s windows then over {n_tracks} tracks, in dB. "
            "`MIX` is the mixture as estimate (floor); `IRM` is the oracle ratio mask at the model's STFT (ceiling).",
            "",
            markdown_table(summary),
        ]
    lines += [
        "## Reference",
        "",
        "A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde, "
        "*Singing Voice Separation with Deep U-Net Convolutional Networks*, ISMIR 2017.",
        "",
    ]
    if spleeter:
        lines += ["R. Hennequin, A. Khlif, F. Voituret, M. Moussallam, *Spleeter: a fast and efficient music source "
                  "separation tool with pre-trained models*, JOSS 5(50), 2154, 2020. Weights: "
                  "https://github.com/deezer/spleeter (MIT).", ""]
    return "\n".join(lines)


def space_metadata(repo_id: str) -> dict:
    """The front matter keys of a Gradio Space running ``app.py``."""
    from .app import GRADIO_VERSION

    return {"title": repo_id.split("/")[-1], "sdk": "gradio", "sdk_version": GRADIO_VERSION,
            "python_version": "3.11", "app_file": APP_FILE, "pinned": False}


def write_space_files(out: Path, requirement: str) -> None:
    """The page's ``app.py`` (this package's own), ``requirements.txt`` and ``packages.txt``."""
    from . import app

    shutil.copyfile(app.__file__, out / APP_FILE)
    (out / "requirements.txt").write_text(requirement + "\n")
    (out / "packages.txt").write_text("ffmpeg\n")  # decodes m4a, mp4 and other formats libsndfile cannot


def export(model_path, out_dir, repo_id: str, summary: Optional[Mapping] = None, config_path=None,
           dataset: str = "musdb18", license: str = "cc-by-nc-sa-4.0", requirement: str = APP_REQUIREMENT) -> Path:
    """Write the Hub folder for the package at ``model_path`` into ``out_dir``; returns ``out_dir``.

    Files already in ``out_dir`` (for example the SpeechBrain interface) are kept.

    Args:
        model_path: ``best_model.pth`` from the recipe.
        out_dir: destination folder.
        repo_id: ``org/name`` used in the model card.
        summary: evaluation summary (:func:`asteroid_unet.evaluate.summarize`), or None.
        config_path: the training config (yaml) to include, or None.
        dataset, license: Hub metadata. Defaults ``musdb18`` and ``cc-by-nc-sa-4.0`` (MUSDB18's terms).
        requirement: the line of the Space's ``requirements.txt`` that installs this package with its
            ``[app]`` extra (a version, a wheel URL or ``git+https://...``).
    """
    package = load_package(model_path)
    if "/" not in repo_id:
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, out / MODEL_FILE)
    (out / "README.md").write_text(model_card(package, repo_id, summary, dataset, license))
    if config_path is not None:
        shutil.copyfile(config_path, out / CONFIG_FILE)
    if summary:
        (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_speechbrain_files(out)
    write_space_files(out, requirement)
    return out


def write_speechbrain_files(out_dir) -> Path:
    """Write ``hyperparams.yaml`` for :class:`~asteroid_unet.speechbrain.UNetSeparator` next to the ``pytorch_model.bin`` in ``out_dir``.

    The model settings are copied from the package, so the YAML and the weights agree.
    Writing it needs no SpeechBrain. Returns the YAML's path.
    """
    out_dir = Path(out_dir)
    weights = out_dir / MODEL_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: export the Asteroid package first")
    conf = load_package(weights)
    args = conf["model_args"]
    lines = [
        "# SpeechBrain interface of asteroid-unet (the package that requirements.txt names):",
        "#   from asteroid_unet.speechbrain import UNetSeparator",
        "#   separator = UNetSeparator.from_hparams(source=<this repo or folder>, savedir=...)",
        f"# The weights are the Asteroid package {MODEL_FILE} next to this file.",
        "",
        f"sample_rate: {json.dumps(args['sample_rate'])}",
        f"targets: {json.dumps(args['targets'])}",
        "",
        f"model: !new:asteroid_unet.{conf['model_name']}",
        "    targets: !ref <targets>",
        "    sample_rate: !ref <sample_rate>",
        *(f"    {k}: {json.dumps(v)}" for k, v in args.items() if k not in ("targets", "sample_rate")),
        "",
        "modules:",
        "    model: !ref <model>",
        "",
        "pretrainer: !new:asteroid_unet.speechbrain.AsteroidPretrainer",
        f"    filename: {MODEL_FILE}",
        "    loadables:",
        "        model: !ref <model>",
        "",
    ]
    path = out_dir / HPARAMS_FILE
    path.write_text("\n".join(lines))
    return path


def upload_folder(folder, repo_id: str, token: Optional[str] = None, private: bool = False,
                  commit_message: str = "Upload asteroid-unet model", space: bool = False) -> str:
    """Create the repo if needed and push ``folder`` with ``huggingface_hub.upload_folder``.

    Returns the commit URL. Needs a token (argument, ``HF_TOKEN`` or ``huggingface-cli login``).
    ``space=True`` pushes it as a Gradio Space (the web page over these weights) instead of a model repo.
    """
    import huggingface_hub

    folder = Path(folder)
    missing = [f for f in (MODEL_FILE, "README.md", *([APP_FILE] if space else [])) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not an exported model folder: missing {missing}")
    repo_type = "space" if space else "model"
    extra = {"space_sdk": "gradio"} if space else {}
    huggingface_hub.create_repo(repo_id, token=token, private=private, repo_type=repo_type, exist_ok=True, **extra)
    commit = huggingface_hub.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type,
                                           token=token, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Export or upload an asteroid-unet model folder.")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write the Hub folder")
    exp.add_argument("--model", required=True,
                     help="Asteroid package (best_model.pth), hub folder or packaged model name (paper, spleeter-2stems)")
    exp.add_argument("--out", required=True)
    exp.add_argument("--repo-id", required=True, help="org/name, used in the model card")
    exp.add_argument("--results", help="summary.json written by the evaluation")
    exp.add_argument("--config", help="training config yaml")
    exp.add_argument("--dataset", default="musdb18")
    exp.add_argument("--license", default="cc-by-nc-sa-4.0")
    exp.add_argument("--requirement", default=APP_REQUIREMENT, help="the Space's pip line for this package")
    up = sub.add_parser("upload", help="push an exported folder to the Hub")
    up.add_argument("--folder", required=True)
    up.add_argument("--repo-id", required=True)
    up.add_argument("--private", action="store_true")
    up.add_argument("--space", action="store_true", help="push as a Gradio Space (the web page) instead of a model")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            summary = json.loads(Path(args.results).read_text()) if args.results else None
            out = export(locate(args.model), args.out, args.repo_id, summary, args.config, args.dataset, args.license,
                         args.requirement)
            print(f"Exported {args.model} to {out}")
        else:
            print(upload_folder(args.folder, args.repo_id, private=args.private, space=args.space))
    except (FileNotFoundError, ValueError, CheckpointError) as err:
        parser.exit(1, f"error: {err}\n")


if __name__ == "__main__":
    main()
