"""The report's page of pictures of the momentum run: what the model learned.

The weights of each class as a 28x28 template, the confusion matrix of the
test split with per-class accuracy, and the misclassified test images the
model was most confident about (visualize.py draws all three).

The run's record in the report cache has its history, not its weights, so
the weights are cached beside it, as weights-<run key>.npz (np.savez, no
pickle). The run key covers the cfg, the data and the framework's code, so
the weights are retrained exactly when the run itself would be. Training is
seeded, so retraining gives the cached run again; the page checks that the
test accuracy of the weights equals the run's.

The three pictures and the numbers the page states are cached too (in the
figure cache, see prepare), so a rerun of the report only places them; the
report makes them while its other runs still train.
"""

import hashlib
import json
from pathlib import Path

import matplotlib
import numpy as np

import visualize
from fileio import atomic_write
from layers import load_state_dict, predict, state_dict
from loss import softmax
from solver import Solver

import runs
from pages import A4, MARGIN, code_hash

EXPERIMENT, VALUE = 'momentum', 0.9        # the run shown: SGD with momentum 0.9


def find_run(results):
    """(label, key) of the momentum-0.9 run of the report, or None when it has none."""
    for experiment in results['experiments']:
        if experiment['name'] == EXPERIMENT:
            for run in experiment['runs']:
                if run['value'] == VALUE:
                    return run['label'], run['key']
    return None


def trained_model(record, cache_dir):
    """(solver, model) of a run: weights from cache_dir, or trained and cached there."""
    solver = Solver(dict(record['cfg'], verbose=False))
    path = runs.cache_path(cache_dir, record['key']).with_name(f"weights-{record['key']}.npz")
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            load_state_dict(solver.model, saved, source=str(path))
        _, test_acc = solver.test()
        if test_acc == record['test_acc']:
            return solver, solver.model
        solver = Solver(dict(record['cfg'], verbose=False))    # stale file: train again
    with np.errstate(over='ignore', invalid='ignore'):
        solver.train()
    with atomic_write(path, 'wb') as f:
        np.savez(f, **state_dict(solver.model))
    return solver, solver.model


TITLE = '(b) Momentum against no momentum: What the momentum-0.9 run learned'
PICTURES = ('templates', 'confusion', 'misclassified')
HEIGHTS = (2.4, 2.5, 2.0)                       # inches of the three pictures
PICTURES_HEIGHT = sum(HEIGHTS) + 0.1 * len(HEIGHTS)

# The drawing code: a change to it draws the pictures again.
DRAWING_CODE = code_hash(visualize.__file__, __file__)


def prepare(record, cache_dir):
    """The run's three pictures and the numbers the page states, made once.

    Returns (numbers, {picture name: PNG path}). They are kept in
    cache_dir/figures/ under a hash of the run key, this drawing code and
    matplotlib's version, so a rerun of the report (or make_report.py while
    other runs still train) finds them there instead of drawing again.
    """
    key = hashlib.sha256(json.dumps([record['key'], DRAWING_CODE, matplotlib.__version__])
                         .encode()).hexdigest()[:24]
    folder = Path(cache_dir) / 'figures'
    numbers_path = folder / f'pictures-{key}.json'
    files = {name: folder / f'pictures-{key}-{name}.png' for name in PICTURES}
    if numbers_path.exists() and all(path.exists() for path in files.values()):
        return json.loads(numbers_path.read_text()), files

    solver, model = trained_model(record, cache_dir)
    test_set = solver.test_loader.dataset
    if hasattr(model, 'eval'):
        model.eval()                       # dropout and batch norm in evaluation mode
    probabilities = softmax(predict(model, test_set.images))      # (N, C)
    predicted = probabilities.argmax(axis=1)
    counts = visualize.confusion_matrix(test_set.labels, predicted, test_set.num_classes)
    class_acc = np.diag(counts) / np.maximum(counts.sum(axis=1), 1)
    off_diagonal = counts - np.diag(np.diag(counts))
    true_k, pred_k = np.unravel_index(off_diagonal.argmax(), counts.shape)
    numbers = {'test_acc': float(np.mean(predicted == test_set.labels)),
               'record_test_acc': record['test_acc'],
               'n_test': len(test_set),
               'mistakes': int(counts.sum() - np.trace(counts)),
               'hardest_class': int(class_acc.argmin()),
               'hardest_class_acc': float(class_acc.min()),
               'easiest_class': int(class_acc.argmax()),
               'easiest_class_acc': float(class_acc.max()),
               'top_confusion': [int(true_k), int(pred_k), int(off_diagonal.max())]}

    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, 'W'):
        fig = visualize.plot_weight_templates(model.W, files['templates'],
                                              image_shape=test_set.image_shape)
    else:
        fig = visualize.plot_weight_grid(visualize.first_layer_weights(model),
                                         files['templates'], test_set.image_shape)
    visualize.plt.close(fig)
    visualize.plt.close(visualize.plot_confusion_matrix(
        test_set.labels, predicted, test_set.num_classes, files['confusion'], title='Test split'))
    visualize.plt.close(visualize.plot_misclassified(
        test_set.images, test_set.labels, probabilities, files['misclassified'], max_images=16,
        image_shape=test_set.image_shape))
    with atomic_write(numbers_path, 'w') as f:       # last: it marks the pictures complete
        json.dump(numbers, f)
    return numbers, files


def write_page(writer, results, records, cache_dir, title=TITLE, findings=None):
    """Add the page (when the report has the momentum-0.9 run and it did not diverge).

    findings(page), if given, writes the page's question and analysis box
    above the pictures (it must leave PICTURES_HEIGHT inches for them).
    Returns the numbers the page states, or None when there is no page.
    """
    found = find_run(results)
    if found is None or records[found[1]]['status'] == runs.DIVERGED:
        return None
    label, key = found
    record = records[key]
    numbers, pictures = prepare(record, cache_dir)

    page = writer.new_page(title)
    page.heading(title.split(': ', 1)[-1], size=12)
    page.paragraph(f"The run \"{label}\" of the previous page, after its "
                   f"{len(record['history']['train_loss'])} epochs, on the "
                   f"{numbers['n_test']:,} test images.", color='0.3')
    k_true, k_pred, k_count = numbers['top_confusion']
    for text in (
            f"Test accuracy {100 * numbers['test_acc']:.2f}% "
            f"({numbers['mistakes']} mistakes). Hardest class: "
            f"{numbers['hardest_class']} ({100 * numbers['hardest_class_acc']:.1f}% right); easiest: "
            f"{numbers['easiest_class']} ({100 * numbers['easiest_class_acc']:.1f}%). Most frequent "
            f"mistake: {k_true} taken for {k_pred} ({k_count} images).",
            "Top: the weights of each class as an image. The score of a class is the sum of the "
            "pixels weighted by its template: red pixels raise it, blue lower it."):
        page.paragraph(text, bullet=True)
    if numbers['test_acc'] != record['test_acc']:
        page.paragraph(f"Note: the run's record says {100 * record['test_acc']:.2f}% test accuracy; "
                       f"retraining did not reproduce its weights exactly.", color='firebrick')
    if findings is not None:
        findings(page)
    for name, height in zip(PICTURES, HEIGHTS):
        figure = writer.figure_dir / f'{page.number:02d}-{name}.png'
        png = pictures[name].read_bytes()
        if not (figure.exists() and figure.read_bytes() == png):
            with atomic_write(figure, 'wb') as f:
                f.write(png)
        _place(page, figure, height)
        writer.figures.append(f'{writer.figure_dir.name}/{figure.name}')
    writer.finish_page(page)
    return numbers


def _place(page, path, height):
    """The saved PNG `path` on the page, `height` inches tall, full text width."""
    ax = page.fig.add_axes([MARGIN / A4[0], (page.y - height) / A4[1],
                            (A4[0] - 2 * MARGIN) / A4[0], height / A4[1]])
    ax.imshow(visualize.plt.imread(path))
    ax.axis('off')
    page.y -= height + 0.1
