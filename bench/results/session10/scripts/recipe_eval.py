# Session 10: RRUFF dev metrics of an `xrdbatch score` output (csv or parquet read as csv here) against labels.csv.
import sys, numpy as np, pandas as pd
s = pd.read_csv(sys.argv[1]); s = s[s.status == "ok"].copy()
s["name"] = s.file.str.split("/").str[-1]
lab = pd.read_csv("/work/shared/data/measured/rruff_minerals_dev/labels.csv").rename(columns={"file": "name"})
d = lab.merge(s, on="name")
acc = np.mean(d.crystal_system_x == d.crystal_system_y)
rec = {c: np.mean(g.crystal_system_y == c) for c, g in d.groupby("crystal_system_x")}
top = np.stack([d[f"space_group_{k}"].fillna(0).astype(int) for k in range(1, 6)], 1)
sg1 = np.mean(top[:, 0] == d.space_group); sg5 = np.mean((top == d.space_group.values[:, None]).any(1))
print(f"{len(d)} patterns: acc {100*acc:.1f} macro {100*np.mean(list(rec.values())):.1f} SG@1 {100*sg1:.1f} SG@5 {100*sg5:.1f} matched {d.matched.astype(str).eq('True').sum()}")
print({k[:5]: round(100 * v) for k, v in rec.items()})
