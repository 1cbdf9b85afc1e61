"""Export a trained UNet package as a Hugging Face Hub folder, and upload it.

Folder layout (what ``BaseModel.from_pretrained("org/name")`` downloads is ``pytorch_model.bin``)::

    pytorch_model.bin      the Asteroid package (``UNet.serialize()``), plain types only, with its
                           provenance record (base weights, training runs, measured scores)
    README.md              model card built from that record (:mod:`asteroid_unet.card`)
    training_config.yaml   the configuration the model was trained with
    results.json           the evaluation summary (when given)
    hyperparams.yaml       the SpeechBrain interface (``UNetSeparator.from_hparams``) over the same weights
    app.py                 the web page (``asteroid_unet/app.py``), serving these weights as a Gradio Space
    requirements.txt       what a Space pip-installs for it: this package's wheel, carried in the folder,
                           with its [app] extra; packages.txt: what it apt-installs (ffmpeg)
    asteroid_unet-*.whl    that wheel

The model card's front matter carries the Space metadata too (``sdk: gradio``, ``app_file: app.py``),
so the same folder uploads as a model repo or as a Space.

Command line::

    python -m asteroid_unet.hub export --model paper --out hub --repo-id me/unet-paper   # a packaged model
    python -m asteroid_unet.hub export --model exp/best_model.pth --out exp/hub \\
        --results exp/eval/summary.json --eval-set "musdb18 test" --config exp/conf.yaml --repo-id org/unet-musdb18
    python -m asteroid_unet.hub upload --folder exp/hub --repo-id org/unet-musdb18
    python -m asteroid_unet.hub upload --folder exp/hub --repo-id org/unet-musdb18-demo --space
"""
import argparse
import base64
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from . import provenance
from .card import model_card
from .errors import one_line
from .weights import CheckpointError, load_package, read_package

MODEL_FILE = "pytorch_model.bin"
HPARAMS_FILE = "hyperparams.yaml"
CONFIG_FILE = "training_config.yaml"
APP_FILE = "app.py"
DISTRIBUTION = "asteroid-unet"
GRADIO_VERSION = "6.31.0"  # the Gradio the page is tested with, as pinned by the [app] extra
APP_SOURCE = Path(__file__).with_name(APP_FILE)  # the page; not imported here, as exports need no [app] extra
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # a checkout's root, where pyproject.toml lies
_SCRATCH: list = []  # the temporary folders of the wheels packed in this process, removed when it exits


def space_metadata(repo_id: str) -> dict:
    """The front matter keys of a Gradio Space running ``app.py``."""
    return {"title": repo_id.split("/")[-1], "sdk": "gradio", "sdk_version": GRADIO_VERSION,
            "python_version": "3.11", "app_file": APP_FILE, "pinned": False}


def write_space_files(out: Path, requirement: Optional[str] = None) -> None:
    """The page's ``app.py`` (this package's own), ``requirements.txt`` and ``packages.txt``.

    ``requirement`` is the pip line that installs this package with its ``[app]`` extra; None: this
    package's own wheel, written into ``out`` (:func:`package_wheel`) and named by a relative path,
    so the Space installs from what it carries plus what PyPI has."""
    if requirement is None:
        wheel = package_wheel(out)
        requirement = f"./{wheel.name}[app]"
    shutil.copyfile(APP_SOURCE, out / APP_FILE)
    (out / "requirements.txt").write_text(requirement + "\n")
    (out / "packages.txt").write_text("ffmpeg\n")  # decodes m4a, mp4 and other formats libsndfile cannot


def package_wheel(out_dir) -> Path:
    """This installed package as a wheel in ``out_dir``: built from the checkout when the package runs
    from one (pip and the project's build backend), else packed from the installed files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = _built_wheel() if (SOURCE_ROOT / "pyproject.toml").is_file() else _installed_wheel()
    shutil.copyfile(wheel, out_dir / wheel.name)
    return out_dir / wheel.name


def _scratch_folder() -> Path:
    """A temporary folder that lives until the process exits (the installed files are packed once per process)."""
    folder = tempfile.TemporaryDirectory(prefix="asteroid-unet-wheel-")
    _SCRATCH.append(folder)
    return Path(folder.name)


WHEEL_SOURCES = ("pyproject.toml", "README.md", "asteroid_unet_hook.py", "asteroid_unet_autoregister.pth", "asteroid_unet")


def _source_fingerprint() -> str:
    """A digest of the names, sizes and modification times of the checkout's files that the wheel is
    built from: it changes whenever one of them does."""
    digest = hashlib.sha256()
    for top in WHEEL_SOURCES:
        path = SOURCE_ROOT / top
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                stat = file.stat()
                digest.update(f"{file.relative_to(SOURCE_ROOT)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _built_wheel() -> Path:
    """The checkout built with ``pip wheel`` (the build backend from the venv when it has it, else the
    isolated build pip sets up), once per state of its files: kept in the user's cache under
    ``space-wheels/<fingerprint>``, so exports after the first reuse it; a new state's wheel replaces
    the older ones there."""
    from .spleeter import cache_dir

    kept = cache_dir() / "space-wheels" / _source_fingerprint()
    wheels = sorted(kept.glob("*.whl"))
    if wheels:
        return wheels[0]
    kept.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".building-", dir=kept.parent))
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(folder),
                          str(SOURCE_ROOT)], capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if run.returncode or not wheels:
        shutil.rmtree(folder, ignore_errors=True)
        raise CheckpointError(f"cannot build the asteroid-unet wheel for the Space ({one_line(run.stderr or 'no wheel')}); "
                              "pass --requirement with a pip line that installs asteroid-unet[app]")
    try:
        folder.rename(kept)  # whole or not at all; another process may have kept its own meanwhile
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
    for older in kept.parent.iterdir():
        if older != kept and not older.name.startswith(".building-"):
            shutil.rmtree(older, ignore_errors=True)
    return sorted(kept.glob("*.whl"))[0]


@functools.lru_cache(maxsize=1)
def _installed_wheel() -> Path:
    """A wheel holding exactly the files that the installed distribution records (pip's RECORD),
    with a new RECORD; files installed outside site-packages (scripts) are left out, as pip
    regenerates them."""
    dist = importlib.metadata.distribution(DISTRIBUTION)
    name = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
    folder = _scratch_folder()
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    rows = []
    with zipfile.ZipFile(folder / name, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.name in skip:
                continue
            data = Path(file.locate()).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        info = next(f.parent for f in dist.files if f.name == "METADATA" and f.parent.name.endswith(".dist-info"))
        record = f"{info.as_posix()}/RECORD"
        archive.writestr(record, "\n".join([*rows, f"{record},,"]) + "\n")
    return folder / name


def export(model, out_dir, repo_id: str, summary: Optional[Mapping] = None, config_path=None,
           license: Optional[str] = None, eval_set: Optional[str] = None, requirement: Optional[str] = None) -> Path:
    """Write the Hub folder of ``model`` into ``out_dir``; returns ``out_dir``.

    Files already in ``out_dir`` (for example the SpeechBrain interface) are kept. The weights are
    written with their provenance record (:mod:`asteroid_unet.provenance`), extended by this
    export's scores, and the card (README.md) is built from that record (:mod:`asteroid_unet.card`).

    Args:
        model: a packaged model name (``paper``, ``spleeter-2stems``), an Asteroid package file
            (``best_model.pth`` from a recipe) or a hub folder.
        out_dir: destination folder.
        repo_id: ``org/name`` used in the model card.
        summary: evaluation summary (:func:`asteroid_unet.evaluate.summarize`), or None; its
            ``UNet`` row is recorded in the weights as the scores on ``eval_set``.
        config_path: the training config (yaml) to include, or None.
        license: a Hub licence id, no looser than the weights' base and training data allow
            (else :class:`~asteroid_unet.provenance.LicenceError`); None: the most restrictive of those.
        eval_set: the name of the evaluation set of ``summary`` (for example ``musdb18 test``).
        requirement: the Space's pip line for this package with its ``[app]`` extra; None: this
            package's wheel, carried in the folder.
    """
    if "/" not in repo_id:
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    package = read_package(model)
    args = package["model_args"]
    if summary and "UNet" in summary:
        row = summary["UNet"]
        args["provenance"] = provenance.with_evaluation(args.get("provenance"), eval_set or "unnamed evaluation set",
                                                        row, row.get("n_tracks", 0))
    extra = space_metadata(repo_id)
    card = model_card(package, repo_id, summary, license, extra)  # refuses a looser licence before writing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(package, out / MODEL_FILE)
    card.save(out / "README.md")
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
    exp.add_argument("--eval-set", help="the name of the evaluation set of --results (e.g. 'musdb18 test')")
    exp.add_argument("--license", help="Hub licence id; default: the most restrictive of the weights' base and "
                                       "training data (a looser one is refused)")
    exp.add_argument("--requirement", help="the Space's pip line for this package with its [app] extra "
                                           "(default: this package's wheel, written into the folder)")
    up = sub.add_parser("upload", help="push an exported folder to the Hub")
    up.add_argument("--folder", required=True)
    up.add_argument("--repo-id", required=True)
    up.add_argument("--private", action="store_true")
    up.add_argument("--space", action="store_true", help="push as a Gradio Space (the web page) instead of a model")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            summary = json.loads(Path(args.results).read_text()) if args.results else None
            out = export(args.model, args.out, args.repo_id, summary, args.config, args.license, args.eval_set,
                         args.requirement)
            print(f"Exported {args.model} to {out}")
        else:
            print(upload_folder(args.folder, args.repo_id, private=args.private, space=args.space))
    except (OSError, ValueError, CheckpointError) as err:
        parser.exit(1, f"error: {err}\n")


if __name__ == "__main__":
    main()
