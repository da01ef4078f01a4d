"""Keep the cyclic garbage collector's full collections short on the daemon's event loop.

A full (generation 2) collection walks every object the collector tracks, and after start-up most
of them live for good: the config models, pydantic's and asyncua's tables, the drivers' sessions.
On the big site (bench/bench_scale.py, 1,084 points at a 100 ms tick) each full collection held
the event loop 38-47 ms, 27 of them in 70 s, and one landing late in a tick made it overrun.
`gc.freeze()` moves every object that exists now into the permanent generation, which collections
skip. Done once the daemon is ready (its first completed tick: drivers connected, subscriptions
made) and again after a reload is swapped in, when the objects frozen before are first thawed and
collected, so that the old config's garbage is freed (one full collection between two ticks).
The price: a frozen object that later becomes cyclic garbage is not collected until the next
reload (reference counting still frees the rest).
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Collect what is garbage now, then freeze everything left; returns how many objects are
    frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
