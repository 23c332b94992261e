"""bench/train.py with the boosted crystal-system model at 100 rounds, rate 0.2 (the cheaper shape of the screens)."""
import sys
sys.path.insert(0, "/work/main"); sys.path.insert(0, "/work/main/bench")
from xrdbatch import train
train.BOOSTED_CRYSTAL_SYSTEM = train.BoostingParams(max_iter=100, learning_rate=0.2)
import importlib.util
spec = importlib.util.spec_from_file_location("benchtrain", "/work/main/bench/train.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
sys.exit(m.main(["--feature-set", "measured", "--skip-seed", "--n-jobs", "2", "--crystal-system-model", "boosting"]))
