import json, sys
exec(open("setup.py").read())
from xrdbatch import augment
refls, labr = accuracy.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, accuracy.DEFAULT_CACHE, 0, 0)
pos = {s: i for i, s in enumerate(labr["id"])}
sel = [r for r in np.flatnonzero(hit) if m["match_id"].iloc[r] in pos]
ref = [refls[pos[m["match_id"].iloc[r]]] for r in sel]
R = X[sel]
feats = ["n_peaks", "n_peaks_above_0.2", "q_1", "q_5", "q_10", "height_3", "height_5", "height_10", "log_density_20pct",
         "triples_excess_orthorhombic", "index_excess_monoclinic", "triples_zero_shift_deg", "index_excess_refined_cubic"]
def stats(params, copies=3):
    S = []
    for c in range(copies):
        rows, _ = augment.measured_patterns(ref, cond, params=params, seed=11, copy=c)
        pk = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, height_rel=0.04)
        S.append(features.from_peaks(pk, "indexed4"))
    S = np.mean(S, axis=0)
    out = {}
    for f in feats:
        j = names.index(f)
        out[f] = (np.median(R[:, j] - S[:, j]), np.mean(R[:, j] > S[:, j]))
    return out
base = augment.AugmentParams()
for spec in sys.argv[1:]:
    p = augment.AugmentParams.from_dict({**base.to_dict(), **json.loads(spec)})
    o = stats(p)
    print(spec, " | ".join(f"{f} {d:+.3f}/{fr:.2f}" for f, (d, fr) in o.items()), flush=True)
