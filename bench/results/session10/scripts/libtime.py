import time, sys, dask
from xrdbatch import train
p = {"height_rel": 0.04}
for sched in ("synchronous", "threads"):
    with dask.config.set(scheduler=sched):
        t = time.perf_counter(); lib = train.reference_library("/tmp/s10/real.zarr", p); dt = time.perf_counter() - t
    print(sched, len(lib), f"{dt:.2f} s", flush=True)
from distributed import Client, LocalCluster
import numpy as np
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1) as c, Client(c):
        t = time.perf_counter(); lib2 = train.reference_library("/tmp/s10/real.zarr", p); dt = time.perf_counter() - t
        print("distributed", len(lib2), f"{dt:.2f} s", np.array_equal(lib.lines, lib2.lines, equal_nan=True), lib.labels.equals(lib2.labels))
