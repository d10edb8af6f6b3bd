#!/usr/bin/env bash
# Short same-seed runs of the three training commands, for comparing two versions of dpattern:
#   benchmarks/same_seed.sh OUT_DIR      (run from the checkout to measure; then benchmarks/compare_runs.py A B)
set -euo pipefail
o=${1:?usage: benchmarks/same_seed.sh OUT_DIR}; mkdir -p "$o"
dpattern nca train --task grow --size 16 --pad 4 --batch 4 --steps 16 24 --pool-size 16 --iters 50 --seed 3 --out "$o/nca" --quiet
dpattern pde fit --size 24 --iters 30 --seed 2 --out "$o/pde" --quiet
dpattern abm train --agents 64 --size 24 --steps 16 --batch 2 --hidden 16 --iters 20 --seed 1 --out "$o/abm" --quiet
