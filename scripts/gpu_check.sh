#!/usr/bin/env bash
# Time training epochs of the tutorial's model on an NVIDIA GPU through PyTensor's JAX mode.
#
# Usage: scripts/gpu_check.sh DATASET [extra train flags]
#   DATASET is anything --dataset accepts: a preprocessed imdb.pkl, an aclImdb
#   folder or .tar.gz archive, or 'imdb'.
#
# Needs jax with CUDA in the active environment, for example
#   pip install -e '.[jax]' 'jax[cuda12]'
# Prints the GPU, JAX's devices, then trains 3 epochs at the tutorial's settings
# (dim_proj 128, batch 16, maxlen 100, float32) with a 500-review test subset.
# The first epoch includes compiling one graph per bucket of padded lengths; the
# later epochs are the steady speed. JAX_PLATFORMS=cuda (the default here) makes
# JAX fail instead of falling back to the CPU; set JAX_PLATFORMS=cpu to try the
# script without a GPU.
# NOTE: run only with JAX_PLATFORMS=cpu so far; no GPU machine was available.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
    echo "usage: $0 DATASET [extra train flags]" >&2
    exit 2
fi
dataset=$1
shift
PYTHON=${PYTHON:-python}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cuda}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
"$PYTHON" -c 'import jax; print("jax", jax.__version__, "devices", jax.devices())'

output=$(mktemp -d)
trap 'rm -rf "$output"' EXIT
"$PYTHON" -m lstm_tutorial.train --dataset "$dataset" --mode JAX --lstm_impl scan \
    --max_epochs 3 --test_size 500 --validFreq 1000000 --dispFreq 1000000 \
    --saveto "$output/gpu_check.npz" "$@" 2>&1 | tee "$output/train.log"

echo "--- summary"
grep -E "compile function=|epoch=[0-9]+ samples=|done epochs=" "$output/train.log"
