import sys, time
from xrdbatch import sources
if __name__ == "__main__":
    S = "/work/shared/data/structures/"
    t = time.time()
    print(sources.ingest_to_parquet([S + "aflow_prototypes", S + "spglib_poscars", S + "autoxrd_references",
                                     S + "cif_edge_cases", "builtin:prototypes"], "/tmp/xrdbatch-acc/catalog_real.parquet",
                                    dedupe=True, n_workers=2), time.time() - t, flush=True)
    for out, n, seed in (("/tmp/s3/catalog_syn3_12000.parquet", 12000, 3), ("/tmp/s7/catalog_syn7_24000.parquet", 24000, 7)):
        t = time.time()
        print(sources.ingest_to_parquet([f"synthetic:{n}"], out, seed=seed, dedupe=False, n_workers=2, batch_size=500),
              time.time() - t, flush=True)
