"""Binned Q fingerprint: max relative height of the peaks in 64 log-Q bins (0.45-6.0 1/A), for training rows
(same renders as the bench's cached features) and RRUFF dev (base + 6 shift views)."""
import sys, time
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/tmp/s11")
import numpy as np
import accuracy as A
from xrdbatch import augment, features

EDGES = np.exp(np.linspace(np.log(0.45), np.log(6.0), 65))


def fingerprint(pk):
    out = np.zeros((pk.n_patterns, 64), np.float32)
    b = np.clip(np.searchsorted(EDGES, pk.q_per_angstrom) - 1, 0, 63)
    np.maximum.at(out, (pk.pattern, b), pk.height.astype(np.float32))
    return out


def chunk_feats(refls, cond, seed, copy, start):
    rows, _ = augment.measured_patterns(refls, cond, params=augment.AugmentParams(), seed=seed, copy=copy, index_offset=start)
    pk = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, height_rel=0.04)
    return fingerprint(pk)


if __name__ == "__main__":
    from joblib import Parallel, delayed
    cond = A.target_conditions()
    specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0), ("/tmp/s7/catalog_syn7_24000.parquet", 0)]
    out = []
    for cat, n_sub in specs:
        refls, lab = A.reflections_of_catalog(cat, cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, n_sub, 0)
        for copy in range(2):
            t0 = time.time()
            parts = Parallel(n_jobs=2)(delayed(chunk_feats)(refls[a:a + 400], cond, 0, copy, a) for a in range(0, len(refls), 400))
            out.append(np.concatenate(parts)); print(cat, copy, len(refls), f"{time.time() - t0:.0f} s", flush=True)
    np.save("/tmp/s11/fp_train.npy", np.concatenate(out))
    files = A.MEASURED_SETS["rruff_minerals_dev"]()
    offs = [o for o in features.shift_offsets(0.06, 7) if o != 0]
    V = [[] for _ in range(1 + len(offs))]
    for rec, tt, y in A.measured_patterns(files, cond):
        pk = features.find_peaks(tt, y[None, :], cond.wavelength_angstrom, height_rel=0.04)
        V[0].append(fingerprint(pk)[0])
        for i, o in enumerate(offs):
            V[1 + i].append(fingerprint(features.shift_peaks(pk, o, cond.wavelength_angstrom))[0])
    np.save("/tmp/s11/fp_rruff.npy", np.array(V))
    print("done")
