"""What a new user met first: each gives working output or one line, in real processes."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asteroid_unet.cli import build_parser

# Runs the CLI in a fresh process and times the call itself (not the interpreter's start).
TIMED_CLI = ("import sys, time; from asteroid_unet.cli import main; start = time.perf_counter(); "
             "code = main(sys.argv[1:]); print(f'{time.perf_counter() - start:.2f}', code)")


def run(args, env=None, code=None):
    cmd = [sys.executable, *(["-c", code] if code else ["-m", "asteroid_unet"]), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("offline", [False, True])
def test_an_unreachable_hub_repo_is_one_line_within_5_s(tmp_path, offline):
    sf.write(tmp_path / "song.wav", np.zeros((22050, 2), np.float32), 22050)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(ASTEROID_CACHE=str(tmp_path / "cache"), HF_ENDPOINT="http://127.0.0.1:9", NO_PROXY="127.0.0.1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = run(["separate", tmp_path / "song.wav", "-o", tmp_path / "out", "--model", "someone/missing"], env, TIMED_CLI)
    seconds, code = proc.stdout.split()
    assert code == "2" and float(seconds) < 5
    reason = ("not in the cache, and HF_HUB_OFFLINE forbids downloading it" if offline
              else "cannot reach the Hugging Face Hub (ConnectError), and no copy is cached")
    assert proc.stderr.splitlines() == [f"asteroid-unet: error: someone/missing: {reason}"]


def test_speechbrain_entry_point_without_the_extra_is_one_line():
    hide = ("import runpy, sys; sys.modules['speechbrain'] = None; sys.argv = ['speechbrain', '--help']; "
            "runpy.run_module('asteroid_unet.speechbrain', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("asteroid_unet.speechbrain: error: needs the [speechbrain] extra: "
                                                   "pip install '.[speechbrain]'"), proc.stderr


def test_random_bytes_named_mp3_print_one_line(tmp_path, small_model, capfd):
    """libmpg123 writes to file descriptor 2 itself: ``capfd`` sees what a terminal would."""
    import torch

    from asteroid_unet.cli import main

    torch.save(small_model.serialize(), tmp_path / "tiny.pth")
    (tmp_path / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    assert main(["separate", str(tmp_path / "noise.mp3"), "-o", str(tmp_path / "out"), "--model",
                 str(tmp_path / "tiny.pth")]) == 1
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"asteroid-unet: error: {tmp_path / 'noise.mp3'}: not an audio file"), lines


def test_help_names_the_extra_the_page_needs():
    help_text = " ".join(build_parser().format_help().split())
    assert "start the web page (needs the [app] extra, as does its option list: asteroid-unet app --help)" in help_text


def test_hub_export_needs_no_extra(tmp_path):
    """The README lists the Hub export under the core install: it runs with every extra's package hidden."""
    hide = ("import runpy, sys\n"
            "for name in ('pytorch_lightning', 'lightning', 'hydra', 'omegaconf', 'librosa', 'musdb', 'mido', "
            "'torchaudio', 'speechbrain', 'gradio', 'museval', 'ray'):\n"
            "    sys.modules[name] = None\n"
            f"sys.argv = ['hub', 'export', '--model', 'paper', '--out', {str(tmp_path / 'hub')!r}, '--repo-id', 'me/unet']\n"
            "runpy.run_module('asteroid_unet.hub', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {"pytorch_model.bin", "hyperparams.yaml", "README.md"} <= {p.name for p in (tmp_path / "hub").iterdir()}


def test_the_documented_quick_fine_tuning_starts_at_stage_0():
    """The recipe README's quick fine-tuning commands run on a fresh clone: none skips stage 0, which
    prepares the data stage 1 reads (``.ci/first_contact.sh`` runs the same command on tiny data)."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "egs" / "musdb18" / "README.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, flags=re.M | re.S)
    quick = [shlex.split(line.split("  #")[0]) for block in blocks for line in block.splitlines()
             if "finetune_quick" in line]
    assert quick
    for words in quick:
        assert "--stage" not in words or words[words.index("--stage") + 1] == "0", words
