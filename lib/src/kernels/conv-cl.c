/* libmm: channel-last convolution (1-D and 2-D) over weights packed once.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * With x channel-last and its zero padding stored, output position (ho,
 * wo) reads, for kernel row i, the kw c_in floats starting at input
 * position (ho sh + i, wo sw): one contiguous run (per group: kw runs of
 * c_in / groups).  The kernel keeps a tile of MR positions (8 with
 * AVX-512, else 4; positions run across output rows, so small planes
 * still fill a tile) x 32 output channels in vector registers over the
 * whole reduction and applies shift, residual and ReLU on the way out.
 * The 1-D version (audio encoder, first user) took its convs from ~40
 * GFLOP/s by im2col + OpenBLAS to ~100 GFLOP/s with AVX-512.
 */
#include <math.h>
#include <string.h>

#include "clones.h"
#include "conv-cl.h"
#include "act-vec.h"
#include "ops.h"
#include "mm-private.h"

#define NR 32 /* panel width; the last panel of a group may be 16 */

#if defined(__GNUC__) && !defined(__clang__)
#define CL_VECTORIZE                                                                               \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define CL_VECTORIZE
#endif
#define CL_CLONES MM_TARGET_CLONES
#if defined(__GNUC__)
#define CL_INLINE static inline __attribute__ ((always_inline))
#else
#define CL_INLINE static inline
#endif

void
mm_conv_cl_clear (MmConvCl *c)
{
  g_free (c->mem);
  g_free (c->shift);
  memset (c, 0, sizeof *c);
}

#define MAX_PACKED_FLOATS ((gsize)1 << 28) /* 1 GiB */

gboolean
mm_conv_cl_init (MmConvCl *c, const float *w, const float *scale, const float *shift, int c_in,
    int c_out, int kh, int kw, int groups, const char *what, GError **error)
{
  memset (c, 0, sizeof *c);
  if (c_in <= 0 || c_out <= 0 || kh <= 0 || kw <= 0 || groups <= 0 || c_in % groups
      || c_out % groups) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT, "%s: bad conv shape %d -> %d, %dx%d, %d groups",
        what, c_in, c_out, kh, kw, groups);
    return FALSE;
  }
  int cg = c_in / groups, og = c_out / groups, og_pad = og <= 8 ? 8 : (og + 15) / 16 * 16;
  gsize kk = (gsize)kh * kw * cg, n = (gsize)groups * og_pad * kk;
  *c = (MmConvCl){ c_in, c_out, kh, kw, groups, og_pad, NULL, NULL, NULL };
  /* at most 1 GiB: with overcommit a larger g_try_malloc0 would succeed and
   * the packing below would get the process killed instead of an error
   * (depthwise convs pack 16x their weights) */
  if (n <= MAX_PACKED_FLOATS)
    c->mem = g_try_malloc0 (n * sizeof (float) + 63);
  if (c->mem)
    c->shift = g_try_new0 (float, (gsize)groups *og_pad);
  if (!c->mem || !c->shift) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: the packed conv weights would take %" G_GSIZE_FORMAT " MB (at most %u MB)", what,
        n / (1024 * 1024 / sizeof (float)), (guint)(MAX_PACKED_FLOATS / (1024 * 1024 / 4)));
    mm_conv_cl_clear (c);
    return FALSE;
  }
  c->packed = (float *)(((guintptr)c->mem + 63) & ~(guintptr)63);

  /* panel of group g, columns j0..: rows (i, j, ci), W[o][ci][i][j] scale[o] */
  for (int g = 0; g < groups; g++) {
    float *pg = c->packed + (gsize)g * og_pad * kk;
    for (int j0 = 0; j0 < og_pad; j0 += NR) {
      int width = MIN (NR, og_pad - j0);
      float *panel = pg + (gsize)j0 * kk;
      for (int o = j0; o < MIN (og, j0 + width); o++) {
        int oc = g * og + o;
        float sc = scale ? scale[oc] : 1.0f;
        for (int ci = 0; ci < cg; ci++)
          for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
              panel[(((gsize)i * kw + j) * cg + ci) * width + (o - j0)] =
                  w[(((gsize)oc * cg + ci) * kh + i) * kw + j] * sc;
      }
    }
    for (int o = 0; o < og; o++)
      c->shift[(gsize)g * og_pad + o] = shift ? shift[g * og + o] : 0.0f;
  }
  return TRUE;
}

/* Tile of MR positions x (16 NV) channels, nr of them real: position r
 * reads x from xr[r] (its top-left tap), writes yr[r], adds idr[r] when
 * has_id.  The reduction is kh rows of n_runs runs of run floats (one run
 * of kw c_in without groups). */
#define DEFINE_TILE(MR, NV)                                                                        \
  CL_INLINE void tile_##MR##_##NV (float *const *yr, const float *const *xr,                       \
      const float *const *idr, gboolean has_id, gsize x_row, int kh, int n_runs, int run,          \
      int c_in, const float *panel, const float *shift, int nr, gboolean relu, const MmAct *act)   \
  {                                                                                                \
    V16 a0[MR], a1[MR], z = { 0 };                                                                 \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a0[r] = a1[r] = z;                       \
    const float *p = panel;                                                                        \
    for (int i = 0; i < kh; i++) {                                                                 \
      gsize off = (gsize)i * x_row;                                                                \
      for (int q = 0; q < n_runs; q++, off += c_in)                                                \
        for (int j = 0; j < run; j++, p += 16 * NV) {                                              \
          V16 b0 = *(const V16 *)p, b1 = z;                                                        \
          if (NV == 2)                                                                             \
            b1 = *(const V16 *)(p + 16);                                                           \
          _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                    \
          {                                                                                        \
            float av = xr[r][off + j];                                                             \
            a0[r] += av * b0;                                                                      \
            if (NV == 2)                                                                           \
              a1[r] += av * b1;                                                                    \
          }                                                                                        \
        }                                                                                          \
    }                                                                                              \
    V16 s0, s1 = z;                                                                                \
    memcpy (&s0, shift, sizeof s0);                                                                \
    if (NV == 2)                                                                                   \
      memcpy (&s1, shift + 16, sizeof s1);                                                         \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                          \
    {                                                                                              \
      V16 o0 = a0[r] + s0, o1 = a1[r] + s1;                                                        \
      float tf[32];                                                                                \
      if (has_id) {                                                                                \
        V16 i0, i1 = z;                                                                            \
        if (nr == 16 * NV) {                                                                       \
          memcpy (&i0, idr[r], sizeof i0);                                                         \
          if (NV == 2)                                                                             \
            memcpy (&i1, idr[r] + 16, sizeof i1);                                                  \
        } else {                                                                                   \
          memset (tf, 0, sizeof tf);                                                               \
          memcpy (tf, idr[r], nr * sizeof (float));                                                \
          memcpy (&i0, tf, sizeof i0);                                                             \
          memcpy (&i1, tf + 16, sizeof i1);                                                        \
        }                                                                                          \
        o0 += i0;                                                                                  \
        o1 += i1;                                                                                  \
      }                                                                                            \
      if (relu) {                                                                                  \
        o0 = (V16)((V16i)o0 & (o0 > 0.0f));                                                        \
        o1 = (V16)((V16i)o1 & (o1 > 0.0f));                                                        \
      } else if (act) {                                                                            \
        o0 = v16_act (o0, act);                                                                    \
        if (NV == 2)                                                                               \
          o1 = v16_act (o1, act);                                                                  \
      }                                                                                            \
      if (nr == 16 * NV) {                                                                         \
        memcpy (yr[r], &o0, sizeof o0);                                                            \
        if (NV == 2)                                                                               \
          memcpy (yr[r] + 16, &o1, sizeof o1);                                                     \
      } else {                                                                                     \
        memcpy (tf, &o0, sizeof o0);                                                               \
        memcpy (tf + 16, &o1, sizeof o1);                                                          \
        memcpy (yr[r], tf, nr * sizeof (float));                                                   \
      }                                                                                            \
    }                                                                                              \
  }
DEFINE_TILE (8, 2)
DEFINE_TILE (4, 2)
DEFINE_TILE (1, 2)
DEFINE_TILE (8, 1)
DEFINE_TILE (4, 1)
DEFINE_TILE (1, 1)

/* The same for groups of at most 8 output channels (RegNet's group width
 * 8, small audio groups): one 8-wide panel, so a group costs 8 columns,
 * not 16.  The epilogue runs on 16 lanes, the upper 8 zero. */
typedef float V8 __attribute__ ((vector_size (32)));
typedef gint32 V8i __attribute__ ((vector_size (32)));
#define DEFINE_TILE8(MR)                                                                           \
  CL_INLINE void tile8_##MR (float *const *yr, const float *const *xr, const float *const *idr,    \
      gboolean has_id, gsize x_row, int kh, int n_runs, int run, int c_in, const float *panel,     \
      const float *shift, int nr, gboolean relu, const MmAct *act)                                 \
  {                                                                                                \
    V8 a[MR], z = { 0 };                                                                           \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a[r] = z;                                \
    const float *p = panel;                                                                        \
    for (int i = 0; i < kh; i++) {                                                                 \
      gsize off = (gsize)i * x_row;                                                                \
      for (int q = 0; q < n_runs; q++, off += c_in)                                                \
        for (int j = 0; j < run; j++, p += 8) {                                                    \
          V8 b = *(const V8 *)p;                                                                   \
          _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a[r] += xr[r][off + j] * b;        \
        }                                                                                          \
    }                                                                                              \
    V8 s8;                                                                                         \
    memcpy (&s8, shift, sizeof s8); /* shift is padded to og_pad = 8 */                            \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                          \
    {                                                                                              \
      V8 o = a[r] + s8;                                                                            \
      if (has_id) {                                                                                \
        V8 iv = z;                                                                                 \
        memcpy (&iv, idr[r], nr * sizeof (float));                                                 \
        o += iv;                                                                                   \
      }                                                                                            \
      if (relu) {                                                                                  \
        o = (V8)((V8i)o & (o > 0.0f));                                                             \
      } else if (act) {                                                                            \
        float tf[16] = { 0 };                                                                      \
        V16 w;                                                                                     \
        memcpy (tf, &o, sizeof o);                                                                 \
        memcpy (&w, tf, sizeof w);                                                                 \
        w = v16_act (w, act);                                                                      \
        memcpy (tf, &w, sizeof w);                                                                 \
        memcpy (&o, tf, sizeof o);                                                                 \
      }                                                                                            \
      if (nr == 8)                                                                                 \
        memcpy (yr[r], &o, sizeof o);                                                              \
      else                                                                                         \
        memcpy (yr[r], &o, nr * sizeof (float));                                                   \
    }                                                                                              \
  }
DEFINE_TILE8 (8)
DEFINE_TILE8 (4)
DEFINE_TILE8 (1)

#define TILE8_CALL(MR)                                                                             \
  tile8_##MR (yr, xr, idr, has_id, x_row, c->kh, n_runs, run, c->c_in, panel, sh, nr, relu, act)

#define TILE_CALL(MR, NV)                                                                          \
  tile_##MR##_##NV (                                                                               \
      yr, xr, idr, has_id, x_row, c->kh, n_runs, run, c->c_in, panel, sh, nr, relu, act)

static CL_CLONES void
conv_cl_run (const MmConvCl *c, float *y, gsize y_row, const float *x, gsize x_row, int h_out,
    int w_out, int sh_, int sw, const float *identity, gsize id_row, gboolean relu,
    const MmAct *act, gboolean wide)
{
  int cg = c->c_in / c->groups, og = c->c_out / c->groups;
  gsize kk = (gsize)c->kh * c->kw * cg;
  /* without groups the kw taps of a kernel row are one contiguous run */
  int n_runs = c->groups == 1 ? 1 : c->kw, run = c->groups == 1 ? c->kw * cg : cg;
  int n_pos = h_out * w_out;
  gboolean has_id = identity != NULL;

  for (int g = 0; g < c->groups; g++) {
    for (int j0 = 0; j0 < og; j0 += NR) {
      int width = MIN (NR, c->og_pad - j0), nr = MIN (NR, og - j0);
      const float *panel = c->packed + ((gsize)g * c->og_pad + j0) * kk;
      const float *sh = c->shift + (gsize)g * c->og_pad + j0;
      const float *xg = x + (gsize)g * cg;
      float *yg = y + (gsize)g * og + j0;
      const float *idg = has_id ? identity + (gsize)g * og + j0 : NULL;
      for (int p = 0; p < n_pos;) {
        int mr = (wide && n_pos - p >= 8) ? 8 : (n_pos - p >= 4 ? 4 : 1);
        const float *xr[8], *idr[8];
        float *yr[8];
        int ho = p / w_out, wo = p - ho * w_out;
        for (int r = 0; r < mr; r++) {
          xr[r] = xg + (gsize)ho * sh_ * x_row + (gsize)wo * sw * c->c_in;
          yr[r] = yg + (gsize)ho * y_row + (gsize)wo * c->c_out;
          idr[r] = has_id ? idg + (gsize)ho * id_row + (gsize)wo * c->c_out : NULL;
          if (++wo == w_out) {
            wo = 0;
            ho++;
          }
        }
        if (width == 8) {
          if (mr == 8)
            TILE8_CALL (8);
          else if (mr == 4)
            TILE8_CALL (4);
          else
            TILE8_CALL (1);
        } else if (width == 16) {
          if (mr == 8)
            TILE_CALL (8, 1);
          else if (mr == 4)
            TILE_CALL (4, 1);
          else
            TILE_CALL (1, 1);
        } else {
          if (mr == 8)
            TILE_CALL (8, 2);
          else if (mr == 4)
            TILE_CALL (4, 2);
          else
            TILE_CALL (1, 2);
        }
        p += mr;
      }
    }
  }
}

void
mm_conv_cl_run (const MmConvCl *c, float *y, gsize y_row, const float *x, gsize x_row, int h_out,
    int w_out, int sh, int sw, const float *identity, gsize id_row, gboolean relu)
{
  if (h_out <= 0 || w_out <= 0)
    return;
  conv_cl_run (c, y, y_row, x, x_row, h_out, w_out, sh, sw, identity, id_row, relu, NULL,
      mm_cpu_has_avx512 ());
}

void
mm_conv_cl_run_act (const MmConvCl *c, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act)
{
  if (h_out <= 0 || w_out <= 0)
    return;
  gboolean relu = act && act->kind == MM_ACT_RELU;
  if (!act || act->kind == MM_ACT_NONE || relu)
    act = NULL; /* the two kinds mm_conv_cl_run always had */
  conv_cl_run (c, y, y_row, x, x_row, h_out, w_out, sh, sw, identity, id_row, relu, act,
      mm_cpu_has_avx512 ());
}

/* the reference activations: libm in double */
static float
act_reference (float v, const MmAct *act)
{
  double x = v;
  switch (act->kind) {
    case MM_ACT_RELU:
      return x > 0.0 ? v : 0.0f;
    case MM_ACT_CLIP:
      return v < act->lo ? act->lo : (v > act->hi ? act->hi : v);
    case MM_ACT_SILU:
      return (float)(x / (1.0 + exp (-x)));
    case MM_ACT_HARDSWISH:
      return (float)(x * MIN (MAX (x + 3.0, 0.0), 6.0) / 6.0);
    case MM_ACT_SIGMOID:
      return (float)(1.0 / (1.0 + exp (-x)));
    case MM_ACT_GELU:
      return (float)(0.5 * x * (1.0 + erf (x * M_SQRT1_2)));
    case MM_ACT_NONE:
    default:
      return v;
  }
}

static CL_CLONES void
act_apply_fast (const MmAct *act, float *x, gsize n)
{
  gsize i = 0;
  for (; i + 16 <= n; i += 16) {
    V16 v;
    memcpy (&v, x + i, sizeof v);
    v = v16_act (v, act);
    memcpy (x + i, &v, sizeof v);
  }
  if (i < n) {
    float t[16] = { 0 };
    V16 v;
    memcpy (t, x + i, (n - i) * sizeof (float));
    memcpy (&v, t, sizeof v);
    v = v16_act (v, act);
    memcpy (t, &v, sizeof v);
    memcpy (x + i, t, (n - i) * sizeof (float));
  }
}

void
mm_act_apply (const MmAct *act, float *x, gsize n)
{
  if (!act || act->kind == MM_ACT_NONE)
    return;
  if (mm_ops_get_reference ()) {
    for (gsize i = 0; i < n; i++)
      x[i] = act_reference (x[i], act);
    return;
  }
  act_apply_fast (act, x, n);
}

/* valid window [lo, hi) of output o: taps o stride - pad + [0, k) inside [0, n) */
static inline void
window (int o, int n, int k, int stride, int pad, int *lo, int *hi)
{
  *lo = MAX (o * stride - pad, 0);
  *hi = MIN (o * stride - pad + k, n);
}

/* yo (16 channels) = max of x over the window rows [y0, y1) x cols [x0, x1) */
CL_INLINE void
max_window16 (float *yo, const float *x, gsize x_row, int c, int y0, int y1, int x0, int x1)
{
  V16 m = { 0 };
  m -= INFINITY;
  for (int iy = y0; iy < y1; iy++)
    for (int ix = x0; ix < x1; ix++) {
      V16 v;
      memcpy (&v, x + iy * x_row + (gsize)ix * c, sizeof v);
      V16i gt = v > m;
      m = (V16)(((V16i)v & gt) | ((V16i)m & ~gt));
    }
  memcpy (yo, &m, sizeof m);
}

CL_VECTORIZE CL_CLONES void
mm_maxpool2d_cl (
    float *y, gsize y_row, const float *x, int c, int h, int w, int k, int stride, int pad)
{
  if (c <= 0 || h + 2 * pad < k || w + 2 * pad < k)
    return;
  int h_out = (h + 2 * pad - k) / stride + 1, w_out = (w + 2 * pad - k) / stride + 1;
  gsize x_row = (gsize)w * c;
  for (int oy = 0; oy < h_out; oy++) {
    int y0, y1;
    window (oy, h, k, stride, pad, &y0, &y1);
    for (int ox = 0; ox < w_out; ox++) {
      int x0, x1;
      window (ox, w, k, stride, pad, &x0, &x1);
      float *restrict yo = y + (gsize)oy * y_row + (gsize)ox * c;
      if (y0 >= y1 || x0 >= x1) {
        memset (yo, 0, (gsize)c * sizeof (float)); /* no input under the window */
        continue;
      }
      /* whole vectors of 16 channels in registers, then the rest */
      int ch = 0;
      for (; ch + 16 <= c; ch += 16)
        max_window16 (yo + ch, x + ch, x_row, c, y0, y1, x0, x1);
      for (; ch < c; ch++) {
        float m = -INFINITY;
        for (int iy = y0; iy < y1; iy++)
          for (int ix = x0; ix < x1; ix++) {
            float v = x[iy * x_row + (gsize)ix * c + ch];
            m = v > m ? v : m;
          }
        yo[ch] = m;
      }
    }
  }
}
