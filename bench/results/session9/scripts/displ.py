# Session 9: search-match over zero shift x sample displacement views (RRUFF dev, bundle36k_c predictions).
import sys, numpy as np, pandas as pd
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main")
import accuracy
from xrdbatch import features, match, bundle
cond = accuracy.target_conditions(); pp = {"height_rel": 0.04}; lam = cond.wavelength_angstrom
b = bundle.load_bundle("/tmp/s9/bundle36k_c")
files = accuracy.MEASURED_SETS["rruff_minerals_dev"]()
peaks_list, sgs = [], []
for rec, tt, y in accuracy.measured_patterns(files, cond):
    peaks_list.append(features.find_peaks(tt, y[None, :], lam, **pp)); sgs.append(int(rec["space_group"]))
from xrdbatch.crystal import crystal_system_of
true = np.array([crystal_system_of(g) for g in sgs])
FS = "measured"; names = features.feature_names(FS)
def view(zero, disp):
    rows = []
    for p in peaks_list:
        theta = np.radians(p.two_theta_deg) / 2
        pos = p.two_theta_deg + zero - np.degrees(2 * disp * np.cos(theta))
        q = 4 * np.pi * np.sin(np.radians(pos) / 2) / lam
        rows.append(features.from_peaks(p._replace(two_theta_deg=pos, q_per_angstrom=q), FS)[0])
    return np.array(rows, dtype=np.float32)
zeros = features.shift_offsets(0.06, 7)
base = [view(z, 0.0) for z in zeros]
m0 = match.best_matches(b.library, base[3], names, views=[v for i, v in enumerate(base) if i != 3])
h0 = match.decided(m0)
print("zero-shift views:", h0.sum(), "matched, system right", np.mean(m0.match_crystal_system.values[h0] == true[h0]).round(3))
for disp in (0.0006, 0.0012):
    vs = base + [view(z, d) for z in zeros for d in (-disp, disp)]
    m = match.best_matches(b.library, vs[3], names, views=[v for i, v in enumerate(vs) if i != 3])
    h = match.decided(m); new = h & ~h0
    print(f"+ displacement +-{disp}: {h.sum()} matched (new {new.sum()}), system right {np.mean(m.match_crystal_system.values[h] == true[h]):.3f}, new right {np.mean(m.match_crystal_system.values[new] == true[new]) if new.any() else float('nan'):.2f}")
