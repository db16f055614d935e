"""Helpers that the tests (tests/) and the graded checks (tools/checks/) share.

- testkit.gradients: compare arrays and check gradients against float64
  central differences, with messages that name the array, the error and
  the first differing index.
- testkit.vectorised: find Python loops over the samples (or the output
  positions) of a batch by counting how often each line runs.

Both sides import this package; it imports neither of them.
"""
