"""The training and testing procedure: start reading the code here.

Solver(cfg) builds, from one configuration dict,
    data loaders -> model -> optimizer
and train() runs the homework's loop over epochs and batches:
    loss, acc = model.forward(images, labels)
    model.gradient_computing()
    optimizer.step()

Run it from the command line to train the homework model and test it:
    python solver.py                      # default cfg: momentum 0.9, 10 epochs
    python solver.py --momentum 0 --max_epoch 5 --plot curves.png
"""

import argparse
import difflib
import json
import math
import numbers
import time

import numpy as np

from dataloader import build_dataloader
from fileio import atomic_write
from layers import build_mlp
from loss import SoftmaxCrossEntropyLoss
from optimizer import SGD
from visualize import plot_loss_and_acc


# ---------------------------------------------------------------------------
# Configuration: every key, its default and what it accepts
# ---------------------------------------------------------------------------

def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _positive_number(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _momentum(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and 0 <= value <= 1)


def _seed(value):
    return value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                             and value >= 0)


def _hidden_sizes(value):
    return isinstance(value, (list, tuple)) and all(_positive_int(h) for h in value)


# key: (default, check, what the check accepts). The first six are the
# original homework's keys, with the original defaults.
CFG_SCHEMA = {
    'data_root': ('data', lambda v: isinstance(v, str) and v != '', 'a folder path (str)'),
    'max_epoch': (10, _positive_int, 'an integer >= 1'),
    'batch_size': (100, _positive_int, 'an integer >= 1'),
    'learning_rate': (0.01, _positive_number, 'a finite number > 0'),
    'momentum': (0.9, _momentum, 'a number in [0, 1]'),
    'display_freq': (50, _positive_int, 'an integer >= 1 (print every display_freq batches)'),
    'seed': (0, _seed, 'an integer >= 0, or None for a different run every time'),
    'normalize': ('image_mean', lambda v: v in ('image_mean', 'standardize', 'none'),
                  "'image_mean' (the original: /255 then minus each image's mean), "
                  "'standardize' (training-set mean and std) or 'none' (/255 only)"),
    'hidden_sizes': ((), _hidden_sizes,
                     'a list of hidden layer widths; [] is the homework softmax regression'),
    'verbose': (True, lambda v: isinstance(v, bool), 'True or False (print progress)'),
}


def validate_cfg(cfg):
    """Check a cfg dict against CFG_SCHEMA and return a full copy with defaults.

    Unknown keys, wrong types and out-of-range values raise a ValueError that
    names the key and says what it accepts.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict, got {type(cfg).__name__}")
    for key in cfg:
        if key not in CFG_SCHEMA:
            close = difflib.get_close_matches(str(key), CFG_SCHEMA, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"Unknown cfg key '{key}'.{hint} "
                             f"Valid keys: {', '.join(sorted(CFG_SCHEMA))}.")
    full = {}
    for key, (default, check, accepts) in CFG_SCHEMA.items():
        value = cfg.get(key, default)
        if not check(value):
            raise ValueError(f"cfg['{key}'] = {value!r} is not valid: expected {accepts}.")
        full[key] = value
    return full


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite. The history up to that
    batch stays in solver.history."""


# ---------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------

class Solver(object):
    """Builds loaders, model and optimizer from cfg and trains them.

    Attributes after train():
    - history: dict of lists, one entry per epoch for 'train_loss',
      'train_acc', 'val_loss', 'val_acc', 'epoch_time' (seconds of training,
      validation excluded), and one entry per batch for 'iter_loss' and
      'iter_acc'.
    """

    def __init__(self, cfg):
        self.cfg = validate_cfg(cfg)

        # One seed fixes everything random: the initial weights (drawn from
        # NumPy's global generator, as in the original framework) and the
        # order in which the training set is shuffled.
        if self.cfg['seed'] is not None:
            np.random.seed(self.cfg['seed'])

        # build dataloader
        train_loader, val_loader, test_loader = self.build_loader(self.cfg)
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.test_loader = test_loader

        # build model
        self.model = self.build_model(self.cfg)

        # build optimizer
        self.optimizer = self.build_optimizer(self.model, self.cfg)

        self.history = {key: [] for key in ('train_loss', 'train_acc', 'val_loss', 'val_acc',
                                            'epoch_time', 'iter_loss', 'iter_acc')}

    @staticmethod
    def build_loader(cfg):
        cfg = validate_cfg(cfg)
        common = dict(data_root=cfg['data_root'], batch_size=cfg['batch_size'],
                      normalize=cfg['normalize'])
        train_loader = build_dataloader(max_epoch=cfg['max_epoch'], shuffle=True, mode='train',
                                        seed=cfg['seed'], **common)
        val_loader = build_dataloader(max_epoch=1, shuffle=False, mode='val', **common)
        test_loader = build_dataloader(max_epoch=1, shuffle=False, mode='test', **common)
        return train_loader, val_loader, test_loader

    def build_model(self, cfg):
        num_input = self.train_loader.dataset.images.shape[1]
        num_classes = self.train_loader.dataset.num_classes
        if not cfg['hidden_sizes']:
            return SoftmaxCrossEntropyLoss(num_input, num_classes)
        return build_mlp(num_input, cfg['hidden_sizes'], num_classes)

    @staticmethod
    def build_optimizer(model, cfg):
        return SGD(model, cfg['learning_rate'], cfg['momentum'])

    def train(self):
        """Runs max_epoch epochs; returns (epoch_train_loss, epoch_train_acc).

        Raises TrainingDiverged if the loss becomes NaN or infinite.
        """
        max_epoch = self.cfg['max_epoch']
        display = self.cfg['verbose']

        epoch_train_loss, epoch_train_acc = [], []
        for epoch in range(max_epoch):
            self._set_mode(training=True)
            start = time.perf_counter()

            iteration_train_loss, iteration_train_acc = [], []
            for iteration, (images, labels) in enumerate(self.train_loader):
                # forward pass
                loss, acc = self.model.forward(images, labels)
                self._check_finite(loss, epoch, iteration)

                # backward pass
                self.model.gradient_computing()

                # update the model weights
                self.optimizer.step()

                # record loss and accuracy
                iteration_train_loss.append(loss)
                iteration_train_acc.append(acc)
                self.history['iter_loss'].append(float(loss))
                self.history['iter_acc'].append(float(acc))

                # display iteration training info
                if display and iteration % self.cfg['display_freq'] == 0:
                    print("Epoch [{}][{}]\t Batch [{}][{}]\t Training Loss {:.4f}\t Accuracy {:.4f}".format(
                        epoch, max_epoch, iteration, len(self.train_loader), loss, acc))

            self.history['epoch_time'].append(time.perf_counter() - start)
            avg_train_loss = float(np.mean(iteration_train_loss))
            avg_train_acc = float(np.mean(iteration_train_acc))
            epoch_train_loss.append(avg_train_loss)
            epoch_train_acc.append(avg_train_acc)

            # validate
            avg_val_loss, avg_val_acc = self.validate()
            for key, value in (('train_loss', avg_train_loss), ('train_acc', avg_train_acc),
                               ('val_loss', avg_val_loss), ('val_acc', avg_val_acc)):
                self.history[key].append(value)

            if display:
                # display epoch training info
                print('\nEpoch [{}]\t Average training loss {:.4f}\t Average training accuracy {:.4f}'.format(
                    epoch, avg_train_loss, avg_train_acc))

                # display epoch validation info
                print('Epoch [{}]\t Average validation loss {:.4f}\t Average validation accuracy {:.4f}\n'.format(
                    epoch, avg_val_loss, avg_val_acc))

        return epoch_train_loss, epoch_train_acc

    def validate(self):
        """(loss, acc) of the current model on the validation split."""
        return self.evaluate(self.val_loader)

    def test(self):
        """(loss, acc) of the current model on the test split. Never use it
        to choose hyper-parameters: that is what validate() is for."""
        return self.evaluate(self.test_loader)

    def evaluate(self, loader):
        """Mean loss and accuracy over every sample of a loader.

        Batches are weighted by their size, so a partial last batch counts
        exactly as much as its samples.
        """
        self._set_mode(training=False)
        total_loss = total_correct = 0.0
        for images, labels in loader:
            loss, acc = self.model.forward(images, labels)
            total_loss += loss * len(labels)
            total_correct += acc * len(labels)
        self._set_mode(training=True)
        num_samples = len(loader.dataset)
        return float(total_loss / num_samples), float(total_correct / num_samples)

    def _set_mode(self, training):
        # Layers such as dropout behave differently in training and
        # evaluation; the homework model has no such switch.
        switch = getattr(self.model, 'train' if training else 'eval', None)
        if callable(switch):
            switch()

    def _check_finite(self, loss, epoch, iteration):
        if not np.isfinite(loss):
            raise TrainingDiverged(
                f"The training loss became {loss} at epoch {epoch}, batch {iteration}. "
                f"The learning rate ({self.cfg['learning_rate']}) is probably too large: "
                f"try one 10 times smaller (notes §4.4, step 2). The history up to this "
                f"batch is kept in solver.history.")


# ---------------------------------------------------------------------------
# Command line: train the homework and test it
# ---------------------------------------------------------------------------

def print_history(history):
    """One line per epoch: training and validation loss and accuracy, seconds."""
    print('epoch  train loss  train acc  val loss  val acc  seconds')
    for epoch, row in enumerate(zip(history['train_loss'], history['train_acc'], history['val_loss'],
                                    history['val_acc'], history['epoch_time'])):
        print('{:5d}  {:10.4f}  {:9.4f}  {:8.4f}  {:7.4f}  {:7.2f}'.format(epoch, *row))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the softmax regression homework on MNIST and report the test accuracy.")
    for key, (default, _, accepts) in CFG_SCHEMA.items():
        if key in ('hidden_sizes', 'verbose', 'seed'):
            continue
        parser.add_argument('--' + key, type=type(default), default=default, help=accepts)
    parser.add_argument('--seed', type=int, default=CFG_SCHEMA['seed'][0])
    parser.add_argument('--hidden_sizes', type=int, nargs='*', default=[],
                        help='hidden layer widths, e.g. --hidden_sizes 256 (default: none)')
    parser.add_argument('--quiet', action='store_true', help='no per-batch lines: a table of epochs at the end')
    parser.add_argument('--plot', default=None, help='save the loss and accuracy curves to this file')
    parser.add_argument('--history', default=None, help='save the training history as JSON')
    args = vars(parser.parse_args(argv))

    plot_path, history_path = args.pop('plot'), args.pop('history')
    verbose = not args.pop('quiet')
    solver = Solver(dict(args, verbose=verbose))
    train_loss, train_acc = solver.train()
    test_loss, test_acc = solver.test()
    if not verbose:
        print_history(solver.history)
    seconds = np.median(solver.history['epoch_time'])
    print(f"Final test accuracy {test_acc:.4f} (test loss {test_loss:.4f}); "
          f"median {seconds:.2f} s per training epoch")

    if plot_path:
        label = 'SGD with momentum {}'.format(solver.cfg['momentum'])
        plot_loss_and_acc({label: [train_loss, train_acc]}, save_path=plot_path, show=False)
        print(f"Saved the loss and accuracy curves to {plot_path}")
    if history_path:
        with atomic_write(history_path, 'w') as f:
            json.dump({'cfg': solver.cfg, 'history': solver.history,
                       'test_loss': test_loss, 'test_acc': test_acc}, f, indent=1)
    return test_acc


if __name__ == '__main__':
    main()
