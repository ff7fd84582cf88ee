/* glib-tsan: lets ThreadSanitizer see GLib's and GStreamer's
 * synchronisation (sh tests/run.sh tsan preloads it after libtsan).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GLib and GStreamer are not instrumented.  Their GMutex and GCond are
 * futexes and their reference counts and one-time initialisations are
 * inline atomics, none of which TSan sees, so any data handed from one
 * streaming thread to another (a buffer pushed through a queue, an object
 * freed by the thread that dropped the last reference) looks unguarded.
 * This library interposes the exported functions behind those (callers
 * reach them through the PLT) and tells TSan what they do: a lock or a
 * completed wait acquires, an unlock or a signal releases, dropping a
 * reference releases and acquires on the object (the last unref then
 * follows every earlier one), a push onto a GAsyncQueue or a GstBus
 * releases and a pop that returns something acquires.  Nothing else
 * changes: each wrapper calls the real function.
 *
 * It also starts the TSan runtime before the program's main.  Preloaded
 * into a program that was not built with TSan, libtsan initialises lazily,
 * on the first call that reaches it.  dash's main first calls _setjmp,
 * whose interceptor jumps through a pointer set only by that
 * initialisation: a call to address 0
 * (LD_PRELOAD=$(gcc -print-file-name=libtsan.so) sh -c true); bash and
 * python3 segfault at start the same way, and none does with the runtime
 * started here.  With this
 * library preloaded too, every process of a test (the shell scripts, the
 * python3 and gst-launch-1.0 they start) runs under TSan.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <glib-object.h>
#include <gst/gst.h>

void __tsan_init (void);
void __tsan_acquire (void *addr);
void __tsan_release (void *addr);

__attribute__ ((constructor)) static void
start_tsan (void)
{
  __tsan_init ();
}

/* The real function: the next definition after this library, or, when
 * GLib/GStreamer were dlopen'ed (a Python process importing gi) and are
 * not in the global scope, the definition in whichever of them has it. */
static void *
real_symbol (const char *name)
{
  static const char *const libs[] = { "libglib-2.0.so.0", "libgobject-2.0.so.0",
    "libgstreamer-1.0.so.0" };
  void *sym = dlsym (RTLD_NEXT, name);
  for (unsigned i = 0; !sym && i < sizeof libs / sizeof libs[0]; i++) {
    void *lib = dlopen (libs[i], RTLD_NOW | RTLD_NOLOAD);
    if (lib) {
      sym = dlsym (lib, name);
      dlclose (lib);
    }
  }
  return sym;
}

#define REAL(ret, name, args)                                                                      \
  static ret (*real_##name) args;                                                                  \
  if (!__atomic_load_n (&real_##name, __ATOMIC_ACQUIRE))                                           \
    __atomic_store_n (&real_##name, real_symbol (#name), __ATOMIC_RELEASE);

void
g_mutex_lock (GMutex *mutex)
{
  REAL (void, g_mutex_lock, (GMutex *));
  real_g_mutex_lock (mutex);
  __tsan_acquire (mutex);
}

gboolean
g_mutex_trylock (GMutex *mutex)
{
  REAL (gboolean, g_mutex_trylock, (GMutex *));
  gboolean locked = real_g_mutex_trylock (mutex);
  if (locked)
    __tsan_acquire (mutex);
  return locked;
}

void
g_mutex_unlock (GMutex *mutex)
{
  REAL (void, g_mutex_unlock, (GMutex *));
  __tsan_release (mutex);
  real_g_mutex_unlock (mutex);
}

/* GRecMutex and GRWLock are pthread locks TSan sees, but GLib allocates
 * them at init or first use and publishes the pointer with its own
 * atomics: the thread that locks next would read the allocation unordered.
 * Init releases, and acquiring before the real lock orders it after the
 * init or the previous unlock. */
void
g_rec_mutex_init (GRecMutex *rec_mutex)
{
  REAL (void, g_rec_mutex_init, (GRecMutex *));
  real_g_rec_mutex_init (rec_mutex);
  __tsan_release (rec_mutex);
}

void
g_rw_lock_init (GRWLock *rw_lock)
{
  REAL (void, g_rw_lock_init, (GRWLock *));
  real_g_rw_lock_init (rw_lock);
  __tsan_release (rw_lock);
}

void
g_rec_mutex_lock (GRecMutex *rec_mutex)
{
  REAL (void, g_rec_mutex_lock, (GRecMutex *));
  __tsan_acquire (rec_mutex);
  real_g_rec_mutex_lock (rec_mutex);
}

gboolean
g_rec_mutex_trylock (GRecMutex *rec_mutex)
{
  REAL (gboolean, g_rec_mutex_trylock, (GRecMutex *));
  __tsan_acquire (rec_mutex);
  return real_g_rec_mutex_trylock (rec_mutex);
}

void
g_rec_mutex_unlock (GRecMutex *rec_mutex)
{
  REAL (void, g_rec_mutex_unlock, (GRecMutex *));
  __tsan_release (rec_mutex);
  real_g_rec_mutex_unlock (rec_mutex);
}

void
g_rw_lock_writer_lock (GRWLock *rw_lock)
{
  REAL (void, g_rw_lock_writer_lock, (GRWLock *));
  __tsan_acquire (rw_lock);
  real_g_rw_lock_writer_lock (rw_lock);
}

void
g_rw_lock_writer_unlock (GRWLock *rw_lock)
{
  REAL (void, g_rw_lock_writer_unlock, (GRWLock *));
  __tsan_release (rw_lock);
  real_g_rw_lock_writer_unlock (rw_lock);
}

void
g_rw_lock_reader_lock (GRWLock *rw_lock)
{
  REAL (void, g_rw_lock_reader_lock, (GRWLock *));
  __tsan_acquire (rw_lock);
  real_g_rw_lock_reader_lock (rw_lock);
}

void
g_rw_lock_reader_unlock (GRWLock *rw_lock)
{
  REAL (void, g_rw_lock_reader_unlock, (GRWLock *));
  __tsan_release (rw_lock);
  real_g_rw_lock_reader_unlock (rw_lock);
}

void
g_cond_wait (GCond *cond, GMutex *mutex)
{
  REAL (void, g_cond_wait, (GCond *, GMutex *));
  __tsan_release (mutex);
  real_g_cond_wait (cond, mutex);
  __tsan_acquire (mutex);
  __tsan_acquire (cond);
}

gboolean
g_cond_wait_until (GCond *cond, GMutex *mutex, gint64 end_time)
{
  REAL (gboolean, g_cond_wait_until, (GCond *, GMutex *, gint64));
  __tsan_release (mutex);
  gboolean signalled = real_g_cond_wait_until (cond, mutex, end_time);
  __tsan_acquire (mutex);
  __tsan_acquire (cond);
  return signalled;
}

void
g_cond_signal (GCond *cond)
{
  REAL (void, g_cond_signal, (GCond *));
  __tsan_release (cond);
  real_g_cond_signal (cond);
}

void
g_cond_broadcast (GCond *cond)
{
  REAL (void, g_cond_broadcast, (GCond *));
  __tsan_release (cond);
  real_g_cond_broadcast (cond);
}

/* g_once_init_enter()'s fast path is an inline atomic load of @location;
 * the slow path and g_once_init_leave() are these functions */
gboolean (g_once_init_enter) (volatile void *location)
{
  REAL (gboolean, g_once_init_enter, (volatile void *));
  gboolean must_init = real_g_once_init_enter (location);
  if (!must_init)
    __tsan_acquire ((void *)location);
  return must_init;
}

void (g_once_init_leave) (volatile void *location, gsize result)
{
  REAL (void, g_once_init_leave, (volatile void *, gsize));
  __tsan_release ((void *)location);
  real_g_once_init_leave (location, result);
}

void
g_bit_lock (volatile gint *address, gint lock_bit)
{
  REAL (void, g_bit_lock, (volatile gint *, gint));
  real_g_bit_lock (address, lock_bit);
  __tsan_acquire ((void *)address);
}

void
g_bit_unlock (volatile gint *address, gint lock_bit)
{
  REAL (void, g_bit_unlock, (volatile gint *, gint));
  __tsan_release ((void *)address);
  real_g_bit_unlock (address, lock_bit);
}

void (g_pointer_bit_lock) (volatile void *address, gint lock_bit)
{
  REAL (void, g_pointer_bit_lock, (volatile void *, gint));
  real_g_pointer_bit_lock (address, lock_bit);
  __tsan_acquire ((void *)address);
}

void (g_pointer_bit_unlock) (volatile void *address, gint lock_bit)
{
  REAL (void, g_pointer_bit_unlock, (volatile void *, gint));
  __tsan_release ((void *)address);
  real_g_pointer_bit_unlock (address, lock_bit);
}

void
g_object_unref (gpointer object)
{
  REAL (void, g_object_unref, (gpointer));
  __tsan_release (object);
  __tsan_acquire (object);
  real_g_object_unref (object);
}

void
gst_mini_object_unref (GstMiniObject *mini_object)
{
  REAL (void, gst_mini_object_unref, (GstMiniObject *));
  __tsan_release (mini_object);
  __tsan_acquire (mini_object);
  real_gst_mini_object_unref (mini_object);
}

/* GAsyncQueue (GstHarness's buffer and event queues): what was pushed is
 * seen by whoever pops it */
#define QUEUE_PUSH(name, params, args)                                                             \
  void name params                                                                                 \
  {                                                                                                \
    REAL (void, name, params);                                                                     \
    __tsan_release (queue);                                                                        \
    real_##name args;                                                                              \
  }
#define QUEUE_POP(name, params, args)                                                              \
  gpointer name params                                                                             \
  {                                                                                                \
    REAL (gpointer, name, params);                                                                 \
    gpointer item = real_##name args;                                                              \
    if (item)                                                                                      \
      __tsan_acquire (queue);                                                                      \
    return item;                                                                                   \
  }

QUEUE_PUSH (g_async_queue_push, (GAsyncQueue * queue, gpointer data), (queue, data))
QUEUE_PUSH (g_async_queue_push_unlocked, (GAsyncQueue * queue, gpointer data), (queue, data))
QUEUE_PUSH (g_async_queue_push_front, (GAsyncQueue * queue, gpointer data), (queue, data))
QUEUE_POP (g_async_queue_pop, (GAsyncQueue * queue), (queue))
QUEUE_POP (g_async_queue_pop_unlocked, (GAsyncQueue * queue), (queue))
QUEUE_POP (g_async_queue_try_pop, (GAsyncQueue * queue), (queue))
QUEUE_POP (g_async_queue_try_pop_unlocked, (GAsyncQueue * queue), (queue))
QUEUE_POP (g_async_queue_timeout_pop, (GAsyncQueue * queue, guint64 timeout), (queue, timeout))
QUEUE_POP (
    g_async_queue_timeout_pop_unlocked, (GAsyncQueue * queue, guint64 timeout), (queue, timeout))

/* GstBus: a message posted by a streaming thread (an error with its
 * GError, EOS) is handed over through a lock-free queue */
gboolean
gst_bus_post (GstBus *bus, GstMessage *message)
{
  REAL (gboolean, gst_bus_post, (GstBus *, GstMessage *));
  __tsan_release (bus);
  return real_gst_bus_post (bus, message);
}

GstMessage *
gst_bus_timed_pop_filtered (GstBus *bus, GstClockTime timeout, GstMessageType types)
{
  REAL (GstMessage *, gst_bus_timed_pop_filtered, (GstBus *, GstClockTime, GstMessageType));
  GstMessage *message = real_gst_bus_timed_pop_filtered (bus, timeout, types);
  if (message)
    __tsan_acquire (bus);
  return message;
}

GstMessage *
gst_bus_pop (GstBus *bus)
{
  REAL (GstMessage *, gst_bus_pop, (GstBus *));
  GstMessage *message = real_gst_bus_pop (bus);
  if (message)
    __tsan_acquire (bus);
  return message;
}

GstMessage *
gst_bus_timed_pop (GstBus *bus, GstClockTime timeout)
{
  REAL (GstMessage *, gst_bus_timed_pop, (GstBus *, GstClockTime));
  GstMessage *message = real_gst_bus_timed_pop (bus, timeout);
  if (message)
    __tsan_acquire (bus);
  return message;
}

GstMessage *
gst_bus_pop_filtered (GstBus *bus, GstMessageType types)
{
  REAL (GstMessage *, gst_bus_pop_filtered, (GstBus *, GstMessageType));
  GstMessage *message = real_gst_bus_pop_filtered (bus, types);
  if (message)
    __tsan_acquire (bus);
  return message;
}
