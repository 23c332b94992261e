# Session 10: weight of synthetic rows in the boosted crystal-system model (real structures and variants weigh 1).
# Usage: python sysweight.py W [W ...]
from screen_setup import *

for w in [float(a) for a in sys.argv[1:]]:
    clf = HistGradientBoostingClassifier(random_state=0, **kw).fit(X, y, sample_weight=np.where(origin == "synthetic", w, 1.0))
    report(f"synthetic weight {w:g}", clf)
