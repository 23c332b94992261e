# Session 10: feature subsampling per split (max_features) of the boosted crystal-system model.
# Usage: python maxfeat.py F [F ...]
from screen_setup import *

for mf in [float(a) for a in sys.argv[1:]]:
    report(f"max_features {mf:g}", HistGradientBoostingClassifier(random_state=0, max_features=mf, **kw).fit(X, y))
