"""Pack exactly what to hand in, after a last check.

    python3 tools/quickstart.py submit              # -> submission-<assignment>.zip
    python3 tools/quickstart.py submit --report my-report.pdf
    python3 tools/quickstart.py submit --no-check   # skip running the tests

The zip holds your files of the assignment (tools/submission.json lists
them: e.g. loss.py, optimizer.py and the executed runner.ipynb for the
softmax homework, im2col.py and cnn.ipynb for the CNN) and your PDF report
(report/report.pdf unless you give --report), and nothing else: never the
data set, the virtual environment or caches (a zip of the whole folder is
hundreds of MB and is refused by the grader). Before packing it runs the
tests (the self-check) and warns when
- a TODO still raises NotImplementedError,
- the notebook has no outputs (it was not run) or stopped with an error,
- the report PDF is missing.
It then prints every file it packed and the size of the zip. The zip is
written atomically: an interrupted run leaves no half zip.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Used when neither tools/submission.json (written into a handout) nor
# tools/assignments.json (the instructors' manifest) is there.
DEFAULT_ASSIGNMENT = 'softmax'
DEFAULT_STUDENT_FILES = ['loss.py', 'optimizer.py', 'runner.ipynb']
DEFAULT_REPORT = 'report/report.pdf'

# What the handout puts where a student's code goes (tools/handout.py):
#     raise NotImplementedError('SGD.step is not implemented yet: replace ...')
TODO_RAISE_RE = re.compile(r"""raise NotImplementedError\((?P<quote>['"])(?P<target>[\w.]+) is not implemented yet""")


def todos_left(root, files=None):
    """[(file, function, line)] of every TODO that still raises
    NotImplementedError, in the given .py files (default: the .py files at
    the top of the project), in file order. tests/conftest.py uses it too."""
    root = Path(root)
    paths = sorted(root.glob('*.py')) if files is None else [root / f for f in files
                                                              if f.endswith('.py')]
    found = []
    for path in paths:
        try:
            lines = path.read_text(encoding='utf-8').splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, start=1):
            match = TODO_RAISE_RE.search(line)
            if match:
                found.append((path.name, match['target'], number))
    return found


def assignment_files(root, assignment=None):
    """(assignment name, [student files]) of this folder: a handout's own
    (tools/submission.json), or in the reference repository `assignment`
    (default: the manifest's default_assignment)."""
    for manifest in (root / 'tools' / 'submission.json', root / 'tools' / 'assignments.json'):
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding='utf-8'))
            if 'files' in data:                                          # submission.json
                if assignment not in (None, data['assignment']):
                    raise SystemExit(f"This folder is the handout of the '{data['assignment']}' assignment, "
                                     f"not of '{assignment}'.")
                return data['assignment'], list(data['files'])
            name = assignment or data.get('default_assignment', DEFAULT_ASSIGNMENT)   # assignments.json
            if name not in data['assignments']:
                raise SystemExit(f"Unknown assignment {name!r}: choose one of {', '.join(data['assignments'])}.")
            return name, list(data['assignments'][name]['student_files'])
    return DEFAULT_ASSIGNMENT, list(DEFAULT_STUDENT_FILES)


def notebook_problems(path):
    """Warnings about a notebook that was not run, or stopped with an error."""
    try:
        notebook = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        return [f'{path.name} cannot be read as a notebook ({error})']
    code = [cell for cell in notebook.get('cells', []) if cell.get('cell_type') == 'code']
    if not any(cell.get('outputs') for cell in code):
        return [f'{path.name} has no outputs: run all its cells (Kernel > Restart & Run All), '
                f'save it, then submit again']
    errors = [output for cell in code for output in cell.get('outputs', [])
              if output.get('output_type') == 'error']
    if errors:
        return [f"{path.name} stopped with {errors[0].get('ename', 'an error')}: "
                f"{errors[0].get('evalue', '')[:120]} (fix it, run all cells again, save)"]
    return []


def run_self_check(root):
    """Run the tests (except the notebook tests: submit checks the notebook's
    outputs instead); return (passed, last lines of the output)."""
    sys.path.insert(0, str(root))
    from threads import thread_environment
    env = thread_environment()
    env.setdefault('MPLBACKEND', 'Agg')
    command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--rootdir', str(root)]
    for path in sorted((root / 'tests').glob('test_*notebook*.py')):
        command += ['--deselect', path.relative_to(root).as_posix()]
    print('Self-check: running the tests (about half a minute; --no-check skips it) ...', flush=True)
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else result.stderr.strip()[-300:]
    if result.returncode == 0:
        return True, [f'self-check: {summary.strip("= ")}']
    # The list of TODOs left that tests/conftest.py prints under the summary.
    start = next((i for i, line in enumerate(lines) if line.startswith('=')
                  and 'TODOs still to do' in line), None)
    todo_block = ['  ' + line for line in lines[start + 1:-1]] if start is not None else []
    return False, [f'self-check FAILED: {summary.strip("= ")} (run python3 tools/quickstart.py test '
                   f'for the details)'] + todo_block


def human_size(size):
    for unit in ('bytes', 'KB', 'MB'):
        if size < 1024 or unit == 'MB':
            return f'{size} {unit}' if unit == 'bytes' else f'{size:.1f} {unit}'
        size /= 1024


def pack(root, out, files):
    """Write the zip atomically; returns [(name, size)]."""
    sys.path.insert(0, str(root))
    from fileio import atomic_write
    packed = []
    with atomic_write(out, 'wb') as f:
        with zipfile.ZipFile(f, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
            for name, path in files:
                archive.write(path, name)
                packed.append((name, path.stat().st_size))
    return packed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--report', type=Path, default=None,
                        help=f'your PDF report (default: {DEFAULT_REPORT})')
    parser.add_argument('--out', type=Path, default=None,
                        help='the zip to write (default: submission-<assignment>.zip in the project folder)')
    parser.add_argument('--no-check', action='store_true', help='do not run the tests first')
    parser.add_argument('--assignment', default=None,
                        help='in the reference repository: the assignment to pack (a handout knows its own)')
    parser.add_argument('--root', type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    root = args.root.resolve()
    assignment, student_files = assignment_files(root, args.assignment)
    out = (args.out or root / f'submission-{assignment}.zip').resolve()
    report = (args.report or root / DEFAULT_REPORT).resolve()

    warnings, files = [], []
    for name in student_files:
        path = root / name
        if path.is_file():
            files.append((name, path))
        else:
            warnings.append(f'{name} is missing: it is one of the files to hand in')
    for file, target, line in todos_left(root, student_files):
        warnings.append(f'{file}:{line}: {target} still raises NotImplementedError (a TODO left)')
    for name, path in files:
        if name.endswith('.ipynb'):
            warnings.extend(notebook_problems(path))
    if report.is_file():
        files.append((DEFAULT_REPORT if args.report is None else f'report/{report.name}', report))
    else:
        warnings.append(f'no PDF report at {report}: make it with python3 tools/quickstart.py report '
                        f'(or pass your own with --report FILE.pdf)')

    if not args.no_check:
        passed, lines = run_self_check(root)
        print('\n'.join(lines))
        if not passed:
            warnings.append('the self-check failed (see above)')

    if not files:
        print('Nothing to pack.', file=sys.stderr)
        return 1
    try:
        packed = pack(root, out, files)
    except KeyboardInterrupt:
        print('\nInterrupted: no zip written.', file=sys.stderr)
        return 130
    width = max(len(name) for name, _ in packed)
    print(f'\nPacked {len(packed)} files for the {assignment!r} assignment:')
    for name, size in packed:
        print(f'  {name:<{width}}  {human_size(size)}')
    print(f'-> {out} ({human_size(out.stat().st_size)}). Hand in this zip; '
          f'the data set and .venv stay out of it.')
    if warnings:
        print(f'\nWARNING ({len(warnings)}): check these before you hand in:')
        for warning in warnings:
            print(f'  - {warning}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
