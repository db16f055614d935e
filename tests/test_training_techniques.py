"""The training techniques inside the Solver (notes §2.5, §4): cfg keys and
their errors, schedules and the learning rate recorded per epoch, early
stopping, shuffling, augmentation of training batches only, and the
training / evaluation modes. Runs on the tiny MNIST-like set of conftest."""

import numpy as np
import pytest

from augment import AugmentedLoader
from layers import BatchNormLayer, DropoutLayer, FCLayer, Layer, Network
from solver import EarlyStopping, Solver, validate_cfg


def quiet(root, **cfg):
    return dict(data_root=str(root), verbose=False, batch_size=50, **cfg)


# ---------------------------------------------------------------------------
# cfg
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('cfg, message', [
    (dict(optimizer='adamw'), r"Valid names: adagrad, adam, rmsprop, sgd"),
    (dict(lr_schedule='cosine'), r"Valid names: constant, inverse_time, plateau, step"),
    (dict(hidden_sizes=[8], dropout=1.0), r"cfg\['dropout'\] = 1.0 is not valid: expected a number in \[0, 1\)"),
    (dict(hidden_sizes=[8], normalization='group'), r"one of none, batch, layer"),
    (dict(dropout=0.5), r"act on hidden layers: give hidden_sizes"),
    (dict(optimizer='adam', nesterov=True), r"nesterov.*needs optimizer 'sgd'"),
    (dict(momentum=0.0, nesterov=True), r"nesterov.*momentum > 0"),
    (dict(optimizer='adam', momentum_warmup=3), r"momentum_warmup.*'sgd'"),
    (dict(early_stopping=-1), r"early_stopping.*an integer >= 0"),
    (dict(lr_decay_factor=2), r"lr_decay_factor.*\(0, 1\)"),
    (dict(augment={'shfit': 2}), r"keys from shift, rotate"),
    (dict(augment={'erase': 2.0}), r"erase is a probability"),
    (dict(shuffle='no'), r"shuffle.*True or False"),
])
def test_bad_technique_settings_are_explained(cfg, message):
    with pytest.raises(ValueError, match=message):
        validate_cfg(cfg)


def test_defaults_change_nothing_of_the_homework():
    cfg = validate_cfg({})
    assert (cfg['optimizer'], cfg['lr_schedule'], cfg['early_stopping'], cfg['dropout'], cfg['normalization'],
            cfg['augment'], cfg['shuffle'], cfg['nesterov']) == ('sgd', 'constant', 0, 0.0, 'none', None, True,
                                                                 False)


# ---------------------------------------------------------------------------
# Optimisers and schedules through the Solver
# ---------------------------------------------------------------------------

@pytest.mark.solution('mlp')
@pytest.mark.parametrize('optimizer, lr', [('sgd', 0.05), ('adagrad', 0.01), ('rmsprop', 0.001), ('adam', 0.001)])
def test_every_optimizer_trains_an_mlp(tiny_mnist, optimizer, lr):
    solver = Solver(quiet(tiny_mnist, hidden_sizes=[16], optimizer=optimizer, learning_rate=lr, max_epoch=3,
                          weight_decay=1e-4))
    solver.train()
    assert solver.history['train_loss'][-1] < 0.7 * solver.history['train_loss'][0], solver.history['train_loss']


@pytest.mark.solution('softmax')
def test_learning_rate_used_each_epoch_is_recorded(tiny_mnist):
    solver = Solver(quiet(tiny_mnist, learning_rate=0.08, max_epoch=5, lr_schedule='step', lr_decay_every=2))
    solver.train()
    assert solver.history['learning_rate'] == pytest.approx([0.08, 0.08, 0.04, 0.04, 0.02])


@pytest.mark.solution('softmax')
def test_inverse_time_decay_changes_the_rate_every_iteration(tiny_mnist):
    # lr(t) = a / (b + t), t the updates done (notes §2.5.2), a = lr0 * b.
    solver = Solver(quiet(tiny_mnist, learning_rate=0.1, max_epoch=3, lr_schedule='inverse_time',
                          inverse_time_b=12.0))
    used = []
    step = solver.optimizer.step

    def recording_step():
        used.append(solver.optimizer.learning_rate)
        step()
    solver.optimizer.step = recording_step
    solver.train()
    per_epoch = len(solver.train_loader)
    assert per_epoch > 1
    assert used == pytest.approx([0.1 * 12 / (12 + t) for t in range(3 * per_epoch)])
    assert solver.history['learning_rate'] == pytest.approx([0.1 * 12 / (12 + per_epoch * e) for e in range(3)])


@pytest.mark.solution('softmax')
def test_plateau_schedule_reads_the_validation_loss(tiny_mnist):
    # a threshold no improvement can reach: the rate halves after every epoch from the second on
    solver = Solver(quiet(tiny_mnist, learning_rate=0.01, max_epoch=4, lr_schedule='plateau',
                          plateau_threshold=100.0))
    solver.train()
    assert solver.history['learning_rate'] == pytest.approx([0.01, 0.01, 0.005, 0.0025])


@pytest.mark.solution('softmax')
def test_momentum_warmup(tiny_mnist):
    seen = []

    class Probe(object):
        def on_epoch_end(self, solver, epoch):
            seen.append(solver.optimizer.momentum)
    solver = Solver(quiet(tiny_mnist, momentum=0.9, momentum_warmup=2, max_epoch=3), callbacks=[Probe()])
    assert solver.optimizer.momentum == 0.5, "epoch 1 must already use the warm-up momentum"
    solver.train()
    assert seen == [0.5, 0.9, 0.9]     # momentum set for the NEXT epoch, after each epoch


# ---------------------------------------------------------------------------
# Early stopping
# ---------------------------------------------------------------------------

class FakeSolver(object):
    def __init__(self, model, max_epoch=10):
        self.model = model
        self.cfg = {'max_epoch': max_epoch}
        self.history = {'val_loss': []}
        self.stop_training = False


def test_early_stopping_restores_the_best_epoch_and_says_so(capsys):
    fc, bn = FCLayer(3, 2), BatchNormLayer(2)
    model = Network([fc, bn])
    solver = FakeSolver(model)
    stopper = EarlyStopping(patience=2)
    snapshots = []
    for epoch, val_loss in enumerate([1.0, 0.5, 0.7, 0.8]):
        fc.W[...] = epoch                      # the parameters of this epoch
        bn.running_mean = np.full(2, float(epoch))
        snapshots.append(fc.W.copy())
        solver.history['val_loss'].append(val_loss)
        stopper.on_epoch_end(solver, epoch)
        assert solver.stop_training == (epoch == 3)
    assert np.array_equal(fc.W, snapshots[1]), "the parameters of epoch 2 (the best) must be back"
    assert np.array_equal(bn.running_mean, [1.0, 1.0]), "layer state (running statistics) is restored too"
    assert stopper.best_epoch == 2
    assert 'restored the parameters of epoch 2' in capsys.readouterr().out


@pytest.mark.solution('mlp')
def test_early_stopping_in_the_solver_leaves_the_best_validation_model(tiny_mnist):
    class Spoiler(object):
        """After epoch 2, scramble the weights: the validation loss then gets worse."""
        def on_epoch_end(self, solver, epoch):
            if epoch == 1:
                layer = solver.model.network.layerList[0]
                layer.W[...] = np.random.default_rng(0).normal(0, 1.0, layer.W.shape)

    solver = Solver(quiet(tiny_mnist, hidden_sizes=[16], learning_rate=0.001, max_epoch=10, early_stopping=2),
                    callbacks=[Spoiler()])
    solver.train()
    val_loss = solver.history['val_loss']
    assert len(val_loss) == 4, f"patience 2 after the best epoch 2 stops after epoch 4, got {val_loss}"
    assert min(val_loss) == val_loss[1] < min(val_loss[2:])
    assert solver.validate()[0] == pytest.approx(val_loss[1], rel=1e-6), "epoch 2's parameters are restored"


# ---------------------------------------------------------------------------
# Shuffling, augmentation, modes
# ---------------------------------------------------------------------------

def _epoch_labels(loader):
    return np.concatenate([labels for _, labels in loader])


def test_shuffle_off_keeps_the_file_order(tiny_mnist):
    solver = Solver(quiet(tiny_mnist, shuffle=False))
    first, second = _epoch_labels(solver.train_loader), _epoch_labels(solver.train_loader)
    assert np.array_equal(first, solver.train_loader.dataset.labels) and np.array_equal(first, second)
    shuffled = Solver(quiet(tiny_mnist)).train_loader
    assert not np.array_equal(_epoch_labels(shuffled), _epoch_labels(shuffled))


@pytest.mark.solution('softmax')
def test_augmentation_changes_training_batches_only(tiny_mnist):
    solver = Solver(quiet(tiny_mnist, augment={'shift': 2, 'rotate': 10}))
    assert isinstance(solver.train_loader, AugmentedLoader)
    assert not isinstance(solver.val_loader, AugmentedLoader) and not isinstance(solver.test_loader,
                                                                                 AugmentedLoader)
    images, labels = next(iter(solver.train_loader))
    assert images.shape == (50, 784) and images.dtype == np.float32 and labels.shape == (50,)
    # the same seed gives the same augmented batches
    again = Solver(quiet(tiny_mnist, augment={'shift': 2, 'rotate': 10}))
    assert np.array_equal(next(iter(again.train_loader))[0], images)
    solver.train()      # trains end to end


@pytest.mark.solution('cnn', 'mlp')
def test_augmentation_of_cnn_feature_maps(tiny_mnist):
    # The CNN's batches are (N, 1, H, W); the augmenter keeps that layout.
    solver = Solver(quiet(tiny_mnist, model='cnn', conv_channels=[2], fc_sizes=[8], max_epoch=1,
                          augment={'shift': 2, 'rotate': 5}))
    images, labels = next(iter(solver.train_loader))
    assert images.shape == (50, 1, 28, 28) and labels.shape == (50,)
    solver.train()


@pytest.mark.parametrize('cfg, message', [
    (dict(test_crop='center'), r"set a crop size in cfg\['augment'\]"),
    (dict(augment={'crop': 20}, test_crop='multi'), r"'multi' averages class probabilities.*MLP or a CNN"),
    (dict(hidden_sizes=[8], augment={'crop': 20}, test_crop='five'), r"None, 'center' or 'multi'"),
    (dict(hidden_sizes=[8], augment={'crop': 29}), r"crop size must be an integer in \[1, 28\]"),
])
def test_bad_test_time_crop_settings_are_explained(cfg, message):
    with pytest.raises(ValueError, match=message):
        validate_cfg(cfg)


@pytest.mark.solution('mlp')
def test_a_model_trained_on_crops_is_evaluated_on_the_centre_or_five_crops(tiny_mnist):
    from augment import center_crop, five_crops
    from loss import softmax
    solver = Solver(quiet(tiny_mnist, hidden_sizes=[16], max_epoch=1, augment={'crop': 20}))
    images, _ = next(iter(solver.train_loader))
    assert images.shape == (50, 400)                      # random 20 x 20 windows
    assert solver.model.network.layerList[0].W.shape == (400, 16)
    solver.train()
    dataset = solver.val_loader.dataset
    squares, labels = dataset.images.reshape(-1, 28, 28), dataset.labels

    # 'center': the model sees the central window of every image
    solver.model.eval()
    centre_loss, centre_acc = solver.model.forward(center_crop(squares, 20).reshape(len(squares), -1), labels)
    assert solver.validate() == pytest.approx((centre_loss, centre_acc), rel=1e-5)

    # 'multi': probabilities averaged over the five windows, computed by hand
    solver.test_time_crops.mode = 'multi'
    solver.model.eval()
    p = np.mean([softmax(solver.model.predict(c.reshape(len(c), -1))) for c in five_crops(squares, 20)], axis=0)
    expected_loss = -np.mean(np.log(p[np.arange(len(labels)), labels]))
    expected_acc = np.mean(p.argmax(axis=1) == labels)
    assert solver.validate() == pytest.approx((expected_loss, expected_acc), rel=1e-5)


class ModeProbe(Layer):
    """Records the training flag it sees at every forward pass."""

    def __init__(self):
        self.seen = []

    def forward(self, Input):
        self.seen.append(self.training)
        return Input


@pytest.mark.solution('mlp')
def test_solver_trains_in_training_mode_and_evaluates_in_evaluation_mode(tiny_mnist):
    probe = ModeProbe()
    network = Network([probe, FCLayer(784, 10), DropoutLayer(0.5, seed=0)])
    solver = Solver(quiet(tiny_mnist, max_epoch=1), network=network)
    solver.train()
    batches = len(solver.train_loader)
    assert probe.seen[:batches] == [True] * batches
    assert probe.seen[batches:] == [False] * (len(probe.seen) - batches) and len(probe.seen) > batches
    solver.test()
    assert probe.seen[-1] is False
    # evaluation is deterministic with dropout: two evaluations agree
    assert solver.validate() == solver.validate()


@pytest.mark.solution('mlp')
def test_mlp_with_dropout_and_batch_norm_learns(tiny_mnist):
    solver = Solver(quiet(tiny_mnist, hidden_sizes=[32], dropout=0.2, normalization='batch',
                          learning_rate=0.05, max_epoch=3))
    kinds = [type(layer).__name__ for layer in solver.model.network.layerList]
    assert kinds == ['FCLayer', 'BatchNormLayer', 'ReLULayer', 'DropoutLayer', 'FCLayer']
    solver.train()
    assert solver.history['val_acc'][-1] > 0.9


def test_printed_history_shows_the_learning_rate_of_each_epoch(capsys):
    from solver import print_history
    history = {'train_loss': [1.0, 0.5], 'train_acc': [0.5, 0.8], 'val_loss': [0.9, 0.6], 'val_acc': [0.6, 0.7],
               'epoch_time': [1.0, 1.1], 'learning_rate': [0.1, 0.05]}
    print_history(history)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith('learning rate')
    assert lines[1].split()[-1] == '0.1' and lines[2].split()[-1] == '0.05'


# ---------------------------------------------------------------------------
# report/training_techniques.py keeps its runs under the report's cache key
# ---------------------------------------------------------------------------

@pytest.mark.solution('softmax', 'mlp')   # report/training_techniques.py ships with the mlp and cnn handouts
def test_saved_technique_run_is_reused_until_code_or_data_change(tiny_mnist, tmp_path, monkeypatch):
    import runs
    import training_techniques as tt

    monkeypatch.setattr(tt, 'RUNS', tmp_path / 'runs')
    monkeypatch.setattr(tt, 'DATA_ROOT', tiny_mnist)
    trained = []
    real_train = tt.Solver.train

    def counting_train(solver):
        trained.append(solver.cfg['learning_rate'])
        return real_train(solver)
    monkeypatch.setattr(tt.Solver, 'train', counting_train)
    cfg = dict(max_epoch=1, batch_size=50, learning_rate=0.05)

    first = tt.run('homework', cfg)
    assert trained == [0.05]
    assert first['key'] == runs.run_key(dict(cfg, data_root=str(tiny_mnist)),
                                        runs.data_fingerprint(tiny_mnist), runs.code_fingerprint())
    again = tt.run('homework', cfg)
    assert trained == [0.05]                                               # same key: loaded
    assert (again['key'], again['history'], again['test_acc']) == (first['key'], first['history'],
                                                                   first['test_acc'])
    assert tt.stale_runs() == []

    monkeypatch.setattr(runs, 'code_fingerprint', lambda: 'other code')
    assert tt.stale_runs() == ['homework']
    tt.run('homework', cfg)
    assert trained == [0.05, 0.05]                                         # the code changed: retrained
    tt.run('homework', dict(cfg, learning_rate=0.1))
    assert trained == [0.05, 0.05, 0.1]                                    # another cfg under the name
