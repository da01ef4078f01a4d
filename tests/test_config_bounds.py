"""The loader refuses files that are not small regular UTF-8 files, in one line, without hanging."""
import os

import pytest

from controller.site.loader import MAX_CONFIG_BYTES, ConfigError, load_config


def one_line(path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert len(exc.value.problems) == 1, exc.value.problems
    return exc.value.problems[0]


def test_dev_zero_refused():
    assert "not a regular file" in one_line("/dev/zero")


def test_fifo_refused_without_hanging(tmp_path):
    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in one_line(fifo)


def test_directory_refused(tmp_path):
    assert "is a directory" in one_line(tmp_path)


def test_too_large_refused(tmp_path):
    big = tmp_path / "site.yaml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    assert "at most" in one_line(big)


def test_non_utf8_names_line_and_column(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_bytes(b"site:\n  name: caf\xe9\n")
    line = one_line(bad)
    assert line.startswith(f"{bad}:2:12:") and "0xe9" in line, line


def test_recursive_alias_refused(tmp_path):
    rec = tmp_path / "site.yaml"
    rec.write_text("a: &a [*a]\n")
    line = one_line(rec)
    assert line.startswith(f"{rec}:1:") and "recursive alias" in line, line


def test_alias_bomb_refused(tmp_path):
    bomb = tmp_path / "site.yaml"
    levels = ['a0: &a0 [x, x, x, x, x, x, x, x, x]']
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]")
    bomb.write_text("\n".join(levels) + "\n")
    assert "alias bomb" in one_line(bomb)


def test_problems_capped(tmp_path):
    many = tmp_path / "site.yaml"
    many.write_text("".join(f"unknown_{i}: 1\n" for i in range(120)))
    with pytest.raises(ConfigError) as exc:
        load_config(many)
    lines = exc.value.problems
    assert len(lines) <= 51 and lines[-1].startswith(f"{many}: ... and ") and "more problems" in lines[-1], lines[-3:]
