/* _speedups: optional fast calls into libmpx for the binding's hot paths.
 *
 * ctypes spends several hundred nanoseconds converting arguments on every call, which is more
 * than an uncontended lock or a queue put costs in the library itself. This module binds a few
 * fixed C signatures to function pointers that the ctypes layer looked up (so there is one copy
 * of libmpx in the process, the one ctypes loaded), and calls them with only the conversions
 * each signature needs. It holds no logic: every call is one call into the C ABI. The package
 * works without it (mpx/_lib.py falls back to ctypes).
 *
 * Signature letters (arguments after the function): p pointer (a Handle, an int, None, or an
 * object with an int .value such as ctypes.c_void_p), q int64 (int, or .value), b read-only buffer passed as
 * (pointer, length), w writable buffer passed as (pointer, capacity), o writable buffer whose
 * address alone is passed (an out-parameter such as a ctypes.c_size_t). Every function returns
 * int32 (an mpx_status). A call whose q argument (a timeout) is non-zero releases the GIL.
 *
 * Handle (below) owns one C handle: it calls the kind's close function when it is deallocated, so
 * the handle lives as long as any reference to it. Every call on a handle holds one (a fast call's
 * argument, a ctypes call's argument, LockCore while it waits without the GIL), so a close() from
 * another thread, which only drops the object's reference, never frees a handle under a call.
 *
 * Mapping (below) is the buffer object of a SharedMemory, over the library's own mapping.
 *
 * LockCore (below) is the C base class of the lock-like Python classes: their acquire, release,
 * __enter__ and __exit__ as C methods over two such functions. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* Older CPythons (the package supports 3.8+): the calls used below under their old names. */
#if PY_VERSION_HEX < 0x03090000
#define PyObject_CallMethodOneArg(obj, name, arg) PyObject_CallMethodObjArgs((obj), (name), (arg), NULL)
#define PyObject_Vectorcall _PyObject_Vectorcall
#ifndef Py_TPFLAGS_HAVE_VECTORCALL
#define Py_TPFLAGS_HAVE_VECTORCALL _Py_TPFLAGS_HAVE_VECTORCALL
#endif
#endif
#if PY_VERSION_HEX < 0x030A0000
static int add_object_ref(PyObject *m, const char *name, PyObject *v) {
    Py_INCREF(v);
    if (PyModule_AddObject(m, name, v) < 0) {
        Py_DECREF(v);
        return -1;
    }
    return 0;
}
#define PyModule_AddObjectRef add_object_ref
#endif
#include <stdint.h>
#include <string.h>

typedef int32_t (*f_p)(void *);
typedef int32_t (*f_pq)(void *, int64_t);
typedef int32_t (*f_pb)(void *, const void *, size_t);
typedef int32_t (*f_pbq)(void *, const void *, size_t, int64_t);
typedef int32_t (*f_pwoq)(void *, void *, size_t, void *, int64_t);
typedef int32_t (*f_pqo)(void *, int64_t, void *);
typedef int32_t (*f_pqoo)(void *, int64_t, void *, void *);

enum sig { SIG_P, SIG_PQ, SIG_PB, SIG_PBQ, SIG_PWOQ, SIG_PQO, SIG_PQOO };

static const struct {
    const char *text;
    enum sig sig;
    Py_ssize_t nargs;
} SIGS[] = {
    {"p", SIG_P, 1},     {"pq", SIG_PQ, 2},     {"pb", SIG_PB, 2},
    {"pbq", SIG_PBQ, 3}, {"pwoq", SIG_PWOQ, 4}, {"pqo", SIG_PQO, 3},
    {"pqoo", SIG_PQOO, 4},
};

typedef struct {
    PyObject_HEAD
    void *fn;
    enum sig sig;
    Py_ssize_t nargs;
    PyObject *name;
    vectorcallfunc vectorcall;
} FastCall;

typedef void (*f_close)(void *);

/* Handle(address, close, param): owns the handle at `address` (closed with the function at
 * `close` when the last reference goes). `param` is what ctypes passes for it (a typed ctypes
 * pointer to the same address, its `_as_parameter_`), so the Handle itself can be given to any
 * ctypes prototype of the library; `value` is the address as an int. Immutable: a closed
 * object drops its Handle, it never empties one. */
typedef struct {
    PyObject_HEAD
    void *h;
    f_close close;
    PyObject *param;
    PyObject *weakrefs; /* a closed object's release() finds its handle while a call keeps it */
} Handle;

static PyTypeObject HandleType;

static PyObject *handle_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    unsigned long long addr, close_addr;
    PyObject *param;
    static char *kwlist[] = {"address", "close", "param", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "KKO", kwlist, &addr, &close_addr, &param)) return NULL;
    if (addr == 0 || close_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "Handle: NULL address or close function");
        return NULL;
    }
    Handle *self = (Handle *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->h = (void *)(uintptr_t)addr;
    self->close = (f_close)(uintptr_t)close_addr;
    Py_INCREF(param);
    self->param = param;
    return (PyObject *)self;
}

static void handle_dealloc(PyObject *self_) {
    Handle *self = (Handle *)self_;
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs(self_);
    void *h = self->h;
    self->h = NULL;
    if (h != NULL) self->close(h);
    Py_CLEAR(self->param);
    Py_TYPE(self_)->tp_free(self_);
}

static PyObject *handle_get_param(PyObject *self, void *closure) {
    (void)closure;
    PyObject *p = ((Handle *)self)->param;
    Py_INCREF(p);
    return p;
}

static PyObject *handle_get_value(PyObject *self, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(((Handle *)self)->h);
}

static PyObject *handle_repr(PyObject *self) { return PyUnicode_FromFormat("<mpx handle %p>", ((Handle *)self)->h); }

static PyGetSetDef HANDLE_GETSET[] = {
    {"_as_parameter_", handle_get_param, NULL, "What ctypes passes for this handle.", NULL},
    {"value", handle_get_value, NULL, "The handle's address.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject HandleType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mpx._speedups.Handle",
    .tp_basicsize = sizeof(Handle),
    .tp_weaklistoffset = offsetof(Handle, weakrefs),
    .tp_dealloc = handle_dealloc,
    .tp_repr = handle_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = handle_new,
    .tp_getset = HANDLE_GETSET,
    .tp_doc = "Handle(address, close, param): owns a C handle, closed when the last reference goes "
              "(see _speedups.c).",
};

static int as_pointer(PyObject *o, void **out) {
    if (Py_TYPE(o) == &HandleType) {
        *out = ((Handle *)o)->h;
        return 0;
    }
    if (o == Py_None) {
        *out = NULL;
        return 0;
    }
    if (PyLong_Check(o)) {
        *out = PyLong_AsVoidPtr(o);
        return (*out == NULL && PyErr_Occurred()) ? -1 : 0;
    }
    PyObject *v = PyObject_GetAttrString(o, "value");
    if (v == NULL) return -1;
    int r = as_pointer(v, out);
    Py_DECREF(v);
    return r;
}

static int as_int64(PyObject *o, int64_t *out) {
    if (!PyLong_Check(o)) {
        PyObject *v = PyObject_GetAttrString(o, "value");
        if (v == NULL) return -1;
        int r = as_int64(v, out);
        Py_DECREF(v);
        return r;
    }
    long long x = PyLong_AsLongLong(o);
    if (x == -1 && PyErr_Occurred()) return -1;
    *out = (int64_t)x;
    return 0;
}

static PyObject *fast_vectorcall(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kw) {
    FastCall *self = (FastCall *)self_;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kw != NULL && PyTuple_GET_SIZE(kw) != 0) {
        PyErr_Format(PyExc_TypeError, "%U takes no keyword arguments", self->name);
        return NULL;
    }
    if (n != self->nargs) {
        PyErr_Format(PyExc_TypeError, "%U takes %zd arguments (%zd given)", self->name, self->nargs, n);
        return NULL;
    }
    void *h;
    if (as_pointer(args[0], &h) < 0) return NULL;
    int32_t st = 0;
    int64_t t = 0;
    Py_buffer buf, out;
    switch (self->sig) {
    case SIG_P:
        st = ((f_p)self->fn)(h);
        break;
    case SIG_PQ:
        if (as_int64(args[1], &t) < 0) return NULL;
        if (t != 0) {
            Py_BEGIN_ALLOW_THREADS st = ((f_pq)self->fn)(h, t);
            Py_END_ALLOW_THREADS
        } else {
            st = ((f_pq)self->fn)(h, t);
        }
        break;
    case SIG_PB:
        if (PyObject_GetBuffer(args[1], &buf, PyBUF_SIMPLE) < 0) return NULL;
        st = ((f_pb)self->fn)(h, buf.buf, (size_t)buf.len);
        PyBuffer_Release(&buf);
        break;
    case SIG_PBQ:
        if (as_int64(args[2], &t) < 0) return NULL;
        if (PyObject_GetBuffer(args[1], &buf, PyBUF_SIMPLE) < 0) return NULL;
        if (t != 0) {
            Py_BEGIN_ALLOW_THREADS st = ((f_pbq)self->fn)(h, buf.buf, (size_t)buf.len, t);
            Py_END_ALLOW_THREADS
        } else {
            st = ((f_pbq)self->fn)(h, buf.buf, (size_t)buf.len, t);
        }
        PyBuffer_Release(&buf);
        break;
    case SIG_PWOQ:
        if (as_int64(args[3], &t) < 0) return NULL;
        if (PyObject_GetBuffer(args[1], &buf, PyBUF_WRITABLE) < 0) return NULL;
        if (PyObject_GetBuffer(args[2], &out, PyBUF_WRITABLE) < 0) {
            PyBuffer_Release(&buf);
            return NULL;
        }
        if (t != 0) {
            Py_BEGIN_ALLOW_THREADS st = ((f_pwoq)self->fn)(h, buf.buf, (size_t)buf.len, out.buf, t);
            Py_END_ALLOW_THREADS
        } else {
            st = ((f_pwoq)self->fn)(h, buf.buf, (size_t)buf.len, out.buf, t);
        }
        PyBuffer_Release(&out);
        PyBuffer_Release(&buf);
        break;
    case SIG_PQO:
        if (as_int64(args[1], &t) < 0) return NULL;
        if (PyObject_GetBuffer(args[2], &out, PyBUF_WRITABLE) < 0) return NULL;
        if (t != 0) {
            Py_BEGIN_ALLOW_THREADS st = ((f_pqo)self->fn)(h, t, out.buf);
            Py_END_ALLOW_THREADS
        } else {
            st = ((f_pqo)self->fn)(h, t, out.buf);
        }
        PyBuffer_Release(&out);
        break;
    case SIG_PQOO:
        if (as_int64(args[1], &t) < 0) return NULL;
        if (PyObject_GetBuffer(args[2], &out, PyBUF_WRITABLE) < 0) return NULL;
        if (PyObject_GetBuffer(args[3], &buf, PyBUF_WRITABLE) < 0) {
            PyBuffer_Release(&out);
            return NULL;
        }
        if (t != 0) {
            Py_BEGIN_ALLOW_THREADS st = ((f_pqoo)self->fn)(h, t, out.buf, buf.buf);
            Py_END_ALLOW_THREADS
        } else {
            st = ((f_pqoo)self->fn)(h, t, out.buf, buf.buf);
        }
        PyBuffer_Release(&buf);
        PyBuffer_Release(&out);
        break;
    }
    return PyLong_FromLong(st);
}

static PyObject *fast_call(PyObject *self, PyObject *args, PyObject *kw) {
    return PyVectorcall_Call(self, args, kw);
}

static void fast_dealloc(PyObject *self) {
    Py_XDECREF(((FastCall *)self)->name);
    PyObject_Free(self);
}

static PyObject *fast_repr(PyObject *self) { return PyUnicode_FromFormat("<mpx fast call %U>", ((FastCall *)self)->name); }

static PyTypeObject FastCallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mpx._speedups.FastCall",
    .tp_basicsize = sizeof(FastCall),
    .tp_dealloc = fast_dealloc,
    .tp_repr = fast_repr,
    .tp_call = fast_call,
    .tp_vectorcall_offset = offsetof(FastCall, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A libmpx function bound to a fixed signature (see the module's documentation).",
};

/* LockCore: the hot methods of a lock-like object (mpx.Lock, RLock, Semaphore, a Value's lock)
 * at C level, as multiprocessing's SemLock has them. A Python call of a C method costs a fraction
 * of a Python method's frame, and in `with lock:` the frames run while the lock is held, so they
 * lengthen every critical section. The base class of the Python types when the accelerator is
 * present; it holds the handle (the `_a` attribute: a Handle, None once closed) and the two C
 * functions bound by `_bind`. A call that waits without the GIL holds a reference to the Handle
 * for the wait, so a close() from another thread (which sets `_a` to None) cannot free the handle
 * under it; calls that keep the GIL cannot meet a close() at all. Only the outcomes that need nothing else are handled here (acquired,
 * released, a failed try); any other status goes to the Python class's methods, which hold the
 * logic (waiting on in slices, owner-died warnings, errors):
 *   self._acquired_slow(status)  after a first wait that did not return MPX_OK (a timeout means
 *                                "go on waiting without limit"); returns True or raises
 *   self._release_failed(status) after a release that did not return MPX_OK; raises
 *   self._acquire_py(*args, **kw) acquire() with a timeout (the whole call, in Python). */

#define STATUS_OK 0
#define STATUS_TIMEOUT (-4) /* MPX_E_TIMEOUT (mpx.h); the tests check it against the library's */

typedef struct {
    PyObject_HEAD
    void *h;
    PyObject *a; /* what `_a` was set to (a Handle, keeping h alive; an int; or NULL for None) */
    f_pq acquire;
    f_p release;
    int64_t slice_ns;
    int64_t first_ns;
    int release_blocking;
} LockCore;

static PyObject *s_acquired_slow, *s_release_failed, *s_acquire_py;

static int core_bound(LockCore *self) {
    if (self->acquire == NULL || self->release == NULL) {
        PyErr_SetString(PyExc_TypeError, "lock object is not initialised (_bind was not called)");
        return 0;
    }
    return 1;
}

/* Acquires in two calls at most: a first one with the spin timeout keeping the GIL, then, if it
 * timed out, one of a slice without the GIL. Any other outcome is the Python class's. */
static PyObject *core_wait(LockCore *self) {
    int32_t st = STATUS_TIMEOUT;
    void *h = self->h;
    f_pq fn = self->acquire;
    if (self->first_ns >= 0) {
        /* Keeps the GIL: a free lock is one CAS, and a held one is tried (0) or spun on briefly
         * (the library spins before it sleeps whatever the timeout) without sleeping, so a
         * handoff between processes pays no GIL release and re-acquisition inside the critical
         * section. */
        st = fn(h, self->first_ns);
    }
    if (st == STATUS_TIMEOUT) {
        int64_t t = self->slice_ns;
        PyObject *keep = self->a; /* the handle stays alive through the wait */
        Py_XINCREF(keep);
        Py_BEGIN_ALLOW_THREADS st = fn(h, t);
        Py_END_ALLOW_THREADS
        Py_XDECREF(keep); /* may close the handle, if close() came meanwhile: we are done with it */
    }
    if (st == STATUS_OK) Py_RETURN_TRUE;
    PyObject *code = PyLong_FromLong(st);
    if (code == NULL) return NULL;
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, s_acquired_slow, code);
    Py_DECREF(code);
    return r;
}

static PyObject *core_enter(PyObject *self_, PyObject *unused) {
    (void)unused;
    LockCore *self = (LockCore *)self_;
    if (!core_bound(self)) return NULL;
    return core_wait(self);
}

static PyObject *core_release_impl(LockCore *self) {
    if (!core_bound(self)) return NULL;
    int32_t st;
    if (self->release_blocking) {
        void *h = self->h;
        f_p fn = self->release;
        PyObject *keep = self->a;
        Py_XINCREF(keep);
        Py_BEGIN_ALLOW_THREADS st = fn(h);
        Py_END_ALLOW_THREADS
        Py_XDECREF(keep);
    } else {
        st = self->release(self->h);
    }
    if (st == STATUS_OK) Py_RETURN_NONE;
    PyObject *code = PyLong_FromLong(st);
    if (code == NULL) return NULL;
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, s_release_failed, code);
    Py_DECREF(code);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE; /* never a true value: __exit__ must not swallow the exception */
}

static PyObject *core_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    return core_release_impl((LockCore *)self);
}

static PyObject *core_release(PyObject *self, PyObject *unused) {
    (void)unused;
    return core_release_impl((LockCore *)self);
}

/* acquire(block=True, timeout=None): acquire() and acquire(True) wait in C like __enter__;
 * acquire(False) tries once; any other call (a timeout, keywords) is the Python method's. */
static PyObject *core_acquire(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    LockCore *self = (LockCore *)self_;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (!core_bound(self)) return NULL;
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) {
        if (n == 0 || (n == 1 && args[0] == Py_True)) return core_wait(self);
        if (n == 1 && args[0] == Py_False) {
            int32_t st = self->acquire(self->h, 0); /* never blocks: keep the GIL */
            if (st == STATUS_OK) Py_RETURN_TRUE;
            if (st == STATUS_TIMEOUT) Py_RETURN_FALSE;
            PyObject *code = PyLong_FromLong(st);
            if (code == NULL) return NULL;
            PyObject *r = PyObject_CallMethodOneArg(self_, s_acquired_slow, code);
            Py_DECREF(code);
            return r;
        }
    }
    PyObject *meth = PyObject_GetAttr(self_, s_acquire_py);
    if (meth == NULL) return NULL;
    PyObject *r = PyObject_Vectorcall(meth, args, nargsf, kwnames);
    Py_DECREF(meth);
    return r;
}

static int fastcall_check(PyObject *o, enum sig sig, const char *what);

/* _bind(acquire, release, slice_ns, first_ns, release_blocking): acquire is a FastCall of
 * signature "pq", release one of signature "p" (from mpx._lib.fast); slice_ns the wait without
 * the GIL; first_ns >= 0 the timeout of a first call that keeps it (-1: none; it must be short:
 * the library spins, never sleeps, for a timeout of a few ns); release_blocking whether a release
 * may wait (then it runs without the GIL). */
static PyObject *core_bind(PyObject *self_, PyObject *args) {
    LockCore *self = (LockCore *)self_;
    PyObject *acq, *rel;
    long long slice, first;
    int blocking;
    if (!PyArg_ParseTuple(args, "OOLLp", &acq, &rel, &slice, &first, &blocking)) return NULL;
    if (fastcall_check(acq, SIG_PQ, "acquire") < 0 || fastcall_check(rel, SIG_P, "release") < 0) return NULL;
    if (slice <= 0 || first < -1 || first > 1000) {
        PyErr_SetString(PyExc_ValueError, "_bind: the slice must be > 0 ns and the first wait -1..1000 ns");
        return NULL;
    }
    self->first_ns = first;
    self->acquire = (f_pq)((FastCall *)acq)->fn;
    self->release = (f_p)((FastCall *)rel)->fn;
    self->slice_ns = slice;
    self->release_blocking = blocking;
    Py_RETURN_NONE;
}

static PyObject *core_get_a(PyObject *self, void *closure) {
    (void)closure;
    PyObject *a = ((LockCore *)self)->a;
    if (a == NULL) Py_RETURN_NONE;
    Py_INCREF(a);
    return a;
}

static int core_set_a(PyObject *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _a");
        return -1;
    }
    if (value != Py_None && !PyLong_Check(value) && Py_TYPE(value) != &HandleType) {
        PyErr_SetString(PyExc_TypeError, "_a must be a Handle, an int address or None");
        return -1;
    }
    void *h;
    if (as_pointer(value, &h) < 0) return -1;
    LockCore *core = (LockCore *)self;
    PyObject *old = core->a;
    if (value == Py_None) {
        core->a = NULL;
    } else {
        Py_INCREF(value);
        core->a = value;
    }
    core->h = h;
    Py_XDECREF(old); /* last: it may close the old handle */
    return 0;
}

static void core_dealloc(PyObject *self) {
    LockCore *core = (LockCore *)self;
    core->h = NULL;
    Py_CLEAR(core->a);
    Py_TYPE(self)->tp_free(self);
}

static PyGetSetDef CORE_GETSET[] = {
    {"_a", core_get_a, core_set_a, "The handle (a Handle or an int address; None once closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef CORE_METHODS[] = {
    {"acquire", (PyCFunction)(void (*)(void))core_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, block=True, timeout=None)\n--\n\n"
     "True, or False if timeout seconds ran out (block=False: try once)."},
    {"release", core_release, METH_NOARGS,
     "release($self, /)\n--\n\nReleases (see the class's documentation for the errors)."},
    {"__enter__", core_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nAcquires, waiting without limit; returns True."},
    {"__exit__", (PyCFunction)(void (*)(void))core_exit, METH_FASTCALL, "__exit__($self, /, *exc)\n--\n\nReleases."},
    {"_bind", core_bind, METH_VARARGS, "_bind(acquire, release, slice_ns, first_ns, release_blocking)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LockCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mpx._speedups.LockCore",
    .tp_basicsize = sizeof(LockCore),
    .tp_dealloc = core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_methods = CORE_METHODS,
    .tp_getset = CORE_GETSET,
    .tp_doc = "C-level acquire/release/__enter__/__exit__ for mpx's lock-like classes (see _speedups.c).",
};

static int fastcall_check(PyObject *o, enum sig sig, const char *what) {
    if (!PyObject_TypeCheck(o, &FastCallType) || ((FastCall *)o)->sig != sig) {
        PyErr_Format(PyExc_TypeError, "_bind: %s must be a fast call of signature %s", what, sig == SIG_P ? "p" : "pq");
        return -1;
    }
    return 0;
}

/* bind(name, address, signature) -> callable */
static PyObject *bind(PyObject *mod, PyObject *args) {
    (void)mod;
    PyObject *name;
    unsigned long long addr;
    const char *sig;
    if (!PyArg_ParseTuple(args, "UKs", &name, &addr, &sig)) return NULL;
    if (addr == 0) {
        PyErr_SetString(PyExc_ValueError, "bind: NULL function address");
        return NULL;
    }
    for (size_t i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) {
        if (strcmp(SIGS[i].text, sig) == 0) {
            FastCall *f = PyObject_New(FastCall, &FastCallType);
            if (f == NULL) return NULL;
            f->fn = (void *)(uintptr_t)addr;
            f->sig = SIGS[i].sig;
            f->nargs = SIGS[i].nargs;
            Py_INCREF(name);
            f->name = name;
            f->vectorcall = fast_vectorcall;
            return (PyObject *)f;
        }
    }
    PyErr_Format(PyExc_ValueError, "bind: unsupported signature %s", sig);
    return NULL;
}

/* Mapping: the memory of an mpx SharedMemory as a buffer object, over the mapping the library
 * already made (Python's mmap would map the segment a second time: fstat, dup and mmap on every
 * create and attach, munmap and close on every close). It keeps mmap's safety rule: close()
 * raises BufferError while a buffer export is alive, and the memory stays valid until it
 * succeeds. It owns the mpx_shm handle: close() (or the object's deallocation, which no export
 * can outlive) calls mpx_shm_close on it, which unmaps the memory. */
typedef int32_t (*f_po)(void *, void *);

typedef struct {
    PyObject_HEAD
    void *h; /* the handle; NULL once closed */
    f_close close;
    f_po fd;
    f_p unlink_self;
    char *data;
    Py_ssize_t size;
    int readonly;
    Py_ssize_t exports;
} Mapping;

typedef void *(*f_ptr)(void *);
typedef size_t (*f_size)(void *);

/* Mapping((close, ptr, size, fd, unlink_self), handle, readonly): the addresses of mpx_shm_close,
 * mpx_shm_ptr, mpx_shm_size, mpx_shm_fd and mpx_shm_unlink_self; handle is the ctypes pointer holding the
 * mpx_shm handle (read through its buffer: one call instead of three ctypes calls). The handle
 * is moved, not copied: on success the ctypes pointer is set to NULL, so that the Mapping is its
 * only owner (a caller's clean-up that closes its pointer after all, e.g. because Ctrl-C struck
 * as the call returned, then closes NULL: nothing). On failure the handle is not taken. */
static PyObject *mapping_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    unsigned long long close_addr, ptr_addr, size_addr, fd_addr, unlink_addr;
    PyObject *handle;
    int readonly;
    static char *kwlist[] = {"functions", "handle", "readonly", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "(KKKKK)Op", kwlist, &close_addr, &ptr_addr, &size_addr, &fd_addr,
                                     &unlink_addr, &handle, &readonly))
        return NULL;
    if (close_addr == 0 || ptr_addr == 0 || size_addr == 0 || fd_addr == 0 || unlink_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "Mapping: NULL function address");
        return NULL;
    }
    Py_buffer hb;
    if (PyObject_GetBuffer(handle, &hb, PyBUF_WRITABLE) < 0) return NULL;
    void *h = NULL;
    if (hb.len == (Py_ssize_t)sizeof h) memcpy(&h, hb.buf, sizeof h);
    if (h == NULL) {
        PyBuffer_Release(&hb);
        PyErr_SetString(PyExc_ValueError, "Mapping: the handle must be a non-NULL ctypes pointer");
        return NULL;
    }
    char *data = ((f_ptr)(uintptr_t)ptr_addr)(h);
    size_t size = ((f_size)(uintptr_t)size_addr)(h);
    if (data == NULL || size > (size_t)PY_SSIZE_T_MAX) {
        PyBuffer_Release(&hb);
        PyErr_SetString(PyExc_ValueError, "Mapping: the handle has no data");
        return NULL;
    }
    Mapping *self = (Mapping *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&hb);
        return NULL;
    }
    memset(hb.buf, 0, sizeof h); /* moved: the Mapping is the only owner from here */
    PyBuffer_Release(&hb);
    self->close = (f_close)(uintptr_t)close_addr;
    self->fd = (f_po)(uintptr_t)fd_addr;
    self->unlink_self = (f_p)(uintptr_t)unlink_addr;
    self->h = h;
    self->data = data;
    self->size = (Py_ssize_t)size;
    self->readonly = readonly;
    self->exports = 0;
    return (PyObject *)self;
}

static void mapping_close_handle(Mapping *self) {
    void *h = self->h;
    self->h = NULL;
    self->data = NULL;
    self->size = 0;
    if (h != NULL) self->close(h);
}

static void mapping_dealloc(PyObject *self) {
    mapping_close_handle((Mapping *)self);
    Py_TYPE(self)->tp_free(self);
}

static int mapping_getbuffer(PyObject *self_, Py_buffer *view, int flags) {
    Mapping *self = (Mapping *)self_;
    if (self->h == NULL) {
        PyErr_SetString(PyExc_ValueError, "shared memory is closed");
        view->obj = NULL;
        return -1;
    }
    /* Refuses a writable request on a read-only mapping (BufferError). */
    if (PyBuffer_FillInfo(view, self_, self->data, self->size, self->readonly, flags) < 0) {
        view->obj = NULL;
        return -1;
    }
    self->exports++;
    return 0;
}

static void mapping_releasebuffer(PyObject *self, Py_buffer *view) {
    (void)view;
    ((Mapping *)self)->exports--;
}

static PyObject *mapping_close(PyObject *self_, PyObject *unused) {
    (void)unused;
    Mapping *self = (Mapping *)self_;
    if (self->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "cannot close exported pointers exist");
        return NULL;
    }
    mapping_close_handle(self);
    Py_RETURN_NONE;
}

/* fd() and unlink_self(): the calls a SharedMemory makes on its handle, here so that they run
 * in one piece with the GIL held: a close() from another thread cannot come between reading the
 * handle and using it. (status, fd) and status; ValueError once closed. */
static PyObject *mapping_fd(PyObject *self_, PyObject *unused) {
    (void)unused;
    Mapping *self = (Mapping *)self_;
    if (self->h == NULL) {
        PyErr_SetString(PyExc_ValueError, "SharedMemory is closed");
        return NULL;
    }
    int fd = -1;
    int32_t st = self->fd(self->h, &fd);
    return Py_BuildValue("(ii)", (int)st, fd);
}

static PyObject *mapping_unlink_self(PyObject *self_, PyObject *unused) {
    (void)unused;
    Mapping *self = (Mapping *)self_;
    if (self->h == NULL) {
        PyErr_SetString(PyExc_ValueError, "SharedMemory is closed");
        return NULL;
    }
    return PyLong_FromLong(self->unlink_self(self->h));
}

static PyObject *mapping_get_closed(PyObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(((Mapping *)self)->h == NULL);
}

static PyMethodDef MAPPING_METHODS[] = {
    {"close", mapping_close, METH_NOARGS,
     "close($self, /)\n--\n\nCloses the handle (unmapping the memory); BufferError while exports exist."},
    {"fd", mapping_fd, METH_NOARGS, "fd($self, /)\n--\n\n(status, fd) of mpx_shm_fd on the handle."},
    {"unlink_self", mapping_unlink_self, METH_NOARGS,
     "unlink_self($self, /)\n--\n\nThe status of mpx_shm_unlink_self on the handle."},
    {NULL, NULL, 0, NULL},
};

static PyObject *mapping_get_size(PyObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(((Mapping *)self)->size);
}

static PyObject *mapping_get_handle(PyObject *self, void *closure) {
    (void)closure;
    void *h = ((Mapping *)self)->h;
    if (h == NULL) Py_RETURN_NONE;
    return PyLong_FromVoidPtr(h);
}

static PyGetSetDef MAPPING_GETSET[] = {
    {"closed", mapping_get_closed, NULL, "Whether close() was called.", NULL},
    {"handle", mapping_get_handle, NULL, "The mpx_shm handle's address while open, else None.", NULL},
    {"size", mapping_get_size, NULL, "The size in bytes (0 once closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyBufferProcs MAPPING_BUFFER = {mapping_getbuffer, mapping_releasebuffer};

static PyTypeObject MappingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mpx._speedups.Mapping",
    .tp_basicsize = sizeof(Mapping),
    .tp_dealloc = mapping_dealloc,
    .tp_as_buffer = &MAPPING_BUFFER,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = mapping_new,
    .tp_methods = MAPPING_METHODS,
    .tp_getset = MAPPING_GETSET,
    .tp_doc = "Mapping((close, ptr, size, fd, unlink_self), handle, readonly): an mpx_shm handle's memory as a buffer "
              "(see _speedups.c).",
};

static PyMethodDef METHODS[] = {
    {"bind", bind, METH_VARARGS, "bind(name, address, signature): a fast callable for a libmpx function."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "mpx._speedups", "Fast calls into libmpx.", -1, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&FastCallType) < 0 || PyType_Ready(&LockCoreType) < 0 || PyType_Ready(&MappingType) < 0 ||
        PyType_Ready(&HandleType) < 0)
        return NULL;
    s_acquired_slow = PyUnicode_InternFromString("_acquired_slow");
    s_release_failed = PyUnicode_InternFromString("_release_failed");
    s_acquire_py = PyUnicode_InternFromString("_acquire_py");
    if (s_acquired_slow == NULL || s_release_failed == NULL || s_acquire_py == NULL) return NULL;
    PyObject *m = PyModule_Create(&MODULE);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "LockCore", (PyObject *)&LockCoreType) < 0 ||
        PyModule_AddObjectRef(m, "Mapping", (PyObject *)&MappingType) < 0 ||
        PyModule_AddObjectRef(m, "Handle", (PyObject *)&HandleType) < 0 ||
        PyModule_AddIntConstant(m, "MPX_E_TIMEOUT", STATUS_TIMEOUT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
