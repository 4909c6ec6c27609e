/* _speedups: optional fast calls into libmpx for the binding's hot paths.
 *
 * ctypes spends several hundred nanoseconds converting arguments on every call, which is more
 * than an uncontended lock or a queue put costs in the library itself. This module binds a few
 * fixed C signatures to function pointers that the ctypes layer looked up (so there is one copy
 * of libmpx in the process, the one ctypes loaded), and calls them with only the conversions
 * each signature needs. It holds no logic: every call is one call into the C ABI. The package
 * works without it (mpx/_lib.py falls back to ctypes).
 *
 * Signature letters (arguments after the function): p pointer (int, None, or an object with an
 * int .value such as ctypes.c_void_p), q int64 (int, or .value), b read-only buffer passed as
 * (pointer, length), w writable buffer passed as (pointer, capacity), o writable buffer whose
 * address alone is passed (an out-parameter such as a ctypes.c_size_t). Every function returns
 * int32 (an mpx_status). A call whose q argument (a timeout) is non-zero releases the GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef int32_t (*f_p)(void *);
typedef int32_t (*f_pq)(void *, int64_t);
typedef int32_t (*f_pb)(void *, const void *, size_t);
typedef int32_t (*f_pbq)(void *, const void *, size_t, int64_t);
typedef int32_t (*f_pwoq)(void *, void *, size_t, void *, int64_t);
typedef int32_t (*f_pqo)(void *, int64_t, void *);

enum sig { SIG_P, SIG_PQ, SIG_PB, SIG_PBQ, SIG_PWOQ, SIG_PQO };

static const struct {
    const char *text;
    enum sig sig;
    Py_ssize_t nargs;
} SIGS[] = {
    {"p", SIG_P, 1},     {"pq", SIG_PQ, 2},     {"pb", SIG_PB, 2},
    {"pbq", SIG_PBQ, 3}, {"pwoq", SIG_PWOQ, 4}, {"pqo", SIG_PQO, 3},
};

typedef struct {
    PyObject_HEAD
    void *fn;
    enum sig sig;
    Py_ssize_t nargs;
    PyObject *name;
    vectorcallfunc vectorcall;
} FastCall;

static int as_pointer(PyObject *o, void **out) {
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

static PyMethodDef METHODS[] = {
    {"bind", bind, METH_VARARGS, "bind(name, address, signature): a fast callable for a libmpx function."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "mpx._speedups", "Fast calls into libmpx.", -1, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&FastCallType) < 0) return NULL;
    return PyModule_Create(&MODULE);
}
