"""CPUs this process may use: affinity and the cgroup quota (v2 and v1), on fake cgroup trees."""

from __future__ import annotations

import os
from pathlib import Path

from models.cpus import cgroup_cpu_quota, usable_cpus


def cgroup_v2(tmp_path: Path, cpu_max: str | None, parent_max: str | None = None) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    leaf = root / "kubepods" / "pod1" / "ctr"
    leaf.mkdir(parents=True)
    if cpu_max is not None:
        (leaf / "cpu.max").write_text(cpu_max + "\n")
    if parent_max is not None:
        (root / "kubepods" / "cpu.max").write_text(parent_max + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/kubepods/pod1/ctr\n")
    return root, proc


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "250000 100000")
    assert cgroup_cpu_quota(root, proc) == 2.5
    assert usable_cpus(root, proc) == min(3, len(os.sched_getaffinity(0)))


def test_cgroup_v2_unlimited_leaf_inherits_the_parents_limit(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "max 100000", parent_max="100000 100000")
    assert cgroup_cpu_quota(root, proc) == 1.0
    assert usable_cpus(root, proc) == 1


def test_no_limit_means_affinity(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "max 100000")
    assert cgroup_cpu_quota(root, proc) is None
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path / "missing", tmp_path / "missing-proc") == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    leaf = root / "cpu,cpuacct" / "docker" / "abc"
    leaf.mkdir(parents=True)
    (leaf / "cpu.cfs_quota_us").write_text("50000\n")
    (leaf / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_quota(root, proc) == 0.5
    assert usable_cpus(root, proc) == 1  # never below one
    (leaf / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(root, proc) is None
