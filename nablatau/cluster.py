"""Where Ray runs: this machine, or the cluster that Ray's own ``RAY_ADDRESS`` convention names.

Ray schedules and the library computes: every task the package fans out (today the α₀ sweep's cells)
starts Ray through :func:`start_ray`, so one rule picks the cluster everywhere:

- an explicit ``address`` wins (``"auto"`` on a cluster node, ``"<head>:6379"``, ``"ray://<head>:10001"``);
- else ``$RAY_ADDRESS``, as ``ray.init()`` itself reads it (``RAY_ADDRESS=127.0.0.1:6379 make reproduce``);
- else, or with ``address=""``, Ray starts on this machine.

An address that cannot be reached stops at once, before any work, with a message naming it and how to
run locally: Ray's own connection attempt retries for a long time before it gives up.

    >>> environ = {"RAY_ADDRESS": "10.0.0.1:6379"}
    >>> resolve_address(None, environ), resolve_address("", environ), resolve_address(None, {})
    ('10.0.0.1:6379', '', '')
    >>> host_and_port("ray://head:10001"), host_and_port("10.0.0.1:6379"), host_and_port("auto")
    (('head', 10001), ('10.0.0.1', 6379), None)
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from .errors import ConfigError

#: The environment variable Ray itself reads for the cluster's address.
RAY_ADDRESS = "RAY_ADDRESS"

#: Seconds to wait for a cluster's port to answer before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0

LOCAL_HINT = ("unset RAY_ADDRESS (or pass address=\"\") to run on this machine, or start the cluster first "
              "(`ray start --head --port=6379` on its head node)")


def resolve_address(address: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The cluster to use: ``address`` when given (``""`` = this machine), else ``$RAY_ADDRESS``, else ``""``."""
    if address is not None:
        return address
    return (os.environ if environ is None else environ).get(RAY_ADDRESS, "")


def host_and_port(address: str) -> tuple[str, int] | None:
    """The ``(host, port)`` an address names, or None where Ray finds the cluster itself (``"auto"``)."""
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def unreachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at ``address`` (a message naming it and the fix), or None when its port answers."""
    target = host_and_port(address)
    if target is None:
        return None
    try:
        with socket.create_connection(target, timeout=timeout_s):
            return None
    except OSError as error:
        return f"no Ray cluster answers at {address!r} ({type(error).__name__}: {error}); {LOCAL_HINT}"


def error_line(error: BaseException) -> str:
    """One line for an error, the worker's own exception where Ray wrapped it in a ``RayTaskError``."""
    cause = getattr(error, "cause", None) or error
    text = " ".join(str(cause).split())
    return f"{type(cause).__name__}: {text[:1000]}"


def start_ray(address: str | None = None, local_cpus: int | None = None) -> bool:
    """Connect to the cluster :func:`resolve_address` names, or start Ray here; False when Ray was already running.

    Args:
        address: the cluster (see the module docstring); None follows ``$RAY_ADDRESS``.
        local_cpus: CPUs of a Ray started on this machine (default all).

    Raises:
        ConfigError: the cluster cannot be reached, naming the address and how to run locally.
    """
    import ray

    if ray.is_initialized():
        return False
    address = resolve_address(address)
    if not address:
        # No start-up banner in executed notebooks. The address is given as "local" explicitly: an
        # unreachable $RAY_ADDRESS must not be picked up by ray.init() when the caller asked for this machine.
        ray.init(address="local", num_cpus=local_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)
        return True
    why = unreachable(address)
    if why is not None:
        raise ConfigError(why)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(f"could not connect to the Ray cluster at {address!r} ({error_line(error)}); check the "
                          "address (\"auto\" on a cluster node, \"<head>:6379\" or \"ray://<head>:10001\" from "
                          f"elsewhere), or {LOCAL_HINT}") from error
    return True
