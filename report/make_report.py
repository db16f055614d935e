"""Regenerate the homework's PDF report with one command (notes §1.3).

    python report/make_report.py            # this folder's assignment's report (a handout's own; all in the reference)
    python report/make_report.py --assignment softmax   # one assignment's report (12 runs: about 70 s of CPU)
    python report/make_report.py --quick    # a subset with 2 epochs, for CI
    python report/make_report.py --force    # retrain even the runs in the cache
    python report/make_report.py --jobs 4   # train up to 4 runs at once (default: one per core)
    python3 tools/quickstart.py report      # the same, with the project's Python

It runs with one BLAS thread unless OPENBLAS_NUM_THREADS is set (threads.py;
applied below, before NumPy is imported), and the setup page says so.

It trains the runs of the assignment's experiments in EXPERIMENTS below
(all with the same seed), then writes, in the output folder (report/ by
default, report/quick/ with --quick):
    report.pdf      title and setup (the models and settings of its runs),
                    then for softmax (a) accuracy and curves of the default
                    run, (b) momentum against no momentum and what the
                    momentum-0.9 run learned, (c) the other hyper-parameters;
                    for the MLP (d), for the CNN (e). The student report (the default
                    in a handout) puts each page's question and a box with the
                    student's analysis (report/analysis.md) on it; the
                    instructors' reference report (the default where the
                    solution regions are present) writes observations
                    computed from the measured numbers instead
    results.json    every run: cfg, per-epoch history, test accuracy, seconds
                    per epoch, epochs to reach the validation target, status;
                    the observations with the numbers they state; the pages
    figures/*.png   the plots of each page

The runs are independent: with --jobs N they are trained N at a time, in
worker processes with one BLAS thread each; every run is seeded, so the
numbers do not depend on N. Finished runs are cached in report/cache/ (one
JSON file per run, written by the process that trained it), so an
interrupted regeneration resumes where it stopped, and a rerun with nothing
changed trains nothing. Two report runs on one cache folder take turns (the
second waits, and says so). Changing the data or the framework's code (loss.py,
optimizer.py, ...) retrains, because both are part of a run's cache key.

To add an experiment, add one Experiment(...) to EXPERIMENTS: the runs, the
tables, the plots and the observations follow from it.
"""

import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
for folder in (REPO_ROOT, HERE):          # the framework's modules, and ours
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# One BLAS thread unless you set OPENBLAS_NUM_THREADS yourself (threads.py,
# README "Speed"): applied here, before anything imports NumPy, so that the
# timings in the report do not depend on how the script was started.
from threads import THREAD_VARIABLES, apply_thread_policy, describe_threads, usable_cores  # noqa: E402

apply_thread_policy(quiet=__name__ != '__main__')

import model_pictures  # noqa: E402  (needs the path and the thread policy set above)
import observations  # noqa: E402
import pages  # noqa: E402
import plots  # noqa: E402
import runs  # noqa: E402
from fileio import atomic_write, remove_stale_temporaries  # noqa: E402


# ---------------------------------------------------------------------------
# What the report runs: edit here
# ---------------------------------------------------------------------------

# Every run starts from this cfg (the homework's defaults) and changes one setting.
BASE_CFG = {
    'max_epoch': 10,
    'batch_size': 100,
    'learning_rate': 0.01,
    'momentum': 0.9,
    'seed': 0,                 # the same seed for every run: same initial weights and shuffling
    'normalize': 'image_mean',
    'hidden_sizes': [],        # [] = the homework's softmax regression
}
QUICK_EPOCHS = 2               # --quick: this many epochs per run
VAL_TARGET = 0.90              # "epochs to reach this validation accuracy"


@dataclass
class Experiment:
    """A group of runs that differ from BASE_CFG in one setting.

    - name: identifier, used in results.json and figure file names
    - section: heading of the report section it belongs to (experiments with
      the same section follow one another under one heading)
    - title: sub-heading of its page
    - vary: the cfg key that differs between its runs (None: one run, BASE_CFG)
    - values: the values of `vary`, one run each
    - quick_values: the values used with --quick (default: all of them)
    - label: how a run is named in tables and legends
    - overrides: cfg changes shared by all its runs (e.g. {'hidden_sizes': [256]})
    - summary_plot: the fourth panel, 'accuracy' (final accuracy against the
      value) or 'timing' (seconds per epoch and to reach the target)
    - intro: what is compared and how (a description, not a conclusion)
    - observe_speed: state which run is faster per epoch; False for settings
      that do not change the work of an epoch (learning rate, momentum value),
      where timing differences are only noise (the table still shows them)
    - question: what the student's analysis of this page should answer (the
      student report leaves a box for it; see ANALYSIS_FILE)
    - assignment: the assignment whose report holds it (tools/assignments.json)
    """
    name: str
    section: str
    title: str
    vary: str = None
    values: list = (None,)
    quick_values: list = None
    label: str = '{vary} = {value}'
    overrides: dict = field(default_factory=dict)
    summary_plot: str = 'accuracy'
    intro: str = ''
    observe_speed: bool = True
    question: str = 'What do you observe, and why?'
    assignment: str = 'softmax'

    def runs(self, quick):
        """[(label, value, cfg)] of its runs."""
        values = self.quick_values if quick and self.quick_values is not None else self.values
        result = []
        for value in values:
            cfg = dict(BASE_CFG, **self.overrides)
            if self.vary is not None:
                cfg[self.vary] = value
            if quick:
                cfg['max_epoch'] = min(cfg['max_epoch'], QUICK_EPOCHS)
            shown = f'{value:g}' if isinstance(value, float) else value
            label = self.label.format(vary=self.vary, value=shown)
            result.append((label, value, cfg))
        return result


SECTION_A = '(a) Training and test accuracy'
SECTION_B = '(b) Momentum against no momentum'
SECTION_C = '(c) Other hyper-parameters'
SECTION_D = '(d) The MLP homework (case 2)'
SECTION_E = '(e) The CNN homework (notes §3)'

# The MLP homework's runs: 20 epochs of a 784-128-10 network.
MLP_CFG = {'hidden_sizes': [128], 'max_epoch': 20}
MLP_COURSE_SETTINGS = {'learning_rate': 0.001, 'weight_decay': 0.1, 'momentum': 0.0}
MLP_TUNED_SETTINGS = {'learning_rate': 0.1, 'weight_decay': 0.0, 'momentum': 0.9}

# The CNN homework's runs (cnn.ipynb): images as (N, 1, 28, 28), 2 epochs.
CNN_CFG = {'model': 'cnn', 'max_epoch': 2, 'batch_size': 50, 'learning_rate': 0.05, 'fc_sizes': [128],
           'lr_schedule': 'step', 'lr_decay_every': 1, 'lr_decay_factor': 0.3}

EXPERIMENTS = [
    Experiment('default', SECTION_A, 'The default settings', label='default',
               intro='One run of the homework model with the settings of the setup page.',
               question='What training, validation and test accuracy does your model reach? '
                        'What do the loss and accuracy curves show (convergence, overfitting)?'),
    Experiment('momentum', SECTION_B, 'SGD with momentum 0.9 against plain SGD (momentum 0)',
               vary='momentum', values=[0.0, 0.9], summary_plot='timing',
               intro='Same learning rate, batch size, epochs and seed; only the momentum '
                     'differs. Training time is measured per epoch, validation excluded.',
               question='How does momentum change the training time, the convergence and the '
                        'accuracy? Explain with the update rule v = momentum * v - lr * grad.'),
    Experiment('learning_rate', SECTION_C, 'Learning rate', vary='learning_rate',
               values=[0.001, 0.01, 0.1, 1.0, 10.0], quick_values=[0.01, 0.1, 10.0],
               label='lr = {value}', observe_speed=False,
               intro='The learning rate from 0.001 to 10, with momentum 0.9. The largest '
                     'values are there to show what a too-large learning rate does.',
               question='Which learning rate would you choose, judged on the validation set, and '
                        'why? What happens when it is too small or too large?'),
    Experiment('batch_size', SECTION_C, 'Batch size', vary='batch_size',
               values=[10, 50, 100, 500, 1000], quick_values=[50, 100, 1000],
               label='batch = {value}',
               intro='The batch size from 10 to 1000 with the same learning rate. A smaller '
                     'batch makes more (noisier) updates per epoch.',
               question='How does the batch size change the accuracy, the number of updates per '
                        'epoch and the time per epoch? Which would you choose?'),
    Experiment('momentum_sweep', SECTION_C, 'Momentum', vary='momentum',
               values=[0.0, 0.5, 0.9, 0.99], label='momentum = {value}',
               observe_speed=False,
               intro='The momentum from 0 (plain SGD) to 0.99.',
               question='How does the momentum value change the convergence and the final '
                        'accuracy? What goes wrong when it is too close to 1?'),
] + [
    # (d) The MLP homework (the course's case 2): one hidden layer of 128 units, the
    # Euclidean loss against softmax cross-entropy, with Sigmoid and with ReLU; first
    # with the course's hyper-parameters, then with a setting chosen on the validation
    # split (mlp.ipynb, section 3); then one hidden layer against two.
    Experiment(f'mlp_{when}_{activation}', SECTION_D,
               f'{activation.capitalize()} hidden layer, {how}', vary='loss',
               values=['euclidean', 'softmax_cross_entropy'], label='{value}',
               quick_values=['softmax_cross_entropy'],
               overrides=dict(MLP_CFG, activation=activation, **settings), assignment='mlp',
               intro=f'MLP 784-128-10 with {activation.capitalize()}; only the loss differs. '
                     + description, observe_speed=False,
               question=f'With a {activation} hidden layer and {how}, how do the Euclidean loss '
                        f'and softmax cross-entropy compare (convergence, accuracy), and why?')
    for when, how, settings, description in (
        ('course', "the course's hyper-parameters", MLP_COURSE_SETTINGS,
         'The course gave lr 0.001, weight decay 0.1 and no momentum, which train poorly on purpose.'),
        ('tuned', 'a tuned setting', MLP_TUNED_SETTINGS,
         'lr 0.1 with momentum 0.9 and no weight decay, chosen on the validation split in mlp.ipynb.'))
    for activation in ('sigmoid', 'relu')
] + [
    Experiment('mlp_depth', SECTION_D, 'One hidden layer against two', vary='hidden_sizes',
               values=[[128], [128, 128]], quick_values=[[128]], label='hidden {value}',
               overrides=dict(MLP_CFG, **MLP_TUNED_SETTINGS), summary_plot='timing', assignment='mlp',
               intro='Softmax cross-entropy and ReLU with the tuned setting; one hidden layer of '
                     '128 units against two.',
               question='Does a second hidden layer help? What does it cost in time per epoch?'),
    # (e) The CNN homework (notes §3): the course's network (conv 8, conv 16, FC 128)
    # for 2 epochs with the setting chosen on the validation split, against a wider
    # one; --quick trains a one-block CNN of 4 filters instead (same code, a fraction
    # of the time).
    Experiment('cnn', SECTION_E, "The course's CNN against a wider one, 2 epochs", vary='conv_channels',
               values=[[8, 16], [16, 32]], quick_values=[[4]], label='conv {value}',
               overrides=CNN_CFG, summary_plot='timing', assignment='cnn',
               intro="conv-ReLU-max-pool blocks with these numbers of 3x3 filters, then FC 128 and FC 10; "
                     "batch 50, momentum 0.9, lr 0.05 then 0.015 (chosen on the validation split), 2 epochs.",
               question='How does the CNN compare with the MLP, in accuracy and in time per epoch? '
                        'What does doubling the filters buy?'),
    # Adding an experiment is one entry.
]

# The message of a stub that tools/handout.py leaves for another assignment's
# code ("... is part of the 'mlp' assignment and is not provided in the
# 'softmax' handout"): the report leaves such experiments out.
OTHER_ASSIGNMENT = re.compile(r"is part of the '[\w-]+' assignment")

# Each assignment's report: its title and the experiments it holds ('all':
# the instructors' report of every assignment).
ASSIGNMENT_TITLES = {
    'softmax': 'MNIST homework report: softmax regression',
    'mlp': 'MNIST homework report: the multi-layer perceptron (case 2)',
    'cnn': 'MNIST homework report: the convolutional network',
    'all': 'MNIST homework report: softmax regression, the MLP and the CNN',
}


def handout_assignment(repo_root=REPO_ROOT):
    """The assignment of this folder: the one a handout records in
    tools/submission.json, or 'all' in the reference repository."""
    try:
        recorded = json.loads((Path(repo_root) / 'tools' / 'submission.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return 'all'
    name = recorded.get('assignment') if isinstance(recorded, dict) else None
    return name if name in ASSIGNMENT_TITLES else 'all'


def experiments_of(assignment, experiments=None):
    """The experiments of an assignment's report, in order."""
    experiments = EXPERIMENTS if experiments is None else experiments
    return [e for e in experiments if assignment == 'all' or e.assignment == assignment]


# The student's own analysis, one section per page with a question ("## <name>");
# the student report puts each section in the box under its page's question.
ANALYSIS_FILE = HERE / 'analysis.md'
ANALYSIS_HEADING = re.compile(r'^##\s+(?P<name>[\w-]+)')

# The page after the momentum experiment's (model_pictures.py) has a question too.
PICTURES_SECTION = ('momentum_pictures',
                    'What do the class templates show? Which digits does the model confuse most, '
                    'and why? Look at the misclassified images: would you have read them right?')


def analysis_sections(experiments):
    """[(name, question)] of the pages with a question, in the order of the report."""
    sections = []
    for experiment in experiments:
        sections.append((experiment.name, experiment.question))
        if experiment.name == model_pictures.EXPERIMENT:
            sections.append(PICTURES_SECTION)
    return sections


def is_reference(repo_root=REPO_ROOT):
    """True in the instructors' reference (its code holds the solution
    regions, see tools/handout.py), False in a student handout."""
    for name in runs.CODE_FILES:
        path = Path(repo_root) / name
        if path.is_file() and '### BEGIN SOLUTION' in path.read_text(encoding='utf-8'):
            return True
    return False


def analysis_template(sections):
    lines = ['# Your analysis for the report',
             '',
             'Write your analysis under each heading (keep the "## name" lines), then run',
             '`python3 tools/quickstart.py report` again: each section goes into the box on its',
             'page of report.pdf (runs are cached: it only redraws the PDF). Lines starting with',
             '">" are the questions and are not copied. A box holds about 10 lines; a longer',
             'analysis continues on an extra page after its page (the report says so). You may',
             'write in Chinese (中文): the report uses a Chinese font when the computer has one.', '']
    for name, question in sections:
        lines += [f'## {name}', '', f'> {question}', '', '']
    return '\n'.join(lines)


def read_analysis(path, sections):
    """{section name: the student's text (None if empty)} for sections =
    [(name, question)]. Writes the template (the headings and questions)
    first if the file does not exist."""
    path = Path(path)
    if not path.exists():
        with atomic_write(path, 'w', encoding='utf-8') as f:
            f.write(analysis_template(sections))
        print(f'Wrote {path}: write your analysis there and run the report again.', flush=True)
    written, current = {}, None
    for line in path.read_text(encoding='utf-8').splitlines():
        match = ANALYSIS_HEADING.match(line)
        if match:
            current = match['name']
            written.setdefault(current, [])
        elif current is not None and not line.lstrip().startswith('>'):
            written[current].append(line)
    return {name: ('\n'.join(written.get(name, [])).strip() or None) for name, _ in sections}


# What the setup page says about each hyper-parameter.
SETTING_MEANING = {
    'max_epoch': 'passes over the training set',
    'batch_size': 'images per update',
    'learning_rate': 'step size of SGD',
    'momentum': 'v = momentum * v - lr * grad (0 = plain SGD)',
    'seed': 'initial weights and shuffling order (same for every run)',
    'normalize': "pixel scaling ('image_mean': /255, minus each image's mean)",
    'hidden_sizes': 'hidden layer widths ([] = softmax regression)',
}


# ---------------------------------------------------------------------------
# Running the experiments
# ---------------------------------------------------------------------------

def estimated_cost(cfg):
    """A rough relative cost of a run (epochs times the work of an epoch), to
    start the longest runs first when they are shared out among workers."""
    work = 30.0 if cfg.get('model') == 'cnn' else 1.0 + sum(cfg.get('hidden_sizes') or []) / 64
    return cfg['max_epoch'] * work * (1.0 + 20.0 / cfg['batch_size'])


def run_all(experiments, quick, data_root, cache_dir, force=False, log=print, jobs=1,
            when_ready=None):
    """Train (or load from the cache) every run of every experiment.

    jobs > 1: the runs to train are shared out among that many worker
    processes, each with one BLAS thread; every run is seeded, so the numbers
    are those of jobs=1. when_ready(experiment, page_runs, records), if
    given, is called as soon as all runs of an experiment are in (page_runs
    = [{'label', 'value', 'key'}]), while the workers train the others.
    Returns (plan, records, stats): plan = [(experiment, [(label, value,
    key)])], records = {key: record}, stats = counts and seconds.
    """
    data_fp = runs.data_fingerprint(data_root)
    code_fp = runs.code_fingerprint()
    plan, todo = [], {}
    for experiment in experiments:         # validate every cfg before training anything
        entries = []
        for label, value, cfg in experiment.runs(quick):
            cfg = dict(cfg, data_root=str(data_root))
            key = runs.run_key(cfg, data_fp, code_fp)
            todo.setdefault(key, (experiment.name, label, cfg))
            entries.append((label, value, key))
        plan.append((experiment, entries))

    found, start = {}, time.perf_counter()     # key: record, or the reason it is missing
    width = len(str(len(todo)))
    done = iter(range(1, len(todo) + 1))
    waiting, ahead_seconds = list(plan), 0.0    # experiments not yet handed to when_ready

    def hand_over_ready():
        nonlocal ahead_seconds
        for experiment, entries in list(waiting):
            if all(isinstance(found.get(key), dict) for _, _, key in entries):
                waiting.remove((experiment, entries))
                if when_ready is not None:
                    clock = time.perf_counter()
                    when_ready(experiment, [{'label': label, 'value': value, 'key': key}
                                            for label, value, key in entries], found)
                    ahead_seconds += time.perf_counter() - clock

    def report(key, record, error, how):
        name, label, _ = todo[key]
        prefix = f'[{next(done):>{width}}/{len(todo)}] {name}: {label}'
        if error is not None:
            log(f'{prefix}: skipped: {error}', flush=True)
            return
        s = runs.summarize(record, VAL_TARGET)
        result = (f"diverged at epoch {s['diverged_at']['epoch']}" if s['status'] == runs.DIVERGED
                  else f"val {observations.pct(s['final_val_acc'])}, "
                       f"test {observations.pct(s['test_acc'])}"
                       + (' (unstable)' if s['status'] == runs.UNSTABLE else ''))
        log(f'{prefix}: {how}: {result}', flush=True)

    to_train = []
    for key in todo:
        record = None if force else runs.load_cached(cache_dir, key)
        if record is None:
            to_train.append(key)
        else:
            found[key] = record
            report(key, record, None, 'from cache')
    to_train.sort(key=lambda key: -estimated_cost(todo[key][2]))
    workers = min(jobs, len(to_train))
    if workers > 1:
        log(f'Training {len(to_train)} runs in {workers} worker processes (one BLAS thread each) ...',
            flush=True)
    tasks = [(key, todo[key][2], str(cache_dir), data_fp, code_fp) for key in to_train]
    # Experiments whose runs are all cached are handed over once the workers have
    # started, the others as their last run comes in. closing(): an error or
    # Ctrl-C in this loop (while drawing ahead) ends the workers at once.
    with contextlib.closing(_train(tasks, workers, on_started=hand_over_ready)) as finished:
        for key, record, error in finished:
            if error is not None and not OTHER_ASSIGNMENT.search(error):
                raise SystemExit(f'\nmake_report.py: {error}\nThe report trains your code: write the '
                                 f'TODOs first (python3 tools/quickstart.py test lists them).')
            found[key] = error if record is None else record
            how = None if record is None else (
                f"{len(record['history']['train_loss'])} epochs in {record['wall_seconds']:.1f} s")
            report(key, record, error, how)
            hand_over_ready()

    records = {key: found[key] for key in todo if isinstance(found[key], dict)}
    skipped = {todo[key][0]: why for key, why in found.items() if isinstance(why, str)}
    plan = [(experiment, entries) for experiment, entries in plan
            if experiment.name not in skipped and all(key in records for _, _, key in entries)]
    if not plan:
        raise SystemExit('make_report.py: no experiment could run: ' + '; '.join(skipped.values()))
    trained = sum(key in records for key in to_train)
    loads = [v for r in records.values() for v in r.get('load_average') or [] if v is not None]
    stats = {'runs': len(records), 'trained': trained, 'cached': len(records) - trained,
             'jobs': max(workers, 1),
             'skipped_experiments': sorted(skipped),
             'load_average_range': [min(loads), max(loads)] if loads else None,
             'run_seconds': time.perf_counter() - start,
             'drawing_ahead_seconds': ahead_seconds,   # in run_seconds, while workers train
             'training_seconds_all_runs': sum(runs.summarize(r, VAL_TARGET)['train_seconds']
                                              for r in records.values())}
    return plan, records, stats


def _train(tasks, workers, on_started=lambda: None):
    """Yield (key, record, error) of each task as it finishes: in this process
    when workers <= 1, else in `workers` processes with one BLAS thread each
    (started fresh, 'spawn', so that the thread setting takes effect before
    they import NumPy). on_started() is called once the workers have their
    tasks (or before training in this process). Ctrl-C stops the workers;
    finished runs are cached."""
    main_file = getattr(sys.modules['__main__'], '__file__', None)
    if main_file is not None and not os.path.exists(main_file):
        workers = 1        # a script read from stdin: a 'spawn' worker could not start it again
    if workers <= 1:
        on_started()
        for task in tasks:
            yield runs.train_in_worker(task)
        return
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: '1' for name in THREAD_VARIABLES})    # inherited by the workers
    try:
        pool = multiprocessing.get_context('spawn').Pool(workers, initializer=runs.ignore_interrupts)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    with pool:                             # leaving the block (Ctrl-C included) ends the workers
        finished = pool.imap_unordered(runs.train_in_worker, tasks)
        on_started()                       # this process may work while they train
        yield from finished


def build_results(plan, records, stats, quick, data_root, started, analysis=None,
                  assignment='all'):
    """Everything the report states, as one JSON-ready dict (results.json).

    analysis=None: the instructors' reference report, with the observations
    computed from the numbers. Otherwise the student report: {experiment
    name: the student's text or None}, and no computed observations (they
    would be every correct student's identical answer)."""
    result_runs = {}
    for key, record in records.items():
        history = {k: v for k, v in record['history'].items() if k not in ('iter_loss', 'iter_acc')}
        result_runs[key] = {
            'cfg': record['cfg'], 'status': record['status'],
            'diverged_at': record['diverged_at'], 'history': history,
            'test_loss': record['test_loss'], 'test_acc': record['test_acc'],
            'summary': runs.summarize(record, VAL_TARGET),
            'finished_at': record['finished_at'], 'used_by': [],
        }
    experiments = []
    for experiment, entries in plan:
        items = [{'label': label, 'value': value, 'key': key,
                  'summary': result_runs[key]['summary']} for label, value, key in entries]
        for item in items:
            result_runs[item['key']]['used_by'].append(f"{experiment.name}: {item['label']}")
        if analysis is not None:
            found = []
        elif experiment.vary is None:
            found = observations.observe_single(items[0])
        else:
            found = observations.observe_comparison(items, experiment.vary,
                                                    speed=experiment.observe_speed)
        experiments.append({
            'name': experiment.name, 'section': experiment.section, 'title': experiment.title,
            'vary': experiment.vary,
            'runs': [{k: item[k] for k in ('label', 'value', 'key')} for item in items],
            'observations': found,
            'question': experiment.question,
            'analysis': None if analysis is None else analysis.get(experiment.name),
        })
    any_record = next(iter(records.values()))
    sections = analysis_sections([experiment for experiment, _ in plan])
    return {
        'title': ASSIGNMENT_TITLES[assignment],
        'assignment': assignment,
        'mode': 'quick' if quick else 'full',
        'audience': 'instructor' if analysis is None else 'student',
        'generated_at': started.isoformat(timespec='seconds'),
        'base_cfg': dict(BASE_CFG, max_epoch=QUICK_EPOCHS) if quick else dict(BASE_CFG),
        'val_target': VAL_TARGET,
        'data': dict(any_record['data'], root=str(data_root)),
        'machine': runs.machine_info(),
        'timing': stats,
        'status_meaning': runs.STATUS_MEANING,
        'experiments': experiments,
        'analysis_sections': [{'name': name, 'question': question,
                               'analysis': None if analysis is None else analysis.get(name)}
                              for name, question in sections],
        'runs': result_runs,
    }


# ---------------------------------------------------------------------------
# The PDF
# ---------------------------------------------------------------------------

def _acc(value):
    return '-' if value is None else f'{100 * value:.2f}'


def _num(value, fmt='{:.3g}'):
    return '-' if value is None else fmt.format(value)


def parameter_count(num_features, hidden_sizes, num_classes):
    widths = [num_features] + list(hidden_sizes) + [num_classes]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def model_description(data, cfg):
    """One sentence on the model a run's cfg builds."""
    d, c = data['num_features'], data['num_classes']
    if cfg.get('model') == 'cnn':
        k = cfg.get('conv_kernel_size', 3)
        blocks = ', '.join(f'conv {n} filters {k}x{k} + ReLU + 2x2 max-pool'
                           for n in cfg['conv_channels'])
        fc = ''.join(f', FC {n} + ReLU' for n in cfg['fc_sizes'])
        return f'CNN on 28x28 images: {blocks}{fc}, FC {c}; softmax cross-entropy'
    hidden = list(cfg.get('hidden_sizes') or [])
    n = parameter_count(d, hidden, c)
    if not hidden:
        return (f'softmax regression (the homework): y = softmax(W^T x + b), W of {d} x {c} '
                f'and b of {c}, {n:,} parameters, cross-entropy loss')
    return (f"MLP {'-'.join(map(str, [d] + hidden + [c]))} with {cfg.get('activation', 'relu')} "
            f"hidden layer{'s' if len(hidden) > 1 else ''}, {n:,} parameters, "
            f"{cfg.get('loss', 'softmax_cross_entropy').replace('_', ' ')} loss")


def settings_description(cfg, vary=None):
    """The training settings of a cfg in a few words (without the `vary` key)."""
    parts = [('max_epoch', f"{cfg['max_epoch']} epochs"), ('batch_size', f"batch {cfg['batch_size']}"),
             ('learning_rate', f"lr {cfg['learning_rate']:g}"),
             ('momentum', f"momentum {cfg['momentum']:g}")]
    if cfg.get('weight_decay'):
        parts.append(('weight_decay', f"weight decay {cfg['weight_decay']:g}"))
    if cfg.get('lr_schedule', 'constant') != 'constant':
        parts.append(('lr_schedule', f"lr x {cfg['lr_decay_factor']:g} every "
                                     f"{cfg['lr_decay_every']} epoch(s)"))
    parts.append(('seed', f"seed {cfg['seed']}"))
    return ', '.join(text for key, text in parts if key != vary)


def write_setup_page(writer, results, records):
    page = writer.new_page('Title and setup')
    quick = results['mode'] == 'quick'
    page.heading(results['title'], size=17, gap=0.05)
    page.paragraph('Generated by report/make_report.py on ' + results['generated_at'].replace('T', ' ')
                   + ('.  QUICK PREVIEW: a subset of the runs with few epochs; run without '
                      '--quick for the report.' if quick else '.'),
                   color='firebrick' if quick else '0.3', gap=0.25)

    data = results['data']
    page.heading('Setup', size=13)
    page.paragraph(f"Data: MNIST-format IDX files in {data['root']}: {data['n_train']:,} training, "
                   f"{data['n_val']:,} validation (the last 1/12 of the training file) and "
                   f"{data['n_test']:,} test images of {data['num_features']} pixels, "
                   f"{data['num_classes']} classes. Hyper-parameters are compared on the "
                   f"validation set; the test set is only evaluated at the end of each run.",
                   bullet=True)
    page.paragraph('Each page compares runs that differ in one setting; all runs use the same seed, '
                   'so runs of one model start from the same weights. '
                   f"\"Epochs to {100 * results['val_target']:g}%\" is the number of epochs after "
                   f"which the validation accuracy first reaches {100 * results['val_target']:g}%. "
                   'Times are CPU seconds of the training process (validation excluded); '
                   '"s / epoch" is the median over the epochs of a run.', bullet=True)

    page.heading('Models and settings of the runs', size=13)
    models = {}                              # model description: the experiments using it
    for experiment in results['experiments']:
        for run in experiment['runs']:
            described = model_description(data, results['runs'][run['key']]['cfg'])
            models.setdefault(described, [])
            if experiment['section'].split(' ')[0] not in models[described]:
                models[described].append(experiment['section'].split(' ')[0])
    for described, sections in models.items():
        page.paragraph(f"Model{'' if len(models) == 1 else ' of ' + ', '.join(sections)}: "
                       f"{described}.", bullet=True)
    for experiment in results['experiments']:
        cfg = results['runs'][experiment['runs'][0]['key']]['cfg']
        compared = ('; compared: ' + ', '.join(run['label'] for run in experiment['runs'])
                    if experiment['vary'] else '')
        page.paragraph(f"{experiment['section'].split(' ')[0]} {experiment['title']}: "
                       f"{settings_description(cfg, experiment['vary'])}{compared}.", bullet=True)

    machine, timing = results['machine'], results['timing']
    page.heading('Machine and time', size=13)
    jobs = timing.get('jobs', 1)
    for text in (
            f"CPU: {machine['cpu']}, {machine['logical_cores']} logical cores; {machine['platform']}",
            f"Python {machine['python']}, NumPy {machine['numpy']} (BLAS: {machine['blas']}), "
            f"matplotlib {machine['matplotlib']}",
            f"BLAS threads: {machine['blas_threads']}. The project runs with one BLAS thread "
            f"unless OPENBLAS_NUM_THREADS is set (README, Speed): on a shared machine a second "
            f"thread makes the timings of small matrix products erratic.",
            f"{timing['runs']} distinct runs: {timing['trained']} trained now"
            + (f" ({jobs} at a time, in worker processes with one BLAS thread each)" if jobs > 1 else '')
            + f", {timing['cached']} loaded from the cache; this regeneration spent "
            f"{timing['run_seconds']:.1f} s on them. CPU time of training all runs: "
            f"{timing['training_seconds_all_runs']:.1f} s.",
            'Times are CPU time (time.process_time) of the process that trained the run: other '
            'programs barely change it, unlike the wall clock'
            + (f" (1-minute load average between {timing['load_average_range'][0]:g} and "
               f"{timing['load_average_range'][1]:g} during the runs, on "
               f"{machine['logical_cores']} cores)" if timing['load_average_range'] else '')
            + '. Differences of a few percent are still noise; regenerate (--force) on an idle '
              'machine for the cleanest timings.'):
        page.paragraph(text, bullet=True)

    if timing.get('skipped_experiments'):
        page.paragraph('Left out (they need code this folder does not have): '
                       + ', '.join(timing['skipped_experiments']) + '.', bullet=True)

    page.heading('Status of a run', size=13)
    for status, meaning in results['status_meaning'].items():
        page.paragraph(f'{status}: {meaning}', bullet=True)

    page.heading('Contents', size=13)
    for experiment in results['experiments']:
        page.paragraph(f"{experiment['section']}: {experiment['title']}", bullet=True, gap=0.02)
    writer.finish_page(page)


def write_findings(page, item, results, reserve=0.0):
    """The reference report's computed observations, or the box with the
    student's own analysis of this page. item: an entry of results['experiments']
    or results['analysis_sections']; reserve: the inches the page must keep below."""
    if results.get('audience') != 'student':
        for found in item.get('observations', []):
            page.paragraph(found['text'], bullet=True)
        return
    text = item['analysis'] or (
        f"(Write your analysis in report/analysis.md under \"## {item['name']}\", then run "
        f"the report again.)")
    moved = page.analysis_box('Your analysis: ' + item['question'], text,
                              placeholder=item['analysis'] is None, reserve=reserve)
    if moved:
        page.writer.notices.append(
            f"Your analysis '## {item['name']}' is {moved} lines longer than its box on page "
            f"{page.number}: the rest is on page {page.number + 1} (keep it to about 10 lines "
            f"to fit the box).")


def _plot_content(entries):
    """What a block of plots shows (its name in the figure cache)."""
    return [{'label': e['label'], 'value': e.get('value'), 'summary': e['summary'],
             'history': e['record']['history']} for e in entries]


def plot_entries(page_runs, records):
    """The runs of a page as its plots take them, from page_runs =
    [{'label', 'value', 'key'}]: [{'label', 'value', 'record', 'summary'}]."""
    return [{'label': run['label'], 'value': run['value'], 'record': records[run['key']],
             'summary': runs.summarize(records[run['key']], VAL_TARGET)} for run in page_runs]


def experiment_plots(spec, entries):
    """(draw, content) of the 2 x 2 block of plots of an experiment's page,
    for pages.Page.plots and pages.plots_png: one run's curves, or the runs
    compared (the fourth panel as spec.summary_plot says)."""
    if spec.vary is None:
        return (lambda fig, gs: plots.plot_single_run(fig, gs, entries[0])), _plot_content(entries[:1])
    return ((lambda fig, gs: plots.plot_comparison(fig, gs, entries, spec.vary, spec.summary_plot)),
            [_plot_content(entries), spec.vary, spec.summary_plot])


def draw_ahead(cache_dir):
    """A when_ready for run_all: draws an experiment's plots (and the momentum
    run's pictures) into the figure cache as soon as its runs are in, so that
    with workers this happens while the longest runs still train, and
    writing the PDF afterwards only places them."""
    def when_ready(experiment, page_runs, records):
        pages.plots_png(Path(cache_dir) / 'figures', 2, 2,
                        *experiment_plots(experiment, plot_entries(page_runs, records)))
        if experiment.name == model_pictures.EXPERIMENT:
            for run in page_runs:
                if run['value'] == model_pictures.VALUE and records[run['key']]['status'] != runs.DIVERGED:
                    model_pictures.prepare(records[run['key']], cache_dir)
    return when_ready


def write_single_page(writer, experiment, spec, results, records):
    run = experiment['runs'][0]
    record, summary = records[run['key']], results['runs'][run['key']]['summary']
    page = writer.new_page(f"{experiment['section']}: {experiment['title']}")
    page.heading(experiment['section'])
    page.paragraph(spec.intro, color='0.3')
    header = ['Split', 'Images', 'Loss', 'Accuracy (%)']
    reserve = 0.1 + page.table_height(header, [[]] * 3) + 0.2 + 2 * pages.LINE + 0.1 + pages.PLOT_HEIGHT
    write_findings(page, experiment, results, reserve=reserve)
    page.y -= 0.1
    data = results['data']
    page.table(header, [
        ['training (mean over the last epoch)', f"{data['n_train']:,}",
         _num(summary['final_train_loss'], '{:.4f}'), _acc(summary['final_train_acc'])],
        ['validation (after the last epoch)', f"{data['n_val']:,}",
         _num(summary['final_val_loss'], '{:.4f}'), _acc(summary['final_val_acc'])],
        ['test', f"{data['n_test']:,}", _num(summary['test_loss'], '{:.4f}'),
         _acc(summary['test_acc'])],
    ], col_widths=[3, 1, 1, 1.2])
    page.paragraph(f"Training time: {summary['epochs_completed']} epochs of "
                   f"{summary['updates_per_epoch']} updates, {summary['train_seconds']:.2f} CPU s in "
                   f"total, {summary['sec_per_epoch']:.3f} s per epoch (median).", color='0.3')
    page.plots(2, 2, *experiment_plots(spec, plot_entries([run], records)))
    writer.finish_page(page, figure_name=f"{page.number:02d}-{experiment['name']}")


def write_comparison_page(writer, experiment, spec, results, records, new_section):
    page = writer.new_page(f"{experiment['section']}: {experiment['title']}")
    if new_section:
        page.heading(experiment['section'])
    page.heading(experiment['title'], size=11.5)
    if spec.intro:
        page.paragraph(spec.intro, color='0.3')
    target = f"{100 * results['val_target']:g}%"
    header = ['Run', 'Status', 'Epochs\ndone', 'Train loss\n(last\nepoch)',
              'Train acc\n(%)', 'Val acc\n(%)', 'Test acc\n(%)', f'Epochs\nto {target}\nval acc',
              'CPU s /\nepoch\n(median)', f'CPU s to\n{target}\nval acc', 'Updates\n/ epoch']
    rows = []
    for run in experiment['runs']:
        s = results['runs'][run['key']]['summary']
        rows.append([run['label'], s['status'], str(s['epochs_completed']),
                     _num(s['final_train_loss'], '{:.4g}'), _acc(s['final_train_acc']),
                     _acc(s['final_val_acc']), _acc(s['test_acc']),
                     _num(s['epochs_to_target'], '{}') if s['epochs_to_target'] else 'never',
                     _num(s['sec_per_epoch'], '{:.3f}'),
                     _num(s['seconds_to_target'], '{:.2f}'), str(s['updates_per_epoch'])])
    reserve = 0.1 + page.table_height(header, rows) + 0.2 + pages.PLOT_HEIGHT
    write_findings(page, experiment, results, reserve=reserve)
    page.y -= 0.1
    # The first column as wide as its longest label (about 0.058 inch per character at 7.5 pt).
    others = [1.1, 0.8, 1.2, 1, 1, 1, 1, 1, 1, 1]
    need = 0.058 * max(len(row[0]) for row in rows) + 0.15
    width = pages.A4[0] - 2 * pages.MARGIN
    first = max(1.9, need * sum(others) / (width - need))
    page.table(header, rows, col_widths=[first] + others, size=7.5)
    page.plots(2, 2, *experiment_plots(spec, plot_entries(experiment['runs'], records)))
    writer.finish_page(page, figure_name=f"{page.number:02d}-{experiment['name']}")


def write_pdf(results, records, experiments, out_dir, page_png_dir=None, cache_dir=None,
              cjk_font=pages.visualize.CJK_FONT):
    """report.pdf and figures/*.png; returns (page titles, figure files, notices).

    With a cache_dir, the blocks of plots already drawn are taken from
    cache_dir/figures, and a page after the momentum experiment's shows what
    its momentum-0.9 run learned (the weights are cached there, see
    model_pictures.py). notices: what the console should say (an analysis
    longer than its box, no Chinese font)."""
    figure_dir = out_dir / 'figures'
    specs = {spec.name: spec for spec in experiments}
    sections = {item['name']: item for item in results.get('analysis_sections', [])}
    metadata = {'Title': results['title'], 'Author': 'report/make_report.py',
                'Subject': 'Homework report (notes §1.3): ' + results['mode'] + ' run',
                'Keywords': 'MNIST, softmax regression, MLP, CNN, momentum, learning rate, batch size'}
    with atomic_write(out_dir / 'report.pdf', 'wb') as f:
        writer = pages.ReportWriter(f, figure_dir, metadata, page_png_dir=page_png_dir,
                                    figure_cache=None if cache_dir is None else Path(cache_dir) / 'figures',
                                    cjk_font=cjk_font)
        try:
            write_setup_page(writer, results, records)
            previous_section = None
            for experiment in results['experiments']:
                spec = specs[experiment['name']]
                if experiment['vary'] is None:
                    write_single_page(writer, experiment, spec, results, records)
                else:
                    write_comparison_page(writer, experiment, spec, results, records,
                                          new_section=experiment['section'] != previous_section)
                previous_section = experiment['section']
                if experiment['name'] == model_pictures.EXPERIMENT and cache_dir is not None:
                    pictures = sections.get(PICTURES_SECTION[0])
                    model_pictures.write_page(
                        writer, results, records, cache_dir,
                        findings=None if pictures is None else
                        (lambda page: write_findings(page, pictures, results,
                                                     reserve=model_pictures.PICTURES_HEIGHT)))
        finally:
            writer.close()
    # Remove figures of experiments that no longer exist.
    for stale in figure_dir.glob('*.png'):
        if f'{figure_dir.name}/{stale.name}' not in writer.figures:
            stale.unlink()
    return writer.pages, writer.figures, writer.notices


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Run the report experiments (cached) and write report.pdf and results.json.')
    parser.add_argument('--quick', action='store_true',
                        help=f'a subset of the runs with {QUICK_EPOCHS} epochs each (for CI); '
                             'writes to report/quick/ unless --out-dir is given')
    parser.add_argument('--force', action='store_true', help='retrain runs even if cached')
    parser.add_argument('--assignment', choices=list(ASSIGNMENT_TITLES), default=handout_assignment(),
                        help="the assignment whose report to make (default: this handout's, "
                             "or 'all' in the reference repository: %(default)s)")
    parser.add_argument('--jobs', type=int, default=usable_cores(), metavar='N',
                        help='train up to N runs at once, in worker processes with one BLAS thread '
                             'each (default: the number of cores, %(default)s; 1: one after another '
                             'in this process). The numbers do not depend on N.')
    parser.add_argument('--data-root', type=Path, default=REPO_ROOT / 'data',
                        help='folder with the MNIST IDX files (default: data/)')
    parser.add_argument('--out-dir', type=Path, default=None,
                        help='where report.pdf, results.json and figures/ go '
                             '(default: report/, or report/quick/ with --quick)')
    parser.add_argument('--page-png', type=Path, default=None, metavar='FOLDER',
                        help='also save every whole page as a PNG in FOLDER (a preview '
                             'without a PDF viewer)')
    parser.add_argument('--cache-dir', type=Path, default=HERE / 'cache',
                        help='one JSON file per finished run (default: report/cache/)')
    audience = parser.add_mutually_exclusive_group()
    audience.add_argument('--instructor', dest='instructor', action='store_true', default=None,
                          help='the reference report: observations computed from the numbers '
                               '(the default where the reference solution is present)')
    audience.add_argument('--student', dest='instructor', action='store_false',
                          help='the student report: figures and tables, and a box per page for '
                               'your analysis from --analysis (the default in a handout)')
    parser.add_argument('--analysis', type=Path, default=ANALYSIS_FILE,
                        help='your analysis, one "## <experiment>" section per page '
                             '(default: report/analysis.md; written with the questions if missing)')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs {args.jobs}: give 1 or more worker processes')
    return args


def main(argv=None, experiments=None):
    """Run everything and write the report; returns the results dict."""
    args = parse_args(argv)
    experiments = experiments_of(args.assignment, experiments)
    if not experiments:
        raise SystemExit(f'make_report.py: the {args.assignment!r} report has no experiment.')
    out_dir = args.out_dir or (HERE / 'quick' if args.quick else HERE)
    started = datetime.datetime.now().astimezone()
    clock = time.perf_counter()
    print(f"{'Quick report' if args.quick else 'Report'}: data {args.data_root}, "
          f"cache {args.cache_dir}, output {out_dir}; BLAS threads: {describe_threads()}",
          flush=True)
    try:
        # Before any training: a folder we cannot write would lose the runs.
        runs.check_writable(args.cache_dir, 'cache')
        runs.check_writable(out_dir, 'report')
    except PermissionError as error:
        raise SystemExit(f'make_report.py: {error}') from None
    # Temporary files of a run killed while writing (kill -9, power cut).
    for folder in (args.cache_dir, out_dir, out_dir / 'figures'):
        remove_stale_temporaries(folder)
    try:
        with runs.CacheLock(args.cache_dir, on_wait=lambda message: print(message, flush=True)):
            return _make_report(args, experiments, out_dir, started, clock)
    except KeyboardInterrupt:
        print('\nInterrupted. Finished runs are cached: run the same command again to resume.',
              file=sys.stderr)
        raise SystemExit(130)


def _make_report(args, experiments, out_dir, started, clock):
    """main() once it holds the cache folder."""
    plan, records, stats = run_all(experiments, args.quick, args.data_root, args.cache_dir,
                                   force=args.force, jobs=args.jobs,
                                   when_ready=draw_ahead(args.cache_dir))

    instructor = is_reference() if args.instructor is None else args.instructor
    analysis = None if instructor else read_analysis(
        args.analysis, analysis_sections([e for e, _ in plan]))
    results = build_results(plan, records, stats, args.quick, args.data_root, started,
                            analysis=analysis, assignment=args.assignment)
    print('Writing the PDF ...', flush=True)
    try:
        page_titles, figures, notices = write_pdf(results, records, experiments, out_dir,
                                                  page_png_dir=args.page_png, cache_dir=args.cache_dir)
        for notice in notices:
            print(notice, flush=True)
        results['notices'] = notices
        results['pages'] = page_titles
        results['figures'] = figures
        results['timing']['total_seconds'] = time.perf_counter() - clock
        with atomic_write(out_dir / 'results.json', 'w') as f:
            json.dump(results, f, indent=1)
    except KeyboardInterrupt:
        # atomic_write has removed its temporary file: the previous report.pdf
        # and results.json (if any) are untouched.
        print(f"\nInterrupted while writing the report: {out_dir / 'report.pdf'} was not "
              f"changed. The runs are cached: run the same command again to write it "
              f"(a few seconds).", file=sys.stderr)
        raise SystemExit(130)
    print(f"Wrote {out_dir / 'report.pdf'} ({len(page_titles)} pages), "
          f"{out_dir / 'results.json'} and {len(figures)} figures in "
          f"{results['timing']['total_seconds']:.1f} s.", flush=True)
    return results


if __name__ == '__main__':
    main()
