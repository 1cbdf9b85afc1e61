"""SpeechBrain inference interface: one hub folder and one weights file for both toolkits.

An Asteroid hub folder holds ``pytorch_model.bin`` (the ``UNet.serialize()`` dict).
:func:`write_speechbrain_files` adds a ``hyperparams.yaml`` whose ``pretrainer`` reads
that same file, so the folder (or its Hugging Face repo) loads with

>>> from asteroid_unet.speechbrain import UNetSeparator  # doctest: +SKIP
>>> sep = UNetSeparator.from_hparams(source="org/unet-musdb", savedir="pretrained/unet")  # doctest: +SKIP
>>> est = sep.separate_file("song.wav")  # (channels, time, n_stems) at the file's rate  # doctest: +SKIP

Command line: ``python -m asteroid_unet.speechbrain HUB_FOLDER``.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional

import torch

try:
    from speechbrain.dataio import audio_io
    from speechbrain.inference.interfaces import Pretrained
    from speechbrain.utils.fetching import FetchSource
    from speechbrain.utils.parameter_transfer import Pretrainer
except ImportError as err:
    if __name__ == "__main__":  # the command line: one line, as the other entry points say it
        sys.exit(f"asteroid_unet.speechbrain: error: needs the [speechbrain] extra: pip install '.[speechbrain]' "
                 f"in the asteroid-unet folder ({err})")
    raise

from .hub import MODEL_FILE as WEIGHTS_FILE
from .hub import write_speechbrain_files
from .model import UNet
from .separate import separate
from .weights import load_package


class UNetSeparator(Pretrained):
    """Separates music into the model's targets (default vocals and accompaniment).

    Load with ``UNetSeparator.from_hparams(source=<folder or HF repo id>, savedir=...)``.
    Outputs follow SpeechBrain's separation layout ``(batch, time, n_stems)``, in the order
    of :attr:`targets`. They are the stems of :func:`asteroid_unet.separate`, the same as
    the ``asteroid-unet`` command and Asteroid's ``separate``: :meth:`separate_file` gives
    them full band at the file's own rate and channel count.
    """

    MODULES_NEEDED = ["model"]

    @property
    def targets(self) -> list:
        """Target names, in output order."""
        return list(self.mods.model.targets)

    @property
    def sample_rate(self) -> int:
        """Rate in Hz of the inputs and outputs of :meth:`separate_batch` (the model's rate)."""
        return int(self.mods.model.sample_rate)

    def separate_batch(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate mono mixtures ``(batch, time)`` at :attr:`sample_rate` into ``(batch, time, n_stems)``."""
        mix = torch.as_tensor(mix)
        if mix.ndim != 2:
            raise ValueError(f"separate_batch expects (batch, time), got shape {tuple(mix.shape)}")
        with torch.no_grad():
            return self.mods.model.forward_wav(mix.to(self.device, torch.float32)).transpose(1, 2)

    def separate_file(self, path, wiener_iterations: Optional[int] = None, tta: Optional[bool] = None) -> torch.Tensor:
        """Separate an audio file (any rate soundfile reads) into ``(channels, time, n_stems)``,
        full band at the file's own rate (``soundfile.info(path).samplerate``); ``wiener_iterations``
        and ``tta`` as in :func:`asteroid_unet.separate` (default: the model's own settings)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No such audio file: {path}")
        audio, rate = audio_io.load(str(path))  # (channels, time)
        if audio.shape[-1] == 0:
            raise ValueError(f"{path}: the file holds no samples")
        stems = separate(audio, rate, self.mods.model, device=str(self.device), wiener_iterations=wiener_iterations,
                         tta=tta)
        return torch.stack(list(stems.values()), dim=-1)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`separate_batch`."""
        return self.separate_batch(mix)


class AsteroidPretrainer(Pretrainer):
    """A ``Pretrainer`` that loads every loadable from an Asteroid package (``pytorch_model.bin``).

    Without explicit ``paths``, the file is fetched from the interface's source (local
    folder or Hugging Face repo, through SpeechBrain's fetching and the standard HF cache).

    Args:
        loadables (dict): name -> :class:`UNet` to load.
        filename (str): the package file in the source. Default ``"pytorch_model.bin"``.
        **kwargs: passed to ``Pretrainer`` (``collect_in``, ``paths``, ...).
    """

    def __init__(self, loadables=None, filename=WEIGHTS_FILE, **kwargs):
        super().__init__(loadables=loadables, **kwargs)
        self.filename = filename
        for name in self.loadables:
            self.custom_hooks.setdefault(name, load_asteroid_package)

    def collect_files(self, default_source=None, **kwargs):
        """Point loadables without a path at ``<default_source>/<filename>``, then collect."""
        if default_source is not None:
            for name in self.loadables:
                self.paths.setdefault(name, _join_source(default_source, self.filename))
        return super().collect_files(default_source=default_source, **kwargs)


def load_asteroid_package(model: UNet, path) -> None:
    """Load the weights of an Asteroid package file into ``model``, built from the YAML.

    Raises ValueError when the file is not a ``UNet`` package or was built with other settings.
    """
    conf = load_package(path)
    expected = model.get_model_args()
    differ = {k: (conf["model_args"].get(k), v) for k, v in expected.items() if conf["model_args"].get(k) != v}
    if differ:
        raise ValueError(f"{path} and the hyperparams disagree on (file, yaml): {differ}")
    model.load_state_dict(conf["state_dict"])


def _join_source(source, filename):
    if isinstance(source, FetchSource):
        return FetchSource(source.FetchFrom, f"{source.path}/{filename}")
    return f"{str(source).rstrip('/')}/{filename}"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Add SpeechBrain's hyperparams.yaml to an Asteroid hub folder.")
    parser.add_argument("folder", help=f"folder holding {WEIGHTS_FILE}")
    print(write_speechbrain_files(parser.parse_args(argv).folder))


if __name__ == "__main__":
    main()
