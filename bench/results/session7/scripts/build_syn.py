import sys, time; sys.path.insert(0, "/tmp/s7/snapA")
from xrdbatch import sources
if __name__ == "__main__":
    t = time.time()
    out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(sources.ingest_to_parquet([f"synthetic:{n}"], out, seed=seed, dedupe=False, n_workers=2, batch_size=500))
    print("s", time.time() - t)
