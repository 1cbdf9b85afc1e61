#!/usr/bin/env bash
# Export the packaged default weights (asteroid_unet/weights/unet_default.pth) as the Hugging Face
# folder hub/ at the repository root, with the recipe's stages 2 (evaluate) and 3 (export):
#   - exp/default_weights_hub/best_model.pth  <- the packaged fp16 weights (what the package uses)
#   - exp/default_weights_hub/conf.yaml       <- conf/default_weights.yaml composed by Hydra
#   - stage 2 scores it on the real Falcon 69 preview (musdb-preview, test subset)
#   - stage 3 writes exp/default_weights_hub/hub (Asteroid + SpeechBrain layouts)
#   - README.md is replaced by the repository's model_card.md (the same text, Hub front matter included)
#   - the folder is copied to ../../hub (a build artefact, gitignored).
# With --from-exp, first repack the best checkpoint of the training run exp/default_weights as the
# package's weights (local/pack_weights.py).
# Run from anywhere:   egs/musdb18/local/export_default_weights.sh [--from-exp]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-../../.venv/bin/python}
REPO_ID=${REPO_ID:-asteroid-unet/unet-default-synthetic}
STAGE_DIR=exp/default_weights_hub
WEIGHTS=../../asteroid_unet/weights/unet_default.pth

if [[ ${1:-} == --from-exp ]]; then
  $PYTHON local/pack_weights.py --model exp/default_weights/best_model.pth --out $WEIGHTS
fi
mkdir -p $STAGE_DIR
cp $WEIGHTS $STAGE_DIR/best_model.pth
$PYTHON train.py --config-name default_weights --cfg job 2>/dev/null | sed '/^hydra:/,$d' > $STAGE_DIR/conf.yaml
./run.sh --stage 2 --stop_stage 3 --python "$PYTHON" --exp_dir $STAGE_DIR \
  --eval_root ../../../shared/data/musdb-preview --repo_id "$REPO_ID" \
  --license other
cp ../../model_card.md $STAGE_DIR/hub/README.md
rm -rf ../../hub && cp -r $STAGE_DIR/hub ../../hub
echo "hub/ ready: $(ls ../../hub | tr '\n' ' ')"
