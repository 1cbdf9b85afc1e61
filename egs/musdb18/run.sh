#!/usr/bin/env bash
# The U-Net (Jansson et al., ISMIR 2017) on MUSDB18, the Asteroid way.
#   stage 0: data      (convert --musdb_root once, or synthesize a small set)
#   stage 1: train     (Hydra config in conf/; overrides after --)
#   stage 2: evaluate  (museval with MIX and IRM rows)
#   stage 3: export    (Hugging Face Hub folder)
# Examples:
#   ./run.sh --n_songs 8 --duration 20                      # synthetic set, end to end
#   ./run.sh --musdb_root /data/musdb18 --exp_dir exp/full   # real MUSDB18 (stems or HQ wav)
#   ./run.sh --musdb_root /data/musdb18 --extra_roots "pairs:/data/mir-1k instrumental:/data/music"
#   ./run.sh --stage 1 -- trainer.max_epochs=5 data.batch_size=16 model.n_layers=5
#   ./run.sh --musdb_root /data/musdb18 --init spleeter-2stems --config finetune_quick   # fine-tune Spleeter's U-Nets, 100 steps
set -euo pipefail

stage=0
stop_stage=3
musdb_root=""          # MUSDB18 / MUSDB18-HQ root; empty: build a synthetic set
extra_roots=""         # more training data, "KIND:DIR ...": pairs (<clip>/{vocals,accompaniment}.*, MIR-1K) or instrumental (music files)
instrumental_exclude="elf-land.ogg,battle-epic.ogg"  # instrumental files with singing (these two: Wesnoth's music)
n_songs=20             # synthetic set: songs (a quarter of them, at least one, for test)
duration=30            # synthetic set: seconds per song
seed=0                 # synthetic set: seed (same seed, same audio)
sample_rate=8192       # the model's rate (stage 0 resamples to it); with --init, the initial model's
init=""                # fine-tune this model (a name such as spleeter-2stems, a file or a Hub id) at its own settings
config=config          # training config in conf/: config (the paper's training) or finetune_quick (with --init)
data_dir=data
exp_dir=exp/unet
eval_root=""           # stage 2 root; default: the training root's test subset
repo_id=asteroid-unet/unet-musdb18
license=""             # Hub licence of the export; empty: the most restrictive of the base weights' and the data's
python=${PYTHON:-}      # the Python with asteroid-unet[train]; default: the active venv's, else the clone's .venv, else python3

options() { sed -n '/^stage=0/,/^python=/p' "$0"; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; echo "Options (default):"; options | sed 's/^/  --/'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --) shift; break ;;
    -h|--help) usage; exit 0 ;;
    --*)
      name=${1#--}
      if ! options | grep -qE "^${name}=" || [[ $# -lt 2 ]]; then echo "run.sh: unknown option or missing value: $1" >&2; usage >&2; exit 1; fi
      value=$2
      case "$name" in musdb_root|eval_root|data_dir|exp_dir) [[ -z $value || $value == /* ]] || value=$PWD/$value ;; esac
      printf -v "$name" '%s' "$value"; shift 2 ;;
    *) echo "run.sh: unexpected argument $1 (Hydra overrides go after --)" >&2; exit 1 ;;
  esac
done
overrides=("$@")

caller_dir=$PWD
recipe_dir=$(cd "$(dirname "$0")" && pwd)
if [[ -z $python ]]; then
  if [[ -n ${VIRTUAL_ENV:-} ]]; then python=$VIRTUAL_ENV/bin/python
  elif [[ -x $recipe_dir/../../.venv/bin/python ]]; then python=$recipe_dir/../../.venv/bin/python
  else python=python3; fi
fi
command -v "$python" >/dev/null || { echo "run.sh: no Python at $python: pass --python VENV/bin/python" >&2; exit 1; }
"$python" "$recipe_dir/local/check_env.py" "$stage" "$stop_stage" || exit 1
if [[ -n $init ]]; then
  [[ ! -e $init || $init == /* ]] || init=$caller_dir/$init
  sample_rate=$($python -c 'import sys; from asteroid_unet import load_model; print(int(load_model(sys.argv[1]).sample_rate))' "$init")
fi
cd "$(dirname "$0")"  # default paths are relative to the recipe; paths given as options to the caller's folder
if [[ -z "$musdb_root" ]]; then
  musdb_root=$data_dir/synth-n${n_songs}-d${duration}-s${seed}
  synthetic=true
else
  synthetic=false
fi
prepared=$data_dir/prepared-$(basename "$musdb_root")
for entry in $extra_roots; do prepared+=+$(basename "${entry#*:}"); done
prepared+=-${sample_rate}
eval_root=${eval_root:-$musdb_root}

if [[ $stage -le 0 && $stop_stage -ge 0 ]]; then
  echo "Stage 0: data -> $prepared"
  if $synthetic && [[ ! -f $musdb_root/synth.json ]]; then
    n_test=$(( n_songs / 4 > 0 ? n_songs / 4 : 1 ))
    $python -m asteroid_unet.synth --out "$musdb_root" --n-train $(( n_songs - n_test )) --n-test $n_test \
      --duration "$duration" --seed "$seed"
  fi
  $python local/prepare_data.py --musdb_root "$musdb_root" --out "$prepared" --sample_rate "$sample_rate"
  for entry in $extra_roots; do
    kind=${entry%%:*} root=${entry#*:}
    [[ $root == /* ]] || root=$caller_dir/$root
    case "$kind" in
      pairs) $python local/prepare_pairs.py --root "$root" --out "$prepared" --sample_rate "$sample_rate" ;;
      instrumental) $python local/prepare_instrumental.py --root "$root" --out "$prepared" --sample_rate "$sample_rate" \
                      --exclude "$instrumental_exclude" ;;
      *) echo "run.sh: --extra_roots entries are pairs:DIR or instrumental:DIR, got $entry" >&2; exit 1 ;;
    esac
  done
fi

if [[ $stage -le 1 && $stop_stage -ge 1 ]]; then
  echo "Stage 1: train -> $exp_dir"
  init_arg=()
  [[ -z $init ]] || init_arg=("init='$init'")
  $python train.py --config-name "$config" exp_dir="$exp_dir" data.root="$prepared" model.sample_rate="$sample_rate" \
    "${init_arg[@]}" "${overrides[@]}"
fi

if [[ $stage -le 2 && $stop_stage -ge 2 ]]; then
  echo "Stage 2: evaluate $exp_dir/best_model.pth on $eval_root -> $exp_dir/eval"
  $python eval.py --model "$exp_dir/best_model.pth" --root "$eval_root" --subset test --out_dir "$exp_dir/eval"
fi

if [[ $stage -le 3 && $stop_stage -ge 3 ]]; then
  echo "Stage 3: export -> $exp_dir/hub"
  license_arg=()
  [[ -z $license ]] || license_arg=(--license "$license")
  $python -m asteroid_unet.hub export --model "$exp_dir/best_model.pth" --out "$exp_dir/hub" --repo-id "$repo_id" \
    --results "$exp_dir/eval/summary.json" --eval-set "$(basename "$eval_root") test" --config "$exp_dir/conf.yaml" \
    "${license_arg[@]}"
  echo "Upload with: $python -m asteroid_unet.hub upload --folder $exp_dir/hub --repo-id $repo_id"
fi
