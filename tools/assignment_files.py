"""What a handout holds: the manifest, the files copied, solution regions and
their student form, and the leak check. Shared by tools/handout.py (which
writes and validates handouts) and tools/grade.py (which grades in a copy of
the handout), so that these two do not import each other.

Solution regions
----------------
Every student-facing body in the reference is written between two lines, at
the body's indentation:

    ### BEGIN SOLUTION softmax
    ...reference code...
    ### END SOLUTION

The words after BEGIN SOLUTION are the assignments the region belongs to
(tools/assignments.json lists them). The TODO frame (the ##### lines, the
"# TODO: Put your code here" line and its hints) stays outside the region,
so the handout keeps it word for word.

The handout of assignment A removes EVERY solution region of every
assignment, so no reference code of any assignment is left in it:
- a region tagged A becomes
      raise NotImplementedError("Class.method is not implemented yet: ...")
  naming the function to write;
- a region of another assignment becomes a stub
      raise NotImplementedError("function is part of the 'mlp' assignment ...")
  unless A builds on that assignment ('builds_on' in the manifest): the
  solution of a released assignment is shipped as it is;
- in a notebook, a code cell follows the same rule and a markdown cell's
  region becomes "YOUR ANSWER HERE" (nbgrader's wording); every output and
  execution count is cleared.
Hidden tests (tests/hidden), the instructor tools, the files that the
manifest's 'only_in' gives to other assignments, and the tests whose
solution markers name code the handout does not hold (whole files, or
single tests of a file, see drop_tests_needing) are left out.

A check then proves that no line of any solution region is left anywhere in
the copy (see find_leaks) and that every .py file still compiles.

"""

import ast
import fnmatch
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
MANIFEST = TOOLS / 'assignments.json'

BEGIN_RE = re.compile(r'^(?P<indent>[ \t]*)### BEGIN SOLUTION\b(?P<tags>.*?)\s*$')
END_RE = re.compile(r'^(?P<indent>[ \t]*)### END SOLUTION\s*$')
TAG_RE = re.compile(r'^[A-Za-z0-9_-]+$')
MARKDOWN_ANSWER = 'YOUR ANSWER HERE'
# Solution lines shorter than this (e.g. "pass", ")") prove nothing when found.
MIN_LEAK_CHARS = 8


class HandoutError(Exception):
    """A problem in the reference files or the manifest, with where it is."""


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------

def load_manifest(path=MANIFEST):
    """Read tools/assignments.json and check the fields the tools rely on."""
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise HandoutError(f"cannot read the assignment manifest {path}: {error}") from None
    assignments = manifest.get('assignments')
    if not isinstance(assignments, dict) or not assignments:
        raise HandoutError(f"{path}: 'assignments' must be a non-empty object")
    for name, spec in assignments.items():
        if not TAG_RE.match(name):
            raise HandoutError(f"{path}: assignment name {name!r} may only use letters, digits, _ and -")
        for key in ('student_files', 'time_limit'):
            if key not in spec:
                raise HandoutError(f"{path}: assignment {name!r} has no {key!r}")
        spec.setdefault('graded_files', [f for f in spec['student_files'] if f.endswith('.py')])
        spec.setdefault('test_timeout', spec['time_limit'])
        spec.setdefault('default_points', 1)
        spec.setdefault('checks', {})
        for earlier in spec.get('builds_on', []):
            if earlier not in assignments or earlier == name:
                raise HandoutError(f"{path}: assignment {name!r} builds on {earlier!r}, which is not another "
                                   f"assignment of the manifest")
    for key in ('instructor_only', 'never_copy', 'not_in_grading_sandbox'):
        manifest.setdefault(key, [])
    manifest.setdefault('hidden_tests_dir', 'tests/hidden')
    return manifest


def check_assignment(manifest, name):
    if name not in manifest['assignments']:
        raise HandoutError(f"unknown assignment {name!r}; the manifest defines: "
                           f"{', '.join(manifest['assignments'])}")
    return manifest['assignments'][name]


# ---------------------------------------------------------------------------
# Which files are copied
# ---------------------------------------------------------------------------

def _matches(rel, patterns):
    name = rel.rsplit('/', 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _under(rel, folders):
    return any(rel == d.rstrip('/') or rel.startswith(d.rstrip('/') + '/') for d in folders)


def list_files(root, manifest, include_hidden=False, include_instructor=False, extra_exclude=()):
    """Relative (posix) paths of the regular files of the reference to copy."""
    root = Path(root)
    skip = list(manifest['never_copy']) + list(extra_exclude)

    def excluded(rel, path):
        return (os.path.islink(path) or _matches(rel, skip) or _under(rel, extra_exclude)
                or (not include_instructor and _under(rel, manifest['instructor_only']))
                or (not include_hidden and _under(rel, [manifest['hidden_tests_dir']])))

    out = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = '' if rel_folder == '.' else rel_folder + '/'
        dirs[:] = [d for d in sorted(dirs) if not excluded(prefix + d, os.path.join(folder, d))]
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not excluded(prefix + name, path):
                out.append(prefix + name)
    return out


def test_file_tags(source):
    """Assignments named by @pytest.mark.solution(...) / pytestmark in a test file."""
    tags = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return tags
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == 'solution'):
            tags.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return tags


# ---------------------------------------------------------------------------
# Solution regions
# ---------------------------------------------------------------------------

def find_regions(lines, where, known_tags):
    """[(begin_index, end_index, indent, tags)] of the regions in a list of lines.

    Raises HandoutError naming the file and line of any malformed marker.
    """
    regions, open_region = [], None
    for i, line in enumerate(lines):
        begin, end = BEGIN_RE.match(line), END_RE.match(line)
        if begin:
            if open_region is not None:
                raise HandoutError(f"{where}:{i + 1}: BEGIN SOLUTION inside the region opened at line "
                                   f"{open_region[0] + 1}; close it with '### END SOLUTION' first")
            tags = begin.group('tags').split()
            if not tags:
                raise HandoutError(f"{where}:{i + 1}: '### BEGIN SOLUTION' needs the assignment(s) it "
                                   f"belongs to, e.g. '### BEGIN SOLUTION {sorted(known_tags)[0]}'")
            unknown = [t for t in tags if t not in known_tags]
            if unknown:
                raise HandoutError(f"{where}:{i + 1}: unknown assignment tag(s) {', '.join(unknown)}; "
                                   f"tools/assignments.json defines {', '.join(sorted(known_tags))}")
            open_region = (i, begin.group('indent'), tags)
        elif end:
            if open_region is None:
                raise HandoutError(f"{where}:{i + 1}: '### END SOLUTION' without a BEGIN SOLUTION above it")
            start, indent, tags = open_region
            if end.group('indent') != indent:
                raise HandoutError(f"{where}:{i + 1}: '### END SOLUTION' is not at the indentation of its "
                                   f"BEGIN SOLUTION (line {start + 1})")
            regions.append((start, i, indent, tags))
            open_region = None
        elif 'BEGIN SOLUTION' in line or 'END SOLUTION' in line:
            stripped = line.strip()
            if stripped.startswith('#') and stripped.lstrip('#').strip().startswith(('BEGIN SOLUTION', 'END SOLUTION')):
                raise HandoutError(f"{where}:{i + 1}: malformed marker {stripped!r}; write exactly "
                                   f"'### BEGIN SOLUTION <tags>' or '### END SOLUTION'")
    if open_region is not None:
        raise HandoutError(f"{where}:{open_region[0] + 1}: BEGIN SOLUTION is never closed by '### END SOLUTION'")
    return regions


def _blank_magics(source):
    """Notebook code may hold IPython magics; blank them so that ast can parse it."""
    return '\n'.join('' if line.lstrip().startswith(('%', '!')) else line for line in source.split('\n'))


def _function_names(source):
    """{line number (1-based): qualified name of the innermost function there}."""
    try:
        tree = ast.parse(_blank_magics(source))
    except SyntaxError:
        return {}
    names = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    for n in range(child.lineno, child.end_lineno + 1):
                        names[n] = qual
                visit(child, qual + '.')
            else:
                visit(child, prefix)

    visit(tree, '')
    return names


def strip_regions(text, where, assignment, known_tags, kind='code', filename=None, released=()):
    """The text with every solution region replaced (see the module docstring).

    kind: 'code' (Python: a raise) or 'markdown' (YOUR ANSWER HERE).
    released: assignments whose solutions this handout ships (the manifest's
    'builds_on': e.g. the cnn handout needs the released mlp solution to
    train anything); their regions keep the reference code, without markers.
    Returns (new_text, number of regions of `assignment`, number of others).
    """
    lines = text.split('\n')
    regions = find_regions(lines, where, known_tags)
    if not regions:
        return text, 0, 0
    names = _function_names(text) if kind == 'code' else {}
    filename = filename or where
    out, previous, own, other = [], 0, 0, 0
    for start, end, indent, tags in regions:
        out.extend(lines[previous:start])
        if assignment not in tags and set(tags) & set(released):
            out.extend(lines[start + 1:end])      # a released solution: shipped as it is
            previous = end + 1
            continue
        if kind == 'markdown':
            replacement = MARKDOWN_ANSWER if assignment in tags else \
                f"(This answer belongs to the '{tags[0]}' assignment.)"
        else:
            what = names.get(start + 1)
            if assignment in tags:
                target = what or f"the code at {where}, line {start + 1},"
                message = (f"{target} is not implemented yet: replace this raise with your code "
                           f"(see the TODO above, in {filename})")
            else:
                target = what or f"this part of {filename}"
                message = (f"{target} is part of the '{tags[0]}' assignment and is not provided in the "
                           f"'{assignment}' handout; write what you need yourself")
            replacement = f"raise NotImplementedError({message!r})"
        out.append(indent + replacement)
        if assignment in tags:
            own += 1
        else:
            other += 1
        previous = end + 1
    out.extend(lines[previous:])
    return '\n'.join(out), own, other


def regions_of_notebook(nb, where, known_tags):
    """[(cell_index, kind, source, regions)] for the cells that hold regions."""
    found = []
    for index, cell in enumerate(nb.cells):
        regions = find_regions(cell.source.split('\n'), f"{where} cell {index}", known_tags)
        if regions:
            found.append((index, cell.cell_type, cell.source, regions))
    return found


def strip_notebook(nb, where, assignment, known_tags, released=()):
    """Strip the regions of a notebook (in place), clear outputs; returns (own, other)."""
    own = other = 0
    for index, cell in enumerate(nb.cells):
        kind = 'code' if cell.cell_type == 'code' else 'markdown'
        cell.source, n_own, n_other = strip_regions(
            cell.source, f"{where} cell {index}", assignment, known_tags, kind,
            filename=f"{where}, cell {index}", released=released)
        own, other = own + n_own, other + n_other
        if cell.cell_type == 'code':
            cell.outputs = []
            cell.execution_count = None
        for key in ('execution', 'collapsed', 'scrolled'):
            cell.metadata.pop(key, None)
    return own, other


def handout_text(root, rel, assignment, known_tags, released=()):
    """Handout version of one reference file: (text or None for binary, own, other)."""
    path = Path(root) / rel
    if rel.endswith('.ipynb'):
        import nbformat
        nb = nbformat.read(str(path), as_version=4)
        own, other = strip_notebook(nb, rel, assignment, known_tags, released)
        return nbformat.writes(nb) + '\n', own, other
    if rel.endswith('.py'):
        text = path.read_text(encoding='utf-8')
        if rel.rsplit('/', 1)[-1].startswith('test_'):
            text = drop_tests_needing(text, {assignment, *released})
        return strip_regions(text, rel, assignment, known_tags, 'code', filename=rel, released=released)
    if rel.endswith('.md'):
        return strip_instructor_notes(path.read_text(encoding='utf-8'), assignment), 0, 0
    return None, 0, 0


ASSIGNMENT_NOTE_RE = re.compile(r'^<!-- BEGIN ASSIGNMENT (?P<tags>[\w -]+?) -->$')


def _solution_tags(node):
    """Assignments named by the @pytest.mark.solution(...) decorators of a test."""
    return {arg.value for decorator in getattr(node, 'decorator_list', ()) for call in ast.walk(decorator)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == 'solution'
            for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}


def drop_tests_needing(source, present):
    """A test file without the top-level tests (functions or classes) whose
    solution markers name an assignment outside `present`: a handout ships
    the tests of the code it holds, instead of skipping the others."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.split('\n')
    dropped = set()
    for node in tree.body:
        tags = _solution_tags(node)
        if tags - set(present):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            dropped.update(range(first - 1, node.end_lineno))
    if not dropped:
        return source
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    return re.sub(r'\n{4,}', '\n\n\n', '\n'.join(kept))


def strip_instructor_notes(text, assignment=None):
    """Markdown as the handout of `assignment` shows it. Markers are whole
    lines, invisible when rendered:
    - <!-- BEGIN INSTRUCTORS --> ... <!-- END INSTRUCTORS -->: left out of
      every handout (e.g. the README's section on releasing and grading);
    - <!-- BEGIN ASSIGNMENT a b --> ... <!-- END ASSIGNMENT -->: kept (without
      the markers) only in the handouts of the assignments listed, e.g. a
      feature that needs another assignment's code.
    Blocks do not nest."""
    kept, inside = [], None          # inside: None, 'INSTRUCTORS' or 'ASSIGNMENT'
    keep_block = True
    for line in text.splitlines(keepends=True):
        marker = line.strip()
        assignment_match = ASSIGNMENT_NOTE_RE.match(marker)
        if marker == '<!-- BEGIN INSTRUCTORS -->' and inside is None:
            inside, keep_block = 'INSTRUCTORS', False
        elif assignment_match and inside is None:
            inside, keep_block = 'ASSIGNMENT', assignment in assignment_match['tags'].split()
        elif marker == f'<!-- END {inside} -->':
            inside, keep_block = None, True
        elif (marker in ('<!-- BEGIN INSTRUCTORS -->', '<!-- END INSTRUCTORS -->', '<!-- END ASSIGNMENT -->')
              or assignment_match):
            raise HandoutError(f'unbalanced instructor notes: unexpected {marker}')
        elif keep_block:
            kept.append(line)
    if inside:
        raise HandoutError(f'unbalanced instructor notes: <!-- BEGIN {inside} ... --> is never closed')
    return ''.join(kept)


# ---------------------------------------------------------------------------
# Making the handout
# ---------------------------------------------------------------------------

def handout_files(root, manifest, assignment, exclude=()):
    """The reference files that go into the handout of `assignment`
    (less the files and folders in `exclude`)."""
    present = {assignment} | released_solutions(manifest, assignment)
    files = []
    for rel in list_files(root, manifest, extra_exclude=exclude):
        only_in = [names for path, names in manifest.get('only_in', {}).items() if _under(rel, [path])]
        if only_in and assignment not in only_in[0]:
            continue  # another assignment's notebook or tool
        if rel.endswith('.py') and rel.rsplit('/', 1)[-1].startswith('test_'):
            source = (Path(root) / rel).read_text(encoding='utf-8')
            tags = test_file_tags(source)
            if tags and assignment not in tags:
                continue  # tests of other assignments only: they could not pass here
            if tags and 'def test_' not in drop_tests_needing(source, present):
                continue  # every test needs another assignment's code
        files.append(rel)
    return files


def has_hidden_checks(root, assignment):
    """Whether grading `assignment` runs hidden checks (tools/checks/<assignment>.py)."""
    tools = str(Path(root) / 'tools')
    if tools not in sys.path:
        sys.path.insert(0, tools)
    try:
        from checks import load_checks   # the grader's checks; imported only here
        return any(check.hidden for check in load_checks(assignment, root))
    except ImportError:                  # a course without graded checks (yet)
        return False


def make_handout(root, out_dir, assignment, manifest=None, exclude=()):
    """Write the student copy of `assignment` into out_dir (which must not exist
    or be empty) and check it. Returns a summary dict.

    exclude: files or folders (relative, / separated) to leave out as well;
    the grader leaves out what its checks never read (manifest
    'not_in_grading_sandbox')."""
    root = Path(root).resolve()
    manifest = manifest or load_manifest(root / 'tools' / 'assignments.json')
    check_assignment(manifest, assignment)
    known = set(manifest['assignments'])
    out_dir = Path(out_dir).resolve()
    if out_dir == root or root in out_dir.parents:
        raise HandoutError(f"write the handout outside the reference folder, not into {out_dir}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise HandoutError(f"{out_dir} already exists and is not an empty folder; choose another one "
                           f"or delete it first")
    files = handout_files(root, manifest, assignment, exclude)
    released = released_solutions(manifest, assignment)
    summary = {'assignment': assignment, 'files': len(files), 'todo_regions': 0, 'stubbed_regions': 0}

    # Write into a temporary sibling, then rename: an interrupted run leaves no half handout.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix='.' + out_dir.name + '.'))
    try:
        os.chmod(tmp, 0o755)   # mkdtemp makes it 0700: students share or unpack the folder
        shutil.copyfile(TOOLS / 'handout.gitignore', tmp / '.gitignore')   # what never to hand in
        for rel in files:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            text, own, other = handout_text(root, rel, assignment, known, released)
            if text is None:
                shutil.copy2(root / rel, target)
            else:
                target.write_text(text, encoding='utf-8')
                summary['todo_regions'] += own
                summary['stubbed_regions'] += other
        # what tools/submit.py packs, and whether the self-check should say it is the public part
        spec = manifest['assignments'][assignment]
        (tmp / 'tools').mkdir(exist_ok=True)
        (tmp / 'tools' / 'submission.json').write_text(json.dumps(
            {'assignment': assignment, 'files': spec['student_files'], 'builds_on': sorted(released),
             'hidden_checks': has_hidden_checks(root, assignment)}, indent=1) + '\n', encoding='utf-8')
        problems = find_leaks(root, tmp, manifest, released)
        if problems:
            raise HandoutError("the handout check failed:\n  " + '\n  '.join(problems))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


# ---------------------------------------------------------------------------
# The leak check
# ---------------------------------------------------------------------------

def _normalise(line):
    return ' '.join(line.split())


def released_solutions(manifest, assignment):
    """The assignments whose solutions the handout of `assignment` ships
    (its 'builds_on' in the manifest, as a course releases the solution of
    the previous homework)."""
    return set(manifest['assignments'][assignment].get('builds_on', []))


def notebook_cell_sources(path):
    """The source of every cell of a notebook, read as JSON (no nbformat needed:
    the grader runs with any Python that has NumPy)."""
    with open(path, encoding='utf-8') as f:
        cells = json.load(f).get('cells', [])
    return [''.join(cell.get('source', '')) if isinstance(cell.get('source'), list) else cell.get('source', '')
            for cell in cells]


def solution_lines(root, manifest, released=()):
    """Normalised lines of every solution region of the reference that could
    give a solution away, i.e. that do not also appear outside the regions
    (such as `return delta`) and are at least MIN_LEAK_CHARS long. Regions of
    `released` assignments are shipped, so they count as outside."""
    known = set(manifest['assignments'])
    inside, outside = set(), set()
    for rel in list_files(root, manifest, include_hidden=True):
        path = Path(root) / rel
        if rel.endswith('.py'):
            chunks = [path.read_text(encoding='utf-8')]
        elif rel.endswith('.ipynb'):
            chunks = notebook_cell_sources(path)
        else:
            continue
        for chunk in chunks:
            lines = chunk.split('\n')
            marked = set()
            for start, end, _, tags in find_regions(lines, rel, known):
                if not set(tags) & set(released):
                    marked.update(range(start + 1, end))
            for i, line in enumerate(lines):
                (inside if i in marked else outside).add(_normalise(line))
    return {line for line in inside - outside if len(line) >= MIN_LEAK_CHARS}


def find_leaks(root, handout_dir, manifest, released=()):
    """Problems proving that solution text is left in a handout: solution
    lines, solution markers, compiled files, notebook outputs, hidden tests,
    .py files that no longer compile. An empty list means the handout is clean."""
    secret = solution_lines(root, manifest, released)
    problems = []
    hidden = manifest['hidden_tests_dir'].rstrip('/')
    handout_dir = Path(handout_dir)
    for path in sorted(handout_dir.rglob('*')):
        if not path.is_file():
            continue
        rel = path.relative_to(handout_dir).as_posix()
        if rel.endswith(('.pyc', '.pyo')) or '/.git/' in '/' + rel:
            problems.append(f"{rel}: compiled or version-control file (may contain the solution)")
            continue
        if _under(rel, [hidden]):
            problems.append(f"{rel}: hidden test in the handout")
        try:
            text = path.read_text(encoding='utf-8')
        except (UnicodeDecodeError, ValueError):
            continue  # binary data, e.g. the MNIST files
        if rel.endswith('.ipynb'):
            nb = json.loads(text)
            for index, cell in enumerate(nb.get('cells', [])):
                if cell.get('outputs') or cell.get('execution_count'):
                    problems.append(f"{rel} cell {index}: outputs are not cleared")
            text = '\n'.join(''.join(c['source']) if isinstance(c['source'], list) else c['source']
                             for c in nb.get('cells', []))
        for number, line in enumerate(text.split('\n'), 1):
            if BEGIN_RE.match(line) or END_RE.match(line):
                problems.append(f"{rel}:{number}: solution marker left in the handout")
            elif _normalise(line) in secret:
                problems.append(f"{rel}:{number}: solution line left in the handout: {line.strip()!r}")
        if rel.endswith('.py'):
            try:
                compile(text, rel, 'exec')
            except SyntaxError as error:
                problems.append(f"{rel}:{error.lineno}: does not compile after stripping: {error.msg}")
    return problems
