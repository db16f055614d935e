"""Configuration: the cfg schema, its checks, and the registries that turn a cfg
into a model, an optimiser and the training callbacks.

One cfg dict describes a run. validate_cfg(cfg) checks it against CFG_SCHEMA
(key -> default, check, what it accepts) and fills in the defaults; the
registries below build from it:
    MODELS[cfg['model']](cfg, input_shape, num_classes)   -> a model
    OPTIMIZERS[cfg['optimizer']](model, cfg)               -> an optimizer
    SCHEDULES[cfg['lr_schedule']](cfg)                     -> a schedule or None
    build_callbacks(cfg)                                   -> the callbacks the cfg asks for
A new model, optimiser or schedule is one decorated builder (register_model,
register_optimizer) or one SCHEDULES entry; its name is then a valid cfg value.
"""

import difflib
import math
import numbers
import os
import warnings

import numpy as np

from augment import Augmenter, TestTimeCrops
import callbacks as callbacks_module
from dataloader import NORMALIZATIONS, is_data_root, is_positive_int
from layers import (ACTIVATION_LAYERS, INITS, NORMALIZATION_LAYERS, Classifier, add_regularisation, build_cnn,
                    build_mlp)
import loss as loss_module
from loss import SoftmaxCrossEntropyLoss
import optimizer as optimizer_module
from optimizer import SGD


# ---------------------------------------------------------------------------
# Models and optimizers by name
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
    return from_optimizer_py('Adagrad')(model, cfg['learning_rate'], eps=cfg['eps'],
                                        weight_decay=cfg['weight_decay'])


@register_optimizer('rmsprop')
def build_rmsprop(model, cfg):
    return from_optimizer_py('RMSProp')(model, cfg['learning_rate'], gamma=cfg['rmsprop_gamma'], eps=cfg['eps'],
                                        weight_decay=cfg['weight_decay'])


@register_optimizer('adam')
def build_adam(model, cfg):
    return from_optimizer_py('Adam')(model, cfg['learning_rate'], beta1=cfg['beta1'], beta2=cfg['beta2'],
                                     eps=cfg['eps'], bias_correction=cfg['bias_correction'],
                                     weight_decay=cfg['weight_decay'])


# Learning-rate schedules by name (notes §2.5.2): name -> builder(cfg) ->
# a schedule (callbacks.py), or None to keep the learning rate constant.
SCHEDULES = {
    'constant': lambda cfg: None,
    'step': lambda cfg: callbacks_module.StepDecay(cfg['learning_rate'], cfg['lr_decay_every'],
                                                   cfg['lr_decay_factor']),
    'plateau': lambda cfg: callbacks_module.HalveOnPlateau(cfg['plateau_threshold'], cfg['lr_decay_factor']),
    'inverse_time': lambda cfg: callbacks_module.InverseTimeDecay.from_initial(cfg['learning_rate'],
                                                                               cfg['inverse_time_b']),
}


def build_callbacks(cfg):
    """The callbacks the cfg asks for: the learning-rate schedule, the momentum
    schedule, early stopping (in that order)."""
    callbacks = [SCHEDULES[cfg['lr_schedule']](cfg)]
    if cfg['momentum_warmup']:
        callbacks.append(callbacks_module.MomentumSchedule(cfg['momentum_warmup'], before=0.5,
                                                           after=cfg['momentum']))
    if cfg['early_stopping']:
        callbacks.append(callbacks_module.EarlyStopping(cfg['early_stopping']))  # says when it restores
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
              "a model name from config.MODELS, or None: 'mlp' when hidden_sizes are given, "
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
             f"one of {', '.join(criteria())} (loss.CRITERIA)"),
    'init': ('course', _one_of(INITS), f"one of {', '.join(INITS)} (notes §2.5.1)"),
    'optimizer': ('sgd', lambda v: _one_of(OPTIMIZERS)(v), 'an optimizer name from config.OPTIMIZERS'),
    'beta1': (0.9, lambda v: _number(v) and 0 <= v < 1,
              "optimizer 'adam': a number in [0, 1), the decay of the first moment m (notes §4.1.4)"),
    'beta2': (0.999, lambda v: _number(v) and 0 <= v < 1,
              "optimizer 'adam': a number in [0, 1), the decay of the second moment c (notes §4.1.4)"),
    'bias_correction': (True, lambda v: isinstance(v, bool),
                        "optimizer 'adam': True or False, divide m and c by 1 - beta^t (notes §4.1.4)"),
    'rmsprop_gamma': (0.9, lambda v: _number(v) and 0 <= v < 1,
                      "optimizer 'rmsprop': a number in [0, 1), the forgetting factor gamma (notes §4.1.3)"),
    'eps': (1e-8, _positive_number,
            "optimizers 'adagrad', 'rmsprop', 'adam': a number > 0 added inside the square root"),
    'weight_decay': (0.0, lambda v: _number(v) and v >= 0,
                     'a number >= 0, the L2 coefficient lambda (weights only, not biases)'),
    'verbose': (True, lambda v: isinstance(v, bool), 'True or False (print progress)'),
    # Training techniques (notes §2.5, §4)
    'nesterov': (False, lambda v: isinstance(v, bool),
                 "True or False: Nesterov momentum (optimizer 'sgd' with momentum > 0)"),
    'lr_schedule': ('constant', lambda v: _one_of(SCHEDULES)(v),
                    "a schedule name from config.SCHEDULES: 'constant', 'step' (times lr_decay_factor "
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
    'checkpoint': (None, lambda v: v is None or isinstance(v, (str, os.PathLike)),
                   'None, or a file path: save the model, the optimiser and the history there after '
                   'every epoch (checkpoint.py), to resume from'),
    'resume': (None, lambda v: v is None or isinstance(v, (str, os.PathLike)),
               'None, or the path of a checkpoint of this cfg: continue its training from its last '
               'epoch up to max_epoch'),
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
