"""How long the instructors' loop takes: the report, serial, in parallel, and rerun.

    python3 tools/bench_report.py                # the full reference report (about 2 minutes of CPU)
    python3 tools/bench_report.py --jobs 16      # on a 16-core machine
    python3 tools/bench_report.py --skip-serial  # leave out the one-process run (the longest)
    python3 tools/bench_report.py --quick        # the --quick report: a check that this script works

Each measurement runs report/make_report.py in a fresh process on a fresh
cache in a temporary folder (your report/cache is not touched), under the
project's thread policy (one BLAS thread per process), and takes its wall
time:

1. serial: --jobs 1, every run trained one after another in one process;
2. parallel: --jobs N (default: the cores), the runs shared out among N
   worker processes while this process draws the pages of the finished ones;
3. critical path: the cache of 2. less its longest run (and its shortest,
   so that the two train in workers while the pages are drawn), with every
   figure drawn again: what the report takes on a machine with a core for
   every run, bounded by its longest run;
4. cached rerun: a student report, then again after an edit of the
   analysis text: nothing trains, and only the pages are written again.

Wall time depends on the machine and its load: quote medians of a few runs
on an idle machine, and the ratios. The issue's targets: parallel <= 0.55 of
serial on 2 idle cores; <= 60 s on a 16-core machine; a cached rerun <= 5 s.
"""

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE_REPORT = ROOT / 'report' / 'make_report.py'
sys.path.insert(0, str(ROOT))
from threads import thread_environment, usable_cores  # noqa: E402  (standard library only)


def make_report(args, cache, out, *extra):
    """Run make_report.py once; return (wall seconds, its results.json)."""
    command = [sys.executable, str(MAKE_REPORT), '--cache-dir', str(cache), '--out-dir', str(out),
               '--data-root', str(args.data_root), *(['--quick'] if args.quick else []), *extra]
    start = time.perf_counter()
    result = subprocess.run(command, env=thread_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench_report.py: {' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds, json.loads((Path(out) / 'results.json').read_text())


def show(what, seconds, note=''):
    print(f'  {what:<40} {seconds:6.1f} s{note}', flush=True)


def trim_cache(cache, results):
    """Leave the longest and the shortest run of `results` to train again, and
    every figure to draw again. Returns the longest run's label."""
    by_time = sorted(results['runs'].items(), key=lambda item: item[1]['summary']['train_seconds'])
    for key in {by_time[0][0], by_time[-1][0]}:
        (cache / f'run-{key}.json').unlink()
    shutil.rmtree(cache / 'figures', ignore_errors=True)
    for weights in cache.glob('weights-*.npz'):
        weights.unlink()
    return by_time[-1][1]['used_by'][0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--jobs', type=int, default=usable_cores(),
                        help='workers of the parallel run (default: the cores, %(default)s)')
    parser.add_argument('--skip-serial', action='store_true', help='leave out the --jobs 1 run')
    parser.add_argument('--quick', action='store_true', help="the --quick report's runs")
    parser.add_argument('--data-root', type=Path, default=ROOT / 'data')
    args = parser.parse_args(argv)
    if args.jobs < 2:
        parser.error('--jobs: give 2 or more workers for the parallel run')

    print(f"Report benchmark: {'--quick report' if args.quick else 'the full reference report'}; "
          f"{platform.processor() or platform.machine()}, {usable_cores()} cores usable, "
          f"one BLAS thread per process", flush=True)
    with tempfile.TemporaryDirectory(prefix='bench-report-') as folder:
        folder = Path(folder)
        figures = {}
        if not args.skip_serial:
            figures['serial'], _ = make_report(args, folder / 'cache1', folder / 'out1', '--jobs', '1')
            show('serial (--jobs 1), empty cache', figures['serial'])
        figures['parallel'], results = make_report(args, folder / 'cache', folder / 'out',
                                                   '--jobs', str(args.jobs))
        ratio = (f"  ({figures['parallel'] / figures['serial']:.2f} of serial)"
                 if 'serial' in figures else '')
        show(f'parallel (--jobs {args.jobs}), empty cache', figures['parallel'], ratio)

        trimmed = folder / 'cache-trimmed'
        shutil.copytree(folder / 'cache', trimmed)
        longest = trim_cache(trimmed, results)
        figures['critical_path'], trimmed_results = make_report(args, trimmed, folder / 'out-trimmed',
                                                                '--jobs', '2')
        figures['critical_path_trained'] = trimmed_results['timing']['trained']
        show('critical path (the longest run trains)', figures['critical_path'], f'  ({longest})')

        analysis = folder / 'analysis.md'
        make_report(args, folder / 'cache', folder / 'out-student', '--student', '--analysis', str(analysis))
        with analysis.open('a', encoding='utf-8') as f:
            f.write('\nAn edit of the analysis.\n')
        figures['cached_rerun'], rerun = make_report(args, folder / 'cache', folder / 'out-student',
                                                     '--student', '--analysis', str(analysis))
        figures['cached_rerun_trained'] = rerun['timing']['trained']
        show('cached rerun after an analysis edit', figures['cached_rerun'])
    return figures      # seconds, and how many runs the last two trained


if __name__ == '__main__':
    main()
