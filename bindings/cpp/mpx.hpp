// mpx.hpp: header-only C++17 (and later) RAII layer over the mpx C ABI (include/mpx.h).
//
// Every class is a move-only owner of one C handle; the destructor closes it. Failures throw
// mpx::error, which carries the C status (MPX_E_*) and the library's message. Nothing here holds
// logic of its own: each member is one call into the C ABI.
//
//     auto shm = mpx::shared_memory::create("frames", 1 << 20);
//     mpx::span<float> v = shm.as<float>();
//     v[0] = 1.5f;
//
// Link with -lmpx. This header includes every capability; each is also a header of its own
// under mpx/, which compiles alone and includes only what it uses:
//
//     mpx/core.hpp      versions, flags, forever, mpx::error, detail::handle, mpx::span
//     mpx/shm.hpp       shared_memory
//     mpx/process.hpp   process_options, process, register_entry, init, this_process
//     mpx/lockable.hpp  acquire_result, the lock operations shared by the lock-like classes
//     mpx/sync.hpp      mutex, recursive_mutex, semaphore, condition, event, barrier
//     mpx/value.hpp     value<T>, array<T>
//     mpx/queue.hpp     queue
//     mpx/conn.hpp      connection, pipe, listener
//     mpx/pool.hpp      pool_registry, pool_options, pool, task, task_error, task_failed
//
// Capabilities are added as classes in the same style, one header each (included here): a
// private detail::handle<C type, &mpx_<kind>_close> member, static factories (create/open/...),
// and accessors that never throw on a moved-from (empty) object where a neutral answer exists.

#ifndef MPX_HPP
#define MPX_HPP

#include "mpx/core.hpp"
#include "mpx/shm.hpp"
#include "mpx/process.hpp"
#include "mpx/lockable.hpp"
#include "mpx/sync.hpp"
#include "mpx/value.hpp"
#include "mpx/queue.hpp"
#include "mpx/conn.hpp"
#include "mpx/pool.hpp"

#endif  // MPX_HPP
