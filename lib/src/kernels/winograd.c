/* libmm: Winograd convolution F(m x m, 3 x 3), m = 2 or 4.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015):
 * the output is cut into m x m tiles; each reads an a x a input tile d
 * (a = m + 2, starting one pixel up-left because of the padding) and
 *   y_tile = A^T [ sum_ic (G g G^T) (.) (B^T d B) ] A
 * where (.) is the element-wise product.  Summed over input channels, each
 * of the a*a element positions p is a GEMM
 *   M_p (c_out, tiles) = U_p (c_out, c_in) V_p (c_in, tiles)
 * with U = G g G^T (done once at load) and V = B^T d B (per call).
 *
 * The tiles are processed in chunks of whole tile rows, sized so that V and
 * M of a chunk stay in the L2 cache.  Input tile rows are first copied into
 * a zero-padded row buffer so the transform loops have no edge cases;
 * output tile rows go through a row buffer that is clipped to the output
 * size and gets the bias, residual and ReLU in the same pass.
 */
#include <string.h>

#include "clones.h"
#include "ops.h"
#include "winograd.h"
#include "act-vec.h"
#include "mm-private.h"

#if defined(__GNUC__) && !defined(__clang__)
#define WG_VECTORIZE                                                                               \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define WG_VECTORIZE
#endif
#define WG_CLONES MM_TARGET_CLONES
#define WG_SIMD WG_VECTORIZE WG_CLONES

/* Floats of V + M per chunk (4 MiB): measured on Zen 4, larger chunks (wider
 * GEMMs) beat chunks that fit the L2 cache. */
#define CHUNK_FLOATS (1024 * 1024)

/* G (a x 3) of F(2,3) and F(4,3), interpolation points 0, +-1, (+-2), inf */
static const double g2[4][3] = {
  { 1.0, 0.0, 0.0 },
  { 0.5, 0.5, 0.5 },
  { 0.5, -0.5, 0.5 },
  { 0.0, 0.0, 1.0 },
};
static const double g4[6][3] = {
  { 1.0 / 4, 0.0, 0.0 },
  { -1.0 / 6, -1.0 / 6, -1.0 / 6 },
  { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
  { 1.0 / 24, 1.0 / 12, 1.0 / 6 },
  { 1.0 / 24, -1.0 / 12, 1.0 / 6 },
  { 0.0, 0.0, 1.0 },
};

typedef struct
{
  int m, a;    /* output tile side, input tile side (m + 2) */
  int th, tw;  /* tile rows, tiles per row */
  int rows;    /* tile rows per chunk */
  int wp;      /* padded input row, (tw + 1) m */
  gsize v, mm; /* floats of V and M for a full chunk */
} Plan;

static void
plan_init (Plan *p, int m, int c_in, int c_out, int h, int w)
{
  p->m = m;
  p->a = m + 2;
  p->th = (h + m - 1) / m;
  p->tw = (w + m - 1) / m;
  p->wp = (p->tw + 1) * m; /* >= tw m + 2, whole phases */
  gsize per_row = (gsize)p->a * p->a * (c_in + c_out) * p->tw;
  p->rows = (int)CLAMP (CHUNK_FLOATS / MAX (per_row, 1), 1, (gsize)p->th);
  p->v = (gsize)p->a * p->a * c_in * p->tw * p->rows;
  p->mm = (gsize)p->a * p->a * c_out * p->tw * p->rows;
}

/* Measured at batch 1, one thread (resnet18 shapes, speed-up over im2col +
 * GEMM): 64ch @56 F4 1.8-1.9x, F2 1.5x; 128ch @28 F4 1.8-2.0x, F2 1.3-1.5x;
 * 256ch @14 F4 1.05x, F2 1.3-1.5x; 512ch @7 F2 1.0x, F4 0.6x; 16ch @16 F2
 * 0.3x, F4 1.0x. */
int
mm_winograd_pick (int c_in, int c_out, int h, int w)
{
  if (c_in < 32 || c_out < 32)
    return 0;
  int tiles4 = ((h + 3) / 4) * ((w + 3) / 4);
  if (tiles4 >= 49)
    return 4;
  if (h * w >= 144)
    return 2;
  return 0;
}

gsize
mm_winograd_weights_size (int m, int c_in, int c_out)
{
  return (gsize)(m + 2) * (m + 2) * c_out * c_in;
}

void
mm_winograd_weights (float *u, int m, const float *w, const float *scale, int c_in, int c_out)
{
  g_return_if_fail (m == 2 || m == 4);
  int a = m + 2;
  const double (*g)[3] = m == 2 ? g2 : g4;
  gsize plane = (gsize)c_out * c_in;
  for (int oc = 0; oc < c_out; oc++)
    for (int ic = 0; ic < c_in; ic++) {
      const float *k = w + ((gsize)oc * c_in + ic) * 9;
      double s = scale ? scale[oc] : 1.0, t[6][3];
      for (int i = 0; i < a; i++) /* t = G k */
        for (int j = 0; j < 3; j++)
          t[i][j] = g[i][0] * k[j] + g[i][1] * k[3 + j] + g[i][2] * k[6 + j];
      for (int i = 0; i < a; i++) /* U = t G^T */
        for (int j = 0; j < a; j++)
          u[(gsize)(i * a + j) * plane + (gsize)oc * c_in + ic] =
              (float)(s * (t[i][0] * g[j][0] + t[i][1] * g[j][1] + t[i][2] * g[j][2]));
    }
}

/* floats of the transforms' work area: phases + row results */
static gsize
work_size (const Plan *p)
{
  return (gsize)p->a * p->m * (p->tw + 1) + (gsize)p->a * p->a * p->tw;
}

gsize
mm_winograd_scratch_size (int m, int c_in, int c_out, int h, int w)
{
  Plan p;
  if ((m != 2 && m != 4) || c_in <= 0 || c_out <= 0 || h <= 0 || w <= 0)
    return 0;
  plan_init (&p, m, c_in, c_out, h, w);
  return p.v + p.mm + (gsize)p.a * p.wp + (gsize)p.m * p.tw * p.m + work_size (&p);
}

/* rb (a, wp) = rows y0 - 1 .. y0 + a - 2 of the plane x (h, w), shifted
 * right by one and zero outside. */
static void
pad_rows (float *rb, const float *x, int h, int w, int y0, int a, int wp)
{
  for (int i = 0; i < a; i++) {
    float *r = rb + (gsize)i * wp;
    int iy = y0 - 1 + i;
    if (iy < 0 || iy >= h) {
      memset (r, 0, sizeof (float) * wp);
      continue;
    }
    r[0] = 0.0f;
    memcpy (r + 1, x + (gsize)iy * w, sizeof (float) * w);
    memset (r + 1 + w, 0, sizeof (float) * (wp - 1 - w));
  }
}

/* ph (m, tw + 1): phase k of the padded row r, ph[k][t] = r[m t + k], so
 * that tile t's column j is ph[j % m][t + j / m]: the transforms below then
 * run over the tiles with unit-stride loads and stores, which vectorise. */
static WG_SIMD void
deinterleave (float *restrict ph, const float *restrict r, int m, int n)
{
  if (m == 2)
    for (int t = 0; t < n; t++) {
      ph[t] = r[2 * t];
      ph[n + t] = r[2 * t + 1];
    }
  else
    for (int t = 0; t < n; t++) {
      ph[t] = r[4 * t];
      ph[n + t] = r[4 * t + 1];
      ph[2 * n + t] = r[4 * t + 2];
      ph[3 * n + t] = r[4 * t + 3];
    }
}

/* v[p * ps + t] = (B^T d_t B)[p] for the tw tiles of one tile row, d_t the
 * 4x4 window at column 2 t of the padded rows rb (4, wp); work: 4 (2, tw + 1)
 * phases + e (16, tw). */
static WG_SIMD void
input_row2 (
    float *restrict v, gsize ps, const float *restrict rb, int wp, int tw, float *restrict work)
{
  int n = tw + 1;
  float *ph = work, *e = work + 8 * n;
  for (int i = 0; i < 4; i++)
    deinterleave (ph + i * 2 * n, rb + (gsize)i * wp, 2, n);
  for (int i = 0; i < 4; i++) { /* rows: d B */
    const float *p0 = ph + i * 2 * n, *p1 = p0 + n;
    float *o = e + i * 4 * tw;
    for (int t = 0; t < tw; t++) {
      float d0 = p0[t], d1 = p1[t], d2 = p0[t + 1], d3 = p1[t + 1];
      o[t] = d0 - d2;
      o[tw + t] = d1 + d2;
      o[2 * tw + t] = d2 - d1;
      o[3 * tw + t] = d1 - d3;
    }
  }
  for (int j = 0; j < 4; j++) { /* columns: B^T (d B) */
    const float *e0 = e + j * tw, *e1 = e0 + 4 * tw, *e2 = e1 + 4 * tw, *e3 = e2 + 4 * tw;
    float *v0 = v + j * ps, *v1 = v0 + 4 * ps, *v2 = v1 + 4 * ps, *v3 = v2 + 4 * ps;
    for (int t = 0; t < tw; t++) {
      v0[t] = e0[t] - e2[t];
      v1[t] = e1[t] + e2[t];
      v2[t] = e2[t] - e1[t];
      v3[t] = e1[t] - e3[t];
    }
  }
}

/* B^T of F(4,3) applied to d0..d5, results to o0..o5 */
#define BT4(o0, o1, o2, o3, o4, o5, d0, d1, d2, d3, d4, d5)                                        \
  do {                                                                                             \
    float b0 = d0, b1 = d1, b2 = d2, b3 = d3, b4 = d4, b5 = d5;                                    \
    o0 = 4.0f * b0 - 5.0f * b2 + b4;                                                               \
    o1 = -4.0f * (b1 + b2) + b3 + b4;                                                              \
    o2 = 4.0f * (b1 - b2) - b3 + b4;                                                               \
    o3 = 2.0f * (b3 - b1) - b2 + b4;                                                               \
    o4 = 2.0f * (b1 - b3) - b2 + b4;                                                               \
    o5 = 4.0f * b1 - 5.0f * b3 + b5;                                                               \
  } while (0)

/* As input_row2 for 6x6 windows at column 4 t; work: 6 (4, tw + 1)
 * phases + e (36, tw). */
static WG_SIMD void
input_row4 (
    float *restrict v, gsize ps, const float *restrict rb, int wp, int tw, float *restrict work)
{
  int n = tw + 1;
  float *ph = work, *e = work + 24 * n;
  for (int i = 0; i < 6; i++)
    deinterleave (ph + i * 4 * n, rb + (gsize)i * wp, 4, n);
  for (int i = 0; i < 6; i++) { /* rows: d B */
    const float *p0 = ph + i * 4 * n, *p1 = p0 + n, *p2 = p1 + n, *p3 = p2 + n;
    float *o = e + i * 6 * tw;
    for (int t = 0; t < tw; t++)
      BT4 (o[t], o[tw + t], o[2 * tw + t], o[3 * tw + t], o[4 * tw + t], o[5 * tw + t], p0[t],
          p1[t], p2[t], p3[t], p0[t + 1], p1[t + 1]);
  }
  for (int j = 0; j < 6; j++) { /* columns: B^T (d B) */
    const float *c = e + j * tw;
    float *o = v + j * ps;
    gsize s = 6 * ps;
    for (int t = 0; t < tw; t++)
      BT4 (o[t], o[s + t], o[2 * s + t], o[3 * s + t], o[4 * s + t], o[5 * s + t], c[t],
          c[6 * tw + t], c[12 * tw + t], c[18 * tw + t], c[24 * tw + t], c[30 * tw + t]);
  }
}

/* ob (2, tw * 2) = A^T M_t A + bias for the tw tiles of one tile row,
 * M_t[p] = mm[p * ps + t]; work: e (8, tw). */
static WG_SIMD void
output_row2 (float *restrict ob, const float *restrict mm, gsize ps, int tw, float bias,
    float *restrict work)
{
  int ow = tw * 2;
  float *e = work;
  for (int j = 0; j < 4; j++) { /* columns: A^T q */
    const float *q0 = mm + j * ps, *q1 = q0 + 4 * ps, *q2 = q1 + 4 * ps, *q3 = q2 + 4 * ps;
    float *e0 = e + j * tw, *e1 = e0 + 4 * tw;
    for (int t = 0; t < tw; t++) {
      e0[t] = q0[t] + q1[t] + q2[t];
      e1[t] = q1[t] - q2[t] - q3[t];
    }
  }
  for (int i = 0; i < 2; i++) { /* rows: (A^T q) A */
    const float *r = e + i * 4 * tw;
    float *o = ob + i * ow;
    for (int t = 0; t < tw; t++) {
      o[2 * t] = r[t] + r[tw + t] + r[2 * tw + t] + bias;
      o[2 * t + 1] = r[tw + t] - r[2 * tw + t] - r[3 * tw + t] + bias;
    }
  }
}

/* A^T of F(4,3) applied to q0..q5, results to o0..o3 */
#define AT4(o0, o1, o2, o3, q0, q1, q2, q3, q4, q5)                                                \
  do {                                                                                             \
    float s12 = (q1) + (q2), d12 = (q1) - (q2), s34 = (q3) + (q4), d34 = (q3) - (q4);              \
    o0 = (q0) + s12 + s34;                                                                         \
    o1 = d12 + 2.0f * d34;                                                                         \
    o2 = s12 + 4.0f * s34;                                                                         \
    o3 = d12 + 8.0f * d34 + (q5);                                                                  \
  } while (0)

/* As output_row2 for 4x4 outputs; work: e (24, tw). */
static WG_SIMD void
output_row4 (float *restrict ob, const float *restrict mm, gsize ps, int tw, float bias,
    float *restrict work)
{
  int ow = tw * 4;
  float *e = work;
  for (int j = 0; j < 6; j++) { /* columns: A^T q */
    const float *q = mm + j * ps;
    gsize s = 6 * ps;
    float *o = e + j * tw;
    for (int t = 0; t < tw; t++)
      AT4 (o[t], o[6 * tw + t], o[12 * tw + t], o[18 * tw + t], q[t], q[s + t], q[2 * s + t],
          q[3 * s + t], q[4 * s + t], q[5 * s + t]);
  }
  for (int i = 0; i < 4; i++) { /* rows: (A^T q) A */
    const float *r = e + i * 6 * tw;
    float *o = ob + i * ow;
    for (int t = 0; t < tw; t++) {
      float y0, y1, y2, y3;
      AT4 (y0, y1, y2, y3, r[t], r[tw + t], r[2 * tw + t], r[3 * tw + t], r[4 * tw + t],
          r[5 * tw + t]);
      o[4 * t] = y0 + bias;
      o[4 * t + 1] = y1 + bias;
      o[4 * t + 2] = y2 + bias;
      o[4 * t + 3] = y3 + bias;
    }
  }
}

/* y (n) = [relu] (r [+ id]) */
static WG_SIMD void
store_row (
    float *restrict y, const float *restrict r, const float *restrict id, int n, gboolean relu)
{
  if (id && relu)
    for (int i = 0; i < n; i++) {
      float v = r[i] + id[i];
      y[i] = v > 0.0f ? v : 0.0f;
    }
  else if (id)
    for (int i = 0; i < n; i++)
      y[i] = r[i] + id[i];
  else if (relu)
    for (int i = 0; i < n; i++)
      y[i] = r[i] > 0.0f ? r[i] : 0.0f;
  else
    memcpy (y, r, sizeof (float) * n);
}

void
mm_winograd_conv3x3 (float *y, const float *x, const float *u, int m, int c_in, int h, int w,
    int c_out, const float *shift, const float *identity, gboolean relu, float *scratch)
{
  Plan p;
  g_return_if_fail (m == 2 || m == 4);
  plan_init (&p, m, c_in, c_out, h, w);
  int a = p.a, pos = a * a;
  float *v = scratch, *mm = v + p.v, *rb = mm + p.mm, *ob = rb + (gsize)a * p.wp;
  float *work = ob + (gsize)m * p.tw * m;
  gsize plane = (gsize)h * w;

  for (int ty0 = 0; ty0 < p.th; ty0 += p.rows) {
    int rows = MIN (p.rows, p.th - ty0);
    int tc = rows * p.tw; /* tiles in this chunk: the GEMMs' N */
    gsize vs = (gsize)c_in * tc, ms = (gsize)c_out * tc;

    for (int c = 0; c < c_in; c++)
      for (int r = 0; r < rows; r++) {
        pad_rows (rb, x + c * plane, h, w, (ty0 + r) * m, a, p.wp);
        float *vt = v + (gsize)c * tc + (gsize)r * p.tw;
        if (m == 2)
          input_row2 (vt, vs, rb, p.wp, p.tw, work);
        else
          input_row4 (vt, vs, rb, p.wp, p.tw, work);
      }

    for (int q = 0; q < pos; q++)
      mm_sgemm (FALSE, FALSE, c_out, tc, c_in, 1.0f, u + (gsize)q * c_out * c_in, c_in,
          v + (gsize)q * vs, tc, 0.0f, mm + (gsize)q * ms, tc);

    for (int oc = 0; oc < c_out; oc++) {
      float bias = shift ? shift[oc] : 0.0f;
      for (int r = 0; r < rows; r++) {
        const float *mt = mm + (gsize)oc * tc + (gsize)r * p.tw;
        if (m == 2)
          output_row2 (ob, mt, ms, p.tw, bias, work);
        else
          output_row4 (ob, mt, ms, p.tw, bias, work);
        int oy0 = (ty0 + r) * m;
        for (int i = 0; i < m && oy0 + i < h; i++) {
          gsize off = (gsize)oc * plane + (gsize)(oy0 + i) * w;
          store_row (y + off, ob + (gsize)i * p.tw * m, identity ? identity + off : NULL, w, relu);
        }
      }
    }
  }
}

/* ---- channel-last ------------------------------------------------------
 *
 * Vectors run across 16 channels everywhere: the input transform of a tile
 * reads its (m + 2)^2 pixels 16 input channels at a time, the output
 * transform its (m + 2)^2 products 16 output channels at a time, and the
 * GEMMs keep MR tiles x 32 output channels in registers over the whole
 * reduction (conv-cl.c's register tile, reading V where conv-cl reads x).
 * A chunk's V is at most WCL_V_FLOATS (it is read once per panel of 32
 * output channels, so it should stay in the L2 cache); the products of
 * one panel, M (a^2, T, 32), are transformed back before the next panel. */

#if defined(__GNUC__)
#define WG_INLINE static inline __attribute__ ((always_inline))
#else
#define WG_INLINE static inline
#endif

#define WCL_NR 32
#define WCL_V_FLOATS (128 * 1024)
#define WCL_MAX_BYTES ((guint64)1 << 30) /* 1 GiB, as conv-cl */

/* tiles per chunk: a multiple of 8 (and so of either register tile) */
static int
wcl_chunk (int m, int c_in, int n_tiles)
{
  gsize per = (gsize)(m + 2) * (m + 2) * c_in;
  int t = (int)CLAMP (WCL_V_FLOATS / MAX (per, 1), 1, (gsize)MAX (n_tiles, 1));
  return (t + 7) / 8 * 8;
}

guint64
mm_winograd_cl_bytes (int m, int c_in, int c_out)
{
  return ((guint64)(m + 2) * (m + 2) * (guint64)c_in * (guint64)c_out + (guint64)c_out)
      * sizeof (float)
      + 64;
}

void
mm_winograd_cl_clear (MmWinogradCl *wc)
{
  g_free (wc->mem);
  memset (wc, 0, sizeof *wc);
}

gboolean
mm_winograd_cl_init (MmWinogradCl *wc, int m, const float *w, const float *scale,
    const float *shift, int c_in, int c_out, const char *what, GError **error)
{
  memset (wc, 0, sizeof *wc);
  if ((m != 2 && m != 4) || c_in <= 0 || c_out <= 0 || c_in % 16 || c_out % 16) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: no channel-last Winograd F(%d, 3) for %d -> %d channels", what, m, c_in, c_out);
    return FALSE;
  }
  guint64 bytes = mm_winograd_cl_bytes (m, c_in, c_out);
  if (bytes <= WCL_MAX_BYTES)
    wc->mem = g_try_malloc (bytes);
  if (!wc->mem) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: the Winograd weights would take %" G_GUINT64_FORMAT " MB (at most %u MB)", what,
        bytes >> 20, (guint)(WCL_MAX_BYTES >> 20));
    return FALSE;
  }
  int a = m + 2;
  const double (*g)[3] = m == 2 ? g2 : g4;
  gsize plane = (gsize)c_in * c_out;
  *wc = (MmWinogradCl){ m, c_in, c_out, NULL, NULL, wc->mem };
  wc->u = (float *)(((guintptr)wc->mem + 63) & ~(guintptr)63);
  wc->shift = wc->u + (gsize)a * a * plane;
  for (int oc = 0; oc < c_out; oc++) {
    int j0 = oc / WCL_NR * WCL_NR, width = MIN (WCL_NR, c_out - j0);
    wc->shift[oc] = shift ? shift[oc] : 0.0f;
    for (int ic = 0; ic < c_in; ic++) {
      const float *k = w + ((gsize)oc * c_in + ic) * 9;
      double s = scale ? scale[oc] : 1.0, t[6][3];
      for (int i = 0; i < a; i++) /* t = G k */
        for (int j = 0; j < 3; j++)
          t[i][j] = g[i][0] * k[j] + g[i][1] * k[3 + j] + g[i][2] * k[6 + j];
      for (int i = 0; i < a; i++) /* U = t G^T */
        for (int j = 0; j < a; j++)
          wc->u[((gsize)j0 * a * a + (gsize)(i * a + j) * width) * c_in + (gsize)ic * width
              + (oc - j0)] =
              (float)(s * (t[i][0] * g[j][0] + t[i][1] * g[j][1] + t[i][2] * g[j][2]));
    }
  }
  return TRUE;
}

gsize
mm_winograd_cl_scratch_size (const MmWinogradCl *wc, int h, int w)
{
  if (!wc->mem || h <= 0 || w <= 0)
    return 0;
  int m = wc->m, a = m + 2, n_tiles = ((h + m - 1) / m) * ((w + m - 1) / m);
  gsize t = (gsize)wcl_chunk (m, wc->c_in, n_tiles);
  return (gsize)a * a * t * (wc->c_in + WCL_NR) + wc->c_in + 16;
}

/* B^T (F(2,3) and F(4,3)) on vectors d0..; o0.. may not alias them */
#define WBT2(o, d)                                                                                 \
  do {                                                                                             \
    o[0] = d[0] - d[2];                                                                            \
    o[1] = d[1] + d[2];                                                                            \
    o[2] = d[2] - d[1];                                                                            \
    o[3] = d[1] - d[3];                                                                            \
  } while (0)
#define WBT4(o, d)                                                                                 \
  do {                                                                                             \
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];                                                       \
    o[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];                                                    \
    o[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];                                                     \
    o[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];                                                     \
    o[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];                                                     \
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];                                                       \
  } while (0)
/* A^T */
#define WAT2(o, q)                                                                                 \
  do {                                                                                             \
    o[0] = q[0] + q[1] + q[2];                                                                     \
    o[1] = q[1] - q[2] - q[3];                                                                     \
  } while (0)
#define WAT4(o, q)                                                                                 \
  do {                                                                                             \
    V16 s12 = q[1] + q[2], d12 = q[1] - q[2], s34 = q[3] + q[4], d34 = q[3] - q[4];                \
    o[0] = q[0] + s12 + s34;                                                                       \
    o[1] = d12 + 2.0f * d34;                                                                       \
    o[2] = s12 + 4.0f * s34;                                                                       \
    o[3] = d12 + 8.0f * d34 + q[5];                                                                \
  } while (0)

/* v[p ps .. + 16] = (B^T d B)[p] for 16 channels from c, d[i][j] at px[i a + j] + c */
WG_INLINE void
wcl_in_tile (int m, float *v, gsize ps, const float *const *px, int c)
{
  int a = m + 2;
  V16 e[36];
  for (int i = 0; i < a; i++) { /* rows: d B */
    V16 d[6];
    for (int j = 0; j < a; j++)
      memcpy (&d[j], px[i * a + j] + c, sizeof (V16));
    if (m == 4)
      WBT4 ((e + i * 6), d);
    else
      WBT2 ((e + i * 6), d);
  }
  for (int j = 0; j < a; j++) { /* columns: B^T (d B) */
    V16 d[6], o[6];
    for (int i = 0; i < a; i++)
      d[i] = e[i * 6 + j];
    if (m == 4)
      WBT4 (o, d);
    else
      WBT2 (o, d);
    for (int i = 0; i < a; i++)
      memcpy (v + (gsize)(i * a + j) * ps, &o[i], sizeof (V16));
  }
}

/* The m x m outputs of one tile, 16 channels from oc: act (A^T M A + s [+
 * identity]); M[p] at mt + p ps; output k goes to yp[k] + oc unless yp[k]
 * is NULL (outside the plane), its identity is at ip[k] + oc. */
WG_INLINE void
wcl_out_tile (int m, const float *mt, gsize ps, const float *shift, float *const *yp,
    const float *const *ip, int oc, const MmAct *act)
{
  int a = m + 2;
  V16 s;
  memcpy (&s, shift, sizeof s);
  V16 e[4][6];
  for (int j = 0; j < a; j++) { /* columns: A^T q */
    V16 q[6], o[4];
    for (int i = 0; i < a; i++)
      memcpy (&q[i], mt + (gsize)(i * a + j) * ps, sizeof (V16));
    if (m == 4)
      WAT4 (o, q);
    else
      WAT2 (o, q);
    for (int i = 0; i < m; i++)
      e[i][j] = o[i];
  }
  for (int i = 0; i < m; i++) { /* rows: (A^T q) A */
    V16 o[4];
    if (m == 4)
      WAT4 (o, e[i]);
    else
      WAT2 (o, e[i]);
    for (int k = 0; k < m; k++) {
      float *yo = yp[i * m + k];
      if (!yo)
        continue;
      V16 r = o[k] + s;
      if (ip) {
        V16 iv;
        memcpy (&iv, ip[i * m + k] + oc, sizeof iv);
        r += iv;
      }
      if (act)
        r = v16_act (r, act);
      memcpy (yo + oc, &r, sizeof r);
    }
  }
}

/* M (MR tiles, 16 NV) = V (MR tiles, c_in) U (c_in, 16 NV); rows of M 32
 * floats apart */
#define DEFINE_WTILE(MR, NV)                                                                       \
  WG_INLINE void wtile_##MR##_##NV (float *mo, const float *v, int c_in, const float *panel)       \
  {                                                                                                \
    V16 a0[MR], a1[MR], z = { 0 };                                                                 \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a0[r] = a1[r] = z;                       \
    const float *p = panel;                                                                        \
    for (int k = 0; k < c_in; k++, p += 16 * NV) {                                                 \
      V16 b0 = *(const V16 *)p, b1 = z;                                                            \
      if (NV == 2)                                                                                 \
        b1 = *(const V16 *)(p + 16);                                                               \
      _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                        \
      {                                                                                            \
        float av = v[(gsize)r * c_in + k];                                                         \
        a0[r] += av * b0;                                                                          \
        if (NV == 2)                                                                               \
          a1[r] += av * b1;                                                                        \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                          \
    {                                                                                              \
      memcpy (mo + (gsize)r * WCL_NR, &a0[r], sizeof (V16));                                       \
      if (NV == 2)                                                                                 \
        memcpy (mo + (gsize)r * WCL_NR + 16, &a1[r], sizeof (V16));                                \
    }                                                                                              \
  }
DEFINE_WTILE (8, 2)
DEFINE_WTILE (4, 2)
DEFINE_WTILE (8, 1)
DEFINE_WTILE (4, 1)

static WG_CLONES void
wcl_run (const MmWinogradCl *wc, float *y, gsize y_row, const float *x, gsize x_row, int h, int w,
    const float *identity, gsize id_row, const MmAct *act, float *scratch, gboolean wide)
{
  int m = wc->m, a = m + 2, n_pos = a * a, c_in = wc->c_in, c_out = wc->c_out;
  int tw = (w + m - 1) / m, n_tiles = ((h + m - 1) / m) * tw;
  int chunk = wcl_chunk (m, c_in, n_tiles), mr = wide ? 8 : 4;
  float *v = (float *)(((guintptr)scratch + 63) & ~(guintptr)63);
  float *mb = v + (gsize)n_pos * chunk * c_in, *zero = mb + (gsize)n_pos * chunk * WCL_NR;
  gsize vps = (gsize)chunk * c_in, mps = (gsize)chunk * WCL_NR;
  memset (zero, 0, sizeof (float) * c_in);

  for (int t0 = 0; t0 < n_tiles; t0 += chunk) {
    int nc = MIN (chunk, n_tiles - t0), ncp = (nc + mr - 1) / mr * mr;
    for (int t = 0; t < ncp; t++) {
      float *vt = v + (gsize)t * c_in;
      if (t >= nc) { /* the last register tile's spare rows */
        for (int p = 0; p < n_pos; p++)
          memset (vt + p * vps, 0, sizeof (float) * c_in);
        continue;
      }
      int ty = (t0 + t) / tw, tx = t0 + t - ty * tw;
      const float *px[36];
      for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++) {
          int r = ty * m + i, q = tx * m + j; /* in the padded input */
          px[i * a + j] = r < h + 2 && q < w + 2 ? x + (gsize)r * x_row + (gsize)q * c_in : zero;
        }
      for (int c = 0; c < c_in; c += 16)
        if (m == 4)
          wcl_in_tile (4, vt + c, vps, px, c);
        else
          wcl_in_tile (2, vt + c, vps, px, c);
    }
    for (int j0 = 0; j0 < c_out; j0 += WCL_NR) {
      int nv = MIN (WCL_NR, c_out - j0) / 16;
      for (int p = 0; p < n_pos; p++) {
        const float *panel = wc->u + ((gsize)j0 * n_pos + (gsize)p * nv * 16) * c_in;
        const float *vp = v + p * vps;
        float *mp = mb + p * mps;
        for (int t = 0; t < ncp; t += mr) {
          const float *vr = vp + (gsize)t * c_in;
          float *mo = mp + (gsize)t * WCL_NR;
          if (nv == 2) {
            if (mr == 8)
              wtile_8_2 (mo, vr, c_in, panel);
            else
              wtile_4_2 (mo, vr, c_in, panel);
          } else {
            if (mr == 8)
              wtile_8_1 (mo, vr, c_in, panel);
            else
              wtile_4_1 (mo, vr, c_in, panel);
          }
        }
      }
      for (int t = 0; t < nc; t++) {
        int ty = (t0 + t) / tw, tx = t0 + t - ty * tw;
        float *yp[16];
        const float *ip[16];
        for (int i = 0; i < m; i++)
          for (int k = 0; k < m; k++) {
            int oy = ty * m + i, ox = tx * m + k;
            gboolean in = oy < h && ox < w;
            yp[i * m + k] = in ? y + (gsize)oy * y_row + (gsize)ox * c_out : NULL;
            ip[i * m + k] =
                in && identity ? identity + (gsize)oy * id_row + (gsize)ox * c_out : NULL;
          }
        for (int hv = 0; hv < nv; hv++) {
          const float *s = wc->shift + j0 + 16 * hv, *mt = mb + (gsize)t * WCL_NR + 16 * hv;
          if (m == 4)
            wcl_out_tile (4, mt, mps, s, yp, identity ? ip : NULL, j0 + 16 * hv, act);
          else
            wcl_out_tile (2, mt, mps, s, yp, identity ? ip : NULL, j0 + 16 * hv, act);
        }
      }
    }
  }
}

void
mm_winograd_cl_run (const MmWinogradCl *wc, float *y, gsize y_row, const float *x, gsize x_row,
    int h, int w, const float *identity, gsize id_row, const MmAct *act, float *scratch)
{
  if (h <= 0 || w <= 0 || !wc->mem)
    return;
  if (act && act->kind == MM_ACT_NONE)
    act = NULL;
  wcl_run (wc, y, y_row, x, x_row, h, w, identity, id_row, act, scratch, mm_cpu_has_avx512 ());
}

/* Measured on Zen 5 (AVX-512, one thread; speed-up over conv-cl's direct
 * kernel, same epilogue): F4 64ch @56 2.1-2.5x, @112 1.6-2.2x, 128ch @28
 * 2.4-2.6x, 256ch @14 2.0-2.4x, 256ch @7 1.2x, 512ch @14 0.9x, 512ch @7
 * 0.6-0.8x (its transformed weights, 36 c_in c_out floats, outgrow the
 * caches; 7x7 leaves 15 of 64 outputs of its tiles unused); F2 512ch @7
 * 1.25-1.6x, 512ch @14 1.3x, 256ch @7 1.4x, 1024ch @7 1.0x; 128ch @4 and
 * 32ch @8 1.0x or less, 16ch 0.6-1.3x. */
int
mm_winograd_cl_pick (int c_in, int c_out, int h, int w)
{
  if (c_in % 16 || c_out % 16 || c_in < 32 || c_out < 32 || h < 7 || w < 7)
    return 0;
  gsize cc = (gsize)c_in * c_out;
  if (cc <= 256 * 256 && h >= 8 && w >= 8)
    return 4;
  if (cc <= 512 * 512)
    return 2;
  return 0;
}
