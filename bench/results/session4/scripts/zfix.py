import sys, os, json
sys.path.insert(0, "/tmp/s3/final_snap"); sys.argv = sys.argv[:1]
import numpy as np, pandas as pd
import bench.accuracy as A
from xrdbatch import augment, features, readers, score, train
pp = {"height_rel": 0.04}
cond = A.target_conditions(); fset = "indexed3"
specs = [("/tmp/xrdbatch-acc/catalog_real.parquet", 2), ("/tmp/s3/catalog_syn3_12000.parquet", 0)]
blocks = A.training_blocks(specs, cond, augment.AugmentParams(), 2, ["indexed", "indexed3", "measured", "seed11"], pp, A.DEFAULT_CACHE, 0, 1, log=lambda m: print("COMPUTING", m))
X, lab = A.stack(blocks, "aug", fset)
model = A.fit_model(X, lab, n_jobs=2)
files = A.MEASURED_SETS["rruff_minerals_dev"]()
tts, ys, labels = [], [], []
for rec in files.to_dict("records"):
    pattern = readers.read_patterns(rec["path"])[0]
    tt, y, _ = score.prepare_pattern(pattern, cond, rec["wavelength"])
    tts.append(tt); ys.append(y); labels.append(int(rec["space_group"]))
labm = pd.DataFrame({"space_group": labels}); 
from xrdbatch.crystal import crystal_system_of
labm["crystal_system"] = [crystal_system_of(s) for s in labels]
Y = np.stack(ys); tt = tts[0]
for off in [0.0, -0.02, -0.035, -0.05, -0.065]:
    pk = features.find_peaks(tt + off, Y, cond.wavelength_angstrom, **pp)
    Xm = features.from_peaks(pk, fset)
    r = A.scores(model, Xm, labm)
    print(f"offset {off:+.3f}: acc {r['accuracy']*100:.1f} macro {r['macro_recall']*100:.1f} sg1 {r['sg_top1']*100:.1f} sg5 {r['sg_top5']*100:.1f} " + " ".join(f"{k[:4]} {v*100:.0f}" for k, v in r['recall'].items()), flush=True)
