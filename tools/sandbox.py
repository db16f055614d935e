"""Where a submission's code runs: a sandbox that shows it nothing but its own folder.

    isolation = detect(python, root)          # once, when grading starts
    argv = isolation.command([python, '-I', ...], sandbox_folder)

The grader copies the handout and the student's files into a folder of its
own per submission (the "sandbox folder") and runs the child process through
isolation.command(), in one of these modes, the best the machine allows:

- 'bwrap' (bubblewrap, Debian package `bubblewrap`) and 'namespaces'
  (util-linux `unshare` with unprivileged user namespaces): the child gets
  new user, mount, PID, network, IPC and UTS namespaces. Its file system is
  an empty root holding read-only binds of the system folders (/usr and the
  /bin, /lib links), of the interpreter's folders, and its sandbox folder
  (read-write, mounted at /sandbox), a private /tmp, a minimal /dev and the
  /proc of its own PID namespace. So it cannot see the reference, the other
  submissions, the grader's output folder or the grader's processes (nor
  signal or trace them), has no network, holds no capabilities, and dies
  with the grader.
- 'separate user' (no namespaces, grader run as root): the child runs as a
  throwaway user id of its own, its sandbox folder is owned by that user with
  mode 0700 inside a grader folder of mode 0711. It cannot write another
  submission's folder, the grader's outputs or signal the grader; it CAN read
  what every user may read (a world-readable reference included) and reach
  the network.
- 'none' (no namespaces, not root): per-submission 0700 folders only; the
  child runs with the grader's rights. Grade untrusted work elsewhere.
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

MODES = ('bwrap', 'namespaces', 'separate user', 'none')
SANDBOX_MOUNT = '/sandbox'          # where the child sees its sandbox folder (isolated modes)
SYSTEM_FOLDERS = ('usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32')
SYSTEM_FILES = ('/etc/ld.so.cache', '/etc/localtime')
DEVICES = ('null', 'zero', 'random', 'urandom')
SETUP_PATH = '/usr/sbin:/sbin:/usr/bin:/bin'   # where util-linux's tools are (pivot_root is in sbin)
THROWAWAY_UID_BASE = 1_900_000_000   # per-submission user ids in 'separate user' mode (no account needed)

# The 'namespaces' mode's root, built inside the new namespaces before the child's program starts
# (trusted: it runs before any student code). $1: empty folder for the new root, $2: the sandbox
# folder, $3: newline-separated read-only folders; the rest: the command.
NAMESPACE_SETUP = r'''
set -e
child_path=$PATH
PATH=/usr/sbin:/sbin:/usr/bin:/bin
root=$1; sandbox=$2; binds=$3; shift 3
mount -t tmpfs -o mode=755 none "$root"
mkdir -p "$root/sandbox" "$root/tmp" "$root/proc" "$root/dev" "$root/etc" "$root/.old"
# the private /tmp first: an interpreter bound below /tmp (a venv in /tmp/...) stays visible
mount -t tmpfs -o mode=1777 none "$root/tmp"
printf '%s\n' "$binds" | while IFS= read -r source; do
    [ -n "$source" ] || continue
    if [ -L "$source" ]; then ln -s "$(readlink "$source")" "$root$source"; continue; fi
    if [ -d "$source" ]; then
        mkdir -p "$root$source"
    else
        mkdir -p "$(dirname "$root$source")"; touch "$root$source"
    fi
    mount --rbind "$source" "$root$source"
    mount -o remount,bind,ro "$root$source"
done
for device in null zero random urandom; do
    touch "$root/dev/$device"; mount --bind "/dev/$device" "$root/dev/$device"
done
mount --bind "$sandbox" "$root/sandbox"
mount -t proc proc "$root/proc"
cd "$root"
pivot_root . .old
umount -l /.old
rmdir /.old
mount -o remount,bind,ro /
cd /sandbox
PATH=$child_path exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"
'''


class Isolation(object):
    """How children run (see the module docstring). mode: one of MODES;
    read_only: folders bound read-only (isolated modes); warning: the line to
    show when the mode protects less than the isolated ones (else None)."""

    def __init__(self, mode, read_only=(), warning=None):
        self.mode, self.read_only, self.warning = mode, list(read_only), warning
        # one user id per sandbox; next() on a count is atomic, so the grader's threads never share one
        self._uids = itertools.count(THROWAWAY_UID_BASE + (os.getpid() % 100_000) * 1000)

    @property
    def isolated(self):
        return self.mode in ('bwrap', 'namespaces')

    def working_folder(self, sandbox):
        """The child's working folder, as the child sees it."""
        return SANDBOX_MOUNT if self.isolated else str(sandbox)

    def prepare(self, sandbox):
        """Give a new sandbox folder its owner and mode; returns the popen
        keywords (user, group) the child of this sandbox runs with."""
        os.chmod(sandbox, 0o700)
        if self.mode != 'separate user':
            return {}
        uid = next(self._uids)
        for folder, dirs, files in os.walk(sandbox):
            for name in [folder] + [os.path.join(folder, n) for n in dirs + files]:
                os.lchown(name, uid, uid)
        return {'user': uid, 'group': uid, 'extra_groups': []}

    def command(self, argv, sandbox):
        """The command line that runs argv (argv[0]: the interpreter) in `sandbox`."""
        if self.mode == 'bwrap':
            return bwrap_command(argv, sandbox, self.read_only)
        if self.mode == 'namespaces':
            return namespaces_command(argv, sandbox, self.read_only)
        return list(argv)


def interpreter_folders(python):
    """The folders the interpreter reads (prefixes and import path), resolved."""
    code = ("import json, os, sys, numpy; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
            "sys.base_exec_prefix, os.path.dirname(os.path.realpath(sys.executable))] + sys.path))")
    result = subprocess.run([python, '-I', '-c', code], capture_output=True, text=True, timeout=60,
                            env={'PATH': '/usr/bin:/bin'})
    if result.returncode != 0:
        raise RuntimeError(f"the interpreter {python} cannot import NumPy: "
                           f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
    folders = set()
    for entry in json.loads(result.stdout):
        if entry and os.path.isdir(entry):
            folders.add(os.path.realpath(entry))
            folders.add(os.path.abspath(entry))
        elif entry.endswith('.zip') and os.path.isfile(entry):
            folders.add(os.path.dirname(os.path.realpath(entry)))
    # the interpreter's own path, as typed (a venv's bin/python is a link into its base)
    folders.add(os.path.dirname(os.path.abspath(python)))
    return folders


def read_only_paths(python, root, hidden=()):
    """The paths bound read-only into the sandbox: the system and the interpreter.
    Raises RuntimeError when one of them would show the reference folder (root)
    or a `hidden` folder (the grader's workspace, its outputs)."""
    root = os.path.realpath(root)
    folders = {'/' + name for name in SYSTEM_FOLDERS if os.path.lexists('/' + name)}
    folders |= {path for path in SYSTEM_FILES if os.path.isfile(path)}
    for folder in sorted(interpreter_folders(python)):
        if any(folder == p or folder.startswith(p.rstrip('/') + '/') for p in folders if os.path.isdir(p)
               and not os.path.islink(p)):
            continue    # already inside a bound folder
        for secret in [root] + [os.path.realpath(h) for h in hidden]:
            if secret == folder or secret.startswith(folder.rstrip('/') + '/'):
                raise RuntimeError(f"the interpreter {python} reads {folder}, which holds {secret}: a sandbox "
                                   f"would show it. Use an interpreter installed elsewhere (--python).")
        folders.add(folder)
    # a folder inside another is bound with it
    kept = sorted(folders)
    return [p for p in kept if not any(p != q and p.startswith(q.rstrip('/') + '/') and os.path.isdir(q)
                                       and not os.path.islink(q) for q in kept)]


def bwrap_command(argv, sandbox, read_only):
    command = [shutil.which('bwrap') or 'bwrap', '--unshare-all', '--unshare-user', '--die-with-parent',
               '--new-session', '--cap-drop', 'ALL', '--hostname', 'sandbox',
               '--tmpfs', '/tmp']   # the private /tmp first: binds below /tmp (a venv there) stay visible
    for path in read_only:
        if os.path.islink(path):
            command += ['--symlink', os.readlink(path), path]
        else:
            command += ['--ro-bind', path, path]
    command += ['--dev', '/dev', '--proc', '/proc',
                '--bind', str(sandbox), SANDBOX_MOUNT, '--chdir', SANDBOX_MOUNT, '--']
    return command + list(argv)


def namespaces_command(argv, sandbox, read_only):
    new_root = Path(sandbox).parent / (Path(sandbox).name + '.root')
    new_root.mkdir(mode=0o700, exist_ok=True)
    return ([shutil.which('setpriv', path=SETUP_PATH) or 'setpriv', '--pdeathsig', 'KILL',
             shutil.which('unshare', path=SETUP_PATH) or 'unshare', '--user', '--map-root-user', '--mount', '--pid',
             '--fork', '--kill-child', '--net', '--ipc', '--uts', '--propagation', 'private',
             'sh', '-c', NAMESPACE_SETUP, 'sandbox-setup', str(new_root), str(sandbox), '\n'.join(read_only)]
            + list(argv))


def _works(isolation, python, scratch):
    """Whether a child started through `isolation` runs and sees an empty /proc of its own."""
    sandbox = Path(scratch) / f'probe-{isolation.mode.replace(" ", "-")}'
    sandbox.mkdir()
    try:
        kwargs = isolation.prepare(sandbox)
        code = "import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]))"
        result = subprocess.run(isolation.command([python, '-I', '-c', code], sandbox), cwd=str(sandbox),
                                capture_output=True, text=True, timeout=60, env={'PATH': '/usr/bin:/bin'},
                                **kwargs)
        if result.returncode != 0:
            return (result.stderr.strip().splitlines() or [f'exit code {result.returncode}'])[-1]
        return None
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        return str(error)
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
        shutil.rmtree(str(sandbox) + '.root', ignore_errors=True)


def detect(python, root, scratch, hidden=(), wanted='auto'):
    """The best Isolation that works here (or the one `wanted`), tried by starting a child.

    scratch: a folder of the grader's for the trial; hidden: folders no sandbox may show."""
    if sys.platform.startswith('linux'):
        read_only = read_only_paths(python, root, hidden)
    else:
        read_only = []
    reasons = []
    candidates = MODES if wanted == 'auto' else (wanted,)
    for mode in candidates:
        if mode == 'bwrap' and not shutil.which('bwrap'):
            reasons.append("bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
            continue
        if mode == 'namespaces' and not all(shutil.which(t, path=SETUP_PATH) for t in ('unshare', 'setpriv',
                                                                                      'pivot_root', 'mount')):
            reasons.append("util-linux's unshare/setpriv are not available")
            continue
        if mode == 'separate user' and (not hasattr(os, 'geteuid') or os.geteuid() != 0):
            reasons.append("not running as root, so no throwaway user")
            continue
        isolation = Isolation(mode, read_only)
        problem = None if mode == 'none' else _works(isolation, python, scratch)
        if problem:
            reasons.append(f"{mode}: {problem}")
            continue
        if not isolation.isolated:
            isolation.warning = (
                f"WARNING: student code is NOT isolated on this machine ({'; '.join(reasons) or 'asked for'}). "
                f"Mode '{mode}': " + ("each submission runs as its own throwaway user in a 0700 folder, but it "
                                      "can read every world-readable file (the reference too) and use the network."
                                      if mode == 'separate user' else
                                      "each submission has its own 0700 folder, but runs with YOUR rights: it can "
                                      "read the reference, change other files you own and signal the grader.")
                + " Grade untrusted submissions on a Linux machine with bubblewrap or user namespaces "
                  "(see README, Instructors).")
        return isolation
    raise RuntimeError(f"the isolation mode {wanted!r} does not work here: {'; '.join(reasons)}")
