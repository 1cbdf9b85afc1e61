"""The U-Net's precision: what ``auto`` picks from the machine, and what the reduced network computes."""
import pytest
import torch

from asteroid_unet import precision
from asteroid_unet.masknet import PolyphaseConvTranspose2d
from asteroid_unet.precision import machine_precision, resolve_precision
from asteroid_unet.separator import Separator


@pytest.mark.parametrize("capabilities, expected", [
    ({"amx_bf16": True, "avx512_bf16": False}, "bfloat16"),
    ({"amx_bf16": False, "avx512_bf16": True}, "bfloat16"),
    ({"amx_bf16": False, "avx512_bf16": False, "avx512_f": True}, "float32"),
    ({}, "float32"),  # a CPU whose capabilities PyTorch does not list (ARM, ...)
])
def test_auto_reads_the_cpus_bfloat16_arithmetic_from_torch(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert machine_precision("cpu") == resolve_precision("auto", torch.device("cpu")) == expected


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float16")])
def test_auto_on_a_gpu_is_bfloat16_where_it_has_it_else_float16(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    assert machine_precision("cuda") == expected


def test_explicit_and_pinned_precisions_win_over_the_machine(monkeypatch):
    monkeypatch.setattr(precision, "native_bfloat16_cpu", lambda: True)
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32"
    assert resolve_precision("auto", cpu, model_precision="float32") == "float32"
    assert resolve_precision("bfloat16", cpu, model_precision="float32") == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, float16, got 'half'"):
        resolve_precision("half", cpu)


@pytest.mark.parametrize("kernel, stride, padding, output_padding", [(5, 2, 0, 0), (5, 2, 2, 1), (4, 2, 1, 0), (5, 3, 2, 2)])
def test_a_transposed_convolution_as_a_plain_one_gives_the_same_output(kernel, stride, padding, output_padding):
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(6, 4, kernel, stride, padding=padding, output_padding=output_padding)
    x = torch.randn(2, 6, 7, 5)
    torch.testing.assert_close(PolyphaseConvTranspose2d(conv)(x), conv(x), rtol=1e-5, atol=1e-5)


def test_the_reduced_network_is_cast_once_and_its_masks_stay_close(small_model):
    """Only the U-Net is cast (the STFT filterbanks and the model itself stay float32); its masks come
    back as float32 within bfloat16's rounding of float32's."""
    fast = small_model.for_inference(torch.bfloat16)
    assert {p.dtype for p in fast.masker.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in small_model.parameters()} == {torch.float32}
    assert fast.crossfade.dtype == torch.float32
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in fast.masker.modules())
    patches = torch.rand(3, 1, small_model.n_bins, small_model.patch_frames)
    with torch.inference_mode():
        reduced, full = fast.patch_masks(patches), small_model.for_inference().patch_masks(patches)
    assert reduced.dtype == torch.float32
    torch.testing.assert_close(reduced, full, rtol=0, atol=0.03)
    assert not torch.equal(reduced, full)


def test_the_separator_says_which_precision_it_chose(small_model, monkeypatch):
    monkeypatch.setattr(precision, "native_bfloat16_cpu", lambda: False)
    assert Separator(small_model, 22050).precision == "float32"
    monkeypatch.setattr(precision, "native_bfloat16_cpu", lambda: True)
    chosen = Separator(small_model, 22050)
    assert chosen.precision == "bfloat16"
    assert next(chosen.model.masker.parameters()).dtype == torch.bfloat16
