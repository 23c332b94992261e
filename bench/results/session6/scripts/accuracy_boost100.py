"""bench/accuracy.py with the boosted crystal-system model at 100 rounds, rate 0.2."""
import sys
root = sys.argv[1]
sys.path.insert(0, root)
from xrdbatch import train
train.BOOSTED_CRYSTAL_SYSTEM = train.BoostingParams(max_iter=100, learning_rate=0.2)
import importlib.util
spec = importlib.util.spec_from_file_location("benchacc", f"{root}/bench/accuracy.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
sys.exit(m.main(sys.argv[2:]))
