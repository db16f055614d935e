"""The training recipe (tools/recipe.py, notes §4.4) on tiny data with known answers."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from tools import recipe
from tools.recipe import (CurveDiagnosis, check_initial_loss, diagnose_curves, fine_space,
                          load_results, lr_range_test, overfit_small_subset, random_search,
                          sample_hyperparameters, usable_search_space)


@pytest.fixture
def tiny_cfg(tiny_mnist):
    return {'data_root': str(tiny_mnist), 'batch_size': 20, 'seed': 0}


# ----- step 1 -----

@pytest.mark.solution('softmax')
def test_initial_loss_passes_for_the_homework_initialisation(tiny_cfg):
    check = check_initial_loss(tiny_cfg)
    assert check.passed, str(check)
    assert check.expected_loss == pytest.approx(math.log(10))
    assert check.expected_acc == pytest.approx(0.1)
    assert abs(check.loss - math.log(10)) < 0.25 * math.log(10)
    assert 'PASS' in str(check)


@pytest.mark.solution('softmax')
def test_initial_loss_fails_for_a_mis_scaled_initialisation(tiny_cfg):
    solver = recipe._solver(tiny_cfg)
    solver.model.W *= 30                      # weights 30 times too large: confident logits
    check = check_initial_loss(solver)
    assert not check.passed
    assert check.loss > 3 * math.log(10), 'the loss of large random logits is far above ln C'
    assert any('initial weights are probably too large' in cause for cause in check.causes)
    assert 'FAIL' in str(check)


class SummedLoss:
    """A model that forgets to average its loss over the batch."""

    def __init__(self, model):
        self.model = model

    def forward(self, images, labels):
        loss, acc = self.model.forward(images, labels)
        return loss * len(labels), acc


@pytest.mark.solution('softmax')
def test_initial_loss_names_a_summed_loss(tiny_cfg):
    solver = recipe._solver(tiny_cfg)
    images, labels = solver.val_loader.dataset[np.arange(50)]
    check = check_initial_loss(SummedLoss(solver.model), images, labels, num_classes=10)
    assert not check.passed
    assert 'summed over the batch instead of averaged' in check.causes[0]


# ----- step 2 -----

@pytest.mark.solution('softmax')
def test_overfit_reaches_100_percent_on_50_images(tiny_cfg):
    result = overfit_small_subset(tiny_cfg, num_images=50)
    assert result.reached and result.final_acc == 1.0 and result.num_images == 50
    assert result.epochs == len(result.losses) and result.accuracies[-1] == 1.0
    assert all(acc < 1.0 for acc in result.accuracies[:-1]), 'stops at the first 100% epoch'
    assert f'after {result.epochs} epochs' in result.message


class FrozenGradient:
    """A model whose backward pass is broken: every gradient is zero."""
    trainable = True

    def __init__(self, model):
        self.model = model
        self.W, self.b = model.W, model.b

    def forward(self, images, labels):
        return self.model.forward(images, labels)

    def gradient_computing(self):
        self.grad_W, self.grad_b = np.zeros_like(self.W), np.zeros_like(self.b)


@pytest.mark.solution('softmax')
def test_overfit_reports_a_model_that_cannot_learn(tiny_cfg):
    solver = recipe._solver(tiny_cfg)
    solver.model = FrozenGradient(solver.model)
    solver.optimizer = solver.build_optimizer(solver.model, solver.cfg)
    result = overfit_small_subset(solver, max_epochs=20)
    assert not result.reached and result.epochs == 20
    assert result.final_loss == pytest.approx(result.first_loss)
    assert 'FAIL' in result.message and 'bug in the gradient' in result.message


class Exploding(FrozenGradient):
    """A model whose loss becomes NaN once it has been updated (a stub for divergence)."""

    def forward(self, images, labels):
        loss, acc = self.model.forward(images, labels)
        return (float('nan') if hasattr(self, 'grad_W') else loss), acc


@pytest.mark.solution('softmax')
def test_overfit_reports_divergence(tiny_cfg):
    solver = recipe._solver(tiny_cfg)
    solver.model = Exploding(solver.model)
    solver.optimizer = solver.build_optimizer(solver.model, solver.cfg)
    result = overfit_small_subset(solver, max_epochs=50)
    assert not result.reached and result.epochs == 1, 'stops at the first non-finite loss'
    assert 'learning rate (0.01) is too large' in result.message


# ----- step 3 -----

@pytest.mark.solution('softmax')
def test_lr_range_test_finds_the_falling_region_and_flags_divergence(tiny_cfg, monkeypatch):
    # The tiny set is linearly separable, so no learning rate really blows up on
    # it: the largest one gets a model whose loss turns NaN after an update.
    real_fresh = recipe._fresh_model_and_optimizer

    def fresh(solver, cfg):
        model, optimizer = real_fresh(solver, cfg)
        if cfg['learning_rate'] > 1:
            model = Exploding(model)
            optimizer = solver.build_optimizer(model, cfg)
        return model, optimizer

    monkeypatch.setattr(recipe, '_fresh_model_and_optimizer', fresh)
    lrs = [1e-5, 1e-3, 1e-1, 1e6]
    result = lr_range_test(dict(tiny_cfg, momentum=0.0), learning_rates=lrs, num_batches=20)
    assert result.losses[0] > result.losses[1] > result.losses[2], 'larger steps, lower loss'
    assert result.losses[0] == pytest.approx(result.initial_loss, rel=0.1), '1e-5 barely moves'
    assert math.isinf(result.losses[3]), 'a learning rate of 1e6 diverges'
    assert result.best_lr == 0.1 and result.suggested_range == (0.1, 0.1)
    assert 'Diverged from 1e+06' in result.message


# ----- step 4: sampling -----

def test_sampling_is_log_uniform_against_the_formula():
    space = {'learning_rate': (1e-4, 1.0, 'log'), 'momentum': (0.5, 0.99, 'log1m'),
             'batch_size': (16, 512, 'log2int')}
    samples = sample_hyperparameters(space, 4000, seed=3)
    # The formula, drawn independently: keys in sorted order, one uniform column each.
    rng = np.random.default_rng(3)
    batch = np.rint(2.0 ** rng.uniform(4, 9, 4000))
    lr = 10.0 ** rng.uniform(-4, 0, 4000)
    momentum = 1 - 10.0 ** rng.uniform(np.log10(0.01), np.log10(0.5), 4000)
    assert [s['batch_size'] for s in samples] == list(batch.astype(int))
    assert np.allclose([s['learning_rate'] for s in samples], lr)
    assert np.allclose([s['momentum'] for s in samples], momentum)

    # and the distribution: quantiles of log10(lr) are those of U(-4, 0)
    log_lr = np.log10([s['learning_rate'] for s in samples])
    q = np.linspace(0.05, 0.95, 19)
    assert np.allclose(np.quantile(log_lr, q), -4 + 4 * q, atol=0.1)
    log_1m = np.log10([1 - s['momentum'] for s in samples])
    assert np.allclose(np.quantile(log_1m, q), -2 + np.log10(50) * q, atol=0.1)
    assert min(s['batch_size'] for s in samples) >= 16 and max(s['batch_size'] for s in samples) <= 512
    assert all(isinstance(s['batch_size'], int) for s in samples[:5])


def test_sampling_is_reproducible_under_a_seed():
    space = recipe.SEARCH_SPACE
    assert sample_hyperparameters(space, 5, seed=7) == sample_hyperparameters(space, 5, seed=7)
    assert sample_hyperparameters(space, 5, seed=7) != sample_hyperparameters(space, 5, seed=8)
    reordered = dict(reversed(list(space.items())))
    assert sample_hyperparameters(reordered, 5, seed=7) == sample_hyperparameters(space, 5, seed=7)


def test_fine_space_is_a_narrower_range_around_the_best():
    space = {'learning_rate': (1e-4, 1.0, 'log'), 'momentum': (0.5, 0.99, 'log1m')}
    fine = fine_space(space, {'learning_rate': 1e-2, 'momentum': 0.9}, shrink=0.25)
    # log10 width 4 -> 1, centred on -2
    assert fine['learning_rate'][:2] == pytest.approx((10 ** -2.5, 10 ** -1.5))
    half = 0.25 * np.log10(50) / 2            # log10(1 - m) spans log10(0.01) .. log10(0.5)
    assert fine['momentum'][:2] == pytest.approx((1 - 10 ** (-1 + half), 1 - 10 ** (-1 - half)))
    # a best value at the edge: the fine range stays inside the coarse one
    edge = fine_space(space, {'learning_rate': 1.0, 'momentum': 0.9}, shrink=0.25)
    assert edge['learning_rate'][:2] == pytest.approx((10 ** -1, 1.0))
    # a key the coarse round did not search (its value outside the range) keeps its range
    unsearched = fine_space(space, {'learning_rate': 1e-2, 'momentum': 0.0})
    assert unsearched['momentum'] == space['momentum']


def test_keys_the_solver_does_not_accept_are_skipped_with_a_note():
    schema = {'learning_rate': None, 'momentum': None, 'dropout': None}
    usable, notes = usable_search_space(recipe.SEARCH_SPACE, {'hidden_sizes': []}, schema)
    assert set(usable) == {'learning_rate', 'momentum'}
    assert any(n.startswith('batch_size: not a Solver cfg key') for n in notes)
    assert any(n.startswith('dropout: the model has no hidden layer') for n in notes)
    usable, _ = usable_search_space(recipe.SEARCH_SPACE, {'hidden_sizes': [16]}, schema)
    assert 'dropout' in usable


# ----- step 4: running, resuming, merging -----

SMALL_SPACE = {'learning_rate': (1e-3, 1e-1, 'log'), 'batch_size': (16, 64, 'log2int')}


@pytest.mark.solution('softmax')
def test_search_resumes_without_rerunning_finished_trials(tiny_cfg, tmp_path, monkeypatch):
    results = tmp_path / 'search.jsonl'
    calls = []
    real_run_trial = recipe.run_trial

    def counting_run_trial(cfg):
        calls.append(cfg)
        return real_run_trial(cfg)

    monkeypatch.setattr(recipe, 'run_trial', counting_run_trial)
    kwargs = dict(space=SMALL_SPACE, coarse_trials=3, fine_trials=2, coarse_epochs=1,
                  fine_epochs=2, seed=0, workers=0, log=lambda *a, **k: None)
    first = random_search(tiny_cfg, results, **kwargs)
    assert len(calls) == 5 and len(first.trials) == 5
    assert len(results.read_text().splitlines()) == 5
    assert first.best in [t for t in first.trials if t['round'] == 'fine']
    assert first.best['val_acc'] == max(t['val_acc'] for t in first.trials if t['round'] == 'fine')
    csv_lines = results.with_suffix('.csv').read_text().splitlines()
    assert csv_lines[0].startswith('round,key,learning_rate,batch_size') and len(csv_lines) == 6

    # A rerun runs nothing and finds the same.
    calls.clear()
    again = random_search(tiny_cfg, results, **kwargs)
    assert calls == [] and again.best == first.best

    # An interrupted write (half a line) reruns that trial only.
    lines = results.read_text().splitlines(keepends=True)
    results.write_text(''.join(lines[:3]) + lines[3][:40])
    resumed = random_search(tiny_cfg, results, **kwargs)
    assert len(calls) == 2, 'the cut line and the one never written are rerun'
    assert resumed.best['key'] == first.best['key']
    assert resumed.best['val_acc'] == first.best['val_acc'], 'same seed, same result'
    assert len(load_results(results)) == 5


@pytest.mark.solution('softmax')
def test_worker_processes_run_trials_with_one_blas_thread(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '4')     # the workers must not inherit this
    settings = sample_hyperparameters(SMALL_SPACE, 3, seed=1)
    trials = recipe.make_trials(tiny_cfg, settings, 'coarse', max_epoch=1)
    results = recipe.run_trials(trials, tmp_path / 'r.jsonl', workers=2, log=lambda *a: None)
    assert set(results) == {t['key'] for t in trials}
    assert all(r['blas_threads'] == '1' for r in results.values())
    assert all(r['status'] == 'ok' and 0 <= r['val_acc'] <= 1 for r in results.values())
    # the same trial in this process gives the same validation accuracy
    same = recipe.run_trial(trials[0]['cfg'])
    assert same['val_acc'] == results[trials[0]['key']]['val_acc']


@pytest.mark.solution('softmax')
def test_emitted_commands_run_anywhere_and_merge(tiny_cfg, tmp_path):
    settings = sample_hyperparameters(SMALL_SPACE, 2, seed=2)
    trials = recipe.make_trials(tiny_cfg, settings, 'coarse', max_epoch=1)
    commands = tmp_path / 'trials.sh'
    results = tmp_path / 'search.jsonl'
    count = recipe.emit_commands(trials, commands, tmp_path / 'out', results,
                                 python=sys.executable)
    lines = commands.read_text().splitlines()
    assert count == 2 and len(lines) == 2
    assert all(line.startswith('OPENBLAS_NUM_THREADS=1 ') for line in lines)
    for line in lines:             # what one task of a job array does
        subprocess.run(['bash', '-c', line], check=True, cwd=tmp_path)
    files = sorted((tmp_path / 'out').glob('trial-*.json'))
    assert sorted(f.name for f in files) == sorted(f"trial-{t['key']}.json" for t in trials)
    assert recipe.merge_results(files, results) == 2
    assert recipe.merge_results(files, results) == 0, 'merging twice adds nothing'
    assert set(load_results(results)) == {t['key'] for t in trials}
    assert recipe.emit_commands(trials, commands, tmp_path / 'out', results) == 0
    assert json.loads(files[0].read_text())['history']['val_acc']

    # The fine round's commands, around the best merged coarse trial.
    fine = tmp_path / 'fine.sh'
    recipe.main(['search', '--data_root', tiny_cfg['data_root'], '--results', str(results),
                 '--round', 'fine', '--fine', '3', '--emit-commands', str(fine),
                 '--trial-dir', str(tmp_path / 'out')])
    lines = fine.read_text().splitlines()
    assert len(lines) == 3 and all(' trial --round fine ' in line for line in lines)
    assert all('"max_epoch": 10' in line for line in lines)


# ----- bad input: one line naming the file and line, before anything trains or is appended -----

def fake_result(cfg_base, seed=0, val_acc=0.5, learning_rate=0.01):
    """A trial result as run_trial writes it, without training (the checks read its form only)."""
    trial = recipe.make_trials(dict(cfg_base, seed=seed), [{'learning_rate': learning_rate}], 'coarse', 1)[0]
    return dict(trial, status='ok', val_acc=val_acc, val_loss=0.5, train_acc=0.5, best_val_acc=val_acc,
                epochs=1, seconds=0.1, history={'val_acc': [val_acc]})


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if a trial trains; returns the list of cfgs it was asked to train."""
    calls = []
    monkeypatch.setattr(recipe, 'run_trial', lambda cfg: calls.append(cfg) or pytest.fail('a trial trained'))
    return calls


def one_line_exit(argv):
    """Run the command line; return its one-line error (SystemExit)."""
    with pytest.raises(SystemExit) as stopped:
        recipe.main(argv)
    message = str(stopped.value.code)
    assert '\n' not in message and message.startswith('error: '), message
    return message


@pytest.mark.parametrize('option, value', [('--coarse', '0'), ('--fine', '0'), ('--workers', '-1'),
                                           ('--coarse', 'many')])
def test_bad_counts_are_one_line_argparse_errors(tiny_cfg, tmp_path, capsys, option, value, no_training):
    with pytest.raises(SystemExit) as stopped:
        recipe.main(['search', '--data_root', tiny_cfg['data_root'], '--results', str(tmp_path / 'r.jsonl'),
                     option, value])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}: must be an integer >= " in error and repr(value) in error
    for kwargs in ({'coarse_trials': 0}, {'fine_trials': 0}, {'workers': -1}):
        with pytest.raises(ValueError, match=f"{next(iter(kwargs))} must be an integer >= "):
            random_search(tiny_cfg, tmp_path / 'r.jsonl', **kwargs)
    assert not (tmp_path / 'r.jsonl').exists()


@pytest.mark.parametrize('bad_line, message', [
    (b'\x89PNG\r\x00\xff garbage', 'not text'),
    (b'{"key": 12, "round": oops}', 'not a JSON line'),
    (b'["a list"]', 'not a trial result (a JSON object expected'),
    (None, 'not a trial result: it has no val_acc'),
    ('string', "val_acc must be a number between 0 and 1 or null, got '0.9'"),
])
def test_a_bad_results_line_is_named_with_its_line_before_anything_trains(tiny_cfg, tmp_path, no_training,
                                                                          bad_line, message):
    good = fake_result(tiny_cfg)
    if bad_line is None:
        bad = dict(fake_result(tiny_cfg, learning_rate=0.02))
        del bad['val_acc']
        bad_line = json.dumps(bad).encode()
    elif bad_line == 'string':
        bad_line = json.dumps(dict(fake_result(tiny_cfg, learning_rate=0.02), val_acc='0.9')).encode()
    results = tmp_path / 'search.jsonl'
    results.write_bytes(json.dumps(good).encode() + b'\n' + bad_line + b'\n')
    before = results.read_bytes()
    with pytest.raises(recipe.ResultsError, match='^' + re.escape(f"{results}:2: {message}")):
        load_results(results)
    with pytest.raises(recipe.ResultsError):
        random_search(tiny_cfg, results, space=SMALL_SPACE, coarse_trials=2, fine_trials=1, workers=0,
                      log=lambda *a: None)
    assert results.read_bytes() == before and no_training == []
    error = one_line_exit(['search', '--data_root', tiny_cfg['data_root'], '--results', str(results),
                           '--workers', '0'])
    assert f"{results}:2: " in error


def test_merge_checks_every_file_before_appending_any(tiny_cfg, tmp_path):
    results = tmp_path / 'search.jsonl'
    files = []
    for name, content in (('good.json', json.dumps(fake_result(tiny_cfg))), ('notjson.json', '{"key": '),
                          ('keyless.json', json.dumps({'val_acc': 0.5}))):
        files.append(tmp_path / name)
        files[-1].write_text(content)
    with pytest.raises(recipe.ResultsError, match=r"notjson.json:1: not a trial result file"):
        recipe.merge_results(files, results)
    with pytest.raises(recipe.ResultsError, match=r"keyless.json: not a trial result: it has no key, round"):
        recipe.merge_results([files[0], files[2]], results)
    assert not results.exists(), 'nothing is appended when one file is bad'
    assert 'keyless.json' in one_line_exit(['merge', str(files[0]), str(files[2]), '--results', str(results)])
    assert recipe.merge_results([files[0]], results) == 1


@pytest.mark.parametrize('change, named', [
    ({'seed': 1}, 'seed 1 against 0'),
    ({'normalize': 'standardize'}, "normalize 'standardize' against 'image_mean'"),
    ({'hidden_sizes': [16]}, 'hidden_sizes [16] against []'),
])
def test_trials_of_another_setup_are_refused_with_the_difference_named(tiny_cfg, tmp_path, no_training, change,
                                                                       named):
    results = tmp_path / 'search.jsonl'
    recipe.append_result(results, fake_result(tiny_cfg))
    other = dict(fake_result(dict(tiny_cfg, **{k: v for k, v in change.items() if k != 'seed'}),
                             seed=change.get('seed', 0), learning_rate=0.03))
    (tmp_path / 'other.json').write_text(json.dumps(other))
    with pytest.raises(recipe.ResultsError, match=re.escape(f"other.json: another setup than {results} (") + f".*{re.escape(named)}"):
        recipe.merge_results([tmp_path / 'other.json'], results)
    # a search with that setup into this file stops before training
    trials = recipe.make_trials(other['cfg'], [{'learning_rate': 0.05}], 'coarse', 1)
    with pytest.raises(recipe.ResultsError, match=re.escape(named)):
        recipe.run_trials(trials, results, workers=0, log=lambda *a: None)
    assert len(results.read_text().splitlines()) == 1 and no_training == []


def test_an_unwritable_trial_directory_is_refused_before_training(tiny_cfg, tmp_path, no_training):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    cfg = json.dumps(fake_result(tiny_cfg)['cfg'])
    error = one_line_exit(['trial', '--cfg', cfg, '--out', str(blocker / 'trial.json')])
    assert 'the trial result file' in error and 'cannot be written' in error
    error = one_line_exit(['search', '--data_root', tiny_cfg['data_root'], '--results', str(tmp_path / 'r.jsonl'),
                           '--round', 'coarse', '--emit-commands', str(tmp_path / 'c.sh'),
                           '--trial-dir', str(blocker / 'out')])
    assert 'the trial directory' in error and not (tmp_path / 'c.sh').exists()
    error = one_line_exit(['all', '--data_root', tiny_cfg['data_root'], '--out', str(blocker / 'recipe')])
    assert 'the output folder' in error
    assert no_training == []


@pytest.mark.solution('softmax')
def test_a_search_result_that_cannot_be_appended_is_printed_not_lost(tiny_cfg, tmp_path, monkeypatch):
    def full_disk(path, result):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(recipe, 'append_result', full_disk)
    trials = recipe.make_trials(tiny_cfg, [{'learning_rate': 0.05}], 'coarse', 1)
    printed = []
    with pytest.raises(recipe.ResultsError, match='1 result.* could not be appended .* printed above'):
        recipe.run_trials(trials, tmp_path / 'r.jsonl', workers=0, log=printed.append)
    message = next(str(m) for m in printed if 'the result, to add as a line: ' in str(m))
    line = json.loads(message.split('the result, to add as a line: ')[1])
    recipe.check_result(line, 'the printed line')
    assert line['key'] == trials[0]['key']


@pytest.mark.solution('softmax')
def test_a_trial_result_that_cannot_be_written_is_printed_not_lost(tiny_cfg, tmp_path, monkeypatch, capsys):
    def failing_write(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(recipe, 'atomic_write', failing_write)
    cfg = recipe.make_trials(tiny_cfg, [{'learning_rate': 0.05}], 'coarse', 1)[0]['cfg']
    error = one_line_exit(['trial', '--cfg', json.dumps(cfg), '--out', str(tmp_path / 'trial.json')])
    assert 'could not be written' in error and 'printed above' in error
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    recipe.check_result(printed, 'the printed line')
    assert printed['cfg'] == cfg and 0 <= printed['val_acc'] <= 1


# ----- step 5 -----

def history(train_acc, val_acc, train_loss, val_loss):
    return {'train_acc': train_acc, 'val_acc': val_acc, 'train_loss': train_loss,
            'val_loss': val_loss}


def test_diagnosis_overfitting_names_the_gap_and_the_turn():
    found = diagnose_curves(history([0.90, 0.96, 0.99, 1.00], [0.90, 0.93, 0.93, 0.92],
                                    [0.5, 0.2, 0.05, 0.01], [0.40, 0.30, 0.32, 0.36]))
    assert isinstance(found, CurveDiagnosis) and found.verdict == 'overfitting'
    assert found.numbers['gap'] == pytest.approx(0.08)
    assert found.numbers['min_val_loss_epoch'] == 2
    assert found.numbers['val_loss_rise'] == pytest.approx(0.36 / 0.30 - 1)
    assert 'gap 8.00 points' in found.message and 'lowest at epoch 2' in found.message


def test_diagnosis_a_creeping_loss_with_rising_accuracy_is_not_overfitting():
    found = diagnose_curves(history([0.90, 0.91, 0.915, 0.92], [0.91, 0.925, 0.93, 0.935],
                                    [0.4, 0.33, 0.31, 0.30], [0.30, 0.28, 0.283, 0.286]))
    assert found.numbers['val_loss_rise'] == pytest.approx(0.286 / 0.28 - 1)   # +2.1%
    assert found.verdict == 'still improving'


def test_diagnosis_still_improving():
    found = diagnose_curves(history([0.80, 0.85, 0.88], [0.81, 0.86, 0.89],
                                    [0.9, 0.6, 0.45], [0.8, 0.55, 0.42]))
    assert found.verdict == 'still improving'
    assert found.numbers['val_acc_gain_per_epoch'] == pytest.approx(0.04)


def test_diagnosis_underfitting_and_good_fit():
    flat = history([0.900, 0.901, 0.901], [0.905, 0.905, 0.905], [0.35, 0.35, 0.35],
                   [0.33, 0.33, 0.33])
    found = diagnose_curves(flat)
    assert found.verdict == 'underfitting' and found.numbers['gap'] == pytest.approx(-0.004)
    perfect = history([1.0, 1.0, 1.0], [0.995, 0.995, 0.995], [0.01, 0.01, 0.01],
                      [0.02, 0.02, 0.02])
    assert diagnose_curves(perfect).verdict == 'good fit'
    assert diagnose_curves(history([0.5, 0.1], [0.5, 0.1], [1.0, float('nan')],
                                   [1.0, 1.0])).verdict == 'diverged'
    with pytest.raises(ValueError, match='at least 2 epochs'):
        diagnose_curves(history([0.5], [0.5], [1.0], [1.0]))


# ----- training with callbacks, and the notebook -----

@pytest.mark.solution('softmax')
def test_live_curves_follow_a_real_training_run(tiny_cfg, capsys):
    from visualize import LiveCurves

    live = LiveCurves(display=False)
    solver = recipe.Solver(dict(tiny_cfg, max_epoch=3, verbose=False), callbacks=[live])
    solver.train()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(':')[0] for line in lines] == ['epoch 1', 'epoch 2', 'epoch 3']
    assert lines[2].endswith(f"val acc {solver.history['val_acc'][2]:.4f}")


@pytest.mark.solution('softmax')
def test_recipe_notebook_runs_headless(tiny_mnist, tmp_path):
    nbformat = pytest.importorskip('nbformat')
    nbclient = pytest.importorskip('nbclient')
    notebook = nbformat.read(recipe.REPO_ROOT / 'recipe.ipynb', as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells)
              if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, "recipe.ipynb needs exactly one cell tagged 'parameters'"
    fast = (f"data_root = {str(tiny_mnist)!r}\nout_dir = {str(tmp_path / 'out')!r}\nworkers = 0\n"
            f"coarse_trials, fine_trials = 3, 2\ncoarse_epochs, fine_epochs = 1, 2\n"
            f"mlp_epochs = 1\ndeep_iterations = 2\n")
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(fast))
    nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                            resources={'metadata': {'path': str(recipe.REPO_ROOT)}}).execute()

    text = '\n'.join(''.join(o.get('text', '') for o in cell.get('outputs', []))
                     for cell in notebook.cells if cell.cell_type == 'code')
    assert 'PASS: the untrained model predicts about uniformly' in text
    assert 'FAIL: the untrained model does not behave like chance' in text
    assert 'PASS: 100% training accuracy on 50 images' in text
    assert 'Suggested range' in text and 'best setting: val' in text
    assert 'test accuracy of the best setting' in text
    images = [o for cell in notebook.cells if cell.cell_type == 'code'
              for o in cell.outputs if 'image/png' in o.get('data', {})]
    assert len(images) == 8, f'lr range, search, live curves and five pictures; got {len(images)}'
    assert 'MLP 784-64-10 after 1 epochs' in text and 'layer-1 / layer-7 gradient norm' in text
    for name in ('lr_range', 'search', 'curves', 'templates', 'confusion', 'misclassified',
                 'mlp_first_layer', 'layer_statistics'):
        assert (tmp_path / 'out' / f'{name}.png').stat().st_size > 1000
    assert len(load_results(tmp_path / 'out' / 'search.jsonl')) == 6     # 3 + 2 + the default


@pytest.mark.solution('softmax', 'mlp')
def test_deep_network_experiment_shows_vanishing_gradients_and_bad_initialisation(tiny_mnist):
    found = recipe.deep_network_experiment(str(tiny_mnist), depth=6, width=64, num_iterations=1,
                                           record_every=1)
    at_start = {label: {key: np.asarray(values[0]) for key, values in stats.history.items()
                        if key != 'step'} for label, stats in found.items()}
    assert set(at_start) == set(recipe.DEEP_SETTINGS)
    sigmoid, gaussian = at_start['sigmoid, Xavier'], at_start['ReLU, Gaussian 0.01']
    msra = at_start['ReLU, MSRA']
    assert len(sigmoid['grad_norm']) == 7                 # 6 hidden layers and the output layer
    # §2.3.5: through sigmoids the gradient shrinks layer by layer towards the input
    # (from layer 2 up: layer 1's input is the image, not a sigmoid output, so its scale differs)
    assert np.all(np.diff(sigmoid['grad_norm'][1:]) > 0)
    assert sigmoid['grad_norm'][-1] / sigmoid['grad_norm'][0] > 100
    # §2.5.1: with std 0.01 every ReLU layer shrinks the activations (by about 0.01 * sqrt(64 / 2))
    assert np.all(np.diff(gaussian['act_std'][1:]) < 0)
    assert gaussian['act_std'][1] / gaussian['act_std'][-1] > 1e4
    # MSRA keeps their spread: the hidden layers' stds within a factor of 2 of each other
    assert msra['act_std'][1:].max() / msra['act_std'][1:].min() < 2


@pytest.mark.solution('softmax', 'mlp')
def test_recipe_steps_work_for_an_mlp(tiny_cfg):
    cfg = dict(tiny_cfg, hidden_sizes=[32], learning_rate=0.1)
    assert check_initial_loss(cfg).passed
    assert overfit_small_subset(cfg, num_images=50).reached
    result = lr_range_test(cfg, learning_rates=[1e-3, 1e-1], num_batches=10)
    assert result.best_lr == 0.1 and result.losses[1] < result.losses[0]
    solver = recipe._solver(cfg)
    probabilities = recipe.predict_proba(solver.model, solver.val_loader.dataset.images)
    assert probabilities.shape == (50, 10) and np.allclose(probabilities.sum(axis=1), 1)
    usable, notes = usable_search_space(recipe.SEARCH_SPACE, cfg)
    assert 'weight_decay' in usable


@pytest.mark.solution('mlp')
def test_layer_statistics_against_a_hand_computed_forward_and_backward():
    from layers import Classifier, FCLayer, Network, ReLULayer
    from loss import SoftmaxCrossEntropyLossLayer
    from visualize import LayerStatistics

    rng = np.random.default_rng(5)
    x, labels = rng.normal(size=(30, 12)), rng.integers(0, 4, size=30)
    np.random.seed(0)
    network = Network([FCLayer(12, 8, init='msra', input_grad=False), ReLULayer(), FCLayer(8, 4)])
    model = Classifier(network, SoftmaxCrossEntropyLossLayer())
    stats = LayerStatistics(x, labels)
    stats.record(model, step=7)

    W1, b1 = network.layerList[0].W, network.layerList[0].b
    W2, b2 = network.layerList[2].W, network.layerList[2].b
    h = np.maximum(x @ W1 + b1, 0)                        # the input of the second FC layer
    logits = h @ W2 + b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta2 = (p - np.eye(4)[labels]) / len(x)              # notes §2.3.4
    delta1 = (delta2 @ W2.T) * (h > 0)
    history = stats.history
    assert history['step'] == [7]
    assert history['loss'][0] == pytest.approx(-np.mean(np.log(p[np.arange(30), labels])))
    assert history['act_mean'][0] == pytest.approx([x.mean(), h.mean()])
    assert history['act_std'][0] == pytest.approx([x.std(), h.std()])
    assert history['grad_norm'][0] == pytest.approx([np.linalg.norm(x.T @ delta1),
                                                     np.linalg.norm(h.T @ delta2)])
