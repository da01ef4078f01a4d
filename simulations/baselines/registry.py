"""The named baseline controllers: what a site would run instead of heatctl, each with a one-line
description and the source of its sequence in its module docstring.

`baseline` is kept as another name for `naive` (the runs and reports written before the split)."""

from __future__ import annotations

from controller.site.models import SiteConfig

BASELINES: dict[str, tuple[str, str]] = {
    # name: (module, class)
    "naive": ("simulations.baselines.naive", "BaselineController"),
    "good-practice": ("simulations.baselines.good_practice", "GoodPracticeController"),
    "g36": ("simulations.baselines.g36", "G36Controller"),
}
ALIASES = {"baseline": "naive"}
DESCRIPTIONS = {
    "naive": "fixed pumps, wide-band PI on V1, dump on/off on the building return, boiler at any deficit",
    "good-practice": "boiler below setpoint-1 K with anti-short-cycle times, EC dry-cooler fan on a PI of the "
                     "IT supply, tank discharge by a differential controller, PI on V1",
    "g36": "ASHRAE Guideline 36-style staging: recovered heat, tank, boiler on delayed conditions with minimum "
           "runtimes; dry cooler staged after the tank",
}


def is_baseline(name: str) -> bool:
    return name in BASELINES or name in ALIASES


def make_baseline(name: str, site: SiteConfig):
    """An instance of the baseline called `name` (or its alias)."""
    import importlib

    module, cls = BASELINES[ALIASES.get(name, name)]
    return getattr(importlib.import_module(module), cls)(site)
