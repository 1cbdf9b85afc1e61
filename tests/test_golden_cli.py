"""The stems of ``asteroid-unet separate`` against golden values (``tests/create_golden_cli.py``):
both packaged models, a stereo song and a mono file, with and without the Wiener filter."""
import json

import numpy as np
import pytest

from create_golden_cli import GOLDEN, compute


@pytest.fixture(scope="module")
def now():
    return compute()


@pytest.mark.parametrize("model", ["spleeter-2stems", "paper"])
def test_cli_stems_match_the_golden_values(now, model):
    stored = json.loads(GOLDEN.read_text())[model]
    assert now[model].keys() == stored.keys()
    for setting, inputs in stored.items():
        for kind, stems in inputs.items():
            assert now[model][setting][kind].keys() == stems.keys(), (setting, kind)
            for name, golden in stems.items():
                got = now[model][setting][kind][name]
                where = f"{model} {setting} {kind} {name}"
                assert (got["rate"], got["shape"]) == (golden["rate"], golden["shape"]), where
                for key in ("rms", "samples"):
                    np.testing.assert_allclose(got[key], golden[key], rtol=1e-4, atol=1e-6, err_msg=f"{where} {key}")
