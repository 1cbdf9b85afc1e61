"""SpeechBrain's recipe rules for recipes/MUSDB18, and real runs of the recipe on a tiny MUSDB18 tree."""
import csv
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE_CSV = ROOT / "tests" / "recipes" / "MUSDB18.csv"
COLUMNS = [
    "Task", "Dataset", "Script_file", "Hparam_file", "Data_prep_file", "Readme_file",
    "Result_url", "HF_repo", "test_debug_flags", "test_debug_checks", "performance",
]  # fmt: skip
RECIPE = ROOT / "recipes" / "MUSDB18" / "separation"


def recipe_rows():
    with open(RECIPE_CSV, newline="") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def top_level_keys(yaml_path):
    return re.findall(r"^([A-Za-z_]\w*)\s*:", Path(yaml_path).read_text(), flags=re.M)


def used_in_script(key, script):
    patterns = [
        rf"hparams\[\s*['\"]{key}['\"]\s*\]",
        rf"\bhparams\.{key}\b",
        rf"\bmodules\.{key}\b",
    ]
    return any(re.search(p, script) for p in patterns)


def unused_keys(yaml_path, script):
    """Top-level keys (but ``__``-prefixed ones) neither used by ``script`` nor referenced by another key."""
    referenced = set(re.findall(r"<(\w+)>", Path(yaml_path).read_text()))
    return [
        k for k in top_level_keys(yaml_path)
        if not k.startswith("__") and k not in referenced and not used_in_script(k, script)
    ]  # fmt: skip


def test_csv_lists_every_yaml_and_existing_files():
    rows = recipe_rows()
    listed = {row["Hparam_file"] for row in rows}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "recipes" / "MUSDB18").rglob("*.yaml")}
    assert on_disk and on_disk == listed
    for row in rows:
        assert row["Dataset"] == "MUSDB18" and row["Task"]
        for column in ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file"):
            assert (ROOT / row[column]).is_file(), f"{column}: {row[column]} missing"


@pytest.mark.parametrize("row", recipe_rows(), ids=lambda r: r["Hparam_file"])
def test_every_yaml_key_is_used(row):
    unused = unused_keys(ROOT / row["Hparam_file"], (ROOT / row["Script_file"]).read_text())
    assert not unused, f"keys used neither by {row['Script_file']} nor by another key: {unused}"


def test_key_check_catches_an_unused_key(tmp_path):
    """The rule above is not vacuous: an extra key is reported."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((RECIPE / "hparams" / "unet.yaml").read_text() + "\nnever_used: 3\n")
    assert unused_keys(bad, (RECIPE / "train.py").read_text()) == ["never_used"]


def modules_block(yaml_path):
    """The names listed under the top-level ``modules:`` key (as SpeechBrain reads them: the first
    word of every indented line, so the arguments of a module count too)."""
    names, inside = [], False
    for line in Path(yaml_path).read_text().splitlines():
        if re.match(r"modules\s*:", line):
            inside = True
        elif inside and line[:1] not in (" ", "\t", ""):
            inside = False
        elif inside and line.strip():
            names.append(line.strip().split(":")[0])
    return names


def undeclared_modules(yaml_path, script):
    """SpeechBrain's ``check_module_vars`` rule (``tests/utils/check_yaml.py`` upstream): every
    ``self.modules.<name>`` in the script is listed under ``modules:`` in the YAML, but for
    ``nn.Module`` methods it knows (parameters, keys, eval, train) and names guarded by
    ``if hasattr(self.modules, "<name>")`` / ``if hasattr(self.hparams, "<name>")``."""
    used = set(re.findall(r"self\.modules\.([^ ,()\[\]{}.:\n]*)", script))
    optional = set(re.findall(r'if hasattr\(self\.(?:modules|hparams), "([^ ,()\[\]{}.:"\n]*)', script))
    return sorted(used - {"parameters", "keys", "eval", "train"} - optional - set(modules_block(yaml_path)))


@pytest.mark.parametrize("row", recipe_rows(), ids=lambda r: r["Hparam_file"])
def test_every_module_the_script_uses_is_declared(row):
    undeclared = undeclared_modules(ROOT / row["Hparam_file"], (ROOT / row["Script_file"]).read_text())
    assert not undeclared, f"self.modules.<name> in {row['Script_file']} without a modules: entry: {undeclared}"


def test_module_check_catches_an_undeclared_module():
    """Not vacuous: a dict method on the modules (SpeechBrain reads it as a module name) or a
    module the YAML does not list is reported."""
    yaml_path = RECIPE / "hparams" / "unet.yaml"
    assert "objective" in modules_block(yaml_path) and "encoder" not in modules_block(yaml_path)
    script = "for name, m in self.modules.items():\n    self.modules.encoder(x)\nself.modules.objective(x)\n"
    assert undeclared_modules(yaml_path, script) == ["encoder", "items"]


@pytest.mark.parametrize("row", recipe_rows(), ids=lambda r: r["Hparam_file"])
def test_readme_states_results_and_links(row):
    readme = (ROOT / row["Readme_file"]).read_text()
    assert "## Results" in readme and re.search(r"^\| .*vocals.*accompaniment", readme, flags=re.M)
    assert "Hugging Face" in readme
    for column in ("Result_url", "HF_repo"):
        if row[column].strip():
            assert row[column].strip() in readme, f"README does not mention {column} {row[column]}"
    assert f"python train.py {Path(row['Hparam_file']).relative_to(Path(row['Script_file']).parent)}" in readme


def test_yaml_builds_the_paper_model(tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    import asteroid_unet

    with open(RECIPE / "hparams" / "unet.yaml") as f:  # the checkpointer creates output_folder
        hparams = load_hyperpyyaml(f, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out")})
    model = hparams["model"]
    assert isinstance(model, asteroid_unet.UNet)
    assert model.get_model_args() == asteroid_unet.UNet().get_model_args()
    assert hparams["loss"] is asteroid_unet.unet_loss
    assert (hparams["sample_rate"], hparams["batch_size"], hparams["lr"]) == (8192, 128, 1e-4)


# ----- real runs -----


def run_recipe(data, out, *flags, **popen):
    """Start train.py from its folder, the way a user does (the package is pip-installed)."""
    cmd = [sys.executable, "train.py", "hparams/unet.yaml", f"--data_folder={data}", f"--output_folder={out}"]
    cmd += ["--device=cpu", *flags]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # tiny model: threads only contend on shared CI cores
    return subprocess.Popen(cmd, cwd=RECIPE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def debug_flags(row, **overrides):
    """The CSV's ``test_debug_flags`` but its data folder, with some values replaced or added."""
    flags = dict(f[2:].split("=", 1) for f in shlex.split(row["test_debug_flags"]))
    flags.pop("data_folder")
    flags.update({k: str(v) for k, v in overrides.items()})
    return [f"--{k}={v}" for k, v in flags.items()]


def parse_checks(checks):
    files = re.search(r"file_exists=\[([^\]]*)\]", checks).group(1).split(",")
    perf = re.search(r"performance_check=\[([^\]]*)\]", checks)
    return [f.strip() for f in files], [p.strip() for p in perf.group(1).split(",")] if perf else None


def extract_value(line, key):
    """``key: value`` in a log line, the way SpeechBrain's recipe checks read it (a decimal number)."""
    found = re.search(rf"{re.escape(key)}\s*:\s*([-+]?\d*\.\d+([eE][-+]?\d+)?)", line)
    return float(found.group(1)) if found else None


@pytest.mark.slow
@pytest.mark.parametrize("row", recipe_rows(), ids=lambda r: r["Hparam_file"])
def test_csv_row_runs_as_speechbrains_recipe_runner_runs_it(tmp_path, row):
    """What SpeechBrain's ``run_recipe_tests`` does with a CSV row: from the repository root, with
    PYTHONPATH set to the recipe folder only, ``python <script> <hparams> <test_debug_flags>
    --device=cpu --output_folder=<out>``; then its file and performance checks. The row's own
    data folder (tests/samples) is used. Then the exported model loads in both toolkits."""
    out = tmp_path / "out"
    script = ROOT / row["Script_file"]
    cmd = (f"PYTHONPATH={script.parent} {shlex.quote(sys.executable)} {row['Script_file']} "
           f"{row['Hparam_file']} {row['test_debug_flags']} --device=cpu --output_folder={out}")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    files, perf = parse_checks(row["test_debug_checks"])
    for name in files:
        assert (out / name).exists(), f"{name} missing"
    log_file, metric, condition, epoch = perf
    line = next(l for l in (out / log_file).read_text().splitlines() if epoch in l)
    value = extract_value(line, metric)
    assert value is not None and condition[0] == "<" and value < float(condition[1:])
    with open(out / "test_results.csv", newline="") as f:
        results = list(csv.DictReader(f))
    assert [r["track"] for r in results] == ["test song 0", "median"]
    for key in ("SDR_vocals", "SDR_accompaniment"):
        assert math.isfinite(float(results[-1][key]))
    with open(out / "save" / "train.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2  # 3 train tracks, 1 held out for validation
    assert_export_loads_in_both_toolkits(out, tmp_path)


def assert_export_loads_in_both_toolkits(out, tmp_path):
    """best_model.pth loads with UNet.from_pretrained; hub/ with BaseModel and UNetSeparator: same stems."""
    import torch
    from asteroid.models import BaseModel

    from asteroid_unet import UNet
    from asteroid_unet.speechbrain import UNetSeparator

    model = UNet.from_pretrained(str(out / "best_model.pth"))
    assert model.get_model_args()["n_layers"] == 2 and model.n_bins == 64
    from_hub = BaseModel.from_pretrained(str(out / "hub" / "pytorch_model.bin"))
    separator = UNetSeparator.from_hparams(source=str(out / "hub"), savedir=str(tmp_path / "sb"))
    x = torch.randn(1, 9000)
    expected = model.separate(x)
    torch.testing.assert_close(from_hub.separate(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(separator.separate_batch(x), expected.transpose(1, 2), rtol=0, atol=0)
    assert "your-org/unet-musdb18" in (out / "hub" / "README.md").read_text()
    assert_card_states_origin_and_scores(out)


def assert_card_states_origin_and_scores(out):
    """The exported card, parsed by huggingface_hub: research use only (MUSDB18's terms), no base
    model (trained from scratch), the training data, and the test scores of test_results.csv."""
    from huggingface_hub import ModelCard

    from asteroid_unet import UNet

    card = ModelCard.load(out / "hub" / "README.md")
    assert (card.data.license, card.data.license_name) == ("other", "research-use-only")
    assert card.data.base_model is None and "musdb18" in card.data.datasets
    with open(out / "test_results.csv", newline="") as f:
        median = [r for r in csv.DictReader(f) if r["track"] == "median"][0]
    found = {r.metric_name: r.metric_value for r in card.data.eval_results}
    for target in ("vocals", "accompaniment"):
        assert found[f"{target} SDR (museval, median)"] == pytest.approx(float(median[f"SDR_{target}"]), abs=1e-3)
    record = UNet.from_pretrained(str(out / "hub")).provenance
    assert record["training"][-1]["recipe"].startswith("recipes/MUSDB18/separation")
    return card, record


ONE_EPOCH = dict(N_epochs=1, samples_per_track=4, eval_reference_rows=False)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A tiny MUSDB18 tree (3 training and 2 test tracks) and one run of one epoch on it (the CSV's
    debug flags, 4 chunks per track), shared by the tests: ``(data, out)``."""
    from conftest import write_tiny_musdb

    tmp = tmp_path_factory.mktemp("one-epoch")
    data, out = write_tiny_musdb(tmp / "musdb", n_test=2), tmp / "out"
    finish(run_recipe(data, out, *debug_flags(recipe_rows()[0], **ONE_EPOCH)))
    return data, out


def _intra_epoch_step(save_dir):
    """The step of the newest intra-epoch checkpoint, or 0."""
    steps = [0]
    for ckpt in save_dir.glob("CKPT+*"):
        try:
            meta = yaml.safe_load((ckpt / "CKPT.yaml").read_text())
            if meta.get("brain_intra_epoch_ckpt"):
                steps.append(yaml.safe_load((ckpt / "brain.ckpt").read_text())["step"])
        except (OSError, TypeError, AttributeError, yaml.YAMLError):
            pass  # being written
    return max(steps)


@pytest.mark.slow
def test_kill_9_mid_epoch_resumes_at_the_saved_step(tiny_musdb, tmp_path):
    """kill -9 during an epoch; the restart loads the intra-epoch checkpoint and finishes the epoch once."""
    flags = debug_flags(
        recipe_rows()[0], N_epochs=1, samples_per_track=12, ckpt_interval_steps=1, eval_reference_rows=False
    )
    out = tmp_path / "out"
    proc = run_recipe(tiny_musdb, out, *flags, start_new_session=True)
    deadline = time.time() + 120
    try:
        while _intra_epoch_step(out / "save") < 3:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no intra-epoch checkpoint appeared"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    killed_at = _intra_epoch_step(out / "save")
    assert not (out / "train_log.txt").exists() or "epoch: 1" not in (out / "train_log.txt").read_text()

    log = finish(run_recipe(tiny_musdb, out, *flags))
    assert "Loading a checkpoint from" in log
    steps_per_epoch = 2 * 12 // 2  # 2 train tracks x 12 chunks / batch 2
    final = [c for c in (out / "save").glob("CKPT+*") if "brain_intra_epoch_ckpt" not in (c / "CKPT.yaml").read_text()]
    assert len(final) == 1
    brain = yaml.safe_load((final[0] / "brain.ckpt").read_text())
    # Resumed mid-epoch: the optimizer steps continue from the checkpoint, no batch is repeated.
    assert 3 <= killed_at < steps_per_epoch and brain["optimizer_step"] == steps_per_epoch
    assert [l for l in (out / "train_log.txt").read_text().splitlines() if l.startswith("epoch:")][0].startswith("epoch: 1,")


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_recipe_passes_speechbrains_linters(command):
    """ruff with SpeechBrain's line length (80), configured in recipes/MUSDB18/ruff.toml."""
    config = ROOT / "recipes" / "MUSDB18" / "ruff.toml"
    assert "line-length = 80" in config.read_text()
    out = subprocess.run([sys.executable, "-m", "ruff", *command, str(ROOT / "recipes" / "MUSDB18")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def run_torchrun(data, out, *flags):
    """``torchrun --nproc_per_node=2 train.py hparams/unet.yaml``: SpeechBrain's DDP launch, 2 gloo processes on the CPU."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
           "hparams/unet.yaml", f"--data_folder={data}", f"--output_folder={out}", "--device=cpu",
           "--distributed_backend=gloo", *flags]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=RECIPE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def optimizer_steps(out):
    (ckpt,) = (out / "save").glob("CKPT+*")
    return yaml.safe_load((ckpt / "brain.ckpt").read_text())["optimizer_step"]


@pytest.mark.slow
def test_torchrun_ddp_on_two_cpu_processes_matches_one_device_and_resumes(one_epoch, tmp_path):
    """Each DDP process takes half the chunks: half the optimizer steps of one device for the same
    chunks per epoch (2 tracks x 4 chunks, batch 2 per process); museval runs once; a rerun with one
    epoch more resumes from the checkpointer and trains that epoch only. (Resuming mid-epoch, one
    process: test_kill_9_mid_epoch_resumes_at_the_saved_step.)"""
    data, one = one_epoch
    ddp = tmp_path / "ddp"
    finish(run_torchrun(data, ddp, *debug_flags(recipe_rows()[0], **ONE_EPOCH)))
    assert optimizer_steps(one) * 2 == optimizer_steps(ddp) * 2 * 2 == 2 * 4
    with open(ddp / "test_results.csv", newline="") as f:
        assert [r["track"] for r in csv.DictReader(f)] == ["test song 0", "test song 1", "median"]
    log = finish(run_torchrun(data, ddp, *debug_flags(recipe_rows()[0], **dict(ONE_EPOCH, N_epochs=2))))
    assert "Loading a checkpoint from" in log and optimizer_steps(ddp) == 2 * 2
    assert "Going into epoch 2" in log and "Going into epoch 1" not in log
    epochs = [l.split(",")[0] for l in (ddp / "train_log.txt").read_text().splitlines() if l.startswith("epoch:")]
    assert epochs == ["epoch: 1", "epoch: 2"]


@pytest.mark.slow
def test_evaluation_in_worker_processes_gives_the_serial_numbers(one_epoch, tmp_path):
    """``eval_jobs: 2`` scores the test tracks in two worker processes, to the last digit of one: a
    copy of the one-epoch run, whose rerun has no epoch left to train, against that run's scores."""
    data, first = one_epoch
    out = tmp_path / "out"
    shutil.copytree(first, out)
    (out / "test_results.csv").unlink()  # written anew, or the test fails
    log = finish(run_recipe(data, out, *debug_flags(recipe_rows()[0], **dict(ONE_EPOCH, eval_jobs=2))))
    assert "Going into epoch 1" not in log
    serial, parallel = ((run / "test_results.csv").read_text() for run in (first, out))
    assert parallel == serial and serial.count("\ntest song ") == 2  # every digit of every score


@pytest.mark.slow
def test_recipe_trains_on_extra_pairs_and_instrumental_roots(tiny_musdb, tmp_path):
    """``extra_roots``: short MIR-1K-style clips (shorter than a patch: padded) and instrumental music
    (no vocals, no drums, no bass: silent stems) train next to the MUSDB18 tracks."""
    import numpy as np

    pairs, music = tmp_path / "pairs", tmp_path / "music"
    for clip in ("singer_1_01", "singer_2_01"):
        (pairs / clip).mkdir(parents=True)
        for source, freq in (("vocals", 440), ("accompaniment", 110)):
            t = np.arange(8000) / 16000
            sf.write(pairs / clip / f"{source}.flac", 0.1 * np.sin(2 * np.pi * freq * t), 16000)
    music.mkdir()
    sf.write(music / "a.ogg", 0.1 * np.random.default_rng(0).standard_normal((44100, 2)), 44100)
    out = tmp_path / "out"
    flags = debug_flags(recipe_rows()[0], N_epochs=1, eval_reference_rows=False)
    finish(run_recipe(tiny_musdb, out, *flags, f"--extra_roots=[pairs:{pairs}, instrumental:{music}]"))
    with open(out / "save" / "train.csv", newline="") as f:
        ids = [r["ID"] for r in csv.DictReader(f)]
    assert ids[-2:] == ["pairs-singer_2_01", "music-a"]
    _, record = assert_card_states_origin_and_scores(out)
    datasets = {d["name"]: (d["licence"], d["tracks"], d["validation_tracks"]) for d in record["training"][-1]["datasets"]}
    assert datasets == {"musdb18": ("other", 2, 1), "pairs": ("other", 1, 1), "music": ("other", 1, 0)}


@pytest.mark.slow
def test_init_model_fine_tunes_that_model_at_its_own_settings_and_resumes(tiny_musdb, tmp_path):
    """--init_model=FILE: a stereo model with Spleeter's layers trains on stereo chunks at its own settings
    (the debug flags describe another model), batch norm frozen, and a second run resumes."""
    import torch

    from asteroid_unet import UNet
    from asteroid_unet.model import spleeter_args

    torch.manual_seed(0)
    init = UNet(**dict(spleeter_args(), sample_rate=8192.0, n_fft=512, hop_length=128, n_bins=64, patch_frames=16,
                       patch_hop=16, n_layers=2, first_channels=4))
    torch.save(init.serialize(), tmp_path / "init.pth")
    row, out = recipe_rows()[0], tmp_path / "out"
    flags = [f"--init_model={tmp_path / 'init.pth'}", "--freeze_norm=True"]
    finish(run_recipe(tiny_musdb, out, *debug_flags(row, N_epochs=1, eval_reference_rows=False), *flags))
    tuned = UNet.from_pretrained(str(out / "best_model.pth"))
    args = tuned.get_model_args()
    run = args.pop("provenance")["training"][-1]  # the run, on the record
    assert run["recipe"].startswith("recipes/MUSDB18/separation")
    assert {**args, "provenance": None} == init.get_model_args()  # every setting of the init model
    before, after = init.state_dict(), tuned.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("conv.weight"))
    assert all(torch.equal(before[k], after[k]) for k in before if k.endswith(("running_mean", "running_var")))
    log = finish(run_recipe(tiny_musdb, out, *debug_flags(row, N_epochs=2, eval_reference_rows=False), *flags))
    assert "Loading a checkpoint from" in log and "Going into epoch 2" in log and "Going into epoch 1" not in log
