"""The web page: drop or record a song, listen to its stems, see their spectrograms, download them.

Run it with ``asteroid-unet app`` (needs the ``[app]`` extra). The same file is the ``app.py``
of a Hugging Face Space (``python app.py``): ``hub export`` copies it next to the weights,
which it then serves by default.

Separation goes through :func:`asteroid_unet.separate.separate_file`, as on the command line:
full band, at the input's rate and channel count, in chunks.

The page is built to face the public: :mod:`asteroid_unet.guard` holds its rules of who may call
what (the routes it serves, session ids bound to an owner cookie), and :mod:`asteroid_unet.visitors`
the visitors' secret folders, jobs and disk quotas. Limits (length, work budget, upload size, Hub
model size, disk room) are checked before any decoding or download.
"""
import argparse
import functools
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check: the page works offline
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# Absolute imports: this file also runs on its own, as a Space's app.py.
from asteroid_unet.audio import (AUDIO_EXTENSIONS, AtomicWriter, AudioError, AudioReader, check_file,  # noqa: E402
                                 decode_to_wav, probe)
from asteroid_unet.budget import MAX_CHANNELS, WorkBudget  # noqa: E402
from asteroid_unet.errors import CheckpointError, Refusal, one_line  # noqa: E402
from asteroid_unet.files import Cancelled, output_name, separate_file  # noqa: E402
from asteroid_unet.guard import SessionGuard  # noqa: E402
from asteroid_unet.visitors import (DISK_QUOTA, IDLE_SECONDS, SESSION_QUOTA, Sessions, megabytes,  # noqa: E402
                                    remove_empty, sweep_before, sweep_empty_temp_files, sweep_strays)
from asteroid_unet.memory import return_freed_memory  # noqa: E402
from asteroid_unet.spectrogram import render_spectrograms  # noqa: E402
from asteroid_unet.separate import resolve_model  # noqa: E402
from asteroid_unet.weights import DEFAULT_MODEL, PACKAGED  # noqa: E402

log = logging.getLogger("asteroid_unet.app")
SPACE_WEIGHTS = Path(__file__).with_name("pytorch_model.bin")  # a Space's own weights, beside its app.py
STARTED = time.time()  # what the upload folder held before this is a previous run's
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")  # org/name[@revision]
PUBLIC_MAX_SECONDS = 600.0  # the longest song on a Space or a non-loopback --host, unless --max-seconds says otherwise
DECODE_MARGIN_SECONDS = 5.0  # a file ffmpeg must decode is cut at the limit plus this, whatever its header says
UPLOAD_BYTES_PER_SECOND = 96000 * 2 * 4  # float stereo at 96 kHz: the upload cap is the limit times this, plus 1 MiB
RUN_CONCURRENCY = 4  # jobs checking files or loading models at once; separation itself runs one at a time
HUB_MAX_BYTES = 200 * 2**20  # the largest Hub pytorch_model.bin the page downloads (with --hub)
HUB_TIMEOUT = 10.0  # seconds per Hub request; no retries
HUB_DOWNLOAD_SECONDS = 120.0  # the longest a Hub download may take
STEM_FORMATS = ("wav", "flac")
BROWSER_PLAYABLE = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm"}
SHOWN = ("mix", "vocals", "accompaniment")
MIN_RATE = 8000  # Hz: the lowest sample rate the page takes (telephone audio)


def packaged_models() -> Dict[str, Optional[str]]:
    """The model names the picker offers (the default model first) -> what
    :func:`~asteroid_unet.model.load_model` takes."""
    return {name: name for name in sorted(PACKAGED, key=lambda name: name != DEFAULT_MODEL)}


_loading = threading.Lock()


@functools.lru_cache(maxsize=2)
def _loaded(spec: Optional[str]):
    return resolve_model(spec)


def cached_model(spec: Optional[str]):
    """A loaded model, kept for the next song (loading takes longer than a short song); one load
    at a time, so jobs that start together load a model once."""
    with _loading:
        return _loaded(spec)


def is_loopback(host: str) -> bool:
    """Whether ``host`` serves this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def upload_limit(max_seconds: Optional[float]) -> Optional[int]:
    """Gradio's ``max_file_size`` for a length limit: float stereo at 96 kHz, plus 1 MiB (None: no cap)."""
    return None if not max_seconds else int(max_seconds * UPLOAD_BYTES_PER_SECOND) + 2**20


class Result(NamedTuple):
    """What a finished job shows: a message, the mix and stems to play, their zip, and spectrograms."""
    message: str
    players: Dict[str, Path]
    archive: Optional[Path]
    spectrograms: Dict[str, Path]


def page_budget(max_seconds: Optional[float]) -> Optional[WorkBudget]:
    """The page's work budget for a length limit: that long in stereo (None: no limit, no budget)."""
    return None if max_seconds is None else WorkBudget(2 * max_seconds)


def refuse_over_limits(seconds: float, channels: int, rate: int, max_seconds: Optional[float],
                       cut: bool = False) -> None:
    """:class:`Refusal`, with the page's one-line reason, for a rate under :data:`MIN_RATE` or a song
    over the limits (None: no limits): its length, its channels, then the work budget
    (:func:`page_budget`: rate, seconds x channels)."""
    if rate < MIN_RATE:
        raise Refusal(f"a sample rate of {rate} Hz is too low; this page takes songs at {MIN_RATE} Hz or more")
    if max_seconds is None:
        return
    if seconds > max_seconds:
        length = f"over {seconds:.0f} s long" if cut else f"{seconds:.0f} s long"
        raise Refusal(f"{length}; this page accepts songs up to {max_seconds:g} s")
    if channels > MAX_CHANNELS:
        raise Refusal(f"{channels} channels; this page accepts up to {MAX_CHANNELS}")
    page_budget(max_seconds).check(seconds, channels, rate)


def bounded_source(song: Path, work: Path, max_seconds: Optional[float]) -> Path:
    """The file to separate, checked against the limits before any decoding.

    Its header gives the length, channels and rate (soundfile or ffprobe). A file soundfile reads
    is used in place: reading stops at the length its header gives. Any other file is decoded by
    ffmpeg into ``work``, cut at the limit plus a margin, so a header that lies costs no more.
    """
    check_file(song)
    info = probe(song)
    if info is not None:
        refuse_over_limits(info.seconds, info.channels, info.sample_rate, max_seconds)
        if info.soundfile:
            return song
    cut = None if max_seconds is None else max_seconds + DECODE_MARGIN_SECONDS
    return decode_to_wav(song, work / ".input" / f"{output_name(song)}.wav", cut)


def disk_needed(frames: int, channels: int) -> int:
    """Bytes a job may write for a song: two float stems, their zip, a 16-bit copy of the mix, pictures."""
    return frames * channels * (4 * 2 * 2 + 2) + 2**20


def separate_song(song: Optional[str], model, fmt: str, session: str, sessions: Sessions,
                  max_seconds: Optional[float] = None, device: Optional[str] = None,
                  progress: Callable[..., None] = lambda *args, **kwargs: None,
                  slot: Optional[threading.Semaphore] = None, started: Optional[float] = None) -> Result:
    """Separate ``song`` into a new folder of the session's; a failure gives a one-line message, not an exception.

    Args:
        song: the song, a path the server trusts (the page passes only songs the session uploaded).
        model: what :func:`cached_model` loads (None: the packaged default), or a loaded model.
        fmt: stem format, ``wav`` or ``flac``.
        session: the browser session's id.
        sessions: the :class:`Sessions` registry.
        max_seconds: longest input accepted (None: no limit).
        device: ``cpu`` or ``cuda`` (None: the model's).
        progress: called as ``progress(fraction, desc=...)`` between steps (``gr.Progress``); the
            separation itself reports through its tqdm bar.
        slot: held while separating (the page's one separation at a time); checks and model
            loading happen before, outside it.
        started: when the request began (``time.monotonic``; None: now): the owner's cancel after
            it stops the job at its next chunk, and deletes its files.
    """
    if not song:
        return Result("Upload or record a song first.", {}, None, {})
    song = Path(song)
    should_stop = sessions.begin(session, started)
    if should_stop is None:
        return Result("A song is still being separated in this tab: wait for it to finish.", {}, None, {})
    work, reserved = sessions.job_folder(session), 0
    try:
        work.mkdir(parents=True)
        source = bounded_source(song, work, max_seconds)
        with AudioReader(source) as reader:
            seconds = reader.frames / max(reader.sample_rate, 1)
            refuse_over_limits(seconds, reader.channels, reader.sample_rate, max_seconds, cut=source != song)
            need = disk_needed(reader.frames, reader.channels)
            sessions.make_room(session, need)
            reserved = need
            mix = song if song.suffix.lower() in BROWSER_PLAYABLE else copy_as_flac(reader, work / "mix.flac")
        progress(0, desc="loading the model")
        loaded = cached_model(model) if model is None or isinstance(model, str) else model
        with slot or nullcontext():
            # a song ffmpeg decoded here gets the 16-bit stems the command line writes for it
            own = None if source == song else "int16"
            stems = separate_file(source, work, loaded, fmt=fmt, force=True, device=device, should_stop=should_stop,
                                  sample_format=own)
            if should_stop():
                raise Cancelled("cancelled")
            if source != song:
                source.unlink()  # the decoded copy: the stems are made
            progress(1, desc="drawing spectrograms")
            archive = zip_stems(stems, work / f"{stems['vocals'].parent.name}.zip")
            pictures = render_spectrograms({"mix": mix, **stems}, work / "spectrograms")
        return Result(f"Separated {song.name} ({seconds:.1f} s).", {"mix": mix, **stems}, archive, pictures)
    except Exception as err:  # one clear line in the page; the operator's log keeps the traceback
        log.info("separation of %s failed", song.name, exc_info=True)
        shutil.rmtree(work, ignore_errors=True)
        remove_empty(work.parent)  # the visitor's folder, when this was its first job
        return Result(f"Error: {song.name}: {plain_words(err)}", {}, None, {})
    finally:
        sessions.settle(session, reserved, folder=work if work.is_dir() else None)
        sessions.end(session)
        return_freed_memory()


def plain_words(err: BaseException) -> str:
    """What a visitor reads of an error: the line of the page's own refusals and of bad files and
    models, else a plain sentence (the raw text stays in the operator's log)."""
    if isinstance(err, Cancelled):
        return "cancelled"
    if isinstance(err, (Refusal, AudioError, CheckpointError)):
        return one_line(err)
    return "this song could not be separated (an error on the server; its log has the details)"


def copy_as_flac(reader: AudioReader, path: Path, block: int = 1 << 20) -> Path:
    """Write what ``reader`` decodes to a FLAC file, block by block, for browsers that cannot play the original."""
    writer = AtomicWriter(path, reader.sample_rate, reader.channels, "flac")
    try:
        for start in range(0, reader.frames, block):
            writer.write(reader.read(start, min(start + block, reader.frames)))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return path


def zip_stems(stems: Dict[str, Path], path: Path) -> Path:
    """A zip of the stems as ``<song>/<stem>.<ext>`` (stored: audio barely compresses)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for stem in stems.values():
            archive.write(stem, f"{stem.parent.name}/{stem.name}")
    return path


def as_str(paths: Sequence[Optional[Path]]) -> List[Optional[str]]:
    """Paths as Gradio's components take them (strings)."""
    return [None if p is None else str(p) for p in paths]


def model_choices(default: Optional[str]) -> Dict[str, Optional[str]]:
    """Picker names -> what :func:`cached_model` loads: the served model first, then the packaged ones.

    The page shows names only: a served file appears under its file name, not its server path.
    """
    packaged = packaged_models()
    first = next(iter(packaged)) if default is None else default
    if first in packaged:
        return {first: packaged[first], **packaged}
    return {Path(first).name if Path(first).exists() else first: first, **packaged}


def resolve_choice(choice: Optional[str], choices: Dict[str, Optional[str]], hub: bool) -> Optional[str]:
    """What to load for a picker value: a listed name, or a Hub repo id when ``hub``; else :class:`Refusal`."""
    choice = (choice or "").strip()
    if choice in choices:
        return choices[choice]
    if hub and HUB_ID.match(choice) and not Path(choice).exists():
        return choice
    raise Refusal(f"{choice!r}: not a model of this page" + (" or a Hugging Face repo id (org/name)" if hub else ""))


def hub_folder() -> Path:
    """Where the page keeps models it downloaded from the Hub (outside what Gradio serves)."""
    return Path(os.environ.get("ASTEROID_CACHE", Path.home() / ".cache" / "torch" / "asteroid")) / "asteroid-unet-page"


_downloading = threading.Semaphore(1)


def fetch_from_hub(repo: str, folder: Path, max_bytes: int = HUB_MAX_BYTES, timeout: float = HUB_TIMEOUT) -> Path:
    """Download ``repo``'s ``pytorch_model.bin`` (``org/name[@revision]``) into ``folder``, after its size.

    Checks the size the Hub reports before downloading and again while downloading; each request
    has ``timeout`` seconds, none is retried, and the whole download at most ``HUB_DOWNLOAD_SECONDS``.
    One download at a time: another visitor's is refused, not queued, so downloads never hold more
    than one of the page's job workers. Errors name the repo id, never a server path.
    """
    if not _downloading.acquire(blocking=False):
        raise Refusal(f"{repo}: the page is fetching another model from the Hub; try again in a minute")
    try:
        return _fetch_from_hub(repo, folder, max_bytes, timeout)
    finally:
        _downloading.release()


def _fetch_from_hub(repo: str, folder: Path, max_bytes: int, timeout: float) -> Path:
    from urllib.parse import quote

    import httpx
    from huggingface_hub import constants, get_hf_file_metadata
    from huggingface_hub.utils import build_hf_headers

    repo_id, _, revision = repo.partition("@")
    url = f"{constants.ENDPOINT}/{repo_id}/resolve/{quote(revision or 'main', safe='')}/pytorch_model.bin"
    try:
        meta = get_hf_file_metadata(url, timeout=timeout)
    except Exception as err:  # offline, missing repo or file, timeout: many types
        raise Refusal(f"{repo}: cannot fetch from the Hugging Face Hub ({type(err).__name__})") from None
    if meta.size is None or meta.size > max_bytes:
        size = "of unknown size" if meta.size is None else megabytes(meta.size)
        raise Refusal(f"{repo}: its pytorch_model.bin is {size}; this page loads models up to {megabytes(max_bytes)}")
    key = hashlib.sha256(f"{repo_id}\0{meta.commit_hash or meta.etag}".encode()).hexdigest()[:32]
    path = folder / f"{key}.bin"  # named by a digest: nothing the visitor typed becomes a path
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{key}.{secrets.token_hex(4)}.partial"
    try:
        with httpx.stream("GET", meta.location, headers=build_hf_headers(), timeout=timeout,
                          follow_redirects=True) as response, partial.open("wb") as out:
            response.raise_for_status()
            deadline = time.monotonic() + HUB_DOWNLOAD_SECONDS
            for block in response.iter_bytes(1 << 20):
                if time.monotonic() > deadline:
                    raise Refusal(f"{repo}: the Hub sends too slowly (over {HUB_DOWNLOAD_SECONDS:g} s)")
                if out.tell() + len(block) > max_bytes:
                    raise Refusal(f"{repo}: its pytorch_model.bin is over {megabytes(max_bytes)}")
                out.write(block)
        os.replace(partial, path)
    except Refusal:
        raise
    except Exception as err:
        raise Refusal(f"{repo}: cannot fetch from the Hugging Face Hub ({type(err).__name__})") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def load_for_page(spec: Optional[str], hub_repo: bool):
    """The model for a resolved picker value; a Hub repo id is downloaded first, and its errors name it."""
    if not hub_repo:
        return cached_model(spec)
    path = fetch_from_hub(spec, hub_folder())
    try:
        return cached_model(str(path))
    except Exception as err:
        raise Refusal(one_line(err).replace(str(path), spec)) from None


def build_app(model: Optional[str] = None, max_seconds: Optional[float] = None, hub: bool = False,
              device: Optional[str] = None, work_root: Optional[Path] = None, sessions: Optional[Sessions] = None):
    """The Gradio page (a ``gr.Blocks``; launch it with :func:`launch`).

    Args:
        model: the model offered first: a packaged name, file, hub folder or repo id (None: ``default``).
        max_seconds: longest input accepted (None: no limit).
        hub: whether the picker also accepts Hugging Face repo ids (see :func:`fetch_from_hub`).
        device: ``cpu`` or ``cuda`` (None: the model's).
        work_root: where visitor folders go (None: inside Gradio's cache, so it serves them without copies).
        sessions: the visitors' registry (None: a new one over ``work_root``).
    """
    import gradio as gr
    from gradio.utils import get_upload_folder

    sessions = sessions or Sessions(work_root or Path(get_upload_folder()) / "asteroid-unet", Path(get_upload_folder()))
    choices = model_choices(model)
    limit = f" up to {max_seconds / 60:g} min" if max_seconds else ""
    slot = threading.Semaphore(1)

    def run(upload, recording, choice, fmt, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        session, started = request.session_hash, time.monotonic()
        song = upload or recording
        try:
            if song and not sessions.owns(session, song):  # an API call that uploads as it runs, or a stranger's path
                song = str(sessions.keep(session, Path(song))) if uploaded_by_gradio(song) else None
            spec = resolve_choice(choice, choices, hub)
            if song:
                spec = load_for_page(spec, hub_repo=spec not in choices.values())  # outside the separation slot
        except Exception as err:
            result = Result(f"Error: {plain_words(err)}", {}, None, {})
        else:
            result = separate_song(song, spec, fmt, session, sessions, max_seconds, device, progress, slot, started)
        players = [result.players.get(name) for name in SHOWN]
        pictures = [result.spectrograms.get(name) for name in SHOWN]
        files = [*players[1:], result.archive] if result.archive else None
        return [result.message, *as_str(players), *as_str(pictures), as_str(files) if files else None]

    def uploaded_by_gradio(path: str) -> bool:
        """Whether Gradio's upload route wrote ``path`` (its own record), outside the visitors' folders."""
        real = os.path.realpath(path)
        return (not Path(real).is_relative_to(os.path.realpath(sessions.root))
                and any(os.path.realpath(p) == real for p in list(page.upload_file_set)))

    def keep(path, request: gr.Request):
        """Copy a new upload or recording into the session's folder; the newest song wins."""
        if not path:
            return None, None, ""
        if not uploaded_by_gradio(path):
            return None, None, "Error: not a file uploaded to this page: upload it again."
        try:
            kept = str(sessions.keep(request.session_hash, Path(path)))
        except ValueError as err:
            return None, None, f"Error: {err}."
        return kept, None, f"{Path(path).name}: ready, press **Separate**."

    def unloaded(request: gr.Request):
        # Registering an unload event makes the page open Gradio's heartbeat. Files go when the
        # owner's last heartbeat closes (guard.SessionGuard counts only those).
        sessions.release(request.session_hash)

    with gr.Blocks(title="asteroid-unet: vocals and accompaniment", analytics_enabled=False,
                   delete_cache=(3600, 86400)) as page:
        gr.Markdown("# Separate vocals and accompaniment\n"
                    f"Drop a song{limit} or record one, then press **Separate**. "
                    "The stems keep the song's sample rate and channels, and add up to it.")
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Song (wav, flac, ogg, mp3, m4a, MUSDB .stem.mp4, ...)", type="filepath",
                                 file_types=sorted(AUDIO_EXTENSIONS), elem_id="upload", height=120)
                recording = gr.Audio(label="or record one", sources=["microphone"], type="filepath", elem_id="record")
                hint = "a listed model" + (", or a Hugging Face repo id (org/name)" if hub else "")
                picker = gr.Dropdown(choices=list(choices), value=next(iter(choices)), label="Model",
                                     allow_custom_value=hub, info=hint)
                fmt = gr.Radio(list(STEM_FORMATS), value="wav", label="Stem format")
                button = gr.Button("Separate", variant="primary", elem_id="separate")
                status = gr.Markdown(elem_id="status")
                files = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="downloads")
            with gr.Column(scale=5):
                players, pictures = [], []
                for name in SHOWN:
                    with gr.Row(equal_height=True):
                        players.append(gr.Audio(label=name.capitalize(), type="filepath", interactive=False,
                                                elem_id=name, scale=2, buttons=["download"]))
                        pictures.append(gr.Image(label=f"{name.capitalize()} spectrogram", type="filepath",
                                                 interactive=False, elem_id=f"spec-{name}", scale=3, show_label=False,
                                                 buttons=["fullscreen"]))
        upload.upload(keep, upload, [upload, recording, status], api_name="keep")
        recording.stop_recording(keep, recording, [recording, upload, status], api_name="keep_recording")
        button.click(run, [upload, recording, picker, fmt], [status, *players, *pictures, files], api_name="run",
                     concurrency_limit=RUN_CONCURRENCY, show_progress_on=[players[0], pictures[0]])
        page.unload(unloaded)
    page.sessions = sessions
    return page


def sweep_forever(page, every: float) -> None:
    """Every ``every`` seconds: :meth:`Sessions.sweep`, :func:`sweep_strays`, :func:`sweep_empty_temp_files`."""
    from gradio.utils import get_upload_folder

    while True:
        time.sleep(every)
        try:
            page.sessions.sweep()
            sweep_strays(page.upload_file_set, page.sessions)
            sweep_empty_temp_files(Path(get_upload_folder()), page.sessions.idle_seconds)
        except Exception:  # a sweep must never stop the next one
            log.warning("sweep failed", exc_info=True)


def launch(page, host: str = "127.0.0.1", port: int = 7860, max_seconds: Optional[float] = None, **kwargs):
    """Start ``page`` (from :func:`build_app`): the session guard, the sweeper, the upload cap.

    What the upload folder held before this process started (a previous run's uploads and
    visitor folders, which no session of this run owns) is deleted first.
    """
    from starlette.middleware import Middleware

    sessions = page.sessions
    sweep_before(sessions, STARTED)
    every = max(1.0, min(60.0, sessions.idle_seconds / 5))
    threading.Thread(target=sweep_forever, args=(page, every), name="asteroid-unet-sweep", daemon=True).start()
    return page.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, ssr_mode=False, show_error=False, footer_links=[],
        max_file_size=upload_limit(max_seconds),
        app_kwargs={"middleware": [Middleware(SessionGuard, sessions=sessions)]}, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The page's options, shared by ``asteroid-unet app`` and ``python app.py``."""
    default = str(SPACE_WEIGHTS) if SPACE_WEIGHTS.is_file() else None
    parser.add_argument("--model", default=default,
                        help=f"packaged name, model file, hub folder or repo id (default: {default or DEFAULT_MODEL})")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="default: %(default)s (0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="default: %(default)s")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help=f"longest song accepted; 0: no limit (default: no limit on 127.0.0.1, "
                             f"{PUBLIC_MAX_SECONDS:g} with another --host or on a Space)")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cpu")
    parser.add_argument("--hub", action="store_true",
                        help=f"also accept Hugging Face repo ids typed in the model field (models up to "
                             f"{HUB_MAX_BYTES // 2**20} MB)")
    parser.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS,
                        help="a session with no open tab (an API client) is deleted this long after its last "
                             "call; sweeps run every fifth of it, at most every minute (default: %(default)g)")
    parser.add_argument("--session-quota", type=float, default=SESSION_QUOTA / 2**20, metavar="MB",
                        help="disk one visitor's uploads, stems and pictures may take (default: %(default)g)")
    parser.add_argument("--disk-quota", type=float, default=DISK_QUOTA / 2**20, metavar="MB",
                        help="disk the Gradio upload folder may take, every visitor together (default: %(default)g)")
    return parser


def max_seconds_for(args: argparse.Namespace) -> Optional[float]:
    """The length limit: --max-seconds (0: none), else one whenever the page faces more than this machine."""
    if args.max_seconds is not None:
        return args.max_seconds or None
    public = os.environ.get("SPACE_ID") or not is_loopback(args.host)
    return PUBLIC_MAX_SECONDS if public else None


def load_choice(name: Optional[str]):
    """The model for a packaged name, file, hub folder or repo id (None: the packaged default),
    cached under the name the page's picker then uses."""
    return cached_model(packaged_models().get(name, name) if name else DEFAULT_MODEL)


def serve(args: argparse.Namespace) -> None:
    """Start the page and block until interrupted."""
    from gradio.utils import get_upload_folder

    max_seconds = max_seconds_for(args)
    uploads = Path(get_upload_folder())
    sessions = Sessions(uploads / "asteroid-unet", uploads, idle_seconds=args.idle_seconds,
                        session_quota=int(args.session_quota * 2**20), disk_quota=int(args.disk_quota * 2**20))
    page = build_app(args.model, max_seconds, hub=args.hub, device=args.device, sessions=sessions)
    launch(page, args.host, args.port, max_seconds)


def main(argv: Optional[Sequence[str]] = None) -> int:
    serve(add_arguments(argparse.ArgumentParser(description="Web page for singing voice separation.")).parse_args(argv))
    return 0


if __name__ == "__main__":
    main()
