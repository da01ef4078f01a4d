"""What would let this user read a file: one line for a permission error (issue 15).

An operator who runs `heatctl points --config /etc/heatctl/site.yaml` without the right group gets
"permission denied" from the kernel and nothing on what to do about it. `who_can_read(path)` names
the first folder on the way that is closed to them, or the file itself, with its owner, group and
mode, and the group to join (or that only root can read it). Standard library only.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def _names(st: os.stat_result) -> tuple[str, str]:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


def _fix(kind: str, path: Path, st: os.stat_result, group_bit: int) -> str:
    owner, group = _names(st)
    mode = f"{stat.S_IMODE(st.st_mode):04o} {owner}:{group}"
    if st.st_mode & group_bit:
        # A system user whose own group this is (the service: heatctl) can run the command instead.
        users = sorted(u.pw_name for u in pwd.getpwall() if u.pw_gid == st.st_gid and u.pw_uid != 0)
        also = f", run it as {users[0]} (sudo -u {users[0]} heatctl ...)" if users else ""
        return (f"{kind} {path} is {mode}: join group {group} (sudo usermod -aG {group} $USER, then log "
                f"in again){also} or run as root")
    return f"{kind} {path} is {mode}: only {owner} (or root) can read it"


def who_can_read(path: str | Path) -> str:
    """Why this process cannot read `path` and what would fix it, in one line (no trailing dot)."""
    p = Path(os.path.abspath(path))
    # The folders first: a closed folder hides the file's own mode.
    for folder in reversed(p.parents):
        if not os.access(folder, os.X_OK):
            try:
                st = os.stat(folder)
            except OSError:
                break
            return _fix("its folder", folder, st, stat.S_IXGRP)
    try:
        st = os.stat(p)
    except OSError as exc:
        return f"cannot stat {p}: {exc.strerror or exc}"
    return _fix("the file", p, st, stat.S_IRGRP)


def permission_denied(path: str | Path) -> str:
    """`PATH: permission denied; <who_can_read>` for error lines."""
    return f"{path}: permission denied; {who_can_read(path)}"
