"""Curves for the report: headless plotting, saving, the moving average, atomic writes."""

import os

import matplotlib

matplotlib.use('Agg')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fileio import atomic_write  # noqa: E402
from visualize import moving_average, plot_loss_and_acc, plot_training_loss  # noqa: E402
from layers import Layer  # noqa: E402


def test_plot_loss_and_acc_draws_one_line_per_label_and_saves(tmp_path):
    curves = {'SGD': [[0.9, 0.5, 0.4], [0.7, 0.85, 0.88]],
              'SGD with momentum': [[0.6, 0.3, 0.25], [0.8, 0.9, 0.92]]}
    path = tmp_path / 'figures' / 'curves.png'
    fig = plot_loss_and_acc(curves, save_path=path)
    assert fig is not None  # Agg cannot show, so the figure is returned
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_xlabel() == 'Epoch' and ax_loss.get_ylabel() == 'Loss'
    assert ax_acc.get_ylabel() == 'Accuracy'
    assert [line.get_label() for line in ax_acc.get_lines()] == ['SGD', 'SGD with momentum']
    assert list(ax_loss.get_lines()[1].get_ydata()) == [0.6, 0.3, 0.25]
    assert list(ax_loss.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert [p.name for p in path.parent.iterdir()] == ['curves.png']  # no temporary file left


def test_plot_loss_and_acc_rejects_malformed_input():
    with pytest.raises(ValueError, match='at least one'):
        plot_loss_and_acc({})
    with pytest.raises(ValueError, match="'bad' must be \\[loss_list, acc_list\\]"):
        plot_loss_and_acc({'bad': [[1.0, 2.0], [0.5]]})


def test_moving_average_against_hand_values():
    assert np.allclose(moving_average([1, 2, 3, 4, 5], 2), [1.5, 2.5, 3.5, 4.5])
    assert np.allclose(moving_average([1, 2, 3, 4, 5], 3), [2, 3, 4])
    assert np.allclose(moving_average([1, 2], 5), [1, 2])  # too short: unchanged


def test_plot_training_loss_shows_raw_and_smoothed():
    ax = plot_training_loss(np.linspace(2, 0, 100) + np.sin(np.arange(100)), window=10, label='lr 0.01')
    raw, smooth = ax.get_lines()
    assert len(raw.get_ydata()) == 100 and len(smooth.get_ydata()) == 91
    assert smooth.get_label() == 'lr 0.01 (moving average of 10)'


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / 'results.json'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(path, 'w') as f:
            f.write('half')
            raise RuntimeError('interrupted')
    assert path.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['results.json']
    with atomic_write(path, 'w') as f:
        f.write('new')
    assert path.read_text() == 'new'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, 'outputs get ordinary file permissions'


# ----- pictures of a model and of the recipe -----

from types import SimpleNamespace  # noqa: E402

import visualize  # noqa: E402

PNG = b'\x89PNG\r\n\x1a\n'


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1000


def test_weight_templates_show_each_column_of_W(tmp_path):
    W = np.random.default_rng(0).normal(size=(784, 10))
    fig = visualize.plot_weight_templates(W, tmp_path / 'templates.png')
    assert_png(tmp_path / 'templates.png')
    panels = [ax for ax in fig.axes if ax.images and ax.get_title().startswith('class')]
    assert [ax.get_title() for ax in panels] == [f'class {k}' for k in range(10)]
    for k, ax in enumerate(panels):
        assert np.array_equal(ax.images[0].get_array(), W[:, k].reshape(28, 28))
        assert ax.images[0].get_clim() == (-np.abs(W).max(), np.abs(W).max())
    with pytest.raises(ValueError, match='784 pixels'):
        visualize.plot_weight_templates(W[:100])


def test_weight_grid_of_a_fully_connected_layer_and_of_conv_filters(tmp_path):
    W = np.random.default_rng(1).normal(size=(784, 12))
    fig = visualize.plot_weight_grid(W, tmp_path / 'fc.png', max_units=9)
    assert_png(tmp_path / 'fc.png')
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 9
    assert np.array_equal(shown[4].images[0].get_array(), W[:, 4].reshape(28, 28))

    filters = np.random.default_rng(2).normal(size=(6, 2, 3, 3))
    fig = visualize.plot_weight_grid(filters, tmp_path / 'conv.png')
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6 and shown[0].get_title() == 'filter 0'
    assert np.allclose(shown[5].images[0].get_array(), filters[5].mean(axis=0))
    rgb = np.random.default_rng(3).normal(size=(4, 3, 5, 5))
    fig = visualize.plot_weight_grid(rgb)
    image = [ax for ax in fig.axes if ax.images][1].images[0].get_array()
    expected = rgb[1].transpose(1, 2, 0)
    assert np.allclose(image, (expected - expected.min()) / (expected.max() - expected.min()))


def test_first_layer_weights_of_the_homework_model_and_of_an_mlp():
    from layers import Classifier, FCLayer, Network, ReLULayer
    from loss import SoftmaxCrossEntropyLoss, SoftmaxCrossEntropyLossLayer

    model = SoftmaxCrossEntropyLoss(784, 10)
    assert visualize.first_layer_weights(model) is model.W
    first = FCLayer(784, 32)
    mlp = Classifier(Network([ReLULayer(), first, ReLULayer(), FCLayer(32, 10)]), SoftmaxCrossEntropyLossLayer())
    assert visualize.first_layer_weights(mlp) is first.W
    with pytest.raises(ValueError, match='no layer with weights W'):
        visualize.first_layer_weights(Network([ReLULayer()]))


def test_confusion_matrix_against_hand_counts(tmp_path):
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 0, 2, 2])
    counts = visualize.confusion_matrix(true, pred, 3)
    assert counts.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 3]]
    fig = visualize.plot_confusion_matrix(true, pred, 3, tmp_path / 'confusion.png')
    assert_png(tmp_path / 'confusion.png')
    ax, ax_acc = fig.axes
    assert np.allclose(ax.images[0].get_array(), counts / counts.sum(axis=1, keepdims=True))
    assert sorted(t.get_text() for t in ax.texts) == ['1', '1', '2', '2', '3']
    assert [round(bar.get_width(), 6) for bar in ax_acc.patches] == [
        round(100 * 2 / 3, 6), 100.0, 75.0]
    assert '(accuracy 77.78%, 9 images)' in ax.get_title()


def test_misclassified_grid_shows_the_most_confident_mistakes(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.random((6, 16))
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array([[0.9, 0.05, 0.05],    # right
                      [0.6, 0.3, 0.1],      # wrong, 60% sure of 0
                      [0.1, 0.8, 0.1],      # wrong, 80% sure of 1
                      [0.2, 0.1, 0.7],      # wrong, 70% sure of 2
                      [0.1, 0.8, 0.1],      # right
                      [0.0, 0.1, 0.9]])     # right
    fig = visualize.plot_misclassified(images, labels, probs, tmp_path / 'wrong.png',
                                       image_shape=(4, 4))
    assert_png(tmp_path / 'wrong.png')
    assert list(fig.misclassified_indices) == [2, 3, 1]
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ['true 2, pred 1\n(80%)', 'true 0, pred 2\n(70%)',
                                                'true 1, pred 0\n(60%)']
    assert np.array_equal(shown[0].images[0].get_array(), images[2].reshape(4, 4))
    assert '3 of 6 images misclassified' in fig._suptitle.get_text()


def test_lr_range_plot_draws_the_finite_losses_and_marks_divergence(tmp_path):
    result = SimpleNamespace(learning_rates=[1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.0, 0.5, np.inf],
                             initial_loss=2.3, suggested_range=(1e-2, 1e-1), num_batches=10)
    fig = visualize.plot_lr_range(result, tmp_path / 'lr.png')
    assert_png(tmp_path / 'lr.png')
    ax = fig.axes[0]
    curve, diverged = ax.get_lines()[:2]
    assert list(curve.get_xdata()) == [1e-3, 1e-2, 1e-1] and list(curve.get_ydata()) == [2.0, 1.0, 0.5]
    assert list(diverged.get_xdata()) == [1.0]
    assert ax.get_xscale() == 'log'


def test_search_scatter_has_one_point_per_finished_trial(tmp_path):
    def trial(lr, momentum, acc, round_name):
        return {'cfg': {'learning_rate': lr, 'momentum': momentum, 'max_epoch': 2},
                'round': round_name, 'val_acc': acc}
    trials = [trial(0.01, 0.9, 0.90, 'coarse'), trial(0.1, 0.5, 0.92, 'coarse'),
              trial(10.0, 0.9, None, 'coarse'), trial(0.05, 0.8, 0.93, 'fine')]
    fig = visualize.plot_search_results(trials, ['learning_rate', 'momentum'], tmp_path / 's.png')
    assert_png(tmp_path / 's.png')
    ax_lr, ax_m = fig.axes
    coarse, fine, best = ax_lr.collections
    assert np.allclose(coarse.get_offsets(), [[0.01, 90.0], [0.1, 92.0]])
    assert np.allclose(fine.get_offsets(), [[0.05, 93.0]])
    assert np.allclose(best.get_offsets(), [[0.05, 93.0]])
    assert np.allclose(ax_m.collections[0].get_offsets(), [[0.1, 90.0], [0.5, 92.0]])
    assert ax_m.get_xlabel() == '1 - momentum'


def test_live_curves_print_without_a_display_and_track_the_history(tmp_path, capsys):
    hist = {'train_loss': [], 'train_acc': [], 'val_loss': [], 'val_acc': []}
    solver = SimpleNamespace(history=hist)
    live = visualize.LiveCurves(save_path=tmp_path / 'live.png')
    assert live.display is False          # pytest is not a notebook kernel
    for epoch, values in enumerate([(0.9, 0.7, 0.8, 0.75), (0.5, 0.85, 0.45, 0.86)]):
        for key, value in zip(('train_loss', 'train_acc', 'val_loss', 'val_acc'), values):
            hist[key].append(value)
        live.on_epoch_end(solver, epoch)
    out = capsys.readouterr().out.splitlines()
    assert out == ['epoch 1: train loss 0.9000, train acc 0.7000, val loss 0.8000, val acc 0.7500',
                   'epoch 2: train loss 0.5000, train acc 0.8500, val loss 0.4500, val acc 0.8600']
    assert_png(tmp_path / 'live.png')
    train_loss, val_loss = live.fig.axes[0].get_lines()
    assert list(train_loss.get_ydata()) == [0.9, 0.5] and list(val_loss.get_ydata()) == [0.8, 0.45]
    assert list(live.fig.axes[1].get_lines()[1].get_xdata()) == [1, 2]


def test_live_curves_update_one_display_in_a_notebook(monkeypatch):
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(('update', fig))

    def display(fig, display_id=False):
        shown.append(('display', fig))
        return Handle()

    ipython_display = pytest.importorskip('IPython.display')
    monkeypatch.setattr(ipython_display, 'display', display)
    hist = {'train_loss': [1.0], 'train_acc': [0.5], 'val_loss': [1.1], 'val_acc': [0.4]}
    live = visualize.LiveCurves(display=True)
    live.on_epoch_end(SimpleNamespace(history=hist), 0)
    live.on_epoch_end(SimpleNamespace(history=hist), 1)
    assert [kind for kind, _ in shown] == ['display', 'update']
    assert shown[0][1] is shown[1][1] is live.fig


# ----- per-layer statistics (notes §2.3.5, §2.5.1) -----

class StubLayer(Layer):
    """What LayerStatistics reads of a layer: W, and after a pass Input and grad_W."""
    param_names = ('W',)

    def __init__(self, W):
        self.W = W


class StubModel:
    """A 'network' whose forward pass stores given inputs and gradients in its layers."""

    def __init__(self, inputs, grads):
        self.network = SimpleNamespace(layerList=[StubLayer(g) for g in grads] + [Layer()])
        self.inputs, self.grads = inputs, grads

    def forward(self, images, labels):
        for layer, Input in zip(self.network.layerList, self.inputs):
            layer.Input = Input
        return 1.25, 0.5

    def gradient_computing(self):
        for layer, grad in zip(self.network.layerList, self.grads):
            layer.grad_W = grad


def test_layer_statistics_record_the_mean_spread_and_gradient_norm_of_each_layer():
    rng = np.random.default_rng(5)
    inputs = [rng.normal(size=(30, 12)), np.maximum(rng.normal(size=(30, 8)), 0)]
    grads = [np.full((12, 8), 0.5), np.array([[3.0, 4.0]])]
    stats = visualize.LayerStatistics(np.zeros((30, 12)), np.zeros(30, dtype=int))
    stats.record(StubModel(inputs, grads), step=7)
    history = stats.history
    assert history['step'] == [7] and history['loss'] == [1.25]
    assert history['act_mean'][0] == pytest.approx([inputs[0].mean(), inputs[1].mean()])
    assert history['act_std'][0] == pytest.approx([inputs[0].std(), inputs[1].std()])
    assert history['grad_norm'][0] == pytest.approx([0.5 * np.sqrt(96), 5.0])
    stats.on_epoch_end(SimpleNamespace(model=StubModel(inputs, grads)), epoch=0)
    assert history['step'] == [7, 1], 'as a callback it records after each epoch, counted from 1'
    with pytest.raises(ValueError, match='network of layers'):
        stats.record(SimpleNamespace(W=np.ones(3)), step=0)


def test_layer_statistics_plot_draws_the_first_record_per_layer(tmp_path):
    history = {'step': [0, 10], 'loss': [2.3, 1.0],
               'act_mean': [[0.0, 0.5, 0.4], [0.0, 0.6, 0.5]],
               'act_std': [[0.3, 0.1, 0.01], [0.3, 0.2, 0.1]],
               'grad_norm': [[1e-4, 1e-2, 1.0], [1e-3, 1e-2, 0.1]]}
    fig = visualize.plot_layer_statistics({'deep sigmoid': history}, tmp_path / 'layers.png')
    assert_png(tmp_path / 'layers.png')
    ax_std, ax_mean, ax_grad, ax_loss = fig.axes
    assert list(ax_std.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert list(ax_std.get_lines()[0].get_ydata()) == [0.3, 0.1, 0.01]
    assert list(ax_mean.get_lines()[0].get_ydata()) == [0.0, 0.5, 0.4]
    start, end = ax_grad.get_lines()
    assert list(start.get_ydata()) == [1e-4, 1e-2, 1.0] and list(end.get_ydata()) == [1e-3, 1e-2, 0.1]
    assert list(ax_loss.get_lines()[0].get_ydata()) == [2.3, 1.0]
    assert ax_std.get_yscale() == 'log' and ax_grad.get_yscale() == 'log'
