"""Pack your homework for handing in: exactly the files that are graded or read.

    python tools/submit.py --name 2024011234_ZhangSan
    python tools/submit.py --name 2024011234_ZhangSan --no-tests    # skip the self-check

It writes <name>.zip in the current folder with your code (for softmax:
loss.py, optimizer.py), your executed notebook (runner.ipynb) and your
report (report/report.pdf) if it exists; never the data, a virtual
environment or caches. Before packing it runs the self-check (the tests),
and it warns when a TODO still raises NotImplementedError or the notebook
has no outputs. It prints what it packed and how big the zip is.
"""

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
EXTRA = ['report/report.pdf']   # handed in when present: the report made from your own code
TODO_LEFT = 'is not implemented yet: replace this raise with your code'


def what_to_hand_in(root):
    """(assignment, [files]) from tools/submission.json (written into each handout)."""
    info = root / 'tools' / 'submission.json'
    if info.is_file():
        data = json.loads(info.read_text(encoding='utf-8'))
        return data['assignment'], list(data['files'])
    manifest = json.loads((root / 'tools' / 'assignments.json').read_text(encoding='utf-8'))
    name = manifest['default_assignment']
    return name, list(manifest['assignments'][name]['student_files'])


def warnings_for(root, files):
    """What looks unfinished: TODOs that still raise, a notebook never run."""
    found = []
    for name in files:
        path = root / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif name.endswith('.py'):
            for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
                if 'raise NotImplementedError' in line and TODO_LEFT in line:
                    found.append(f"{name}, line {number}: this TODO still raises NotImplementedError")
        elif name.endswith('.ipynb'):
            try:
                cells = json.loads(path.read_text(encoding='utf-8')).get('cells', [])
            except ValueError:
                found.append(f"{name} is not a readable notebook")
                continue
            if not any(cell.get('outputs') for cell in cells if cell.get('cell_type') == 'code'):
                found.append(f"{name} has no outputs: run it (Kernel > Restart & Run All) and save it")
    return found


def run_self_check(root):
    """Run the tests; returns (passed, summary line)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get('OPENBLAS_NUM_THREADS', '1'), MPLBACKEND='Agg')
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider'], cwd=root, env=env,
                            capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return result.returncode == 0, (lines[-1] if lines else result.stderr.strip()[-300:])


def pack(root, files, out):
    """Write the zip (files under their relative names); returns [(name, bytes)]."""
    packed = []
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as zf:
        for name in files:
            path = root / name
            if path.is_file():
                zf.write(path, name)
                packed.append((name, path.stat().st_size))
    return packed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--name', required=True, help='your student id and name, e.g. 2024011234_ZhangSan '
                        '(the zip is named after it; the grader shows it as your name)')
    parser.add_argument('--no-tests', action='store_true', help='do not run the self-check first')
    parser.add_argument('--root', default=str(HERE), help='your homework folder (default: this one)')
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    assignment, files = what_to_hand_in(root)
    files = files + [f for f in EXTRA if f not in files]
    if not args.no_tests:
        print("Running the self-check (python -m pytest) ...")
        passed, summary = run_self_check(root)
        print(f"  {'passed' if passed else 'NOT all passed'}: {summary}")
        print("  (the self-check runs the public checks only; grading adds hidden ones and computes every "
              "score itself)")
    problems = warnings_for(root, [f for f in files if f not in EXTRA])
    if not (root / 'report' / 'report.pdf').is_file():
        problems.append("report/report.pdf not found: make your report first (see report/README.md)")
    out = Path.cwd() / f"{args.name}.zip"
    packed = pack(root, files, out)
    print(f"Wrote {out} ({out.stat().st_size / 1024:.0f} KB) for the '{assignment}' assignment with:")
    for name, size in packed:
        print(f"  {name} ({size / 1024:.0f} KB)")
    for problem in problems:
        print(f"WARNING: {problem}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
