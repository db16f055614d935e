"""fileio.py: atomic writes and the clean-up of what killed writers leave."""

import os
import subprocess
import sys
import time

import pytest

from fileio import atomic_write, remove_stale_temporaries


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / 'out.json'
    path.write_text('old')
    with atomic_write(path, 'w') as f:
        f.write('new')
    assert path.read_text() == 'new'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.json']


def test_interrupted_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / 'report.pdf'
    path.write_text('old')
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, 'w') as f:
            f.write('half')
            raise KeyboardInterrupt
    assert path.read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['report.pdf']


def _temporary_left_by_a_killed_process(folder):
    """Start a Python that opens an atomic_write and is killed inside it."""
    code = ('import os, sys, signal; sys.path.insert(0, sys.argv[1]); from fileio import atomic_write\n'
            'with atomic_write(sys.argv[2], "w") as f:\n'
            '    f.write("half"); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n')
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, '-c', code, repo, str(folder / 'run-abc.json')])
    left = [p for p in folder.iterdir() if p.name.endswith('.tmp')]
    assert len(left) == 1, f'the killed writer should leave its temporary file: {left}'
    return left[0]


@pytest.mark.skipif(os.name == 'nt', reason='SIGKILL is POSIX')
def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    stale = _temporary_left_by_a_killed_process(tmp_path)
    keep = tmp_path / 'notes.tmp'          # not one of ours: left alone
    keep.write_text('x')
    with atomic_write(tmp_path / 'live.json', 'w') as f:   # a write in progress
        removed = remove_stale_temporaries(tmp_path)
        f.write('{}')
    assert removed == [stale] and not stale.exists()
    assert keep.exists() and (tmp_path / 'live.json').read_text() == '{}'


def test_old_temporaries_are_removed_even_if_their_pid_runs(tmp_path):
    # After a reboot a pid can belong to another process: age decides then.
    old = tmp_path / f'.run-x.json.{os.getpid()}.abcd1234.tmp'
    old.write_text('half')
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert remove_stale_temporaries(tmp_path / 'missing') == []
