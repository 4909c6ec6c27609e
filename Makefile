# mpx: `make demo` runs the main job, `make test` builds everything and runs every test.
# Everything a clean machine needs (a Python venv with pytest and numpy) is set up here.

SHELL      := /bin/bash
CARGO      ?= cargo
PYTHON     ?= python3
ROOT       := $(abspath .)
LIBDIR     := $(ROOT)/target/release
LIB        := $(LIBDIR)/libmpx.so
MPX        := $(LIBDIR)/mpx
BUILD      := $(ROOT)/build
VENV       := $(ROOT)/.venv
VPY        := $(VENV)/bin/python

CC         ?= cc
CXX        ?= c++
WARN       := -Wall -Wextra -Werror
CFLAGS     := -O2 -g $(WARN) -std=c11 -D_GNU_SOURCE -I$(ROOT)/include
CXXFLAGS   := -O2 -g $(WARN) -I$(ROOT)/include -I$(ROOT)/bindings/cpp
LDMPX      := -L$(LIBDIR) -lmpx -Wl,-rpath,$(LIBDIR) -lpthread

# What every program run by the tests sees: the library, the Python package, the tools.
export MPX_LIBRARY := $(LIB)
export MPX_BUILD   := $(BUILD)
export MPX_BIN     := $(MPX)
export PYTHONPATH  := $(ROOT)/bindings/python

C_SRCS     := $(wildcard tests/c/*.c) $(wildcard examples/c/*.c) $(wildcard benches/*.c)
CPP_SRCS   := $(wildcard tests/cpp/*.cpp) $(wildcard examples/cpp/*.cpp) $(wildcard benches/*.cpp)
C_BINS     := $(patsubst %.c,$(BUILD)/%,$(C_SRCS))
CPP_BINS   := $(patsubst %.cpp,$(BUILD)/%,$(CPP_SRCS)) $(patsubst %.cpp,$(BUILD)/%-cxx20,$(filter tests/cpp/test_%,$(CPP_SRCS)))

.PHONY: all lib lint native venv pyext test test-rust test-c test-contract test-cpp test-python check-header check-c-header check-shm demo bench clean

all: lib native

lib:
	$(CARGO) build --release --lib --bins

# Gates: formatting, and clippy with warnings as errors (Cargo.toml's [lints] adds undocumented
# unsafe blocks and missing safety docs; rust-version makes clippy hold std APIs to it).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# The committed header must equal a fresh generation (build.rs rewrites it when it differs).
check-header: lib
	@if git -C $(ROOT) rev-parse --git-dir >/dev/null 2>&1; then \
	  git -C $(ROOT) diff --exit-code --stat -- include/mpx.h || \
	  { echo "include/mpx.h differs from the generated header: commit it"; exit 1; }; fi

$(BUILD)/%: %.c include/mpx.h $(wildcard tests/c/*.h) | lib
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(LDMPX)

# The C++ binding: the umbrella mpx.hpp and one header per capability under mpx/.
CPP_HDRS   := $(wildcard bindings/cpp/mpx.hpp bindings/cpp/mpx/*.hpp)

$(BUILD)/%: %.cpp include/mpx.h $(CPP_HDRS) $(wildcard tests/cpp/*.hpp tests/c/*.h) | lib
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(CXXFLAGS) $< -o $@ $(LDMPX)

$(BUILD)/%-cxx20: %.cpp include/mpx.h $(CPP_HDRS) $(wildcard tests/cpp/*.hpp tests/c/*.h) | lib
	@mkdir -p $(dir $@)
	$(CXX) -std=c++20 $(CXXFLAGS) $< -o $@ $(LDMPX)

# The C ABI contract test is generated from the header (docs/C-API.md, "How the contract is
# checked"), so it is remade whenever the header or the generator changes.
CONTRACT_GEN := tests/c/contract/gen_contract.py
CONTRACT_SRC := $(BUILD)/tests/c/contract/test_contract.c
CONTRACT_BIN := $(BUILD)/tests/c/contract/test_contract

$(CONTRACT_SRC): $(CONTRACT_GEN) include/mpx.h
	@mkdir -p $(dir $@)
	$(PYTHON) $(CONTRACT_GEN) include/mpx.h $@

$(CONTRACT_BIN): $(CONTRACT_SRC) tests/c/contract/contract.h tests/c/testutil.h | lib
	$(CC) $(CFLAGS) -I$(ROOT)/tests/c -I$(ROOT)/tests/c/contract $< -o $@ $(LDMPX)

native: $(C_BINS) $(CPP_BINS) $(CONTRACT_BIN)

$(VENV)/.ready: bindings/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet pytest pytest-timeout numpy
	touch $@

venv: $(VENV)/.ready

# The optional C accelerator for the Python binding's hot paths (mpx/_speedups.c). It calls
# libmpx through function pointers that ctypes looked up, so it does not link libmpx itself.
# Named with the interpreter's extension suffix (_speedups.cpython-311-...so), so that another
# Python version running the same tree skips it (and uses ctypes) instead of loading it.
PYEXT := $(ROOT)/bindings/python/mpx/_speedups$(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null || echo .so)
$(PYEXT): bindings/python/mpx/_speedups.c $(VENV)/.ready
	$(CC) -O2 -g $(WARN) -fPIC -shared -fno-strict-aliasing \
	  -I"$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" $< -o $@

pyext: $(PYEXT)

test-rust:
	$(CARGO) test --release -- --test-threads=2

test-c: native check-c-header
	@set -e; for t in $(filter $(BUILD)/tests/c/test_%,$(C_BINS)) $(CONTRACT_BIN); do \
	  echo "== $$t"; timeout 300 $$t; done

test-contract: $(CONTRACT_BIN)
	timeout 300 $(CONTRACT_BIN)

test-cpp: native check-cpp-headers
	@set -e; for t in $(filter $(BUILD)/tests/cpp/test_%,$(CPP_BINS)); do \
	  echo "== $$t"; timeout 300 $$t; done

# Every C++ header compiles on its own (it includes what it uses), in C++17 and C++20; only
# include/ is on the path, so a header cannot lean on another one being found by -I.
.PHONY: check-cpp-headers
check-cpp-headers:
	@set -e; for std in c++17 c++20; do echo "== C++ headers alone, -std=$$std"; \
	  for h in $(CPP_HDRS); do $(CXX) -std=$$std $(WARN) -I$(ROOT)/include -fsyntax-only -x c++ $$h; done; done

# include/mpx.h compiles on its own as C11/C17 and C++17/C++20 (pedantic), twice in a row, both
# with the GCC/Clang builtins and with the portable branch of its inline element atomics
# (<stdatomic.h>, std::atomic_ref; C++17 has none and leaves them out).
.PHONY: check-c-header
check-c-header: lib
	@set -e; for alt in "" -DMPX_ELEM_ATOMICS_PORTABLE; do \
	  for std in c11 c17; do echo "== include/mpx.h alone, -std=$$std $$alt"; \
	    printf '#include "mpx.h"\n#include "mpx.h"\n' | $(CC) -std=$$std $(WARN) -pedantic $$alt -I$(ROOT)/include -fsyntax-only -x c -; done; \
	  for std in c++17 c++20; do echo "== include/mpx.h alone, -std=$$std $$alt"; \
	    printf '#include "mpx.h"\n#include "mpx.h"\n' | $(CXX) -std=$$std $(WARN) -pedantic -Wold-style-cast $$alt -I$(ROOT)/include -fsyntax-only -x c++ -; done; done

# The suites whose hot paths the accelerator replaces run a second time without it (ctypes).
PY_FAST_SUITES := tests/python/test_sync.py tests/python/test_sharedctypes.py \
  tests/python/test_queues.py tests/python/test_connection.py tests/python/test_speedups.py

test-python: venv pyext native lib
	$(VPY) -m pytest -q -p no:cacheprovider --timeout=300 tests/python
	MPX_NO_SPEEDUPS=1 $(VPY) -m pytest -q -p no:cacheprovider --timeout=300 $(PY_FAST_SUITES)

# The suite must leave /dev/shm as it found it: compare our objects before and after.
test: lib check-header lint
	@mkdir -p $(BUILD) && ls /dev/shm | grep -E '^mpx\.' | sort > $(BUILD)/shm-before || true
	$(MAKE) test-rust test-c test-cpp test-python
	@ls /dev/shm | grep -E '^mpx\.' | sort > $(BUILD)/shm-after || true
	@left=$$(comm -13 $(BUILD)/shm-before $(BUILD)/shm-after); if [ -n "$$left" ]; then \
	  echo "tests left objects in /dev/shm:"; echo "$$left"; exit 1; fi
	@echo "make test: all suites passed"

demo: lib native venv pyext
	$(VPY) examples/demo.py

bench: lib native venv pyext
	$(VPY) -m pip install --quiet faster-fifo
	@mkdir -p bench-results
	$(VPY) benches/run.py

clean:
	$(CARGO) clean
	rm -rf $(BUILD) $(VENV)
