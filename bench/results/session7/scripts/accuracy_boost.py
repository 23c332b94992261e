"""bench/accuracy.py with the boosted crystal-system model reshaped: argv[1] = snapshot root, argv[2] = JSON of
xrdbatch.train.BoostingParams fields, the rest = bench/accuracy.py's arguments."""
import json, sys
root = sys.argv[1]
sys.path.insert(0, root)
from xrdbatch import train
train.BOOSTED_CRYSTAL_SYSTEM = train.BoostingParams(**json.loads(sys.argv[2]))
print("boosted shape:", train.BOOSTED_CRYSTAL_SYSTEM, flush=True)
import importlib.util
spec = importlib.util.spec_from_file_location("benchacc", f"{root}/bench/accuracy.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
sys.exit(m.main(sys.argv[3:]))
