"""Student handouts from the reference solution, and their validation.

    python tools/handout.py --assignment softmax OUT_DIR   # write the student copy
    python tools/handout.py --validate                     # check every assignment
    python tools/handout.py --validate --assignment softmax

Solution regions, what a handout holds and the leak check that proves no
solution text is left are described in tools/assignment_files.py, which
this command and tools/grade.py share.

Validation (nbgrader's `validate` and `validate --invert` in one command):
for each assignment the reference must pass every graded check of
tools/grade.py and the untouched handout must earn no point, and in a fresh
handout every test without a solution marker must pass and every test with
one must fail.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

# What a handout holds lives in tools/assignment_files.py (shared with the
# grader); these names stay importable from here.
from assignment_files import (  # noqa: E402,F401
    BEGIN_RE, END_RE, MANIFEST, MARKDOWN_ANSWER, MIN_LEAK_CHARS, REPO, TAG_RE, HandoutError,
    check_assignment, drop_tests_needing, find_leaks, find_regions, handout_files, handout_text, list_files,
    load_manifest,
    make_handout, released_solutions, solution_lines, strip_instructor_notes, strip_notebook, strip_regions,
    test_file_tags)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def run_tests_observed(folder, timeout=600):
    """Run the default pytest of a (trusted) folder with the results plugin
    (tools/_grading_plugin.py) in observe mode. Returns {'status': 'ok' |
    <why it stopped>, 'tests': {nodeid: record (outcome, tags, message)},
    'collect_errors': [...], 'output': tail}."""
    with tempfile.TemporaryDirectory(prefix='observe-') as results_dir:
        results_dir = Path(results_dir)
        shutil.copyfile(TOOLS / '_grading_plugin.py', results_dir / '_grading_plugin.py')
        env = dict(os.environ, PYTHONPATH=str(results_dir), GRADER_RESULTS=str(results_dir / 'results.jsonl'),
                   GRADER_TEST_TIMEOUT=str(max(timeout / 4, 30)), PYTHONDONTWRITEBYTECODE='1',
                   MPLBACKEND='Agg', OPENBLAS_NUM_THREADS='1')
        env.pop('GRADER_ASSIGNMENT', None)
        import process_guard  # tools/process_guard.py (validation only: the handout command stays light)
        result = process_guard.run_contained(
            [sys.executable, '-m', 'pytest', '-p', '_grading_plugin', '-p', 'no:cacheprovider', '-q',
             '--tb=no', '--color=no', '--continue-on-collection-errors'],
            cwd=folder, env=env, time_limit=timeout)
        tests, tags, errors = {}, {}, []
        lines = (results_dir / 'results.jsonl').read_text(encoding='utf-8').splitlines() \
            if (results_dir / 'results.jsonl').exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record['kind'] == 'collected':
            tags = {t['nodeid']: t['tags'] for t in record['tests']}
        elif record['kind'] == 'collect_error':
            errors.append(record)
        elif record['kind'] == 'result':
            tests[record['nodeid']] = dict(record, tags=tags.get(record['nodeid'], []))
    status = result['stopped'] or ('ok' if result['returncode'] in (0, 1) else
                                   f"pytest exit code {result['returncode']}")
    return {'status': status, 'tests': tests, 'collect_errors': errors, 'output': result['output']}


def validate_checks(root, name, log=print):
    """The graded checks of an assignment: the reference passes every one, the
    handout's own files (nothing submitted) earn no point. Returns problems."""
    import grade  # tools/grade.py: validation grades the reference as a submission (grade never imports handout)
    try:
        run = grade.GradingRun(root, name)
    except HandoutError as error:
        log(f"   WARNING: {error}; grading '{name}' is not possible yet")
        return []
    problems = []
    try:
        reference = grade.grade_reference(run)
        failing = [r for r in reference['rows'] if not r['passed']]
        log(f"   checks: the reference passes {len(reference['rows']) - len(failing)} of "
            f"{len(reference['rows'])} ({run.max_score():g} points; seed {run.seed})")
        problems += [f"{name}: the reference fails check {r['check']}: {r['message']}" for r in failing]
        empty = grade.grade_files(run, {})
        earning = [r['check'] for r in empty['rows'] if r['passed'] and r['max_points'] > 0]
        log(f"   checks: the handout's own files earn {sum(r['points'] for r in empty['rows']):g} points")
        problems += [f"{name}: check {c} gives points to the untouched handout: it does not test the TODOs"
                     for c in earning]
        alone = grade.grade_files(run, {f: (Path(root) / f).read_bytes() for f in run.spec['graded_files']
                                        if (Path(root) / f).is_file()})
        if not all(r['passed'] for r in alone['rows']):
            log(f"   note: the reference's {', '.join(run.spec['graded_files'])} call code of other assignments "
                f"(stubs in the handout) and score {sum(r['points'] for r in alone['rows']):g} there; a "
                f"student's files cannot lean on that code, so grading runs the reference with it")
    finally:
        shutil.rmtree(run.workspace, ignore_errors=True)
    return problems


def validate(root, manifest, assignments, log=print):
    """Validate the given assignments; returns a list of problems (empty: all good)."""
    problems = []
    for name in assignments:
        spec = check_assignment(manifest, name)
        log(f"== {name}: {spec.get('title', '')}")
        # 1. the graded checks: the reference passes them all, the handout earns nothing
        problems += validate_checks(root, name, log)
        # 2. the handout is clean and fails exactly the tests that need its solutions
        with tempfile.TemporaryDirectory(prefix=f'handout-{name}-') as tmp:
            out = Path(tmp) / 'handout'
            try:
                summary = make_handout(root, out, name, manifest)
            except HandoutError as error:
                problems.append(f"{name}: {error}")
                continue
            log(f"   handout: {summary['files']} files, {summary['todo_regions']} TODO regions, "
                f"{summary['stubbed_regions']} regions of other assignments stubbed, no solution text left")
            run = run_tests_observed(out)
        for error in run['collect_errors']:
            problems.append(f"{name} handout: {error['nodeid']} cannot be collected: {error['message']}")
        counts = {'unmarked passed': 0, 'marked failed': 0, 'other assignments skipped': 0,
                  'released passed': 0}
        released = released_solutions(manifest, name)
        present = {name} | set(released)
        for nodeid, rec in sorted(run['tests'].items()):
            tags = set(rec['tags'])
            # What each test must do in this handout, by the assignments it needs:
            if tags - present:         # code this handout stubs: tests/conftest.py skips it
                expected, key = ('skipped',), 'other assignments skipped'
                why = (f"needs the {', '.join(sorted(tags - present))} code, a stub in this handout, "
                       f"so it must be skipped")
            elif tags and name not in tags:    # only released code, which the handout ships
                expected, key = ('passed',), 'released passed'
                why = (f"needs only the released {', '.join(sorted(tags))} code, which the handout ships, "
                       f"so it must pass")
            elif tags:                 # this assignment's solution, which the handout removed
                expected, key = ('failed',), 'marked failed'
                why = (f"is marked solution{tuple(rec['tags'])} and must fail without the solution; if it "
                       f"does not test the TODOs remove its marker, else the region is missing")
            else:
                expected, key = ('passed', 'skipped'), 'unmarked passed'
                why = ("has no solution marker, so it must pass (mark it @pytest.mark.solution(...) if it "
                       "needs a solution)")
            if rec['outcome'] in expected:
                counts[key] += 1
            else:
                problems.append(f"{name} handout: {nodeid} {why}, but {rec['outcome']}"
                                + (f": {rec['message']}" if rec.get('message') else ''))
        if run['status'] != 'ok':
            problems.append(f"{name} handout: the test run ended with status {run['status']}")
        log(f"   handout tests: {counts['unmarked passed']} without a solution marker pass, "
            f"{counts['marked failed']} marked ones fail (as they must), "
            f"{counts['other assignments skipped']} of other assignments are skipped"
            + (f", {counts['released passed']} of released assignments pass" if released else ''))
    return problems


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def untracked_files(root, files):
    """The `files` (relative paths) that the git checkout at root does not track,
    ignored ones included; [] where root is not a git checkout."""
    import subprocess
    if not (Path(root) / '.git').exists():
        return []
    result = subprocess.run(['git', '-C', str(root), 'ls-files', '--others', '-z'], capture_output=True)
    if result.returncode != 0:
        return []
    untracked = set(result.stdout.decode('utf-8', errors='replace').split('\0'))
    return sorted(f for f in files if f in untracked)


def main(argv=None):
    try:
        import nbformat  # noqa: F401  (the notebook is stripped with it)
    except ModuleNotFoundError:
        from quickstart import venv_python as project_python   # .venv, or $QUICKSTART_VENV
        venv_python = project_python()
        if venv_python.exists() and Path(sys.prefix).resolve() != venv_python.parents[1].resolve():
            os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve())]
                     + list(sys.argv[1:] if argv is None else argv))
        print("error: this tool needs the project's Python environment (nbformat is missing). "
              "Create it once with 'python3 tools/quickstart.py test', then run "
              f"'{venv_python} tools/handout.py ...'.", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        description="Write the student handout of an assignment, or validate every assignment.",
        epilog="Examples:\n  python tools/handout.py --assignment softmax ../handout-softmax\n"
               "  python tools/handout.py --validate",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', nargs='?', help='folder to write the handout to (must not exist or be empty)')
    parser.add_argument('--assignment', help='assignment name from tools/assignments.json')
    parser.add_argument('--validate', action='store_true',
                        help='check that the reference passes every grading test and that each handout '
                             'passes the tests without a solution marker and fails the others')
    parser.add_argument('--root', default=str(REPO), help='reference folder (default: this repository)')
    args = parser.parse_args(argv)

    root = Path(args.root).resolve()
    try:
        manifest = load_manifest(root / 'tools' / 'assignments.json')
        if args.validate:
            names = [args.assignment] if args.assignment else list(manifest['assignments'])
            problems = validate(root, manifest, names)
            if problems:
                print(f"\nVALIDATION FAILED ({len(problems)} problems):")
                for p in problems:
                    print("  - " + p)
                return 1
            print(f"\nValidation passed for: {', '.join(names)}")
            return 0
        if not args.assignment or not args.out_dir:
            parser.error("give --assignment NAME and OUT_DIR (or --validate)")
        stray = untracked_files(root, handout_files(root, manifest, args.assignment))
        if stray:
            raise HandoutError(f"the reference holds files that git does not track and that would go into the "
                               f"handout: {', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''}; commit them "
                               f"(git add) or delete them, then run this again")
        summary = make_handout(root, args.out_dir, args.assignment, manifest)
    except HandoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote the '{args.assignment}' handout to {args.out_dir}: {summary['files']} files, "
          f"{summary['todo_regions']} TODO regions, {summary['stubbed_regions']} regions of other "
          f"assignments stubbed; checked: no solution text left.")
    return 0


if __name__ == '__main__':
    sys.path.insert(0, str(TOOLS))
    sys.exit(main())
