import sys
root = sys.argv[1]; sys.path.insert(0, root)
import numpy as np
import bench.accuracy as A
from xrdbatch import features, lattice_hints as LH, augment
cond = A.target_conditions(); pp = {"height_rel": 0.04}
R = list(A.measured_patterns(A.MEASURED_SETS["rruff_minerals_dev"](), cond))
peaks = features.find_peaks(R[0][1], np.array([r[2] for r in R]), cond.wavelength_angstrom, **pp)
refls, _ = A.reflections_of_catalog("/tmp/xrdbatch-acc/catalog_real.parquet", cond.d_min_angstrom * 0.98, A.DEFAULT_CACHE, 0, 0)
rows, _ = augment.measured_patterns(refls[:1500], cond, seed=5)
p2 = features.find_peaks(cond.two_theta_deg(), rows, cond.wavelength_angstrom, **pp)
np.save(sys.argv[2], np.concatenate([LH.triples_features(peaks), LH.triples_features(p2)]))
print(LH.__file__)
