#!/usr/bin/env bash
# The core install in a throwaway venv: `pip install .` with the core dependencies only, then
# `asteroid-unet separate` and `asteroid-infer` on a stereo song, then `pip uninstall`, which must
# remove the auto-registration .pth and leave Python starting cleanly; the same for `pip install -e .`.
# Usage: .ci/fresh_install.sh [WORKDIR]   (about 5 GB and a few minutes: it installs torch)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
cd "$work"
python3 -m venv venv
site="$(venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
check_clean() {
  if ls "$site" | grep -q -i 'asteroid_unet'; then echo "FAIL: left behind: $(ls "$site" | grep -i asteroid_unet)"; exit 1; fi
  [ -z "$(venv/bin/python -c pass 2>&1)" ] || { echo "FAIL: python start-up prints errors"; exit 1; }
}
separate_both_ways() {
  rm -rf separated infer && mkdir infer
  venv/bin/asteroid-unet separate song.wav
  venv/bin/asteroid-infer "$repo/asteroid_unet/weights/unet_default.pth" --files song.wav -o infer -d cpu
  venv/bin/python -c "
import soundfile as sf
for f in ['separated/song/vocals.wav', 'infer/song_est1.wav']:
    i = sf.info(f); assert (i.samplerate, i.channels, i.frames) == (44100, 2, 3 * 44100), (f, i)
print('stems OK')"
}
venv/bin/pip install -q "$repo"
for heavy in speechbrain hydra-core musdb museval librosa mido; do
  if venv/bin/pip show -q "$heavy" 2>/dev/null; then echo "FAIL: core install pulled $heavy"; exit 1; fi
done
venv/bin/python -c "
import numpy as np, soundfile as sf
t = np.arange(3 * 44100) / 44100
sf.write('song.wav', 0.2 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1), 44100)"
separate_both_ways
venv/bin/pip uninstall -y -q asteroid-unet && check_clean
venv/bin/pip install -q --no-deps -e "$repo"
separate_both_ways
venv/bin/pip uninstall -y -q asteroid-unet && check_clean
echo "fresh install OK in $work"
