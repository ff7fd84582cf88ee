/* Allocation counting for the "no allocation in steady state" tests.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Included by one test binary each: its malloc family wraps glibc's, so
 * every allocation made by libmm, GLib and OpenBLAS is counted while
 * `counting` is set.  Sanitizers and valgrind bring their own malloc: there
 * COUNT_ALLOCS is 0 (sanitizers) or the cases are skipped (valgrind, see
 * tests/lib/meson.build).
 */
#ifndef MM_ALLOC_COUNT_H
#define MM_ALLOC_COUNT_H

#include <glib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)                            \
    || __has_feature(memory_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#if !defined(COUNT_ALLOCS) && defined(__GLIBC__)
#define COUNT_ALLOCS 1
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 0
#endif

static volatile gint counting;
static volatile gint n_allocs;

#if COUNT_ALLOCS
extern void *__libc_malloc (size_t size);
extern void *__libc_calloc (size_t n, size_t size);
extern void *__libc_realloc (void *p, size_t size);

void *
malloc (size_t size)
{
  if (g_atomic_int_get (&counting))
    g_atomic_int_inc (&n_allocs);
  return __libc_malloc (size);
}

void *
calloc (size_t n, size_t size)
{
  if (g_atomic_int_get (&counting))
    g_atomic_int_inc (&n_allocs);
  return __libc_calloc (n, size);
}

void *
realloc (void *p, size_t size)
{
  if (g_atomic_int_get (&counting))
    g_atomic_int_inc (&n_allocs);
  return __libc_realloc (p, size);
}
#endif

static inline void
allocs_begin (void)
{
  g_atomic_int_set (&n_allocs, 0);
  g_atomic_int_set (&counting, 1);
}

/* Returns the number of allocations since allocs_begin(). */
static inline int
allocs_end (void)
{
  g_atomic_int_set (&counting, 0);
  return g_atomic_int_get (&n_allocs);
}

#endif
