import numpy as np, math
from xrdbatch import lattice_hints as LH
def search(peaks, **kw):
    out, cells = LH._low_symmetry(peaks, refine=True)
    return np.column_stack([out[:, 0], out[:, 3], cells[:, 0], cells[:, 1], cells[:, 2]])
