"""Self-checks for the softmax homework: the TODO code must be vectorised.

The numbers of the TODO code are checked by test_loss.py and
test_optimizer.py; here we check that it uses whole-array NumPy operations
rather than Python loops over the samples (see testkit/vectorised.py for how).
"""

import importlib.util
import textwrap

import numpy as np
import pytest

import loss as loss_module
import optimizer as optimizer_module
from loss import SoftmaxCrossEntropyLoss
from optimizer import SGD
from testkit.vectorised import assert_vectorized

STUDENT_FILES = [loss_module.__file__, optimizer_module.__file__]


def batch(size, num_input=6, num_output=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(size, num_input)), rng.integers(0, num_output, size=size)


@pytest.mark.solution('softmax')
def test_forward_is_vectorised():
    def make_run(size):
        np.random.seed(0)
        model = SoftmaxCrossEntropyLoss(6, 4)
        Input, labels = batch(size)
        return lambda: model.forward(Input, labels)
    assert_vectorized(make_run, STUDENT_FILES, 'SoftmaxCrossEntropyLoss.forward')


@pytest.mark.solution('softmax')
def test_gradient_computing_is_vectorised():
    def make_run(size):
        np.random.seed(0)
        model = SoftmaxCrossEntropyLoss(6, 4)
        model.forward(*batch(size))
        return model.gradient_computing
    assert_vectorized(make_run, STUDENT_FILES, 'SoftmaxCrossEntropyLoss.gradient_computing')


@pytest.mark.solution('softmax')
def test_sgd_step_is_vectorised():
    def make_run(size):
        np.random.seed(0)
        model = SoftmaxCrossEntropyLoss(size, 3)   # W is (size, 3): a loop over its rows would grow
        model.grad_W, model.grad_b = np.ones_like(model.W), np.ones_like(model.b)
        optimizer = SGD(model, learning_rate=0.1, momentum=0.9)
        optimizer.step()  # the first step creates the velocities
        return optimizer.step
    assert_vectorized(make_run, STUDENT_FILES, 'SGD.step', what='entries of W')


# ----- the checker itself (no solution needed: these run in every handout) -----

def load_module(tmp_path, source):
    path = tmp_path / 'student_code.py'
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location('student_code', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(path)


def test_checker_flags_loops_and_comprehensions_over_samples(tmp_path):
    module, path = load_module(tmp_path, '''
        import numpy as np

        def looped(x):
            total = 0.0
            for row in x:
                total += row.sum()
            return total

        def comprehension(x):
            return np.array([row.max() for row in x])

        def vectorised(x):
            return x.sum(axis=1).max()
    ''')
    for name in ('looped', 'comprehension'):
        function = getattr(module, name)
        with pytest.raises(AssertionError, match=rf"{name} is not vectorised.*student_code.py line \d+"):
            assert_vectorized(lambda n: (lambda: function(np.ones((n, 3)))), [path], name)
    assert_vectorized(lambda n: (lambda: module.vectorised(np.ones((n, 3)))), [path], 'vectorised')


def test_checker_allows_loops_of_fixed_length(tmp_path):
    module, path = load_module(tmp_path, '''
        def per_parameter(params):
            for p in params:        # two parameters, whatever the batch size
                p *= 0.5
    ''')
    import numpy as np
    assert_vectorized(lambda n: (lambda: module.per_parameter([np.ones((n, 2)), np.ones(2)])),
                      [path], 'per_parameter')
