"""Tests of report/make_report.py: the PDF, results.json, the cache and the observations.

Most tests run the --quick report on the tiny synthetic data set of
conftest.py (a few seconds); one runs the real --quick on the shipped MNIST.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]

import make_report  # noqa: E402
import observations  # noqa: E402
import runs  # noqa: E402
import solver  # noqa: E402


def quick_args(data, out, cache, *extra):
    return ['--quick', '--data-root', str(data), '--out-dir', str(out),
            '--cache-dir', str(cache), *extra]


def pdf_page_count(pdf_bytes):
    """Number of page objects: '/Type /Page' not followed by 's' (that is /Pages)."""
    return len(re.findall(rb'/Type\s*/Page(?!s)', pdf_bytes))


@pytest.fixture(scope='module')
def tiny_report(tmp_path_factory):
    """The --quick report of the tiny data set, built once for this module."""
    root = tmp_path_factory.mktemp('report')
    data = make_tiny_mnist(root / 'mnist')
    out, cache = root / 'out', root / 'cache'
    results = make_report.main(quick_args(data, out, cache))
    return {'data': data, 'out': out, 'cache': cache, 'results': results}


def entries_of(results, experiment):
    return [{'label': run['label'], 'value': run['value'],
             'summary': results['runs'][run['key']]['summary']} for run in experiment['runs']]


# ---------------------------------------------------------------------------
# The PDF and the files beside it
# ---------------------------------------------------------------------------

def test_quick_report_is_a_valid_multipage_pdf(tiny_report):
    pdf = (tiny_report['out'] / 'report.pdf').read_bytes()
    assert pdf.startswith(b'%PDF-')
    assert pdf.rstrip().endswith(b'%%EOF')
    pages = tiny_report['results']['pages']
    assert pdf_page_count(pdf) == len(pages) >= 5
    assert b'MNIST homework report' in pdf                 # the PDF's Title metadata


def test_report_has_the_expected_sections_and_figures(tiny_report):
    results, out = tiny_report['results'], tiny_report['out']
    pages = results['pages']
    assert pages[0] == 'Title and setup'
    sections = [make_report.SECTION_A, make_report.SECTION_B, make_report.SECTION_C]
    first_page_of = [next(i for i, p in enumerate(pages) if p.startswith(s)) for s in sections]
    assert first_page_of == sorted(first_page_of)            # (a), (b), (c) in order
    for experiment in make_report.EXPERIMENTS:                 # one page per experiment
        assert f'{experiment.section}: {experiment.title}' in pages
    # one per experiment, and the three pictures of the momentum run (model_pictures.py)
    assert len(results['figures']) == len(make_report.EXPERIMENTS) + 3
    for name in results['figures']:
        assert (out / name).read_bytes().startswith(b'\x89PNG')
    assert (out / 'results.json').exists()


def test_results_file_contains_every_run(tiny_report):
    results = json.loads((tiny_report['out'] / 'results.json').read_text())
    data_fp = runs.data_fingerprint(tiny_report['data'])
    code_fp = runs.code_fingerprint()
    expected_keys = set()
    assert [e['name'] for e in results['experiments']] == [e.name for e in make_report.EXPERIMENTS]
    for spec, experiment in zip(make_report.EXPERIMENTS, results['experiments']):
        planned = spec.runs(quick=True)
        assert [r['label'] for r in experiment['runs']] == [label for label, _, _ in planned]
        for (label, value, cfg), run in zip(planned, experiment['runs']):
            key = runs.run_key(dict(cfg, data_root=str(tiny_report['data'])), data_fp, code_fp)
            assert run['key'] == key
            expected_keys.add(key)
    assert set(results['runs']) == expected_keys
    assert results['timing']['runs'] == len(expected_keys)
    for key, run in results['runs'].items():
        epochs = run['cfg']['max_epoch']
        assert epochs == make_report.QUICK_EPOCHS
        assert run['status'] in runs.STATUS_MEANING
        for name in ('train_loss', 'train_acc', 'val_loss', 'val_acc', 'epoch_time'):
            assert len(run['history'][name]) == epochs
        assert 0 <= run['test_acc'] <= 1
        assert run['summary']['sec_per_epoch'] > 0
        assert run['used_by']


# ---------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------

def test_times_are_cpu_seconds_of_each_epochs_training(tiny_report):
    # One BLAS thread: the CPU time of an epoch's updates cannot exceed their
    # wall-clock time, which excludes validation (a CPU clock that also counted
    # the validation would exceed it).
    for key, run in tiny_report['results']['runs'].items():
        record = runs.load_cached(tiny_report['cache'], key)
        cpu, wall = record['epoch_cpu_time'], record['history']['epoch_time']
        assert len(cpu) == len(wall) == run['summary']['epochs_completed']
        assert all(0 < c <= 1.05 * w + 0.005 for c, w in zip(cpu, wall)), (cpu, wall)
        assert run['summary']['sec_per_epoch'] == float(np.median(cpu))
        assert run['summary']['wall_sec_per_epoch'] == float(np.median(wall))


def test_cached_rerun_does_no_training(tiny_report, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError('a cached rerun must not train')
    monkeypatch.setattr(solver.Solver, 'train', no_training)
    monkeypatch.setattr(runs, 'train_run', no_training)

    again = make_report.main(quick_args(tiny_report['data'], tmp_path / 'out',
                                        tiny_report['cache']))
    first = tiny_report['results']
    assert again['timing']['trained'] == 0
    assert again['timing']['cached'] == first['timing']['runs']
    assert again['runs'].keys() == first['runs'].keys()
    for key, run in first['runs'].items():
        assert again['runs'][key]['history'] == run['history']
        assert again['runs'][key]['test_acc'] == run['test_acc']
    assert again['experiments'] == first['experiments']      # same observations
    assert (tmp_path / 'out' / 'report.pdf').read_bytes().startswith(b'%PDF-')


def small_experiments():
    return [make_report.Experiment('default', make_report.SECTION_A, 'Default', label='default'),
            make_report.Experiment('lr', make_report.SECTION_C, 'Learning rate',
                                   vary='learning_rate', values=[0.001, 0.01, 0.1])]


def counting_train_run(monkeypatch, fail_at=None):
    """Count calls of runs.train_run; raise KeyboardInterrupt on call `fail_at`."""
    calls = []
    real = runs.train_run

    def train_run(cfg):
        calls.append(cfg['learning_rate'])
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(cfg)
    monkeypatch.setattr(runs, 'train_run', train_run)
    return calls


def test_interrupted_regeneration_resumes_where_it_stopped(tmp_path, monkeypatch):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    args = quick_args(data, tmp_path / 'out', tmp_path / 'cache', '--jobs', '1')   # runs in this process
    calls = counting_train_run(monkeypatch, fail_at=3)
    with pytest.raises(SystemExit) as stopped:
        make_report.main(args, experiments=small_experiments())
    assert stopped.value.code == 130
    assert len(list((tmp_path / 'cache').glob('run-*.json'))) == 2
    assert not (tmp_path / 'out' / 'report.pdf').exists()

    calls = counting_train_run(monkeypatch)
    results = make_report.main(args, experiments=small_experiments())
    assert len(calls) == 1                                     # only the missing run
    assert results['timing'] == dict(results['timing'], runs=3, trained=1, cached=2)

    calls = counting_train_run(monkeypatch)
    results = make_report.main(args + ['--force'], experiments=small_experiments())
    assert len(calls) == 3 and results['timing']['trained'] == 3


def without_timings(results):
    """results['runs'] less what depends on the machine (seconds, load, dates)."""
    machine_bound = ('epoch_time', 'sec_per_epoch', 'wall_sec_per_epoch', 'train_seconds',
                     'seconds_to_target', 'finished_at')
    return {key: {name: ({k: v for k, v in value.items() if k not in machine_bound}
                         if isinstance(value, dict) else value)
                  for name, value in run.items() if name not in machine_bound}
            for key, run in results['runs'].items()}


def test_runs_in_worker_processes_give_the_numbers_of_one_process(tmp_path):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    serial = make_report.main(quick_args(data, tmp_path / 'out1', tmp_path / 'cache1', '--jobs', '1'),
                              experiments=small_experiments())
    parallel = make_report.main(quick_args(data, tmp_path / 'out2', tmp_path / 'cache2', '--jobs', '2'),
                                experiments=small_experiments())
    assert serial['timing']['jobs'] == 1 and parallel['timing']['jobs'] == 2
    assert parallel['timing']['trained'] == serial['timing']['trained'] == 3
    assert without_timings(parallel) == without_timings(serial)
    histories = [run['history']['train_loss'] for run in serial['runs'].values()]
    assert len({tuple(h) for h in histories}) == 3          # three different runs, not one thrice
    for key in serial['runs']:                              # each worker cached what it trained
        assert runs.load_cached(tmp_path / 'cache2', key)['history']['iter_loss'] == \
            runs.load_cached(tmp_path / 'cache1', key)['history']['iter_loss']


def test_plots_are_drawn_as_soon_as_their_runs_are_in(tmp_path, monkeypatch):
    """Each experiment is handed to draw_ahead once, when its last run is in (with
    workers, while the others still train); writing the PDF then draws no plot again."""
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    ready, drawn = [], []
    real_draw_ahead, real_plots_png = make_report.draw_ahead, make_report.pages.plots_png

    def recording_draw_ahead(cache_dir):
        draw = real_draw_ahead(cache_dir)

        def when_ready(experiment, page_runs, records):
            ready.append((experiment.name, len(records), [run['label'] for run in page_runs]))
            draw(experiment, page_runs, records)
        return when_ready

    def recording_plots_png(*args, **kwargs):
        png, was_drawn = real_plots_png(*args, **kwargs)
        drawn.append(was_drawn)
        return png, was_drawn
    monkeypatch.setattr(make_report, 'draw_ahead', recording_draw_ahead)
    monkeypatch.setattr(make_report.pages, 'plots_png', recording_plots_png)

    # One process: the runs train in order, the default run (= lr 0.01) first.
    make_report.main(quick_args(data, tmp_path / 'out', tmp_path / 'cache', '--jobs', '1'),
                     experiments=small_experiments())
    assert ready == [('default', 1, ['default']), ('lr', 3, ['learning_rate = 0.001', 'learning_rate = 0.01',
                                               'learning_rate = 0.1'])]
    assert drawn == [True, True, False, False]     # ahead, then placed from the figure cache


@pytest.mark.skipif(not (REPO_ROOT / 'data' / 'train-images-idx3-ubyte.gz').exists(),
                    reason='the shipped MNIST files are not in data/')
def test_ctrl_c_stops_the_workers_and_keeps_the_finished_runs(tmp_path):
    import signal
    cache = tmp_path / 'cache'
    report = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / 'report' / 'make_report.py'), '--assignment', 'softmax',
         '--out-dir', str(tmp_path / 'out'), '--cache-dir', str(cache), '--jobs', '2'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=dict(os.environ, OPENBLAS_NUM_THREADS='1'))
    finished = []
    for line in report.stdout:                   # wait until a worker has finished a run
        if re.match(r'^\[ ?\d+/\d+\] .*epochs in', line):
            finished.append(line)
            break
    assert finished, report.stderr.read()
    os.killpg(report.pid, signal.SIGINT)         # Ctrl-C reaches every process of the terminal
    out, err = report.communicate(timeout=120)
    assert report.returncode == 130, err
    assert 'Interrupted. Finished runs are cached' in err and 'Traceback' not in err, err
    assert not (tmp_path / 'out' / 'report.pdf').exists()
    saved = list(cache.glob('run-*.json'))
    assert 1 <= len(saved) < 12
    assert all(runs.load_cached(cache, path.stem[len('run-'):]) is not None for path in saved)


def test_bad_number_of_jobs_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_report.parse_args(['--jobs', '0'])
    assert '--jobs 0: give 1 or more worker processes' in capsys.readouterr().err


def test_second_report_run_on_one_cache_waits_for_the_first(tmp_path):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    cache = tmp_path / 'cache'
    cache.mkdir()
    with runs.CacheLock(cache):                 # a first report run holds the cache
        second = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / 'report' / 'make_report.py'),
             *quick_args(data, tmp_path / 'out', cache, '--jobs', '1', '--assignment', 'softmax')],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, OPENBLAS_NUM_THREADS='1'))
        lines = []
        for line in second.stdout:
            lines.append(line)
            if 'waiting for it to finish' in line:
                break
        assert 'is in use by another report run (pid' in lines[-1], ''.join(lines) + second.stderr.read()
        assert not list(cache.glob('run-*.json')), 'the second run trained while the first held the cache'
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert list(cache.glob('run-*.json')) and (tmp_path / 'out' / 'report.pdf').exists()


def test_cache_key_follows_what_changes_the_result(tmp_path):
    base = dict(make_report.BASE_CFG, data_root='data')
    key = runs.run_key(base, 'data-a', 'code-a')
    assert runs.run_key(dict(base, verbose=True, display_freq=7, data_root='elsewhere'),
                        'data-a', 'code-a') == key
    assert runs.run_key(dict(base, learning_rate=0.1), 'data-a', 'code-a') != key
    assert runs.run_key(dict(base, seed=1), 'data-a', 'code-a') != key
    assert runs.run_key(base, 'data-b', 'code-a') != key
    assert runs.run_key(base, 'data-a', 'code-b') != key
    with pytest.raises(ValueError, match='learning_rate'):
        runs.run_key(dict(base, learning_rate=-1), 'data-a', 'code-a')
    with pytest.raises(FileNotFoundError, match='--data-root'):
        runs.data_fingerprint(tmp_path)


def test_damaged_cache_file_is_retrained(tmp_path):
    record = dict({field: None for field in runs.RECORD_FIELDS}, format=runs.CACHE_FORMAT, key='abc',
                  history={name: [] for name in runs.HISTORY_KEYS})
    runs.save_record(tmp_path, record)
    assert runs.load_cached(tmp_path, 'abc') == record
    runs.cache_path(tmp_path, 'abc').write_text('{"format": 1, "key": "ab')   # cut short
    assert runs.load_cached(tmp_path, 'abc') is None
    assert runs.load_cached(tmp_path, 'missing') is None


# ---------------------------------------------------------------------------
# Observations agree with the numbers
# ---------------------------------------------------------------------------

def check_observations_against_results(results):
    """Every observation's facts match numbers recomputed from results.json,
    and its text states them."""
    target = results['val_target']
    for experiment in results['experiments']:
        entries = entries_of(results, experiment)
        for found in experiment['observations']:
            facts, text = found['facts'], found['text']
            if found['kind'] == 'final_accuracy':
                s = entries[0]['summary']
                assert facts['test_acc'] == s['test_acc']
                assert observations.pct(s['test_acc']) in text
                assert observations.pct(s['final_val_acc']) in text
            elif found['kind'] == 'best':
                finished = [e for e in entries if e['summary']['status'] != 'diverged']
                best_acc = max(e['summary']['final_val_acc'] for e in finished)
                assert facts['best_val_acc'] == best_acc
                best = next(e for e in entries if e['label'] == facts['best'])
                assert best['summary']['final_val_acc'] == best_acc
                assert observations.pct(best_acc) in text
                if 'margin' in facts:
                    others = sorted((e['summary']['final_val_acc'] for e in finished),
                                    reverse=True)
                    assert math.isclose(facts['margin'], others[0] - others[1])
                    if facts['margin'] > 0:
                        assert observations.points(facts['margin']) in text
            elif found['kind'] == 'target':
                assert facts['target'] == target
                for e in entries:
                    history = results['runs'][next(r['key'] for r in experiment['runs']
                                                   if r['label'] == e['label'])]['history']
                    reached = [i + 1 for i, acc in enumerate(history['val_acc']) if acc >= target]
                    assert facts['epochs_to_target'][e['label']] == (reached[0] if reached else None)
            elif found['kind'] == 'speed':
                times = {e['label']: e['summary']['sec_per_epoch'] for e in entries}
                assert math.isclose(facts['ratio'], max(times.values()) / min(times.values()))
                assert times[facts['fastest']] == min(times.values())
            elif found['kind'] in ('unstable', 'diverged'):
                s = next(e for e in entries if e['label'] == facts['label'])['summary']
                assert s['status'] == found['kind']
                if found['kind'] == 'diverged':
                    assert f"epoch {s['diverged_at']['epoch']}, batch {s['diverged_at']['batch']}" in text
            elif found['kind'] == 'stable':
                assert all(e['summary']['status'] == 'ok' for e in entries)
            elif found['kind'] == 'trend':
                finished = sorted((e for e in entries if e['summary']['status'] != 'diverged'),
                                  key=lambda e: e['value'])
                assert facts['val_accs'] == [e['summary']['final_val_acc'] for e in finished]


def test_observations_agree_with_the_results_file(tiny_report):
    results = json.loads((tiny_report['out'] / 'results.json').read_text())
    check_observations_against_results(results)
    kinds = {o['kind'] for e in results['experiments'] for o in e['observations']}
    assert {'final_accuracy', 'best', 'target', 'speed'} <= kinds


def test_divergence_is_recorded_and_reported(tmp_path):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    experiments = [make_report.Experiment('lr', make_report.SECTION_C, 'Learning rate',
                                          vary='learning_rate', values=[0.01, 1e38])]
    results = make_report.main(quick_args(data, tmp_path / 'out', tmp_path / 'cache'),
                               experiments=experiments)
    run = results['runs'][results['experiments'][0]['runs'][1]['key']]
    assert run['status'] == 'diverged'
    assert run['diverged_at'] == {'epoch': 1, 'batch': 2, 'update': 2}
    assert run['test_acc'] is None
    found = [o for o in results['experiments'][0]['observations'] if o['kind'] == 'diverged']
    assert [o['facts']['label'] for o in found] == ['learning_rate = 1e+38']
    check_observations_against_results(results)
    assert (tmp_path / 'out' / 'report.pdf').read_bytes().startswith(b'%PDF-')


def summary(val_acc, status='ok', test_acc=0.9, sec=0.1, **extra):
    """A hand-made runs.summarize() result, for the observation unit tests."""
    to_target = runs.epochs_to_reach(val_acc, 0.9)
    result = {'status': status, 'final_val_acc': val_acc[-1] if val_acc else None,
              'test_acc': test_acc, 'final_train_acc': 0.9, 'final_train_loss': 0.3,
              'initial_loss': 2.3, 'max_batch_loss': 3.0, 'sec_per_epoch': sec,
              'updates_per_epoch': 10, 'val_target': 0.9, 'epochs_completed': len(val_acc), 'n_val': 5000,
              'epochs_to_target': to_target, 'seconds_to_target': to_target and to_target * sec,
              'diverged_at': None}
    result.update(extra)
    return result


def test_observation_sentences_follow_the_numbers():
    entries = [{'label': f'lr = {v}', 'value': v, 'summary': summary(accs)} for v, accs in
               ((0.01, [0.8, 0.85]), (0.1, [0.9, 0.95]), (1.0, [0.92, 0.93]))]
    best = observations.best_observation(entries)
    assert best['facts']['best'] == 'lr = 0.1'
    assert '2.00 percentage points above the next best (lr = 1.0, 93.00%)' in best['text']
    assert observations.trend_observation(entries, 'lr')['facts']['shape'] == 'peak'
    target = observations.target_observation(entries)
    assert 'lr = 0.01 never (in 2 epochs)' in target['text']
    assert target['facts']['epochs_to_target'] == {'lr = 0.01': None, 'lr = 0.1': 1,
                                                   'lr = 1.0': 1}

    # a margin smaller than two standard errors on n_val images is called noise
    close = [{'label': 'a', 'value': 0, 'summary': summary([0.936], n_val=5000)},
             {'label': 'b', 'value': 1, 'summary': summary([0.9362], n_val=5000)}]
    found = observations.best_observation(close)
    assert found['facts']['noise'] == pytest.approx(2 * (0.9362 * 0.0638 / 5000) ** 0.5)
    assert 'within the noise' in found['text'] and '5000 validation images are 0.69 points' in found['text']
    assert 'noise' not in observations.best_observation(entries)['facts']   # 2 points apart on 5000 images

    tie = [dict(e, summary=summary([0.93])) for e in entries[:2]]
    assert 'tie at 93.00%' in observations.best_observation(tie)['text']

    entries[2]['summary'] = summary([], status='diverged', test_acc=None, sec=None,
                                    diverged_at={'epoch': 1, 'batch': 5, 'update': 5})
    found = observations.observe_comparison(entries, 'lr')
    diverged = [o for o in found if o['kind'] == 'diverged']
    assert 'lr = 1.0 diverged' in diverged[0]['text'] and 'epoch 1, batch 5' in diverged[0]['text']
    assert observations.best_observation(entries)['facts']['runner_up'] == 'lr = 0.01'
    assert not any(o['kind'] == 'trend' for o in found)       # only 2 finished runs

    slow = [{'label': 'a', 'value': 0, 'summary': summary([0.9], sec=0.1)},
            {'label': 'b', 'value': 1, 'summary': summary([0.9], sec=0.105)}]
    assert 'about the same speed' in observations.speed_observation(slow)['text']
    slow[1]['summary']['sec_per_epoch'] = 0.3
    assert 'b is 3.00 times slower per epoch' in observations.speed_observation(slow)['text']


# ---------------------------------------------------------------------------
# The real thing: --quick on the shipped MNIST, as CI runs it
# ---------------------------------------------------------------------------

@pytest.mark.slow   # about a minute: python -m pytest -m slow (CI runs it)
@pytest.mark.skipif(not (REPO_ROOT / 'data' / 'train-images-idx3-ubyte.gz').exists(),
                    reason='the shipped MNIST files are not in data/')
def test_quick_report_on_mnist_from_the_command_line(tmp_path):
    out, cache = tmp_path / 'out', tmp_path / 'cache'
    done = subprocess.run([sys.executable, str(REPO_ROOT / 'report' / 'make_report.py'),
                           '--quick', '--out-dir', str(out), '--cache-dir', str(cache)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / 'results.json').read_text())
    assert results['mode'] == 'quick'
    assert len(re.findall(r'^\[ ?\d+/\d+\] ', done.stdout, re.M)) == results['timing']['runs']
    assert pdf_page_count((out / 'report.pdf').read_bytes()) == len(results['pages'])
    default = results['runs'][results['experiments'][0]['runs'][0]['key']]
    assert default['test_acc'] > 0.85                          # 2 epochs of the real homework
    check_observations_against_results(results)


# ---------------------------------------------------------------------------
# The student's report, the thread policy, bad situations
# ---------------------------------------------------------------------------

def test_student_report_leaves_the_analysis_to_the_student(tiny_report, tmp_path):
    # Every correct student gets the same numbers (seed 0): the computed
    # observations would be everyone's identical analysis. The student report
    # has the figures and tables, and each page's question with the student's text.
    analysis = tmp_path / 'analysis.md'
    results = make_report.main(quick_args(tiny_report['data'], tmp_path / 'out', tiny_report['cache'],
                                          '--student', '--analysis', str(analysis)))
    text = analysis.read_text()                     # written with the questions, once
    for experiment in make_report.EXPERIMENTS:
        assert f'## {experiment.name}\n' in text and experiment.question in text
    assert results['audience'] == 'student'
    assert all(e['observations'] == [] and e['analysis'] is None for e in results['experiments'])

    analysis.write_text(text.replace('## momentum\n', '## momentum\nMy own words on momentum.\n'))
    results = make_report.main(quick_args(tiny_report['data'], tmp_path / 'out', tiny_report['cache'],
                                          '--student', '--analysis', str(analysis)))
    written = {e['name']: e['analysis'] for e in results['experiments']}
    assert written.pop('momentum') == 'My own words on momentum.'   # the question line is not copied
    assert set(written.values()) == {None}
    assert pdf_page_count((tmp_path / 'out' / 'report.pdf').read_bytes()) == len(results['pages'])
    assert tiny_report['results']['audience'] == 'instructor'       # the reference's default


def test_reference_is_told_from_a_handout(tmp_path):
    assert make_report.is_reference()              # this repository holds the solution regions
    (tmp_path / 'loss.py').write_text("raise NotImplementedError('x is not implemented yet')\n")
    assert not make_report.is_reference(tmp_path)
    (tmp_path / 'loss.py').write_text('### BEGIN SOLUTION softmax\nx = 1\n### END SOLUTION\n')
    assert make_report.is_reference(tmp_path)


def test_report_started_directly_uses_one_blas_thread(tmp_path):
    # python report/make_report.py, as the README says, without any thread setting.
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    env = {k: v for k, v in os.environ.items()
           if k not in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    done = subprocess.run([sys.executable, str(REPO_ROOT / 'report' / 'make_report.py'),
                           *quick_args(data, tmp_path / 'out', tmp_path / 'cache')],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    machine = json.loads((tmp_path / 'out' / 'results.json').read_text())['machine']
    assert machine['blas_threads'].startswith('OPENBLAS_NUM_THREADS=1'), machine
    if machine['blas_threads_in_use'] is not None:            # known where OpenBLAS can be asked
        assert machine['blas_threads_in_use'] == 1
    assert 'BLAS threads: OPENBLAS_NUM_THREADS=1' in done.stdout


def test_cache_entry_missing_a_field_is_stale(tiny_report, tmp_path):
    key = next(iter(tiny_report['results']['runs']))
    record = runs.load_cached(tiny_report['cache'], key)
    assert record is not None
    for field in ('history', 'test_acc', 'updates_per_epoch'):
        damaged = {k: v for k, v in record.items() if k != field}
        runs.save_record(tmp_path, damaged)
        assert runs.load_cached(tmp_path, key) is None, f'a record without {field!r} must be retrained'
    damaged = dict(record, history={k: v for k, v in record['history'].items() if k != 'iter_loss'})
    runs.save_record(tmp_path, damaged)
    assert runs.load_cached(tmp_path, key) is None


def test_unwritable_cache_folder_fails_before_training(tmp_path, monkeypatch):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    (tmp_path / 'not-a-folder').write_text('a file where the cache folder should be')
    calls = counting_train_run(monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        make_report.main(quick_args(data, tmp_path / 'out', tmp_path / 'not-a-folder' / 'cache',
                                    '--jobs', '1'), experiments=small_experiments())
    message = str(stopped.value.code)
    assert 'cannot write the cache in' in message and '--cache-dir' in message, message
    assert calls == [], 'nothing may be trained when the results cannot be kept'


def test_ctrl_c_while_writing_the_pdf_keeps_the_old_report(tmp_path, monkeypatch, capsys):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    args = quick_args(data, tmp_path / 'out', tmp_path / 'cache')
    make_report.main(args, experiments=small_experiments())
    old_pdf = (tmp_path / 'out' / 'report.pdf').read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(make_report.pages.ReportWriter, 'finish_page', interrupted)
    with pytest.raises(SystemExit) as stopped:
        make_report.main(args, experiments=small_experiments())
    assert stopped.value.code == 130
    assert 'Interrupted while writing the report' in capsys.readouterr().err
    assert (tmp_path / 'out' / 'report.pdf').read_bytes() == old_pdf
    assert not [p for p in (tmp_path / 'out').rglob('*.tmp')]


def test_temporary_files_of_killed_runs_are_cleaned(tmp_path):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    finished = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                              capture_output=True, text=True)
    dead_pid = int(finished.stdout)                # a process that no longer runs
    (tmp_path / 'cache').mkdir()
    (tmp_path / 'out').mkdir()
    stale = [tmp_path / 'cache' / f'.run-0123.json.{dead_pid}.x1y2.tmp',
             tmp_path / 'out' / f'.report.pdf.{dead_pid}.a1b2.tmp']
    for path in stale:
        path.write_text('half a file')
    make_report.main(quick_args(data, tmp_path / 'out', tmp_path / 'cache'),
                     experiments=small_experiments()[:1])
    assert not any(path.exists() for path in stale)


def _entry(label, value, losses, updates_per_epoch):
    return {'label': label, 'value': value, 'record': {'history': {'iter_loss': losses}},
            'summary': {'status': 'ok', 'updates_per_epoch': updates_per_epoch}}


def test_dense_per_batch_curve_does_not_cover_the_panel():
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots()
    # batch 10: 5500 noisy losses per epoch; batch 100: 550.
    make_report.plots.plot_batch_losses(ax, [
        _entry('batch = 10', 10, list(2 * rng.random(55000)), 5500),
        _entry('batch = 100', 100, list(rng.random(5500)), 550)])
    raw_sizes = sorted(len(line.get_xdata()) for line in ax.lines if line.get_alpha())
    plt.close(fig)
    assert raw_sizes == [5500] or all(n <= make_report.plots.MAX_RAW_POINTS for n in raw_sizes)
    assert all(n <= max(make_report.plots.MAX_RAW_POINTS, 5500) for n in raw_sizes)
    assert 55000 not in raw_sizes, 'the raw curve of batch 10 must not be drawn'


def test_momentum_sweep_tick_labels_do_not_collide():
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox
    fig = plt.figure(figsize=(3.6, 2.6))            # about a quarter of the report's plot area
    ax = fig.add_subplot()
    entries = [{'label': f'momentum = {m}', 'value': m,
                'summary': {'status': 'ok', 'final_val_acc': 0.9, 'test_acc': 0.9}}
               for m in (0.0, 0.5, 0.9, 0.99)]
    make_report.plots.plot_accuracy_vs_value(ax, entries, 'momentum')
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pad = 3 * fig.dpi / 72                          # at least 3 points of space between labels
    boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()]
    boxes = [Bbox.from_extents(b.x0 - pad, b.y0, b.x1 + pad, b.y1) for b in boxes]
    plt.close(fig)
    for i, first in enumerate(boxes):
        for second in boxes[i + 1:]:
            assert not first.overlaps(second), 'two tick labels (almost) touch'


def what_legends_cover(fig):
    """What a legend of fig covers: points of a line (plots.line_points), bars, texts; for a legend above the panels, a panel with
    its title and labels. Each as a short description; [] when nothing."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        for line in ax.get_lines():
            points = make_report.plots.line_points(line)
            inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                      & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
            if inside.any():
                found.append(f"{ax.get_title()!r}: the legend covers line {line.get_label()!r}")
        for patch in ax.patches:
            if patch.get_height() > 0 and box.overlaps(patch.get_window_extent(renderer)):
                found.append(f"{ax.get_title()!r}: the legend covers a bar")
        for text in ax.texts:
            if box.overlaps(text.get_window_extent(renderer)):
                found.append(f"{ax.get_title()!r}: the legend covers the text {text.get_text()!r}")
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        boxes = [(f'panel {ax.get_title()!r}', ax.get_tightbbox(renderer)) for ax in fig.axes]
        boxes += [(f'caption {text.get_text()!r}', text.get_window_extent(renderer)) for text in fig.texts]
        found += [f'the legend above the panels covers the {what}' for what, other in boxes
                  if box.overlaps(other)]
        if box.x0 < 0 or box.y0 < 0 or box.x1 > fig.bbox.width or box.y1 > fig.bbox.height:
            found.append('the legend above the panels leaves the figure')
    return found


def _run_entry(label, value, epochs=10, batches=550, rng=None, **summary):
    """A run for the plots whose curves sweep the whole panel (up and down
    each epoch), so that a legend anywhere inside a panel would cover them."""
    zigzag = np.resize([0.86, 0.94], epochs) + 0.005 * value
    losses = np.resize([1.2, 0.3], epochs) + 0.01 * value
    history = {'val_acc': list(zigzag), 'train_acc': list(zigzag[::-1]), 'train_loss': list(losses),
               'val_loss': list(losses[::-1]), 'iter_loss': list(0.05 + 2 * rng.random(epochs * batches))}
    return {'label': label, 'value': value, 'record': {'history': history},
            'summary': dict({'status': 'ok', 'updates_per_epoch': batches, 'final_val_acc': zigzag[-1],
                             'test_acc': zigzag[-1] - 0.01, 'sec_per_epoch': 1.0 + value,
                             'seconds_to_target': 2.0, 'val_target': 0.9}, **summary)}


@pytest.mark.parametrize('summary_plot, runs', [('accuracy', 5), ('accuracy', 2), ('timing', 2), ('timing', 3)])
def test_no_legend_covers_a_curve_of_an_experiments_plots(summary_plot, runs):
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(0)
    entries = [_run_entry(f'lr = {10.0 ** (i - 3):g}', 10.0 ** (i - 3), rng=rng,
                          status='unstable' if i == runs - 1 else 'ok') for i in range(runs)]
    entries[0]['summary']['seconds_to_target'] = None          # 'never' under its bar
    entries[-1]['summary']['sec_per_epoch'] = 9.0              # the tallest bar on the right
    fig, gs = make_report.pages.block_figure(2, 2)
    make_report.plots.plot_comparison(fig, gs, entries, 'learning_rate', summary_plot)
    covered = what_legends_cover(fig)
    legends = len(fig.legends) + sum(ax.get_legend() is not None for ax in fig.axes)
    plt.close(fig)
    assert legends == 2, 'the runs above the panels, and the fourth panel\'s own legend'
    assert covered == []


def test_no_legend_covers_a_curve_of_a_single_run():
    import matplotlib.pyplot as plt
    fig, gs = make_report.pages.block_figure(2, 2)
    make_report.plots.plot_single_run(fig, gs, _run_entry('default', 0.1, rng=np.random.default_rng(1)))
    covered = what_legends_cover(fig)
    plt.close(fig)
    assert covered == []


def test_the_legend_check_sees_a_covered_curve():
    """The checker of the two tests above finds what a default legend covers."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot(np.arange(10), np.resize([0.0, 1.0], 10), label='zigzag')
    ax.legend(loc='upper left')
    covered = what_legends_cover(fig)
    plt.close(fig)
    assert covered == ["'': the legend covers line 'zigzag'"]


# ---------------------------------------------------------------------------
# Layout, the report of each assignment, long and Chinese analyses
# ---------------------------------------------------------------------------

@pytest.fixture
def sheets(monkeypatch):
    """Every sheet the report writes: (title, [(text, its box in inches)], figure box),
    recorded just before the sheet goes into the PDF."""
    import matplotlib.table
    import matplotlib.text
    recorded = []
    real = make_report.pages.ReportWriter._save_sheet

    def save_sheet(writer, page):
        renderer = page.fig.canvas.get_renderer()
        texts = [(t.get_text(), t.get_window_extent(renderer).transformed(page.fig.dpi_scale_trans.inverted()))
                 for t in page.fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
        for table in page.fig.findobj(matplotlib.table.Table):
            for cell in table.get_celld().values():
                text = cell.get_text()
                if text.get_window_extent(renderer).width > cell.get_window_extent(renderer).width:
                    texts.append((f'TABLE CELL TOO NARROW: {text.get_text()}', None))
        recorded.append((writer.pages[-1], texts, page.fig.bbox_inches))
        real(writer, page)
    monkeypatch.setattr(make_report.pages.ReportWriter, '_save_sheet', save_sheet)
    return recorded


LONG_ENGLISH = ' '.join(f'Sentence {i} of a long analysis that quotes the numbers of the table.'
                        for i in range(40))
CHINESE = '动量让参数沿着过去梯度的方向继续移动，所以在损失曲面平坦的方向上步子更大，收敛更快。'


def student_report(tiny_report, tmp_path, analysis_text, *extra, audience='--student'):
    analysis = tmp_path / 'analysis.md'
    analysis.write_text(make_report.analysis_template(make_report.analysis_sections(make_report.EXPERIMENTS))
                        .replace('## momentum\n', '## momentum\n' + analysis_text + '\n'), encoding='utf-8')
    return make_report.main(quick_args(tiny_report['data'], tmp_path / 'out', tiny_report['cache'],
                                       audience, '--analysis', str(analysis), *extra))


@pytest.mark.parametrize('audience', ['--student', '--instructor'])
def test_every_text_lies_inside_its_page(tiny_report, tmp_path, sheets, audience):
    results = student_report(tiny_report, tmp_path, LONG_ENGLISH, audience=audience)
    assert len(sheets) == len(results['pages'])
    for title, texts, page_box in sheets:
        narrow = [text for text, box in texts if box is None]
        assert not narrow, f'on the page {title!r}: {narrow}'
        for text, box in texts:
            assert page_box.x0 <= box.x0 and box.x1 <= page_box.x1 + 1e-6 and \
                page_box.y0 <= box.y0 and box.y1 <= page_box.y1 + 1e-6, \
                f'on the page {title!r}, {text[:60]!r} reaches outside the page: {box} not in {page_box}'
        body = [(text, box) for text, box in texts if not text.isdigit()]     # all but the page number
        low = [text[:40] for text, box in body if box.y0 < make_report.pages.MARGIN - 0.05]
        assert not low, f'on the page {title!r}, text runs into the bottom margin: {low}'


def test_analysis_longer_than_its_box_continues_on_the_next_page(tiny_report, tmp_path, sheets, capsys):
    results = student_report(tiny_report, tmp_path, LONG_ENGLISH, '--assignment', 'softmax')
    out = capsys.readouterr().out
    momentum_page = results['pages'].index(f'{make_report.SECTION_B}: {make_report.EXPERIMENTS[1].title}')
    assert results['pages'][momentum_page + 1].endswith('(continued)')
    assert f"Your analysis '## momentum' is" in out and f'the rest is on page {momentum_page + 2}' in out
    assert results['notices'] and 'longer than its box' in results['notices'][0]
    drawn = ' '.join(text for _, texts, _ in sheets[momentum_page:momentum_page + 2] for text, _ in texts)
    assert f'(continued on page {momentum_page + 2})' in drawn
    for i in (0, 17, 39):                                     # nothing of the analysis is lost
        assert f'Sentence {i} of' in drawn


def test_pictures_page_has_its_question_and_box(tiny_report, tmp_path, sheets):
    results = student_report(tiny_report, tmp_path, 'Short.', '--assignment', 'softmax')
    assert (tmp_path / 'analysis.md').read_text().count('## momentum_pictures') == 1
    page = results['pages'].index(make_report.model_pictures.TITLE)
    title, texts, _ = sheets[page]
    drawn = ' '.join(text for text, _ in texts)
    assert 'What the momentum-0.9 run learned' in drawn                  # capitalised
    assert make_report.PICTURES_SECTION[1][:40] in drawn.replace('\n', ' ')
    assert '## momentum_pictures' in drawn                               # the placeholder says where


@pytest.mark.parametrize('assignment, model, absent', [
    ('softmax', 'softmax regression', 'MLP'),
    ('mlp', 'MLP 784-128-10', 'softmax regression'),
])
def test_report_of_one_assignment_describes_its_own_runs(tiny_report, tmp_path, sheets, assignment,
                                                         model, absent):
    results = make_report.main(quick_args(tiny_report['data'], tmp_path / 'out', tiny_report['cache'],
                                          '--assignment', assignment))
    assert results['title'] == make_report.ASSIGNMENT_TITLES[assignment]
    assert {e['name'] for e in results['experiments']} == \
        {e.name for e in make_report.EXPERIMENTS if e.assignment == assignment}
    first_page = ' '.join(text for title, texts, _ in sheets if title.startswith('Title and setup')
                          for text, _ in texts).replace('\n', ' ')
    assert model in first_page and absent not in first_page
    assert 'Left out' not in first_page
    for experiment in results['experiments']:
        assert experiment['title'] in first_page                   # the contents list every page


def test_assignment_of_a_handout_is_read_from_its_submission_file(tmp_path):
    assert make_report.handout_assignment(tmp_path) == 'all'
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'submission.json').write_text(json.dumps({'assignment': 'cnn', 'files': []}))
    assert make_report.handout_assignment(tmp_path) == 'cnn'
    assert [e.name for e in make_report.experiments_of('cnn')] == ['cnn']


def test_chinese_lines_wrap_by_width():
    wrap = make_report.pages.wrap_lines
    lines = wrap(CHINESE * 3, 40)
    assert len(lines) > 1
    assert all(make_report.pages.text_width(line) <= 40 for line in lines)
    assert ''.join(lines) == CHINESE * 3                            # no character lost or added
    mixed = wrap('momentum 0.9 让 loss 更快下降 ' * 6, 30)
    assert all(make_report.pages.text_width(line) <= 30 for line in mixed)
    assert 'momentum' in mixed[0] and not any(line.startswith(' ') for line in mixed)
    assert wrap('plain English words only', 10) == ['plain', 'English', 'words only']


def test_chinese_analysis_without_a_chinese_font_says_how_to_get_one(tiny_report, tmp_path, monkeypatch,
                                                                     sheets, capsys):
    import warnings
    monkeypatch.setattr(make_report.pages.visualize, 'CJK_FONT', None)
    monkeypatch.setattr(make_report.write_pdf, '__defaults__',
                        make_report.write_pdf.__defaults__[:-1] + (None,))
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='Glyph .* missing')
        results = student_report(tiny_report, tmp_path, CHINESE, '--assignment', 'softmax')
    out = capsys.readouterr().out
    assert out.count('fonts-noto-cjk') == 1                          # one clear message
    assert results['notices'] == [make_report.pages.visualize.NO_CJK_FONT]
    drawn = ' '.join(text for _, texts, _ in sheets for text, _ in texts)
    assert '动' not in drawn and 'Chinese text not shown' in drawn   # a note, never empty boxes


@pytest.mark.skipif(make_report.pages.visualize.CJK_FONT is None,
                    reason='no Chinese font on this machine (e.g. apt install fonts-wqy-microhei)')
def test_chinese_analysis_is_drawn_with_a_chinese_font(tiny_report, tmp_path, sheets):
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='Glyph .* missing')
        results = student_report(tiny_report, tmp_path, CHINESE * 2, '--assignment', 'softmax')
    assert results['notices'] == []
    drawn = ''.join(text for _, texts, _ in sheets for text, _ in texts).replace('\n', '')
    assert CHINESE * 2 in drawn


# ---------------------------------------------------------------------------
# report/training_techniques.py: the target run is chosen on validation only
# ---------------------------------------------------------------------------

def test_training_techniques_choose_the_target_run_on_validation_and_mark_it(tmp_path, monkeypatch):
    import training_techniques as tt

    def record(val, test):
        return {'history': {'val_acc': [0.5, val], 'epoch_time': [1.0, 1.0]}, 'test_acc': test}
    # The test set would pick 'b'; the validation split picks 'a'.
    records = {'a': record(0.990, 0.980), 'b': record(0.985, 0.990)}
    assert tt.best_on_validation(records) is records['a']

    monkeypatch.setattr(tt, 'RUNS', tmp_path)
    monkeypatch.setattr(tt, 'TARGET_RUNS', {'a': {}, 'b': {}})
    monkeypatch.setattr(tt, 'TARGET_ROUND_2', ['b'])
    for name, r in records.items():
        (tmp_path / f'target-{name}.json').write_text(json.dumps(r))
    (tmp_path / 'augment-a.json').write_text(json.dumps(record(0.992, 0.991)))
    table = tt.target_table().splitlines()
    assert table[2].startswith('| **a** (chosen on validation) | 1 | 99.00% | 98.00% |')
    assert table[3].startswith('| b | 2 | 98.50% | 99.00% |')
    assert table[4].startswith('| a + augmentation')
