"""The web page: drop or record a song, listen to its stems, see their spectrograms, download them.

Run it with ``asteroid-unet app`` (needs the ``[app]`` extra). The same file is the ``app.py``
of a Hugging Face Space (``python app.py``): ``hub export`` copies it next to the weights,
which it then serves by default.

Separation goes through :func:`asteroid_unet.separate.separate_file`, as on the command line:
full band, at the input's rate and channel count, in chunks. Each browser session gets a work
folder inside Gradio's cache, deleted with the uploaded song when the session ends.
"""
import argparse
import functools
import logging
import os
import re
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check: the page works offline
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# Absolute imports: this file also runs on its own, as a Space's app.py.
from asteroid_unet.audio import AUDIO_EXTENSIONS, AtomicWriter, AudioReader  # noqa: E402
from asteroid_unet.separate import separate_file  # noqa: E402
from asteroid_unet.spectrogram import render_spectrograms  # noqa: E402
from asteroid_unet.model import load_model  # noqa: E402
from asteroid_unet.weights import DEFAULT_MODEL, PACKAGED  # noqa: E402

log = logging.getLogger("asteroid_unet.app")
SPACE_WEIGHTS = Path(__file__).with_name("pytorch_model.bin")  # a Space's own weights, beside its app.py
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")  # org/name[@revision]
SPACE_MAX_SECONDS = 600.0
GRADIO_VERSION = "6.31.0"  # the version the page is tested with, as pinned by the [app] extra
STEM_FORMATS = ("wav", "flac")
BROWSER_PLAYABLE = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm"}
SHOWN = ("mix", "vocals", "accompaniment")


def packaged_models() -> Dict[str, Optional[str]]:
    """The model names the picker offers (the default model first) -> what
    :func:`~asteroid_unet.pretrained.load_model` takes."""
    return {name: name for name in sorted(PACKAGED, key=lambda name: name != DEFAULT_MODEL)}


@functools.lru_cache(maxsize=2)
def cached_model(spec: Optional[str]):
    """A loaded model, kept for the next song (loading takes longer than a short song)."""
    return load_model(spec)


def one_line(err: BaseException) -> str:
    """The first line of an error, as the command line prints it."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class Result(NamedTuple):
    """What a finished job shows: a message, the mix and stems to play, their zip, and spectrograms."""
    message: str
    players: Dict[str, Path]
    archive: Optional[Path]
    spectrograms: Dict[str, Path]


class Sessions:
    """Work folders and the running job of each browser session.

    A session runs one job at a time; when it ends, its folder goes, and so do the songs it
    uploaded (unless another open session uploaded the same file: Gradio stores uploads by content).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock = threading.Lock()
        self._busy: set = set()
        self._uploads: Dict[str, set] = {}

    def folder(self, session: str) -> Path:
        return self.root / re.sub(r"[^\w-]", "_", session)

    def hold(self, session: str, upload: Optional[str]) -> None:
        """Note a file the session uploaded or recorded, to delete with it."""
        if upload:
            with self._lock:
                self._uploads.setdefault(session, set()).add(Path(upload))

    def begin(self, session: str) -> bool:
        """Mark ``session`` busy; False when a job of it is still running."""
        with self._lock:
            if session in self._busy:
                return False
            self._busy.add(session)
            return True

    def end(self, session: str) -> None:
        with self._lock:
            self._busy.discard(session)

    def close(self, session: str) -> None:
        """Delete the session's folder and its uploads (those no other session holds)."""
        with self._lock:
            mine = self._uploads.pop(session, set())
            others = set().union(*self._uploads.values())
        shutil.rmtree(self.folder(session), ignore_errors=True)
        for upload in mine - others:
            upload.unlink(missing_ok=True)
            try:
                upload.parent.rmdir()  # Gradio's per-upload folder, when now empty
            except OSError:
                pass


def separate_song(song: Optional[str], model: Optional[str], fmt: str, session: str, sessions: Sessions,
                  max_seconds: Optional[float] = None, device: Optional[str] = None,
                  progress: Callable[..., None] = lambda *args, **kwargs: None) -> Result:
    """Separate ``song`` into the session's folder; a failure gives a one-line message, not an exception.

    Args:
        song: the uploaded or recorded file.
        model: what :func:`cached_model` loads (None: the packaged default).
        fmt: stem format, ``wav`` or ``flac``.
        session: the browser session's id.
        sessions: the :class:`Sessions` registry.
        max_seconds: longest input accepted (None: no limit).
        device: ``cpu`` or ``cuda`` (None: the model's).
        progress: called as ``progress(fraction, desc=...)`` between steps (``gr.Progress``); the
            separation itself reports through its tqdm bar.
    """
    if not song:
        return Result("Upload or record a song first.", {}, None, {})
    song = Path(song)
    sessions.hold(session, song)
    if not sessions.begin(session):
        return Result("A song is still being separated in this tab: wait for it to finish.", {}, None, {})
    work = sessions.folder(session)
    try:
        shutil.rmtree(work, ignore_errors=True)  # the previous song's files: one song per session on disk
        work.mkdir(parents=True)
        with AudioReader(song) as reader:
            seconds = reader.frames / max(reader.sample_rate, 1)
            if max_seconds is not None and seconds > max_seconds:
                raise ValueError(f"{seconds:.0f} s long; this page accepts songs up to {max_seconds:g} s")
            mix = song if song.suffix.lower() in BROWSER_PLAYABLE else copy_as_flac(reader, work / "mix.flac")
        progress(0, desc="loading the model")
        loaded = cached_model(model)
        stems = separate_file(song, work, loaded, fmt=fmt, force=True, device=device)
        progress(1, desc="drawing spectrograms")
        archive = zip_stems(stems, work / f"{stems['vocals'].parent.name}.zip")
        pictures = render_spectrograms({"mix": mix, **stems}, work / "spectrograms")
        return Result(f"Separated {song.name} ({seconds:.1f} s).", {"mix": mix, **stems}, archive, pictures)
    except Exception as err:  # one clear line in the page; the operator's log keeps the traceback
        log.info("separation of %s failed", song.name, exc_info=True)
        shutil.rmtree(work, ignore_errors=True)
        return Result(f"Error: {song.name}: {one_line(err)}", {}, None, {})
    finally:
        sessions.end(session)


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
    """What to load for a picker value: a listed name, or a Hub repo id when ``hub``; else ValueError."""
    choice = (choice or "").strip()
    if choice in choices:
        return choices[choice]
    if hub and HUB_ID.match(choice) and not Path(choice).exists():
        return choice
    raise ValueError(f"{choice!r}: not a model of this page" + (" or a Hugging Face repo id (org/name)" if hub else ""))


def build_app(model: Optional[str] = None, max_seconds: Optional[float] = None, hub: Optional[bool] = None,
              device: Optional[str] = None, work_root: Optional[Path] = None):
    """The Gradio page (a ``gr.Blocks``; call ``.launch()``).

    Args:
        model: the model offered first: a packaged name, file, hub folder or repo id (None: ``default``).
        max_seconds: longest input accepted (None: no limit).
        hub: whether the picker also accepts Hugging Face repo ids (None: unless ``HF_HUB_OFFLINE`` is set).
        device: ``cpu`` or ``cuda`` (None: the model's).
        work_root: where session folders go (None: inside Gradio's cache, so it serves them without copies).
    """
    import gradio as gr
    from gradio.utils import get_upload_folder

    hub = (os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false", "False")) if hub is None else hub
    sessions = Sessions(work_root or Path(get_upload_folder()) / "asteroid-unet")
    choices = model_choices(model)
    limit = f" up to {max_seconds / 60:g} min" if max_seconds else ""

    def run(upload, recording, choice, fmt, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        try:
            spec = resolve_choice(choice, choices, hub)
        except ValueError as err:
            result = Result(f"Error: {err}", {}, None, {})
        else:
            result = separate_song(upload or recording, spec, fmt, request.session_hash, sessions, max_seconds, device,
                                   progress)
        players = [result.players.get(name) for name in SHOWN]
        pictures = [result.spectrograms.get(name) for name in SHOWN]
        files = [*players[1:], result.archive] if result.archive else None
        return [result.message, *as_str(players), *as_str(pictures), as_str(files) if files else None]

    def keep(path, request: gr.Request):
        sessions.hold(request.session_hash, path)
        ready = f"{Path(path).name}: ready, press **Separate**." if path else ""
        return None, ready  # clears the other input: the newest song wins

    def end_session(request: gr.Request):
        sessions.close(request.session_hash)

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
        upload.upload(keep, upload, [recording, status])
        recording.stop_recording(keep, recording, [upload, status])
        button.click(run, [upload, recording, picker, fmt], [status, *players, *pictures, files],
                     concurrency_id="separate", show_progress_on=[players[0], pictures[0]])
        page.unload(end_session)
    return page


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The page's options, shared by ``asteroid-unet app`` and ``python app.py``."""
    default = str(SPACE_WEIGHTS) if SPACE_WEIGHTS.is_file() else None
    parser.add_argument("--model", default=default,
                        help=f"packaged name, model file, hub folder or repo id (default: {default or 'default'})")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="default: %(default)s (0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="default: %(default)s")
    parser.add_argument("--max-seconds", type=float, default=SPACE_MAX_SECONDS if os.environ.get("SPACE_ID") else None,
                        help=f"longest song accepted (default: no limit; {SPACE_MAX_SECONDS:g} on a Space)")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cpu")
    parser.add_argument("--no-hub", action="store_true", help="offer only the listed models, no Hub repo ids")
    return parser


def load_choice(name: Optional[str]):
    """The model for a packaged name, file, hub folder or repo id (None: the packaged default)."""
    return cached_model(packaged_models().get(name, name))


def serve(args: argparse.Namespace) -> None:
    """Start the page and block until interrupted."""
    page = build_app(args.model, args.max_seconds, hub=False if args.no_hub else None, device=args.device)
    page.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, ssr_mode=False,
                                                   show_error=False, footer_links=[])


def main(argv: Optional[Sequence[str]] = None) -> int:
    serve(add_arguments(argparse.ArgumentParser(description="Web page for singing voice separation.")).parse_args(argv))
    return 0


if __name__ == "__main__":
    main()
