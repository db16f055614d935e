"""The graded vectorisation checks (tools/checks/) catch a Python loop over
the samples, name its line and pass the reference.

The student's side runs in a subprocess on a copy of the reference in which
one function is rewritten with a loop, as a student might write it; the
verdict is computed here, as the grader does.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from checks import CheckFailed, load_checks

REPO = Path(__file__).resolve().parents[1]

# (file, reference line, the same computation with a loop over the samples)
FC_LOOP = ('layers.py', '    return Input @ W + b\n',
           '    return np.stack([row @ W for row in Input]) + b\n')
CONV_LOOP = ('im2col.py', "    cols = im2col(x_pad, k)                              # (C·k·k, N·H'·W')\n",
             "    cols = np.concatenate([im2col(x_pad[n:n + 1], k) for n in range(N)], axis=1)\n")
POOL_LOOP = ('im2col.py', '    out = window_pixels(x_pad, kernel_size, 0, 0).copy()\n'
                          '    for di, dj in kernel_offsets(kernel_size)[1:]:\n'
                          '        np.maximum(out, window_pixels(x_pad, kernel_size, di, dj), out=out)\n',
             "    out = pool_forward_loops(x, kernel_size, pad, 'max')\n")
ROWS_LOOP = ('im2col.py', '    for di, dj in kernel_offsets(kernel_size):\n'
                          '        window_pixels(dx_pad, kernel_size, di, dj)[...] = share\n',
             '    for i in range(delta.shape[2]):\n'
             '        for di, dj in kernel_offsets(kernel_size):\n'
             '            window_pixels(dx_pad, kernel_size, di, dj)[:, :, i] = share[:, :, i]\n')

CHILD = '''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import importlib

class Modules:
    def __getattr__(self, name):
        return importlib.import_module(name)

namespace = {}
exec(open(sys.argv[2]).read(), namespace)
with np.load(sys.argv[3], allow_pickle=False) as data:
    inputs = {key: data[key] for key in data.files}
outputs = namespace[sys.argv[4]](inputs, Modules())
np.savez(sys.argv[5], **{key: np.asarray(value) for key, value in outputs.items()})
'''


def verdict(tmp_path, assignment, name, change=None):
    """Run check `name` of `assignment` with the student's side in a subprocess on
    a copy of the reference (with `change` applied); returns None or the failure message."""
    student = tmp_path / 'student'
    student.mkdir()
    for path in REPO.glob('*.py'):
        shutil.copy(path, student / path.name)
    if change is not None:
        file, old, new = change
        text = (student / file).read_text(encoding='utf-8')
        assert text.count(old) == 1, f'{file} no longer has the line this test rewrites: {old!r}'
        (student / file).write_text(text.replace(old, new), encoding='utf-8')
    check = next(c for c in load_checks(assignment, REPO) if c.name == name)
    inputs = check.make_inputs(np.random.default_rng(7))
    expected = check.run_reference(inputs, REPO)
    (tmp_path / 'child.py').write_text(check.child_source())
    np.savez(tmp_path / 'inputs.npz', **inputs)
    subprocess.run([sys.executable, '-c', textwrap.dedent(CHILD), str(student), str(tmp_path / 'child.py'),
                    str(tmp_path / 'inputs.npz'), check.child.__name__, str(tmp_path / 'outputs.npz')],
                   check=True, cwd=tmp_path, timeout=120)
    with np.load(tmp_path / 'outputs.npz', allow_pickle=False) as data:
        got = {key: data[key] for key in data.files}
    try:
        check.compare(got, expected, inputs)
    except CheckFailed as failure:
        return str(failure)
    return None


def line_of(file, text, after=''):
    """The number of the first line of `file` that starts with `text` after the line that starts with `after`."""
    lines = (REPO / file).read_text(encoding='utf-8').splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    return next(i for i in range(start, len(lines)) if lines[i].startswith(text)) + 1


@pytest.mark.parametrize('assignment, name', [('mlp', 'vectorised'), ('cnn', 'vectorised')])
def test_the_reference_passes(tmp_path, assignment, name):
    assert verdict(tmp_path, assignment, name) is None


# The loop's own line comes first: the rewritten line, or (max pooling calls
# the loop version in im2col.py) the `for n` line of pool_forward_loops. The
# loop over the output rows passes the growing batch and is caught by the
# growing image.
@pytest.mark.parametrize('assignment, change, label, what, loop_line', [
    ('mlp', FC_LOOP, 'FCLayer.forward and backward', 'samples in the batch', ('    return Input @ W + b', 'def affine_forward(')),
    ('cnn', CONV_LOOP, 'conv_forward (batch size)', 'images in the batch', ("    cols = im2col(", 'def conv_forward(')),
    ('cnn', POOL_LOOP, 'max_pool_forward (batch size)', 'images in the batch',
     ('    for n in range(N):', 'def pool_forward_loops(')),
    ('cnn', ROWS_LOOP, 'avg_pool_backward (image size)', 'rows of the image',
     ('    for di, dj in kernel_offsets(kernel_size):', 'def avg_pool_backward(')),
], ids=['fc_forward', 'conv_forward', 'max_pool_forward', 'avg_pool_backward_rows'])
def test_a_loop_over_the_samples_loses_the_point_and_is_named_with_its_line(tmp_path, assignment, change, label,
                                                                           what, loop_line):
    message = verdict(tmp_path, assignment, 'vectorised', change)
    assert message is not None, 'the loop was not caught'
    assert message.startswith(f'{label} is not vectorised: a Python loop runs once per element of the {what}. ')
    first_named = message.split(f' {what}: ')[1]
    assert first_named.startswith(f'{change[0]} line {line_of(change[0], *loop_line)} '), message
    assert json.loads((REPO / 'tools' / 'assignments.json').read_text())['assignments'][assignment]['checks'][
        'vectorised'] >= 1
