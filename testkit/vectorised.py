"""Is the code vectorised? A tracer that finds Python loops over the samples.

A Python loop over the samples of a batch (or the output positions of an
image, or the entries of a weight matrix) gives correct numbers but is 100
to 1000 times slower than NumPy's whole-array operations. This module finds
such loops without reading the code: it runs the function under
sys.settrace for a small and a large size and counts how often every line
of the student's files is executed. Without a loop the counts do not depend
on the size; a line inside a loop over the samples runs once per sample,
so its count grows with the batch. A loop over a fixed number of things
(the parameters W and b, the classes, the k·k offsets of a kernel) is fine:
its count is the same for both sizes.

The tests call assert_vectorized(). The graded checks (tools/checks/) send
executed_lines() to the process that runs the student's code and judge
its counts with growing_lines() and loop_message(), so both say the same.
"""


def executed_lines(run, files, depths=None):
    """Call run() and return a Counter {(file name, line number): times executed}
    for the lines of the given files (paths; compared as absolute paths).

    Lambdas, comprehensions and generator expressions in these files count
    too, so that map(lambda ...) or [f(x) for x in batch] are seen as loops.
    depths: a dict to fill with {(file name, line number): depth}, the
    fewest calls within these files between run() and the line (1 for the
    function that run() calls), so that a loop can be told from the lines
    it calls. (Self-contained, imports included: the graded checks send its
    source to the child process that runs the student's code.)
    """
    import os
    import sys
    from collections import Counter

    targets = {os.path.abspath(f) for f in files}
    counts = Counter()
    depths = {} if depths is None else depths
    known = {}

    def inside(code):
        if code.co_filename not in known:
            known[code.co_filename] = os.path.abspath(code.co_filename) in targets
        return known[code.co_filename]

    def count(frame, line):
        key = (os.path.basename(frame.f_code.co_filename), line)
        counts[key] += 1
        depth = 1                          # frames of these files on the stack
        caller = frame.f_back
        while caller is not None:
            depth += inside(caller.f_code)
            caller = caller.f_back
        depths[key] = min(depths.get(key, depth), depth)

    def trace_lines(frame, event, arg):
        if event == 'line':
            count(frame, frame.f_lineno)
        return trace_lines

    def trace_calls(frame, event, arg):
        if not inside(frame.f_code):
            return None
        count(frame, frame.f_code.co_firstlineno)     # the call itself
        return trace_lines

    previous = sys.gettrace()
    sys.settrace(trace_calls)
    try:
        run()
    finally:
        sys.settrace(previous)
    return counts


def growing_lines(count_small, count_large, small, large, depths=None):
    """The lines that run about once more per element: [(file, line, times
    for small, times for large)]. A line counts as growing when it runs at
    least (large - small) // 2 more times for the larger size. With `depths`
    (executed_lines), the outermost lines come first: the loop itself before
    the lines of the functions it calls."""
    growing = [(file, line, count_small.get((file, line), 0), count_large[(file, line)])
               for file, line in count_large
               if count_large[(file, line)] - count_small.get((file, line), 0) >= (large - small) // 2]
    depths = depths or {}
    return sorted(growing, key=lambda row: (depths.get(row[:2], 0), row))


def loop_message(name, what, growing, small, large):
    """The one failure message for a loop found by growing_lines(): the
    first line named is the loop's (then up to 4 lines it runs)."""
    where = ', '.join(f"{file} line {line} ({a} times for {small}, {b} times for {large})"
                      for file, line, a, b in growing[:5])
    return (f"{name} is not vectorised: a Python loop runs once per element of the {what}. "
            f"Lines executed more often for {large} than for {small} {what}: {where}. "
            f"Replace the loop by whole-array NumPy operations (matrix products @, broadcasting, "
            f"indexing with an array of labels, .sum(axis=...), .max(axis=..., keepdims=True)).")


def assert_vectorized(make_run, files, name, sizes=(8, 40), what='samples in the batch'):
    """Fail if a line of `files` runs more often for the larger size.

    Inputs:
    - make_run(size): returns a function of no argument that calls the code
      to check once, on data of that size (e.g. a batch of `size` samples)
    - files: the student's files to watch (paths)
    - name: what is checked, for the message (e.g. 'SoftmaxCrossEntropyLoss.forward')
    - what: what `size` counts, for the message
    """
    __tracebackhide__ = True    # pytest: show the message, not this function's source
    small, large = sizes
    depths = {}
    growing = growing_lines(executed_lines(make_run(small), files, depths),
                            executed_lines(make_run(large), files, depths), small, large, depths)
    if growing:
        raise AssertionError(loop_message(name, what, growing, small, large))
