"""False matches on held-out real structure types (augmented rows, no views) against the training-side library."""
import sys, hashlib, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import augment, features, match
cache = accuracy.DEFAULT_CACHE; cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}
blocks = accuracy.training_blocks([("/tmp/xrdbatch-acc/catalog_real.parquet", 2)], cond, augment.AugmentParams(), 2,
                                  ["indexed4"], pp, cache, 0, 2, log=lambda s: None)
Xa, la = accuracy.stack(blocks, "aug", "indexed4"); Xi, li = accuracy.stack(blocks, "ideal", "indexed4")
h = lambda t: int(hashlib.sha256(f"0:{t}".encode()).hexdigest()[:8], 16) / 16**8
test_types = {t for t in set(li.structure_type.astype(str)) if h(t) < 0.2}
names = features.feature_names("indexed4")
keep = ((li.origin == "real") & (li.variant == 0) & ~li.structure_type.astype(str).isin(test_types)).to_numpy()
lib = match.ReferenceLibrary.from_features(Xi[keep], names, li[keep].rename(columns={"spacegroup_number": "space_group"}))
rows = (la.structure_type.astype(str).isin(test_types) & (la.origin == "real")).to_numpy()
found = match.best_matches(lib, Xa[rows], names)
lab = la[rows].reset_index(drop=True)
for t in (0.7, 0.8, 0.9):
    hit = found.match_score.to_numpy() >= t
    print(f"threshold {t}: {hit.sum()} of {len(lab)} held-out real rows matched ({hit.mean():.1%}); system right "
          f"{np.mean(found.match_crystal_system.to_numpy()[hit] == lab.crystal_system.to_numpy()[hit]):.1%}, SG right "
          f"{np.mean(found.match_space_group.to_numpy()[hit].astype(float) == lab.spacegroup_number.to_numpy()[hit]):.1%}")
# the same rows against the full library (their own structures in it): how often does the library find them
lib_all = match.ReferenceLibrary.from_features(Xi[((li.origin == "real") & (li.variant == 0)).to_numpy()], names,
    li[((li.origin == "real") & (li.variant == 0)).to_numpy()].rename(columns={"spacegroup_number": "space_group"}))
f2 = match.best_matches(lib_all, Xa[rows], names)
hit = f2.match_score.to_numpy() >= 0.8
print(f"own structure in the library: {hit.mean():.1%} matched at 0.8; system right {np.mean(f2.match_crystal_system.to_numpy()[hit] == lab.crystal_system.to_numpy()[hit]):.1%}")
