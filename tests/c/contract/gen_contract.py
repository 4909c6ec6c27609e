#!/usr/bin/env python3
"""Generates the C ABI contract test from include/mpx.h (docs/C-API.md, "How the contract is checked").

usage: gen_contract.py include/mpx.h OUT.c

Every `mpx_*` function the header declares gets checks chosen by its signature, or generation
fails with a message naming the function: a new function cannot escape the test. The rules:

  status functions   a control call with plausible arguments (must not be MPX_E_INVALID), then
                     each pointer parameter NULL in turn (MPX_E_INVALID, a message, no
                     out-parameter written, no object left behind), then every timeout
                     parameter at -5 and INT64_MIN with valid handles (MPX_E_INVALID, at once)
  other results      each handle NULL: the value the doc comment states for NULL
  void functions     each pointer NULL: returns (and the doc comment says "NULL is a no-op")
  no pointer at all  NO_POINTER_ARGS says why, with an expression that must hold

Where a rule does not apply the tables below say so with the reason; every entry must name a
function (and parameter) the header has, so stale entries fail generation too. Standard
library only.
"""

import os
import re
import sys

# ---- tables ------------------------------------------------------------------------------------

# How to make a valid handle of each opaque type (anonymous, so nothing lands in /dev/shm; the
# named variants take a name the runner removes) and how to free it. `make` sets `st` and `h`.
FACTORIES = {
    "mpx_shm": ("mpx_shm", "st = mpx_shm_create_anonymous(4096, &h);", "mpx_shm_close(h);"),
    "mpx_shm_named": ("mpx_shm", "st = mpx_shm_create(ct_fac_name(), 4096, 0, &h);", "mpx_shm_close(h);"),
    "mpx_lock": ("mpx_lock", "st = mpx_lock_create_anonymous(&h);", "mpx_lock_close(h);"),
    "mpx_rlock": ("mpx_rlock", "st = mpx_rlock_create_anonymous(&h);", "mpx_rlock_close(h);"),
    "mpx_semaphore": ("mpx_semaphore", "st = mpx_semaphore_create_anonymous(1, 0, 0, &h);", "mpx_semaphore_close(h);"),
    "mpx_condition": ("mpx_condition", "st = mpx_condition_create_anonymous(NULL, NULL, &h);",
                      "mpx_condition_close(h);"),
    "mpx_event": ("mpx_event", "st = mpx_event_create_anonymous(&h);", "mpx_event_close(h);"),
    # Two parties, so a wait that ignored its timeout would block.
    "mpx_barrier": ("mpx_barrier", "st = mpx_barrier_create_anonymous(2, &h);", "mpx_barrier_close(h);"),
    # With the embedded lock, so acquire/release reach their timeout and state checks.
    "mpx_value": ("mpx_value", "st = mpx_value_create_anonymous('q', 4, NULL, 0, MPX_VALUE_LOCK, &h);",
                  "mpx_value_close(h);"),
    "mpx_value_d": ("mpx_value", "st = mpx_value_create_anonymous('d', 4, NULL, 0, MPX_VALUE_LOCK, &h);",
                    "mpx_value_close(h);"),
    # Joinable, so join reaches its timeout check.
    "mpx_queue": ("mpx_queue", "st = mpx_queue_create_anonymous(4096, 0, MPX_QUEUE_JOINABLE, &h);",
                  "mpx_queue_close(h);"),
    "mpx_queue_named": ("mpx_queue", "st = mpx_queue_create(ct_fac_name(), 4096, 0, 0, &h);", "mpx_queue_close(h);"),
    # A socketpair end whose peer stays open: a receive that ignored its timeout would block.
    "mpx_conn": ("mpx_conn", "mpx_conn *peer = NULL; st = mpx_pipe(true, &h, &peer); ct_keep(peer);",
                 "mpx_conn_close(h);"),
    "mpx_listener": ("mpx_listener", 'st = mpx_listener_create("unix:@", 1, NULL, 0, &h);', "mpx_listener_close(h);"),
    "mpx_proc_opts": ("mpx_proc_opts", "st = mpx_proc_opts_new(&h);", "mpx_proc_opts_free(h);"),
    # A daemonic child that pauses: it dies with the check even if the check is killed.
    "mpx_process": ("mpx_process",
                    "mpx_proc_opts *o = NULL; st = mpx_proc_opts_new(&o);"
                    " if (st == MPX_OK) st = mpx_proc_opts_set_daemon(o, true);"
                    " if (st == MPX_OK) st = mpx_fork(ct_child_pause, NULL, o, &h); mpx_proc_opts_free(o);",
                    "mpx_process_kill(h); mpx_process_join(h, 5000000000LL, NULL); mpx_process_close(h);"),
    # A registry with the no-op task function, so a pool made from it runs the setup's task.
    "mpx_pool_registry": ("mpx_pool_registry",
                          "st = mpx_pool_registry_new(&h);"
                          " if (st == MPX_OK) st = mpx_pool_registry_add(h, \"noop\", ct_task_noop, NULL);",
                          "mpx_pool_registry_free(h);"),
    "mpx_pool_opts": ("mpx_pool_opts", "st = mpx_pool_opts_new(&h);", "mpx_pool_opts_free(h);"),
    "mpx_task_out": ("mpx_task_out", "st = mpx_task_out_new(&h);", "mpx_task_out_free(h);"),
    # An anonymous pool of one (daemonic) worker; freeing it kills and reaps the worker.
    "mpx_pool": ("mpx_pool",
                 "mpx_pool_registry *rg = NULL; mpx_pool_opts *po = NULL; st = mpx_pool_registry_new(&rg);"
                 " if (st == MPX_OK) st = mpx_pool_registry_add(rg, \"noop\", ct_task_noop, NULL);"
                 " if (st == MPX_OK) st = mpx_pool_opts_new(&po);"
                 " if (st == MPX_OK) st = mpx_pool_opts_set_workers(po, 1);"
                 " if (st == MPX_OK) st = mpx_pool_create(NULL, po, rg, &h);"
                 " mpx_pool_opts_free(po); mpx_pool_registry_free(rg);",
                 "mpx_pool_free(h);"),
}

# (function, parameter) -> factory, where a function needs another variant than its type's.
FACTORY_FOR = {
    ("mpx_shm_unlink_self", "shm"): "mpx_shm_named",
    ("mpx_queue_unlink_self", "q"): "mpx_queue_named",
    ("mpx_value_get_f64", "value"): "mpx_value_d",
    ("mpx_value_set_f64", "value"): "mpx_value_d",
}

# Callback types: the function a plausible call passes.
CALLBACKS = {
    "mpx_child_fn": "ct_child_noop",
    "mpx_entry_fn": "ct_entry_noop",
    "mpx_task_fn": "ct_task_noop",
}

# Plausible values of by-value parameters, by name; FN_VALUES overrides them per function.
VALUES = {
    "append": "false", "daemon": "false", "duplex": "true", "yes": "false",
    "typecode": "'q'", "argc": "1", "backlog": "1", "nice": "0", "pgid": "0", "sig": "SIGCONT",
    "which": "1", "delta": "1", "v": "1", "flags": "0", "max_value": "0",
    "method": "MPX_START_FORK", "mode": "MPX_STDIO_INHERIT", "n": "1", "parties": "2",
    "value": "1", "max": "0", "max_messages": "0", "capacity": "4096", "index": "0",
    "start": "0", "max_len": "64", "size": "4096", "len": "4", "keylen": "8", "count": "1",
    "init_size": "32",
    "status": "MPX_E_INVALID", "chunksize": "0", "slot": "0", "bytes": "4096",
}
# Plausible strings (const char *), by name.
STRINGS = {
    "name": "ct_arg_name", "entry": '"contract-noop"', "address": '"unix:@"', "program": '"/bin/true"',
    "key": '"MPX_CONTRACT"', "value": '"1"', "dir": '"/"', "path": '"/dev/null"',
    "fname": '"noop"', "type_name": '"ContractError"', "message": '"contract message"',
    "traceback": '"contract traceback"',
}
# Plausible NULL-terminated string arrays (const char *const *), by function.
ARGVS = {
    "mpx_spawn": ['"true"'],
    "mpx_init": ['"test_contract"'],
    "mpx_forkserver_set_program": ['"/bin/true"'],
}
# Plausible input data (const T *), by name.
DATA = {
    "buf": "ct_bytes", "data": "ct_bytes", "in_": "ct_bytes", "init": "ct_bytes", "authkey": "ct_bytes",
    "arg": "ct_bytes", "fds": "ct_fds", "cpus": "ct_cpus", "lens": "ct_lens", "args": "ct_bytes",
}

# (function, parameter) -> C expression, where the name-based value does not fit.
FN_VALUES = {
    ("mpx_conn_send", "len"): "1",
    ("mpx_start", "len"): "1",
    ("mpx_conn_wait", "count"): "1",
    ("mpx_value_create", "count"): "4",
    ("mpx_value_create_anonymous", "count"): "4",
    ("mpx_value_get", "size"): "8",
    ("mpx_value_set", "size"): "8",
    ("mpx_value_read", "size"): "8",
    ("mpx_value_write", "size"): "8",
    ("mpx_value_int_ptr", "size"): "8",
    ("mpx_value_int_ptr", "for_write"): "true",
    ("mpx_queue_put_many", "n"): "2",
    ("mpx_queue_commit", "len"): "0",
    ("mpx_proc_opts_keep_fd", "fd"): "2",
    ("mpx_proc_opts_set_stdio", "fd"): "1",
    ("mpx_conn_from_fd", "fd"): "sv[0]",
    ("mpx_forkserver_serve", "fd"): "sv[0]",
    ("mpx_process_adopt", "pid"): "kid",
    ("mpx_client_connect", "address"): "addr_v",
    # The listener the setup makes has no key: a client with one would wait for a challenge.
    ("mpx_client_connect", "authkey"): "NULL",
    ("mpx_client_connect", "keylen"): "0",
    # The condition's own lock: the documented default (both NULL).
    ("mpx_condition_create", "lock"): "NULL", ("mpx_condition_create", "rlock"): "NULL",
    ("mpx_condition_create_anonymous", "lock"): "NULL", ("mpx_condition_create_anonymous", "rlock"): "NULL",
    ("mpx_condition_open", "lock"): "NULL", ("mpx_condition_open", "rlock"): "NULL",
    ("mpx_condition_open_fd", "lock"): "NULL", ("mpx_condition_open_fd", "rlock"): "NULL",
    # A task the setup submitted (POOL_TASK).
    ("mpx_pool_wait", "task"): "tid", ("mpx_pool_wait_error", "task"): "tid", ("mpx_pool_ready", "task"): "tid",
    ("mpx_pool_wait_any", "tasks"): "&tid",
}

QUEUE_READ_OPEN = ("const void *rp = NULL; size_t rl = 0; if (a_q) CT_SETUP(mpx_queue_put(a_q, ct_bytes, 4, 0) == MPX_OK &&"
                   " mpx_queue_read(a_q, 0, &rp, &rl) == MPX_OK, \"put and read\");")

POOL_TASK = ("uint64_t tid = 0; if (a_pool) CT_SETUP(mpx_pool_submit(a_pool, \"noop\", ct_bytes, 4, &tid) == MPX_OK,"
             " \"submit\");")

# C run after the handles are made and before the call; may declare what FN_VALUES uses. Handle
# parameters are `a_<name>` and may be NULL (the NULL patterns).
SETUP = {
    "mpx_conn_from_fd": "int sv[2]; CT_SETUP(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, \"socketpair\");",
    # The peer is closed: a server loop that ignored a NULL out-parameter sees the end at once.
    "mpx_forkserver_serve": "int sv[2]; CT_SETUP(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, \"socketpair\");"
                            " close(sv[1]);",
    "mpx_process_adopt": "pid_t kid = ct_fork_pause(); CT_SETUP(kid > 0, \"fork\");",
    "mpx_client_connect": "mpx_listener *lst = mk_mpx_listener(r); if (!lst) return; char addr_v[256];"
                          " CT_SETUP(mpx_listener_address(lst, addr_v, sizeof addr_v, NULL) == MPX_OK,"
                          " \"mpx_listener_address\");",
    # Waiting and notifying need the lock held, so the calls get past their state check.
    "mpx_condition_wait": "if (a_cond) CT_SETUP(mpx_condition_acquire(a_cond, MPX_FOREVER) == MPX_OK, \"acquire\");",
    "mpx_condition_notify": "if (a_cond) CT_SETUP(mpx_condition_acquire(a_cond, MPX_FOREVER) == MPX_OK, \"acquire\");",
    "mpx_condition_notify_all": "if (a_cond) CT_SETUP(mpx_condition_acquire(a_cond, MPX_FOREVER) == MPX_OK, \"acquire\");",
    # The second step of a pair gets its first step, so the control call succeeds.
    "mpx_condition_release": "if (a_cond) CT_SETUP(mpx_condition_acquire(a_cond, 0) == MPX_OK, \"acquire\");",
    "mpx_lock_release": "if (a_lock) CT_SETUP(mpx_lock_acquire(a_lock, 0) == MPX_OK, \"acquire\");",
    "mpx_rlock_release": "if (a_rlock) CT_SETUP(mpx_rlock_acquire(a_rlock, 0) == MPX_OK, \"acquire\");",
    "mpx_value_release": "if (a_value) CT_SETUP(mpx_value_acquire(a_value, 0) == MPX_OK, \"acquire\");",
    "mpx_queue_commit": "void *rv = NULL; if (a_q) CT_SETUP(mpx_queue_reserve(a_q, 64, 0, &rv) == MPX_OK, \"reserve\");",
    "mpx_queue_abort": "void *rv = NULL; if (a_q) CT_SETUP(mpx_queue_reserve(a_q, 64, 0, &rv) == MPX_OK, \"reserve\");",
    "mpx_pool_wait": POOL_TASK,
    "mpx_pool_wait_error": POOL_TASK,
    "mpx_pool_ready": POOL_TASK,
    "mpx_pool_wait_any": POOL_TASK,
    "mpx_queue_read_commit": QUEUE_READ_OPEN,
    "mpx_queue_read_abort": QUEUE_READ_OPEN,
    "mpx_queue_task_done": "uint8_t tb[8]; size_t tl = 0; if (a_q) CT_SETUP(mpx_queue_put(a_q, ct_bytes, 4, 0) == MPX_OK &&"
                           " mpx_queue_get(a_q, tb, sizeof tb, &tl, 0) == MPX_OK, \"put and get\");",
}
# SETUP for a function named in it after the process is done with it (frees what SETUP made).
TEARDOWN = {
    "mpx_process_adopt": "kill(kid, SIGKILL);",
    "mpx_client_connect": "mpx_listener_close(lst);",
}

# Parameters for which NULL is documented as allowed (no MPX_E_INVALID expected), with the
# reason and the phrase of the doc comment (of the function or of the parameter's type) that
# says so, checked against the header.
ALLOWED_NULL = {
    ("mpx_conn_peer_address", "len"): ("the length is optional", "if not NULL"),
    ("mpx_listener_address", "len"): ("the length is optional", "if not NULL"),
    ("mpx_current_name", "len"): ("the length is optional", "if not NULL"),
    ("mpx_process_adopt", "name"): ("no name: the default one", "`name` may be NULL"),
    ("mpx_listener_create", "authkey"): ("no authkey: no handshake", "With `authkey` (not NULL"),
    ("mpx_client_connect", "authkey"): ("no authkey: no handshake", "With `authkey` (not NULL"),
    ("mpx_semaphore_reclaim", "returned"): ("the count is optional", "(may be NULL)"),
    ("mpx_barrier_wait", "index"): ("the index is optional", "(may be NULL)"),
    ("mpx_barrier_wait_part", "index"): ("the index is optional", "(may be NULL)"),
    ("mpx_barrier_wait_end", "index"): ("the index is optional", "(may be NULL)"),
    ("mpx_value_fetch_add_i64", "old"): ("the old value is optional", "(may be NULL)"),
    ("mpx_process_join", "exitcode"): ("the exit code is optional", "if not NULL"),
    ("mpx_spawn", "opts"): ("NULL options are the defaults", "`opts` may be NULL"),
    ("mpx_fork", "opts"): ("NULL options are the defaults", "NULL wherever options are taken means defaults"),
    ("mpx_start", "opts"): ("NULL options are the defaults", "NULL wherever options are taken means defaults"),
    ("mpx_fork", "user"): ("opaque user data, handed to the callback and never dereferenced", None),
    ("mpx_entry_register", "user"): ("opaque user data, handed to the callback and never dereferenced", None),
    ("mpx_condition_create", "lock"): ("no given lock: the condition's own", "both may be NULL"),
    ("mpx_condition_create", "rlock"): ("no given lock: the condition's own", "both may be NULL"),
    ("mpx_condition_create_anonymous", "lock"): ("no given lock: the condition's own", "lock choice as in"),
    ("mpx_condition_create_anonymous", "rlock"): ("no given lock: the condition's own", "lock choice as in"),
    ("mpx_condition_open", "lock"): ("only for a condition made with an anonymous lock", "NULL unless"),
    ("mpx_condition_open", "rlock"): ("only for a condition made with an anonymous lock", "NULL unless"),
    ("mpx_condition_open_fd", "lock"): ("only for a condition made with an anonymous lock", "as in `mpx_condition_open`"),
    ("mpx_condition_open_fd", "rlock"): ("only for a condition made with an anonymous lock", "as in `mpx_condition_open`"),
    ("mpx_pool_registry_add", "user"): ("opaque user data, handed to the callback and never dereferenced", None),
    ("mpx_pool_create", "name"): ("no name: an anonymous pool", "`name` may be NULL"),
    ("mpx_pool_create", "opts"): ("NULL options are the defaults", "`opts` may be NULL"),
    ("mpx_task_out_error", "type_name"): ("no type name", "`type_name` and `traceback` may be NULL"),
    ("mpx_task_out_error", "traceback"): ("no traceback", "`type_name` and `traceback` may be NULL"),
}

# NULL with a zero length is documented as allowed: the call must not be MPX_E_INVALID.
# (function, pointer, length, doc phrase)
NULL_WITH_ZERO = [
    ("mpx_conn_send", "buf", "len", "`buf` may then be NULL"),
    ("mpx_conn_recv", "buf", "cap", "`buf` may be NULL only if `cap` is 0"),
    ("mpx_queue_put", "data", "len", "NULL `data` only with `len` 0"),
    ("mpx_queue_get", "buf", "cap", "NULL only with `cap` 0"),
    ("mpx_value_create", "init", "init_size", "NULL/0 for zeros"),
    ("mpx_value_create_anonymous", "init", "init_size", "NULL/0 for zeros"),
    ("mpx_conn_peer_address", "buf", "cap", "`buf` may be NULL only if `cap` is 0"),
    ("mpx_listener_address", "buf", "cap", "`buf` may be NULL only if `cap` is 0"),
    ("mpx_current_name", "buf", "cap", "`buf` may be NULL only if `cap` is 0"),
    ("mpx_task_out_set", "data", "len", "NULL `data` only with `len` 0"),
    ("mpx_pool_submit", "args", "len", "NULL only with `len` 0"),
    ("mpx_pool_map", "out_lens", "n", "may be NULL only with `n` 0"),
]

# Functions whose control call (plausible arguments) may be MPX_E_INVALID, with the reason.
CONTROL_INVALID_OK = {
    # `ticket` is read as well as written: the sentinel the check fills it with is no ticket a
    # call wrote (the ticket protocol itself is tests/c/test_sync.c's).
    "mpx_condition_wait_part": "the in-out `ticket` holds the check's sentinel, which is refused",
    "mpx_condition_wait_end": "the in-out `ticket` holds the check's sentinel, which is refused",
    "mpx_barrier_wait_part": "the in-out `ticket` holds the check's sentinel, which is refused",
    "mpx_barrier_wait_end": "the in-out `ticket` holds the check's sentinel, which is refused",
    # `got` is read as well as written: the sentinel is no count an earlier call left (the part
    # protocol itself is tests/c/test_conn.c's).
    "mpx_conn_recv_part": "the in-out `got` holds the check's sentinel, which is refused",
}

# Functions without pointer parameters: why no NULL rule applies, and an expression that must
# hold when called in a check (so they are covered too).
NO_POINTER_ARGS = {
    "mpx_version": ("no arguments", "mpx_version() != NULL && mpx_version()[0] != 0"),
    "mpx_abi_version": ("no arguments", "mpx_abi_version() == MPX_ABI_VERSION"),
    "mpx_last_error": ("no arguments", "mpx_last_error() != NULL"),
    "mpx_last_errno": ("no arguments", "mpx_last_errno() >= 0"),
    "mpx_status_name": ("takes a status code by value",
                        "mpx_status_name(12345) != NULL && strcmp(mpx_status_name(MPX_E_INVALID), \"MPX_E_INVALID\") == 0"),
    "mpx_current_pid": ("no arguments", "mpx_current_pid() == (int)getpid()"),
    "mpx_parent_pid": ("no arguments", "mpx_parent_pid() > 0"),
    "mpx_cpu_count": ("no arguments", "mpx_cpu_count() >= 1"),
    "mpx_terminate_daemons": ("no arguments, no result", "(mpx_terminate_daemons(), 1)"),
    "mpx_current_die_with_parent": ("takes a pid by value (the check's parent is alive)",
                                    "mpx_current_die_with_parent((int)getppid()) == MPX_OK"),
}

SCALARS = {"bool", "char", "int", "double", "size_t", "int32_t", "uint32_t", "int64_t", "uint64_t", "uint8_t",
           "mpx_status"}
BAD_TIMEOUTS = [("-5", "-5"), ("INT64_MIN", "INT64_MIN")]

# ---- header parsing ----------------------------------------------------------------------------


class GenError(Exception):
    pass


def norm_type(t):
    """`const mpx_conn * const*` -> `const mpx_conn *const *`: one spelling for every type."""
    t = re.sub(r"\s*\*\s*", " *", t.strip())
    while "* *" in t:
        t = t.replace("* *", "**")
    return " ".join(t.split())


def decl(ctype, name):
    return f"{ctype}{name}" if ctype.endswith("*") else f"{ctype} {name}"


class Param:
    def __init__(self, ctype, name, index):
        self.ctype = norm_type(ctype)
        self.name = name
        self.index = index
        self.depth = self.ctype.count("*")
        toks = [t for t in re.findall(r"\w+", self.ctype) if t != "const"]
        self.base = toks[0] if toks else ""
        self.const_base = self.ctype.startswith("const ")
        self.kind = None
        self.len_param = None


class Func:
    def __init__(self, ret, name, params, doc):
        self.ret = norm_type(ret)
        self.name = name
        self.params = params
        self.doc = doc


def parse_header(text):
    """Opaque handle types, callback types, type docs and the functions (with their doc comment)."""
    handles, callbacks, type_docs = set(), set(), {}
    funcs, doc, pending = [], [], ""
    in_api = after_api = False
    for raw in text.splitlines():
        line = raw.strip()
        if after_api:
            # The header's tail (cbindgen's trailer): static inline helpers over the ABI, no
            # part of it. An exported declaration there would escape the checks: refuse it.
            if re.match(r"^(?!static inline)[\w ]+[ *]mpx_\w+\(.*\);$", line):
                raise GenError(f"a declaration after the extern \"C\" block: {line}")
            continue
        if pending:
            pending += " " + line
        elif line.startswith("//"):
            doc.append(line[2:].strip())
            continue
        elif in_api and line.startswith("}") and 'extern "C"' in line:
            in_api, after_api = False, True
            continue
        elif not line or line.startswith(("#", "}", "/*", "*")):
            doc = []
            continue
        elif line.startswith('extern "C"'):
            in_api, doc = True, []
            continue
        elif line.startswith("typedef"):
            m = re.match(r"typedef struct (\w+) (\w+);", line)
            if m:
                handles.add(m.group(2))
                type_docs[m.group(2)] = " ".join(doc)
            m = re.match(r"typedef .*\(\*(\w+)\)\(", line)
            if m:
                callbacks.add(m.group(1))
            doc = []
            continue
        elif in_api:
            pending = line
        else:
            raise GenError(f"unexpected line outside the API block: {line}")
        if not pending.endswith(";"):
            continue
        proto = " ".join(pending.split())
        pending = ""
        m = re.match(r"^(.*?)\b(mpx_\w+)\((.*)\);$", proto)
        if not m:
            raise GenError(f"cannot parse the declaration: {proto}")
        ret, name, plist = m.group(1), m.group(2), m.group(3).strip()
        params = []
        if plist and plist != "void":
            for i, prm in enumerate(plist.split(",")):
                pm = re.match(r"^(.*?)(\w+)$", prm.strip())
                if not pm:
                    raise GenError(f"{name}: cannot parse parameter `{prm.strip()}`")
                params.append(Param(pm.group(1), pm.group(2), i))
        funcs.append(Func(ret, name, params, " ".join(doc)))
        doc = []
    if not funcs:
        raise GenError("no functions found in the header")
    names = [f.name for f in funcs]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise GenError(f"declared twice: {', '.join(sorted(dups))}")
    return funcs, handles, callbacks, type_docs


# ---- classification ----------------------------------------------------------------------------

WRITABLE = {"OUT_HANDLE", "OUT_PTR", "OUT_SCALAR", "OUT_BUF"}
POINTERS = WRITABLE | {"HANDLE", "HANDLE_ARRAY", "IN_STR", "IN_ARGV", "IN_DATA", "CALLBACK", "USER", "POINTER"}


def classify(f, handles, callbacks):
    for i, a in enumerate(f.params):
        nxt = f.params[i + 1] if i + 1 < len(f.params) else None
        t = a.ctype
        if a.depth == 0:
            if a.base in callbacks:
                a.kind = "CALLBACK"
            elif "timeout" in a.name:
                if a.base != "int64_t":
                    raise GenError(f"{f.name}: timeout parameter `{a.name}` is {t}, not int64_t nanoseconds")
                a.kind = "TIMEOUT"
            elif a.base in SCALARS:
                a.kind = "VALUE"
            else:
                raise GenError(f"{f.name}: parameter `{a.name}` has a by-value type {t} the generator does not know")
        elif f.ret == "void":
            a.kind = "HANDLE" if (a.depth == 1 and a.base in handles) else "POINTER"
        elif a.depth == 1:
            if a.base in handles:
                a.kind = "HANDLE"
            elif a.base == "char" and a.const_base:
                a.kind = "IN_STR"
            elif a.const_base:
                a.kind = "IN_DATA"
            elif a.base == "void" and a.name == "user":
                a.kind = "USER"
            elif nxt is not None and nxt.depth == 0 and nxt.base == "size_t":
                a.kind = "OUT_BUF"
                a.len_param = nxt
            elif a.base in SCALARS:
                a.kind = "OUT_SCALAR"
            else:
                raise GenError(f"{f.name}: no rule for parameter `{t} {a.name}`")
        elif a.depth == 2:
            if "*const *" in t and a.base in handles:
                a.kind = "HANDLE_ARRAY"
            elif "*const *" in t and a.base == "char":
                a.kind = "IN_ARGV"
            elif a.base in handles and not a.const_base:
                a.kind = "OUT_HANDLE"
            elif "*const *" not in t:
                a.kind = "OUT_PTR"
            else:
                raise GenError(f"{f.name}: no rule for parameter `{t} {a.name}`")
        else:
            raise GenError(f"{f.name}: no rule for parameter `{t} {a.name}` ({a.depth} levels of pointer)")


def pointer_params(f):
    return [a for a in f.params if a.kind in POINTERS]


# ---- NULL results of non-status functions, from the doc comments --------------------------------

LITERAL = r"(-?\d+|true|false|NULL)"


def documented_null_value(f):
    d = f.doc
    for pat in (LITERAL + r" for (?:a )?NULL\b",
                r"\bor " + LITERAL + r" if `\w+` is NULL",
                r"\(" + LITERAL + r"\b[^()]*\bNULL\)"):
        m = re.search(pat, d)
        if m:
            return m.group(1)
    return None


def check_value_type(f, v):
    ptr = f.ret.endswith("*")
    if ptr != (v == "NULL"):
        raise GenError(f"{f.name}: returns {f.ret} but its doc says {v} for NULL")
    if (v in ("true", "false")) != (f.ret == "bool"):
        raise GenError(f"{f.name}: returns {f.ret} but its doc says {v} for NULL")


# ---- code generation ---------------------------------------------------------------------------


def factory_name(f, a):
    fac = FACTORY_FOR.get((f.name, a.name), a.base)
    if fac not in FACTORIES:
        raise GenError(f"{f.name}: no factory for handle type {a.base} (parameter `{a.name}`): add one to FACTORIES")
    return fac


def value_expr(f, a):
    if (f.name, a.name) in FN_VALUES:
        return FN_VALUES[(f.name, a.name)]
    if a.kind == "VALUE":
        # The length after an out-buffer is its element count.
        for b in f.params:
            if b.len_param is a:
                return "CT_N"
        if a.name == "fd":
            m = re.match(r"mpx_(\w+)_open_fd$", f.name)
            if m and f"mpx_{m.group(1)}" in FACTORIES:
                return "fd_src"
        if a.name in VALUES:
            return VALUES[a.name]
    elif a.kind == "IN_STR":
        if a.name in STRINGS:
            return STRINGS[a.name]
    elif a.kind == "IN_DATA":
        if a.name in DATA:
            return f"({a.ctype})" + DATA[a.name]
    elif a.kind == "TIMEOUT":
        return "0"
    raise GenError(f"{f.name}: no plausible value for parameter `{a.ctype} {a.name}`: add one to the tables")


def open_fd_setup(f):
    """An fd of a valid object of the kind, for mpx_<kind>_open_fd."""
    m = re.match(r"mpx_(\w+)_open_fd$", f.name)
    if not m or not any(a.name == "fd" for a in f.params) or (f.name, "fd") in FN_VALUES:
        return None
    kind = f"mpx_{m.group(1)}"
    if kind not in FACTORIES:
        return None
    return (f"{kind} *src = mk_{kind}(r); if (!src) return; int fd_src = -1;"
            f" CT_SETUP({kind}_fd(src, &fd_src) == MPX_OK, \"{kind}_fd\");"), f"fr_{kind}(src);"


def deref_type(t):
    """`T *` -> `T` for an out-parameter's storage."""
    assert t.endswith("*")
    return t[:-1].rstrip()


def gen_runner(f):
    L = [f"static void run_{f.name}(const struct ct_pat *p, struct ct_res *r) {{", "    (void)p;", "    (void)r;"]
    made = []
    for a in f.params:
        i = a.index
        if a.kind == "HANDLE":
            if (f.name, a.name) in FN_VALUES:
                L.append(f"    {a.base} *a_{a.name} = CT_NUL({i}) ? NULL : {FN_VALUES[(f.name, a.name)]};")
                continue
            fac = factory_name(f, a)
            L.append(f"    {a.base} *a_{a.name} = NULL;")
            L.append(f"    if (!CT_NUL({i}) && !(a_{a.name} = mk_{fac}(r))) return;")
            made.append((a, fac))
        elif a.kind == "HANDLE_ARRAY":
            fac = factory_name(f, a)
            L.append(f"    const {a.base} *a_{a.name}_v[1] = {{NULL}};")
            L.append(f"    if (!CT_NUL({i}) && !p->elem_null && !(a_{a.name}_v[0] = mk_{fac}(r))) return;")
            L.append("    " + decl(a.ctype, f"a_{a.name}") + f" = CT_NUL({i}) ? NULL : a_{a.name}_v;")
    setup, teardown = SETUP.get(f.name), TEARDOWN.get(f.name)
    ofs = open_fd_setup(f)
    if ofs:
        setup, teardown = ofs
    if setup:
        L.append("    " + setup)
    writable = []
    for a in f.params:
        i, n = a.index, a.name
        if a.kind in ("HANDLE", "HANDLE_ARRAY"):
            continue
        if a.kind == "VALUE":
            e = value_expr(f, a)
            zero = any(z[2] == n for z in NULL_WITH_ZERO if z[0] == f.name)
            L.append("    " + decl(a.ctype, f"a_{n}") + " = " + (f"CT_ZERO({i}) ? 0 : ({e});" if zero else f"{e};"))
        elif a.kind == "TIMEOUT":
            L.append(f"    int64_t a_{n} = p->timeout_set ? p->timeout : {value_expr(f, a)};")
        elif a.kind in ("IN_STR", "IN_DATA"):
            L.append("    " + decl(a.ctype, f"a_{n}") + f" = CT_NUL({i}) ? NULL : {value_expr(f, a)};")
        elif a.kind == "IN_ARGV":
            if f.name not in ARGVS:
                raise GenError(f"{f.name}: no plausible argv for parameter `{n}`: add one to ARGVS")
            items = ", ".join(ARGVS[f.name] + ["NULL"])
            L.append(f"    const char *a_{n}_v[] = {{{items}}};")
            L.append("    " + decl(a.ctype, f"a_{n}") + f" = CT_NUL({i}) ? NULL : a_{n}_v;")
        elif a.kind == "CALLBACK":
            if a.base not in CALLBACKS:
                raise GenError(f"{f.name}: no plausible callback of type {a.base}: add one to CALLBACKS")
            L.append(f"    {a.base} a_{n} = CT_NUL({i}) ? NULL : {CALLBACKS[a.base]};")
        elif a.kind == "USER":
            L.append(f"    void *a_{n} = NULL;")
        elif a.kind in ("OUT_HANDLE", "OUT_PTR"):
            st = deref_type(a.ctype)
            L.append("    " + decl(st, f"a_{n}_v") + ";")
            L.append("    " + decl(a.ctype, f"a_{n}") + f" = CT_NUL({i}) ? NULL : &a_{n}_v;")
            writable.append(a)
        elif a.kind in ("OUT_SCALAR", "OUT_BUF"):
            st = deref_type(a.ctype)
            elem = "unsigned char" if st == "void" else st
            cnt = "CT_N" if a.kind == "OUT_BUF" else "4"
            L.append(f"    {elem} a_{n}_v[{cnt}];")
            L.append("    " + decl(a.ctype, f"a_{n}") + f" = CT_NUL({i}) ? NULL : a_{n}_v;")
            writable.append(a)
        elif a.kind == "POINTER":
            L.append("    " + decl(a.ctype, f"a_{n}") + " = NULL;")
        else:
            raise GenError(f"{f.name}: parameter `{n}` of kind {a.kind} has no generation rule")
    for a in writable:
        L.append(f"    memset(&a_{a.name}_v, CT_SENTINEL, sizeof a_{a.name}_v);")
    args = ", ".join(f"a_{a.name}" for a in f.params)
    if f.ret == "mpx_status":
        L.append(f"    mpx_status st = {f.name}({args});")
        L.append("    ct_status(r, st);")
        for a in writable:
            L.append(f"    if (ct_failed(st) && a_{a.name} && !ct_untouched(&a_{a.name}_v, sizeof a_{a.name}_v))"
                     f" ct_written(r, \"{a.name}\");")
        for a in f.params:
            if a.kind == "OUT_HANDLE" and a.base in FACTORIES:
                L.append(f"    if (st == MPX_OK && a_{a.name}) fr_{a.base}(a_{a.name}_v);")
    elif f.ret == "void":
        L.append(f"    {f.name}({args});")
        L.append("    r->ok = 1;")
    else:
        v = documented_null_value(f)
        L.append("    " + decl(f.ret, "v") + f" = {f.name}({args});")
        L.append(f"    r->ok = v == {v};")
        if f.ret.endswith("*"):
            L.append('    ct_note(r, "returned %s, documented NULL", v ? "non-NULL" : "NULL");')
        elif f.ret == "bool":
            L.append(f'    ct_note(r, "returned %s, documented {v}", v ? "true" : "false");')
        else:
            L.append(f'    ct_note(r, "returned %lld, documented {v}", (long long)v);')
    if teardown:
        L.append("    " + teardown)
    for a, fac in made:
        L.append(f"    if (a_{a.name}) fr_{fac}(a_{a.name});")
    for a in f.params:
        if a.kind == "HANDLE_ARRAY":
            L.append(f"    if (a_{a.name}_v[0]) fr_{factory_name(f, a)}(({a.base} *)a_{a.name}_v[0]);")
    L.append("}")
    return "\n".join(L)


def gen_smoke(f, expr):
    return "\n".join([
        f"static void run_{f.name}(const struct ct_pat *p, struct ct_res *r) {{",
        "    (void)p;",
        f"    r->ok = ({expr}) ? 1 : 0;",
        f"    ct_note(r, \"%s\", {c_string(expr)});",
        "}",
    ])


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pat(null=-1, zero=-1, elem=0, timeout=None):
    ts, tv = (0, "0") if timeout is None else (1, timeout)
    return f"{{{null}, {zero}, {elem}, {ts}, {tv}}}"


def plan_checks(f):
    """The checks of one function: (pattern text, pattern initializer, expectation)."""
    out = []
    ptrs = pointer_params(f)
    if f.name in NO_POINTER_ARGS:
        return [("no pointer arguments: " + NO_POINTER_ARGS[f.name][0], pat(), "CT_SMOKE")]
    if f.ret == "mpx_status":
        if f.name in CONTROL_INVALID_OK:
            out.append(("control: plausible arguments, may be MPX_E_INVALID: " + CONTROL_INVALID_OK[f.name], pat(),
                        "CT_NOCRASH"))
        else:
            out.append(("control: plausible arguments", pat(), "CT_USABLE"))
        for a in ptrs:
            if (f.name, a.name) in ALLOWED_NULL:
                continue
            if a.kind == "USER":
                raise GenError(f"{f.name}: user-data parameter `{a.name}` needs an ALLOWED_NULL entry")
            out.append((f"{a.name}=NULL", pat(null=a.index), "CT_INVALID"))
            if a.kind == "HANDLE_ARRAY":
                out.append((f"{a.name}[0]=NULL", pat(elem=1), "CT_INVALID"))
        for (fn, ptr, ln, _) in NULL_WITH_ZERO:
            if fn == f.name:
                pi = next(a.index for a in f.params if a.name == ptr)
                li = next(a.index for a in f.params if a.name == ln)
                out.append((f"{ptr}=NULL,{ln}=0 (documented as allowed)", pat(null=pi, zero=li), "CT_USABLE"))
        for a in f.params:
            if a.kind == "TIMEOUT":
                for text, val in BAD_TIMEOUTS:
                    out.append((f"{a.name}={text}", pat(timeout=val), "CT_INVALID"))
    elif f.ret == "void":
        if not ptrs:
            raise GenError(f"{f.name}: returns nothing and takes no pointer: add it to NO_POINTER_ARGS")
        if "NULL is a no-op" not in f.doc:
            raise GenError(f"{f.name}: a void function taking a pointer must document \"NULL is a no-op\"")
        for a in ptrs:
            out.append((f"{a.name}=NULL", pat(null=a.index), "CT_NOCRASH"))
    else:
        handles_ = [a for a in ptrs if a.kind == "HANDLE"]
        others = [a for a in ptrs if a.kind != "HANDLE"]
        if others:
            raise GenError(f"{f.name}: returns {f.ret} and takes pointer `{others[0].name}` that is no handle:"
                           " no rule (return a status, or add a rule)")
        if not handles_:
            raise GenError(f"{f.name}: takes no pointer: add it to NO_POINTER_ARGS with the reason")
        v = documented_null_value(f)
        if v is None:
            raise GenError(f"{f.name}: returns {f.ret} but its doc comment does not say what it returns for NULL"
                           " (e.g. \"(0 for NULL)\")")
        check_value_type(f, v)
        for a in handles_:
            out.append((f"{a.name}=NULL, documented {v}", pat(null=a.index), "CT_VALUE"))
    if not out:
        raise GenError(f"{f.name}: no check applies to it")
    return out


def validate_tables(funcs, type_docs):
    by = {f.name: f for f in funcs}

    def param(fn, pn, table):
        if fn not in by:
            raise GenError(f"{table}: entry names {fn}, which the header does not declare (stale entry)")
        for a in by[fn].params:
            if a.name == pn:
                return a
        raise GenError(f"{table}: {fn} has no parameter `{pn}` (stale entry)")

    for (fn, pn), (reason, phrase) in ALLOWED_NULL.items():
        a = param(fn, pn, "ALLOWED_NULL")
        if a.kind not in POINTERS:
            raise GenError(f"ALLOWED_NULL: {fn} parameter `{pn}` is not a pointer")
        if phrase is not None and phrase not in by[fn].doc and phrase not in type_docs.get(a.base, ""):
            raise GenError(f"ALLOWED_NULL: the doc of {fn} (or of {a.base}) no longer says \"{phrase}\":"
                           f" is NULL still allowed for `{pn}`?")
    for (fn, ptr, ln, phrase) in NULL_WITH_ZERO:
        param(fn, ptr, "NULL_WITH_ZERO")
        param(fn, ln, "NULL_WITH_ZERO")
        if phrase not in by[fn].doc:
            raise GenError(f"NULL_WITH_ZERO: the doc of {fn} no longer says \"{phrase}\"")
    for (fn, pn) in list(FN_VALUES) + list(FACTORY_FOR):
        param(fn, pn, "FN_VALUES/FACTORY_FOR")
    for table, keys in (("SETUP", SETUP), ("TEARDOWN", TEARDOWN), ("ARGVS", ARGVS),
                        ("CONTROL_INVALID_OK", CONTROL_INVALID_OK), ("NO_POINTER_ARGS", NO_POINTER_ARGS)):
        for fn in keys:
            if fn not in by:
                raise GenError(f"{table}: entry names {fn}, which the header does not declare (stale entry)")
    for fn in NO_POINTER_ARGS:
        if pointer_params(by[fn]):
            raise GenError(f"NO_POINTER_ARGS: {fn} takes pointer `{pointer_params(by[fn])[0].name}`: it needs the"
                           " NULL rules, not this table")
    for f in funcs:
        if not pointer_params(f) and f.name not in NO_POINTER_ARGS and not any(a.kind == "TIMEOUT" for a in f.params):
            raise GenError(f"{f.name}: takes no pointer: add it to NO_POINTER_ARGS with the reason")
    for fac, (ctype, _, _) in FACTORIES.items():
        if ctype not in {a.base for f in funcs for a in f.params} | set(type_docs):
            raise GenError(f"FACTORIES: {fac} makes {ctype}, which the header does not declare (stale entry)")


def generate(header_path):
    text = open(header_path, encoding="utf-8").read()
    funcs, handles, callbacks, type_docs = parse_header(text)
    for h in sorted(handles):
        if h not in FACTORIES:
            raise GenError(f"handle type {h} has no factory: add one to FACTORIES in {os.path.basename(__file__)}")
    for f in funcs:
        classify(f, handles, callbacks)
    validate_tables(funcs, type_docs)

    out = ["/* Generated by tests/c/contract/gen_contract.py from include/mpx.h: do not edit. */",
           '#include "contract.h"', "",
           "static int ct_child_noop(void *user) {", "    (void)user;", "    return 0;", "}", "",
           "static int32_t ct_task_noop(void *user, const uint8_t *args, size_t len, mpx_task_out *out) {",
           "    (void)user;", "    (void)args;", "    (void)len;", "    (void)out;", "    return 0;", "}", ""]
    for fac, (ctype, make, free) in FACTORIES.items():
        out += [f"static {ctype} *mk_{fac}(struct ct_res *r) {{",
                f"    {ctype} *h = NULL;", "    mpx_status st;", f"    {make}",
                f"    CT_MADE(\"{fac}\", st, h);", "    return h;", "}",
                f"static void fr_{fac}({ctype} *h) {{ {free} }}", ""]
    # Silence "unused" for factories no check happens to use.
    out.append("static void ct_use_factories(void) {")
    for fac in FACTORIES:
        out.append(f"    (void)mk_{fac}; (void)fr_{fac};")
    out += ["}", ""]
    checks = []
    for f in funcs:
        planned = plan_checks(f)
        if f.name in NO_POINTER_ARGS:
            out.append(gen_smoke(f, NO_POINTER_ARGS[f.name][1]))
        else:
            out.append(gen_runner(f))
        out.append("")
        for text_, p, e in planned:
            checks.append(f"    {{\"{f.name}\", {c_string(text_)}, run_{f.name}, {p}, {e}, 0}},")
    out.append("static const struct ct_check ct_checks[] = {")
    out += checks
    out += ["};", "", "static const char *const ct_exported[] = {"]
    out += [f"    \"{f.name}\"," for f in funcs]
    out += ["};", "",
            "int main(int argc, char **argv) {",
            "    ct_use_factories();",
            "    setvbuf(stdout, NULL, _IOLBF, 0);",
            "    /* An mpx program: mpx_start's plausible entry is registered, then mpx_init. */",
            "    if (mpx_entry_register(\"contract-noop\", ct_entry_noop, NULL) != MPX_OK ||",
            "        mpx_init(argc, (const char *const *)argv) != MPX_OK) {",
            "        fprintf(stderr, \"test_contract: setup failed: %s\\n\", mpx_last_error());",
            "        return 2;",
            "    }",
            f"    printf(\"test_contract: {len(checks)} checks of {len(funcs)} functions from include/mpx.h\\n\");",
            "    return ct_main(ct_checks, (int)(sizeof ct_checks / sizeof ct_checks[0]), ct_exported,",
            "                   (int)(sizeof ct_exported / sizeof ct_exported[0]));",
            "}", ""]
    return "\n".join(out), len(funcs), len(checks)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    try:
        code, nf, nc = generate(sys.argv[1])
    except GenError as e:
        sys.exit(f"gen_contract.py: {e}")
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(code)
    os.replace(tmp, sys.argv[2])
    print(f"gen_contract.py: {nc} checks for {nf} functions -> {sys.argv[2]}")


if __name__ == "__main__":
    main()
