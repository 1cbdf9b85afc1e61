"""Where a model's weights came from: a small, JSON-plain record that the weights carry.

The record is the ``provenance`` argument of :class:`~asteroid_unet.UNet`, so it is saved with the
model arguments, survives ``from_pretrained`` (Asteroid's and ours) and SpeechBrain's
``hyperparams.yaml``, and is printed by ``asteroid-unet info MODEL``::

    {"base": {"name", "licence", "source", "url", "sha256", "trained_on"} or None,
     "training": [{"recipe", "config", "steps", "epochs", "datasets": [{"name", "licence", "terms",
                   "tracks", "hours"}], "date"}],
     "evaluation": [{"set", "tracks", "metrics": {target: {"SDR": dB, ...}}, "date"}]}

Each training run appends to ``training`` (the recipes do it when they save a model) and each
export with scores appends to ``evaluation``. The licence of the weights follows the most
restrictive of the base weights' licence and every training set's (:func:`licence_of`).
"""
import copy
import datetime
import json
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# Hugging Face Hub licence ids, from the least to the most restrictive. ``other`` stands for
# research use only, the terms of MUSDB18 and MIR-1K.
LICENCE_RANK = {
    "mit": 0, "apache-2.0": 0, "bsd-3-clause": 0, "cc0-1.0": 0,
    "cc-by-3.0": 1, "cc-by-4.0": 1,
    "cc-by-sa-3.0": 2, "cc-by-sa-4.0": 2, "gpl-2.0": 2, "gpl-3.0": 2,
    "cc-by-nc-4.0": 3,
    "cc-by-nc-sa-4.0": 4,
    "other": 5,
}
RESEARCH_ONLY = "other"
RESEARCH_ONLY_NAME = "research-use-only"

# Training sets the recipes know by name: licence (a key of LICENCE_RANK) and terms in words.
DATASETS: Dict[str, Tuple[str, str]] = {
    "musdb18": (RESEARCH_ONLY, "MUSDB18 (sigsep): non-commercial research use only; its tracks are "
                               "under CC BY-NC-SA and other terms"),
    "mir-1k": (RESEARCH_ONLY, "MIR-1K (MIR Lab, National Tsing Hua University): free for research use only"),
    "wesnoth-1.16-music": ("gpl-2.0", "Battle for Wesnoth 1.16 music (Debian's wesnoth-1.16-music): GPL-2+"),
    "synthetic-musdb18": ("gpl-2.0", "rendered by asteroid_unet.synth from Debian's openttd-openmsx MIDI "
                                     "files (GPL-2.0) with the FluidR3 GM soundfont (MIT)"),
}
UNKNOWN_TERMS = "licence not recorded: treated as research use only"


class LicenceError(ValueError):
    """A licence looser than the inputs allow, or one the Hub does not know."""


def today() -> str:
    return datetime.date.today().isoformat()


def checked(record: Optional[Mapping]) -> Optional[dict]:
    """A deep copy of ``record`` (None stays None); raises ValueError unless it is JSON-plain."""
    if record is None:
        return None
    try:
        plain = json.loads(json.dumps(record, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"provenance must be JSON-plain (str, int, float, bool, list, dict): {err}") from None
    if plain != record or not isinstance(plain, dict):
        raise ValueError("provenance must be a dict of JSON-plain values with string keys")
    return plain


def record(base: Optional[Mapping] = None) -> dict:
    """A new record: ``base`` weights (None: trained from scratch), no training, no evaluation."""
    return {"base": copy.deepcopy(dict(base)) if base else None, "training": [], "evaluation": []}


def dataset(name: str, tracks: int, hours: float, licence: Optional[str] = None, terms: Optional[str] = None,
            validation_tracks: Optional[int] = None) -> dict:
    """One training set of a run. A name in :data:`DATASETS` brings its licence and terms; an unknown
    one without ``licence`` counts as research use only."""
    known = DATASETS.get(name.lower())
    if licence is None:
        licence, terms = known if known else (RESEARCH_ONLY, terms or UNKNOWN_TERMS)
    entry = {"name": name, "licence": licence, "terms": terms or (known[1] if known else ""),
             "tracks": int(tracks), "hours": round(float(hours), 3)}
    if validation_tracks is not None:
        entry["validation_tracks"] = int(validation_tracks)
    return entry


def with_training(prov: Optional[Mapping], recipe: str, datasets: Sequence[Mapping], steps: int,
                  config: Optional[Mapping] = None, epochs: Optional[int] = None) -> dict:
    """``prov`` (None: a new record) with one more training run appended."""
    out = copy.deepcopy(dict(prov)) if prov else record()
    run = {"recipe": recipe, "config": dict(config or {}), "steps": int(steps), "epochs": epochs,
           "datasets": [dict(d) for d in datasets], "date": today()}
    if out.get("evaluation"):  # the scores of the weights this run started from, kept with the run
        run["evaluation_before"] = out["evaluation"]
    out["training"] = [*out.get("training", []), run]
    out["evaluation"] = []
    return checked(out)


def with_evaluation(prov: Optional[Mapping], set_name: str, scores: Mapping, tracks: int,
                    command: Optional[str] = None) -> dict:
    """``prov`` with the model's museval medians on ``set_name`` appended; ``scores`` is
    ``{target: {metric: dB}}`` (one row of :func:`asteroid_unet.evaluate.summarize`)."""
    out = copy.deepcopy(dict(prov)) if prov else record()
    metrics = {t: {m: round(float(v), 3) for m, v in s.items() if v is not None and v == v}
               for t, s in scores.items() if isinstance(s, Mapping)}
    entry = {"set": set_name, "tracks": int(tracks), "metrics": metrics, "date": today()}
    if command:
        entry["command"] = command
    out["evaluation"] = [*out.get("evaluation", []), entry]
    return checked(out)


def inputs(prov: Optional[Mapping]) -> List[Tuple[str, str, str]]:
    """``(what, licence, terms)`` of everything the weights were made from: the base weights, then
    every training set. An empty or missing record gives one unknown input."""
    if not prov or (not prov.get("base") and not prov.get("training")):
        return [("weights of unrecorded origin", RESEARCH_ONLY, UNKNOWN_TERMS)]
    found = []
    base = prov.get("base")
    if base:
        found.append((f"base weights {base.get('name', '?')}", base.get("licence", RESEARCH_ONLY),
                      base.get("source", "")))
    for i, run in enumerate(prov.get("training", []), 1):
        for d in run.get("datasets", []):
            found.append((f"training run {i} on {d['name']} ({d.get('tracks', '?')} tracks, "
                          f"{d.get('hours', 0):.2f} h)", d.get("licence", RESEARCH_ONLY), d.get("terms", "")))
    return found


def licence_of(prov: Optional[Mapping]) -> Tuple[str, List[str]]:
    """The Hub licence id of weights with this record (the most restrictive input's) and one line per
    input saying what it brings."""
    found = inputs(prov)
    licence = max((lic for _, lic, _ in found), key=lambda lic: LICENCE_RANK.get(lic, LICENCE_RANK[RESEARCH_ONLY]))
    if licence not in LICENCE_RANK:
        licence = RESEARCH_ONLY
    return licence, [f"{what}: {lic}{f' ({terms})' if terms else ''}" for what, lic, terms in found]


def choose_licence(prov: Optional[Mapping], requested: Optional[str] = None) -> str:
    """``requested`` if it is no looser than the inputs allow (None: the inputs' own licence);
    else a one-line :class:`LicenceError` saying why."""
    derived, _ = licence_of(prov)
    if requested is None:
        return derived
    requested = requested.lower()
    if requested not in LICENCE_RANK:
        raise LicenceError(f"licence {requested!r} is not one of {', '.join(LICENCE_RANK)}")
    if LICENCE_RANK[requested] < LICENCE_RANK[derived]:
        strictest = [what for what, lic, _ in inputs(prov) if lic == derived]
        raise LicenceError(f"licence {requested} is looser than the weights allow: {strictest[0]} is {derived}"
                           f"{' (research use only)' if derived == RESEARCH_ONLY else ''}; "
                           f"leave --license out or give {derived}")
    return requested
