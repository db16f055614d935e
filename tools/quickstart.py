"""One command to run the project on a fresh machine with only Python 3.10+.

    python3 tools/quickstart.py train      # train the homework on the shipped MNIST, test it, save the curves
    python3 tools/quickstart.py test       # run the test suite
    python3 tools/quickstart.py notebook   # open runner.ipynb in Jupyter
    python3 tools/quickstart.py report     # run the report's experiments, write report/report.pdf
    python3 tools/quickstart.py submit     # pack what to hand in into submission.zip

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


def command_line(command, extra):
    """(arguments for the venv's Python, interactive) of a quickstart command."""
    if command == 'test':
        return ['-m', 'pytest'] + extra, False
    if command == 'notebook':
        return ['-m', 'notebook', 'runner.ipynb'] + extra, True
    if command == 'report':
        return ['report/make_report.py'] + extra, False
    if command == 'submit':
        return ['tools/submit.py'] + extra, False
    return ['solver.py', '--quiet', '--plot', str(OUTPUTS / 'curves.png'),
            '--history', str(OUTPUTS / 'history.json')] + extra, False


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        sys.exit(__doc__)
    command, extra = argv[0], argv[1:]
    ensure_environment()
    if command == 'train':
        OUTPUTS.mkdir(exist_ok=True)
    args, interactive = command_line(command, extra)
    return run(args, interactive=interactive)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
