"""`lake.analysis`: event-aligned spike counts, PSTHs and rates per area, computed in Python.

The Python twins of the SQL views and macros of `queries/` (same names, same rows), over every
session at once; get them as `lk.analysis` (`Analysis`). Layout:

- `api`: `Analysis`, the public methods; every table comes back as an eager polars DataFrame;
- `edges`: bin and window edges, the documented formula (`bin_offsets`, `window_offsets`);
- `trains`: `SpikeTrains`, a session's spike trains as one flat array (`spike_trains`);
- `_selections`, `_sql`: unit and event selections, and the SQL behind them;
- `_reader`: per session, the chosen units' spikes, read only from the row groups that hold
  them, through `Lake.snapshot().files(...)` and `Lake.store.open_input`;
- `_kernels`: the numba kernels (arrays in, arrays out); `_state`: one lake version per call.

Importing this package imports numba; `import lake` does not import it.
"""

from lake.analysis._selections import EventsLike, UnitsLike
from lake.analysis.api import Analysis
from lake.analysis.edges import bin_offsets, window_offsets
from lake.analysis.trains import SpikeTrains

__all__ = ["Analysis", "EventsLike", "SpikeTrains", "UnitsLike", "bin_offsets", "window_offsets"]
