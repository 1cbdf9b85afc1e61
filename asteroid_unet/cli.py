"""Command line: ``asteroid-unet separate INPUT... [-o OUTDIR]`` and ``asteroid-unet convert-spleeter DIR -o FILE``
(argparse only; the work is in separate.py and spleeter.py)."""
import argparse
import sys
import traceback
from pathlib import Path
from typing import Iterable, List, Optional

from .audio import AUDIO_EXTENSIONS, OUTPUT_FORMATS
from .pretrained import DEFAULT_MODEL, PACKAGED, load_model
from .separate import CHUNK_SECONDS
from .weights import CheckpointError


def build_parser(app_options: bool = True) -> argparse.ArgumentParser:
    """The command line; ``app_options=False`` leaves the ``app`` options out, so the web page's module
    (which sets Gradio's environment) is imported only when ``app`` runs."""
    parser = argparse.ArgumentParser(prog="asteroid-unet", description="Singing voice separation with a deep U-Net.")
    sub = parser.add_subparsers(dest="command", required=True)
    sep = sub.add_parser("separate", help="separate songs into vocals and accompaniment")
    sep.add_argument("inputs", nargs="+", help="audio files, or folders searched for audio files")
    sep.add_argument("-o", "--outdir", default="separated", help="output folder (default: %(default)s)")
    sep.add_argument("--model", default=None,
                     help=f"model name ({', '.join(PACKAGED)}), file, hub folder or Hub repo id (default: {DEFAULT_MODEL})")
    sep.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: %(default)s")
    sep.add_argument("--format", default=None, choices=sorted(OUTPUT_FORMATS), help="default: the input's, else wav")
    sep.add_argument("--force", action="store_true", help="overwrite existing stems")
    sep.add_argument("--chunk-seconds", type=float, default=CHUNK_SECONDS, help="memory bound (default: %(default)s)")
    sep.add_argument("--precision", default="float32", choices=["float32", "bfloat16"], help="default: %(default)s")
    sep.add_argument("--band-limited", action="store_true",
                     help="silence every stem above the model's band, as Spleeter does (default: full band)")
    sep.add_argument("--jobs", type=int, default=1, help="files separated at once, one worker process each (default: 1)")
    sep.add_argument("--batch-files", type=int, default=None,
                     help="songs separated together, their patches in shared network passes "
                          "(default: 8 with --device cuda, else 1)")
    sep.add_argument("--debug", action="store_true", help="show tracebacks")
    conv = sub.add_parser("convert-spleeter", help="convert a Spleeter TensorFlow checkpoint folder (no TensorFlow needed)")
    conv.add_argument("checkpoint_dir", help="a pretrained_models/<name> folder holding model.index and model.data-*")
    conv.add_argument("-o", "--output", required=True, help="the model file to write (.pth)")
    conv.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    app = sub.add_parser("app", help="start the web page (needs the [app] extra)")
    if app_options:
        from .app import add_arguments

        add_arguments(app)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    from .spleeter import save_converted

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


def expand_inputs(inputs: Iterable[str]) -> List[Path]:
    """Files as given, and the audio files found (recursively, sorted) in folders."""
    paths: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            paths.extend(found if found else [path])
        else:
            paths.append(path)
    return paths


def run_separate(args: argparse.Namespace) -> int:
    from .catalogue import separate_files

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("asteroid-unet: error: --device cuda but no CUDA GPU is available", file=sys.stderr)
            return 2
    if args.jobs < 1:
        print(f"asteroid-unet: error: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    if args.batch_files is not None and args.batch_files < 1:
        print(f"asteroid-unet: error: --batch-files must be at least 1, got {args.batch_files}", file=sys.stderr)
        return 2
    if (args.batch_files or 1) > 1 and args.jobs > 1:
        print("asteroid-unet: error: use --batch-files or --jobs, not both", file=sys.stderr)
        return 2
    batch_files = args.batch_files or (8 if args.device == "cuda" and args.jobs == 1 else 1)
    try:  # here too with --jobs: a bad --model is one error, not one per file
        model = load_model(args.model)
    except Exception as err:  # CheckpointError names the file; anything else still gets one line
        if args.debug:
            traceback.print_exc()
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not isinstance(err, CheckpointError):
            reason = f"{args.model or 'default weights'}: cannot load model ({reason})"
        print(f"asteroid-unet: error: {reason}", file=sys.stderr)
        return 2
    paths = expand_inputs(args.inputs)
    options = dict(fmt=args.format, force=args.force, device=args.device, chunk_seconds=args.chunk_seconds,
                   precision=args.precision, full_band=not args.band_limited)
    results = separate_files(paths, args.outdir, model if args.jobs == 1 else args.model, args.jobs, args.debug,
                             batch_files, progress=True, **options)
    failures, done = 0, 0
    try:
        for result in results:
            done += 1
            if result["error"] is None:
                for name, out in result["stems"].items():
                    print(f"{name}: {out}")
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


def run_app(args: argparse.Namespace) -> int:
    from . import app

    try:
        import gradio  # noqa: F401
    except ImportError as err:
        print(f"asteroid-unet: error: the web page needs the [app] extra: pip install 'asteroid-unet[app]' ({err})",
              file=sys.stderr)
        return 2
    try:
        app.load_choice(args.model)  # a bad --model fails here, not in the page
    except Exception as err:
        reason = app.one_line(err)
        if not isinstance(err, CheckpointError):
            reason = f"{args.model}: cannot load model ({reason})"
        print(f"asteroid-unet: error: {reason}", file=sys.stderr)
        return 2
    app.serve(args)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(app_options=argv[:1] == ["app"]).parse_args(argv)
    try:
        if args.command == "convert-spleeter":
            return run_convert(args)
        return run_app(args) if args.command == "app" else run_separate(args)
    except KeyboardInterrupt:  # e.g. while the model loads, before any file is open
        print("asteroid-unet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
