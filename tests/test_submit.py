"""tools/submit.py packs exactly what is handed in and says what looks unfinished."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))

import submit  # noqa: E402


def make_homework(root):
    (root / 'tools').mkdir(parents=True)
    (root / 'tools' / 'submission.json').write_text(json.dumps(
        {'assignment': 'softmax', 'files': ['loss.py', 'optimizer.py', 'runner.ipynb']}))
    (root / 'loss.py').write_text("def forward():\n    raise NotImplementedError('SoftmaxCrossEntropyLoss.forward "
                                  "is not implemented yet: replace this raise with your code (see the TODO)')\n")
    (root / 'optimizer.py').write_text("def step():\n    return 1\n")
    (root / 'runner.ipynb').write_text(json.dumps({'cells': [{'cell_type': 'code', 'source': 'x = 1',
                                                              'outputs': [], 'metadata': {}}]}))
    for junk in ('.venv/lib/python3.11/numpy.py', 'data/train-images-idx3-ubyte.gz', '__pycache__/loss.pyc',
                 'report/cache/run.json'):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text('junk')
    (root / 'tests').mkdir()
    (root / 'tests' / 'test_ok.py').write_text('def test_ok():\n    assert 1 + 1 == 2\n')


def test_packs_exactly_the_handed_in_files_and_warns(tmp_path):
    root = tmp_path / 'homework'
    make_homework(root)
    out = tmp_path / 'out'
    out.mkdir()
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'submit.py'), '--name', '2024011234_张三',
                             '--root', str(root), '--no-tests'], cwd=out, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out / '2024011234_张三.zip') as zf:
        assert sorted(zf.namelist()) == ['loss.py', 'optimizer.py', 'runner.ipynb']
    assert 'loss.py (0 KB)' in result.stdout and 'KB) for the \'softmax\' assignment' in result.stdout
    assert 'WARNING: loss.py, line 2: this TODO still raises NotImplementedError' in result.stdout
    assert 'WARNING: runner.ipynb has no outputs' in result.stdout
    assert 'WARNING: report/report.pdf not found' in result.stdout

    (root / 'report' / 'report.pdf').write_bytes(b'%PDF-1.4')
    (root / 'loss.py').write_text('def forward():\n    return 0\n')
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'submit.py'), '--name', 'again', '--root',
                             str(root), '--no-tests'], cwd=out, capture_output=True, text=True, timeout=60)
    with zipfile.ZipFile(out / 'again.zip') as zf:
        assert 'report/report.pdf' in zf.namelist()
    assert 'TODO still raises' not in result.stdout


def test_self_check_reports_the_test_summary(tmp_path):
    root = tmp_path / 'homework'
    make_homework(root)
    passed, summary = submit.run_self_check(root)
    assert passed and '1 passed' in summary
    (root / 'tests' / 'test_ok.py').write_text('def test_ok():\n    assert 1 + 1 == 3\n')
    passed, summary = submit.run_self_check(root)
    assert not passed and '1 failed' in summary
