#!/usr/bin/env bash
# hub/ for the packaged `paper` weights: the recipe's stages 2 (museval on the test subset of
# MUSDB_ROOT) and 3 (Hub folder) on asteroid_unet/weights/unet_default.pth with its provenance
# record, and the run's record as its training config. The folder's README.md is the card that
# stage 3 builds from the record (the full story of these weights is the package's model_card.md).
# Usage, from anywhere:   [PYTHON=.venv/bin/python] egs/musdb18/local/export_default_weights.sh MUSDB_ROOT
# (MUSDB_ROOT: a MUSDB18 or MUSDB18-HQ root; the model card's tables were scored on MUSDB18-7's)
set -euo pipefail
[[ $# -eq 1 && -d $1 ]] || { echo "usage: $0 MUSDB_ROOT (a MUSDB18 or MUSDB18-HQ folder)" >&2; exit 1; }
eval_root=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
REPO_ID=${REPO_ID:-asteroid-unet/unet-paper}
STAGE_DIR=exp/default_weights_hub
RUN=runs/2026-11-26-cpu-finetune

mkdir -p $STAGE_DIR
python=${PYTHON:-python3}  # the Python with asteroid-unet[train] (an activated venv's python3, or PYTHON=...)
"$python" -c 'import sys, torch; from asteroid_unet.weights import read_package
torch.save(read_package("paper"), sys.argv[1])' $STAGE_DIR/best_model.pth  # the packaged file, its record inside
cp $RUN/train_config.yaml $STAGE_DIR/conf.yaml
./run.sh --stage 2 --stop_stage 3 --exp_dir $STAGE_DIR --eval_root "$eval_root" --repo_id "$REPO_ID" --python "$python"
rm -rf ../../hub && cp -r $STAGE_DIR/hub ../../hub
echo "hub/ ready: $(ls ../../hub | tr '\n' ' ')"
