"""The packaged paper weights (``load_model("paper")``): load offline, are the paper's UNet, and separate a real song.

The Falcon 69 preview (real MUSDB18 audio shipped in the stempeg wheel, never trained on)
is separated through ``asteroid_unet.separate`` and scored with museval: the vocals SDR
must beat the MIX floor (the mixture as the vocals estimate).
"""
import warnings

import numpy as np
import pytest
import torch

from asteroid_unet import UNet
from asteroid_unet.model import load_model
from asteroid_unet.weights import packaged_path

pytestmark = pytest.mark.skipif(not packaged_path("paper").is_file(), reason="this build ships no paper weights")

PAPER = dict(sample_rate=8192.0, n_fft=1024, hop_length=768, n_bins=512, patch_frames=128, n_layers=6,
             first_channels=16, kernel_size=5, stride=2)


def test_paper_weights_load_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "untrained model" warning
        model = load_model("paper")
    assert isinstance(model, UNet) and not model.training
    args = model.get_model_args()
    assert {k: args[k] for k in PAPER} == PAPER
    assert list(model.targets) == ["vocals", "accompaniment"]
    assert sum(p.numel() for p in model.parameters()) > 9_000_000
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    # The file is the fp16 copy, about 20 MB.
    assert packaged_path("paper").stat().st_size < 25e6
    # UNet.from_pretrained takes the name as well.
    same = UNet.from_pretrained("paper")
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values()))


def test_paper_weights_separate_falcon69_above_mix():
    from asteroid_unet.demo import PREVIEW, true_stems
    from asteroid_unet.evaluate import bss_eval
    from asteroid_unet.separate import separate

    refs, rate = true_stems(PREVIEW)
    mixture = refs["vocals"] + refs["accompaniment"]
    torch.set_num_threads(2)
    stems = separate(torch.from_numpy(mixture.T.astype(np.float32)), rate, load_model("paper"))
    estimates = {k: stems[k].numpy().T for k in refs}
    model_scores = bss_eval(refs, estimates, rate)
    mix_scores = bss_eval(refs, {k: mixture for k in refs}, rate)
    assert model_scores["vocals"]["SDR"] > mix_scores["vocals"]["SDR"] + 3.0
