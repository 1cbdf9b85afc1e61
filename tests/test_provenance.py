"""The provenance record in the weights: kept by every loader, licences derived from it, and printed
by ``asteroid-unet info``."""
import json
import subprocess
import sys

import pytest
import torch
from asteroid.models import BaseModel

from asteroid_unet import UNet, provenance
from asteroid_unet.weights import packaged_provenance

MIT_BASE = {"name": "spleeter-2stems", "licence": "mit", "source": "Deezer"}


def test_every_loader_keeps_the_record(small_model, tmp_path):
    record = provenance.with_training(provenance.record(MIT_BASE), "egs/musdb18",
                                      [provenance.dataset("musdb18", 79, 0.153)], steps=100, config={"lr": 3e-6})
    small_model.provenance = record
    torch.save(small_model.serialize(), tmp_path / "m.pth")
    assert UNet.from_pretrained(str(tmp_path / "m.pth")).provenance == record
    assert BaseModel.from_pretrained(str(tmp_path / "m.pth")).provenance == record  # Asteroid's own loader
    assert UNet.for_training(str(tmp_path / "m.pth")).provenance == record
    assert torch.load(tmp_path / "m.pth", weights_only=True)["model_args"]["provenance"] == record


def test_a_record_must_be_json_plain(small_model):
    with pytest.raises(ValueError, match="JSON-plain"):
        UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128, provenance={"x": torch.ones(1)})
    with pytest.raises(ValueError, match="JSON-plain"):
        UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128, provenance={"x": float("nan")})


def test_a_training_run_appends_and_keeps_the_base_scores_with_it():
    base = packaged_provenance("spleeter-2stems")
    tuned = provenance.with_training(base, "egs/musdb18", [provenance.dataset("musdb18", 2, 0.01)], steps=2)
    assert tuned["base"] == base["base"] and len(tuned["training"]) == 1 and tuned["evaluation"] == []
    assert tuned["training"][0]["evaluation_before"] == base["evaluation"]
    scored = provenance.with_evaluation(tuned, "musdb18 test", {"vocals": {"SDR": 7.5, "SIR": float("nan")},
                                                                "n_tracks": 25}, 25)
    assert scored["evaluation"][0]["metrics"] == {"vocals": {"SDR": 7.5}} and scored["evaluation"][0]["tracks"] == 25
    assert base["training"] == []  # the input record is not changed


@pytest.mark.parametrize("base, data, expected", [
    (MIT_BASE, [], "mit"),
    (MIT_BASE, ["musdb18"], "other"),               # MUSDB18: research use only
    (MIT_BASE, ["wesnoth-1.16-music"], "gpl-2.0"),
    (None, ["mir-1k", "wesnoth-1.16-music"], "other"),
    (MIT_BASE, ["someone's folder"], "other"),      # unknown terms count as research use only
])
def test_the_licence_is_the_most_restrictive_input(base, data, expected):
    record = provenance.record(base)
    if data:
        record = provenance.with_training(record, "r", [provenance.dataset(n, 1, 0.1) for n in data], steps=1)
    licence, reasons = provenance.licence_of(record)
    assert licence == expected and len(reasons) == (1 if base else 0) + len(data)
    assert provenance.choose_licence(record) == expected
    assert provenance.choose_licence(record, "other") == "other"  # stricter is always allowed
    if expected != "mit":
        with pytest.raises(provenance.LicenceError, match="looser than the weights allow"):
            provenance.choose_licence(record, "mit")
    with pytest.raises(provenance.LicenceError, match="not one of"):
        provenance.choose_licence(record, "wtfpl-9")


def test_unrecorded_weights_are_research_use_only():
    assert provenance.licence_of(None) == ("other", ["weights of unrecorded origin: other (" +
                                                     provenance.UNKNOWN_TERMS + ")"])


def run_info(*args):
    return subprocess.run([sys.executable, "-m", "asteroid_unet", "info", *args], capture_output=True, text=True,
                          timeout=300)


def info_here(capsys, *args):
    """``asteroid-unet info`` in this process: ``(exit status, stdout, stderr)``."""
    from asteroid_unet.cli import main

    try:
        status = main(["info", *args])
    except SystemExit as exit_info:
        status = exit_info.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_info_prints_the_record_and_its_licence(capsys):
    out = run_info("paper")  # the command, once
    assert out.returncode == 0, out.stderr
    assert "licence: other (research use only), from:" in out.stdout
    assert "training run 1 on mir-1k (90 tracks, 1.83 h): other" in out.stdout
    assert "training run 1 on wesnoth-1.16-music (39 tracks, 2.12 h): gpl-2.0" in out.stdout
    status, stdout, _ = info_here(capsys, "paper", "--json")
    assert status == 0 and json.loads(stdout) == packaged_provenance("paper")
    status, _, stderr = info_here(capsys, "no/such-model-here.pth")
    assert status == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
