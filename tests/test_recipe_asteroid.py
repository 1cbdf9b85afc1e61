"""The Asteroid recipe egs/musdb18/run.sh, end to end on a tiny synthetic set (CPU)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asteroid_unet import UNet
from helpers import load_from_offline_hub

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "musdb18"
TINY = ["model.n_layers=4", "model.first_channels=4", "model.patch_frames=32", "model.patch_hop=16",
        "model.n_bins=128", "data.batch_size=4", "data.num_workers=0", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1"]

pytestmark = pytest.mark.slow


def run_recipe(tmp, *args, overrides=(), **popen):
    cmd = ["bash", str(RECIPE / "run.sh"), "--data_dir", str(tmp / "data"), "--n_songs", "4", "--duration", "4",
           "--seed", "3", *args, "--", *TINY, *overrides]
    env = dict(os.environ, PYTHON=sys.executable)
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out.stdout


# The shared runs below: 4 chunks per track, on the CPU, training seed 7 (the data set's is --seed 3).
SHARED = ["data.samples_per_track=4", "trainer.accelerator=cpu", "seed=7"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """One run of stages 0-3 (2 epochs), shared by the tests: ``(folder, exp_dir, stdout)``. The tests
    read its data and outputs, and write their own runs beside it."""
    tmp = tmp_path_factory.mktemp("recipe")
    exp = tmp / "exp"
    stdout = run_recipe(tmp, "--exp_dir", str(exp), overrides=["trainer.max_epochs=2", *SHARED])
    return tmp, exp, stdout


@pytest.fixture(scope="module")
def one_epoch(recipe):
    """A stage-1 run of one epoch on one CPU device with the recipe run's data and settings: its exp_dir."""
    tmp, _, _ = recipe
    exp = tmp / "one-epoch"
    run_recipe(tmp, "--stage", "1", "--stop_stage", "1", "--exp_dir", str(exp), overrides=["trainer.max_epochs=1", *SHARED])
    return exp


def test_each_stage_writes_its_files(recipe):
    tmp, exp, _ = recipe
    synth = tmp / "data" / "synth-n4-d4-s3"
    assert len(list((synth / "train").iterdir())) == 3 and len(list((synth / "test").iterdir())) == 1
    prepared = tmp / "data" / "prepared-synth-n4-d4-s3-8192"
    tracks = json.loads((prepared / ".prepared" / "musdb.json").read_text())["tracks"]
    assert len(tracks["train"]) == 2 and len(tracks["valid"]) == 1
    for split in ("train", "valid"):
        for name in tracks[split]:
            assert {p.name for p in (prepared / split / name).iterdir()} == {"vocals.wav", "accompaniment.wav"}
    assert (exp / "conf.yaml").is_file() and (exp / "checkpoints" / "last.ckpt").is_file()
    assert len(list((exp / "checkpoints").glob("epoch=*-val_loss=*.ckpt"))) == 1
    assert (exp / "best_model.pth").is_file() and list((exp / "logs").glob("version_*/metrics.csv"))
    results = json.loads((exp / "train_results.json").read_text())
    assert results["global_step"] == 2 * (2 * 4 // 4) and results["best_val_loss"] > 0
    assert len(list((exp / "eval" / "tracks").glob("*.json"))) == 1
    assert (exp / "eval" / "summary.json").is_file() and (exp / "eval" / "summary.md").is_file()
    assert {p.name for p in (exp / "hub").iterdir()} >= {"pytorch_model.bin", "README.md", "training_config.yaml"}


def test_overrides_reach_the_trained_model(recipe):
    _, exp, _ = recipe
    model = UNet.from_pretrained(str(exp / "best_model.pth"))
    assert model.patch_frames == 32 and model.n_bins == 128 and model.masknet_args["n_layers"] == 4
    assert "patch_frames: 32" in (exp / "hub" / "training_config.yaml").read_text()


def test_summary_has_mix_and_irm_rows_with_irm_above_mix(recipe):
    _, exp, stdout = recipe
    summary = json.loads((exp / "eval" / "summary.json").read_text())
    assert set(summary) == {"MIX", "IRM", "UNet"}
    for target in ("vocals", "accompaniment"):
        assert summary["IRM"][target]["SDR"] > summary["MIX"][target]["SDR"] + 3
        for metric in ("SDR", "SIR", "SAR"):
            assert isinstance(summary["UNet"][target][metric], float)
    assert summary["UNet"]["time_s"] > 0
    assert "| MIX |" in stdout and "| IRM |" in stdout and "| UNet |" in stdout  # the table is printed
    card = (exp / "hub" / "README.md").read_text()
    assert "library_name: asteroid" in card and "synthetic-musdb18" in card and "| IRM |" in card


def test_exported_folder_loads_locally_and_offline_from_the_hub_cache(recipe, tmp_path):
    _, exp, _ = recipe
    reference = UNet.from_pretrained(str(exp / "best_model.pth")).eval()
    local = UNet.from_pretrained(str(exp / "hub" / "pytorch_model.bin")).eval()
    x = torch.randn(1, 30000)
    with torch.no_grad():
        torch.testing.assert_close(local(x), reference(x))
    printed = load_from_offline_hub(tmp_path / "cache", "asteroid-unet/unet-musdb18", exp / "hub" / "pytorch_model.bin",
                                    "patch_frames")
    assert printed == ["UNet", "32"]


def test_training_resumes_after_kill(recipe):
    tmp, _, _ = recipe
    exp = tmp / "exp-resume"
    steps_per_epoch = 2 * 32 // 4
    stage1 = ["--stage", "1", "--stop_stage", "1", "--exp_dir", str(exp)]
    proc = run_recipe(tmp, *stage1, overrides=["trainer.max_epochs=1000", "data.samples_per_track=32"],
                      start_new_session=True)
    last = exp / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 300
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert last.exists(), proc.stdout.read() if proc.poll() is not None else "no checkpoint in time"
        time.sleep(1.0)  # into the next epoch
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(last, map_location="cpu", weights_only=False)
    epoch, step = saved["epoch"], saved["global_step"]
    assert step == (epoch + 1) * steps_per_epoch
    stdout = run_recipe(tmp, *stage1, overrides=[f"trainer.max_epochs={epoch + 3}", "data.samples_per_track=32"])
    assert f"Resuming from {last} (epoch {epoch}, step {step})" in stdout
    results = json.loads((exp / "train_results.json").read_text())
    assert results["global_step"] == (epoch + 3) * steps_per_epoch  # continued, not restarted from 0
    assert (exp / "best_model.pth").is_file()


def test_bad_option_is_reported():
    out = subprocess.run(["bash", str(RECIPE / "run.sh"), "--no_such_option", "1"], capture_output=True, text=True)
    assert out.returncode == 1 and "unknown option" in out.stderr


@pytest.mark.parametrize("hidden, stages", [("pkg_resources", "1 1"), ("museval", "0 3"), ("hydra", "1 3")])
def test_a_missing_package_stops_the_recipe_in_one_line_naming_the_extra(hidden, stages):
    """Looked up before any stage runs (setuptools 81 and later lack pkg_resources, which Asteroid's
    torchmetrics imports)."""
    code = (f"import runpy, sys; sys.modules[{hidden!r}] = None; sys.argv[1:] = {stages.split()!r}; "
            f"runpy.run_path({str(RECIPE / 'local' / 'check_env.py')!r}, run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"run.sh: {sys.executable} cannot import {hidden}: install") and "'.[train]'" in out.stderr
    assert subprocess.run([sys.executable, str(RECIPE / "local" / "check_env.py"), *stages.split()]).returncode == 0


def test_fixed_seed_gives_the_same_first_epoch_loss(recipe, one_epoch):
    """Two runs with the same seed train identically: same first-epoch losses, bit for bit (here the
    recipe run's first of 2 epochs and a 1-epoch run)."""
    import csv

    _, exp, _ = recipe

    def first_epoch_losses(exp):
        rows = list(csv.DictReader(next((exp / "logs").glob("version_*/metrics.csv")).open()))
        return [(r.get("loss"), r.get("val_loss")) for r in rows if r["epoch"] == "0" and (r.get("loss") or r.get("val_loss"))]

    first, second = first_epoch_losses(exp), first_epoch_losses(one_epoch)
    assert first and first == second


def test_last_checkpoint_follows_the_latest_epoch_without_improvement(recipe):
    """With lr 0 the validation loss never improves; last.ckpt must still hold the final epoch."""
    tmp, _, _ = recipe
    exp = tmp / "no_improvement"
    run_recipe(tmp, "--stage", "1", "--stop_stage", "1", "--exp_dir", str(exp),
               overrides=["trainer.max_epochs=3", "data.samples_per_track=4", "optim.lr=0.0"])
    last = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    results = json.loads((exp / "train_results.json").read_text())
    assert last["epoch"] == 2 and last["global_step"] == results["global_step"] == 3 * (2 * 4 // 4)
    assert len(list((exp / "checkpoints").glob("epoch=0-*.ckpt"))) == 1  # the best stays the first epoch


def epoch_samples(exp):
    """Training chunks per epoch (summed over DDP processes), from every metrics.csv of a run."""
    import csv

    rows = [r for f in sorted((exp / "logs").glob("version_*/metrics.csv")) for r in csv.DictReader(f.open())]
    return [float(r["epoch_samples"]) for r in rows if r.get("epoch_samples")]


def test_ddp_on_two_cpu_processes_matches_one_device_and_resumes(recipe, one_epoch):
    """Lightning DDP (2 gloo processes): the same chunks per epoch and checkpoint layout as one device,
    half the optimizer steps (each sees half the batches), and a second run resumes."""
    tmp, _, _ = recipe
    stage1 = ["--stage", "1", "--stop_stage", "1"]
    ddp = ["trainer.devices=2", "trainer.strategy=ddp"]
    single_exp, ddp_exp = one_epoch, tmp / "ddp"
    run_recipe(tmp, *stage1, "--exp_dir", str(ddp_exp), overrides=["trainer.max_epochs=1", *SHARED, *ddp])  # one_epoch on 2 devices
    assert epoch_samples(single_exp) == epoch_samples(ddp_exp) == [2 * 4]  # 2 train tracks x 4 chunks
    single = json.loads((single_exp / "train_results.json").read_text())
    parallel = json.loads((ddp_exp / "train_results.json").read_text())
    assert (single["global_step"], parallel["global_step"]) == (2, 1)  # batch 4 per device
    for exp in (single_exp, ddp_exp):
        assert {p.name.split("-")[0] for p in (exp / "checkpoints").iterdir()} == {"epoch=0", "last.ckpt"}
    keys = [set(torch.load(e / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]) for e in (single_exp, ddp_exp)]
    assert keys[0] == keys[1]
    assert UNet.from_pretrained(str(ddp_exp / "best_model.pth")).patch_frames == 32

    stdout = run_recipe(tmp, *stage1, "--exp_dir", str(ddp_exp), overrides=["trainer.max_epochs=2", *SHARED, *ddp])
    assert f"Resuming from {ddp_exp / 'checkpoints' / 'last.ckpt'} (epoch 0, step 1)" in stdout
    assert json.loads((ddp_exp / "train_results.json").read_text())["global_step"] == 2
    assert epoch_samples(ddp_exp) == [8, 8]


def test_eval_in_worker_processes_gives_the_serial_numbers(recipe):
    """eval.py --jobs 2 scores the tracks in two worker processes (the first two training tracks: one
    per worker), to the last digit of --jobs 1, run here in the test process (one thread, as each worker)."""
    from threadpoolctl import threadpool_limits

    from helpers import run_script

    tmp, exp, _ = recipe
    summaries = {}
    for jobs in (1, 2):
        out = tmp / f"eval-jobs{jobs}"
        argv = [str(RECIPE / "eval.py"), "--model", str(exp / "best_model.pth"), "--device", "cpu", "--root",
                str(tmp / "data" / "synth-n4-d4-s3"), "--subset", "train", "--max_tracks", "2", "--out_dir", str(out),
                "--jobs", str(jobs)]
        if jobs == 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with threadpool_limits(1):
                    run_script(*argv)
            finally:
                torch.set_num_threads(threads)
        else:
            result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
        tracks = sorted((out / "tracks").glob("*.json"))
        assert len(tracks) == 2
        summaries[jobs] = [{row: {k: v for k, v in s.items() if k != "time_s"} for row, s in json.loads(t.read_text()).items()}
                           for t in tracks]
    assert summaries[1] == summaries[2]


def tiny_stereo_model() -> UNet:
    """A small stereo model with Spleeter's layers and masks, at the recipe's 8192 Hz."""
    from asteroid_unet.model import spleeter_args

    torch.manual_seed(0)
    args = dict(spleeter_args(), sample_rate=8192.0, n_fft=512, hop_length=128, n_bins=64, patch_frames=16,
                patch_hop=16, n_layers=2, first_channels=4)
    return UNet(**args).eval()


def test_init_fine_tunes_that_model_at_its_own_settings_and_resumes(recipe, tmp_path):
    """run.sh --init FILE: the model section of the config is not used (the TINY overrides describe
    another model), the weights start from the file and train, frozen batch norm keeps its statistics,
    and a second run goes on from the last checkpoint."""
    tmp, _, _ = recipe
    init = tiny_stereo_model()
    torch.save(init.serialize(), tmp_path / "init.pth")
    exp = tmp / "exp-init"
    stage1 = ["--stage", "1", "--stop_stage", "1", "--exp_dir", str(exp), "--init", str(tmp_path / "init.pth")]
    common = ["data.samples_per_track=2", "freeze_norm=true", "data.batch_size=2"]
    stdout = run_recipe(tmp, *stage1, overrides=["trainer.max_epochs=1", *common])
    assert "Fine-tuning" in stdout
    tuned = UNet.from_pretrained(str(exp / "best_model.pth"))
    args = tuned.get_model_args()
    assert args.pop("provenance")["training"][-1]["recipe"].startswith("egs/musdb18")  # the run, on the record
    assert {**args, "provenance": None} == init.get_model_args()  # every setting of the init model
    before, after = init.state_dict(), tuned.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("conv.weight"))
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    stdout = run_recipe(tmp, *stage1, overrides=["trainer.max_epochs=2", *common])
    assert f"Resuming from {exp / 'checkpoints' / 'last.ckpt'} (epoch 0" in stdout
    assert json.loads((exp / "train_results.json").read_text())["epochs"] == 2


def test_val_sdr_picks_the_checkpoint_and_ratio_loss_trains_the_decoders(recipe, tmp_path):
    """val_sdr=true: each epoch logs the validation tracks' median vocals SDR, the best checkpoint is the
    epoch with the highest, and it is the SDR of the exported model separated by the package; with
    freeze_encoder and the ratio-mask loss only the decoders move."""
    import numpy as np

    from asteroid_unet.data import load_tracks
    from asteroid_unet.evaluate import bss_eval
    from asteroid_unet.separator import Separator

    tmp, _, _ = recipe
    init = tiny_stereo_model()
    torch.save(init.serialize(), tmp_path / "init.pth")
    exp = tmp / "exp-val-sdr"
    run_recipe(tmp, "--stage", "1", "--stop_stage", "1", "--exp_dir", str(exp), "--init", str(tmp_path / "init.pth"),
               overrides=["trainer.max_epochs=2", "data.samples_per_track=2", "data.batch_size=2", "val_sdr=true",
                          "loss_masks=ratio", "freeze_encoder=true", "freeze_norm=true", "optim.lr=1e-2"])
    logged = [float(row.split(",")[header.index("val_sdr")]) for metrics in [(exp / "logs" / "version_0" / "metrics.csv")]
              for header in [metrics.read_text().splitlines()[0].split(",")]
              for row in metrics.read_text().splitlines()[1:] if row.split(",")[header.index("val_sdr")]]
    assert len(logged) == 2 and all(np.isfinite(logged))
    results = json.loads((exp / "train_results.json").read_text())
    assert results["best_val_sdr"] == pytest.approx(max(logged), abs=1e-4)
    assert f"val_sdr={max(logged):.4f}" in results["best_checkpoint"]

    tuned = UNet.from_pretrained(str(exp / "best_model.pth"))
    before, after = init.state_dict(), tuned.state_dict()
    changed = {k for k in before if k.endswith("conv.weight") and not torch.equal(before[k], after[k])}
    assert changed and all(".decoder." in k for k in changed)
    separator = Separator(tuned, int(tuned.sample_rate))
    scores = []
    for track in load_tracks(tmp / "data" / "prepared-synth-n4-d4-s3-8192", "valid", ["vocals", "accompaniment"], 8192, 2):
        stems = separator.separate(track["vocals"] + track["accompaniment"])
        refs = {s: a.mT.double().numpy() for s, a in track.items()}
        scores.append(bss_eval(refs, {s: stems[s].mT.double().numpy() for s in refs}, 8192)["vocals"]["SDR"])
    assert float(np.nanmedian(scores)) == pytest.approx(results["best_val_sdr"], abs=1e-3)


def test_quick_fine_tuning_runs_its_stated_steps_and_its_card_names_base_data_licence_and_scores(tmp_path):
    """run.sh --init (a model carrying Spleeter 2stems' provenance record) --config finetune_quick on a
    MUSDB18 tree, stages 0 to 3. Training: exactly the 100 steps of batch 2 that conf/finetune_quick.yaml
    states, a validation every 25, the decoders trained and everything else (encoders, batch norm
    statistics) kept. Export: the weights' record gains the run, the card built from it says research
    use only (MUSDB18's terms, not the base's MIT), names the base model, the data and stage 2's scores,
    and a looser --license stops stage 3 in one line."""
    import csv

    from huggingface_hub import ModelCard
    from omegaconf import OmegaConf

    from asteroid_unet.weights import packaged_provenance
    from conftest import write_tiny_musdb

    quick = OmegaConf.load(RECIPE / "conf" / "finetune_quick.yaml")
    steps, per_epoch = int(quick.trainer.max_steps), int(quick.trainer.limit_train_batches)
    musdb = write_tiny_musdb(tmp_path / "musdb18-tiny", n_train=3, n_test=1, seconds=3.0)
    init = tiny_stereo_model()
    init.provenance = packaged_provenance("spleeter-2stems")
    torch.save(init.serialize(), tmp_path / "init.pth")
    exp = tmp_path / "exp"
    # 2 training tracks x 30 chunks: 30 batches of 2 per epoch, of which the config takes 25
    run_recipe(tmp_path, "--musdb_root", str(musdb), "--exp_dir", str(exp), "--init", str(tmp_path / "init.pth"),
               "--config", "finetune_quick", overrides=["data.samples_per_track=30", f"data.batch_size={quick.data.batch_size}"])
    results = json.loads((exp / "train_results.json").read_text())
    assert (steps, per_epoch) == (100, 25) and results["global_step"] == steps
    with open(next((exp / "logs").glob("version_*/metrics.csv"))) as f:
        val_losses = [row["val_loss"] for row in csv.DictReader(f) if row.get("val_loss")]
    assert len(val_losses) == steps // per_epoch
    before, after = init.state_dict(), UNet.from_pretrained(str(exp / "best_model.pth")).state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(".decoder." in k or ".last." in k for k in moved), sorted(moved)

    card = ModelCard.load(exp / "hub" / "README.md")
    assert (card.data.license, card.data.license_name) == ("other", "research-use-only")
    assert card.data.base_model == "spleeter-2stems" and card.data.datasets == ["musdb18"]
    summary = json.loads((exp / "eval" / "summary.json").read_text())
    assert {(r.dataset_name, r.metric_name, r.metric_value) for r in card.data.eval_results} == {
        ("musdb18-tiny test", f"{t} SDR (museval, median)", round(summary["UNet"][t]["SDR"], 3))
        for t in ("vocals", "accompaniment")}
    assert "non-commercial research use only" in card.text and "base weights spleeter-2stems: mit" in card.text
    record = UNet.from_pretrained(str(exp / "hub")).provenance
    run = record["training"][-1]
    assert run["steps"] == steps and run["config"]["data"]["root"] == "prepared-musdb18-tiny-8192"
    assert run["datasets"] == [{"name": "musdb18", "licence": "other", "terms": run["datasets"][0]["terms"],
                                "tracks": 2, "hours": round(2 * 3.0 / 3600, 3), "validation_tracks": 1}]
    assert run["evaluation_before"][0]["metrics"]["vocals"]["SDR"] == 7.97  # the base's scores, kept with the run
    assert str(tmp_path) not in json.dumps(record)  # no path of this machine in public weights
    cmd = ["bash", str(RECIPE / "run.sh"), "--stage", "3", "--exp_dir", str(exp), "--musdb_root", str(musdb),
           "--license", "mit"]
    out = subprocess.run(cmd, env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "licence mit is looser than the weights allow" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
