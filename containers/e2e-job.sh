#!/bin/bash
# A tiny end-to-end job inside the image (run by build-test.sh with the work folder bind-mounted at /work):
# the pipeline verbs on embedded data, then a scoring-array shard + merge exactly as the SLURM job runs them.
set -euo pipefail
cd /work
xrdbatch --version
xrdbatch ingest builtin:prototypes --out catalog.parquet
xrdbatch simulate --catalog catalog.parquet --store store.zarr --executor serial --chunk-size 100
python - <<'PY'
import xarray as xr
ds = xr.open_zarr("store.zarr")
ok = int((ds["sim_status"].values == "ok").sum())
assert ok >= 250, f"expected >= 250 simulated structures, got {ok}"
print(f"store.zarr: {ds.sizes['structure']} structures, {ok} ok, {ds.sizes['two_theta']} points")
PY
xrdbatch jobs render slurm all --out-dir jobs-slurm --image xrdbatch.sif
xrdbatch jobs render k8s all --out-dir jobs-k8s
ls jobs-slurm jobs-k8s
