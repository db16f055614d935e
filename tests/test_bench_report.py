"""tools/bench_report.py, on the tiny data set: each of its measurements does what it says.

The figures themselves are wall times and are not checked (time belongs in the
benchmark's output, not in tests)."""

import pytest

from conftest import make_tiny_mnist

import bench_report


@pytest.mark.slow
def test_report_benchmark_measures_parallel_critical_path_and_cached_rerun(tmp_path, capsys):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    figures = bench_report.main(['--quick', '--skip-serial', '--jobs', '2', '--data-root', str(data)])
    assert figures['critical_path_trained'] == 2        # the longest run and the shortest
    assert figures['cached_rerun_trained'] == 0         # an analysis edit trains nothing
    assert all(figures[name] > 0 for name in ('parallel', 'critical_path', 'cached_rerun'))
    out = capsys.readouterr().out
    assert 'parallel (--jobs 2), empty cache' in out
    assert 'critical path (the longest run trains)' in out and '(cnn: conv [4])' in out
    assert 'cached rerun after an analysis edit' in out
