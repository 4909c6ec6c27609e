"""Bad input from Python: invalid names and sizes, missing and existing objects, segments of
another kind, corrupt or truncated segments, and raw C calls with NULL arguments. Every case
must be a clear exception (with the library's message), never a crash or a hang."""

import ctypes
import errno
import os
import pickle
import struct
import subprocess
import sys
import tempfile

import pytest

import mpx
from mpx import _lib, errors
from mpx.errors import CorruptError, KindError, MpxError, VersionError
from mpx.shared_memory import SharedMemory
from patterns import fnv1a

SHM_DIR = "/dev/shm"
HEADER_SIZE = 512


def path_of(name):
    return os.path.join(SHM_DIR, "mpx." + name)


# --------------------------------------------------------------------------------------------
# Names and sizes


BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("x" * 201, id="201-bytes"),
    pytest.param("a/b", id="slash-inside"),
    pytest.param("/lead", id="leading-slash"),
    pytest.param("a b", id="space"),
    pytest.param("caf\u00e9", id="non-ascii"),
    pytest.param("\udcff\udcfe", id="non-utf8-surrogateescape"),
    pytest.param("bad\ud800", id="lone-surrogate"),
    pytest.param("a\0b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("*", id="star"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_valueerror(name):
    before = set(os.listdir(SHM_DIR))
    with pytest.raises(ValueError) as ei:
        SharedMemory(name, create=True, size=16)
    assert "name" in str(ei.value)
    with pytest.raises(ValueError):
        SharedMemory(name)
    assert not isinstance(ei.value, (FileNotFoundError, FileExistsError))
    # Nothing was created, not even a truncated name.
    assert {e for e in set(os.listdir(SHM_DIR)) - before if e.startswith("mpx.")} == set()


def test_invalid_name_messages_say_why():
    cases = {
        "": "empty",
        "x" * 201: "201 bytes",
        "a/b": "'/'",
        "caf\u00e9": "not allowed",
        "\udcff": "UTF-8",
        "a\0b": "null",
    }
    for name, why in cases.items():
        with pytest.raises(ValueError) as ei:
            SharedMemory(name, create=True, size=1)
        assert why in str(ei.value), (name, str(ei.value))


def test_200_byte_name_is_the_limit(unique_name):
    name = (unique_name + "-" + "y" * 200)[:200]
    s = SharedMemory(name, create=True, size=1)
    s.close()
    s.unlink()
    with pytest.raises(ValueError):
        SharedMemory(name + "y", create=True, size=1)


@pytest.mark.parametrize("name", [b"bytes-name", 42, 1.5, ["x"]])
def test_non_str_names_are_typeerror(name):
    with pytest.raises(TypeError):
        SharedMemory(name, create=True, size=1)
    with pytest.raises(TypeError):
        SharedMemory(name)


@pytest.mark.parametrize(
    "size, exc",
    [
        (0, ValueError),
        (-1, ValueError),
        (-(2**70), ValueError),
        (2**64, ValueError),  # would wrap to 0 in a size_t
        (2**64 + 10, ValueError),  # would wrap to 10
        (2**63, ValueError),
        (1.5, TypeError),
        ("10", TypeError),
        (None, TypeError),
    ],
)
def test_bad_sizes(unique_name, size, exc):
    with pytest.raises(exc):
        SharedMemory(unique_name, create=True, size=size)
    assert not os.path.exists(path_of(unique_name))


def test_bad_anonymous_sizes():
    for size in (0, -1, 2**64):
        with pytest.raises(ValueError):
            SharedMemory.anonymous(size)
    with pytest.raises(TypeError):
        SharedMemory.anonymous(2.0)


def test_missing_and_existing(unique_name):
    with pytest.raises(FileNotFoundError) as ei:
        SharedMemory(unique_name)
    e = ei.value
    assert e.errno == errno.ENOENT
    assert e.status == errors.MPX_E_NOT_FOUND and e.status_name == "MPX_E_NOT_FOUND"
    assert unique_name in str(e) and "no such object" in str(e)

    s = SharedMemory(unique_name, create=True, size=8)
    try:
        with pytest.raises(FileExistsError) as ei:
            SharedMemory(unique_name, create=True, size=8)
        assert ei.value.errno == errno.EEXIST and ei.value.status == errors.MPX_E_EXISTS
        assert unique_name in str(ei.value)
    finally:
        s.close()
        s.unlink()
    with pytest.raises(FileNotFoundError):
        s.unlink()


def test_exception_text_is_mpx_last_error(unique_name):
    with pytest.raises(FileNotFoundError) as ei:
        SharedMemory(unique_name)
    # The same failure through the raw C call leaves the same message.
    out = _lib.shm_p()
    assert _lib.lib.mpx_shm_open(unique_name.encode(), 0, ctypes.byref(out)) == errors.MPX_E_NOT_FOUND
    assert _lib.last_error() in str(ei.value) and _lib.last_error()

    with pytest.raises(ValueError) as ei:
        SharedMemory("a/b", create=True, size=1)
    assert _lib.lib.mpx_shm_create(b"a/b", 1, 0, ctypes.byref(out)) == errors.MPX_E_INVALID
    assert str(ei.value) == _lib.last_error()


def test_bad_file_descriptors():
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError):
            SharedMemory.from_fd(r)  # a pipe is not a shared-memory file
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError):
        SharedMemory.from_fd(-1)
    with pytest.raises(ValueError):
        SharedMemory.from_fd(r)  # now closed
    with pytest.raises(ValueError):
        SharedMemory.from_fd(2**32 + 0)  # would wrap to fd 0 in a C int
    with pytest.raises(TypeError):
        SharedMemory.from_fd("3")


def test_from_fd_of_a_file_that_is_not_mpx():
    with tempfile.TemporaryFile() as f:
        # A header-sized file of junk with the ready word set: rejected at once (bad magic).
        junk = bytearray(os.urandom(8192))
        junk[100:104] = struct.pack("<I", 0x52454459)
        f.write(junk)
        f.flush()
        with pytest.raises(CorruptError) as ei:
            SharedMemory.from_fd(f.fileno())
        assert "magic" in str(ei.value)


def test_readonly_create_and_unlink_anonymous_are_valueerror(unique_name):
    with pytest.raises(ValueError):
        SharedMemory(unique_name, create=True, size=1, readonly=True)
    a = SharedMemory.anonymous(10)
    try:
        with pytest.raises(ValueError):
            a.unlink()
    finally:
        a.close()


# --------------------------------------------------------------------------------------------
# Corrupt segments, crafted through the file (layout: src/object/header.rs)

OFF_MAGIC, OFF_VERSION, OFF_KIND = 0, 8, 12
OFF_HEADER_SIZE, OFF_TOTAL, OFF_DATA_OFFSET, OFF_DATA_SIZE = 20, 24, 32, 40
OFF_CREATOR, OFF_NAME_LEN, OFF_CREATED = 48, 52, 56
OFF_CHECKSUM, OFF_READY, OFF_NAME = 96, 100, 128


def checksum(header):
    (name_len,) = struct.unpack_from("<I", header, OFF_NAME_LEN)
    name_len = min(name_len, 200)
    return fnv1a(header[OFF_NAME : OFF_NAME + name_len], fnv1a(header[:96]))


@pytest.fixture
def crafted(unique_name):
    """Creates a valid 4096-byte buffer, then lets the test rewrite its header fields
    (``edit(fmt, offset, value, fix_checksum=True)``). The file is removed afterwards."""
    s = SharedMemory(unique_name, create=True, size=4096)
    s.close()
    path = path_of(unique_name)

    class Crafted:
        name = unique_name

        @staticmethod
        def edit(fmt, offset, value, fix_checksum=True):
            with open(path, "r+b") as f:
                head = bytearray(f.read(HEADER_SIZE))
                struct.pack_into(fmt, head, offset, value)
                if fix_checksum:
                    struct.pack_into("<I", head, OFF_CHECKSUM, checksum(head))
                f.seek(0)
                f.write(head)

        @staticmethod
        def read(fmt, offset):
            with open(path, "rb") as f:
                return struct.unpack_from(fmt, f.read(HEADER_SIZE), offset)[0]

    try:
        yield Crafted
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def test_checksum_helper_matches_the_library(crafted):
    with open(path_of(crafted.name), "rb") as f:
        head = f.read(HEADER_SIZE)
    assert struct.unpack_from("<I", head, OFF_CHECKSUM)[0] == checksum(head)
    # Rewriting a field with its checksum fixed still opens (the edit itself is sound).
    crafted.edit("<Q", OFF_CREATED, 12345)
    SharedMemory(crafted.name).close()


def test_other_kind_is_kinderror(crafted):
    crafted.edit("<I", OFF_KIND, 2)  # Kind::Lock
    with pytest.raises(KindError) as ei:
        SharedMemory(crafted.name)
    e = ei.value
    assert isinstance(e, MpxError) and isinstance(e, ValueError) and isinstance(e, OSError)
    assert e.status == errors.MPX_E_KIND and e.status_name == "MPX_E_KIND"
    assert "lock" in str(e) and crafted.name in str(e)


def test_unknown_kind_is_corrupt(crafted):
    crafted.edit("<I", OFF_KIND, 99)
    with pytest.raises(CorruptError, match="kind 99"):
        SharedMemory(crafted.name)


def test_bad_magic_is_corrupt(crafted):
    crafted.edit("8s", OFF_MAGIC, b"NOTMPX\0\0")
    with pytest.raises(CorruptError, match="magic") as ei:
        SharedMemory(crafted.name)
    assert ei.value.status == errors.MPX_E_CORRUPT and isinstance(ei.value, ValueError)


def test_other_layout_version_is_versionerror(crafted):
    crafted.edit("<I", OFF_VERSION, 2)
    with pytest.raises(VersionError, match="version 2") as ei:
        SharedMemory(crafted.name)
    assert ei.value.status == errors.MPX_E_VERSION and isinstance(ei.value, ValueError)


def test_checksum_mismatch_is_corrupt(crafted):
    created = crafted.read("<Q", OFF_CREATED)
    crafted.edit("<Q", OFF_CREATED, created ^ 1, fix_checksum=False)
    with pytest.raises(CorruptError, match="checksum"):
        SharedMemory(crafted.name)


def test_name_change_breaks_the_checksum(crafted):
    # The name is covered by the checksum too.
    crafted.edit("B", OFF_NAME, ord("Z"), fix_checksum=False)
    with pytest.raises(CorruptError, match="checksum"):
        SharedMemory(crafted.name)


@pytest.mark.parametrize("cut", ["to-100-bytes", "to-half", "to-header", "to-zero"])
def test_truncated_segment_is_corrupt(crafted, cut):
    path = path_of(crafted.name)
    total = os.path.getsize(path)
    size = {"to-100-bytes": 100, "to-half": total // 2, "to-header": HEADER_SIZE, "to-zero": 0}[cut]
    os.truncate(path, size)
    # Shorter than a header: the library waits (bounded, ~2 s) for a creator, then gives up.
    with pytest.raises(CorruptError) as ei:
        SharedMemory(crafted.name)
    assert "truncated" in str(ei.value) or "bytes but its header says" in str(ei.value)


def test_grown_segment_is_corrupt(crafted):
    path = path_of(crafted.name)
    os.truncate(path, os.path.getsize(path) + 4096)
    with pytest.raises(CorruptError):
        SharedMemory(crafted.name)


@pytest.mark.parametrize(
    "fmt, offset, value",
    [
        pytest.param("<Q", OFF_DATA_OFFSET, 1 << 40, id="data-offset-past-end"),
        pytest.param("<Q", OFF_DATA_OFFSET, 100, id="data-offset-inside-header"),
        pytest.param("<Q", OFF_DATA_SIZE, 1 << 40, id="data-size-past-end"),
        pytest.param("<Q", OFF_DATA_SIZE, 2**64 - 1, id="data-size-overflows"),
        pytest.param("<Q", OFF_TOTAL, 1 << 30, id="total-size-lies"),
        pytest.param("<I", OFF_HEADER_SIZE, 256, id="header-size"),
        pytest.param("<I", OFF_NAME_LEN, 201, id="name-length"),
    ],
)
def test_offsets_and_sizes_outside_are_corrupt(crafted, fmt, offset, value):
    crafted.edit(fmt, offset, value)
    with pytest.raises(CorruptError):
        SharedMemory(crafted.name)


def test_never_initialised_by_a_dead_creator_is_corrupt(crafted):
    # A creator that died before publishing: ready is 0 and its pid is gone. No 2 s wait.
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=60)
    dead = int(p.stdout)
    crafted.edit("<i", OFF_CREATOR, dead)
    crafted.edit("<I", OFF_READY, 0)
    with pytest.raises(CorruptError, match="never initialised"):
        SharedMemory(crafted.name)


def test_symlink_in_place_of_a_segment_is_refused(unique_name):
    path = path_of(unique_name)
    with tempfile.NamedTemporaryFile() as target:
        os.symlink(target.name, path)
        try:
            with pytest.raises(PermissionError) as ei:
                SharedMemory(unique_name)
            assert "symbolic link" in str(ei.value)
        finally:
            os.unlink(path)


def test_directory_in_place_of_a_segment_is_an_oserror(unique_name):
    path = path_of(unique_name)
    os.mkdir(path)
    try:
        with pytest.raises(OSError):
            SharedMemory(unique_name)
    finally:
        os.rmdir(path)


def test_corrupt_segment_is_never_mapped_as_a_buffer(crafted):
    # After the failure nothing is left open: the name can be removed and reused.
    crafted.edit("<I", OFF_KIND, 2)
    for _ in range(20):
        with pytest.raises(KindError):
            SharedMemory(crafted.name)
    os.unlink(path_of(crafted.name))
    s = SharedMemory(crafted.name, create=True, size=1)
    s.close()
    s.unlink()


# --------------------------------------------------------------------------------------------
# The error mapping


def test_status_codes_match_the_library():
    for code, name in errors.STATUS_NAMES.items():
        assert _lib.status_name(code) == name
    assert _lib.status_name(12345) == "MPX_E_UNKNOWN"
    assert len(errors.STATUS_NAMES) == 22  # MPX_OK and 21 errors


@pytest.mark.parametrize(
    "status, cls",
    [
        (errors.MPX_E_NOT_FOUND, FileNotFoundError),
        (errors.MPX_E_EXISTS, FileExistsError),
        (errors.MPX_E_INVALID, ValueError),
        (errors.MPX_E_PERMISSION, PermissionError),
        (errors.MPX_E_TIMEOUT, TimeoutError),
        (errors.MPX_E_KIND, KindError),
        (errors.MPX_E_CORRUPT, CorruptError),
        (errors.MPX_E_VERSION, VersionError),
        (errors.MPX_E_OS, OSError),
        (errors.MPX_E_PANIC, MpxError),
        (errors.MPX_E_BROKEN, MpxError),
        (-999, MpxError),
    ],
)
def test_status_to_exception(status, cls):
    with pytest.raises(cls) as ei:
        _lib.check(status)
    e = ei.value
    assert e.status == status
    assert e.status_name == _lib.status_name(status)
    if cls in (KindError, CorruptError, VersionError):
        assert isinstance(e, ValueError) and isinstance(e, MpxError)


def test_check_passes_ok_and_allowed_statuses():
    assert _lib.check(errors.MPX_OK) == 0
    assert _lib.check(errors.MPX_E_OWNER_DIED, allow=(errors.MPX_E_OWNER_DIED,)) == errors.MPX_E_OWNER_DIED
    with pytest.raises(MpxError):
        _lib.check(errors.MPX_E_OWNER_DIED)


def test_mpx_errors_pickle_with_their_status():
    e = errors.from_status(errors.MPX_E_KIND, "queue 'q': the object is a lock, not a queue")
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is KindError and str(again) == str(e)
    assert again.status == errors.MPX_E_KIND and again.status_name == "MPX_E_KIND"
    generic = pickle.loads(pickle.dumps(errors.from_status(errors.MPX_E_PANIC, "boom")))
    assert generic.status == errors.MPX_E_PANIC and str(generic) == "boom"


# --------------------------------------------------------------------------------------------
# Raw C calls with NULL and out-of-range arguments: MPX_E_INVALID, never a crash


def test_raw_null_arguments_are_invalid(unique_name):
    lib = _lib.lib
    INVALID = errors.MPX_E_INVALID

    def call(fn, *args):
        """Calls fn(*args, &out) with out preset to a sentinel; returns (status, out unchanged)."""
        out = ctypes.cast(ctypes.c_void_p(0x1234), _lib.shm_p)
        status = fn(*args, ctypes.byref(out))
        return status, ctypes.cast(out, ctypes.c_void_p).value == 0x1234

    name = unique_name.encode()
    assert call(lib.mpx_shm_create, None, 10, 0) == (INVALID, True)
    assert "name" in _lib.last_error()
    assert lib.mpx_shm_create(name, 10, 0, None) == INVALID
    assert "out" in _lib.last_error()
    assert call(lib.mpx_shm_create, name, 0, 0) == (INVALID, True)
    assert call(lib.mpx_shm_create, name, 10, 0x100) == (INVALID, True)  # unknown flag
    assert call(lib.mpx_shm_create, name, 10, _lib.MPX_F_READ_ONLY) == (INVALID, True)
    assert call(lib.mpx_shm_open, None, 0) == (INVALID, True)
    assert lib.mpx_shm_open(name, 0, None) == INVALID
    assert call(lib.mpx_shm_open, name, 0x100) == (INVALID, True)
    assert call(lib.mpx_shm_create_anonymous, 0) == (INVALID, True)
    assert lib.mpx_shm_create_anonymous(10, None) == INVALID
    assert call(lib.mpx_shm_open_fd, -1, 0) == (INVALID, True)
    assert lib.mpx_shm_open_fd(0, 0, None) == INVALID
    fd = ctypes.c_int(-7)
    offset = ctypes.c_size_t(7)
    assert lib.mpx_shm_fd(None, ctypes.byref(fd)) == INVALID and fd.value == -7
    assert lib.mpx_shm_data_offset(None, ctypes.byref(offset)) == INVALID and offset.value == 7
    assert lib.mpx_shm_unlink(None) == INVALID
    assert lib.mpx_shm_unlink(b"a/b") == INVALID
    assert not bool(lib.mpx_shm_ptr(None))
    assert lib.mpx_shm_size(None) == 0
    assert lib.mpx_shm_name(None) is None
    lib.mpx_shm_close(None)  # a no-op
    assert not os.path.exists(path_of(unique_name))


def test_raw_null_out_params_on_a_live_handle(unique_name):
    lib = _lib.lib
    h = _lib.shm_p()
    assert lib.mpx_shm_create(unique_name.encode(), 100, 0, ctypes.byref(h)) == 0
    try:
        assert lib.mpx_shm_fd(h, None) == errors.MPX_E_INVALID
        assert lib.mpx_shm_data_offset(h, None) == errors.MPX_E_INVALID
        assert lib.mpx_shm_size(h) == 100
        assert lib.mpx_shm_name(h) == unique_name.encode()
        assert bool(lib.mpx_shm_ptr(h))
    finally:
        lib.mpx_shm_close(h)
        assert lib.mpx_shm_unlink(unique_name.encode()) == 0
    assert lib.mpx_shm_unlink(unique_name.encode()) == errors.MPX_E_NOT_FOUND


def test_raw_non_utf8_name_is_invalid():
    out = _lib.shm_p()
    assert _lib.lib.mpx_shm_open(b"\xff\xfe", 0, ctypes.byref(out)) == errors.MPX_E_INVALID
    assert "UTF-8" in _lib.last_error()


def test_handle_types_are_checked():
    # Passing something that is not an mpx_shm* is refused by ctypes, before reaching C.
    with pytest.raises(ctypes.ArgumentError):
        _lib.lib.mpx_shm_size(ctypes.c_void_p(1234))
    with pytest.raises(AttributeError, match="no prototype"):
        _lib.lib.mpx_not_a_function


# --------------------------------------------------------------------------------------------
# Loading the library


def _import_in_child(env_updates, drop=()):
    env = dict(os.environ)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    env["PYTHONPATH"] = os.path.join(root, "bindings", "python")
    for k in drop:
        env.pop(k, None)
    env.update(env_updates)
    return subprocess.run(
        [sys.executable, "-c", "import mpx; print(mpx.library_path); print(mpx.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_missing_mpx_library_is_a_clear_importerror():
    r = _import_in_child({"MPX_LIBRARY": "/nonexistent/libmpx.so"})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "MPX_LIBRARY" in r.stderr and "/nonexistent/libmpx.so" in r.stderr


def test_unloadable_mpx_library_is_a_clear_importerror(tmp_path):
    bogus = tmp_path / "libmpx.so"
    bogus.write_bytes(b"not an ELF file")
    r = _import_in_child({"MPX_LIBRARY": str(bogus)})
    assert r.returncode != 0 and "ImportError" in r.stderr and "cannot load" in r.stderr


def test_library_found_in_the_repository_without_mpx_library():
    r = _import_in_child({}, drop=("MPX_LIBRARY",))
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.split()
    assert path.endswith(os.path.join("target", "release", "libmpx.so"))
    assert version == mpx.__version__
