"""Benchmark: throughput of the α₀ × fraction sweep on Ray with 1 vs 2 workers, and one cell vs retraining.

Runs the first ``--cells`` ∇τ cells of a profile's grid (taken round-robin over its fractions, so
cheap and expensive fractions mix; no retraining) through :func:`nablatau.sweep.run_sweep` once per
worker count, each time into a fresh output folder with a warm checkpoint cache (the original model is
trained or loaded first, outside the timing). The machine's CPUs are shared out: 1 worker uses all of
them as torch threads, 2 workers half each. Then it times one cell in this process against retraining
from scratch for that cell's forget set (in a fresh cache, so the training really runs). Prints
markdown tables; ``--output`` also writes them as JSON.

    python benchmarks/sweep_throughput.py                              # quick profile, 6 cells, 1 and 2 workers
    python benchmarks/sweep_throughput.py --profile smoke --cells 2    # a check in about two minutes
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
import torch

from nablatau.data import ImageData, load_cifar
from nablatau.results import load_results
from nablatau.runner import record, run_spec, train_spec
from nablatau.sweep import SWEEP_PROFILES, Cell, SweepGrid, run_sweep, sweep_grid
from nablatau.train import CheckpointCache


@dataclass(frozen=True)
class FirstCells(SweepGrid):
    """The first ``count`` ∇τ cells of a grid, round-robin over its fractions."""

    count: int = 0

    @property
    def cells(self) -> list[Cell]:
        cells = super().cells
        by_fraction = [[cell for cell in cells if cell.fraction == f] for f in self.fractions]
        mixed = [cell for group in itertools.zip_longest(*by_fraction) for cell in group if cell is not None]
        return mixed[:self.count]


def run_cell(cell: Cell, data: ImageData, output_dir: str, cache_dir: Path) -> dict:
    """Run one cell in this process and write its results file; returns the file's models."""
    entry = run_spec(cell.spec, data=data, cache=CheckpointCache(cache_dir), progress=False)
    return record(cell.spec, entry, output_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=sorted(SWEEP_PROFILES), help="grid and data size")
    parser.add_argument("--cells", type=int, default=6, help="∇τ cells per run (first of the grid, round-robin)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to compare")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--skip-retrain", action="store_true", help="skip timing one cell against retraining")
    parser.add_argument("--output", help="write the tables as JSON here")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    cache_dir = Path(os.environ.get("NABLATAU_CACHE_DIR") or "checkpoints").resolve()
    if args.cells < 1:
        parser.error(f"--cells must be at least 1, got {args.cells}")
    full = sweep_grid(args.profile, dataset=args.dataset)
    grid = FirstCells(**{**{f.name: getattr(full, f.name) for f in fields(SweepGrid)}, "retrain": False},
                      count=args.cells)
    print(f"{len(grid.cells)} cells of the {args.profile} grid: " + "; ".join(c.label for c in grid.cells))

    data = load_cifar(args.dataset)
    # Warm cache: the runs below only load the original.
    train_spec(grid.cells[0].spec.needs[0], data=data, cache=CheckpointCache(cache_dir), progress=True)

    throughput = []
    for workers in args.workers:
        threads = max(1, cpus // workers)
        with tempfile.TemporaryDirectory(prefix="sweep-benchmark-") as output_dir:
            run = run_sweep(grid, output_dir=output_dir, local_cpus=workers * threads, cpus_per_task=threads,
                            gpus_per_training=0, cache_dir=cache_dir)
            unlearn_s = [load_results(p)["models"]["nablatau"]["runtime_s"] for p in run.paths]
        throughput.append({
            "workers": workers, "threads per worker": threads, "cells": len(run.ran),
            "tasks s": round(run.compute_s, 1), "wall s (with Ray start)": round(run.wall_s, 1),
            "cells/hour": round(len(run.ran) / run.compute_s * 3600, 1),
            "cells/hour (with Ray start)": round(len(run.ran) / run.wall_s * 3600, 1),
            "mean ∇τ s per cell": round(sum(unlearn_s) / len(unlearn_s), 1),
        })
    where = f"{cpus} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}"
    print(f"\nSweep throughput, {args.profile} profile, {len(grid.cells)} ∇τ cells, {where}:\n")
    print(pd.DataFrame(throughput).to_markdown(index=False))

    versus = []
    if not args.skip_retrain:
        torch.set_num_threads(cpus)
        cell = grid.cells[0]
        retrain_cell = next(c for c in sweep_grid(args.profile, dataset=args.dataset, fractions=[cell.fraction],
                                                  split_seeds=[cell.split_seed]).retrain_cells)
        with tempfile.TemporaryDirectory(prefix="sweep-benchmark-") as scratch:
            start = time.perf_counter()
            unlearned = run_cell(cell, data, scratch, cache_dir)["nablatau"]
            cell_s = time.perf_counter() - start
            start = time.perf_counter()  # a fresh cache: the retraining really runs
            retrained = run_cell(retrain_cell, data, scratch, Path(scratch) / "cache")["retrain"]
            retrain_cell_s = time.perf_counter() - start
        versus.append({"cell": cell.label, "∇τ s": round(unlearned["runtime_s"], 1),
                       "∇τ cell s (data, eval, save)": round(cell_s, 1),
                       "retrain s": round(retrained["runtime_s"], 1),
                       "retrain cell s": round(retrain_cell_s, 1),
                       "retrain / ∇τ": round(retrained["runtime_s"] / unlearned["runtime_s"], 2)})
        print(f"\nOne cell vs retraining for its forget set, in this process with {cpus} torch threads:\n")
        print(pd.DataFrame(versus).to_markdown(index=False))
    if args.output:
        Path(args.output).write_text(json.dumps({"profile": args.profile, "machine": where,
                                                 "throughput": throughput, "cell_vs_retrain": versus}, indent=2))


if __name__ == "__main__":
    main()
