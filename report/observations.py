"""The report's observations: sentences computed from the measured numbers.

Nothing here is a canned conclusion. Every function takes the summaries of
the runs (see runs.summarize) and returns a list of observations
    {'kind': ..., 'text': 'a sentence for the report', 'facts': {...}}
where `facts` holds the numbers the sentence states, so that a test (or a
curious student) can check the text against results.json.

An entry is one run of an experiment: {'label': 'momentum = 0.9',
'value': 0.9, 'summary': runs.summarize(record, target)}.
"""

import math
import numbers

from runs import DIVERGED, UNSTABLE

# Two speeds closer than this ratio are reported as "about the same": on a
# shared machine, timings of identical work vary by a few percent.
SAME_SPEED_TOLERANCE = 0.10


def pct(fraction):
    """0.92143 -> '92.14%'."""
    return f'{100 * fraction:.2f}%'


def points(difference):
    """Difference of two accuracy fractions in percentage points: 0.0213 -> '2.13'."""
    return f'{100 * difference:.2f}'


def seconds(value):
    """Seconds with 3 significant digits: 0.15432 -> '0.154 s'."""
    return f'{value:.3g} s'


def epochs_text(n):
    return f"{n} epoch{'s' if n != 1 else ''}"


def _observation(kind, text, **facts):
    return {'kind': kind, 'text': text, 'facts': facts}


def _finished(entries):
    """Entries that did not diverge and have a validation accuracy."""
    return [e for e in entries
            if e['summary']['status'] != DIVERGED and e['summary']['final_val_acc'] is not None]


# ---------------------------------------------------------------------------
# (a) one run
# ---------------------------------------------------------------------------

def observe_single(entry):
    """Final accuracies of one run, and the gap between training and test."""
    s = entry['summary']
    if s['status'] == DIVERGED:
        return [divergence_observation(entry)]
    epochs = s['epochs_completed']
    result = [_observation(
        'final_accuracy',
        f"After {epochs_text(epochs)} the model reaches {pct(s['test_acc'])} test accuracy "
        f"({pct(s['final_train_acc'])} on the training set, averaged over the last epoch, "
        f"and {pct(s['final_val_acc'])} on the validation set).",
        label=entry['label'], epochs=epochs, test_acc=s['test_acc'],
        train_acc=s['final_train_acc'], val_acc=s['final_val_acc'])]

    gap = s['final_train_acc'] - s['test_acc']
    if gap > 0:
        relation = f"{points(gap)} percentage points above the test accuracy"
    elif gap < 0:
        relation = f"{points(-gap)} percentage points below the test accuracy"
    else:
        relation = "equal to the test accuracy"
    result.append(_observation(
        'generalization_gap',
        f"The training accuracy is {relation}.", gap=gap))

    loss_drop = s['initial_loss'] - s['final_train_loss']
    result.append(_observation(
        'loss_curve',
        f"The training loss falls from {s['initial_loss']:.3f} on the first batch to "
        f"{s['final_train_loss']:.3f} averaged over the last epoch"
        + (f"; validation accuracy first reaches {pct(s['val_target'])} after "
           f"{epochs_text(s['epochs_to_target'])}." if s['epochs_to_target'] else
           f"; validation accuracy never reaches {pct(s['val_target'])}.")
        if loss_drop > 0 else
        f"The training loss does not fall: {s['initial_loss']:.3f} on the first batch, "
        f"{s['final_train_loss']:.3f} averaged over the last epoch.",
        initial_loss=s['initial_loss'], final_train_loss=s['final_train_loss'],
        epochs_to_target=s['epochs_to_target'], target=s['val_target']))
    result += [unstable_observation(entry)] if s['status'] == UNSTABLE else []
    return result


# ---------------------------------------------------------------------------
# (b), (c): runs that differ in one setting
# ---------------------------------------------------------------------------

def observe_comparison(entries, vary=None, speed=True):
    """Observations on a group of runs that differ in one setting `vary`.

    speed=False leaves out the sentence on seconds per epoch (for settings
    that do not change the work per epoch, where differences are noise).
    """
    result = []
    best = best_observation(entries)
    if best:
        result.append(best)
    trend = trend_observation(entries, vary)
    if trend:
        result.append(trend)
    result.append(target_observation(entries))
    timing = speed_observation(entries) if speed else None
    if timing:
        result.append(timing)
    result += stability_observations(entries)
    return result


def sampling_noise(accuracy, num_samples):
    """Two standard errors of an accuracy measured on num_samples images,
    2 * sqrt(p (1 - p) / n): smaller differences are not evidence that one
    setting is better (about 0.7 points for 93% on 5000 images)."""
    if not num_samples:
        return None
    return 2 * math.sqrt(accuracy * (1 - accuracy) / num_samples)


def best_observation(entries):
    """Which run has the best final validation accuracy, and by how much.

    The choice uses the validation set, never the test set (notes §1.3: no
    information about the test samples during training and model choice).
    """
    finished = _finished(entries)
    if not finished:
        return None
    ranked = sorted(finished, key=lambda e: -e['summary']['final_val_acc'])
    best, s = ranked[0], ranked[0]['summary']
    facts = {'best': best['label'], 'best_val_acc': s['final_val_acc'],
             'best_test_acc': s['test_acc']}
    if len(ranked) == 1:
        return _observation(
            'best', f"Only {best['label']} finished, with {pct(s['final_val_acc'])} "
                    f"validation accuracy.", **facts)
    runner_up, worst = ranked[1], ranked[-1]
    margin = s['final_val_acc'] - runner_up['summary']['final_val_acc']
    spread = s['final_val_acc'] - worst['summary']['final_val_acc']
    facts.update(runner_up=runner_up['label'], margin=margin,
                 worst=worst['label'], spread=spread)
    if margin == 0:
        text = (f"Best final validation accuracy: {best['label']} and {runner_up['label']} "
                f"tie at {pct(s['final_val_acc'])}")
    else:
        text = (f"Best final validation accuracy: {best['label']} with "
                f"{pct(s['final_val_acc'])}, {points(margin)} percentage points above the "
                f"next best ({runner_up['label']}, {pct(runner_up['summary']['final_val_acc'])})")
        noise = sampling_noise(s['final_val_acc'], s.get('n_val'))
        if noise is not None and margin < noise:
            facts.update(noise=noise)
    if len(ranked) > 2:
        text += (f" and {points(spread)} points above the worst ({worst['label']}, "
                 f"{pct(worst['summary']['final_val_acc'])})")
    text += f". Its test accuracy is {pct(s['test_acc'])}."
    if 'noise' in facts:
        text += (f" Its lead over {runner_up['label']} is within the noise of the measurement: "
                 f"two standard errors on {s['n_val']} validation images are {points(facts['noise'])} points.")
    return _observation('best', text, **facts)


def trend_observation(entries, vary):
    """How the final validation accuracy changes along a numeric sweep (3+ runs)."""
    finished = [e for e in _finished(entries)
                if isinstance(e['value'], numbers.Real) and not isinstance(e['value'], bool)]
    if len(finished) < 3:
        return None
    finished.sort(key=lambda e: e['value'])
    accs = [e['summary']['final_val_acc'] for e in finished]
    steps = [b - a for a, b in zip(accs, accs[1:])]
    name = vary or 'the setting'
    low, high = finished[0]['value'], finished[-1]['value']
    peak = max(range(len(accs)), key=lambda i: accs[i])
    if all(d >= 0 for d in steps):
        shape, text = 'increasing', (f"The final validation accuracy never decreases as {name} "
                                     f"grows from {low:g} to {high:g}.")
    elif all(d <= 0 for d in steps):
        shape, text = 'decreasing', (f"The final validation accuracy never increases as {name} "
                                     f"grows from {low:g} to {high:g}.")
    elif all(d >= 0 for d in steps[:peak]) and all(d <= 0 for d in steps[peak:]):
        shape, text = 'peak', (f"The final validation accuracy rises with {name} up to "
                               f"{finished[peak]['value']:g}, then falls.")
    else:
        shape, text = 'mixed', (f"The final validation accuracy goes up and down as {name} "
                                f"grows (highest at {finished[peak]['value']:g}).")
    return _observation('trend', text, shape=shape, values=[e['value'] for e in finished],
                        val_accs=accs, peak_value=finished[peak]['value'])


def target_observation(entries):
    """Epochs (and seconds of training) each run needs to reach the validation target."""
    target = entries[0]['summary']['val_target']
    reached = [e for e in entries if e['summary']['epochs_to_target']]
    missed = [e for e in entries if not e['summary']['epochs_to_target']]
    parts = [f"{e['label']} after {epochs_text(e['summary']['epochs_to_target'])} "
             f"({seconds(e['summary']['seconds_to_target'])} of training)" for e in reached]
    parts += [f"{e['label']} diverged first" if e['summary']['status'] == DIVERGED else
              f"{e['label']} never (in {epochs_text(e['summary']['epochs_completed'])})"
              for e in missed]
    text = f"Reaching {pct(target)} validation accuracy: " + '; '.join(parts) + '.'
    facts = {'target': target,
             'epochs_to_target': {e['label']: e['summary']['epochs_to_target'] for e in entries},
             'seconds_to_target': {e['label']: e['summary']['seconds_to_target'] for e in entries}}
    if len(reached) >= 2:
        fastest = min(reached, key=lambda e: e['summary']['epochs_to_target'])
        slowest = max(reached, key=lambda e: e['summary']['epochs_to_target'])
        ratio = (slowest['summary']['epochs_to_target']
                 / fastest['summary']['epochs_to_target'])
        if ratio > 1:
            text += (f" {slowest['label']} needs {ratio:.3g} times as many epochs as "
                     f"{fastest['label']}.")
        facts['epoch_ratio'] = ratio
    return _observation('target', text, **facts)


def speed_observation(entries):
    """Median seconds per training epoch: fastest against slowest."""
    timed = [e for e in entries if e['summary']['sec_per_epoch']]
    if len(timed) < 2:
        return None
    fastest = min(timed, key=lambda e: e['summary']['sec_per_epoch'])
    slowest = max(timed, key=lambda e: e['summary']['sec_per_epoch'])
    ratio = slowest['summary']['sec_per_epoch'] / fastest['summary']['sec_per_epoch']
    verdict = ('about the same speed' if ratio < 1 + SAME_SPEED_TOLERANCE
               else f"{slowest['label']} is {ratio:.2f} times slower per epoch")
    text = (f"One training epoch takes {seconds(fastest['summary']['sec_per_epoch'])} with "
            f"{fastest['label']} and {seconds(slowest['summary']['sec_per_epoch'])} with "
            f"{slowest['label']} (median): {verdict}.")
    updates = {e['label']: e['summary']['updates_per_epoch'] for e in timed}
    if len(set(updates.values())) > 1:
        text += (' Updates per epoch: '
                 + ', '.join(f'{label} {n}' for label, n in updates.items()) + '.')
    return _observation('speed', text, fastest=fastest['label'], slowest=slowest['label'],
                        ratio=ratio, sec_per_epoch={e['label']: e['summary']['sec_per_epoch']
                                                    for e in timed})


def divergence_observation(entry):
    s = entry['summary']
    where = s['diverged_at']
    return _observation(
        'diverged',
        f"{entry['label']} diverged: the training loss became NaN or infinite at epoch "
        f"{where['epoch']}, batch {where['batch']} (update {where['update']} of the run).",
        label=entry['label'], **where)


def unstable_observation(entry):
    s = entry['summary']
    return _observation(
        'unstable',
        f"{entry['label']} is unstable: its last epoch's mean training loss, "
        f"{s['final_train_loss']:.3g}, is above the untrained model's {s['initial_loss']:.3g} "
        f"(single batches reached {s['max_batch_loss']:.3g}), yet it ends with "
        f"{pct(s['final_val_acc'])} validation accuracy.",
        label=entry['label'], final_train_loss=s['final_train_loss'],
        initial_loss=s['initial_loss'], max_batch_loss=s['max_batch_loss'],
        val_acc=s['final_val_acc'])


def stability_observations(entries):
    """One sentence per diverged or unstable run, or one saying that none was."""
    result = []
    for entry in entries:
        if entry['summary']['status'] == DIVERGED:
            result.append(divergence_observation(entry))
        elif entry['summary']['status'] == UNSTABLE:
            result.append(unstable_observation(entry))
    if not result:
        result.append(_observation(
            'stable', 'No run diverged or ended with a higher training loss than it started with.'))
    return result
