"""The notebooks' smoke grid on a real Ray cluster that ``RAY_ADDRESS`` names: a head with two worker CPUs on
127.0.0.1.

Every notebook's experiments (quickstart, train_original, subset and class removal, text removal, the α₀ sweep)
as specs, run as Ray tasks on the cluster, must write the results files that the same specs write when this
process runs them one experiment after another, as the notebooks do; and a second run must add nothing. Both
runs train in their own checkpoint cache, so that neither reuses the other's models.

The grid is cut to stay a few minutes while keeping every notebook and every kind of task (trainings shared
between experiments, references, methods, sweep cells): ∇τ runs in the quickstart, the text comparison and two
sweep cells (at 30 %, where its epoch rule is shortest), SSD (the cheapest baseline) in every comparison, and the
removal notebooks run one fraction each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from nablatau.cluster import RAY_ADDRESS, unreachable
from nablatau.grid import notebook_grid, run_specs
from nablatau.runner import run_experiment
from nablatau.sweep import sweep_grid
from nablatau.train import CheckpointCache

pytestmark = pytest.mark.slow  # starts a Ray cluster and trains the smoke grid twice

#: The smoke grid of every notebook, cut as the module docstring says.
GRID = dict(fractions=[0.15], text_fractions=[0.15], image_methods=["ssd"], text_methods=["nablatau", "ssd"],
            sweep=False)
SWEEP = dict(fractions=[0.3])

RAY = Path(sys.executable).with_name("ray")


@pytest.fixture
def local_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs (two workers at one CPU a cell); its GCS address.

    ``--block`` keeps the head in a process of its own session, so that the teardown stops this cluster and
    no other Ray on the machine (``ray stop`` would stop them all).

    Token authentication is off for this loopback cluster, for the head and for this process alike: Ray turns
    it on for a head that finds a token in ``~/.ray/auth_token``, but a driver that names the address turns it
    on only with ``RAY_AUTH_MODE=token``, so with a token on the machine the two would disagree.
    """
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()
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
    """A results file's config and models without timings (keys ending in ``_s``)."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items() if not key.endswith("_s")}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    return value


def _results(folder: Path) -> dict[str, Any]:
    """Every results file under ``folder`` by its path there, without its environment and timings."""
    return {str(path.relative_to(folder)): _numbers({key: value for key, value in json.loads(path.read_text()).items()
                                                    if key != "environment"})
            for path in sorted(folder.rglob("*.json"))}


def _in_process(specs, output_dir: Path, cache_dir: Path) -> None:
    """The specs as the notebooks run them: one experiment (one results file) after another, in this process."""
    experiments: dict[Path, list] = {}
    for spec in specs:
        if spec.saves:
            experiments.setdefault(spec.path(output_dir), []).append(spec)
    for group in experiments.values():
        run_experiment(group, output_dir=output_dir, cache=CheckpointCache(cache_dir), progress=False)


def test_the_notebooks_smoke_grid_on_a_ray_address_cluster_writes_what_this_process_writes(
        real_data_dir, tmp_path, local_cluster, monkeypatch):
    import torch

    specs = notebook_grid("smoke", **GRID) + sweep_grid("smoke", **SWEEP).specs
    assert {spec.notebook for spec in specs} == {"quickstart", "train_original", "subset_removal", "class_removal",
                                                 "text_removal", "alpha_split_sweep"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a task that declares one CPU: the same kernels split the same way
    try:
        _in_process(specs, tmp_path / "here", tmp_path / "cache-here")
    finally:
        torch.set_num_threads(threads)
    here = _results(tmp_path / "here")
    assert len(here) == len({spec.path(tmp_path) for spec in specs if spec.saves})

    monkeypatch.setenv(RAY_ADDRESS, local_cluster)
    # Ray's workers on the cluster were started by `ray start`, with this process's environment
    # (NABLATAU_DEVICE=cpu from conftest): they train on the CPU as the in-process run does.
    assert os.environ.get("NABLATAU_DEVICE") == "cpu"
    options = dict(output_dir=tmp_path / "cluster", cache_dir=tmp_path / "cache-cluster", data_root=real_data_dir,
                   progress=False)
    cluster = run_specs(specs, **options)
    trainings = {spec.training for spec in specs if spec.trains} | {need.training for spec in specs for need in spec.needs}
    assert len(cluster.ran) == sum(spec.saves for spec in specs) and cluster.done_before == []
    assert cluster.tasks == len(cluster.ran) + len(trainings)  # each model trained once, however many share it
    print(f"two-worker cluster: {cluster}; {len(specs)} specs, {len(trainings)} trainings")
    assert _results(tmp_path / "cluster") == here

    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "cluster").rglob("*.json")}
    again = run_specs(specs, **options)
    assert again.ran == [] and again.tasks == 0 and len(again.done_before) == len(cluster.ran)
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "cluster").rglob("*.json")} == stamps
