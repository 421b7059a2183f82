"""A local Ray batch listens on loopback only, and keeps its session files in a private folder."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest

from wsi_screen.batch.ray_engine import ray_session

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")


def _ours(pid: int | None, tree: set[int]) -> bool:
    return pid is not None and pid in tree


def test_local_ray_listens_on_loopback_only() -> None:
    with ray_session(address=None, num_cpus=1) as r:

        @r.remote
        def pid() -> int:
            return os.getpid()

        worker = r.get(pid.remote())
        me = psutil.Process()
        tree = {me.pid, worker} | {c.pid for c in me.children(recursive=True)}
        listening = [
            c
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and _ours(c.pid, tree)
        ]
        assert listening, "no Ray sockets seen: the check would prove nothing"
        for c in listening:
            ip = ipaddress.ip_address(c.laddr.ip)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            assert ip.is_loopback, f"{psutil.Process(c.pid).name()} listens on {c.laddr}"
        session = Path(r._private.worker._global_node.get_session_dir_path())
        private = session.parent.parent  # Ray's own temp folder (mode 0777) lies in a private one
        assert private.name.startswith("wsi_screen_ray_")
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert not ray.is_initialized()
    assert not private.exists()  # removed with the session
