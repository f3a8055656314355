"""The α₀ sweep on a real Ray cluster that ``RAY_ADDRESS`` names: a head with two worker CPUs on 127.0.0.1.

It must write what the same grid writes when Ray starts inside the process, and a second run must add nothing.
Both runs train in their own checkpoint cache, so that neither reuses the other's models.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nablatau.cluster import RAY_ADDRESS, unreachable
from nablatau.sweep import run_sweep, sweep_grid
from nablatau.sweep_rule import NOTEBOOK

pytestmark = pytest.mark.slow  # starts a Ray cluster and trains the smoke grid twice

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[str]:
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs (two workers at one CPU a cell); its GCS address.

    ``--block`` keeps the head in a process of its own session, so that the teardown stops this cluster and
    no other Ray on the machine (``ray stop`` would stop them all).
    """
    port = _free_port()
    command = [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
               "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"]
    log = (tmp_path / "ray-head.log").open("w")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while unreachable(address, timeout_s=1.0) is not None:
            assert head.poll() is None, (tmp_path / "ray-head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head did not open its port in 180 s"
            time.sleep(1)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        # `ray start` names its cluster in <temp dir>/ray/ray_current_cluster, where a later plain ray.init()
        # would look for a cluster to join; `ray stop` removes it, and so must this teardown.
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
        # It names the head by the machine's IP, not 127.0.0.1: match the port.
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def _numbers(value: Any) -> Any:
    """A results file's models without timings (keys ending in ``_s``)."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items() if not key.endswith("_s")}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    return value


def _results(folder: Path) -> dict[str, Any]:
    return {path.name: _numbers(json.loads(path.read_text())["models"])
            for path in sorted((folder / NOTEBOOK).glob("*.json"))}


def test_the_smoke_grid_on_a_ray_address_cluster_writes_what_the_in_process_run_writes(
        real_data_dir, tmp_path, local_cluster, monkeypatch):
    grid = sweep_grid("smoke", fractions=[0.3])  # a retraining and two ∇τ cells: enough tasks for two workers
    here = run_sweep(grid, output_dir=tmp_path / "here", address="", local_cpus=2, cache_dir=tmp_path / "cache-here",
                     data_root=real_data_dir, progress=False)
    assert len(here.ran) == 3

    monkeypatch.setenv(RAY_ADDRESS, local_cluster)
    # Ray's workers on the cluster were started by `ray start`, with this process's environment
    # (NABLATAU_DEVICE=cpu from conftest): they train on the CPU as the in-process run does.
    assert os.environ.get("NABLATAU_DEVICE") == "cpu"
    cluster = run_sweep(grid, output_dir=tmp_path / "cluster", cache_dir=tmp_path / "cache-cluster",
                        data_root=real_data_dir, progress=False)
    assert len(cluster.ran) == 3 and cluster.done_before == []
    assert _results(tmp_path / "cluster") == _results(tmp_path / "here")

    stamps = {path: path.stat().st_mtime_ns for path in cluster.paths}
    again = run_sweep(grid, output_dir=tmp_path / "cluster", cache_dir=tmp_path / "cache-cluster",
                      data_root=real_data_dir, progress=False)
    assert again.ran == [] and len(again.done_before) == 3
    assert {path: path.stat().st_mtime_ns for path in cluster.paths} == stamps
