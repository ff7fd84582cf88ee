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

#include "ops.h"
#include "winograd.h"

#if defined(__GNUC__) && !defined(__clang__)
#define WG_VECTORIZE                                                                               \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define WG_VECTORIZE
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)          \
    && !defined(MM_NO_CLONES)
#define WG_CLONES __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WG_CLONES
#endif
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
