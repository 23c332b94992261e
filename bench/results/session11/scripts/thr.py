exec(open("setup.py").read())
files = accuracy.MEASURED_SETS["rruff_minerals_dev"]()
pats = list(accuracy.measured_patterns(files, cond))
assert len(pats) == len(X)
def feats(h, offs=()):
    out = [[] for _ in range(1 + len(offs))]
    for rec, tt, y in pats:
        pk = features.find_peaks(tt, y[None, :], cond.wavelength_angstrom, height_rel=h)
        out[0].append(features.from_peaks(pk, "indexed4")[0])
        for i, v in enumerate(features.shifted_views(pk, "indexed4", cond.wavelength_angstrom, offs)):
            out[1 + i].append(v[0])
    return [np.array(o, dtype=np.float32) for o in out]
def acc(Pm):
    Pc = b.calibrator.transform(Pm) if b.calibrator else Pm
    fr = b.model.predict_frame(X, top_k=5, proba=Pc, views=views, matches=m)
    pr = fr.crystal_system.values
    rec = np.mean([np.mean(pr[true == c] == c) for c in np.unique(true)])
    return "acc %.3f macro %.3f unmatched %.3f" % (np.mean(pr == true), rec, np.mean(pr[~hit] == true[~hit]))
base = [b.model.predict_proba(V) for V in [X, *views]]
print("base 7 views", acc(np.mean(base, 0)))
extra = {}
for h in (0.02, 0.03, 0.06, 0.08):
    Vh = feats(h, (-0.04, 0.04))
    extra[h] = [b.model.predict_proba(V) for V in Vh]
    print(h, "alone(3 views)", acc(np.mean(extra[h], 0)), "| base+this", acc(np.mean(base + extra[h], 0)))
allx = sum(extra.values(), [])
print("base + all", acc(np.mean(base + allx, 0)))
print("base + 0.03,0.06", acc(np.mean(base + extra[0.03] + extra[0.06], 0)))
