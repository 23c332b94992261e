import inspect, math, sys, time
sys.path.insert(0, "/work/main/bench")
import numpy as np
from numba import njit
from xrdbatch import lattice_hints as LH
from xrdbatch.lattice_hints import _n_calc_ortho, _ortho_density, _chance_floor, _chance, _sorted3, _ortho_hit, _kept_slot, _refine_ortho, _ortho_eval
src = inspect.getsource(LH._triples_pattern.py_func)
src = src.replace("max_z, out):", "max_z, out, cnt):")
src = src.replace("                for m in range(inv.shape[0]):\n", "                for m in range(inv.shape[0]):\n                    cnt[0] += 1\n")
src = src.replace("                    if _n_calc_ortho(x[n - 1], a, b, c) > max_lines_per_peak * n:\n                        continue\n",
                  "                    cnt[1] += 1\n                    if _n_calc_ortho(x[n - 1], a, b, c) > max_lines_per_peak * n:\n                        continue\n                    cnt[2] += 1\n")
src = src.replace("                    if n - chance <= kS[worst]:\n                        continue\n                    ps, qs, ss",
                  "                    if n - chance <= kS[worst]:\n                        continue\n                    cnt[3] += 1\n                    ps, qs, ss")
src = src.replace("                        if _ortho_hit(x[t], tol[t], a, b, c, ps, qs, ss):", "                        cnt[4] += 1\n                        if _ortho_hit(x[t], tol[t], a, b, c, ps, qs, ss):")
src = src.replace("                    if hits < 0:\n                        continue\n                    s = hits", "                    if hits < 0:\n                        continue\n                    cnt[5] += 1\n                    s = hits")
src = src.replace("@njit(cache=True, nogil=True)\n", "")
ns = dict(LH.__dict__)
exec(src, ns)
tp = njit(nogil=True)(ns["_triples_pattern"])
import accuracy, pickle
from xrdbatch import features
cond = accuracy.target_conditions()
files = accuracy.MEASURED_SETS["rruff_minerals_dev"]()
pats = list(accuracy.measured_patterns(files, cond))
from xrdbatch.features import Peaks
pk = [features.find_peaks(tt, y[None, :], cond.wavelength_angstrom, height_rel=0.04) for _, tt, y in pats]
off = [0]; parts = [[], [], [], []]
for i, p in enumerate(pk):
    parts[0].append(np.full(p.pattern.size, i)); parts[1].append(p.two_theta_deg); parts[2].append(p.q_per_angstrom); parts[3].append(p.height); off.append(off[-1] + p.pattern.size)
P = Peaks(np.concatenate(parts[0]), np.concatenate(parts[1]), np.concatenate(parts[2]), np.concatenate(parts[3]).astype(np.float32), np.array(off))
xs, tols, gs, counts = LH._tested_peaks_g(P, LH.N_TEST_PEAKS_LOW, tol_deg=LH.TOL_LOW_TWO_THETA_DEG)
xs, tols, gs = np.nan_to_num(xs), np.nan_to_num(tols), np.nan_to_num(gs)
cnt = np.zeros(8, np.int64); out = np.zeros(6)
args = (LH._TRIPLE_INV, LH.N_SEED_TRIPLES, LH.N_TRIPLE_KEEP, 1.0 / LH.MAX_EDGE_ANGSTROM ** 2, LH.MAX_LINES_PER_PEAK_TRIPLES, math.radians(LH.MAX_ZERO_SHIFT_DEG))
tp(xs[0, :counts[0]], tols[0, :counts[0]], gs[0, :counts[0]], counts[0], *args[:1], *args[1:3], *args[3:5], args[5], out, cnt)
cnt[:] = 0
t0 = time.perf_counter()
for p in range(len(counts)):
    k = counts[p]
    if k >= 5:
        tp(xs[p, :k], tols[p, :k], gs[p, :k], k, LH._TRIPLE_INV, LH.N_SEED_TRIPLES, LH.N_TRIPLE_KEEP, 1.0 / LH.MAX_EDGE_ANGSTROM ** 2, LH.MAX_LINES_PER_PEAK_TRIPLES, math.radians(LH.MAX_ZERO_SHIFT_DEG), out, cnt)
print("ms/pattern", (time.perf_counter() - t0) / len(counts) * 1e3)
print("per pattern: candidates %.0f positive %.0f n_calc ok %.0f past floor %.0f lines tested %.0f full %.1f" % tuple(cnt[:6] / len(counts)))
