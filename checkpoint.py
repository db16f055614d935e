"""Checkpoints: a model, and the state of its training, in one .npz file.

    save_checkpoint(path, model, optimizer, cfg=cfg, history=history, ...)
    info = load_checkpoint(path, model, optimizer)     # the same architecture, built first
    model, info = load_model(path)                     # builds the model its cfg describes

The file is an np.savez archive, written atomically and read with
allow_pickle=False (it holds arrays and text, never Python objects):
    model/<key>       every parameter and piece of layer state (layers.state_dict),
                      e.g. model/0.W; the homework model's are model/W and model/b
    optimizer/<key>   the optimiser's per-parameter state, e.g. optimizer/0.W/v
    meta              JSON text: the format version, the architecture
                      (layers.describe) and what the caller adds (cfg, history, ...)
A checkpoint is loaded only into a model of the architecture it was saved
from; any other gets an error that names both.
"""

import json

import numpy as np

from config import MODELS, validate_cfg
from fileio import atomic_write
from layers import describe, load_state_dict, state_dict

FORMAT = 1


def save_checkpoint(path, model, optimizer=None, **info):
    """Write model (and optimizer) state and the JSON-serialisable `info` to path."""
    arrays = {f'model/{key}': array for key, array in state_dict(model).items()}
    if optimizer is not None and hasattr(optimizer, 'state_dict'):
        arrays.update({f'optimizer/{key}': array for key, array in optimizer.state_dict().items()})
    meta = dict(info, format=FORMAT, architecture=describe(model),
                optimizer_state=optimizer is not None and hasattr(optimizer, 'state_dict'))
    arrays['meta'] = np.array(json.dumps(meta, default=str))      # paths as text
    with atomic_write(path, 'wb') as f:
        np.savez(f, **arrays)


def read_checkpoint(path):
    """(meta, model arrays, optimizer arrays) of a checkpoint file, without a model."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            meta = json.loads(str(saved['meta']))
            parts = {'model/': {}, 'optimizer/': {}}
            for name in saved.files:
                for prefix, arrays in parts.items():
                    if name.startswith(prefix):
                        arrays[name[len(prefix):]] = saved[name]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a checkpoint of this framework ({error}); "
                         "write one with save_checkpoint or cfg['checkpoint']") from None
    if meta.get('format') != FORMAT:
        raise ValueError(f"{path} has checkpoint format {meta.get('format')!r}, this code reads {FORMAT}")
    return meta, parts['model/'], parts['optimizer/']


def architecture_text(architecture):
    """One line for an architecture of layers.describe: 'FCLayer(784x128) -> ReLULayer -> ...'."""
    return ' -> '.join(entry['layer'] + (f"({'x'.join(map(str, entry['arrays'].get('W', [])))})"
                                         if entry['arrays'].get('W') else '')
                       for entry in architecture)


def load_checkpoint(path, model, optimizer=None):
    """Give model (and optimizer) the state saved in path; returns the meta dict.

    The model must have the checkpoint's architecture (same layers, same shapes)."""
    meta, model_arrays, optimizer_arrays = read_checkpoint(path)
    if meta['architecture'] != describe(model):
        raise ValueError(f"{path} holds a model of another architecture: "
                         f"{architecture_text(meta['architecture'])}; this model is "
                         f"{architecture_text(describe(model))}. Build the model of the checkpoint's cfg "
                         f"(read_checkpoint(path)[0]['cfg']) or load another checkpoint")
    load_state_dict(model, model_arrays, source=str(path))
    if optimizer is not None:
        if not meta['optimizer_state'] or not hasattr(optimizer, 'load_state_dict'):
            raise ValueError(f"{path} cannot resume training with this optimizer: the optimiser state "
                             "was not saved or this optimizer.py cannot load it (no load_state_dict)")
        optimizer.load_state_dict(optimizer_arrays)
    return meta


def load_model(path):
    """(model, meta): the model a checkpoint's cfg describes, with its saved parameters.

    For pictures and predictions in a notebook; a checkpoint of a network
    built by hand (Solver(cfg, network=...)) needs that network built first,
    then load_checkpoint(path, network)."""
    meta = read_checkpoint(path)[0]
    if not meta.get('built_from_cfg'):
        raise ValueError(f"{path} holds a network built by hand, not from its cfg: build that network, "
                         "then call load_checkpoint(path, network)")
    cfg = validate_cfg(dict(meta['cfg'], resume=None, checkpoint=None))
    model = MODELS[cfg['model']](cfg, tuple(meta['input_shape']), meta['num_classes'])
    return model, load_checkpoint(path, model)


# ---------------------------------------------------------------------------
# A Solver's training: saved after an epoch, resumed from there
# ---------------------------------------------------------------------------

# The cfg keys a resumed training may change: how long, and what it prints or writes.
RESUMABLE_KEYS = ('max_epoch', 'verbose', 'display_freq', 'checkpoint', 'resume')


def random_generators(solver):
    """{name: np.random.Generator} of everything random in a Solver's training:
    the shuffling, the augmenter and each dropout layer."""
    generators = {'shuffle': solver.train_loader.sampler.rng}
    augmenter = getattr(solver.train_loader, 'augmenter', None)
    if augmenter is not None:
        generators['augment'] = augmenter.rng
    layers = getattr(getattr(solver.model, 'network', None), 'layerList', [])
    generators.update({f'layer{index}': layer.rng for index, layer in enumerate(layers)
                       if isinstance(getattr(layer, 'rng', None), np.random.Generator)})
    return generators


def save_training(solver, path):
    """Save a Solver's model, optimiser, history and random state after an epoch."""
    settings = {name: getattr(solver.optimizer, name) for name in ('learning_rate', 'momentum')
                if hasattr(solver.optimizer, name)}
    save_checkpoint(path, solver.model, solver.optimizer,
                    cfg=dict(solver.cfg, data_root=str(solver.cfg['data_root'])),
                    built_from_cfg=solver.built_from_cfg, input_shape=solver.input_shape(solver.cfg),
                    num_classes=solver.train_loader.dataset.num_classes, history=solver.history,
                    optimizer_settings=settings,
                    random_state={name: rng.bit_generator.state
                                  for name, rng in random_generators(solver).items()})


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


def resume_training(solver, path):
    """Put a freshly built Solver where the training saved in path stopped:
    model, optimiser (state and settings), history and random state. Its
    train() then runs the remaining epochs up to cfg['max_epoch']."""
    if solver.cfg['early_stopping']:
        raise ValueError("cfg['resume'] cannot restore early stopping's best epoch: "
                         "resume without early_stopping, or train again from the start")
    meta = load_checkpoint(path, solver.model, solver.optimizer)
    changed = sorted(key for key in solver.cfg
                     if key not in RESUMABLE_KEYS and _as_json(meta['cfg'].get(key)) != _as_json(solver.cfg[key]))
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(changed)}); "
                         "resume it with its own cfg (only max_epoch may grow)")
    solver.history = meta['history']
    for name, value in meta['optimizer_settings'].items():
        setattr(solver.optimizer, name, value)
    for name, rng in random_generators(solver).items():
        rng.bit_generator.state = meta['random_state'][name]
