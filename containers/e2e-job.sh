#!/bin/bash
# A tiny end-to-end job inside the image (run by build-test.sh with the work folder bind-mounted at /work):
# ingest -> simulate -> features -> train -> report, then two scoring shards + merge exactly as the SLURM array
# runs them, on patterns written from the store as .xy files.
set -euo pipefail
cd "${1:-/work}"
xrdbatch --version
xrdbatch ingest builtin:prototypes --out catalog.parquet
xrdbatch simulate --catalog catalog.parquet --store store.zarr --executor serial --chunk-size 100
xrdbatch features --store store.zarr --executor serial
xrdbatch train --store store.zarr --out model --n-jobs 2
xrdbatch report --model model --out report
python - <<'PY'
import numpy as np
from xrdbatch.store import open_dataset
ds = open_dataset("store.zarr")
ok = np.flatnonzero(ds["sim_status"].values == "ok")
assert len(ok) >= 250, f"expected >= 250 simulated structures, got {len(ok)}"
import os
os.makedirs("archive", exist_ok=True)
tt = ds["two_theta"].values
for i in ok[:5]:
    np.savetxt(f"archive/p{i:04d}.xy", np.column_stack([tt, 1000 * ds["intensity"].values[i] + 10]), fmt="%.4f")
print(f"store.zarr: {ds.sizes['structure']} structures, {len(ok)} ok; 5 patterns -> archive/")
PY
for i in 0 1; do
    xrdbatch jobs shard archive --index "$i" --count 2 --out "shards/shard-0000$i.txt"
    mapfile -t FILES < "shards/shard-0000$i.txt"
    xrdbatch score "${FILES[@]}" --model model --out "shards/shard-0000$i.parquet" --executor serial
done
xrdbatch jobs merge shards --expect 2 --out results.parquet
python -c "import pandas as pd; r = pd.read_parquet('results.parquet'); assert len(r) == 5, r; print(r[['file', 'crystal_system', 'crystal_system_prob']])"
xrdbatch jobs render slurm all --out-dir jobs-slurm --image xrdbatch.sif
xrdbatch jobs render k8s all --out-dir jobs-k8s
ls jobs-slurm jobs-k8s
