"""Benchmark: ResNet-18 training throughput on 32×32 images (images per second), step by step.

Why: the quick profile's measured training speed sets how long ``make reproduce`` takes. This separates
the training *step* (forward, backward, SGD update of torchvision's ResNet-18 on random 32×32 inputs) from
everything around it, over batch size, memory layout (contiguous vs channels-last) and torch's thread count,
and then times :func:`nablatau.train.train` itself for one epoch on random data with the quick recipe's
loader and batch size. Nothing is cached or written except ``--output``.

Run it on an otherwise idle machine: with another torch job on the same cores both slow down far more
than by half (each job's threads wait at barriers for threads the other one holds).

    python benchmarks/train_throughput.py                  # about two minutes on 2 cores
    python benchmarks/train_throughput.py --steps 20 --output throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import pandas as pd
import torch
from torch.utils.data import TensorDataset

from nablatau.models import resnet18
from nablatau.profiles import QUICK_IMAGE_RECIPE
from nablatau.train import make_optimizer, train, training_loader


def step_throughput(batch_size: int, channels_last: bool, threads: int, steps: int, warmup: int = 2) -> float:
    """Images per second of ``steps`` SGD training steps (after ``warmup`` untimed ones)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = resnet18(10).train()
    inputs, targets = torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), QUICK_IMAGE_RECIPE)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def train_epoch_throughput(n_images: int, threads: int) -> float:
    """Images per second of one epoch of :func:`nablatau.train.train` with the quick recipe, on random data."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(n_images, 3, 32, 32, generator=generator),
                         torch.randint(0, 10, (n_images,), generator=generator))
    recipe = QUICK_IMAGE_RECIPE.replace(epochs=1)
    loader = training_loader(data, recipe.batch_size, generator=generator)
    result = train(resnet18(10), loader, recipe, progress=False)
    trained = len(loader) * recipe.batch_size  # the incomplete last batch is dropped
    return trained / result.wall_time_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256],
                        help="128 = the quick recipe's (and CIFAR-100's) batch, 256 = the paper's CIFAR-10 batch")
    parser.add_argument("--epoch-images", type=int, default=2048, help="images in the timed train() epoch")
    parser.add_argument("--output", help="write the rows as JSON here")
    args = parser.parse_args()
    if args.steps < 1 or args.epoch_images < 1 or any(b < 1 for b in args.batch_sizes):
        parser.error("--steps, --epoch-images and every --batch-sizes value must be positive integers")
    cpus = os.cpu_count() or 1
    thread_counts = sorted({1, cpus})

    rows = []
    for threads in thread_counts:
        for batch_size in args.batch_sizes:
            for layout in ("contiguous", "channels_last"):
                rate = step_throughput(batch_size, layout == "channels_last", threads, args.steps)
                rows.append({"what": "training step", "threads": threads, "batch": batch_size, "layout": layout,
                             "images_per_s": round(rate, 1)})
                print(rows[-1], flush=True)
        rate = train_epoch_throughput(args.epoch_images, threads)
        rows.append({"what": "nablatau.train, one epoch", "threads": threads, "batch": QUICK_IMAGE_RECIPE.batch_size,
                     "layout": "contiguous", "images_per_s": round(rate, 1)})
        print(rows[-1], flush=True)

    environment = {"torch": torch.__version__, "cpus": cpus, "machine": platform.machine(),
                   "processor": platform.processor() or "unknown"}
    print(f"\nResNet-18 (torchvision) on 32×32 inputs, SGD; {environment}\n")
    print(pd.DataFrame(rows).to_markdown(index=False))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump({"environment": environment, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
