"""The training and testing procedure: start reading the code here.

Solver(cfg) builds, from one configuration dict,
    data loaders -> model -> optimizer
and train() runs the homework's loop over epochs and batches:
    loss, acc = model.forward(images, labels)
    model.gradient_computing()
    optimizer.step()

The model is chosen by cfg['model'] from the MODELS registry below (the one
place where a cfg becomes a model): 'softmax_regression' is the homework,
'mlp' a multi-layer perceptron built from layers.py. A ready Network and
criterion can be handed over instead: Solver(cfg, network=net, criterion=loss).

Run it from the command line to train the homework model and test it:
    python solver.py                      # default cfg: momentum 0.9, 10 epochs
    python solver.py --momentum 0 --max_epoch 5 --plot curves.png
    python solver.py --hidden_sizes 256 --learning_rate 0.1    # an MLP
    python solver.py --model cnn --max_epoch 2                 # the course's CNN
"""

import argparse
import difflib
import json
import math
import numbers
import time
import warnings

import numpy as np

from dataloader import NORMALIZATIONS, build_dataloader, is_data_root, is_positive_int
from fileio import atomic_write
import loss as loss_module
from layers import (ACTIVATION_LAYERS, INITS, NORMALIZATION_LAYERS, Classifier, add_regularisation,
                    build_cnn, build_mlp, layers_of, param_names_of, trainable_layers)
from loss import SoftmaxCrossEntropyLoss
import optimizer as optimizer_module
from optimizer import SGD
from augment import AugmentedLoader, Augmenter, TestTimeCrops
from visualize import plot_loss_and_acc


# ---------------------------------------------------------------------------
# Models and optimizers by name: the one place where a cfg becomes them
# ---------------------------------------------------------------------------

MODELS = {}      # name -> builder(cfg, input_shape, num_classes) -> model
OPTIMIZERS = {}  # name -> builder(model, cfg) -> optimizer


def register_model(name):
    """Decorator: make a model builder available as cfg['model'] = name."""
    def register(builder):
        MODELS[name] = builder
        return builder
    return register


def register_optimizer(name):
    """Decorator: make an optimizer builder available as cfg['optimizer'] = name."""
    def register(builder):
        OPTIMIZERS[name] = builder
        return builder
    return register


@register_model('softmax_regression')
def build_softmax_regression(cfg, input_shape, num_classes):
    """The homework model: one linear layer with softmax cross-entropy (notes §1.3)."""
    return SoftmaxCrossEntropyLoss(int(np.prod(input_shape)), num_classes)


def criteria():
    """Loss layers by name (loss.CRITERIA). A loss.py written for the original
    homework has only SoftmaxCrossEntropyLoss: it still trains the homework
    model, and only the default loss name is accepted."""
    return getattr(loss_module, 'CRITERIA', {'softmax_cross_entropy': None})


@register_model('mlp')
def build_mlp_classifier(cfg, input_shape, num_classes):
    """An MLP (notes §2): FC + activation per hidden size, then FC, and the cfg's loss."""
    criterion_class = criteria()[cfg['loss']]
    if criterion_class is None:
        raise ValueError("this loss.py has no loss layers (loss.CRITERIA): an MLP needs the "
                         "framework's loss.py, not the original homework's")
    network = build_mlp(int(np.prod(input_shape)), cfg['hidden_sizes'], num_classes,
                        activation=cfg['activation'], init=cfg['init'])
    network = add_regularisation(network, cfg['dropout'], cfg['normalization'], seed=cfg['seed'])
    return Classifier(network, criterion_class())


@register_model('cnn')
def build_cnn_classifier(cfg, input_shape, num_classes):
    """A CNN (notes §3): conv-ReLU-max-pool blocks (cfg conv_channels, conv_kernel_size),
    then FC-ReLU layers (cfg fc_sizes) and the output layer. The defaults are the
    course's network: conv 1->8, conv 8->16 (3x3), FC 784->128, FC 128->10."""
    criterion_class = criteria()[cfg['loss']]
    if criterion_class is None:
        raise ValueError("this loss.py has no loss layers (loss.CRITERIA): a CNN needs the "
                         "framework's loss.py, not the original homework's")
    network = build_cnn(input_shape, cfg['conv_channels'], cfg['fc_sizes'], num_classes,
                        kernel_size=cfg['conv_kernel_size'], init=cfg['init'])
    return Classifier(network, criterion_class())


@register_optimizer('sgd')
def build_sgd(model, cfg):
    # weight_decay is passed only when used, so that an SGD written for the
    # original homework, SGD(model, learning_rate, momentum), drops in.
    decay = {'weight_decay': cfg['weight_decay']} if cfg['weight_decay'] else {}
    nesterov = {'nesterov': True} if cfg['nesterov'] else {}
    return SGD(model, cfg['learning_rate'], cfg['momentum'], **decay, **nesterov)


def from_optimizer_py(name):
    """A class of optimizer.py, looked up when a cfg asks for it: an optimizer.py
    written for the original homework has only SGD, and still trains the homework."""
    found = getattr(optimizer_module, name, None)
    if found is None:
        raise ValueError(f"this optimizer.py has no {name}: the cfg asks for it, which needs the "
                         "framework's optimizer.py, not the original homework's")
    return found


@register_optimizer('adagrad')
def build_adagrad(model, cfg):
    return from_optimizer_py('Adagrad')(model, cfg['learning_rate'], weight_decay=cfg['weight_decay'])


@register_optimizer('rmsprop')
def build_rmsprop(model, cfg):
    return from_optimizer_py('RMSProp')(model, cfg['learning_rate'], weight_decay=cfg['weight_decay'])


@register_optimizer('adam')
def build_adam(model, cfg):
    return from_optimizer_py('Adam')(model, cfg['learning_rate'], weight_decay=cfg['weight_decay'])


# Learning-rate schedules by name (notes §2.5.2): name -> builder(cfg) ->
# a schedule (optimizer.py), or None to keep the learning rate constant.
SCHEDULES = {
    'constant': lambda cfg: None,
    'step': lambda cfg: from_optimizer_py('StepDecay')(cfg['learning_rate'], cfg['lr_decay_every'],
                                                       cfg['lr_decay_factor']),
    'plateau': lambda cfg: from_optimizer_py('HalveOnPlateau')(cfg['plateau_threshold'], cfg['lr_decay_factor']),
    'inverse_time': lambda cfg: from_optimizer_py('InverseTimeDecay').from_initial(cfg['learning_rate'],
                                                                                   cfg['inverse_time_b']),
}


def build_callbacks(cfg):
    """The end-of-epoch callbacks the cfg asks for: the learning-rate schedule,
    the momentum schedule, early stopping (in that order)."""
    callbacks = [SCHEDULES[cfg['lr_schedule']](cfg)]
    if cfg['momentum_warmup']:
        callbacks.append(from_optimizer_py('MomentumSchedule')(cfg['momentum_warmup'], before=0.5,
                                                               after=cfg['momentum']))
    if cfg['early_stopping']:
        callbacks.append(EarlyStopping(cfg['early_stopping']))   # says so when it restores, even when quiet
    return [callback for callback in callbacks if callback is not None]


# ---------------------------------------------------------------------------
# Configuration: every key, its default and what it accepts
# ---------------------------------------------------------------------------

def _number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive_number(value):
    return _number(value) and value > 0


def _seed(value):
    return value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                             and value >= 0)


def _hidden_sizes(value):
    return isinstance(value, (list, tuple)) and all(is_positive_int(h) for h in value)


def _non_negative_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _augment_settings(value):
    return value is None or (isinstance(value, dict) and set(value) <= set(AUGMENT_KEYS))


AUGMENT_KEYS = ('shift', 'rotate', 'scale', 'brightness', 'contrast', 'erase', 'flip', 'crop')


def _one_of(choices):
    """A check accepting the names of a registry (looked up when the check runs,
    so names registered later are accepted too)."""
    return lambda value: isinstance(value, str) and value in choices


# key: (default, check, what the check accepts). The first six are the
# original homework's keys, with the original defaults.
CFG_SCHEMA = {
    'data_root': ('data', is_data_root,
                  'a folder path (str or pathlib.Path)'),
    'max_epoch': (10, is_positive_int, 'an integer >= 1'),
    'batch_size': (100, is_positive_int, 'an integer >= 1'),
    'learning_rate': (0.01, _positive_number, 'a finite number > 0'),
    'momentum': (0.9, lambda v: _number(v) and 0 <= v <= 1, 'a number in [0, 1]'),
    'display_freq': (50, is_positive_int, 'an integer >= 1 (print every display_freq batches)'),
    'seed': (0, _seed, 'an integer >= 0, or None for a different run every time'),
    'normalize': ('image_mean', lambda v: v in NORMALIZATIONS,
                  "'image_mean' (the original: /255 then minus each image's mean), "
                  "'standardize' (training-set mean and std) or 'none' (/255 only)"),
    'model': (None, lambda v: v is None or _one_of(MODELS)(v),
              "a model name from solver.MODELS, or None: 'mlp' when hidden_sizes are given, "
              "else 'softmax_regression' (the homework)"),
    'hidden_sizes': ((), _hidden_sizes,
                     'a list of hidden layer widths, e.g. [256]; [] is the homework softmax regression'),
    'conv_channels': ((8, 16), lambda v: _hidden_sizes(v) and len(v) > 0,
                      "model 'cnn': filters of each conv block (conv, ReLU, max-pool 2), e.g. [8, 16]"),
    'conv_kernel_size': (3, lambda v: is_positive_int(v) and v % 2 == 1,
                         "model 'cnn': an odd kernel size (the padding keeps the image size)"),
    'fc_sizes': ((128,), _hidden_sizes,
                 "model 'cnn': widths of the hidden FC layers after the conv blocks, e.g. [128]"),
    'activation': ('relu', _one_of(ACTIVATION_LAYERS), f"one of {', '.join(ACTIVATION_LAYERS)}"),
    'loss': ('softmax_cross_entropy', lambda v: _one_of(criteria())(v),
             'one of softmax_cross_entropy, euclidean, sigmoid_cross_entropy (loss.CRITERIA)'),
    'init': ('course', _one_of(INITS), f"one of {', '.join(INITS)} (notes §2.5.1)"),
    'optimizer': ('sgd', lambda v: _one_of(OPTIMIZERS)(v), 'an optimizer name from solver.OPTIMIZERS'),
    'weight_decay': (0.0, lambda v: _number(v) and v >= 0,
                     'a number >= 0, the L2 coefficient lambda (weights only, not biases)'),
    'verbose': (True, lambda v: isinstance(v, bool), 'True or False (print progress)'),
    # Training techniques (notes §2.5, §4)
    'nesterov': (False, lambda v: isinstance(v, bool),
                 "True or False: Nesterov momentum (optimizer 'sgd' with momentum > 0)"),
    'lr_schedule': ('constant', lambda v: _one_of(SCHEDULES)(v),
                    "a schedule name from solver.SCHEDULES: 'constant', 'step' (times lr_decay_factor "
                    "every lr_decay_every epochs), 'plateau' (times lr_decay_factor when the validation "
                    "loss improves by less than plateau_threshold), 'inverse_time' (a / (b + t) at "
                    "iteration t, b = inverse_time_b)"),
    'lr_decay_every': (10, is_positive_int, "an integer >= 1, epochs between decays of lr_schedule 'step'"),
    'lr_decay_factor': (0.5, lambda v: _number(v) and 0 < v < 1,
                        "a number in (0, 1), the factor of the 'step' and 'plateau' schedules (0.5 halves)"),
    'plateau_threshold': (1e-3, lambda v: _number(v) and v >= 0,
                          "a number >= 0: the 'plateau' schedule decays when the validation loss "
                          "improves by less than this between epochs"),
    'inverse_time_b': (2750.0, _positive_number,
                       "a number > 0, b of the 'inverse_time' schedule, in iterations (updates): the rate "
                       "halves after b updates (550 make an epoch with batch_size 100)"),
    'momentum_warmup': (0, _non_negative_int,
                        'an integer >= 0: momentum 0.5 for this many epochs, then cfg momentum '
                        '(notes §2.5.4); 0 = off'),
    'early_stopping': (0, _non_negative_int,
                       'an integer >= 0, the patience in epochs: stop when the validation loss has not '
                       'improved for this many epochs and restore the best epoch; 0 = off'),
    'dropout': (0.0, lambda v: _number(v) and 0 <= v < 1,
                'a number in [0, 1), the probability of dropping a hidden unit (MLP only); 0 = off'),
    'normalization': ('none', lambda v: v in NORMALIZATION_LAYERS,
                      f"one of {', '.join(NORMALIZATION_LAYERS)}: a normalisation layer after every "
                      "hidden FC layer (MLP only)"),
    'augment': (None, _augment_settings,
                f"None, or a dict of augment.Augmenter settings for the training batches, keys from "
                f"{', '.join(AUGMENT_KEYS)}, e.g. {{'shift': 2, 'rotate': 10}}"),
    'shuffle': (True, lambda v: isinstance(v, bool),
                'True or False: reshuffle the training set every epoch (notes §2.5.3)'),
    'test_crop': (None, lambda v: v is None or v in TestTimeCrops.MODES,
                  "None, 'center' or 'multi': how a model trained on random crops (augment 'crop') is "
                  "evaluated: the centre window (the default), or the class probabilities averaged "
                  "over the four corner windows and the centre one (notes §4.2.4)"),
}


def _choices_hint(key):
    registry = {'model': MODELS, 'optimizer': OPTIMIZERS, 'lr_schedule': SCHEDULES}.get(key)
    return f" Valid names: {', '.join(sorted(registry))}." if registry is not None else ""


def validate_cfg(cfg):
    """Check a cfg dict against CFG_SCHEMA and return a full copy with defaults.

    Unknown keys, wrong types and out-of-range values raise a ValueError that
    names the key and says what it accepts. cfg['model'] = None becomes the
    model the other keys describe.
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
            raise ValueError(f"cfg['{key}'] = {value!r} is not valid: expected {accepts}."
                             + _choices_hint(key))
        full[key] = value
    if full['model'] is None:
        full['model'] = 'mlp' if full['hidden_sizes'] else 'softmax_regression'
    _check_technique_settings(full)
    if full['momentum'] == 1:
        warnings.warn("momentum = 1 never forgets a gradient: the velocity does not decay, and training "
                      "usually oscillates or diverges. The notes (§2.5.4) use 0.5, then 0.9 or a little more.",
                      stacklevel=2)
    return full


def _check_technique_settings(cfg):
    """Combinations of the training-technique keys that cannot work, explained."""
    if cfg['nesterov'] and (cfg['optimizer'] != 'sgd' or cfg['momentum'] == 0):
        raise ValueError("cfg['nesterov'] = True needs optimizer 'sgd' with momentum > 0 "
                         f"(got optimizer {cfg['optimizer']!r}, momentum {cfg['momentum']})")
    if (cfg['dropout'] or cfg['normalization'] != 'none') and cfg['model'] != 'mlp':
        raise ValueError("cfg['dropout'] and cfg['normalization'] act on hidden layers: give hidden_sizes "
                         f"(an MLP); the model is {cfg['model']!r}")
    if cfg['momentum_warmup'] and cfg['optimizer'] != 'sgd':
        raise ValueError("cfg['momentum_warmup'] schedules the momentum of optimizer 'sgd', "
                         f"not {cfg['optimizer']!r}")
    if cfg['augment'] is not None:
        try:
            Augmenter(**cfg['augment'])
        except (TypeError, ValueError) as error:
            raise ValueError(f"cfg['augment'] = {cfg['augment']!r} is not valid: {error}") from None
    if cfg['test_crop'] is not None and crop_size(cfg) is None:
        raise ValueError(f"cfg['test_crop'] = {cfg['test_crop']!r} evaluates a model trained on random crops: "
                         "set a crop size in cfg['augment'] as well, e.g. {'crop': 24}")
    if cfg['test_crop'] == 'multi' and (cfg['model'] == 'softmax_regression'
                                         or cfg['loss'] != 'softmax_cross_entropy'):
        raise ValueError("cfg['test_crop'] = 'multi' averages class probabilities, which needs an MLP or a "
                         "CNN (model.predict) with the softmax cross-entropy loss; use 'center' otherwise")


def crop_size(cfg):
    """The side of the random training crops (cfg augment 'crop'), or None."""
    return (cfg['augment'] or {}).get('crop')


class TrainingDiverged(RuntimeError):
    """The training loss became NaN, infinite, or far larger than where it
    started. The history up to that batch stays in solver.history."""


# Training has diverged when a batch loss exceeds this many times the loss of
# the first batch (about ln 10 = 2.3 for ten classes).
DIVERGENCE_FACTOR = 100


# ---------------------------------------------------------------------------
# Early stopping (notes §4.2.2): a callback, like the schedules
# ---------------------------------------------------------------------------

def model_arrays(model):
    """{(layer index, name): array} of every parameter and every piece of layer
    state (such as batch norm's running statistics) of a model."""
    arrays = {}
    for index, layer in enumerate(layers_of(model)):
        for name in tuple(param_names_of(layer)) + tuple(getattr(layer, 'state_names', ())):
            arrays[(index, name)] = getattr(layer, name)
    return arrays


class EarlyStopping(object):
    """Stop when the validation loss has not improved for `patience` epochs,
    and give the model back the parameters of its best epoch (notes §4.2.2:
    stop when the training loss still falls but the validation loss rises).

    An epoch improves when its val_loss is below the best so far by more
    than min_delta. The best epoch's parameters (and layer state such as
    batch norm's running statistics) are copied; when training stops, early
    or at max_epoch, they are restored and a line says so. solver.history
    keeps every epoch; `best_epoch` (counted from 1) says which one the model is.
    """

    def __init__(self, patience=3, min_delta=0.0, monitor='val_loss', verbose=True):
        self.patience, self.min_delta, self.monitor, self.verbose = patience, min_delta, monitor, verbose
        self.best = math.inf
        self.best_epoch = None
        self.best_arrays = None
        self.wait = 0
        self.stopped_epoch = None

    def on_epoch_end(self, solver, epoch):
        value = solver.history[self.monitor][-1]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch + 1, 0
            self.best_arrays = {key: array.copy() for key, array in model_arrays(solver.model).items()}
        else:
            self.wait += 1
        last_epoch = epoch + 1 >= solver.cfg['max_epoch']
        if self.wait >= self.patience:
            solver.stop_training = True
            self.stopped_epoch = epoch + 1
        if (solver.stop_training or last_epoch) and self.best_epoch is not None:
            self.restore(solver, epoch + 1)

    def restore(self, solver, epoch):
        """Copy the best epoch's arrays back into the model, in place."""
        if self.best_epoch == epoch:
            return
        for (index, name), array in model_arrays(solver.model).items():
            array[...] = self.best_arrays[(index, name)]
        if self.verbose:
            why = (f"stopped after epoch {epoch}: {self.monitor} has not improved for {self.patience} "
                   f"epoch{'s' if self.patience != 1 else ''}"
                   if self.stopped_epoch else f"finished at epoch {epoch}")
            print(f"Early stopping: {why}; restored the parameters of epoch {self.best_epoch} "
                  f"({self.monitor} {self.best:.4f}).")


# ---------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------

class Solver(object):
    """Builds loaders, model and optimizer from cfg and trains them.

    Solver(cfg) builds the model cfg describes; Solver(cfg, network=net,
    criterion=loss) trains a ready layers.Network with a loss layer of
    loss.py (SoftmaxCrossEntropyLossLayer by default). callbacks are objects
    with on_epoch_end(solver, epoch), called after each epoch's validation
    (learning-rate schedules, early stopping, live plots); one may set
    solver.stop_training = True to end training after that epoch. A callback
    that also has on_batch_end(solver, iterations) is called after every
    update (a per-iteration schedule such as a / (b + t)).

    Attributes after train():
    - history: dict of lists, one entry per epoch for 'train_loss',
      'train_acc', 'val_loss', 'val_acc', 'epoch_time' (seconds of training,
      validation excluded), 'learning_rate' (the rate of that epoch's
      first update, as a schedule set it), and one entry per batch for 'iter_loss' and
      'iter_acc'.
    """

    def __init__(self, cfg, network=None, criterion=None, callbacks=()):
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
        # A model trained on random crops is evaluated on centre or multiple crops.
        self.test_time_crops = None
        if crop_size(self.cfg) is not None:
            self.test_time_crops = TestTimeCrops(crop_size(self.cfg), self.cfg['test_crop'] or 'center',
                                                 image_shape=train_loader.dataset.image_shape)

        # build model
        if network is not None:
            self.model = Classifier(network, criterion if criterion is not None
                                    else loss_module.SoftmaxCrossEntropyLossLayer())
        elif criterion is not None:
            raise ValueError("a criterion was given without a network: pass network=... as well")
        else:
            self.model = self.build_model(self.cfg)

        # build optimizer
        self.optimizer = self.build_optimizer(self.model, self.cfg)

        self.stop_training = False
        self.history = {key: [] for key in ('train_loss', 'train_acc', 'val_loss', 'val_acc',
                                            'epoch_time', 'learning_rate', 'iter_loss', 'iter_acc')}
        # End-of-epoch callbacks: those the cfg asks for (schedules, early
        # stopping), then the caller's. A schedule sets the value of epoch 1 now.
        self.callbacks = build_callbacks(self.cfg) + list(callbacks)
        self.batch_callbacks = [callback for callback in self.callbacks if hasattr(callback, 'on_batch_end')]
        for callback in self.callbacks:
            if hasattr(callback, 'start'):
                callback.start(self.optimizer, self.history)

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

    def build_model(self, cfg):
        dataset = self.train_loader.dataset
        input_shape = dataset.images.shape[1:]
        if crop_size(cfg) is not None:      # the model sees crop x crop windows, in the same layout
            crop = crop_size(cfg)
            input_shape = (crop * crop,) if len(input_shape) == 1 else input_shape[:-2] + (crop, crop)
        return MODELS[cfg['model']](cfg, input_shape, dataset.num_classes)

    @staticmethod
    def build_optimizer(model, cfg):
        return OPTIMIZERS[cfg['optimizer']](model, cfg)

    def train(self):
        """Runs max_epoch epochs; returns (epoch_train_loss, epoch_train_acc),
        the per-epoch lists of history.

        Raises TrainingDiverged if the loss becomes NaN, infinite, or
        DIVERGENCE_FACTOR times larger than at the first batch.
        """
        max_epoch = self.cfg['max_epoch']
        display = self.cfg['verbose']

        for epoch in range(max_epoch):
            self._set_mode(training=True)
            self.history['learning_rate'].append(getattr(self.optimizer, 'learning_rate', None))
            start = time.perf_counter()

            first_batch = len(self.history['iter_loss'])   # this epoch's batches follow it
            for iteration, (images, labels) in enumerate(self.train_loader):
                # forward pass
                loss, acc = self.model.forward(images, labels)
                self._check_loss(loss, images, epoch, iteration)

                # backward pass
                self.model.gradient_computing()

                # update the model weights
                self.optimizer.step()
                for callback in self.batch_callbacks:          # e.g. a per-iteration schedule
                    callback.on_batch_end(self, len(self.history['iter_loss']) + 1)

                # record loss and accuracy
                self.history['iter_loss'].append(float(loss))
                self.history['iter_acc'].append(float(acc))

                # display iteration training info (epochs counted from 1, as in the plots)
                if display and iteration % self.cfg['display_freq'] == 0:
                    print("Epoch [{}][{}]\t Batch [{}][{}]\t Training Loss {:.4f}\t Accuracy {:.4f}".format(
                        epoch + 1, max_epoch, iteration, len(self.train_loader), loss, acc))

            self.history['epoch_time'].append(time.perf_counter() - start)
            avg_train_loss = float(np.mean(self.history['iter_loss'][first_batch:]))
            avg_train_acc = float(np.mean(self.history['iter_acc'][first_batch:]))

            # validate
            avg_val_loss, avg_val_acc = self.validate()
            for key, value in (('train_loss', avg_train_loss), ('train_acc', avg_train_acc),
                               ('val_loss', avg_val_loss), ('val_acc', avg_val_acc)):
                self.history[key].append(value)

            if display:
                # display epoch training info
                print('\nEpoch [{}]\t Average training loss {:.4f}\t Average training accuracy {:.4f}'.format(
                    epoch + 1, avg_train_loss, avg_train_acc))

                # display epoch validation info
                print('Epoch [{}]\t Average validation loss {:.4f}\t Average validation accuracy {:.4f}\n'.format(
                    epoch + 1, avg_val_loss, avg_val_acc))

            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch)
            if self.stop_training:
                break

        return self.history['train_loss'], self.history['train_acc']

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
        crops = self.test_time_crops.crops(images)
        if len(crops) == 1:
            return self.model.forward(crops[0], labels)
        # Multi-crop: average the class probabilities of the crops; their log is
        # a valid set of scores, since softmax(log p) = p when p sums to 1.
        probabilities = np.mean([loss_module.softmax(self.model.predict(crop)) for crop in crops], axis=0)
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
        where = f"at epoch {epoch + 1}, batch {iteration}"
        if np.isfinite(loss) and not (np.isfinite(first) and loss > DIVERGENCE_FACTOR * max(first, 1e-3)):
            return
        if np.isfinite(loss):
            what = (f"The training loss grew from {first:.4g} at the first batch to {loss:.4g} {where}: "
                    f"training diverged.")
        else:
            what = f"The training loss became {loss} {where}."
        cause = diagnose_divergence(self.model, images, self.cfg, loss_is_finite=bool(np.isfinite(loss)))
        raise TrainingDiverged(f"{what} {cause} "
                               f"The history up to this batch is kept in solver.history.")


def diagnose_divergence(model, images, cfg, loss_is_finite=False):
    """The most likely cause of a diverged loss, as one sentence with the fix."""
    if not np.all(np.isfinite(images)):
        bad = int(np.sum(~np.isfinite(images)))
        return (f"The input batch itself holds {bad} NaN or infinite values: check the data files and "
                f"the normalisation (cfg['normalize']), not the learning rate.")
    lr_advice = (f"the learning rate ({cfg['learning_rate']}) is probably too large: try one 10 times "
                 f"smaller (notes §4.4, step 3).")
    broken = [f"{type(layer).__name__}.{name}" for layer in trainable_layers(model)
              for name in getattr(layer, 'param_names', ('W', 'b'))
              if not np.all(np.isfinite(getattr(layer, name)))]
    if broken:
        return f"The parameters {', '.join(broken)} overflowed: {lr_advice}"
    if loss_is_finite:
        return f"Each step overshoots the minimum by more than the last: {lr_advice}"
    largest = max((float(np.max(np.abs(getattr(layer, name))))
                   for layer in layers_of(model) for name in getattr(layer, 'param_names', ('W', 'b'))
                   if getattr(layer, name, None) is not None and np.size(getattr(layer, name))),
                  default=0.0)
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
