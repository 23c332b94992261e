# Session 9: search-match cost per pattern and view against libraries of 2k, 10k, 40k synthetic entries.
import time, numpy as np, pandas as pd, sys
sys.path.insert(0, "/work/main")
from xrdbatch import train, match, features
X, labels = train.synthetic_lattice_features(42000, "measured", seed=1)
names = features.feature_names("measured")
lab = labels.rename(columns={"spacegroup_number": "space_group"})
Q = X[40000:40200]
for n in (2000, 10000, 40000):
    lib = match.ReferenceLibrary.from_features(X[:n], names, lab.iloc[:n])
    lib.sorted_lines()
    t = time.process_time(); m = match.best_matches(lib, Q, names); dt = time.process_time() - t
    print(f"{n} entries: {1e3 * dt / len(Q):.2f} ms per pattern-view", flush=True)
