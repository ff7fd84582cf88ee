/* libmm: the one file that talks to BLAS.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * OpenBLAS is loaded with dlopen() rather than linked, for one reason:
 * OpenBLAS picks its CPU kernel in a library constructor from the
 * OPENBLAS_CORETYPE environment variable.  Debian 12's OpenBLAS 0.3.21 does
 * not recognise recent CPUs (Sapphire Rapids, Zen 4) and falls back to its
 * generic "Prescott" kernel, about five times slower for sgemm.  Loading it
 * ourselves lets us set OPENBLAS_CORETYPE first, from the CPU's features,
 * when the user has not set it.  MM_BLAS_CORETYPE=auto|none|NAME controls
 * this (none: leave OpenBLAS's own choice).  If OpenBLAS cannot be loaded,
 * libmm uses its plain C loops and warns once.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <cpuid.h>

#include "ops.h"

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*SgemmFn) (int order, int ta, int tb, int m, int n, int k, float alpha,
    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*SetThreadsFn) (int n);
typedef char *(*CoreNameFn) (void);

static SgemmFn blas_sgemm;
static SetThreadsFn blas_set_threads;
static CoreNameFn blas_core_name;
static gsize blas_initialized;

/* The best kernel OpenBLAS 0.3.21 has for this CPU, or NULL to keep its own
 * choice.  Only AVX-512 CPUs are affected by the fallback. */
static const char *
best_coretype (void)
{
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid_count (7, 0, &a, &b, &c, &d))
    return NULL;
  gboolean avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30))
      && (b & (1u << 31));      /* F, DQ, BW, VL */
  if (!avx512)
    return NULL;
  /* the OS must save the ZMM state (XCR0 bits 1,2,5,6,7) */
  unsigned xlo, xhi;
  __asm__ volatile ("xgetbv":"=a" (xlo), "=d" (xhi):"c" (0));
  if ((xlo & 0xe6) != 0xe6)
    return NULL;
  unsigned a1 = 0, b1, c1, d1;
  __get_cpuid_count (7, 1, &a1, &b1, &c1, &d1);
  return (a1 & (1u << 5)) ? "COOPERLAKE" : "SKYLAKEX";      /* AVX512_BF16 */
#else
  return NULL;
#endif
}

static void
blas_load (void)
{
  const char *mode = g_getenv ("MM_BLAS_CORETYPE");
  if (!g_getenv ("OPENBLAS_CORETYPE") && g_strcmp0 (mode, "none") != 0) {
    const char *core = (mode && g_strcmp0 (mode, "auto") != 0) ? mode : best_coretype ();
    if (core)
      g_setenv ("OPENBLAS_CORETYPE", core, FALSE);
  }
  static const char *const names[] = { "libopenblas.so.0", "libopenblas.so", NULL };
  void *handle = NULL;
  for (int i = 0; names[i] && !handle; i++)
    handle = dlopen (names[i], RTLD_NOW | RTLD_LOCAL);
  if (handle) {
    blas_sgemm = (SgemmFn) dlsym (handle, "cblas_sgemm");
    blas_set_threads = (SetThreadsFn) dlsym (handle, "openblas_set_num_threads");
    blas_core_name = (CoreNameFn) dlsym (handle, "openblas_get_corename");
  }
  if (!blas_sgemm)
    g_warning ("libmm: OpenBLAS (libopenblas.so.0) not found; using slow plain C "
        "loops. Install libopenblas0.");

  const char *threads = g_getenv ("MM_THREADS");
  int n = threads ? atoi (threads) : 1;
  if (blas_set_threads)
    blas_set_threads (n > 0 ? n : 1);
}

void
mm_blas_init (void)
{
  if (g_once_init_enter (&blas_initialized)) {
    blas_load ();
    g_once_init_leave (&blas_initialized, 1);
  }
}

void
mm_blas_set_threads (int n)
{
  mm_blas_init ();
  if (blas_set_threads && n > 0)
    blas_set_threads (n);
}

const char *
mm_blas_core_name (void)
{
  mm_blas_init ();
  if (!blas_sgemm || mm_ops_get_reference ())
    return "reference";
  return blas_core_name ? blas_core_name () : "unknown";
}

static void
sgemm_reference (gboolean ta, gboolean tb, int m, int n, int k, float alpha,
    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double acc = 0.0;
      for (int p = 0; p < k; p++) {
        float av = ta ? a[p * lda + i] : a[i * lda + p];
        float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        acc += (double) av * bv;
      }
      float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = alpha * (float) acc + prev;
    }
}

void
mm_sgemm (gboolean trans_a, gboolean trans_b, int m, int n, int k, float alpha,
    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  mm_blas_init ();
  if (m <= 0 || n <= 0)
    return;
  if (k <= 0) {
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++)
        c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  if (!blas_sgemm || mm_ops_get_reference ()) {
    sgemm_reference (trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  blas_sgemm (ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k,
      alpha, a, lda, b, ldb, beta, c, ldc);
}
