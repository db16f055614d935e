"""Speed and memory of the homework model, against PyTorch where it is installed.

    python tools/bench.py                 # homework model and a 784-256-10 MLP, 1 and 2 BLAS threads
    python tools/bench.py --epochs 5 --models softmax --threads 1

Every measurement runs in a fresh process, because the BLAS thread count
(OPENBLAS_NUM_THREADS and friends) is read when NumPy is imported. Each
process trains for --epochs epochs on the shipped MNIST (batch 100, momentum
0.9, float32, same data and batch order for both frameworks) and reports the
median seconds per training epoch, the peak memory NumPy allocates during a
training epoch (tracemalloc, in a separate untimed epoch) and the process's
peak resident memory. The machine is
shared and has 2 cores: quote medians and ratios, not single runs.

PyTorch is never a dependency of the framework: it is used here only as a
side-by-side reference, when it happens to be installed.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
MODELS = {'softmax': [], 'mlp256': [256]}  # hidden sizes; 'softmax' is the homework model


def numpy_worker(hidden_sizes, epochs, data_root):
    """Train our framework; return per-epoch seconds and memory figures."""
    import resource
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from solver import Solver

    cfg = {'data_root': data_root, 'max_epoch': epochs, 'hidden_sizes': hidden_sizes, 'verbose': False}
    solver = Solver(cfg)
    solver.train()  # timed without tracemalloc, which slows every allocation down
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Memory: one more epoch with tracemalloc on, after the data is loaded, so
    # the peak is what a training step allocates (NumPy reports to tracemalloc).
    traced = Solver(dict(cfg, max_epoch=1))
    tracemalloc.start()
    traced.train()
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {'epoch_seconds': solver.history['epoch_time'],
            'train_acc': solver.history['train_acc'][-1],
            'peak_traced_mb': peak_traced / 2 ** 20,
            'max_rss_mb': max_rss_mb}


def torch_worker(hidden_sizes, epochs, data_root, threads):
    """Train the same model with PyTorch on the same batches."""
    import resource

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from dataloader import build_dataloader

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    loader = build_dataloader(data_root, epochs, 100, shuffle=True, mode='train', seed=0)
    layers, width = [], loader.dataset.images.shape[1]
    for hidden in hidden_sizes:
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    epoch_seconds, correct = [], 0
    for _ in range(epochs):
        start, correct = time.perf_counter(), 0
        for images, labels in loader:
            x, y = torch.from_numpy(images), torch.from_numpy(labels)
            logits = model(x)
            loss = criterion(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == y).sum())
        epoch_seconds.append(time.perf_counter() - start)
    return {'epoch_seconds': epoch_seconds, 'train_acc': correct / len(loader.dataset),
            'peak_traced_mb': float('nan'),
            'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            'torch_version': torch.__version__, 'numpy_version': np.__version__}


def matmul_worker(repeats=200):
    """The product that dominates an MLP step: (100, 784) @ (784, 256), float32."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.normal(size=(100, 784)).astype(np.float32)
    b = rng.normal(size=(784, 256)).astype(np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {'median_us': statistics.median(times) * 1e6}


def run_worker(kind, model, threads, epochs, data_root):
    """Run one measurement in a fresh process with `threads` BLAS threads."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    command = [sys.executable, __file__, '--worker', kind, '--models', model, '--epochs', str(epochs),
               '--data-root', data_root, '--threads', str(threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_available():
    return subprocess.run([sys.executable, '-c', 'import torch'], capture_output=True).returncode == 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=5, help='epochs per measurement (median taken)')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--data-root', default=str(ROOT / 'data'))
    parser.add_argument('--worker', choices=['numpy', 'torch', 'matmul'], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        model = MODELS[args.models[0]]
        if args.worker == 'numpy':
            result = numpy_worker(model, args.epochs, args.data_root)
        elif args.worker == 'torch':
            result = torch_worker(model, args.epochs, args.data_root, args.threads[0])
        else:
            result = matmul_worker()
        print(json.dumps(result))
        return

    import numpy as np
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, NumPy {np.__version__}; {args.epochs} epochs per run, batch 100")
    for threads in args.threads:
        us = run_worker('matmul', 'softmax', threads, 1, args.data_root)['median_us']
        print(f"(100, 784) @ (784, 256) float32 with {threads} BLAS thread(s): median {us:.0f} us")

    with_torch = torch_available()
    if not with_torch:
        print("PyTorch is not installed: NumPy figures only (pip install torch==2.13.0 to compare).")
    print(f"\n{'model':<8} {'threads':>7} {'numpy s/epoch':>14} {'torch s/epoch':>14} {'numpy/torch':>12} "
          f"{'numpy peak alloc':>17} {'numpy max RSS':>14}")
    for model in args.models:
        for threads in args.threads:
            ours = run_worker('numpy', model, threads, args.epochs, args.data_root)
            ours_s = statistics.median(ours['epoch_seconds'])
            theirs_s = ratio = float('nan')
            if with_torch:
                theirs = run_worker('torch', model, threads, args.epochs, args.data_root)
                theirs_s = statistics.median(theirs['epoch_seconds'])
                ratio = ours_s / theirs_s
            print(f"{model:<8} {threads:>7} {ours_s:>14.3f} {theirs_s:>14.3f} {ratio:>12.2f} "
                  f"{ours['peak_traced_mb']:>14.1f} MB {ours['max_rss_mb']:>11.0f} MB")


if __name__ == '__main__':
    main()
