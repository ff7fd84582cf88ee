/* clones.h: the one definition of libmm's function multi-versioning.
 *
 * The distribution's baseline is SSE2.  The vector loops are 3-4x faster
 * with AVX2 + FMA (or AVX-512), so x86-64 GCC builds carry clones of them
 * that the dynamic loader picks for the CPU (GNU ifunc).
 *
 * MM_NO_CLONES (meson -Dclones=false) compiles one baseline version
 * instead.  ThreadSanitizer needs it: an ifunc resolver runs during
 * relocation, before the TSan runtime is initialised, and the
 * instrumented resolver crashes the process before main. */
#ifndef MM_CLONES_H
#define MM_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)          \
    && !defined(MM_NO_CLONES)
#define MM_TARGET_CLONES                                                                           \
  __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MM_TARGET_CLONES
#endif

#endif /* MM_CLONES_H */
