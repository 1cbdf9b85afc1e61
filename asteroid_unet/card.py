"""The model card of an exported model, built from the provenance record its weights carry.

One writer for every export (``python -m asteroid_unet.hub export``, the Asteroid recipe's stage 3,
the SpeechBrain recipe): the metadata is huggingface_hub's :class:`~huggingface_hub.ModelCardData`
(``license``, ``base_model`` for fine-tunes, ``datasets``, ``model-index`` with the measured scores),
and the text says where the weights came from and why the licence is what it is.
"""
from typing import List, Mapping, Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import provenance as prov
from .evaluate import markdown_table

TAGS = ("asteroid", "audio", "audio-to-audio", "source-separation", "music-source-separation", "singing-voice")
JANSSON = ("A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde, *Singing Voice Separation "
           "with Deep U-Net Convolutional Networks*, ISMIR 2017.")
SPLEETER = ("R. Hennequin, A. Khlif, F. Voituret, M. Moussallam, *Spleeter: a fast and efficient music source "
            "separation tool with pre-trained models*, JOSS 5(50), 2154, 2020. Weights: "
            "https://github.com/deezer/spleeter (MIT).")


def card_data(package: Mapping, repo_id: str, licence: str, extra: Optional[Mapping] = None) -> ModelCardData:
    """The card's metadata: licence, base model, training sets, measured scores, and ``extra`` keys
    (a Space's ``sdk``, ``app_file``...)."""
    record = package["model_args"].get("provenance") or {}
    base = record.get("base") or {}
    runs = record.get("training", [])
    datasets = sorted({d["name"] for run in runs for d in run.get("datasets", [])})
    results = [EvalResult(task_type="audio-to-audio", task_name="Singing voice separation",
                          dataset_type=entry["set"].lower().replace(" ", "-"), dataset_name=entry["set"],
                          dataset_split="test" if "test" in entry["set"].lower() else None,
                          metric_type="sdr", metric_name=f"{target} SDR (museval, median)", metric_value=scores["SDR"])
               for entry in record.get("evaluation", []) for target, scores in entry["metrics"].items()
               if "SDR" in scores]
    return ModelCardData(
        library_name="asteroid", tags=list(TAGS), license=licence,
        license_name=prov.RESEARCH_ONLY_NAME if licence == prov.RESEARCH_ONLY else None,
        base_model=(base.get("hub_id") or base.get("name")) if base and runs else None,
        datasets=datasets or None, model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results or None, **dict(extra or {}))


def model_card(package: Mapping, repo_id: str, summary: Optional[Mapping] = None, licence: Optional[str] = None,
               extra_metadata: Optional[Mapping] = None) -> ModelCard:
    """The card (README.md) of the package, for the Hub repo ``repo_id``.

    Args:
        package: an Asteroid package of a UNet (its ``model_args`` carry the provenance record).
        repo_id: ``org/name``, used in the usage lines.
        summary: the evaluation summary of this export (:func:`asteroid_unet.evaluate.summarize`,
            with the MIX, GAIN and IRM rows), shown as a table; None: no table.
        licence: a Hub licence id no looser than the record's inputs allow; None: the record's own
            (:func:`asteroid_unet.provenance.choose_licence`, which raises LicenceError otherwise).
        extra_metadata: more front-matter keys (the Space's).
    """
    record = package["model_args"].get("provenance")
    licence = prov.choose_licence(record, licence)
    data = card_data(package, repo_id, licence, extra_metadata)
    body = [f"# {repo_id.split('/')[-1]}", "", *origin(record), *usage(package, repo_id),
            *model_table(package["model_args"]), *results(record, summary), *licence_section(record, licence),
            "## Reference", "", JANSSON, ""]
    if any("spleeter" in what.lower() for what, _, _ in prov.inputs(record)):
        body += [SPLEETER, ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def origin(record: Optional[Mapping]) -> List[str]:
    """Where the weights came from, in words: base weights, then each training run."""
    if not record or (not record.get("base") and not record.get("training")):
        return ["Singing voice separation with the deep U-Net of Jansson et al. (ISMIR 2017). The origin of these "
                "weights was not recorded.", ""]
    lines = ["Singing voice separation with the deep U-Net of Jansson et al. (ISMIR 2017).", "", "## Origin", ""]
    base = record.get("base")
    if base:
        lines.append(f"- Base weights: **{base['name']}**, {base.get('source', '')} (licence {base['licence']}"
                     + (f"; trained on {base['trained_on']}" if base.get("trained_on") else "")
                     + (f"; sha256 `{base['sha256']}`" if base.get("sha256") else "") + ").")
    else:
        lines.append("- Trained from scratch (no base weights).")
    for i, run in enumerate(record.get("training", []), 1):
        data = "; ".join(f"{d['name']} ({d['tracks']} tracks, {d['hours']:.2f} h, {d['licence']})"
                         for d in run.get("datasets", []))
        lines.append(f"- Training run {i} ({run.get('date', '')}): {run['steps']} steps with {run['recipe']}, "
                     f"on {data or 'unrecorded data'}.")
    if base and not record.get("training"):
        lines.append("- Not trained further by asteroid-unet: the weights are the base weights, converted.")
    return lines + ["", "The full record is in the weights: `asteroid-unet info pytorch_model.bin`.", ""]


def usage(package: Mapping, repo_id: str) -> List[str]:
    args = package["model_args"]
    channels = args.get("audio_channels", 1)
    network_input = "the mono downmix" if channels == 1 else f"{channels} channels"
    return [
        "## Usage", "",
        "```python",
        "import asteroid_unet  # registers UNet with Asteroid",
        "from asteroid.models import BaseModel",
        "",
        f'model = BaseModel.from_pretrained("{repo_id}")',
        'model.separate("song.wav")  # writes song_est1.wav (vocals) and song_est2.wav (accompaniment)',
        "```", "",
        "The stems are full band, at the file's own rate and channel count, and sum to the input: the",
        f"same as `asteroid-unet separate song.wav --model {repo_id}` or `asteroid-infer {repo_id} --files song.wav`.",
        f"The network itself runs on {network_input} at {args['sample_rate']:g} Hz. With SpeechBrain, the",
        "`hyperparams.yaml` of this folder loads with `asteroid_unet.speechbrain.UNetSeparator.from_hparams`.", "",
    ]


def model_table(args: Mapping) -> List[str]:
    return ["## Model", "", "| argument | value |", "|---|---|",
            *[f"| {k} | {v} |" for k, v in args.items() if k != "provenance"], ""]


def results(record: Optional[Mapping], summary: Optional[Mapping]) -> List[str]:
    """The scores recorded in the weights, and this export's evaluation table."""
    lines = []
    evaluations = (record or {}).get("evaluation", [])
    if evaluations:
        lines += ["## Results", "", "museval (BSSEval v4) SDR, median over 1 s windows, then over tracks, in dB:", "",
                  "| evaluation set | tracks | vocals | accompaniment |", "|---|---|---|---|"]
        for e in evaluations:
            cells = [f"{e['metrics'].get(t, {}).get('SDR', float('nan')):.2f}" for t in ("vocals", "accompaniment")]
            lines.append(f"| {e['set']} | {e['tracks']} | " + " | ".join(cells) + " |")
        lines.append("")
    if summary:
        n_tracks = max((row.get("n_tracks", 0) for row in summary.values()), default=0)
        lines += ["### This export's evaluation", "",
                  f"Median over 1 s windows, then over {n_tracks} tracks, in dB. `MIX` is the mixture as estimate, "
                  "`GAIN` the best constant split of the mixture (the honest floor: museval's SDR is not "
                  "scale-invariant), `IRM` the oracle ratio mask at the model's STFT (ceiling).", "",
                  markdown_table(summary)]
    return lines


def licence_section(record: Optional[Mapping], licence: str) -> List[str]:
    """The licence and, input by input, why."""
    _, reasons = prov.licence_of(record)
    words = "research use only" if licence == prov.RESEARCH_ONLY else f"`{licence}`"
    return ["## Licence", "",
            f"These weights are licensed **{words}**: the most restrictive of what they were made from.", "",
            *[f"- {reason}" for reason in reasons], "",
            "The asteroid-unet code is MIT.", ""]
