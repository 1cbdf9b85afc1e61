"""The stems of ``asteroid-unet separate`` against golden values (``tests/create_golden_cli.py``), one set
per precision of the U-Net: both packaged models, a stereo song and a mono file, with and without the
Wiener filter; and the precision that ``--precision auto`` (the default) picks, byte for byte."""
import functools
import json

import numpy as np
import pytest

from asteroid_unet import precision
from asteroid_unet.cli import main as cli_main
from create_golden_cli import GOLDENS, SETTINGS, compute, stem_summary, write_inputs

# float32: float rounding, which differs between CPUs: the paper model's Wiener+TTA stems computed on an
# AMD EPYC (AVX-512) lie up to 3.3e-6 from those stored on an Intel Xeon (AMX), at samples near 0.015.
# bfloat16: another CPU's kernels (AMX, AVX512-BF16, emulated) round the
# network's activations differently: with oneDNN held to AVX-512 without bfloat16 instructions
# (ONEDNN_MAX_CPU_ISA=AVX512_CORE) the stems lay within 5e-5 of the stored ones, float32's up to 3e-3.
TOLERANCES = {"float32": dict(rtol=1e-4, atol=5e-6), "bfloat16": dict(rtol=1e-3, atol=2e-4)}


@functools.lru_cache(maxsize=None)
def stems_in(precision_name: str) -> dict:
    """:func:`compute`'s stems with ``--precision precision_name``, computed once per test session."""
    return compute(precision_name)


@pytest.mark.parametrize("precision_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("model", ["spleeter-2stems", "paper"])
def test_cli_stems_match_the_golden_values_of_their_precision(precision_name, model):
    stems_now = stems_in(precision_name)
    stored = json.loads(GOLDENS[precision_name].read_text())[model]
    assert stems_now[model].keys() == stored.keys()
    for setting, inputs in stored.items():
        for kind, stems in inputs.items():
            assert stems_now[model][setting][kind].keys() == stems.keys(), (setting, kind)
            for name, golden in stems.items():
                got = stems_now[model][setting][kind][name]
                where = f"{precision_name} {model} {setting} {kind} {name}"
                assert (got["rate"], got["shape"]) == (golden["rate"], golden["shape"]), where
                for key in ("rms", "samples"):
                    np.testing.assert_allclose(got[key], golden[key], err_msg=f"{where} {key}",
                                               **TOLERANCES[precision_name])


def test_the_precisions_golden_stems_differ():
    """The bfloat16 goldens are the bfloat16 network's, not float32's again."""
    float32, bfloat16 = (json.loads(GOLDENS[p].read_text())["paper"]["mask"]["stereo"]["vocals"] for p in GOLDENS)
    gap = np.abs(np.array(float32["samples"]) - np.array(bfloat16["samples"])).max()
    assert gap > 5 * TOLERANCES["bfloat16"]["atol"]


@pytest.mark.parametrize("native_bfloat16, same_as", [(False, "float32"), (True, "bfloat16")])
def test_auto_writes_the_bytes_of_the_precision_the_machine_runs_natively(tmp_path, monkeypatch, native_bfloat16,
                                                                          same_as):
    """A CPU without bfloat16 arithmetic (hidden here) gets float32's bytes, one with it bfloat16's."""
    expected = stems_in(same_as)  # first: it also sets the thread count the golden stems are computed with
    monkeypatch.setattr(precision, "native_bfloat16_cpu", lambda: native_bfloat16)
    song = write_inputs(tmp_path)["stereo"]
    for model in ("spleeter-2stems", "paper"):
        outdir = tmp_path / model
        assert cli_main(["separate", str(song), "-o", str(outdir), "--model", model, *SETTINGS["mask"]]) == 0
        for stem, chosen in expected[model]["mask"]["stereo"].items():
            assert stem_summary(outdir / "stereo" / f"{stem}.wav")["sha256"] == chosen["sha256"], (model, stem)
