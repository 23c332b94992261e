"""xrdbatch: learn crystal structure from powder X-ray diffraction, in batch.

Stages (each a module, one-way): ``sources`` (structures -> catalog) ->
``simulate`` (crystal -> condition-free reflections -> pattern) -> ``store``
(Dask over the catalog into Zarr) -> ``features`` (peak finder) -> ``train``
(ExtraTrees, ``bundle``, ``report``) -> ``score`` (measured files via ``readers``).
``conditions`` and ``crystal`` hold the two values every stage shares.
Nothing happens at import time.
"""

__version__ = "0.1.0"

from xrdbatch.conditions import Conditions  # noqa: E402  (pure, numpy only)

__all__ = ["Conditions", "__version__"]
