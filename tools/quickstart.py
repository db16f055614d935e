"""One command to run the project on a fresh machine with only Python 3.10+.

    python3 tools/quickstart.py test       # run the test suite
    python3 tools/quickstart.py train      # train the assignment's model on the shipped MNIST, test it, save the curves
    python3 tools/quickstart.py notebook   # open the assignment's notebook in Jupyter
    python3 tools/quickstart.py report     # run the report's experiments, write report/report.pdf
    python3 tools/quickstart.py submit     # pack what to hand in into submission-<assignment>.zip

A handout knows its assignment (tools/submission.json): softmax (the
homework model, runner.ipynb), mlp (the course's MLP, mlp.ipynb) or cnn (the
course's CNN, cnn.ipynb). In the reference repository choose one with
--assignment NAME (default softmax), e.g.
    python3 tools/quickstart.py train --assignment cnn

The first call creates a virtual environment in .venv and installs
requirements.txt into it (about a minute, once); later calls reuse it and
reinstall only when requirements.txt changes. Every command runs with one
BLAS thread unless you set OPENBLAS_NUM_THREADS yourself (threads.py).
Extra arguments are passed on:
    python3 tools/quickstart.py train --momentum 0 --max_epoch 5
    python3 tools/quickstart.py test -k dataloader
    python3 tools/quickstart.py report --quick
"""

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from threads import thread_environment  # noqa: E402  (standard library only)

VENV = Path(os.environ.get('QUICKSTART_VENV', ROOT / '.venv'))
REQUIREMENTS = ROOT / 'requirements.txt'
OUTPUTS = ROOT / 'outputs'


def venv_python():
    return VENV / ('Scripts/python.exe' if os.name == 'nt' else 'bin/python')


def ensure_environment():
    """Create .venv and install requirements.txt unless already up to date."""
    if sys.version_info < (3, 10):
        sys.exit(f"Python 3.10 or newer is needed; this is {sys.version.split()[0]}.")
    if not venv_python().exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (subprocess.CalledProcessError, OSError) as error:
            sys.exit(f"Could not create a virtual environment ({error}). On Debian/Ubuntu install "
                     f"it with 'apt install python3-venv', then run this command again.")

    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / 'requirements.sha256'
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return
    print("Installing numpy, matplotlib, jupyter and pytest into .venv (about a minute, once) ...",
          flush=True)
    log = VENV / 'pip-install.log'
    with open(log, 'w') as out:
        result = subprocess.run([str(venv_python()), '-m', 'pip', 'install', '--disable-pip-version-check',
                                 '-r', str(REQUIREMENTS)], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text().splitlines()[-20:]
        sys.exit("pip could not install requirements.txt; the end of its log "
                 f"({log}):\n" + "\n".join(tail))
    stamp.write_text(wanted + '\n')


def run(args, interactive=False):
    """Run a command with the venv's Python from the project folder; return its exit code.

    One BLAS thread unless you set OPENBLAS_NUM_THREADS yourself (threads.py):
    on a 2-core machine it is as fast as two or faster for the homework model
    (README, Speed) and does not collapse when another process is busy.
    interactive=True keeps matplotlib's default backend (the notebook shows
    its plots inline anyway).
    """
    env = thread_environment()
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    if not interactive:
        env.setdefault('MPLBACKEND', 'Agg')
    try:
        return subprocess.call([str(venv_python())] + args, cwd=ROOT, env=env)
    except KeyboardInterrupt:
        return 130


COMMANDS = ('train', 'test', 'notebook', 'report', 'submit')
ASSIGNMENTS = ('softmax', 'mlp', 'cnn')
DEFAULT_ASSIGNMENT = 'softmax'

# Each assignment's notebook, and the solver.py settings of the model that
# `train` trains: the homework's softmax regression (default cfg), the
# course's MLP 784-128-10 with the setting mlp.ipynb chose on the validation
# split, and the course's CNN with the setting of cnn.ipynb.
NOTEBOOKS = {'softmax': 'runner.ipynb', 'mlp': 'mlp.ipynb', 'cnn': 'cnn.ipynb'}
TRAIN_SETTINGS = {
    'softmax': [],
    'mlp': ['--hidden_sizes', '128', '--activation', 'relu', '--learning_rate', '0.1', '--momentum', '0.9',
            '--max_epoch', '20'],
    'cnn': ['--model', 'cnn', '--conv_channels', '8', '16', '--fc_sizes', '128', '--batch_size', '50',
            '--learning_rate', '0.05', '--momentum', '0.9', '--lr_schedule', 'step', '--lr_decay_every', '1',
            '--lr_decay_factor', '0.3', '--max_epoch', '2'],
}


def handout_assignment(root=None):
    """The assignment of a handout (tools/submission.json), or None in the
    reference repository."""
    try:
        return json.loads(((root or ROOT) / 'tools' / 'submission.json').read_text(encoding='utf-8'))['assignment']
    except (OSError, ValueError, KeyError):
        return None


def choose_assignment(extra, root=None):
    """(assignment, extra arguments without --assignment NAME)."""
    chosen, rest, i = None, [], 0
    while i < len(extra):
        if extra[i] == '--assignment' and i + 1 < len(extra):
            chosen, i = extra[i + 1], i + 2
            continue
        if extra[i].startswith('--assignment='):
            chosen = extra[i].split('=', 1)[1]
        else:
            rest.append(extra[i])
        i += 1
    own = handout_assignment(root)
    if own is not None:
        if chosen not in (None, own):
            sys.exit(f"This folder is the handout of the '{own}' assignment; --assignment {chosen} "
                     f"needs that assignment's handout.")
        return own, rest
    chosen = chosen or DEFAULT_ASSIGNMENT
    if chosen not in ASSIGNMENTS:
        sys.exit(f"Unknown assignment {chosen!r}: choose one of {', '.join(ASSIGNMENTS)}.")
    return chosen, rest


def running_as_root():
    return hasattr(os, 'geteuid') and os.geteuid() == 0


def command_line(command, extra, assignment=DEFAULT_ASSIGNMENT, in_handout=False):
    """(arguments for the venv's Python, interactive) of a quickstart command."""
    if command == 'test':
        return ['-m', 'pytest'] + extra, False
    if command == 'notebook':
        root_flag = ['--allow-root'] if running_as_root() and '--allow-root' not in extra else []
        return ['-m', 'notebook', NOTEBOOKS[assignment]] + root_flag + extra, True
    # In the reference repository the report and submit commands are told the
    # assignment; a handout's own files say it.
    chosen = [] if in_handout else ['--assignment', assignment]
    if command == 'report':
        return ['report/make_report.py'] + (chosen if assignment != DEFAULT_ASSIGNMENT else []) + extra, False
    if command == 'submit':
        return ['tools/submit.py'] + chosen + extra, False
    return ['solver.py', '--quiet', '--plot', str(OUTPUTS / 'curves.png'),
            '--history', str(OUTPUTS / 'history.json')] + TRAIN_SETTINGS[assignment] + extra, False


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        sys.exit(__doc__)
    command = argv[0]
    assignment, extra = choose_assignment(argv[1:])
    ensure_environment()
    if command == 'train':
        OUTPUTS.mkdir(exist_ok=True)
        print(f"Training the '{assignment}' assignment's model (settings: "
              f"{' '.join(TRAIN_SETTINGS[assignment]) or 'the default cfg'}) ...", flush=True)
    args, interactive = command_line(command, extra, assignment, in_handout=handout_assignment() is not None)
    if command == 'notebook' and '--allow-root' in args and '--allow-root' not in extra:
        print("Running as root (e.g. in a container or WSL): passing --allow-root to Jupyter.", flush=True)
    return run(args, interactive=interactive)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
