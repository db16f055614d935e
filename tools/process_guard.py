"""Run an untrusted program and make sure that it, and everything it starts, ends.

    result = run_contained([python, '-I', '-'], cwd=sandbox, env=env, stdin=program,
                           time_limit=60, memory_limit=3 * 2**30, stop_check=...)

What it guarantees (POSIX; the grader runs on Linux):
- Every descendant is found, including processes that left the process group
  or the session (setsid, start_new_session=True, a double fork):
  * this process becomes a "child subreaper" (Linux prctl), so an orphaned
    descendant is re-parented to us rather than to init and stays in our tree;
  * every process started gets a random token in its environment; processes
    carrying it are found by scanning /proc even if they were re-parented
    elsewhere.
  At the end of the run (normal exit, time limit, memory limit) all of them
  are killed with SIGKILL and reaped.
- The memory limit covers the run as a whole: a poll loop sums the resident
  memory (RSS) of all these processes and kills them all when the sum is
  over the limit. The program also gets address-space, file-size and
  core-dump rlimits (inherited by what it starts).
- Output is drained by a thread that keeps only its tail, so neither a
  chatty program nor a descendant holding the pipe open can block us.
"""

import contextlib
import ctypes
import os
import resource
import secrets
import select
import signal
import subprocess
import threading
import time

TOKEN_VARIABLE = 'GRADING_RUN_TOKEN'
POLL_SECONDS = 0.1
MAX_PROCESSES = 64                      # more than this in one run: a fork bomb, killed
_PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096

_lock = threading.Lock()
_active = {}                            # pid of a run's main process -> its token
_subreaper = None


def become_subreaper():
    """Make this process the reaper of its orphaned descendants (Linux >= 3.4).
    Returns True if it worked; elsewhere only the token scan finds escapees."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_CHILD_SUBREAPER = 36
            _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _subreaper


def _read(path, mode='r'):
    try:
        with open(path, mode) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _process_table():
    """{pid: parent pid} of every process visible in /proc."""
    table = {}
    for entry in os.listdir('/proc') if os.path.isdir('/proc') else ():
        if entry.isdigit():
            stat = _read(f'/proc/{entry}/stat')
            if stat:
                # the command name (field 2) may hold spaces and parentheses: split after the last ')'
                fields = stat[stat.rfind(')') + 2:].split()
                if len(fields) > 1 and fields[0] != 'Z':
                    table[int(entry)] = int(fields[1])
    return table


def _carries(pid, token):
    environ = _read(f'/proc/{pid}/environ', 'rb')
    return environ is not None and f'{TOKEN_VARIABLE}={token}'.encode() in environ.split(b'\0')


def members(root_pid, token):
    """Pids of the run: root_pid's descendants, our re-parented orphans that
    belong to no other active run, and every process carrying the token."""
    table = _process_table()
    children = {}
    for pid, parent in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root_pid] if root_pid in table else []
    me = os.getpid()
    with _lock:
        others = {pid: tok for pid, tok in _active.items() if tok != token}
    for pid in children.get(me, []):          # orphans re-parented to us (we are the subreaper)
        if pid in others or any(_carries(pid, tok) for tok in others.values()):
            continue
        if pid != root_pid and pid not in _active and not _is_ours_legitimately(pid):
            todo.append(pid)
    for pid in table:
        if pid != me and pid not in found and _carries(pid, token):
            todo.append(pid)
    while todo:
        pid = todo.pop()
        if pid in found or pid == me:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _is_ours_legitimately(pid):
    """Children of the grader that are not runs (none today); kept as a hook."""
    return False


def resident_bytes(pids):
    total = 0
    for pid in pids:
        statm = _read(f'/proc/{pid}/statm')
        if statm:
            with contextlib.suppress(ValueError, IndexError):
                total += int(statm.split()[1]) * _PAGE
    return total


def kill_all(root_pid, token):
    """SIGKILL every member of the run until none is left; reap the ones that are our children."""
    for _ in range(50):
        pids = members(root_pid, token)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
        _reap_orphans()
    _reap_orphans()


def _reap_orphans():
    """Reap killed orphans re-parented to us, never a run's main process
    (subprocess.Popen reaps those itself)."""
    table = _process_table()
    me = os.getpid()
    with _lock:
        active = set(_active)
    for entry in os.listdir('/proc') if os.path.isdir('/proc') else ():
        if not entry.isdigit() or int(entry) in active:
            continue
        pid = int(entry)
        if pid in table:
            continue  # alive (zombies are not in the table)
        stat = _read(f'/proc/{entry}/stat')
        if stat and stat[stat.rfind(')') + 2:].split()[1:2] == [str(me)]:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)


class OutputTail:
    """Drain a pipe in a thread, keeping only the last `keep` bytes."""

    def __init__(self, pipe, keep=8000):
        self.pipe, self.keep, self.data, self.total = pipe, keep, b'', 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: self.pipe.read1(65536), b''):
                self.total += len(chunk)
                self.data = (self.data + chunk)[-self.keep:]

    def finish(self, timeout=2):
        self.thread.join(timeout)   # a pipe still held open elsewhere does not block us
        text = self.data.decode('utf-8', errors='replace')
        if self.total > self.keep:
            text = f"[... {self.total - self.keep} earlier bytes of output not kept ...]\n" + text
        return text


def _feed(pipe, data):
    with contextlib.suppress(OSError, ValueError):
        pipe.write(data)
    with contextlib.suppress(OSError, ValueError):
        pipe.close()


def run_contained(command, cwd, env, stdin=b'', time_limit=60.0, memory_limit=3 * 2 ** 30,
                  address_space_limit=4 * 2 ** 30, file_size_limit=64 * 2 ** 20, stop_check=None,
                  pass_fds=(), user=None, wake_fd=None):
    """Run `command` contained (see the module docstring); never raises for what the program does.

    stdin: bytes sent to the program (then its input is closed), or a file
        descriptor it reads from (the caller writes to the other end).
    stop_check(): called every poll; returns a reason (str) to stop the run now, or None.
    pass_fds: further file descriptors the program inherits (subprocess.Popen's).
    user: {'user', 'group', 'extra_groups'} to run the program as (subprocess.Popen's), or None.
    wake_fd: a file descriptor whose becoming readable ends a poll's wait early (so that
        stop_check answers the program at once), or None.
    Returns {'returncode': int or None, 'stopped': None | 'time limit' | 'memory limit' |
             'too many processes' | <reason of stop_check>, 'output': tail of stdout+stderr,
             'seconds': wall time, 'peak_memory': bytes}.
    """
    become_subreaper()
    token = secrets.token_hex(16)
    env = dict(env, **{TOKEN_VARIABLE: token})

    start = time.monotonic()
    # Started and registered under the lock: members() of a concurrent run reads the process
    # table first and the registry second, so it never takes this new process for an orphan.
    # No preexec_fn: forking with it holds the GIL through fork(), which deadlocks against
    # OpenBLAS's fork handler while another thread is in a BLAS call. The limits are set
    # from here instead, before the program is sent (the child runs nothing until it has it).
    with _lock:
        process = subprocess.Popen(command, cwd=cwd, env=env,
                                   stdin=stdin if isinstance(stdin, int) else subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                   pass_fds=tuple(pass_fds), **(user or {}))
        _active[process.pid] = token
    for limit, value in ((resource.RLIMIT_FSIZE, file_size_limit), (resource.RLIMIT_AS, address_space_limit),
                         (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            resource.prlimit(process.pid, limit, (value, value))
    if not isinstance(stdin, int):
        threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True).start()
    reader = OutputTail(process.stdout)
    stopped, peak = None, 0
    try:
        while process.poll() is None:
            pids = members(process.pid, token)
            used = resident_bytes(pids)
            peak = max(peak, used)
            if time.monotonic() - start > time_limit:
                stopped = 'time limit'
            elif used > memory_limit:
                stopped = 'memory limit'
            elif len(pids) > MAX_PROCESSES:
                stopped = 'too many processes'
            elif stop_check is not None:
                stopped = stop_check()
            if stopped:
                break
            if wake_fd is None:
                time.sleep(POLL_SECONDS)
            else:
                with contextlib.suppress(OSError, ValueError):
                    select.select([wake_fd], [], [], POLL_SECONDS)
    finally:
        kill_all(process.pid, token)     # also what the program left running after it exited
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        with _lock:
            _active.pop(process.pid, None)
        kill_all(process.pid, token)
    output = reader.finish()
    with contextlib.suppress(OSError):
        process.stdout.close()
    return {'returncode': None if stopped else process.returncode, 'stopped': stopped, 'output': output,
            'seconds': time.monotonic() - start, 'peak_memory': peak}
