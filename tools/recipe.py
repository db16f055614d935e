"""The notes' recipe for getting a network to train (notes §4.4), one call per step.

    from tools.recipe import (check_initial_loss, overfit_small_subset, lr_range_test,
                              random_search, diagnose_curves)

run from the repository root (a notebook started there, or `python -m ...`).
Every step takes a cfg dict (the Solver's, see solver.CFG_SCHEMA) or a Solver:

1. check_initial_loss(cfg)     the untrained loss against ln C and the accuracy
                               against 1/C, with a verdict and the likely cause
2. overfit_small_subset(cfg)   train on 50 images until 100% training accuracy
3. lr_range_test(cfg)          short runs over a log-scale of learning rates;
                               the range where the loss falls fastest
4. random_search(cfg, ...)     coarse-to-fine random search on the validation
                               split, trials in parallel worker processes,
                               results appended to a file (interrupted
                               searches resume)
5. diagnose_curves(history)    underfit, overfit or still improving, with the
                               numbers behind the verdict

and, to look inside a deep network, deep_network_experiment() (vanishing
gradients, notes §2.3.5; the initial scale, §2.5.1). recipe.ipynb shows
every step with its pictures (visualize.py).

From the command line:

    python tools/recipe.py all                      # steps 1-5 on the homework model (under two minutes)
    python tools/recipe.py search --workers 2 --results search.jsonl
    python tools/recipe.py search --emit-commands trials.sh --results search.jsonl
        # one shell command per trial (for a cluster job array), then:
    python tools/recipe.py merge results/trial-*.json --results search.jsonl
    python tools/recipe.py search --round fine --emit-commands fine.sh --results search.jsonl

Each worker process (and each emitted command) runs NumPy with one BLAS
thread (OPENBLAS_NUM_THREADS=1, set before NumPy is imported), so that two
workers on two cores do not fight over them.
"""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:        # `python tools/recipe.py` puts tools/ first, not the root
    sys.path.insert(0, str(REPO_ROOT))

# One BLAS thread by default (the project's thread policy, threads.py); it
# must be applied before NumPy is imported. An explicit setting wins.
from threads import THREAD_VARIABLES, apply_thread_policy  # noqa: E402

apply_thread_policy(quiet=True)

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import queue  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

import numpy as np  # noqa: E402

from fileio import atomic_write  # noqa: E402
from solver import CFG_SCHEMA, Solver, TrainingDiverged, validate_cfg  # noqa: E402

THIS_FILE = Path(__file__).resolve()


def _solver(cfg_or_solver):
    """A Solver from a cfg dict (printing off), or the Solver given."""
    if isinstance(cfg_or_solver, dict):
        return Solver(dict(cfg_or_solver, verbose=False))
    if not isinstance(cfg_or_solver, Solver):
        raise TypeError("expected a cfg dict or a Solver, got "
                        f"{type(cfg_or_solver).__name__}")
    return cfg_or_solver


def _first(dataset, num_images):
    """(images (n, D), labels (n,)) of the first n samples of a Dataset."""
    n = min(num_images, len(dataset))
    return dataset[np.arange(n)]


# ---------------------------------------------------------------------------
# Step 1: the initial loss (notes §4.4, step 1)
# ---------------------------------------------------------------------------

@dataclass
class InitialLossCheck:
    """What an untrained model scores, against what chance predicts.

    A softmax classifier whose initial logits are all close to zero predicts
    1/C for every class, so its cross-entropy is -ln(1/C) = ln C and its
    accuracy about 1/C (notes §1.2.5).
    """
    loss: float
    expected_loss: float          # ln C
    acc: float
    expected_acc: float           # 1 / C
    num_images: int
    passed: bool
    verdict: str
    causes: list = field(default_factory=list)

    def __str__(self):
        lines = [f"Initial loss {self.loss:.4f} (expected about ln C = {self.expected_loss:.4f}); "
                 f"accuracy {100 * self.acc:.2f}% (chance 1/C = {100 * self.expected_acc:.2f}%), "
                 f"on {self.num_images} images.", self.verdict]
        lines += [f"  - {cause}" for cause in self.causes]
        return '\n'.join(lines)


def check_initial_loss(model_or_cfg, images=None, labels=None, num_classes=None,
                       num_images=1000, loss_tolerance=0.25, acc_tolerance=0.15):
    """Recipe step 1: compare the untrained model's loss with ln C.

    Inputs:
    - model_or_cfg: a cfg dict or a fresh Solver (the first num_images images
      of its validation split are used), or a model with
      `loss, acc = model.forward(images, labels)` together with images/labels
    - images: (N, D), labels: (N,) when a model is given
    - num_classes: C (default: read from the data set, or 1 + the largest label)
    - loss_tolerance: the loss passes within ln C * (1 +- loss_tolerance)
    - acc_tolerance: the accuracy passes within 1/C +- acc_tolerance
    Returns an InitialLossCheck (print it for the verdict).
    """
    if images is None:
        solver = _solver(model_or_cfg)
        model = solver.model
        images, labels = _first(solver.val_loader.dataset, num_images)
        num_classes = num_classes or solver.val_loader.dataset.num_classes
    else:
        model = model_or_cfg.model if isinstance(model_or_cfg, Solver) else model_or_cfg
        if labels is None:
            raise ValueError("check_initial_loss needs labels together with images")
    num_classes = num_classes or int(np.max(labels)) + 1
    switch = getattr(model, 'eval', None)     # dropout off: the model as it will be evaluated
    if callable(switch):
        switch()
    with np.errstate(over='ignore', invalid='ignore'):
        loss, acc = model.forward(images, labels)
    switch = getattr(model, 'train', None)
    if callable(switch):
        switch()

    n = len(labels)
    expected_loss, expected_acc = math.log(num_classes), 1.0 / num_classes
    loss_ok = math.isfinite(loss) and abs(loss - expected_loss) <= loss_tolerance * expected_loss
    acc_ok = abs(acc - expected_acc) <= acc_tolerance
    causes = []
    if not math.isfinite(loss):
        causes.append("The loss is not finite: the logits overflow. The initial weights are far "
                      "too large (notes §2.5.1), or the softmax is not computed stably "
                      "(subtract the row maximum first).")
    elif loss > expected_loss * (1 + loss_tolerance):
        if abs(loss / n - expected_loss) <= loss_tolerance * expected_loss:
            causes.append(f"loss / N = {loss / n:.3f} is about ln C: the loss is summed over the "
                          f"batch instead of averaged (divide by N, notes §1.2.5).")
        causes.append("The untrained model is confidently wrong: its logits are far from zero. "
                      "The initial weights are probably too large (try a smaller scale, e.g. "
                      "Xavier, notes §2.5.1), or the inputs are not normalised (pixels 0..255 "
                      "instead of 0..1).")
    elif loss < expected_loss * (1 - loss_tolerance):
        causes.append("The loss is lower than chance allows for an untrained model: it may be "
                      "divided twice (by N twice), the model may already be trained (weights "
                      "not re-initialised), or the labels leak into the input.")
    if not acc_ok and acc > expected_acc:
        causes.append("The untrained model is much better than chance: it is probably not "
                      "untrained, or the labels leak into the input.")
    elif not acc_ok:
        causes.append("The untrained model is much worse than chance: check that the labels "
                      "match the images (same order, same split).")
    passed = loss_ok and acc_ok
    verdict = ("PASS: the untrained model predicts about uniformly, as it should." if passed
               else "FAIL: the untrained model does not behave like chance. Likely causes:")
    return InitialLossCheck(float(loss), expected_loss, float(acc), expected_acc, n, passed,
                            verdict, causes)


# ---------------------------------------------------------------------------
# Step 2: overfit a small subset (notes §4.4, step 2)
# ---------------------------------------------------------------------------

@dataclass
class OverfitResult:
    """Training on a handful of images until they are all classified right."""
    reached: bool                 # 100% training accuracy reached
    epochs: int                   # epochs run (each one pass over the subset)
    num_images: int
    first_loss: float
    final_loss: float
    final_acc: float
    losses: list                  # loss of every epoch
    accuracies: list
    message: str

    def __str__(self):
        return self.message


def overfit_small_subset(cfg_or_solver, num_images=50, max_epochs=200, batch_size=None):
    """Recipe step 2: train on the first num_images training images until 100% accuracy.

    Uses the Solver's model and optimizer (its learning rate and momentum).
    One epoch is one pass over the subset in batches of batch_size (default:
    the whole subset in one batch), in the same order every time.
    Inputs:
    - cfg_or_solver: a cfg dict or a freshly built Solver
    Returns an OverfitResult; its message says how many epochs it took or
    why it probably did not get there.
    """
    solver = _solver(cfg_or_solver)
    model, optimizer = solver.model, solver.optimizer
    images, labels = _first(solver.train_loader.dataset, num_images)
    n = len(labels)
    batch_size = batch_size or n
    losses, accuracies = [], []
    with np.errstate(over='ignore', invalid='ignore'):
        first_loss, _ = model.forward(images, labels)
        for epoch in range(1, max_epochs + 1):
            for start in range(0, n, batch_size):
                model.forward(images[start:start + batch_size], labels[start:start + batch_size])
                model.gradient_computing()
                optimizer.step()
            loss, acc = model.forward(images, labels)     # the whole subset, after the epoch
            losses.append(float(loss))
            accuracies.append(float(acc))
            if not math.isfinite(loss) or acc == 1.0:
                break
    final_loss, final_acc = losses[-1], accuracies[-1]
    lr = solver.cfg['learning_rate']
    if final_acc == 1.0:
        message = (f"PASS: 100% training accuracy on {n} images after {epoch} epochs "
                   f"(loss {first_loss:.4f} -> {final_loss:.4f}).")
    elif not math.isfinite(final_loss):
        message = (f"FAIL: the loss became {final_loss} after {epoch} epochs on {n} images. "
                   f"The learning rate ({lr:g}) is too large or the initialisation is bad "
                   f"(notes §4.4, step 2).")
    elif final_loss > 0.9 * first_loss:
        message = (f"FAIL: the loss hardly fell in {epoch} epochs on {n} images "
                   f"({first_loss:.4f} -> {final_loss:.4f}, accuracy {100 * final_acc:.1f}%). "
                   f"Likely causes: a bug in the gradient or the update (check them against "
                   f"numerical gradients), a learning rate ({lr:g}) far too small, or a bad "
                   f"initialisation (notes §4.4, step 2).")
    else:
        message = (f"FAIL: {100 * final_acc:.1f}% training accuracy after {epoch} epochs on {n} "
                   f"images (loss {first_loss:.4f} -> {final_loss:.4f}). The loss falls but not "
                   f"to zero: the model may be too small for the data, the learning rate "
                   f"({lr:g}) too small, or max_epochs too few.")
    return OverfitResult(final_acc == 1.0, epoch, n, float(first_loss), final_loss, final_acc,
                         losses, accuracies, message)


# ---------------------------------------------------------------------------
# Step 3: learning-rate range test (notes §4.4, step 3)
# ---------------------------------------------------------------------------

@dataclass
class LRRangeResult:
    """Final training loss of one short run per learning rate."""
    learning_rates: list
    losses: list                  # mean loss over the last batches; inf where the run diverged
    initial_loss: float
    best_lr: float
    suggested_range: tuple        # (low, high): losses within `band` of the best
    num_batches: int
    message: str

    def __str__(self):
        rows = [f"{lr:10.3g}  {loss:10.4f}" for lr, loss in zip(self.learning_rates, self.losses)]
        return '\n'.join(['learning rate  final loss'] + rows + [self.message])


def lr_range_test(cfg_or_solver, learning_rates=None, num_batches=100, band=0.1):
    """Recipe step 3: which learning rates make the loss fall fast?

    One short run per learning rate (num_batches batches of the training
    set), every run from the same initial weights and the same batches.
    The loss of a run is the mean over its last fifth of batches; a run
    whose loss turns NaN, or ends above 1.5 times its first batch's, has
    diverged (its loss is inf).
    Inputs:
    - cfg_or_solver: a cfg dict or a Solver (its model is not changed)
    - learning_rates: increasing values (default: 10^-4 .. 10^1, two per decade)
    - band: the suggested range holds the learning rates whose loss is within
      (1 + band) times the lowest loss
    Returns an LRRangeResult (visualize.plot_lr_range draws it).
    """
    solver = _solver(cfg_or_solver)
    cfg = solver.cfg
    if learning_rates is None:
        learning_rates = np.logspace(-4, 1, 11)
    learning_rates = [float(lr) for lr in learning_rates]
    dataset = solver.train_loader.dataset
    # The same batches for every run: a fixed random order of the training set.
    order = np.random.default_rng(cfg['seed']).permutation(len(dataset))
    batches = [order[i:i + cfg['batch_size']] for i in range(0, len(order), cfg['batch_size'])]
    batches = batches[:num_batches]
    tail = max(1, len(batches) // 5)

    losses, initial_loss = [], None
    for lr in learning_rates:
        model, optimizer = _fresh_model_and_optimizer(solver, dict(cfg, learning_rate=lr))
        run = []
        with np.errstate(over='ignore', invalid='ignore'):
            for indices in batches:
                loss, _ = model.forward(*dataset[indices])
                if not math.isfinite(loss):
                    break
                run.append(loss)
                model.gradient_computing()
                optimizer.step()
        initial_loss = run[0] if run and initial_loss is None else initial_loss
        diverged = len(run) < len(batches) or np.mean(run[-tail:]) > 1.5 * run[0]
        losses.append(float('inf') if diverged else float(np.mean(run[-tail:])))

    finite = [(loss, lr) for lr, loss in zip(learning_rates, losses) if math.isfinite(loss)]
    if not finite:
        return LRRangeResult(learning_rates, losses, initial_loss, None, None, len(batches),
                             "Every learning rate diverged: try smaller ones, and check the "
                             "initial loss (step 1).")
    best_loss, best_lr = min(finite)
    near = [lr for loss, lr in finite if loss <= (1 + band) * best_loss]
    # keep the contiguous stretch of good learning rates around the best one
    i = learning_rates.index(best_lr)
    low = high = i
    while low > 0 and learning_rates[low - 1] in near:
        low -= 1
    while high < len(learning_rates) - 1 and learning_rates[high + 1] in near:
        high += 1
    suggested = (learning_rates[low], learning_rates[high])
    diverged = [lr for lr, loss in zip(learning_rates, losses) if not math.isfinite(loss)]
    message = (f"Lowest loss {best_loss:.4f} at learning rate {best_lr:g} after {len(batches)} "
               f"batches (the first batch's loss: {initial_loss:.4f}). Suggested range: "
               f"{suggested[0]:g} .. {suggested[1]:g} (loss within {100 * band:g}% of the "
               f"lowest); search there.")
    if diverged:
        message += f" Diverged from {min(diverged):g} up."
    return LRRangeResult(learning_rates, losses, float(initial_loss), best_lr, suggested,
                         len(batches), message)


def _fresh_model_and_optimizer(solver, cfg):
    """A new model (the same initial weights for the same seed) and its optimizer."""
    if cfg['seed'] is not None:
        np.random.seed(cfg['seed'])
    model = solver.build_model(cfg)
    return model, solver.build_optimizer(model, cfg)


# ---------------------------------------------------------------------------
# Step 4: coarse-to-fine random search (notes §4.4, steps 4 and 5)
# ---------------------------------------------------------------------------

# key: (low, high, scale). Scales:
#   'log'     log10(value) uniform in [log10 low, log10 high]
#   'log1m'   log10(1 - value) uniform: momentum 0.5, 0.9, 0.99 are equally far apart
#   'log2int' log2(value) uniform, rounded to an integer (batch sizes)
SEARCH_SPACE = {
    'learning_rate': (1e-3, 1.0, 'log'),
    'momentum': (0.5, 0.99, 'log1m'),
    'batch_size': (64, 512, 'log2int'),
    'weight_decay': (1e-6, 1e-3, 'log'),     # the notes' usual values: 1e-4, 1e-5 (and 0)
    'dropout': (0.05, 0.5, 'log'),
}
COARSE_EPOCHS = 2      # notes §4.4 step 4: coarse runs of 1-5 epochs
FINE_EPOCHS = 10       # step 5: the best region, trained longer (10-20 epochs)
FINE_SHRINK = 0.25     # the fine range is this fraction of the coarse one (in log units)


def _to_unit(value, scale):
    """The coordinate in which a scale samples uniformly."""
    if scale == 'log':
        return math.log10(value)
    if scale == 'log1m':
        return math.log10(1 - value)
    if scale == 'log2int':
        return math.log2(value)
    if scale == 'linear':
        return value
    raise ValueError(f"unknown scale {scale!r}: use 'log', 'log1m', 'log2int' or 'linear'")


def _from_unit(u, scale):
    """Inverse of _to_unit, vectorised over u."""
    u = np.asarray(u, dtype=np.float64)
    if scale == 'log':
        return 10.0 ** u
    if scale == 'log1m':
        return 1.0 - 10.0 ** u
    if scale == 'log2int':
        return np.rint(2.0 ** u).astype(np.int64)
    return u


def sample_hyperparameters(space, num_trials, seed):
    """Random hyper-parameter settings, each key drawn on its own scale.

    Inputs:
    - space: {key: (low, high, scale)} (see SEARCH_SPACE)
    - num_trials: number of settings
    - seed: the same seed gives the same settings
    Returns a list of num_trials dicts of plain Python numbers.
    """
    rng = np.random.default_rng(seed)
    columns = {}
    for key in sorted(space):              # a fixed order: reproducible whatever the dict order
        low, high, scale = space[key]
        ends = sorted((_to_unit(low, scale), _to_unit(high, scale)))
        columns[key] = _from_unit(rng.uniform(ends[0], ends[1], size=num_trials), scale)
    return [{key: columns[key][i].item() for key in space} for i in range(num_trials)]


def usable_search_space(space, base_cfg, schema=None):
    """(space the Solver accepts, notes on the keys left out).

    A key is left out when solver.CFG_SCHEMA does not have it (yet), or when
    it cannot matter for the model (dropout without hidden layers).
    """
    schema = CFG_SCHEMA if schema is None else schema
    usable, notes = {}, []
    for key, spec in space.items():
        if key not in schema:
            notes.append(f"{key}: not a Solver cfg key (solver.CFG_SCHEMA), skipped")
        elif key == 'dropout' and not base_cfg.get('hidden_sizes'):
            notes.append("dropout: the model has no hidden layer to drop units from, skipped")
        else:
            usable[key] = spec
    return usable, notes


def fine_space(space, best, shrink=FINE_SHRINK):
    """The space around the best setting, `shrink` times as wide (on each key's
    own scale), and inside the coarse range. A key whose best value lies
    outside its coarse range (it was not searched) keeps the coarse range."""
    fine = {}
    for key, (low, high, scale) in space.items():
        if not min(low, high) <= best.get(key, float('nan')) <= max(low, high):
            fine[key] = (low, high, scale)
            continue
        lo_u, hi_u = sorted((_to_unit(low, scale), _to_unit(high, scale)))
        half = shrink * (hi_u - lo_u) / 2
        centre = min(max(_to_unit(best[key], scale), lo_u + half), hi_u - half)
        ends = [_from_unit(centre - half, scale).item(), _from_unit(centre + half, scale).item()]
        fine[key] = (min(ends), max(ends), scale)
    return fine


def trial_key(cfg):
    """12 hex digits naming a trial by its cfg (what it computes)."""
    relevant = {k: v for k, v in sorted(cfg.items()) if k not in ('verbose', 'display_freq')}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def make_trials(base_cfg, settings, round_name, max_epoch):
    """[{'key', 'round', 'cfg'}]: base_cfg with each setting and max_epoch.

    Each cfg is complete (every key of solver.CFG_SCHEMA, defaults filled in),
    so that every trial names every hyper-parameter it ran with.
    """
    trials = []
    for setting in settings:
        # validate_cfg: a clear error before anything runs, and the defaults filled in
        cfg = validate_cfg(dict(base_cfg, **setting, max_epoch=max_epoch, verbose=False))
        cfg = json.loads(json.dumps(cfg))     # plain JSON types, as the results file stores them
        trials.append({'key': trial_key(cfg), 'round': round_name, 'cfg': cfg})
    return trials


def run_trial(cfg):
    """Train one cfg; return its result on the validation split (a JSON-ready dict)."""
    start = time.perf_counter()
    solver = Solver(dict(cfg, verbose=False))
    status = 'ok'
    try:
        with np.errstate(over='ignore', invalid='ignore'):
            solver.train()
    except TrainingDiverged:
        status = 'diverged'
    history = {k: [float(v) for v in solver.history[k]]
               for k in ('train_loss', 'train_acc', 'val_loss', 'val_acc', 'epoch_time')}
    done = bool(history['val_acc']) and status == 'ok'
    return {
        'status': status,
        'val_acc': history['val_acc'][-1] if done else None,
        'val_loss': history['val_loss'][-1] if done else None,
        'train_acc': history['train_acc'][-1] if done else None,
        'best_val_acc': max(history['val_acc']) if history['val_acc'] else None,
        'epochs': len(history['train_loss']),
        'seconds': time.perf_counter() - start,
        'blas_threads': os.environ.get('OPENBLAS_NUM_THREADS'),   # what this process ran with
        'history': history,
    }


# ----- the results file: one JSON line per finished trial -----

class ResultsError(ValueError):
    """A results file, trial file or path that cannot be used; the message
    (one line) names the file and line and says what to do."""


# What every result line holds (make_trials + run_trial), checked when read.
RESULT_KEYS = ('key', 'round', 'cfg', 'status', 'val_acc', 'epochs', 'seconds', 'history')
# cfg keys that may differ between the trials of one search: what it searches, and the epochs.
# Every other key (seed, data_root, normalization, the model) is the search's setup.
NOT_SETUP = set(SEARCH_SPACE) | {'max_epoch', 'verbose', 'display_freq'}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_result(result, where):
    """Raise ResultsError unless `result` is a trial result as this module
    writes it. `where` ('file:line') starts the message."""
    if not isinstance(result, dict):
        raise ResultsError(f"{where}: not a trial result (a JSON object expected, got {type(result).__name__})")
    missing = [key for key in RESULT_KEYS if key not in result]
    if missing:
        raise ResultsError(f"{where}: not a trial result: it has no {', '.join(missing)}")
    acc = result['val_acc']
    if acc is not None and not (_is_number(acc) and 0 <= acc <= 1):
        raise ResultsError(f"{where}: val_acc must be a number between 0 and 1 or null, got {acc!r}")
    if not isinstance(result['cfg'], dict) or result['key'] != trial_key(result['cfg']):
        raise ResultsError(f"{where}: its key {result['key']!r} is not the key of its cfg (was the line edited?)")
    if result['round'] not in ('coarse', 'fine') or result['status'] not in ('ok', 'diverged'):
        raise ResultsError(f"{where}: round must be 'coarse' or 'fine' and status 'ok' or 'diverged', "
                           f"got {result['round']!r} and {result['status']!r}")
    if not isinstance(result['epochs'], int) or not _is_number(result['seconds']) \
            or not isinstance(result['history'], dict):
        raise ResultsError(f"{where}: epochs (an integer), seconds (a number) or history (an object) is malformed")


def setup_difference(cfg, other):
    """The setup keys (not searched) whose values differ, as 'key a != b' texts."""
    ours = {k: v for k, v in cfg.items() if k not in NOT_SETUP}
    theirs = {k: v for k, v in other.items() if k not in NOT_SETUP}
    return [f"{key} {ours.get(key, '(unset)')!r} against {theirs.get(key, '(unset)')!r}"
            for key in sorted(set(ours) | set(theirs)) if ours.get(key, '(unset)') != theirs.get(key, '(unset)')]


def check_same_setup(cfg, where, reference_cfg, reference_where):
    """Refuse a trial whose seed, data, normalisation or model differs from the reference's."""
    difference = setup_difference(cfg, reference_cfg)
    if difference:
        raise ResultsError(f"{where}: another setup than {reference_where} ({'; '.join(difference)}): trials of "
                           f"different setups cannot be ranked together; use another --results file")


def _cut_short(text, error):
    """True when a line that failed to parse is a JSON object cut off by an
    interrupted write (its end is missing), not a damaged one."""
    return text.lstrip().startswith('{') and (error.msg.startswith('Unterminated string')
                                              or error.pos >= len(text.rstrip()))


def load_results(path):
    """{key: result} of every line of a results file (none if it does not exist).

    A line cut short by an interrupted write is ignored: that trial reruns.
    Any other bad line, or trials of different setups, raise ResultsError
    naming the file and line, before anything is trained or appended.
    """
    results, first = {}, None
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return results
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read ({error.strerror})") from None
    for number, raw in enumerate(data.split(b'\n'), start=1):
        where = f"{path}:{number}"
        if not raw.strip():
            continue
        try:
            text = raw.decode('utf-8')
            result = json.loads(text)
        except UnicodeDecodeError:
            raise ResultsError(f"{where}: not text (binary data?): delete this line or use another "
                               f"--results file") from None
        except json.JSONDecodeError as error:
            if _cut_short(text, error):
                continue
            raise ResultsError(f"{where}: not a JSON line ({error.msg}, column {error.colno}): fix or delete "
                               f"this line") from None
        check_result(result, where)
        if first is None:
            first = (result['cfg'], where)
        else:
            check_same_setup(result['cfg'], where, *first)
        results[result['key']] = result
    return results


def check_writable(path, what, folder=False):
    """Raise ResultsError now, before anything trains, unless a file can be
    written at `path` (or, with folder=True, in the folder `path`). The
    folder is created; an existing file is left as it is."""
    path = Path(path)
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        if not folder and path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            with tempfile.NamedTemporaryFile(dir=where, prefix='.write-test-'):
                pass
    except OSError as error:
        raise ResultsError(f"{what} {path} cannot be written ({error.strerror or error}): choose another path "
                           f"or fix the folder's permissions") from None


def append_result(path, result):
    """Append one result as one line, in one write() (O_APPEND), then fsync.

    A single append is all or nothing for a reader that skips a damaged last
    line, so an interrupted search loses at most the trial being written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(result) + '\n').encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        # A previous run killed in the middle of a line left no newline: end that line first.
        if os.fstat(fd).st_size and _last_byte(path) != b'\n':
            line = b'\n' + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_byte(path):
    with open(path, 'rb') as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _worker_env(threads=1):
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    return env


def run_trials(trials, results_path, workers=2, log=print):
    """Run the trials not yet in results_path; return {key: result} of all of them.

    workers >= 1: that many worker processes (`python tools/recipe.py worker`),
    each started with one BLAS thread, each running one trial at a time;
    workers = 0: in this process (for debugging).
    Every finished trial is appended to results_path at once, so a rerun
    after an interruption skips the finished ones.
    """
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be 0 (this process) or a positive number of processes, got {workers!r}")
    done = load_results(results_path)
    if done and trials:
        first = next(iter(done.values()))
        for trial in trials:
            check_same_setup(trial['cfg'], f"this search ({trial['round']} round)", first['cfg'], results_path)
    todo = [t for t in trials if t['key'] not in done]
    todo = list({t['key']: t for t in todo}.values())       # the same cfg twice runs once
    if todo:
        check_writable(results_path, 'the results file')
    if len(todo) < len(trials):
        log(f"{len(trials) - len(todo)} of {len(trials)} trials already in {results_path}: skipped")
    lock = threading.Lock()
    count = [0]

    unwritten = []

    def record(trial, outcome):
        result = dict(trial, **outcome)
        with lock:
            try:
                append_result(results_path, result)
            except OSError as error:          # e.g. the disk is full: print the result rather than lose it
                unwritten.append(result)
                log(f"could not append to {results_path} ({error}); the result, to add as a line: "
                    f"{json.dumps(result)}")
            done[trial['key']] = result
            count[0] += 1
            acc = result['val_acc']
            log(f"[{count[0]}/{len(todo)}] {trial['round']} {_describe(trial['cfg'])}: "
                + (f"val {100 * acc:.2f}%" if acc is not None else result['status'])
                + f" ({result['seconds']:.1f} s)")

    if workers == 0:
        for trial in todo:
            record(trial, run_trial(trial['cfg']))
    elif todo:
        pending = queue.Queue()
        for trial in todo:
            pending.put(trial)
        errors = []
        threads = [threading.Thread(target=_drive_worker, args=(pending, record, errors))
                   for _ in range(min(workers, len(todo)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"a worker process failed: {errors[0]}\nThe finished trials are "
                               f"in {results_path}; run the same command again to resume.")
    if unwritten:
        raise ResultsError(f"{len(unwritten)} result(s) could not be appended to {results_path}: each is printed "
                           f"above as a JSON line; add those lines to the file, then run the command again")
    return {t['key']: done[t['key']] for t in trials}


def _drive_worker(pending, record, errors):
    """Feed trials to one worker process, one JSON line each, until none are left."""
    process = subprocess.Popen([sys.executable, str(THIS_FILE), 'worker'], cwd=str(REPO_ROOT),
                               env=_worker_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        while not errors:
            try:
                trial = pending.get_nowait()
            except queue.Empty:
                break
            process.stdin.write(json.dumps(trial['cfg']) + '\n')
            process.stdin.flush()
            line = process.stdout.readline()
            if not line:
                errors.append(process.stderr.read().strip()[-2000:] or 'it exited')
                break
            record(trial, json.loads(line))
    finally:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
        process.wait()


def _worker_loop():
    """`python tools/recipe.py worker`: read a cfg per line, write its result per line."""
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run_trial(json.loads(line))), flush=True)


def _describe(cfg, keys=None):
    keys = keys or [k for k in SEARCH_SPACE if k in cfg]
    parts = []
    for key in keys:
        value = cfg[key]
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return ' '.join(parts)


# ----- the search -----

@dataclass
class SearchResult:
    """Every trial of a search, and the best one."""
    trials: list                  # result dicts (cfg, round, val_acc, ...), in trial order
    best: dict                    # the trial with the highest final validation accuracy
    space: dict                   # the coarse space searched
    notes: list                   # keys left out, and why
    seconds: float                # wall time of this call

    def table(self, top=10):
        """The best `top` trials as printed text."""
        keys = list(self.space)
        ranked = sorted(self.trials, key=_rank)
        header = f"{'round':6s} " + ' '.join(f'{k:>13s}' for k in keys) + '  val acc  epochs'
        rows = [header]
        for t in ranked[:top]:
            values = ' '.join(f"{t['cfg'][k]:13.4g}" for k in keys)
            acc = '      -' if t['val_acc'] is None else f"{100 * t['val_acc']:6.2f}%"
            rows.append(f"{t['round']:6s} {values}  {acc}  {t['epochs']:6d}")
        return '\n'.join(rows)


def _rank(trial):
    return -(trial['val_acc'] if trial['val_acc'] is not None else -1.0)


def random_search(base_cfg, results_path, space=None, coarse_trials=16, fine_trials=8,
                  coarse_epochs=COARSE_EPOCHS, fine_epochs=FINE_EPOCHS, seed=0, workers=2,
                  extra_fine=(), csv_path=None, log=print):
    """Recipe step 4: a coarse round of short runs, then a fine round around the best.

    Inputs:
    - base_cfg: the Solver cfg every trial starts from
    - results_path: JSON-lines file of finished trials (appended; a rerun resumes)
    - space: {key: (low, high, scale)} (default SEARCH_SPACE; keys the Solver
      does not accept are left out, with a note)
    - coarse_trials, fine_trials: number of random settings per round
    - coarse_epochs, fine_epochs: epochs of each trial in the round
    - seed: seed of the sampling (the trials' own seed is base_cfg['seed'])
    - workers: worker processes (0: in this process)
    - extra_fine: settings (dicts) to train in the fine round too, e.g. the
      homework default as a reference
    - csv_path: where to write the table of all trials (default: results_path
      with .csv)
    Returns a SearchResult; every trial is ranked by its final validation accuracy.
    """
    check_counts(coarse_trials, fine_trials, workers)
    start = time.perf_counter()
    space, notes = usable_search_space(SEARCH_SPACE if space is None else space, base_cfg)
    for note in notes:
        log(f"note: {note}")
    if not space:
        raise ValueError("nothing to search: no key of the search space is a Solver cfg key")
    coarse = make_trials(base_cfg, sample_hyperparameters(space, coarse_trials, seed),
                         'coarse', coarse_epochs)
    coarse_results = run_trials(coarse, results_path, workers, log)
    best_coarse = min(coarse_results.values(), key=_rank)
    if best_coarse['val_acc'] is None:
        raise RuntimeError("every coarse trial diverged: narrow the learning-rate range "
                           "(recipe step 3 suggests one)")
    fine_ranges = fine_space(space, best_coarse['cfg'])
    log("fine round around the best coarse trial: " + ', '.join(
        f"{k} {lo:.3g}..{hi:.3g}" for k, (lo, hi, _) in fine_ranges.items()))
    settings = sample_hyperparameters(fine_ranges, fine_trials, seed + 1) + list(extra_fine)
    fine = make_trials(base_cfg, settings, 'fine', fine_epochs)
    fine_results = run_trials(fine, results_path, workers, log)

    trials = list(coarse_results.values()) + [r for k, r in fine_results.items()
                                              if k not in coarse_results]
    best = min(fine_results.values(), key=_rank)
    result = SearchResult(trials, best, space, notes, time.perf_counter() - start)
    write_csv(result.trials, list(space), csv_path or Path(results_path).with_suffix('.csv'))
    return result


def check_counts(coarse_trials, fine_trials, workers):
    """One-line errors for trial and worker counts a search cannot use."""
    for name, value, least in (('coarse_trials', coarse_trials, 1), ('fine_trials', fine_trials, 1),
                               ('workers', workers, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def write_csv(trials, keys, path):
    """One row per trial: round, key, the hyper-parameters, the results."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(['round', 'key'] + keys + ['max_epoch', 'status', 'val_acc', 'val_loss',
                                               'train_acc', 'best_val_acc', 'seconds'])
    for t in sorted(trials, key=_rank):
        writer.writerow([t['round'], t['key']] + [t['cfg'][k] for k in keys]
                        + [t['cfg']['max_epoch'], t['status'], t['val_acc'], t['val_loss'],
                           t['train_acc'], t['best_val_acc'], round(t['seconds'], 3)])
    with atomic_write(path, 'w', newline='') as f:
        f.write(out.getvalue())


# ----- the same trials on a cluster -----

def trial_command(trial, out_dir, python='python3'):
    """One shell line that runs one trial and writes its result to out_dir/trial-<key>.json."""
    out = Path(out_dir) / f"trial-{trial['key']}.json"
    return ' '.join(['OPENBLAS_NUM_THREADS=1', shlex.quote(python), shlex.quote(str(THIS_FILE)),
                     'trial', '--round', trial['round'], '--cfg', shlex.quote(json.dumps(trial['cfg'])),
                     '--out', shlex.quote(str(out))])


def emit_commands(trials, commands_path, out_dir, results_path=None, python='python3'):
    """Write one command per line for the trials not already in results_path.

    Run them anywhere (GNU parallel: `parallel < trials.sh`; a Slurm job
    array: `sed -n "${SLURM_ARRAY_TASK_ID}p" trials.sh | bash`), then merge
    their files with merge_results. Returns the number of commands written.
    """
    done = load_results(results_path) if results_path else {}
    lines = [trial_command(t, out_dir, python) for t in trials if t['key'] not in done]
    with atomic_write(commands_path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))
    return len(lines)


def read_trial_file(name):
    """The result in one `trial` command's file, checked (ResultsError naming file and line)."""
    try:
        text = Path(name).read_bytes().decode('utf-8')
        result = json.loads(text)
    except OSError as error:
        raise ResultsError(f"{name}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{name}: not a trial result file (binary data)") from None
    except json.JSONDecodeError as error:
        raise ResultsError(f"{name}:{error.lineno}: not a trial result file ({error.msg}, column "
                           f"{error.colno}); rerun its trial command") from None
    check_result(result, name)
    return result


def merge_results(files, results_path):
    """Append the results of `trial` commands (one JSON file each) that are not
    yet in results_path. Returns the number added.

    Every file is read and checked first (a trial result, of the same setup
    as the results file's trials): one bad file appends nothing.
    """
    done = load_results(results_path)
    reference = next(((r['cfg'], str(results_path)) for r in done.values()), None)
    new = {}
    for name in files:
        result = read_trial_file(name)
        if reference is None:
            reference = (result['cfg'], str(name))
        check_same_setup(result['cfg'], str(name), *reference)
        if result['key'] not in done:
            new.setdefault(result['key'], result)
    if new:
        check_writable(results_path, 'the results file')
    for result in new.values():
        append_result(results_path, result)
    return len(new)


# ---------------------------------------------------------------------------
# Step 5: learning-curve diagnosis (notes §4.4, step 6)
# ---------------------------------------------------------------------------

@dataclass
class CurveDiagnosis:
    verdict: str      # 'diverged', 'overfitting', 'still improving', 'underfitting' or 'good fit'
    numbers: dict                 # the numbers behind the verdict
    message: str

    def __str__(self):
        return self.message


def diagnose_curves(history, gap_tolerance=0.02, turn_tolerance=0.01, improving_tolerance=0.001,
                    loss_improving_tolerance=0.01, fit_threshold=0.99, window=2):
    """Recipe step 5: read a run's per-epoch curves.

    Inputs:
    - history: solver.history (per-epoch 'train_loss', 'train_acc',
      'val_loss', 'val_acc'; at least 2 epochs)
    - gap_tolerance: a train - validation accuracy gap above this is overfitting
    - turn_tolerance: the validation loss has turned up when its last value is
      this fraction above its minimum, reached before the last epoch, and
      the validation accuracy is no higher than at that minimum
    - improving_tolerance, loss_improving_tolerance: still improving when,
      over the last `window` epochs, the validation accuracy rose by more
      than improving_tolerance per epoch, or its loss fell by more than this
      fraction per epoch
    - fit_threshold: with a small gap, a training accuracy below this is
      underfitting (the model cannot even fit the training set)
    Returns a CurveDiagnosis (verdict, numbers, message).

    The training accuracy is the mean over each epoch while the weights move,
    the validation accuracy is measured after it; the gap is the difference
    of the last values.
    """
    if len(history['val_acc']) < 2:
        raise ValueError("diagnose_curves needs at least 2 epochs of history")
    if not np.all(np.isfinite(history['train_loss'])) or not np.all(np.isfinite(history['val_loss'])):
        return CurveDiagnosis('diverged', {}, "DIVERGED: the loss is not finite; lower the "
                                              "learning rate (recipe step 3).")
    n = curve_numbers(history, window)
    val_acc = history['val_acc']
    # The validation loss has turned up, and the accuracy has not gained since its minimum
    # (a loss that creeps up while the accuracy still rises is calibration noise, not overfitting).
    turned = (n['min_val_loss_epoch'] < n['epochs'] and n['val_loss_rise'] > turn_tolerance
              and val_acc[-1] <= val_acc[n['min_val_loss_epoch'] - 1])
    if turned or n['gap'] > gap_tolerance:
        verdict = 'overfitting'
    elif (n['val_acc_gain_per_epoch'] > improving_tolerance
          or n['val_loss_fall_per_epoch'] > loss_improving_tolerance):
        verdict = 'still improving'
    elif n['final_train_acc'] < fit_threshold:
        verdict = 'underfitting'
    else:
        verdict = 'good fit'
    return CurveDiagnosis(verdict, n, curve_message(verdict, n, fit_threshold))


def curve_numbers(history, window=2):
    """The numbers diagnose_curves reads from a history of at least 2 epochs:
    the last accuracies and their gap, where the validation loss was lowest
    and how far it rose since, and the changes per epoch over the last
    `window` epochs."""
    train_acc, val_acc = np.asarray(history['train_acc']), np.asarray(history['val_acc'])
    val_loss, train_loss = np.asarray(history['val_loss']), np.asarray(history['train_loss'])
    epochs = len(val_acc)
    window = min(window, epochs - 1)
    return {
        'epochs': epochs,
        'window': window,
        'final_train_acc': float(train_acc[-1]),
        'final_val_acc': float(val_acc[-1]),
        'gap': float(train_acc[-1] - val_acc[-1]),
        'min_val_loss': float(val_loss.min()),
        'min_val_loss_epoch': int(np.argmin(val_loss)) + 1,
        'final_val_loss': float(val_loss[-1]),
        'val_loss_rise': float(val_loss[-1] / val_loss.min() - 1),
        'val_acc_gain_per_epoch': float((val_acc[-1] - val_acc[-1 - window]) / window),
        'val_loss_fall_per_epoch': float((1 - val_loss[-1] / val_loss[-1 - window]) / window),
        'train_loss_change_per_epoch': float((train_loss[-1] - train_loss[-1 - window]) / window),
    }


def curve_message(verdict, n, fit_threshold):
    """The verdict in words, with the numbers `n` (curve_numbers) behind it and what to do."""
    if verdict == 'overfitting':
        return (f"OVERFITTING: training accuracy {100 * n['final_train_acc']:.2f}% against "
                f"validation {100 * n['final_val_acc']:.2f}% (gap {100 * n['gap']:.2f} points); "
                f"the validation loss was lowest at epoch {n['min_val_loss_epoch']} "
                f"({n['min_val_loss']:.4f}) and is {n['final_val_loss']:.4f} at epoch {n['epochs']}"
                f" ({100 * n['val_loss_rise']:+.1f}%). Stop earlier, add weight decay or "
                f"dropout, or get more data (notes §4.2).")
    if verdict == 'still improving':
        return (f"STILL IMPROVING: over the last {n['window']} epochs the validation accuracy "
                f"changed by {100 * n['val_acc_gain_per_epoch']:+.2f} points per epoch (now "
                f"{100 * n['final_val_acc']:.2f}%) and its loss by "
                f"{-100 * n['val_loss_fall_per_epoch']:+.1f}% per epoch (now "
                f"{n['final_val_loss']:.4f}): train longer or with a larger learning rate.")
    if verdict == 'underfitting':
        return (f"UNDERFITTING: training and validation accuracy agree "
                f"({100 * n['final_train_acc']:.2f}% against {100 * n['final_val_acc']:.2f}%, "
                f"gap {100 * n['gap']:.2f} points) and have stopped improving "
                f"({100 * n['val_acc_gain_per_epoch']:+.2f} points per epoch), below "
                f"{100 * fit_threshold:g}% on the training set itself: the model has no "
                f"capacity left to fit it better. A larger model (hidden layers) should do "
                f"better.")
    return (f"GOOD FIT: the curves have levelled off at {100 * n['final_train_acc']:.2f}% "
            f"training and {100 * n['final_val_acc']:.2f}% validation accuracy (gap "
            f"{100 * n['gap']:.2f} points), the validation loss at its minimum.")


# ---------------------------------------------------------------------------
# Inside a deep network: vanishing gradients and initialisation
# (notes §2.3.5, §2.5.1)
# ---------------------------------------------------------------------------

# label: (activation, init) of every hidden layer of the deep network
DEEP_SETTINGS = {
    'sigmoid, Xavier': ('sigmoid', 'xavier'),       # §2.3.5: gradients vanish towards the input
    'ReLU, Gaussian 0.01': ('relu', 'gaussian'),    # §2.5.1: activations shrink layer by layer
    'ReLU, Xavier': ('relu', 'xavier'),
    'ReLU, MSRA': ('relu', 'msra'),                 # keeps the spread of ReLU activations
}


def deep_network_experiment(data_root='data', depth=6, width=128, num_iterations=200,
                            record_every=20, batch_size=100, learning_rate=0.05, momentum=0.9,
                            probe_size=500, settings=None, seed=0):
    """Train one deep MLP per setting and record per-layer statistics.

    Each network is 784 -> depth hidden layers of `width` units -> 10, with
    the activation and initialisation of its setting; all start from the
    same seed and see the same batches, with SGD (learning_rate, momentum).
    Every record_every iterations a LayerStatistics records the activations
    and gradient norms of each layer on a fixed probe batch of training images.
    Returns {label: LayerStatistics} (visualize.plot_layer_statistics draws it).
    """
    from dataloader import Dataset
    from layers import Classifier, build_mlp
    from loss import SoftmaxCrossEntropyLossLayer
    from optimizer import SGD
    from visualize import LayerStatistics

    settings = DEEP_SETTINGS if settings is None else settings
    dataset = Dataset(data_root, mode='train')
    num_input, num_classes = dataset.images.shape[1], dataset.num_classes
    probe = dataset[np.arange(min(probe_size, len(dataset)))]
    order = np.random.default_rng(seed).permutation(len(dataset))
    batches = [order[(i * batch_size) % len(order):][:batch_size] for i in range(num_iterations)]
    results = {}
    for label, (activation, init) in settings.items():
        np.random.seed(seed)
        network = build_mlp(num_input, [width] * depth, num_classes, activation=activation,
                            init=init)
        model = Classifier(network, SoftmaxCrossEntropyLossLayer())
        optimizer = SGD(model, learning_rate, momentum)
        statistics = LayerStatistics(*probe)
        with np.errstate(over='ignore', invalid='ignore'):
            for iteration, indices in enumerate(batches):
                if iteration % record_every == 0:
                    statistics.record(model, iteration)
                model.forward(*dataset[indices])
                model.gradient_computing()
                optimizer.step()
            statistics.record(model, num_iterations)
        results[label] = statistics
    return results


# ---------------------------------------------------------------------------
# Predictions, for the pictures
# ---------------------------------------------------------------------------

def predict_proba(model, images, batch_size=1000):
    """Class probabilities of a model, (N, C), computed in batches.

    The probabilities are the softmax of the model's class scores
    (layers.predict: model.predict, or W and b of an original homework model).
    """
    from layers import predict
    from loss import softmax

    switch = getattr(model, 'eval', None)
    if callable(switch):
        switch()
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        chunks.append(softmax(predict(model, batch)))
    switch = getattr(model, 'train', None)
    if callable(switch):
        switch()
    return np.concatenate(chunks)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

# The homework's defaults (solver.py), the reference of the search.
HOMEWORK_DEFAULT = {'learning_rate': 0.01, 'momentum': 0.9, 'batch_size': 100}


def run_all(data_root='data', out_dir='outputs/recipe', workers=2, coarse_trials=16, fine_trials=8,
            seed=0, log=print):
    """Steps 1-5 on the homework model; figures and the search table go to out_dir.

    Returns a dict of what each step found (and the seconds it took).
    """
    check_counts(coarse_trials, fine_trials, workers)
    out_dir = Path(out_dir)
    check_writable(out_dir, 'the output folder', folder=True)
    load_results(out_dir / 'search.jsonl')            # a damaged results file stops us before training
    base = {'data_root': str(Path(data_root).resolve()), 'seed': seed}
    timings, clock = {}, time.perf_counter()

    def step(title, name, run):
        log(title)
        start = time.perf_counter()
        result = run()
        timings[name] = time.perf_counter() - start
        return result

    check = step("== Step 1: initial loss ==", '1 initial loss', lambda: _log(log, check_initial_loss(base)))
    overfit = step("\n== Step 2: overfit 50 images ==", '2 overfit',
                   lambda: _log(log, overfit_small_subset(base)))
    lr_result = step("\n== Step 3: learning-rate range test ==", '3 lr range',
                     lambda: _lr_range_step(base, out_dir, log))
    best, reference = step(f"\n== Step 4: random search, {workers} worker process(es) ==", '4 search',
                           lambda: _search_step(base, out_dir, lr_result, coarse_trials, fine_trials, seed,
                                                workers, log))
    diagnosis, test_loss, test_acc = step("\n== Step 5: learning curves of the best setting ==",
                                          '5 curves + test', lambda: _curves_step(best, log))
    timings['total'] = time.perf_counter() - clock
    log('Seconds per step: ' + ', '.join(f'{k} {v:.1f}' for k, v in timings.items()))
    found = dict(initial_loss=asdict(check), overfit=asdict(overfit), lr_range=asdict(lr_result), best=best,
                 reference=reference, diagnosis=asdict(diagnosis), test_acc=test_acc, test_loss=test_loss,
                 timings=timings, workers=workers)
    with atomic_write(out_dir / 'recipe.json', 'w') as f:
        json.dump(found, f, indent=1)
    return found


def _log(log, result):
    log(result)
    return result


def _lr_range_step(base, out_dir, log):
    """Step 3, and its picture."""
    import visualize
    lr_result = _log(log, lr_range_test(base))
    visualize.plot_lr_range(lr_result, out_dir / 'lr_range.png')
    return lr_result


def _is_reference(trial):
    """Is this trial the homework's default setting?"""
    return all(trial['cfg'][k] == v for k, v in HOMEWORK_DEFAULT.items())


def _search_step(base, out_dir, lr_result, coarse_trials, fine_trials, seed, workers, log):
    """Step 4: the search, a decade either side of step 3's range, with the
    homework default in the fine round. Returns (best searched trial, the default's trial)."""
    import visualize
    space = dict(SEARCH_SPACE)
    if lr_result.suggested_range:
        low, high = lr_result.suggested_range
        space['learning_rate'] = (low / 10, high * 10, 'log')
    search = random_search(base, out_dir / 'search.jsonl', space=space, coarse_trials=coarse_trials,
                           fine_trials=fine_trials, seed=seed, workers=workers, extra_fine=[HOMEWORK_DEFAULT],
                           log=log)
    log(search.table())
    visualize.plot_search_results(search.trials, list(search.space), out_dir / 'search.png')
    fine = [r for r in search.trials if r['round'] == 'fine']
    reference = next(r for r in fine if _is_reference(r))
    best = min((r for r in fine if not _is_reference(r)), key=_rank)   # what the search found itself
    log(f"\nBest searched setting: {_describe(best['cfg'])}, {best['cfg']['max_epoch']} epochs: "
        f"val {_percent(best['val_acc'])}; the homework default (lr 0.01, momentum 0.9, "
        f"batch 100), same epochs: val {_percent(reference['val_acc'])}")
    return best, reference


def _percent(acc):
    return 'diverged' if acc is None else f"{100 * acc:.2f}%"


def _curves_step(best, log):
    """Step 5: the diagnosis of the best setting's curves, and its test accuracy
    (the same cfg and seed train the same run again)."""
    diagnosis = _log(log, diagnose_curves(best['history']))
    solver = Solver(dict(best['cfg'], verbose=False))
    solver.train()
    test_loss, test_acc = solver.test()
    log(f"Test accuracy of the best setting: {100 * test_acc:.2f}% (test loss {test_loss:.4f})")
    return diagnosis, test_loss, test_acc


def _count(least):
    """An argparse type: an integer >= least, with a one-line error otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}, got {text!r}")
        return value
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(description="The notes' training recipe (§4.4) as tools.")
    sub = parser.add_subparsers(dest='command', required=True)

    p_all = sub.add_parser('all', help='steps 1-5 on the homework model')
    p_all.add_argument('--data_root', default=str(REPO_ROOT / 'data'))
    p_all.add_argument('--out', default=str(REPO_ROOT / 'outputs' / 'recipe'),
                       help='folder for figures and tables (default: outputs/recipe)')
    p_all.add_argument('--workers', type=_count(0), default=2, help='worker processes (0: this process)')
    p_all.add_argument('--coarse', type=_count(1), default=16, help='coarse trials')
    p_all.add_argument('--fine', type=_count(1), default=8, help='fine trials')
    p_all.add_argument('--seed', type=int, default=0)

    p_search = sub.add_parser('search', help='step 4 only; --emit-commands for a cluster')
    p_search.add_argument('--data_root', default=str(REPO_ROOT / 'data'))
    p_search.add_argument('--results', required=True, help='JSON-lines file of finished trials')
    p_search.add_argument('--round', choices=('coarse', 'fine', 'both'), default='both')
    p_search.add_argument('--workers', type=_count(0), default=2, help='worker processes (0: this process)')
    p_search.add_argument('--coarse', type=_count(1), default=16)
    p_search.add_argument('--fine', type=_count(1), default=8)
    p_search.add_argument('--seed', type=int, default=0)
    p_search.add_argument('--emit-commands', default=None, metavar='FILE',
                          help="write the round's trials as one shell command per line instead "
                               "of running them")
    p_search.add_argument('--trial-dir', default='trial_results',
                          help='where emitted commands write their result files')

    p_trial = sub.add_parser('trial', help='run one trial (what an emitted command does)')
    p_trial.add_argument('--cfg', required=True, help='the cfg as JSON')
    p_trial.add_argument('--round', default='coarse')
    p_trial.add_argument('--out', required=True, help='result file (JSON)')

    p_merge = sub.add_parser('merge', help='append trial result files to a results file')
    p_merge.add_argument('files', nargs='+')
    p_merge.add_argument('--results', required=True)

    sub.add_parser('worker', help='(internal) run cfgs read from stdin')
    args = parser.parse_args(argv)

    try:
        if args.command == 'worker':
            _worker_loop()
        elif args.command == 'all':
            run_all(args.data_root, args.out, args.workers, args.coarse, args.fine, args.seed)
        elif args.command == 'trial':
            _trial_command(args)
        elif args.command == 'merge':
            added = merge_results(args.files, args.results)
            print(f"{added} new trial(s) added to {args.results} "
                  f"({len(load_results(args.results))} in all)")
        else:
            _search_command(args)
    except ResultsError as error:
        sys.exit(f"error: {error}")


def _trial_command(args):
    """`trial`: train one cfg and write its result file; the file's folder is
    checked first, and a result that cannot be written is printed instead."""
    try:
        cfg = json.loads(args.cfg)
    except ValueError as error:
        raise ResultsError(f"--cfg is not JSON ({error})") from None
    check_writable(args.out, 'the trial result file')
    result = dict({'key': trial_key(cfg), 'round': args.round, 'cfg': cfg}, **run_trial(cfg))
    try:
        with atomic_write(args.out, 'w') as f:
            json.dump(result, f)
    except OSError as error:
        print(json.dumps(result))
        sys.exit(f"error: {args.out} could not be written ({error}); the result is the JSON line printed "
                 f"above: save it as a file and merge it")


def _search_command(args):
    base = {'data_root': str(Path(args.data_root).resolve()), 'seed': args.seed}
    space, notes = usable_search_space(SEARCH_SPACE, base)
    for note in notes:
        print(f"note: {note}")
    if args.emit_commands:
        if args.round == 'coarse':
            settings = sample_hyperparameters(space, args.coarse, args.seed)
            trials = make_trials(base, settings, 'coarse', COARSE_EPOCHS)
        elif args.round == 'fine':
            coarse = [r for r in load_results(args.results).values() if r['round'] == 'coarse'
                      and r['val_acc'] is not None]
            if not coarse:
                sys.exit(f"no finished coarse trial in {args.results}: run and merge the coarse "
                         f"round first")
            best = min(coarse, key=_rank)
            settings = sample_hyperparameters(fine_space(space, best['cfg']), args.fine,
                                              args.seed + 1)
            trials = make_trials(base, settings, 'fine', FINE_EPOCHS)
        else:
            sys.exit("--emit-commands writes one round: give --round coarse or --round fine")
        check_writable(args.trial_dir, 'the trial directory', folder=True)
        count = emit_commands(trials, args.emit_commands, args.trial_dir, args.results,
                              python=sys.executable)
        print(f"Wrote {count} commands to {args.emit_commands}; run them (e.g. "
              f"`parallel < {args.emit_commands}`), then `python tools/recipe.py merge "
              f"{args.trial_dir}/trial-*.json --results {args.results}`.")
        return
    if args.round != 'both':
        sys.exit("without --emit-commands the search runs both rounds (--round both)")
    search = random_search(base, args.results, space=space, coarse_trials=args.coarse,
                           fine_trials=args.fine, seed=args.seed, workers=args.workers)
    print(search.table())
    print(f"{len(search.trials)} trials in {search.seconds:.1f} s; table in "
          f"{Path(args.results).with_suffix('.csv')}")


if __name__ == '__main__':
    main()
