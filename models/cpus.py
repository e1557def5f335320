"""How many CPUs this process may really use: its affinity mask and its cgroup's quota.

`os.cpu_count()` counts the host's CPUs; in a container limited to 2 CPUs on a 64-core node
that oversubscribes the quota 32 times over (every OpenMP thread then waits for its turn in
the CFS period). The quota is read from cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us` /
`cpu.cfs_period_us`) of the process's own cgroup.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root, proc_self_cgroup)
    return max(1, min(affinity, math.ceil(quota) if quota is not None else affinity))


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """CPUs' worth of time the cgroup may use per period (None: unlimited or unknown)."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if hierarchy == "0" and controllers == "":  # cgroup v2
            for folder in _upwards(cgroup_root / relative, cgroup_root):
                quota = _read_v2(folder / "cpu.max")
                if quota is not None:
                    return quota
        elif "cpu" in controllers.split(","):  # cgroup v1
            mount = next((cgroup_root / name for name in ("cpu,cpuacct", "cpu") if (cgroup_root / name).is_dir()), None)
            if mount is not None:
                for folder in _upwards(mount / relative, mount):
                    quota = _read_v1(folder)
                    if quota is not None:
                        return quota
    return None


def _upwards(folder: Path, root: Path) -> list[Path]:
    """The cgroup's folder and its parents up to the root (a limit may sit on any of them;
    inside a container the namespace root is the container's own cgroup)."""
    chain = [folder]
    while folder != root and root in folder.parents:
        folder = folder.parent
        chain.append(folder)
    return chain


def _read_v2(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _read_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 else quota / period
