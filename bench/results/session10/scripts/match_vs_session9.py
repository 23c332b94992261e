# Session 10: the session-9 dense match (git show 3183795:xrdbatch/match.py > /tmp/s10/match_old.py) against the candidate-pair match, same rows.
import sys, time, numpy as np
sys.path.insert(0, "/tmp/s10")
import match_old
from xrdbatch import train, match, features
X, labels = train.synthetic_lattice_features(42000, "measured", seed=1)
names = features.feature_names("measured")
lab = labels.rename(columns={"spacegroup_number": "space_group"})
rng = np.random.default_rng(0)
qc = [names.index(c) for c in match._ALL]
for n in (2000, 10000, 40000):
    # queries: 200 unseen rows + 200 library rows with Q scaled by +-0.3 % and one strong line removed
    Q1 = X[40000:40200].copy()
    Q2 = X[rng.choice(n, 200, replace=False)].copy()
    Q2[:, qc] = np.where(Q2[:, qc] > 0, Q2[:, qc] * rng.uniform(0.997, 1.003, (200, 1)), Q2[:, qc])
    Q2[:, names.index("strongest_q_3")] = features.MISSING
    Q = np.concatenate([Q1, Q2])
    lib_old = match_old.ReferenceLibrary.from_features(X[:n], names, lab.iloc[:n]); lib_old.sorted_lines()
    lib = match.ReferenceLibrary.from_features(X[:n], names, lab.iloc[:n]); lib.sorted_lines()
    t = time.process_time(); a = match_old.best_matches(lib_old, Q, names); t1 = time.process_time() - t
    t = time.process_time(); b = match.best_matches(lib, Q, names); t2 = time.process_time() - t
    t = time.process_time(); c = match.best_matches(lib, Q[:50], names, min_score=0); t3 = (time.process_time() - t) * len(Q) / 50
    hi = a.match_score.to_numpy() >= match.MIN_SCORE
    same = (np.allclose(a.match_score[hi], b.match_score[hi]) and (a.match_index[hi] == b.match_index[hi]).all()
            and (b.match_score[~hi] == 0).all())
    same0 = np.allclose(a.match_score[:50], c.match_score) and (a.match_index[:50] == c.match_index).all()
    print(f"{n}: old {1e3*t1/len(Q):.2f} ms/row, new {1e3*t2/len(Q):.2f} ms/row ({t1/t2:.1f}x), min_score=0 {1e3*t3/len(Q):.2f}; "
          f">=0.5 rows {hi.sum()}, decided {(a.match_score>=0.8).sum()}; identical {same}, min0 identical {same0}", flush=True)
