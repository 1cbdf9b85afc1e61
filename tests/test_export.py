"""The supported export: the mask network on fixed-size patches (the waveform forward's patching
depends on the input's length, so a trace of it holds for one length only)."""
import pytest
import torch

from helpers import paper_model_with_statistics


@pytest.fixture(scope="module")
def paper_model():
    return paper_model_with_statistics()


def test_scripted_mask_net_matches_eager_on_any_batch_and_patch_size(paper_model):
    scripted = torch.jit.script(paper_model.masker)
    with torch.no_grad():
        for shape in ((1, 1, 512, 128), (3, 1, 512, 128), (2, 1, 512, 256)):
            patches = torch.rand(*shape)
            torch.testing.assert_close(scripted(patches), paper_model.masker(patches), rtol=0, atol=1e-6)


def test_exported_mask_net_matches_eager_with_a_dynamic_batch(small_model):
    patches = torch.rand(2, 1, 128, 32)
    batch = torch.export.Dim("batch", min=1, max=1024)
    exported = torch.export.export(small_model.masker.eval(), (patches,), dynamic_shapes=({0: batch},))
    with torch.no_grad():
        for n in (1, 5):
            x = torch.rand(n, 1, 128, 32)
            torch.testing.assert_close(exported.module()(x), small_model.masker(x), rtol=0, atol=1e-6)


def test_exported_mask_net_separates_like_the_model(small_model):
    """Patches -> exported mask net -> the model's masks: the export is all a runtime needs of the network."""
    magnitude = torch.rand(1, 128, 64) * 10
    exported = torch.export.export(small_model.masker.eval(), (torch.rand(3, 1, 128, 32),),
                                   dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    with torch.no_grad():
        expected = small_model.masks_from_magnitude(magnitude)
        small_model.masker = exported.module()
        torch.testing.assert_close(small_model.masks_from_magnitude(magnitude), expected, rtol=0, atol=1e-6)
