#!/usr/bin/env bash
# Time the project's training epochs on an NVIDIA GPU through PyTensor's JAX mode.
#
# Needs jax with CUDA in the active environment (pip install "jax[cuda12]") and
# the preprocessed reviews (the benchmark preprocesses the archive once when the
# cache is empty). Extra arguments go to scripts/benchmark.py, for example
# --dataset PATH. Prints the GPU model, JAX's devices and the epoch table.
# NOTE: with pytensor 3.0.7 and jax 0.10.2 the JAX mode failed on the CPU while tracing
# the training graph ("Shapes must be 1D sequences of concrete values"), so this script
# has never completed; it needs that fixed first.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c 'import jax; print("jax", jax.__version__, jax.devices())'
# The JAX mode pads batches to a few lengths; each compiles once in the warm-up.
"$PYTHON" scripts/benchmark.py --mode JAX --no-torch --skip-same-cost --threads 2 \
    --epochs 3 "$@"
