"""Training callbacks: what the Solver calls around its loop.

One contract. A callback is an object with any of
    start(solver)                      before the first epoch (or the first resumed epoch)
    on_batch_end(solver, iterations)   after every update; iterations counts the updates so far
    on_epoch_end(solver, epoch)        after epoch `epoch` (from 0) and its validation
It reads solver.history, solver.model and solver.optimizer, may change the
optimiser's hyper-parameters, and may set solver.stop_training = True to end
training after this epoch. The Solver builds the callbacks its cfg asks for
(config.build_callbacks) and then calls those it is given.

The module holds the learning-rate and momentum schedules (notes §2.5.2,
§2.5.4), early stopping (notes §4.2.2), live curves and per-layer
statistics (notes §2.3.5). It does not import matplotlib until a figure is drawn.
"""

import math

import numpy as np

from fileio import save_figure
from layers import load_state_dict, parameter_slots, state_dict


class Callback(object):
    """Base class: every hook does nothing; a callback overrides the ones it needs."""

    def start(self, solver):
        pass

    def on_batch_end(self, solver, iterations):
        pass

    def on_epoch_end(self, solver, epoch):
        pass


# ---------------------------------------------------------------------------
# Schedules (notes §2.5.2, §2.5.4): how the learning rate (or the momentum)
# changes during training. A schedule is a callback. Most change the
# value between epochs (unit 'epoch': on_epoch_end sets the value of the next
# epoch); the notes' a / (b + t) counts iterations (unit 'iteration':
# on_batch_end sets the value of the next update). The value itself is
# `value(t, current, history)`, a plain function of t (epochs or iterations
# done, from 0), the current value and the history of finished epochs, so it
# can be checked by hand.
# ---------------------------------------------------------------------------

class Schedule(Callback):
    """Base class. `attribute` names the optimiser attribute it drives; `unit`
    says what t counts: 'epoch' or 'iteration' (updates)."""
    attribute = 'learning_rate'
    unit = 'epoch'

    def value(self, t, current, history):
        """The value to use once t epochs (or iterations) are done (t = 0, 1, ...)."""
        raise NotImplementedError

    def start(self, solver):
        """Set the value of t = 0 before training. A resumed training keeps the
        value its checkpoint saved, which the last epoch's callback set."""
        if not solver.history.get('train_loss'):
            self._set(solver.optimizer, 0, solver.history)

    def on_epoch_end(self, solver, epoch):
        """Called after epoch `epoch` (from 0) and its validation."""
        if self.unit == 'epoch':
            self._set(solver.optimizer, epoch + 1, solver.history)

    def on_batch_end(self, solver, iterations):
        """Called after every update; `iterations` counts the updates done so far."""
        if self.unit == 'iteration':
            self._set(solver.optimizer, iterations, solver.history)

    def _set(self, optimizer, t, history):
        setattr(optimizer, self.attribute, self.value(t, getattr(optimizer, self.attribute), history))


class StepDecay(Schedule):
    """Multiply the learning rate by `factor` (halve it, by default) every
    `step_size` epochs: lr(epoch) = initial * factor ** (epoch // step_size)."""

    def __init__(self, initial, step_size, factor=0.5):
        self.initial, self.step_size, self.factor = initial, step_size, factor

    def value(self, epoch, current, history):
        return self.initial * self.factor ** (epoch // self.step_size)


class HalveOnPlateau(Schedule):
    """Halve the learning rate when the objective on the held-out (validation)
    split changed by less than `threshold` between the last two epochs
    (notes §2.5.2). A rise counts as no improvement, so it halves as well:

        lr <- factor * lr   if history[monitor][-2] - history[monitor][-1] < threshold
    """

    def __init__(self, threshold=1e-3, factor=0.5, monitor='val_loss'):
        self.threshold, self.factor, self.monitor = threshold, factor, monitor

    def value(self, epoch, current, history):
        values = history.get(self.monitor, [])
        if len(values) >= 2 and values[-2] - values[-1] < self.threshold:
            return current * self.factor
        return current


class InverseTimeDecay(Schedule):
    """lr(t) = a / (b + t) at iteration t (notes §2.5.2): a fixes the size, b
    (in iterations) when the decay becomes noticeable: after b updates the
    rate is half the first. InverseTimeDecay.from_initial(lr0, b) sets
    a = lr0 * b, so that the first update uses lr0. With batches of 100 and
    55000 training images an epoch is 550 iterations."""
    unit = 'iteration'

    def __init__(self, a, b):
        self.a, self.b = a, b

    @classmethod
    def from_initial(cls, initial, b):
        return cls(initial * b, b)

    def value(self, t, current, history):
        return self.a / (self.b + t)


class MomentumSchedule(Schedule):
    """The notes' momentum strategy (§2.5.4): momentum `before` (0.5) until
    epoch `switch_epoch`, when learning has become stable, then `after` (0.9)."""
    attribute = 'momentum'

    def __init__(self, switch_epoch, before=0.5, after=0.9):
        self.switch_epoch, self.before, self.after = switch_epoch, before, after

    def value(self, epoch, current, history):
        return self.before if epoch < self.switch_epoch else self.after


# ---------------------------------------------------------------------------
# Early stopping (notes §4.2.2)
# ---------------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for `patience` epochs,
    and give the model back the parameters of its best epoch (notes §4.2.2:
    stop when the training loss still falls but the validation loss rises).

    An epoch improves when its val_loss is below the best so far by more
    than min_delta. The best epoch's parameters and layer state (such as
    batch norm's running statistics) are copied (layers.state_dict); when
    training stops, early or at max_epoch, they are restored and a line says
    so. solver.history keeps every epoch; `best_epoch` (counted from 1) says
    which one the model is.
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
            self.best_arrays = state_dict(solver.model)
        else:
            self.wait += 1
        last_epoch = epoch + 1 >= solver.cfg['max_epoch']
        if self.wait >= self.patience:
            solver.stop_training = True
            self.stopped_epoch = epoch + 1
        if (solver.stop_training or last_epoch) and self.best_epoch is not None:
            self.restore(solver, epoch + 1)

    def restore(self, solver, epoch):
        """Give the model the best epoch's parameters and state again."""
        if self.best_epoch == epoch:
            return
        load_state_dict(solver.model, self.best_arrays)
        if self.verbose:
            why = (f"stopped after epoch {epoch}: {self.monitor} has not improved for {self.patience} "
                   f"epoch{'s' if self.patience != 1 else ''}"
                   if self.stopped_epoch else f"finished at epoch {epoch}")
            print(f"Early stopping: {why}; restored the parameters of epoch {self.best_epoch} "
                  f"({self.monitor} {self.best:.4f}).")


# ---------------------------------------------------------------------------
# Live curves while training
# ---------------------------------------------------------------------------

def _in_notebook():
    """True inside a Jupyter kernel (where IPython.display can update a figure)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and 'IPKernelApp' in getattr(shell, 'config', {})


class LiveCurves(Callback):
    """A training callback: the loss and accuracy curves, redrawn after every epoch.

    solver = Solver(cfg, callbacks=[LiveCurves()])    # or call it yourself:
    live.on_epoch_end(solver, epoch)

    It reads only solver.history. In a notebook the figure is replaced in
    place (IPython display); elsewhere (a terminal, a test) it prints one
    line per epoch. save_path: also save the last figure there.
    """

    def __init__(self, save_path=None, display=None):
        self.save_path = save_path
        self.display = _in_notebook() if display is None else display
        self.handle = None
        self.fig = None
        self.lines = []

    def on_epoch_end(self, solver, epoch):
        history = solver.history
        if self.display:
            self._redraw(history)
        else:
            print(f"epoch {epoch + 1}: train loss {history['train_loss'][-1]:.4f}, "
                  f"train acc {history['train_acc'][-1]:.4f}, val loss {history['val_loss'][-1]:.4f}, "
                  f"val acc {history['val_acc'][-1]:.4f}", flush=True)
        if self.save_path is not None:
            save_figure(self.figure(history), self.save_path, dpi=110)

    def figure(self, history):
        """The Figure of the curves so far (created once, then updated)."""
        if self.fig is None:
            import matplotlib.pyplot as plt        # only when a figure is drawn

            self.fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
            for ax, name in zip(axes, ('Loss', 'Accuracy')):
                for split in ('train', 'val'):
                    line, = ax.plot([], [], '-o', markersize=3, label=split)
                    self.lines.append(line)
                ax.set_xlabel('Epoch')
                ax.set_ylabel(name)
                ax.grid(alpha=0.3)
                ax.legend()
            plt.close(self.fig)          # shown through display(), not by the backend
        keys = ('train_loss', 'val_loss', 'train_acc', 'val_acc')
        for line, key in zip(self.lines, keys):
            line.set_data(np.arange(1, len(history[key]) + 1), history[key])
        for ax in self.fig.axes:
            ax.relim()
            ax.autoscale_view()
        return self.fig

    def _redraw(self, history):
        from IPython.display import display

        fig = self.figure(history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)


# ---------------------------------------------------------------------------
# Inside a deep network: per-layer statistics (notes §2.3.5, §2.5.1)
# ---------------------------------------------------------------------------

class LayerStatistics(Callback):
    """Records, on a fixed probe batch, what every layer of a network sees.

    record(model, step) runs one forward and backward pass of the probe batch
    (no update) and keeps, for each fully connected layer l = 1..L (every
    layer with a weight W):
    - act_mean[l], act_std[l]: mean and standard deviation of the layer's
      input, i.e. of the activations of the layer below (for l = 1: the image)
    - grad_norm[l]: the Frobenius norm of dE/dW of the layer
    and the probe loss. As a training callback (Solver(cfg, callbacks=[stats]))
    it records after every epoch; history['step'] is then the epoch.

    Vanishing gradients (notes §2.3.5) show as grad_norm falling layer by
    layer towards the input; a too-small initialisation (§2.5.1) as act_std
    shrinking layer by layer.
    """

    def __init__(self, images, labels):
        """images (N, D), labels (N,): the probe batch (e.g. 500 training images)."""
        self.images, self.labels = images, labels
        self.history = {'step': [], 'loss': [], 'act_mean': [], 'act_std': [], 'grad_norm': []}

    def record(self, model, step):
        is_network = hasattr(getattr(model, 'network', model), 'layerList')
        layers = [layer for _, layer, name in parameter_slots(model) if name == 'W'] if is_network else []
        if not layers:
            raise ValueError("LayerStatistics needs a network of layers (model.network.layerList) "
                             "with weights W")
        loss, _ = model.forward(self.images, self.labels)
        model.gradient_computing()
        inputs = [np.asarray(layer.Input, dtype=np.float64) for layer in layers]
        self.history['step'].append(step)
        self.history['loss'].append(float(loss))
        self.history['act_mean'].append([float(x.mean()) for x in inputs])
        self.history['act_std'].append([float(x.std()) for x in inputs])
        self.history['grad_norm'].append([float(np.linalg.norm(layer.grad_W)) for layer in layers])

    def on_epoch_end(self, solver, epoch):
        self.record(solver.model, epoch + 1)

