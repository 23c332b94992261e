# Needs the code of 8137770 or earlier (git archive 8137770 | tar -x -C /tmp/s5/snap): uses the zone search with
# zero-shift refinement (lattice_hints._low_symmetry(refine=True), block low_symmetry_refined), removed after it.
import numpy as np, math
from xrdbatch import lattice_hints as LH
def search(peaks, **kw):
    out, cells = LH._low_symmetry(peaks, refine=True)
    return np.column_stack([out[:, 0], out[:, 3], cells[:, 0], cells[:, 1], cells[:, 2]])
