"""Speed and memory of the homework model, an MLP and the course's CNN, against PyTorch where it is installed.

    python tools/bench.py                 # homework model, a 784-256-10 MLP and the CNN, 1 and 2 BLAS threads
    python tools/bench.py --epochs 5 --models softmax --threads 1
    python tools/bench.py --models cnn --threads 1 --epochs 3 --repeats 3   # the CNN target
    python tools/bench.py --conv-variants   # im2col.py's fast path against index arrays, np.add.at and loops

Every measurement runs in a fresh process, because the BLAS thread count
(OPENBLAS_NUM_THREADS and friends) is read when NumPy is imported. Each
process trains for --epochs epochs on the shipped MNIST (batch 100, momentum
0.9, float32, same data and batch order for both frameworks) and reports the
median seconds per training epoch, the peak memory NumPy allocates during a
training epoch (tracemalloc, in a separate untimed epoch) and the process's
peak resident memory. The machine is
shared and has 2 cores: quote medians and ratios, not single runs. With
--repeats R the NumPy and PyTorch runs alternate R times, and with
--together they run at the same time, so that both see the same load; the table gives each pair's ratio and the median ratio. CPU
seconds per epoch (time.process_time, validation excluded) are printed too:
they move less than wall-clock seconds when other processes share the cores.

The CNN is the course's network: conv 1->8 3x3 pad 1, ReLU, max-pool 2;
conv 8->16 3x3 pad 1, ReLU, max-pool 2; reshape; FC 784->128, ReLU, FC 128->10.

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
# Solver cfg of each model; 'softmax' is the homework model, 'cnn' the course's CNN.
MODELS = {'softmax': {'hidden_sizes': []}, 'mlp256': {'hidden_sizes': [256]}, 'cnn': {'model': 'cnn'}}


def numpy_worker(model_cfg, epochs, data_root):
    """Train our framework; return per-epoch seconds and memory figures."""
    import resource
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from solver import Solver

    cfg = dict(model_cfg, data_root=data_root, max_epoch=epochs, verbose=False)
    solver = Solver(cfg)
    validation_cpu = []
    validate = solver.validate

    def timed_validate():
        start = time.process_time()
        result = validate()
        validation_cpu.append(time.process_time() - start)
        return result

    solver.validate = timed_validate
    start_cpu = time.process_time()
    solver.train()  # timed without tracemalloc, which slows every allocation down
    train_cpu = time.process_time() - start_cpu - sum(validation_cpu)
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Memory: one more epoch with tracemalloc on, after the data is loaded, so
    # the peak is what a training step allocates (NumPy reports to tracemalloc).
    traced = Solver(dict(cfg, max_epoch=1))
    tracemalloc.start()
    traced.train()
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {'epoch_seconds': solver.history['epoch_time'],
            'epoch_cpu_seconds': train_cpu / epochs,
            'train_acc': solver.history['train_acc'][-1],
            'peak_traced_mb': peak_traced / 2 ** 20,
            'max_rss_mb': max_rss_mb}


def torch_model(model_cfg, num_inputs):
    """The PyTorch twin of a MODELS entry."""
    import torch

    nn = torch.nn
    if model_cfg.get('model') == 'cnn':
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    layers, width = [], num_inputs
    for hidden in model_cfg['hidden_sizes']:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))


def torch_worker(model_cfg, epochs, data_root, threads):
    """Train the same model with PyTorch on the same batches."""
    import resource

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from dataloader import build_dataloader

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    as_images = model_cfg.get('model') == 'cnn'
    loader = build_dataloader(data_root, epochs, 100, shuffle=True, mode='train', seed=0, as_images=as_images)
    model = torch_model(model_cfg, loader.dataset.images.shape[1])
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    epoch_seconds, correct, start_cpu = [], 0, time.process_time()
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
    return {'epoch_seconds': epoch_seconds, 'epoch_cpu_seconds': (time.process_time() - start_cpu) / epochs,
            'train_acc': correct / len(loader.dataset),
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


def conv_variants(repeats=5):
    """CPU milliseconds per call of im2col.py's fast path and of the ways a
    student may write the same step: index arrays (fancy indexing), np.add.at
    and a loop over the images. Shapes of the course CNN's second layer:
    a batch of 100, 8 -> 16 channels, 14 x 14, 3 x 3 kernel, padding 1;
    max pooling 2 x 2 of its 28 x 28 output, batch 100, 8 channels."""
    import numpy as np
    sys.path.insert(0, str(ROOT))
    import im2col as ops

    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8, 14, 14)).astype(np.float32)
    W = rng.normal(size=(16, 8, 3, 3)).astype(np.float32)
    b = np.zeros(16, np.float32)
    N, C, H, _ = x.shape
    k, pad = 3, 1
    x_pad = ops.pad_images(x, pad)
    # index arrays of every window pixel, rows (c, di, dj), columns (n, i, j), as CS231n's im2col_indices
    c, di, dj = np.meshgrid(np.arange(C), np.arange(k), np.arange(k), indexing='ij')
    n, i, j = np.meshgrid(np.arange(N), np.arange(H), np.arange(H), indexing='ij')
    rows = (c.reshape(-1, 1), di.reshape(-1, 1) + i.reshape(1, -1), dj.reshape(-1, 1) + j.reshape(1, -1))
    cols = ops.im2col(x_pad, k)
    dcols = rng.normal(size=cols.shape).astype(np.float32)

    def col2im_add_at():
        dx_pad = np.zeros((N, C) + x_pad.shape[2:], np.float32)
        np.add.at(dx_pad, (n.reshape(1, -1), rows[0], rows[1], rows[2]), dcols)
        return dx_pad

    pool_in = np.maximum(rng.normal(size=(100, 8, 28, 28)), 0).astype(np.float32)
    pooled, pool_pad = ops.max_pool_forward(pool_in, 2, 0)
    pool_delta = rng.normal(size=pooled.shape).astype(np.float32)

    def max_pool_backward_argmax():
        windows = pool_in.reshape(100, 8, 14, 2, 14, 2).transpose(0, 1, 2, 4, 3, 5).reshape(100, 8, 14, 14, 4)
        dx = np.zeros_like(windows)
        np.put_along_axis(dx, windows.argmax(axis=-1)[..., None], pool_delta[..., None], axis=-1)
        return dx.reshape(100, 8, 14, 14, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(pool_in.shape)

    variants = [
        ('im2col: strided view + reshape (fast path)', lambda: ops.im2col(x_pad, k)),
        ('im2col: index arrays x_pad[n, c, i + di, j + dj]',
         lambda: x_pad[n.reshape(1, -1), rows[0], rows[1], rows[2]]),
        ('conv_forward: one product (fast path)', lambda: ops.conv_forward(x, W, b, pad)),
        ('conv_forward: a loop over the images', lambda: [ops.conv_forward(x[m:m + 1], W, b, pad) for m in range(N)]),
        ('col2im: k*k strided adds (fast path)', lambda: ops.col2im(dcols, x_pad.shape, k, np.float32)),
        ('col2im: np.add.at with index arrays', col2im_add_at),
        ('max_pool_backward: k*k comparisons (fast path)',
         lambda: ops.max_pool_backward(pool_delta, pooled, pool_pad, 2, 0)),
        ('max_pool_backward: argmax + put_along_axis', max_pool_backward_argmax),
    ]
    results = {}
    for name, run in variants:
        run()
        times = []
        for _ in range(repeats):
            start = time.process_time()
            run()
            times.append(time.process_time() - start)
        results[name] = statistics.median(times) * 1e3
    return results


def start_worker(kind, model, threads, epochs, data_root):
    """Start one measurement in a fresh process with `threads` BLAS threads."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    command = [sys.executable, __file__, '--worker', kind, '--models', model, '--epochs', str(epochs),
               '--data-root', data_root, '--threads', str(threads)]
    return kind, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_worker(started):
    """Wait for a worker from start_worker; return its result dict."""
    kind, process = started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def run_worker(kind, model, threads, epochs, data_root):
    """Run one measurement in a fresh process and wait for it."""
    return finish_worker(start_worker(kind, model, threads, epochs, data_root))


def torch_available():
    return subprocess.run([sys.executable, '-c', 'import torch'], capture_output=True).returncode == 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=5, help='epochs per measurement (median taken)')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--repeats', type=int, default=1, help='alternating NumPy/PyTorch runs per setting')
    parser.add_argument('--together', action='store_true',
                        help='run the NumPy and PyTorch workers at the same time (one thread each), so that '
                             'on a shared machine both meet the same load; needs a core per worker')
    parser.add_argument('--data-root', default=str(ROOT / 'data'))
    parser.add_argument('--conv-variants', action='store_true',
                        help="CPU time of im2col.py's fast path against index arrays, np.add.at and a loop over "
                             "the images (one BLAS thread), then stop")
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

    if args.conv_variants:
        # The thread variables are read when NumPy loads: one BLAS thread unless set.
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, '1')
        results = conv_variants()
        print("CPU milliseconds per call (median of 5), course CNN shapes (see conv_variants):")
        fast = None
        for name, ms in results.items():
            fast = ms if 'fast path' in name else fast
            print(f"  {name:<52} {ms:8.1f} ms  ({ms / fast:4.1f}x the fast path above it)")
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
    print("\nSeconds per training epoch (median over the epochs of a run): wall clock, and CPU time in brackets.")
    print(f"{'model':<8} {'threads':>7} {'run':>3} {'numpy s/epoch':>16} {'torch s/epoch':>16} "
          f"{'numpy/torch':>12} {'numpy peak alloc':>17} {'numpy max RSS':>14} {'torch max RSS':>14}")
    for model in args.models:
        for threads in args.threads:
            wall_ratios, cpu_ratios, ours_all, theirs_all = [], [], [], []
            for run in range(1, args.repeats + 1):
                # NumPy and PyTorch alternate (or run at once with --together),
                # so that both meet the same load.
                started = start_worker('numpy', model, threads, args.epochs, args.data_root)
                if with_torch and args.together:
                    other = start_worker('torch', model, threads, args.epochs, args.data_root)
                ours = finish_worker(started)
                ours_s = statistics.median(ours['epoch_seconds'])
                ours_all.append(ours_s)
                theirs_s = theirs_cpu = ratio = float('nan')
                theirs_rss = ''
                if with_torch:
                    if not args.together:
                        other = start_worker('torch', model, threads, args.epochs, args.data_root)
                    theirs = finish_worker(other)
                    theirs_s, theirs_cpu = statistics.median(theirs['epoch_seconds']), theirs['epoch_cpu_seconds']
                    theirs_all.append(theirs_s)
                    ratio = ours_s / theirs_s
                    wall_ratios.append(ratio)
                    cpu_ratios.append(ours['epoch_cpu_seconds'] / theirs_cpu)
                    theirs_rss = f"{theirs['max_rss_mb']:>11.0f} MB"
                print(f"{model:<8} {threads:>7} {run:>3} {ours_s:>7.2f} ({ours['epoch_cpu_seconds']:>6.2f}) "
                      f"{theirs_s:>7.2f} ({theirs_cpu:>6.2f}) {ratio:>12.2f} "
                      f"{ours['peak_traced_mb']:>14.1f} MB {ours['max_rss_mb']:>11.0f} MB {theirs_rss}", flush=True)
            if with_torch and args.repeats > 1:
                print(f"{model:<8} {threads:>7} median of {args.repeats} runs: numpy {statistics.median(ours_all):.2f} s, "
                      f"torch {statistics.median(theirs_all):.2f} s per epoch; numpy/torch wall "
                      f"{statistics.median(wall_ratios):.2f} (range {min(wall_ratios):.2f}-{max(wall_ratios):.2f}), "
                      f"CPU {statistics.median(cpu_ratios):.2f} (range {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})",
                      flush=True)

if __name__ == '__main__':
    main()
