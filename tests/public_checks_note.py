"""A line at the end of every test run in a student handout: this self-check
runs the public tests only, so green is not yet full marks.

tests/conftest.py prints public_checks_note() at the end of its terminal
summary (pytest_terminal_summary below does the same for a conftest
without one). The handout's tools/submission.json
(written by tools/handout.py) says whether grading adds hidden checks; in the
instructor's repository, where the hidden tests run too, nothing is printed.
"""

import json
from pathlib import Path

SUBMISSION_INFO = Path(__file__).resolve().parents[1] / 'tools' / 'submission.json'


def public_checks_note():
    """The note to print, or None (not a handout, or no hidden checks)."""
    try:
        info = json.loads(SUBMISSION_INFO.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    if not info.get('hidden_checks'):
        return None
    return ("Self-check: these are the public tests. Grading runs its own checks on new inputs, hidden ones "
            "included, and computes every score itself: all green here is not yet full marks.")


def pytest_terminal_summary(terminalreporter):
    note = public_checks_note()
    if note:
        terminalreporter.write_line(note)
