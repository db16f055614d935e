"""Numerical gradient checking, as CS231n defines it.

The analytic gradient of a backward pass is compared with central
differences, (f(x + h) - f(x - h)) / 2h, computed in float64, using the
relative error |a - n| / max(|a| + |n|, tiny). Failure messages name the
array, the worst relative error and where the first large difference is,
so that a student knows which formula to look at.
"""

import contextlib

import numpy as np


def rel_error(analytic, numeric):
    """Largest element-wise relative error |a - n| / max(|a| + |n|, 1e-12)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    return float(np.max(np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-12)))


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient of the scalar function f() with respect to
    the array x, which f reads in place. x must be float64; it is restored."""
    assert x.dtype == np.float64, "gradient checks need float64 arrays"
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=['multi_index'])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def assert_close(actual, expected, name, rtol=1e-7, atol=0.0):
    """Fail with a message saying which array differs, where and by how much."""
    __tracebackhide__ = True    # pytest: show the message, not this function's source
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape}, expected {expected.shape}")
    if not np.all(np.isfinite(actual)):
        first = np.argwhere(~np.isfinite(actual))[0]
        raise AssertionError(f"{name}: not finite at index {tuple(first)} ({actual[tuple(first)]})")
    scale = np.maximum(np.abs(actual) + np.abs(expected), 1e-12)
    err = np.abs(actual - expected) / scale
    bad = (err > rtol) & (np.abs(actual - expected) > atol)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{name}: relative error {err.max():.3g} > {rtol:g}; first differing index {first}: "
            f"got {actual[first]:.8g}, expected {expected[first]:.8g} "
            f"({int(bad.sum())} of {bad.size} entries differ){constant_factor_hint(actual, expected)}")


def constant_factor_hint(actual, expected):
    """A hint when every entry is off by the same factor, the most common
    mistake in a batch-averaged gradient (a missing or extra 1/N)."""
    nonzero = np.abs(expected) > 1e-12
    if np.count_nonzero(nonzero) < 2:
        return ""
    ratio = actual[nonzero] / expected[nonzero]
    if np.allclose(ratio, ratio[0], rtol=1e-6) and not np.isclose(ratio[0], 1.0):
        return (f". Every entry is {ratio[0]:.6g} times the expected value: a constant factor is "
                f"missing or extra (a batch mean divides by the batch size N)")
    return ""


def check_gradient(f, x, analytic, name, rtol=1e-7, h=1e-6, atol=0.0):
    """Compare an analytic gradient of f() with respect to x against central differences.

    atol: entries whose absolute difference is below it pass whatever their
    relative error: central differences carry a rounding error of about
    1e-16 * |f| / h, which dominates for gradients near zero in deep networks."""
    __tracebackhide__ = True
    assert_close(analytic, numerical_gradient(f, x, h), f"{name} (analytic vs numerical gradient)",
                 rtol=rtol, atol=atol)


@contextlib.contextmanager
def no_float_errors(what, advice):
    """Run a block with NumPy's overflow, invalid and divide warnings turned
    into a failure that says what overflowed and how to avoid it (instead of
    a bare FloatingPointError)."""
    __tracebackhide__ = True
    try:
        with np.errstate(over='raise', invalid='raise', divide='raise'):
            yield
    except FloatingPointError as error:
        raise AssertionError(f"{what}: {error}. {advice}") from None
