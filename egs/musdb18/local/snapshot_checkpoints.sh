#!/usr/bin/env bash
# Run next to train.py: keep the model weights of every new checkpoints/last.ckpt of a run as
# <exp_dir>/snapshots/epochNNN.pt (train.py keeps only the best and the last checkpoint), so
# local/average_checkpoints.py can average snapshots afterwards. Stop it with kill.
# With Lightning 2.6 and the recipe's ModelCheckpoint, last.ckpt was rewritten only when the
# validation loss improved, so in practice this keeps every best-so-far model.
#   local/snapshot_checkpoints.sh exp/default_weights &
set -uo pipefail
PYTHON=${PYTHON:-$(realpath "$(dirname "$0")/../../..")/.venv/bin/python}
cd "$1"
mkdir -p snapshots
prev=""
while true; do
  m=$(stat -L -c %Y checkpoints/last.ckpt 2>/dev/null)
  if [ -n "$m" ] && [ "$m" != "$prev" ]; then
    sleep 5
    "$PYTHON" -c "
import torch; c = torch.load('checkpoints/last.ckpt', map_location='cpu', weights_only=False)
torch.save({'epoch': c['epoch'], 'global_step': c['global_step'], 'state_dict': c['state_dict']},
           'snapshots/epoch%03d.pt' % c['epoch'])
" 2>/dev/null
    prev=$m
  fi
  sleep 20
done
