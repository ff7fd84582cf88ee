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
 * this (none: leave OpenBLAS's own choice).  When that cannot work (OpenBLAS
 * was already loaded, e.g. by numpy in a Python process, or the environment
 * forces the generic kernel) and the kernel in use is the generic Prescott
 * one on an AVX-512 CPU, libmm warns once with the exact fix.  If OpenBLAS
 * cannot be loaded, libmm uses its plain C loops and warns once.
 *
 * Which kernel, from CPUID: leaf 7 EBX bits 16, 17, 30, 31 (AVX512 F, DQ,
 * BW, VL, what OpenBLAS's SkylakeX kernels use) and the OS saving ZMM state
 * (XGETBV XCR0 bits 1, 2, 5, 6, 7) give SKYLAKEX; AVX512_BF16 (leaf 7
 * sub-leaf 1 EAX bit 5) on top gives COOPERLAKE.  These are the bits Intel
 * Skylake-SP/Cascade Lake (SKYLAKEX), Cooper Lake, Ice Lake, Sapphire Rapids
 * (COOPERLAKE) and AMD Zen 4 (COOPERLAKE) report; CPUs without AVX-512 keep
 * OpenBLAS's own choice (Haswell/Zen kernels, which 0.3.21 does detect).
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <cpuid.h>

#include "clones.h"
#include "ops.h"
#include "linear-packed.h"
#include "act-vec.h"
#include "mm-private.h"

enum
{
  ROW_MAJOR = 101,
  NO_TRANS = 111,
  TRANS = 112
};

typedef void (*SgemmFn) (int order, int ta, int tb, int m, int n, int k, float alpha,
    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*SetThreadsFn) (int n);
typedef char *(*CoreNameFn) (void);

static SgemmFn blas_sgemm;
static SetThreadsFn blas_set_threads;
static CoreNameFn blas_core_name;
static gsize blas_initialized;
static gint blas_threads = 1; /* what libmm last told OpenBLAS */

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
      && (b & (1u << 31)); /* F, DQ, BW, VL */
  if (!avx512)
    return NULL;
  /* the OS must save the ZMM state (XCR0 bits 1,2,5,6,7) */
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  if ((xlo & 0xe6) != 0xe6)
    return NULL;
  unsigned a1 = 0, b1, c1, d1;
  __get_cpuid_count (7, 1, &a1, &b1, &c1, &d1);
  return (a1 & (1u << 5)) ? "COOPERLAKE" : "SKYLAKEX"; /* AVX512_BF16 */
#else
  return NULL;
#endif
}

/* OpenBLAS's generic x86-64 kernel, what 0.3.21 falls back to on CPUs it
 * does not know */
static gboolean
is_generic_core (const char *name)
{
  return name && g_ascii_strcasecmp (name, "Prescott") == 0;
}

/* Warns once when the kernel in use is the generic one although the CPU
 * has AVX-512, naming the cause and the exact fix. */
static void
check_core (gboolean preloaded, const char *best, const char *forced_by)
{
  const char *core = blas_core_name ? blas_core_name () : NULL;
  if (!best || !is_generic_core (core))
    return;
  const char *user = g_getenv ("OPENBLAS_CORETYPE");
  if (preloaded)
    g_warning ("libmm: OpenBLAS was already loaded when libmm started (e.g. by numpy) "
               "and runs its generic %s kernel, about 5x slower for sgemm on this AVX-512 CPU. "
               "Fix: start the program with OPENBLAS_CORETYPE=%s in its environment, or "
               "initialise libmm before the other library loads OpenBLAS.",
        core, best);
  else if (user && g_ascii_strcasecmp (user, best) != 0)
    g_warning ("libmm: %s=%s makes OpenBLAS run its generic %s kernel, about 5x slower "
               "for sgemm on this AVX-512 CPU. Fix: unset %s (libmm then selects %s).",
        forced_by, g_strcmp0 (forced_by, "MM_BLAS_CORETYPE") == 0 ? g_getenv (forced_by) : user,
        core, forced_by, best);
  else
    g_warning ("libmm: OpenBLAS chose its generic %s kernel, about 5x slower for sgemm "
               "on this AVX-512 CPU. Fix: set OPENBLAS_CORETYPE=%s (and do not set "
               "MM_BLAS_CORETYPE=none).",
        core, best);
}

/* Which variable chose the kernel, for check_core's message. */
static const char *coretype_forced_by = "OPENBLAS_CORETYPE";

/* Sets OPENBLAS_CORETYPE when libmm is loaded, before OpenBLAS is (blas_load
 * dlopens it at the first model open).  Done in a constructor because
 * setenv is not thread-safe: at library load the application has rarely
 * started its streaming threads yet, at the first model open it has. */
__attribute__ ((constructor)) static void
set_coretype (void)
{
  const char *mode = g_getenv ("MM_BLAS_CORETYPE");
  if (g_getenv ("OPENBLAS_CORETYPE") || g_strcmp0 (mode, "none") == 0)
    return;
  gboolean named = mode && g_strcmp0 (mode, "auto") != 0;
  const char *core = named ? mode : best_coretype ();
  if (named)
    coretype_forced_by = "MM_BLAS_CORETYPE";
  if (core)
    g_setenv ("OPENBLAS_CORETYPE", core, FALSE);
}

static void
blas_load (void)
{
  const char *best = best_coretype ();
  const char *forced_by = coretype_forced_by;
  static const char *const names[] = { "libopenblas.so.0", "libopenblas.so", NULL };
  void *handle = NULL;
  gboolean preloaded = FALSE;
  /* already in the process: its constructor ran, OPENBLAS_CORETYPE above
   * came too late */
  for (int i = 0; names[i] && !handle; i++)
    handle = dlopen (names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  preloaded = handle != NULL;
  for (int i = 0; names[i] && !handle; i++)
    handle = dlopen (names[i], RTLD_NOW | RTLD_LOCAL);
  if (handle) {
    blas_sgemm = (SgemmFn)dlsym (handle, "cblas_sgemm");
    blas_set_threads = (SetThreadsFn)dlsym (handle, "openblas_set_num_threads");
    blas_core_name = (CoreNameFn)dlsym (handle, "openblas_get_corename");
  }
  if (!blas_sgemm)
    g_warning ("libmm: OpenBLAS (libopenblas.so.0) not found; using slow plain C "
               "loops. Install libopenblas0.");
  else
    check_core (preloaded, best, forced_by);

  const char *threads = g_getenv ("MM_THREADS");
  int n = threads ? atoi (threads) : 1;
  if (blas_set_threads)
    blas_set_threads (n > 0 ? n : 1);
  g_atomic_int_set (&blas_threads, n > 0 ? n : 1);
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
  if (blas_set_threads && n > 0) {
    blas_set_threads (n);
    g_atomic_int_set (&blas_threads, n);
  }
}

int
mm_blas_get_threads (void)
{
  mm_blas_init ();
  return blas_sgemm ? g_atomic_int_get (&blas_threads) : 1;
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
sgemm_reference (gboolean ta, gboolean tb, int m, int n, int k, float alpha, const float *a,
    int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double acc = 0.0;
      for (int p = 0; p < k; p++) {
        float av = ta ? a[p * lda + i] : a[i * lda + p];
        float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        acc += (double)av * bv;
      }
      float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = alpha * (float)acc + prev;
    }
}

/* ------------------------------------------------------------------ */
/* Small GEMMs                                                         */

/* OpenBLAS 0.3.21 sends every GEMM with M*N*K <= 100^3 to its "small
 * matrix" kernels on SkylakeX/Cooperlake, and those call malloc() on each
 * call (sgemm_small_kernel_b0_nn), which breaks libmm's promise that a run
 * never allocates.  Such GEMMs (the bundled model's convolutions, attention
 * per head, short linears) come here instead: a register-blocked kernel on
 * a packed panel of B that lives on the stack.  Same threshold as
 * OpenBLAS's, so it never sees a small GEMM. */
#define SMALL_GEMM_MNK 1e6

#define SMALL_CLONES MM_TARGET_CLONES
#if defined(__GNUC__)
#define SMALL_INLINE static inline __attribute__ ((always_inline))
#else
#define SMALL_INLINE static inline
#endif

/* 16 floats, any alignment: one AVX-512 register, two AVX2, four SSE */
typedef float v16f __attribute__ ((vector_size (64), aligned (4), may_alias));

#define SG_NR 32  /* vector columns per micro-tile (2 x v16f) */
#define SG_KC 128 /* depth per packed panel: 16 KB, stays in L1 */

/* C (m, n) = alpha X Y + beta C with X = op(A) read in place (element
 * (i, p) at x[i * xr + p * xc]) and Y = op(B) in panels of 32 (or 16)
 * columns, read in place when contiguous, else packed on the stack.  A
 * micro-tile keeps 8 (or 4, or 1) rows of C by 32 (or 16) columns in
 * vector registers over a panel's depth. */
typedef struct
{
  const float *x;
  gsize xr, xc;
  const float *y;
  int ldy;
  gboolean y_trans; /* Y element (p, j) at y[j * ldy + p], else y[p * ldy + j] */
  float *c;
  gsize cr, cc; /* C element of tile (r, j) at c[r * cr + j * cc] */
  float alpha, beta;
} SmallGemm;

/* Y rows p0..p0+kc, columns j0..j0+nr: in place when contiguous and full,
 * else packed into bp (kc, SG_NR), zero padded.  Returns the panel and its
 * row stride. */
SMALL_INLINE const float *
panel_y (
    float *restrict bp, const SmallGemm *g, int p0, int kc, int j0, int nr, int width, gsize *ys)
{
  if (!g->y_trans && nr == width) {
    *ys = g->ldy;
    return g->y + (gsize)p0 * g->ldy + j0;
  }
  *ys = width;
  if (nr < width)
    memset (bp, 0, sizeof (float) * kc * width);
  if (!g->y_trans)
    for (int p = 0; p < kc; p++)
      memcpy (bp + p * width, g->y + (gsize)(p0 + p) * g->ldy + j0, sizeof (float) * nr);
  else
    for (int j = 0; j < nr; j++) {
      const float *yj = g->y + (gsize)(j0 + j) * g->ldy + p0;
      for (int p = 0; p < kc; p++)
        bp[p * width + j] = yj[p];
    }
  return bp;
}

/* C element (i0 + r, j0 + j), j < nr, from t (32 floats) = alpha acc:
 * + beta C on the first panel, += on the others.  beta == 0 never reads C
 * (it may be uninitialised). */
SMALL_INLINE void
store_row (const SmallGemm *g, int i, int j0, int nr, int width, v16f t0, v16f t1, gboolean first)
{
  float *cr = g->c + (gsize)i * g->cr + (gsize)j0 * g->cc;
  float beta = g->beta;
  if (width == 16 && nr == 16 && g->cc == 1) {
    v16f *c0 = (v16f *)cr;
    if (!first)
      *c0 += t0;
    else if (beta == 0.0f)
      *c0 = t0;
    else
      *c0 = t0 + beta * *c0;
    return;
  }
  if (nr == SG_NR && g->cc == 1) {
    v16f *c0 = (v16f *)cr, *c1 = (v16f *)(cr + 16);
    if (!first) {
      *c0 += t0;
      *c1 += t1;
    } else if (beta == 0.0f) {
      *c0 = t0;
      *c1 = t1;
    } else {
      *c0 = t0 + beta * *c0;
      *c1 = t1 + beta * *c1;
    }
    return;
  }
  float tf[SG_NR];
  memcpy (tf, &t0, sizeof t0);
  memcpy (tf + 16, &t1, sizeof t1);
  gsize cc = g->cc;
  for (int j = 0; j < nr; j++) {
    float *cj = cr + j * cc;
    *cj = !first ? *cj + tf[j] : (beta == 0.0f ? tf[j] : tf[j] + beta * *cj);
  }
}

/* C rows i0..i0+MR, columns j0..j0+nr of alpha X Y for one panel of NV
 * vectors (16 NV columns): the accumulators are locals so they stay in
 * registers */
#define DEFINE_TILE(MR, NV)                                                                        \
  SMALL_INLINE void tile_##MR##_##NV (const SmallGemm *g, const float *x, const float *yp,         \
      gsize ys, int kc, int i0, int j0, int nr, gboolean first)                                    \
  {                                                                                                \
    v16f a0[MR], a1[MR], z = { 0 };                                                                \
    gsize xr = g->xr, xc = g->xc;                                                                  \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a0[r] = a1[r] = z;                       \
    for (int p = 0; p < kc; p++) {                                                                 \
      v16f b0 = *(const v16f *)(yp + p * ys);                                                      \
      v16f b1 = z;                                                                                 \
      if (NV == 2)                                                                                 \
        b1 = *(const v16f *)(yp + p * ys + 16);                                                    \
      _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                        \
      {                                                                                            \
        float av = x[r * xr + p * xc];                                                             \
        a0[r] += av * b0;                                                                          \
        if (NV == 2)                                                                               \
          a1[r] += av * b1;                                                                        \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                          \
        store_row (g, i0 + r, j0, nr, 16 * NV, a0[r] * g->alpha, a1[r] * g->alpha, first);         \
  }
DEFINE_TILE (8, 2)
DEFINE_TILE (4, 2)
DEFINE_TILE (1, 2)
DEFINE_TILE (8, 1)
DEFINE_TILE (4, 1)
DEFINE_TILE (1, 1)

/* One panel of width 16 NV: all row tiles; wide: 8-row tiles (16
 * accumulators, for 32 vector registers), else 4-row tiles */
#define PANEL_ROWS(NV)                                                                             \
  do {                                                                                             \
    int i0 = 0;                                                                                    \
    if (wide)                                                                                      \
      for (; i0 + 8 <= m; i0 += 8)                                                                 \
        tile_8_##NV (g, x + i0 * g->xr, yp, ys, kc, i0, j0, nr, first);                            \
    for (; i0 + 4 <= m; i0 += 4)                                                                   \
      tile_4_##NV (g, x + i0 * g->xr, yp, ys, kc, i0, j0, nr, first);                              \
    for (; i0 < m; i0++)                                                                           \
      tile_1_##NV (g, x + i0 * g->xr, yp, ys, kc, i0, j0, nr, first);                              \
  } while (0)

/* T (m, n) = X Y: panels of 32 columns, the last one 16 wide when that
 * covers it (narrow outputs waste no lanes on padding) */
static SMALL_CLONES void
small_gemm_run (const SmallGemm *g, int m, int n, int k, gboolean wide)
{
  float bp[SG_KC * SG_NR] __attribute__ ((aligned (64)));
  for (int p0 = 0; p0 < k; p0 += SG_KC) {
    int kc = MIN (SG_KC, k - p0);
    gboolean first = p0 == 0;
    const float *x = g->x + p0 * g->xc;
    for (int j0 = 0; j0 < n; j0 += SG_NR) {
      int nr = MIN (SG_NR, n - j0);
      gsize ys;
      if (nr <= 16) {
        const float *yp = panel_y (bp, g, p0, kc, j0, nr, 16, &ys);
        PANEL_ROWS (1);
      } else {
        const float *yp = panel_y (bp, g, p0, kc, j0, nr, SG_NR, &ys);
        PANEL_ROWS (2);
      }
    }
  }
}

gboolean
mm_cpu_has_avx512 (void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  static gsize cached; /* 0 unset, 1 no, 2 yes; set once, read by any thread */
  if (g_once_init_enter (&cached))
    /* the features of the x86-64-v4 clones that use the wide tiles */
    g_once_init_leave (&cached,
        __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw")
                && __builtin_cpu_supports ("avx512dq") && __builtin_cpu_supports ("avx512vl")
                && __builtin_cpu_supports ("avx512cd")
            ? 2
            : 1);
  return cached == 2;
#else
  return FALSE;
#endif
}

static void
sgemm_small (gboolean ta, gboolean tb, int m, int n, int k, float alpha, const float *a, int lda,
    const float *b, int ldb, float beta, float *c, int ldc)
{
  SmallGemm g = { .x = a,
    .xr = ta ? 1 : (gsize)lda,
    .xc = ta ? (gsize)lda : 1,
    .y = b,
    .ldy = ldb,
    .y_trans = tb,
    .c = c,
    .cr = ldc,
    .cc = 1,
    .alpha = alpha,
    .beta = beta };
  small_gemm_run (&g, m, n, k, mm_cpu_has_avx512 ());
}

void
mm_sgemm (gboolean trans_a, gboolean trans_b, int m, int n, int k, float alpha, const float *a,
    int lda, const float *b, int ldb, float beta, float *c, int ldc)
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
  if ((double)m * n * k <= SMALL_GEMM_MNK) {
    sgemm_small (trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  blas_sgemm (ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha, a,
      lda, b, ldb, beta, c, ldc);
}

/* ------------------------------------------------------------------ */
/* Linears over packed weights (linear-packed.h)                       */

#define LP_NR 32

gsize
mm_linear_packed_bytes (int d_in, int d_out)
{
  gsize panels = ((gsize)MAX (d_out, 0) + LP_NR - 1) / LP_NR;
  return (panels * LP_NR * (gsize)MAX (d_in, 0) + panels * LP_NR) * sizeof (float) + 64;
}

void
mm_linear_packed_clear (MmLinearPacked *l)
{
  g_free (l->packed);
  g_free (l->bias);
  memset (l, 0, sizeof *l);
}

gboolean
mm_linear_packed_init (MmLinearPacked *l, const float *w, const float *b, int d_in, int d_out,
    const char *what, GError **error)
{
  memset (l, 0, sizeof *l);
  if (d_in <= 0 || d_out <= 0) {
    g_set_error (
        error, MM_ERROR, MM_ERROR_FORMAT, "%s: bad linear shape %d -> %d", what, d_in, d_out);
    return FALSE;
  }
  int panels = (d_out + LP_NR - 1) / LP_NR;
  gsize n = (gsize)panels * LP_NR * d_in;
  l->packed = g_try_malloc (n * sizeof (float)); /* glib's malloc: 16-byte aligned at least */
  l->bias = g_try_new0 (float, (gsize)panels *LP_NR);
  if (!l->packed || !l->bias) {
    mm_linear_packed_clear (l);
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: cannot allocate %" G_GSIZE_FORMAT " MB of packed weights", what,
        (n * sizeof (float)) >> 20);
    return FALSE;
  }
  l->d_in = d_in;
  l->d_out = d_out;
  l->panels = panels;
  for (int p = 0; p < panels; p++)
    for (int k = 0; k < d_in; k++)
      for (int j = 0; j < LP_NR; j++) {
        int o = p * LP_NR + j;
        l->packed[((gsize)p * d_in + k) * LP_NR + j] = o < d_out ? w[(gsize)o * d_in + k] : 0.0f;
      }
  if (b)
    memcpy (l->bias, b, sizeof (float) * d_out);
  return TRUE;
}

/* rows r0..r0+MR of one panel: acc over k, then bias, residual, act */
#define DEFINE_LP_TILE(MR, PF)                                                                     \
  SMALL_INLINE void lp_tile_##MR##_##PF (const float *x, int d_in, const float *panel,             \
      const float *next, const float *bias, float *y, const float *res, int d_out, int j0,         \
      const MmAct *act)                                                                            \
  {                                                                                                \
    v16f a0[MR], a1[MR], z = { 0 };                                                                \
    _Pragma ("GCC unroll 16") for (int r = 0; r < MR; r++) a0[r] = a1[r] = z;                      \
    for (int k = 0; k < d_in; k++) {                                                               \
      const float *bp = panel + (gsize)k * LP_NR;                                                  \
      if (PF) {                                                                                    \
        __builtin_prefetch (next + (gsize)k * LP_NR, 0, 3);                                        \
        __builtin_prefetch (next + (gsize)k * LP_NR + 16, 0, 3);                                   \
      }                                                                                            \
      v16f b0 = *(const v16f *)bp, b1 = *(const v16f *)(bp + 16);                                  \
      _Pragma ("GCC unroll 16") for (int r = 0; r < MR; r++)                                       \
      {                                                                                            \
        float av = x[(gsize)r * d_in + k];                                                         \
        a0[r] += av * b0;                                                                          \
        a1[r] += av * b1;                                                                          \
      }                                                                                            \
    }                                                                                              \
    v16f s0 = *(const v16f *)bias, s1 = *(const v16f *)(bias + 16);                                \
    int nr = MIN (LP_NR, d_out - j0);                                                              \
    _Pragma ("GCC unroll 16") for (int r = 0; r < MR; r++)                                         \
    {                                                                                              \
      V16 o0 = a0[r] + s0, o1 = a1[r] + s1;                                                        \
      float *yr = y + (gsize)r * d_out + j0;                                                       \
      if (res) {                                                                                   \
        const float *rr = res + (gsize)r * d_out + j0;                                             \
        if (nr == LP_NR) {                                                                         \
          o0 += *(const v16f *)rr;                                                                 \
          o1 += *(const v16f *)(rr + 16);                                                          \
        } else {                                                                                   \
          float t[LP_NR] = { 0 };                                                                  \
          memcpy (t, rr, nr * sizeof (float));                                                     \
          o0 += *(const v16f *)t;                                                                  \
          o1 += *(const v16f *)(t + 16);                                                           \
        }                                                                                          \
      }                                                                                            \
      if (act) {                                                                                   \
        o0 = v16_act (o0, act);                                                                    \
        o1 = v16_act (o1, act);                                                                    \
      }                                                                                            \
      if (nr == LP_NR) {                                                                           \
        *(v16f *)yr = o0;                                                                          \
        *(v16f *)(yr + 16) = o1;                                                                   \
      } else {                                                                                     \
        float t[LP_NR];                                                                            \
        *(v16f *)t = o0;                                                                           \
        *(v16f *)(t + 16) = o1;                                                                    \
        memcpy (yr, t, nr * sizeof (float));                                                       \
      }                                                                                            \
    }                                                                                              \
  }
DEFINE_LP_TILE (8, 0)
DEFINE_LP_TILE (4, 0)
DEFINE_LP_TILE (1, 0)
DEFINE_LP_TILE (8, 1)
DEFINE_LP_TILE (4, 1)
DEFINE_LP_TILE (1, 1)

static SMALL_CLONES void
linear_packed_run (const MmLinearPacked *l, float *y, const float *x, int n, const float *residual,
    const MmAct *act, gboolean wide)
{
  int d_in = l->d_in, d_out = l->d_out;
  for (int p = 0; p < l->panels; p++) {
    const float *panel = l->packed + (gsize)p * d_in * LP_NR;
    const float *next = p + 1 < l->panels ? panel + (gsize)d_in * LP_NR : NULL;
    const float *bias = l->bias + (gsize)p * LP_NR;
    int j0 = p * LP_NR, i = 0;
    /* the first row tile prefetches the next panel (a loop of its own:
     * a test in the k loop cost register moves) */
#define LP_CALL(MR, PF)                                                                            \
  lp_tile_##MR##_##PF (x + (gsize)i * d_in, d_in, panel, next, bias, y + (gsize)i * d_out,         \
      residual ? residual + (gsize)i * d_out : NULL, d_out, j0, act)
    if (next) {
      if (wide && n >= 8) {
        LP_CALL (8, 1);
        i = 8;
      } else if (n >= 4) {
        LP_CALL (4, 1);
        i = 4;
      } else {
        LP_CALL (1, 1);
        i = 1;
      }
    }
    if (wide)
      for (; i + 8 <= n; i += 8)
        LP_CALL (8, 0);
    for (; i + 4 <= n; i += 4)
      LP_CALL (4, 0);
    for (; i < n; i++)
      LP_CALL (1, 0);
#undef LP_CALL
  }
}

void
mm_linear_packed_run (const MmLinearPacked *l, float *y, const float *x, int n,
    const float *residual, const MmAct *act)
{
  if (n <= 0)
    return;
  if (act && act->kind == MM_ACT_NONE)
    act = NULL;
  linear_packed_run (l, y, x, n, residual, act, mm_cpu_has_avx512 ());
}
