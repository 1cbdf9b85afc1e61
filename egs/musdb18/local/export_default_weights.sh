#!/usr/bin/env bash
# hub/ for the packaged `paper` weights: the recipe's stages 2 (museval on the MUSDB18-7 test
# previews) and 3 (Hub folder) on asteroid_unet/weights/unet_default.pth, with the package's
# model card as the folder's README.md and the run's record as its training config.
# Run from anywhere:   egs/musdb18/local/export_default_weights.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-../../.venv/bin/python}
REPO_ID=${REPO_ID:-asteroid-unet/unet-paper}
STAGE_DIR=exp/default_weights_hub
RUN=runs/2026-11-26-cpu-finetune

mkdir -p $STAGE_DIR
cp ../../asteroid_unet/weights/unet_default.pth $STAGE_DIR/best_model.pth
cp $RUN/train_config.yaml $STAGE_DIR/conf.yaml
./run.sh --stage 2 --stop_stage 3 --python "$PYTHON" --exp_dir $STAGE_DIR \
  --eval_root ../../../shared/data/musdb18-7 --repo_id "$REPO_ID" --license other
cp ../../model_card.md $STAGE_DIR/hub/README.md
rm -rf ../../hub && cp -r $STAGE_DIR/hub ../../hub
echo "hub/ ready: $(ls ../../hub | tr '\n' ' ')"
