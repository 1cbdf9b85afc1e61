#!/usr/bin/env bash
# The training set of the packaged default weights, built from local sources only:
#   1. 40 + 2 synthetic MUSDB18-format songs of 20 s (asteroid_unet.synth, seed 7): FluidSynth-rendered
#      Debian MIDI (openttd-openmsx, GPL-2.0) with synthetic singing, or real singing in about half;
#   2. stage 0 (local/prepare_data.py) converts them to vocals/accompaniment at 8192 Hz:
#      32 train and 8 validation songs (the last fifth);
#   3. 49 semi-real tracks of 30 s (local/make_semireal.py, seed 0): the real singing of
#      ../../../shared/data/singing (CC BY 4.0), cut into pitch-shifted phrases, over the real
#      instrumental tracks of Debian's fretsonfire-songs-muldjord / -sectoid (CC BY-SA 3.0).
# Augmentation happens in train.py: random cross-track mixing and random gains per source.
# Run from egs/musdb18:   local/make_training_set.sh   (about 15 min on 2 CPU cores, mostly the FluidSynth renders)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-../../.venv/bin/python}
SINGING=${SINGING:-../../../shared/data/singing}
DATA=data
OUT=$DATA/default_weights

if [ ! -d "$DATA/fof" ]; then
  mkdir -p "$DATA/debs"
  (cd "$DATA/debs" && apt-get download fretsonfire-songs-muldjord fretsonfire-songs-sectoid)
  for deb in "$DATA"/debs/*.deb; do dpkg -x "$deb" "$DATA/fof"; done
fi
[ -f "$DATA/dw_synth/synth.json" ] || \
  (cd ../.. && $PYTHON -m asteroid_unet.synth --out egs/musdb18/$DATA/dw_synth --n-train 40 --n-test 2 \
     --duration 20 --seed 7 --singing-dir "$(cd egs/musdb18 && realpath "$SINGING")")
$PYTHON local/prepare_data.py --musdb_root "$DATA/dw_synth" --out "$OUT" --sample_rate 8192
$PYTHON local/make_semireal.py --singing_dir "$SINGING" \
  --backing_dir "$DATA/fof/usr/share/games/fretsonfire/data/songs" --out "$OUT" --sample_rate 8192 --seed 0
echo "train: $(ls "$OUT/train" | wc -l) tracks, valid: $(ls "$OUT/valid" | wc -l) tracks under $OUT"
