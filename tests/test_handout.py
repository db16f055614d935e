"""tools/handout.py: the student copy holds no solution text, raises
NotImplementedError at each TODO, keeps everything else; malformed markers
are reported with file and line; validation passes on the reference.
Instructor-only: not in the handouts."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]

import handout  # noqa: E402

MANIFEST = handout.load_manifest(REPO / 'tools' / 'assignments.json')


@pytest.fixture(scope='module')
def softmax_handout(tmp_path_factory):
    out = tmp_path_factory.mktemp('handout') / 'softmax'
    handout.make_handout(REPO, out, 'softmax', MANIFEST)
    return out


def run_python(folder, code):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=folder, capture_output=True,
                          text=True, timeout=60)


def test_softmax_handout_has_no_solution_text(softmax_handout):
    assert handout.find_leaks(REPO, softmax_handout, MANIFEST) == []
    secret = handout.solution_lines(REPO, MANIFEST)
    # the homework's own lines and those of the shared helpers it calls
    for line in ('logits = affine_forward(Input, self.W, self.b)', 'v -= self.learning_rate * grad',
                 'return Input @ W + b', 'grad_W = Input.T @ delta'):
        assert line in secret
    text = '\n'.join(p.read_text(errors='ignore') for p in softmax_handout.rglob('*') if p.is_file())
    lines = {' '.join(line.split()) for line in text.split('\n')}
    assert not secret & lines  # (a line may still contain one, e.g. 'self.acc = accuracy(...)' in layers.py)
    assert not any(handout.BEGIN_RE.match(line) or handout.END_RE.match(line) for line in text.split('\n'))
    assert not list(softmax_handout.rglob('*.pyc'))


def test_softmax_handout_leaves_out_hidden_tests_tools_and_the_reference_report(softmax_handout):
    present = {p.relative_to(softmax_handout).as_posix() for p in softmax_handout.rglob('*') if p.is_file()}
    assert {'loss.py', 'optimizer.py', 'layers.py', 'solver.py', 'dataloader.py', 'tests/test_loss.py',
            'tests/test_selfcheck.py', 'testkit/gradients.py'} <= present
    assert not any(p.startswith(('tests/hidden/', '.git/')) for p in present)
    # students make their report from their own code
    assert {'report/make_report.py', 'report/README.md'} <= present


def test_generated_outputs_never_ship(tmp_path):
    """The reference report, caches and outputs lying in the instructor's tree stay out."""
    import shutil
    root = tmp_path / 'reference'
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns('.git', '.venv', '__pycache__', 'data'))
    (root / 'data').mkdir()
    generated = ['report/report.pdf', 'report/results.json', 'report/figures/02-default.png',
                 'report/quick/report.pdf', 'report/cache/run-0.json', 'outputs/curves.png']
    for rel in generated:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text('generated')
    out = tmp_path / 'handout'
    handout.make_handout(root, out, 'softmax', MANIFEST)
    present = {p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file()}
    assert 'report/make_report.py' in present
    assert not set(generated) & present
    assert not {'tools/handout.py', 'tools/grade.py', 'tools/assignments.json', 'tests/test_layers.py'} & present


def test_todo_frames_kept_and_regions_raise(softmax_handout):
    for name in ('loss.py', 'optimizer.py'):
        original, student = (REPO / name).read_text(), (softmax_handout / name).read_text()
        assert student.count('# TODO: Put your code here') == original.count('# TODO: Put your code here') > 0
        # every line outside the regions is kept as it is, in order; each region became one raise
        outside, inside = [], False
        for line in original.split('\n'):
            if handout.BEGIN_RE.match(line):
                inside = True
                outside.append('<raise>')
            elif handout.END_RE.match(line):
                inside = False
            elif not inside:
                outside.append(line)

        def raises_marked(lines):   # a region became one raise; raises of the frame stay raises
            return ['<raise>' if line.strip().startswith('raise NotImplementedError(') else line for line in lines]
        outside, student_lines = raises_marked(outside), raises_marked(student.split('\n'))
        assert student_lines == outside, name
    loss = (softmax_handout / 'loss.py').read_text()
    assert ("        raise NotImplementedError('SoftmaxCrossEntropyLoss.forward is not implemented yet: "
            "replace this raise with your code (see the TODO above, in loss.py)')") in loss


def test_softmax_handout_imports_and_says_what_is_missing(softmax_handout):
    result = run_python(softmax_handout, '''
        import numpy as np
        import solver, loss, optimizer, layers   # everything imports
        model = loss.SoftmaxCrossEntropyLoss(3, 2)
        for call in (lambda: model.forward(np.ones((2, 3)), np.array([0, 1])), model.gradient_computing,
                     lambda: (setattr(model, 'grad_W', model.W), setattr(model, 'grad_b', model.b),
                              optimizer.SGD(model, 0.1).step()),
                     lambda: layers.affine_forward(np.ones((1, 3)), model.W, model.b)):
            try:
                call()
            except NotImplementedError as error:
                print(error)
    ''')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('SoftmaxCrossEntropyLoss.forward is not implemented yet')
    assert lines[1].startswith('SoftmaxCrossEntropyLoss.gradient_computing is not implemented yet')
    assert lines[2].startswith('SGD.update is not implemented yet')
    assert lines[3].startswith("affine_forward is part of the 'mlp' assignment")


def test_runner_notebook_is_cleared_and_answers_removed(softmax_handout):
    if not (REPO / 'runner.ipynb').exists():
        pytest.skip('no runner.ipynb yet')
    nb = nbformat.read(str(softmax_handout / 'runner.ipynb'), as_version=4)
    nbformat.validate(nb)
    assert all(not c.get('outputs') and c.get('execution_count') is None for c in nb.cells if c.cell_type == 'code')


# ----- a made-up course: the tools know nothing of the assignments' contents -----

def make_course(root):
    """A tiny reference with two assignments, a notebook and hidden tests."""
    (root / 'tools').mkdir(parents=True)
    (root / 'tests' / 'hidden').mkdir(parents=True)
    manifest = {'hidden_tests_dir': 'tests/hidden', 'instructor_only': ['tools/assignments.json'],
                'never_copy': ['__pycache__'],
                'assignments': {'demo': {'student_files': ['work.py', 'notes.ipynb'], 'time_limit': 60},
                                'later': {'student_files': ['helpers.py'], 'time_limit': 60}}}
    (root / 'tools' / 'assignments.json').write_text(json.dumps(manifest))
    (root / 'helpers.py').write_text(textwrap.dedent('''\
        def double(x):
            """Twice x."""
            ### BEGIN SOLUTION later
            return x * 2  # secret helper
            ### END SOLUTION
    '''))
    (root / 'work.py').write_text(textwrap.dedent('''\
        class Thing:
            def compute(self, x):
                # TODO: Put your code here
                # Hint: square it.
                ### BEGIN SOLUTION demo
                result = x ** 2 + 0  # secret square
                ### END SOLUTION
                return result
    '''))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell('# Notes\n\n### BEGIN SOLUTION demo\nThe secret answer is 42.\n'
                                              '### END SOLUTION'),
                nbformat.v4.new_code_cell('%matplotlib inline\nvalue = 3\n### BEGIN SOLUTION demo\n'
                                          'answer = value * 14  # secret cell\n### END SOLUTION\nprint(answer)')]
    nb.cells[1].outputs = [nbformat.v4.new_output('stream', text='42\n')]
    nb.cells[1].execution_count = 7
    nbformat.write(nb, str(root / 'notes.ipynb'))
    (root / 'tests' / 'test_demo.py').write_text("import pytest\n\n@pytest.mark.solution('demo')\n"
                                                 "def test_square():\n    pass\n")
    (root / 'tests' / 'test_later.py').write_text("import pytest\npytestmark = pytest.mark.solution('later')\n")
    (root / 'tests' / 'test_plain.py').write_text("def test_nothing():\n    pass\n")
    (root / 'tests' / 'hidden' / 'test_secret.py').write_text("SECRET = 1\n")
    return handout.load_manifest(root / 'tools' / 'assignments.json')


def test_any_assignment_any_notebook(tmp_path):
    root = tmp_path / 'course'
    manifest = make_course(root)
    out = tmp_path / 'demo-handout'
    summary = handout.make_handout(root, out, 'demo', manifest)
    assert (summary['todo_regions'], summary['stubbed_regions']) == (3, 1)
    files = {p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file()}
    assert files == {'.gitignore', 'tools/submission.json', 'helpers.py', 'work.py', 'notes.ipynb', 'tests/test_demo.py',
                     'tests/test_plain.py'}
    work = (out / 'work.py').read_text()
    assert ("        # Hint: square it.\n        raise NotImplementedError('Thing.compute is not implemented yet: "
            "replace this raise with your code (see the TODO above, in work.py)')\n        return result") in work
    assert ("    raise NotImplementedError(\"double is part of the 'later' assignment and is not provided in the "
            "'demo' handout; write what you need yourself\")") in (out / 'helpers.py').read_text()
    nb = nbformat.read(str(out / 'notes.ipynb'), as_version=4)
    assert nb.cells[0].source == '# Notes\n\nYOUR ANSWER HERE'
    assert nb.cells[1].source.startswith('%matplotlib inline\nvalue = 3\nraise NotImplementedError(')
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    everything = '\n'.join(p.read_text() for p in out.rglob('*') if p.is_file())
    assert 'secret' not in everything.lower() and '42' not in everything


def test_leak_check_catches_solution_lines(tmp_path):
    root = tmp_path / 'course'
    manifest = make_course(root)
    out = tmp_path / 'handout'
    handout.make_handout(root, out, 'demo', manifest)
    (out / 'README.md').write_text('Hint: try\n    result = x ** 2 + 0  # secret square\n')
    (out / 'work.pyc').write_bytes(b'\0')
    problems = handout.find_leaks(root, out, manifest)
    assert any('README.md:2: solution line left' in p for p in problems)
    assert any('work.pyc' in p for p in problems)


@pytest.mark.parametrize('body, error', [
    ('### BEGIN SOLUTION demo\nx = 1\n', 'line 1: BEGIN SOLUTION is never closed'),
    ('x = 1\n### END SOLUTION\n', ':2: \'### END SOLUTION\' without a BEGIN'),
    ('### BEGIN SOLUTION demo\n### BEGIN SOLUTION demo\n', ':2: BEGIN SOLUTION inside the region'),
    ('### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n', ':1: \'### BEGIN SOLUTION\' needs the assignment'),
    ('### BEGIN SOLUTION nosuch\nx = 1\n### END SOLUTION\n', ':1: unknown assignment tag(s) nosuch'),
    ('def f():\n    ### BEGIN SOLUTION demo\n    x = 1\n### END SOLUTION\n', ':4: \'### END SOLUTION\' is not at'),
    ('## BEGIN SOLUTION demo\n', ':1: malformed marker'),
])
def test_malformed_markers_are_reported_with_file_and_line(tmp_path, body, error):
    root = tmp_path / 'course'
    manifest = make_course(root)
    (root / 'broken.py').write_text(body)
    with pytest.raises(handout.HandoutError) as info:
        handout.make_handout(root, tmp_path / 'out', 'demo', manifest)
    assert 'broken.py' in str(info.value) and error.replace('line 1', '1') in str(info.value).replace('line 1', '1')
    assert not (tmp_path / 'out').exists()


def test_command_line_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'keep.txt').write_text('mine')
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'handout.py'), '--assignment', 'softmax',
                             str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'not an empty folder' in result.stderr
    assert (tmp_path / 'out' / 'keep.txt').read_text() == 'mine'


@pytest.mark.slow   # runs the softmax handout's test suite (half a minute): python -m pytest -m slow
def test_validation_passes_on_the_reference():
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'handout.py'), '--validate', '--assignment',
                             'softmax'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'checks: the reference passes' in result.stdout and "the handout's own files earn 0 points" in result.stdout
    assert 'Validation passed for: softmax' in result.stdout
    assert 'marked ones fail (as they must)' in result.stdout


@pytest.mark.slow   # each runs its handout's whole test suite (3-5 minutes): python -m pytest -m slow
@pytest.mark.parametrize('assignment', ['mlp', 'cnn'])
def test_validation_passes_for_the_later_assignments(assignment):
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'handout.py'), '--validate', '--assignment',
                             assignment], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'Validation passed for: {assignment}' in result.stdout
    assert 'marked ones fail (as they must)' in result.stdout


def test_instructor_notes_stay_out_of_the_handout_readme(softmax_handout):
    reference, student = (REPO / 'README.md').read_text(), (softmax_handout / 'README.md').read_text()
    assert '## Instructors' in reference and '## Instructors' not in student
    assert not any(line.strip().endswith('INSTRUCTORS -->') for line in student.splitlines())
    assert 'between `<!-- BEGIN INSTRUCTORS -->`' not in student   # the section that quotes them is gone too
    assert '## Quick start' in student and '## Dependencies' in student
    assert handout.strip_instructor_notes('a\n<!-- BEGIN INSTRUCTORS -->\nsecret\n<!-- END INSTRUCTORS -->\nb\n') == 'a\nb\n'
    with pytest.raises(handout.HandoutError, match='unbalanced'):
        handout.strip_instructor_notes('<!-- BEGIN INSTRUCTORS -->\nsecret\n')


def test_handout_knows_what_to_hand_in_and_says_its_self_check_is_public(softmax_handout):
    info = json.loads((softmax_handout / 'tools' / 'submission.json').read_text())
    assert info['assignment'] == 'softmax' and info['hidden_checks'] is True
    assert info['files'] == MANIFEST['assignments']['softmax']['student_files']
    assert (softmax_handout / 'tools' / 'submit.py').is_file()
    for grading in ('tools/checks', 'tools/_probe_child.py', 'tools/process_guard.py', 'tools/assignment_files.py'):
        assert not (softmax_handout / grading).exists(), grading
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                             'tests/test_submit.py'], cwd=softmax_handout, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert 'Self-check: these are the public tests. Grading runs its own checks' in result.stdout
    import public_checks_note
    assert public_checks_note.public_checks_note() is None   # the instructor's repository: no note


def test_the_cnn_handout_ships_the_released_mlp_solution_it_builds_on(tmp_path):
    assert MANIFEST['assignments']['cnn']['builds_on'] == ['mlp']
    out = tmp_path / 'cnn'
    handout.make_handout(REPO, out, 'cnn', MANIFEST)
    layers_text = (out / 'layers.py').read_text()
    assert "is part of the 'mlp' assignment" not in layers_text and 'BEGIN SOLUTION' not in layers_text
    assert 'return Input @ W + b' in layers_text                      # the released FC layer
    assert "is part of the 'softmax' assignment" in (out / 'loss.py').read_text()   # not released
    assert "im2col" in (out / 'im2col.py').read_text() and 'is not implemented yet' in (out / 'im2col.py').read_text()
    result = run_python(out, '''
        import numpy as np
        import layers
        from loss import SoftmaxCrossEntropyLossLayer
        from optimizer import SGD
        np.random.seed(0)
        net = layers.build_mlp(4, [8], 2)
        model = layers.Classifier(net, SoftmaxCrossEntropyLossLayer())
        x, y = np.random.normal(size=(64, 4)), np.random.randint(0, 2, 64)
        x[y == 1] += 2.0
        optimizer = SGD(model, 0.1, 0.9)
        for _ in range(50):
            loss, acc = model.forward(x, y); model.gradient_computing(); optimizer.step()
        print(acc)
    ''')
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[-1]) >= 0.9, "the released MLP code trains in the cnn handout"


def test_builds_on_must_name_another_assignment(tmp_path):
    manifest = json.loads((REPO / 'tools' / 'assignments.json').read_text(encoding='utf-8'))
    manifest['assignments']['cnn']['builds_on'] = ['resnet']
    path = tmp_path / 'assignments.json'
    path.write_text(json.dumps(manifest), encoding='utf-8')
    with pytest.raises(handout.HandoutError, match="builds on 'resnet', which is not another assignment"):
        handout.load_manifest(path)
