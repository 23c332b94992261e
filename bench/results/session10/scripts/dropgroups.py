# Session 10: column groups left out of the boosted crystal-system model, one at a time.
import re

from screen_setup import *

groups = {"none": [], "heights": [c for c in names if c.startswith("height_")],
          "first-20 q": [c for c in names if re.fullmatch(r"q_\d+", c)],
          "q2 ratios": [c for c in names if c.startswith("q2_ratio")],
          "strongest q": [c for c in names if c.startswith("strongest_q_") or c.endswith("_x_over_first")],
          "counts/densities": [c for c in names if c.startswith("n_peaks") or c.startswith("log_density")],
          "zero shifts": [c for c in names if "zero_shift" in c]}
for g, cols in groups.items():
    keep = np.array([c not in cols for c in names])
    report(f"without {g:16s} ({len(cols):2d} cols)", HistGradientBoostingClassifier(random_state=0, **kw).fit(X[:, keep], y), keep)
