# Session 9: matching over isotropically scaled copies of each pattern (runs variants_lib.py for its set-up).
exec(open("variants_lib.py").read().split("L = lab.rename")[0])
L = lab.rename(columns={"spacegroup_number": "space_group"})
keep = lab.variant.values == 0
lib = match.ReferenceLibrary.from_features(X[keep], names, L[keep])
qcols = [names.index(c) for c in match._ALL]
def scaled(V, s):
    V = V.copy(); q = V[:, qcols]; V[:, qcols] = np.where(q > 0, q * s, q); return V
base = [Xm["indexed4"], *views]
m0 = match.best_matches(lib, Xm["indexed4"], names, views=views)
for span, n in ((0.01, 11), (0.02, 21), (0.03, 31)):
    vs = [scaled(V, s) for s in np.linspace(1 - span, 1 + span, n) for V in base]
    m = match.best_matches(lib, vs[0], names, views=vs[1:])
    for thr in (0.8, 0.9, 1.0):
        hit = match.decided(m, thr)
        new = hit & ~match.decided(m0, 0.8)
        cs = np.where(hit, m.match_crystal_system.values, pred.crystal_system.values)
        print(f"span {span} thr {thr}: matched {hit.sum()} (new {new.sum()}), system right {np.mean(m.match_crystal_system.values[hit]==true[hit]):.3f}, new right {np.mean(m.match_crystal_system.values[new]==true[new]):.3f} (model on new {np.mean(pred.crystal_system.values[new]==true[new]):.3f}), acc {np.mean(cs==true):.4f}", flush=True)
