"""The training and testing procedure: start reading the code here.

Solver(cfg) builds, from one configuration dict (config.py),
    data loaders -> model -> optimizer -> callbacks
and train() runs the homework's loop over epochs and batches:
    loss, acc = model.forward(images, labels)
    model.gradient_computing()
    optimizer.step()

config.py holds the cfg schema and the registries that turn a cfg into a
model ('softmax_regression' is the homework, 'mlp' and 'cnn' are built from
layers.py), an optimiser and the callbacks (callbacks.py: schedules, early
stopping, live curves). A ready Network and criterion can be handed over
instead: Solver(cfg, network=net, criterion=loss). cfg['checkpoint'] saves
the training after every epoch and cfg['resume'] continues it (checkpoint.py).

Run it from the command line to train the homework model and test it:
    python solver.py                      # default cfg: momentum 0.9, 10 epochs
    python solver.py --momentum 0 --max_epoch 5 --plot curves.png
    python solver.py --hidden_sizes 256 --learning_rate 0.1    # an MLP
    python solver.py --model cnn --max_epoch 2                 # the course's CNN
    python solver.py --max_epoch 3 --checkpoint run.npz        # then: --max_epoch 5 --resume run.npz
"""

import argparse
import json
import time

import numpy as np

from augment import AugmentedLoader, Augmenter, TestTimeCrops
from callbacks import EarlyStopping  # noqa: F401 (found here too)
from checkpoint import resume_training, save_training
from config import (CFG_SCHEMA, MODELS, OPTIMIZERS, SCHEDULES, build_callbacks,  # noqa: F401 (found here too)
                    crop_size, validate_cfg)
from dataloader import build_dataloader
from fileio import atomic_write
from layers import Classifier, named_arrays, parameter_slots
import loss as loss_module


class TrainingDiverged(RuntimeError):
    """The training loss became NaN, infinite, or far larger than where it
    started. The history up to that batch stays in solver.history."""


# Training has diverged when a batch loss exceeds this many times the loss of
# the first batch (about ln 10 = 2.3 for ten classes).
DIVERGENCE_FACTOR = 100


class Solver(object):
    """Builds loaders, model, optimizer and callbacks from cfg and trains them.

    Solver(cfg) builds the model cfg describes; Solver(cfg, network=net,
    criterion=loss) trains a ready layers.Network with a loss layer of
    loss.py (SoftmaxCrossEntropyLossLayer by default). `callbacks` follow the
    contract of callbacks.py (start, on_batch_end, on_epoch_end); they run
    after those the cfg asks for.

    Attributes after train():
    - history: dict of lists, one entry per epoch for 'train_loss',
      'train_acc', 'val_loss', 'val_acc', 'epoch_time' (seconds of training,
      validation excluded), 'learning_rate' (the rate of that epoch's
      first update), and one entry per batch for 'iter_loss' and 'iter_acc'.
    """

    def __init__(self, cfg, network=None, criterion=None, callbacks=()):
        self.cfg = validate_cfg(cfg)
        # One seed fixes everything random: the initial weights (drawn from
        # NumPy's global generator, as in the original framework), the order in
        # which the training set is shuffled, dropout and augmentation.
        if self.cfg['seed'] is not None:
            np.random.seed(self.cfg['seed'])
        self.train_loader, self.val_loader, self.test_loader = self.build_loader(self.cfg)
        self.test_time_crops = None       # a model trained on random crops is evaluated on crops
        if crop_size(self.cfg) is not None:
            self.test_time_crops = TestTimeCrops(crop_size(self.cfg), self.cfg['test_crop'] or 'center',
                                                 image_shape=self.train_loader.dataset.image_shape)
        self.built_from_cfg = network is None
        if network is not None:
            self.model = Classifier(network, criterion if criterion is not None
                                    else loss_module.SoftmaxCrossEntropyLossLayer())
        elif criterion is not None:
            raise ValueError("a criterion was given without a network: pass network=... as well")
        else:
            self.model = self.build_model(self.cfg)
        self.optimizer = self.build_optimizer(self.model, self.cfg)
        self.stop_training = False
        self.history = {key: [] for key in ('train_loss', 'train_acc', 'val_loss', 'val_acc',
                                            'epoch_time', 'learning_rate', 'iter_loss', 'iter_acc')}
        if self.cfg['resume'] is not None:
            resume_training(self, self.cfg['resume'])
        self.callbacks = build_callbacks(self.cfg) + list(callbacks)
        self._call('start')           # a schedule sets the value of the first epoch now

    @staticmethod
    def build_loader(cfg):
        cfg = validate_cfg(cfg)
        common = dict(data_root=cfg['data_root'], batch_size=cfg['batch_size'],
                      normalize=cfg['normalize'], as_images=cfg['model'] == 'cnn')
        train_loader = build_dataloader(max_epoch=cfg['max_epoch'], shuffle=cfg['shuffle'], mode='train',
                                        seed=cfg['seed'], **common)
        if cfg['augment'] is not None:
            # Training batches only: validation and test images stay as they are.
            augmenter = Augmenter(**cfg['augment'], image_shape=train_loader.dataset.image_shape,
                                  seed=cfg['seed'])
            train_loader = AugmentedLoader(train_loader, augmenter)
        val_loader = build_dataloader(max_epoch=1, shuffle=False, mode='val', **common)
        test_loader = build_dataloader(max_epoch=1, shuffle=False, mode='test', **common)
        return train_loader, val_loader, test_loader

    def input_shape(self, cfg):
        """The shape of one sample as the model sees it (crop x crop windows when cropping)."""
        input_shape = self.train_loader.dataset.images.shape[1:]
        crop = crop_size(cfg)
        if crop is not None:
            input_shape = (crop * crop,) if len(input_shape) == 1 else input_shape[:-2] + (crop, crop)
        return tuple(int(n) for n in input_shape)

    def build_model(self, cfg):
        return MODELS[cfg['model']](cfg, self.input_shape(cfg), self.train_loader.dataset.num_classes)

    @staticmethod
    def build_optimizer(model, cfg):
        return OPTIMIZERS[cfg['optimizer']](model, cfg)

    def train(self):
        """Runs the epochs up to max_epoch; returns (epoch_train_loss,
        epoch_train_acc), the per-epoch lists of history.

        Raises TrainingDiverged if the loss becomes NaN, infinite, or
        DIVERGENCE_FACTOR times larger than at the first batch.
        """
        for epoch in range(len(self.history['train_loss']), self.cfg['max_epoch']):
            self._set_mode(training=True)
            self.history['learning_rate'].append(getattr(self.optimizer, 'learning_rate', None))
            start, first_batch = time.perf_counter(), len(self.history['iter_loss'])
            for iteration, (images, labels) in enumerate(self.train_loader):
                self._step(images, labels, epoch, iteration)
            self.history['epoch_time'].append(time.perf_counter() - start)
            self._end_epoch(epoch, first_batch)
            if self.stop_training:
                break
        return self.history['train_loss'], self.history['train_acc']

    def _step(self, images, labels, epoch, iteration):
        """One update on one batch: forward, backward, optimizer step, record."""
        loss, acc = self.model.forward(images, labels)
        self._check_loss(loss, images, epoch, iteration)
        self.model.gradient_computing()
        self.optimizer.step()
        self.history['iter_loss'].append(float(loss))
        self.history['iter_acc'].append(float(acc))
        self._call('on_batch_end', len(self.history['iter_loss']))     # e.g. a per-iteration schedule
        if self.cfg['verbose'] and iteration % self.cfg['display_freq'] == 0:
            print("Epoch [{}][{}]\t Batch [{}][{}]\t Training Loss {:.4f}\t Accuracy {:.4f}".format(
                epoch + 1, self.cfg['max_epoch'], iteration, len(self.train_loader), loss, acc))

    def _end_epoch(self, epoch, first_batch):
        """Average the epoch's batches, validate, record, print, call the callbacks, save."""
        train_loss = float(np.mean(self.history['iter_loss'][first_batch:]))
        train_acc = float(np.mean(self.history['iter_acc'][first_batch:]))
        val_loss, val_acc = self.validate()
        for key, value in (('train_loss', train_loss), ('train_acc', train_acc),
                           ('val_loss', val_loss), ('val_acc', val_acc)):
            self.history[key].append(value)
        if self.cfg['verbose']:
            print('\nEpoch [{}]\t Average training loss {:.4f}\t Average training accuracy {:.4f}'.format(
                epoch + 1, train_loss, train_acc))
            print('Epoch [{}]\t Average validation loss {:.4f}\t Average validation accuracy {:.4f}\n'.format(
                epoch + 1, val_loss, val_acc))
        self._call('on_epoch_end', epoch)
        if self.cfg['checkpoint'] is not None:
            self.save_checkpoint(self.cfg['checkpoint'])

    def _call(self, hook, *args):
        """Call callback.<hook>(self, *args) on every callback that has the hook."""
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    def validate(self):
        """(loss, acc) of the current model on the validation split."""
        return self.evaluate(self.val_loader)

    def test(self):
        """(loss, acc) of the current model on the test split. Never use it
        to choose hyper-parameters: that is what validate() is for."""
        return self.evaluate(self.test_loader)

    def evaluate(self, loader):
        """Mean loss and accuracy over every sample of a loader, in evaluation mode.

        Batches are weighted by their size, so a partial last batch counts
        exactly as much as its samples.
        """
        self._set_mode(training=False)
        total_loss = total_correct = 0.0
        for images, labels in loader:
            loss, acc = self._evaluate_batch(images, labels)
            total_loss += loss * len(labels)
            total_correct += acc * len(labels)
        self._set_mode(training=True)
        num_samples = len(loader.dataset)
        return float(total_loss / num_samples), float(total_correct / num_samples)

    def _evaluate_batch(self, images, labels):
        """(loss, acc) of one evaluation batch; through the test-time crops when
        the model was trained on crops."""
        if self.test_time_crops is None:
            return self.model.forward(images, labels)
        if self.test_time_crops.mode == 'center':
            return self.model.forward(self.test_time_crops.crops(images)[0], labels)
        # Multi-crop: average the class probabilities of the crops; their log is
        # a valid set of scores, since softmax(log p) = p when p sums to 1.
        probabilities = self.test_time_crops.probabilities(
            lambda crop: loss_module.softmax(self.model.predict(crop)), images)
        scores = np.log(np.maximum(probabilities, np.finfo(probabilities.dtype).tiny))
        loss, _ = loss_module.softmax_cross_entropy(scores, labels)
        return loss, loss_module.accuracy(scores, labels)

    def _set_mode(self, training):
        # Layers such as dropout behave differently in training and
        # evaluation; the homework model has no such switch.
        switch = getattr(self.model, 'train' if training else 'eval', None)
        if callable(switch):
            switch()

    def _check_loss(self, loss, images, epoch, iteration):
        """Raise TrainingDiverged, naming the likely cause, when the loss is not
        finite or has grown DIVERGENCE_FACTOR times beyond the first batch's."""
        history = self.history['iter_loss']
        first = history[0] if history else loss
        if np.isfinite(loss) and not (np.isfinite(first) and loss > DIVERGENCE_FACTOR * max(first, 1e-3)):
            return
        where = f"at epoch {epoch + 1}, batch {iteration}"
        what = (f"The training loss grew from {first:.4g} at the first batch to {loss:.4g} {where}: "
                f"training diverged." if np.isfinite(loss) else f"The training loss became {loss} {where}.")
        cause = diagnose_divergence(self.model, images, self.cfg, loss_is_finite=bool(np.isfinite(loss)))
        raise TrainingDiverged(f"{what} {cause} The history up to this batch is kept in solver.history.")

    def save_checkpoint(self, path):
        """Save the model, the optimiser, the history and the random state to path
        (checkpoint.save_training); cfg['resume'] = path continues from there."""
        save_training(self, path)


def diagnose_divergence(model, images, cfg, loss_is_finite=False):
    """The most likely cause of a diverged loss, as one sentence with the fix."""
    if not np.all(np.isfinite(images)):
        bad = int(np.sum(~np.isfinite(images)))
        return (f"The input batch itself holds {bad} NaN or infinite values: check the data files and "
                f"the normalisation (cfg['normalize']), not the learning rate.")
    lr_advice = (f"the learning rate ({cfg['learning_rate']}) is probably too large: try one 10 times "
                 f"smaller (notes §4.4, step 3).")
    params = named_arrays(model, state=False, trainable_only=True)
    broken = [f"{type(layer).__name__}.{name}" for _, layer, name in parameter_slots(model, trainable_only=True)
              if not np.all(np.isfinite(getattr(layer, name)))]
    if broken:
        return f"The parameters {', '.join(broken)} overflowed: {lr_advice}"
    if loss_is_finite:
        return f"Each step overshoots the minimum by more than the last: {lr_advice}"
    largest = max((float(np.max(np.abs(param))) for param in params.values() if np.size(param)), default=0.0)
    if largest > 1e3:
        return f"The weights have grown to {largest:.3g}: {lr_advice}"
    return ("The data and the parameters are finite, so the loss computation itself overflowed: "
            "subtract each row's maximum before exp() in the softmax (or use a log-softmax).")


# ---------------------------------------------------------------------------
# Command line: train the homework and test it
# ---------------------------------------------------------------------------

def print_history(history):
    """One line per epoch (counted from 1): training and validation loss and
    accuracy, seconds, and the learning rate of the epoch's first update."""
    print('epoch  train loss  train acc  val loss  val acc  seconds  learning rate')
    rates = history.get('learning_rate') or [None] * len(history['train_loss'])
    for epoch, row in enumerate(zip(history['train_loss'], history['train_acc'], history['val_loss'],
                                    history['val_acc'], history['epoch_time']), start=1):
        rate = rates[epoch - 1] if epoch <= len(rates) else None
        print('{:5d}  {:10.4f}  {:9.4f}  {:8.4f}  {:7.4f}  {:7.2f}  {}'.format(
            epoch, *row, '' if rate is None else f'{rate:.4g}'))


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train a model on MNIST (the softmax regression homework by default) and report "
                    "the test accuracy.")
    for key, (default, _, accepts) in CFG_SCHEMA.items():
        if key in ('hidden_sizes', 'conv_channels', 'fc_sizes', 'verbose', 'seed', 'model', 'data_root'):
            continue
        if isinstance(default, bool):
            parser.add_argument('--' + key, action=argparse.BooleanOptionalAction, default=default, help=accepts)
            continue
        kind = json.loads if key == 'augment' else type(default) if default is not None else str
        parser.add_argument('--' + key, type=kind, default=default, help=accepts)
    parser.add_argument('--data_root', default=CFG_SCHEMA['data_root'][0], help='the MNIST folder')
    parser.add_argument('--model', default=None, help=CFG_SCHEMA['model'][2])
    parser.add_argument('--seed', type=int, default=CFG_SCHEMA['seed'][0])
    parser.add_argument('--hidden_sizes', type=int, nargs='*', default=[],
                        help='hidden layer widths, e.g. --hidden_sizes 256 (default: none)')
    for key in ('conv_channels', 'fc_sizes'):
        parser.add_argument('--' + key, type=int, nargs='+', default=list(CFG_SCHEMA[key][0]),
                            help=CFG_SCHEMA[key][2])
    parser.add_argument('--quiet', action='store_true', help='no per-batch lines: a table of epochs at the end')
    parser.add_argument('--plot', default=None, help='save the loss and accuracy curves to this file')
    parser.add_argument('--history', default=None, help='save the training history as JSON')
    return parser


def main(argv=None):
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    plot_path, history_path = args.pop('plot'), args.pop('history')
    verbose = not args.pop('quiet')
    try:
        solver = Solver(dict(args, verbose=verbose))
    except (ValueError, TypeError, OSError) as error:
        # A bad setting or missing data: one line that says what to do, no traceback.
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    try:
        train_loss, train_acc = solver.train()
    except TrainingDiverged as error:
        parser.exit(1, f"{parser.prog}: {error}\n")
    test_loss, test_acc = solver.test()
    if not verbose:
        print_history(solver.history)
    seconds = np.median(solver.history['epoch_time'])
    print(f"Final test accuracy {test_acc:.4f} (test loss {test_loss:.4f}); "
          f"median {seconds:.2f} s per training epoch")
    if plot_path:
        from visualize import plot_loss_and_acc      # matplotlib only when a plot is asked for

        label = 'SGD with momentum {}'.format(solver.cfg['momentum'])
        plot_loss_and_acc({label: [train_loss, train_acc]}, save_path=plot_path, show=False)
        print(f"Saved the loss and accuracy curves to {plot_path}")
    if history_path:
        cfg = dict(solver.cfg, data_root=str(solver.cfg['data_root']))
        with atomic_write(history_path, 'w') as f:
            json.dump({'cfg': cfg, 'history': solver.history,
                       'test_loss': test_loss, 'test_acc': test_acc}, f, indent=1)
    return test_acc


if __name__ == '__main__':
    main()
