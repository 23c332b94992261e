#!/usr/bin/env bash
# Regenerate the committed examples in jobs/slurm and jobs/k8s (tests/test_jobs.py checks they are current).
# Usage: jobs/render-examples.sh [OUT_DIR]   (default: the folder of this script)
set -euo pipefail
OUT="${1:-$(cd "$(dirname "$0")" && pwd)}"
# SLURM: a site with partition "cpu", project account "myproject", the image built from containers/.
xrdbatch jobs render slurm all --out-dir "$OUT/slurm" \
    --partition cpu --account myproject --time 04:00:00 --nodes 4 --shards 16 --max-parallel 8 \
    --image xrdbatch.sif --setup "module load apptainer" \
    --source cifs/ --catalog catalog.parquet --store store.zarr --model model --archive archive/ \
    --results results.parquet
# Kubernetes: the image from a registry, data on a PersistentVolumeClaim named xrdbatch-data.
xrdbatch jobs render k8s all --out-dir "$OUT/k8s" \
    --nodes 4 --cpus-per-node 4 --time 04:00:00 --shards 16 --max-parallel 8 \
    --image ghcr.io/xrdbatch/xrdbatch:0.1.0 --pvc xrdbatch-data --namespace xrdbatch \
    --source cifs/ --archive archive/
