"""Test helpers importable from any test module (pytest puts tests/ on sys.path)."""
import shutil

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_hf_cache(cache_dir, repo_id, model_file, revision="main"):
    """Lay out a file the way ``hf_hub_download`` caches it (refs, snapshots); returns the commit."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / revision).write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    shutil.copy(model_file, snapshot / "pytorch_model.bin")
    return COMMIT


def load_from_offline_hub(cache_dir, repo_id, model_file, attribute):
    """In a fresh process with only ``ASTEROID_CACHE`` and ``HF_HUB_OFFLINE=1`` set, load ``repo_id``
    from a cache populated with ``model_file`` through ``BaseModel.from_pretrained``.

    Returns what it prints: the class name and ``str(model.<attribute>)``.
    """
    import os
    import subprocess
    import sys

    populate_hf_cache(cache_dir, repo_id, model_file)
    env = dict(os.environ, ASTEROID_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    code = ("import asteroid_unet; from asteroid.models import BaseModel; "
            f"m = BaseModel.from_pretrained({repo_id!r}); print(type(m).__name__, m.{attribute})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, payload):
    """A length-delimited (bytes) or varint (int) protobuf field."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _table_block(entries):
    """A LevelDB block of sorted ``(key, value)`` pairs, unshared keys, one restart point, with its trailer."""
    from asteroid_unet.spleeter import _masked_crc

    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    body += (0).to_bytes(4, "little") + (1).to_bytes(4, "little")
    return body, b"\x00" + _masked_crc(body + b"\x00").to_bytes(4, "little")


def write_tf_checkpoint(folder, tensors):
    """Write ``{name: float32 array}`` as a single-shard TensorFlow checkpoint ``folder/model.{index,data-00000-of-00001}``."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    data, entries = bytearray(), [(b"", _field(1, 1))]  # bundle header: one shard
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype="<f4")
        shape = b"".join(_field(2, _field(1, int(n))) for n in array.shape)
        entry = _field(1, 1) + _field(2, shape) + _field(4, len(data)) + _field(5, array.nbytes)
        entries.append((name.encode(), entry))
        data += array.tobytes()
    (folder / "model.data-00000-of-00001").write_bytes(bytes(data))
    table = bytearray()
    handles = []
    for block_entries in (entries, []):  # the data block, then the (empty) metaindex block
        body, trailer = _table_block(block_entries)
        handles.append(_varint(len(table)) + _varint(len(body)))
        table += body + trailer
    body, trailer = _table_block([(entries[-1][0], handles[0])])  # the index block
    handles.append(_varint(len(table)) + _varint(len(body)))
    table += body + trailer
    footer = (handles[1] + handles[2]).ljust(40, b"\x00") + (0xDB4775248B80FB57).to_bytes(8, "little")
    (folder / "model.index").write_bytes(bytes(table + footer))


def spleeter_variables(model):
    """Spleeter's TF variable names and layouts for the U-Nets of a Spleeter-shaped ``UNet``
    (the naming rule, written out independently of the converter)."""
    variables = {}
    counts = {"conv2d": 0, "conv2d_transpose": 0, "batch_normalization": 0}

    def name(kind):
        index = counts[kind]
        counts[kind] += 1
        return kind + (f"_{index}" if index else "")

    def norm(module, prefix):
        for tf_name, value in (("gamma", module.weight), ("beta", module.bias),
                               ("moving_mean", module.running_mean), ("moving_variance", module.running_var)):
            variables[f"{prefix}/{tf_name}"] = value.detach().numpy()

    for unet in model.masker.unets:  # Keras creation order: conv, norm per encoder block; then decoder; then last
        for block in unet.encoder:
            conv = name("conv2d")
            variables[f"{conv}/kernel"] = block.conv.weight.detach().permute(3, 2, 1, 0).numpy()
            variables[f"{conv}/bias"] = block.conv.bias.detach().numpy()
            bn = name("batch_normalization")
            if hasattr(block.norm, "weight"):
                norm(block.norm, bn)
            else:  # the bottleneck's norm: in the checkpoint, unused by the graph
                import numpy as np

                width = block.conv.out_channels
                for tf_name, value in (("gamma", 1), ("beta", 0), ("moving_mean", 0), ("moving_variance", 1)):
                    variables[f"{bn}/{tf_name}"] = np.full(width, value, dtype=np.float32)
        for block in unet.decoder:
            deconv = name("conv2d_transpose")
            variables[f"{deconv}/kernel"] = block.conv.weight.detach().permute(3, 2, 1, 0).numpy()
            variables[f"{deconv}/bias"] = block.conv.bias.detach().numpy()
            norm(block.norm, name("batch_normalization"))
        conv = name("conv2d")
        variables[f"{conv}/kernel"] = unet.last.weight.detach().permute(3, 2, 1, 0).numpy()
        variables[f"{conv}/bias"] = unet.last.bias.detach().numpy()
    return variables


def small_spleeter_model(targets=("vocals", "accompaniment"), seed=0):
    """A Spleeter-shaped UNet (all of Spleeter's options) with few filters, a small band and short
    patches, random weights and non-trivial batch-norm statistics: fast, for tests."""
    import torch

    from asteroid_unet.model import UNet, spleeter_args

    torch.manual_seed(seed)
    args = dict(spleeter_args(targets), first_channels=2, n_bins=256, patch_frames=64, patch_hop=64)
    model = UNet(**args)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def voice_and_backing(seconds=8.0, seed=0):
    """A known voice-like source and a known backing, mono float64 at 44.1 kHz, each peaking at 0.1.

    The voice is ``asteroid_unet.synth``'s formant singing of a fixed 12-note melody; the
    backing is four decaying triads with a bass line and noise beats every 0.5 s.
    """
    import numpy as np

    from asteroid_unet.synth import RATE, Note, sing

    rng = np.random.default_rng(seed)
    pitches = [67, 69, 71, 72, 71, 69, 67, 64, 65, 67, 69, 67]
    step = seconds / len(pitches)
    line = [Note(i * step + 0.05, (i + 1) * step - 0.08, p, 100) for i, p in enumerate(pitches)]
    voice = sing(line, seconds, rng).astype(np.float64)
    n = voice.size
    t = np.arange(n) / RATE
    backing = np.zeros(n)
    for i, chord in enumerate([(48, 52, 55), (53, 57, 60), (55, 59, 62), (48, 52, 55)]):
        a, b = i * n // 4, (i + 1) * n // 4
        seg = t[a:b] - t[a]
        for pitch in chord:
            f = 440 * 2 ** ((pitch - 69) / 12)
            backing[a:b] += sum(np.sin(2 * np.pi * k * f * seg) / k**1.5 for k in range(1, 6)) * np.exp(-seg / 1.5)
        backing[a:b] += 0.8 * np.sin(2 * np.pi * 440 * 2 ** ((chord[0] - 81) / 12) * seg)
    beats = (np.mod(t, 0.5) < 0.06) * rng.standard_normal(n) * np.exp(-np.mod(t, 0.5) / 0.02)
    backing = 0.1 * backing / np.abs(backing).max() + 0.15 * beats
    return 0.1 * voice / np.abs(voice).max(), backing


def paper_model_with_statistics(seed=0):
    """The paper-size UNet with random weights and non-trivial batch-norm statistics, as after training."""
    import torch

    from asteroid_unet import UNet

    torch.manual_seed(seed)
    model = UNet().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


def below(x, rate: float, top_hz: float):
    """``x (..., time)`` (a tensor) with every FFT bin at or above ``top_hz`` set to zero."""
    import torch

    spectrum = torch.fft.rfft(x.double())
    spectrum[..., int(top_hz * x.shape[-1] / rate):] = 0
    return torch.fft.irfft(spectrum, x.shape[-1])


def band_sum_error(stems: dict, x, rate: float, top_hz: float) -> float:
    """How far the stems' sum is from the input below ``top_hz``, relative to the input there."""
    total = sum(stems.values())
    return float((below(total, rate, top_hz) - below(x, rate, top_hz)).norm() / below(x, rate, top_hz).norm())


def live_files(root, pattern="*"):
    """The files under ``root`` whose name matches ``pattern``, walked while a server may be deleting
    folders: one that vanishes mid-walk is skipped (``Path.rglob`` raises on it)."""
    import fnmatch
    import os
    from pathlib import Path

    return [Path(folder) / name for folder, _, names in os.walk(root) for name in fnmatch.filter(names, pattern)]


def live_sizes(root):
    """``{path: bytes}`` of the files under ``root``, walked as :func:`live_files` walks; a file deleted
    between the walk and its ``stat`` is left out."""
    sizes = {}
    for path in live_files(root):
        try:
            sizes[path] = path.stat().st_size
        except FileNotFoundError:
            continue
    return sizes


def run_script(script, *args):
    """``python SCRIPT ARGS`` in this process (its folder first on ``sys.path``, as Python puts it);
    what it printed. Saves a fresh interpreter's start-up where the script's own code is under test."""
    import contextlib
    import io
    import runpy
    import sys
    from pathlib import Path
    from unittest import mock

    argv = [str(script), *map(str, args)]
    with mock.patch.object(sys, "argv", argv), mock.patch.object(sys, "path", [str(Path(script).parent), *sys.path]), \
            contextlib.redirect_stdout(io.StringIO()) as stdout:
        runpy.run_path(argv[0], run_name="__main__")
    return stdout.getvalue()
