"""A file under the size limit but with hundreds of thousands of keys is refused on the parser's event
stream, before a node tree is built (it took 250 MB and seconds to compose); real sites fit easily."""

from __future__ import annotations

import pytest

from controller.site.loader import MAX_CONFIG_BYTES, MAX_YAML_EVENTS, ConfigError, events_over_budget, load_config
from tests.step_helpers import REFERENCE


def test_many_keys_under_the_size_limit_refused_with_one_line(tmp_path):
    ref = REFERENCE.read_text()
    n = (MAX_CONFIG_BYTES - len(ref) - 64) // 16
    path = tmp_path / "site.yaml"
    path.write_text(ref + "\nextra:\n" + "".join(f"  k{i:09d}: 1\n" for i in range(n)))
    assert path.stat().st_size <= MAX_CONFIG_BYTES
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (line,) = exc.value.problems
    assert f"more than {MAX_YAML_EVENTS} YAML keys and values" in line and line.startswith(f"{path}:")
    # The line named is where the budget ran out: inside the extra keys, not line 1.
    assert int(line.split(":")[1]) > ref.count("\n")


def test_the_budget_leaves_room_for_real_sites():
    ref = REFERENCE.read_text()
    assert events_over_budget(ref) is None
    assert events_over_budget(ref, budget=100) is not None
    # A flow sequence packs many values on one line: still counted.
    assert events_over_budget("x: [" + "1, " * (MAX_YAML_EVENTS + 10) + "1]\n") == 1
