"""Tests of nablatau.cluster: which cluster Ray uses, and an unreachable one refused at once."""

from __future__ import annotations

import socket
import time

import pytest

from conftest import free_port
from nablatau.cluster import RAY_ADDRESS, host_and_port, resolve_address, start_ray, unreachable
from nablatau.errors import ConfigError


def test_an_explicit_address_wins_over_ray_address_and_empty_means_this_machine():
    environ = {RAY_ADDRESS: "10.1.2.3:6379"}
    assert resolve_address("auto", environ) == "auto"
    assert resolve_address("", environ) == ""
    assert resolve_address(None, environ) == "10.1.2.3:6379"
    assert resolve_address(None, {}) == ""


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:6379", ("127.0.0.1", 6379)), ("ray://head.example:10001", ("head.example", 10001)),
    ("auto", None), ("local", None), ("head:port", None),
])
def test_host_and_port(address, expected):
    assert host_and_port(address) == expected


def test_a_listening_port_is_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert unreachable(f"127.0.0.1:{server.getsockname()[1]}") is None


def test_an_unreachable_ray_address_stops_at_once_naming_it_and_how_to_run_locally(monkeypatch):
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv(RAY_ADDRESS, address)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        start_ray()
    # Refused by the port check, not after Ray's own connection retries (which take minutes).
    assert time.perf_counter() - start < 30
    assert address in str(error.value) and "unset RAY_ADDRESS" in str(error.value)


def test_the_notebook_grid_refuses_an_unreachable_cluster_before_any_task(monkeypatch, tmp_path):
    from nablatau.grid import notebook_grid, run_specs

    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv(RAY_ADDRESS, address)
    ran = []
    with pytest.raises(ConfigError, match="no Ray cluster answers at"):
        run_specs(notebook_grid("smoke"), output_dir=tmp_path, function=lambda *args: ran.append(args),
                  progress=False)
    assert ran == [] and not any(tmp_path.iterdir())
