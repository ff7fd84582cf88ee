/* libmm layers: the plain functions every architecture is built from.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each op has two paths.  The fast path does its heavy work with one
 * mm_sgemm call (linear, conv via im2col, attention per head) and its
 * element-wise work in straight loops over contiguous memory that GCC
 * vectorises (exp/erf/tanh are evaluated with branch-free polynomials, see
 * below, because glibc's scalar expf/erff stop the vectoriser).  The
 * reference path (mm_ops_set_reference (TRUE)) is the textbook loop with
 * libm and double accumulators, so tests can check one against the other.
 * Nothing here allocates: convolutions use the caller's scratch.
 */
#include <math.h>
#include <string.h>

#include "clones.h"
#include "ops.h"

/* GCC's -O2 only vectorises loops whose trip count is a multiple of the
 * vector width; these loops have arbitrary lengths, so ask for the usual
 * -O3 cost model on the hot functions. */
#if defined(__GNUC__) && !defined(__clang__)
#define MM_VECTORIZE                                                                               \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define MM_VECTORIZE
#endif

/* The distribution's baseline is SSE2.  The element-wise loops are 3-4x
 * faster with AVX2 + FMA (or AVX-512), so x86-64 builds carry clones of
 * them that the dynamic loader picks for the CPU (GNU ifunc). */
#define MM_CLONES MM_TARGET_CLONES

/* helpers inlined into the loops below (into each clone) */
#define MM_HOT MM_VECTORIZE
#if defined(__GNUC__)
#define MM_INLINE static inline __attribute__ ((always_inline)) MM_HOT
#else
#define MM_INLINE static inline
#endif
/* functions with a loop worth a clone per ISA */
#define MM_SIMD MM_VECTORIZE MM_CLONES

static gboolean use_reference;

void
mm_ops_set_reference (gboolean reference)
{
  use_reference = reference ? TRUE : FALSE;
}

gboolean
mm_ops_get_reference (void)
{
  return use_reference;
}

/* ------------------------------------------------------------------ */
/* Branch-free float math (fast path only)                             */

/* e^x, relative error ~2e-7 (Cephes expf polynomial).  Inputs below -87
 * give 0, above 88 saturate at e^88 (~1.7e38): the callers only need
 * "huge".  Rounding uses the 1.5 * 2^23 trick so the loop vectorises
 * without SSE4.1. */
MM_INLINE float
exp_fast (float x)
{
  const float big = 12582912.0f; /* 1.5 * 2^23 */
  /* clamped so that NaN becomes -87 (no float -> int conversion of NaN
   * below, which is undefined); NaN is given back at the end */
  float xc = x > -87.0f ? x : -87.0f;
  xc = xc < 88.0f ? xc : 88.0f;
  float n = (xc * 1.44269504088896341f + big) - big;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union
  {
    gint32 i;
    float f;
  } scale;
  scale.i = (gint32)((guint32)((gint32)n + 127) << 23);
  float y = p * scale.f;
  return x != x ? x : (x < -87.0f ? 0.0f : y);
}

/* erf (x), absolute error < 1.5e-7 (Abramowitz & Stegun 7.1.26, the same
 * formula PyTorch's vectorised CPU kernel uses). */
MM_INLINE float
erf_fast (float x)
{
  float ax = fabsf (x);
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  float y = 1.0f - p * t * exp_fast (-ax * ax);
  return copysignf (y, x);
}

/* tanh (x): Cephes' odd polynomial near 0 (where 1 - 2/(e^2x + 1) would
 * lose relative precision), the exp form elsewhere. */
MM_INLINE float
tanh_fast (float x)
{
  float ax = fabsf (x);
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = p * z * x + x;
  float large = copysignf (1.0f - 2.0f / (exp_fast (2.0f * ax) + 1.0f), x);
  return ax < 0.625f ? small : large;
}

/* ------------------------------------------------------------------ */
/* Linear                                                              */

/* y (n, d_out) += b (d_out) per row */
static MM_SIMD void
add_row_bias (float *y, const float *b, int n, int d)
{
  for (int i = 0; i < n; i++) {
    float *yi = y + (gsize)i * d;
    for (int j = 0; j < d; j++)
      yi[j] += b[j];
  }
}

static void
linear_reference (
    float *y, const float *x, const float *w, const float *b, int n, int d_in, int d_out)
{
  for (int i = 0; i < n; i++)
    for (int o = 0; o < d_out; o++) {
      double acc = b ? b[o] : 0.0;
      for (int k = 0; k < d_in; k++)
        acc += (double)x[(gsize)i * d_in + k] * w[(gsize)o * d_in + k];
      y[(gsize)i * d_out + o] = (float)acc;
    }
}

/* sum a[i] b[i] over n, 32 partial sums (enough independent FMA chains to
 * keep up with memory for any vector width) */
MM_INLINE float
dot (const float *restrict a, const float *restrict b, int n)
{
  float acc[32] = { 0 };
  int i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 32; l++)
      acc[l] += a[i + l] * b[i + l];
  float s = 0.0f;
  for (; i < n; i++)
    s += a[i] * b[i];
  for (int w = 16; w > 0; w /= 2)
    for (int l = 0; l < w; l++)
      acc[l] += acc[l + w];
  return s + acc[0];
}

/* out[r] = sum_i x_r[i] w[i] for the four rows x_r = x + r * ldx: one read
 * of w serves four dot products, 16 partial sums each. */
MM_INLINE void
dot4 (float *out, const float *restrict x, gsize ldx, const float *restrict w, int n)
{
  float a0[16] = { 0 }, a1[16] = { 0 }, a2[16] = { 0 }, a3[16] = { 0 };
  const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) {
      float wv = w[i + l];
      a0[l] += x0[i + l] * wv;
      a1[l] += x1[i + l] * wv;
      a2[l] += x2[i + l] * wv;
      a3[l] += x3[i + l] * wv;
    }
  float t[4] = { 0 };
  for (; i < n; i++) {
    t[0] += x0[i] * w[i];
    t[1] += x1[i] * w[i];
    t[2] += x2[i] * w[i];
    t[3] += x3[i] * w[i];
  }
  for (int l = 0; l < 16; l++) {
    t[0] += a0[l];
    t[1] += a1[l];
    t[2] += a2[l];
    t[3] += a3[l];
  }
  memcpy (out, t, sizeof t);
}

#define LINEAR_FEW_ROWS 4

/* mm_linear for a few rows: OpenBLAS's sgemm is a poor GEMV (it packs W
 * even for one row), while this streams W once per four rows of x, at
 * memory speed. */
static MM_SIMD void
linear_few_rows (
    float *y, const float *x, const float *w, const float *b, int n, int d_in, int d_out)
{
  for (int o = 0; o < d_out; o++) {
    const float *wo = w + (gsize)o * d_in;
    float bias = b ? b[o] : 0.0f;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
      float t[4];
      dot4 (t, x + (gsize)i * d_in, d_in, wo, d_in);
      for (int r = 0; r < 4; r++)
        y[(gsize)(i + r) * d_out + o] = t[r] + bias;
    }
    for (; i < n; i++)
      y[(gsize)i * d_out + o] = dot (x + (gsize)i * d_in, wo, d_in) + bias;
  }
}

/* y (n, d_out) = x (n, d_in) W^T + b;   W (d_out, d_in), b (d_out) or NULL */
void
mm_linear (float *y, const float *x, const float *w, const float *b, int n, int d_in, int d_out)
{
  if (n <= 0 || d_out <= 0)
    return;
  if (use_reference) {
    linear_reference (y, x, w, b, n, d_in, d_out);
    return;
  }
  if (n <= LINEAR_FEW_ROWS) {
    linear_few_rows (y, x, w, b, n, d_in, d_out);
    return;
  }
  mm_sgemm (FALSE, TRUE, n, d_out, d_in, 1.0f, x, MAX (d_in, 1), w, MAX (d_in, 1), 0.0f, y, d_out);
  if (b)
    add_row_bias (y, b, n, d_out);
}

/* ------------------------------------------------------------------ */
/* Convolution                                                         */

/* conv2d and conv1d share one implementation: conv1d is a conv2d of
 * height 1, with its own stride and padding along the width only. */
typedef struct
{
  int c_in, h, w;
  int c_out, kh, kw;
  int sh, sw, ph, pw;
  int groups;
  int h_out, w_out;
} ConvShape;

/* PyTorch's floor-mode output size, 0 when no window fits (where plain
 * integer division would round a negative numerator up to 1). */
static int
out_size (int in, int kernel, int stride, int pad)
{
  if (in <= 0 || kernel <= 0 || stride <= 0 || pad < 0 || in + 2 * pad < kernel)
    return 0;
  return (in + 2 * pad - kernel) / stride + 1;
}

static gboolean
conv_shape_init (ConvShape *s, int c_in, int h, int w, int c_out, int kh, int kw, int sh, int sw,
    int ph, int pw, int groups)
{
  *s = (ConvShape){ c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, groups, 0, 0 };
  if (c_in <= 0 || c_out <= 0 || groups <= 0 || c_in % groups || c_out % groups)
    return FALSE;
  s->h_out = out_size (h, kh, sh, ph);
  s->w_out = out_size (w, kw, sw, pw);
  return s->h_out > 0 && s->w_out > 0;
}

/* 1x1, stride 1, no padding: the input already is the GEMM operand. */
static gboolean
conv_is_pointwise (const ConvShape *s)
{
  return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0;
}

/* One input channel per group (depthwise and its channel-multiplier
 * variant): a GEMM with K = kh*kw would be mostly overhead, a direct loop
 * is faster and needs no scratch.  A plain conv of a single-channel input
 * (groups 1) still goes through im2col + GEMM. */
static gboolean
conv_is_direct (const ConvShape *s)
{
  return s->groups > 1 && s->c_in == s->groups;
}

static gsize
conv_scratch (const ConvShape *s)
{
  if (conv_is_pointwise (s) || conv_is_direct (s))
    return 0;
  return (gsize)(s->c_in / s->groups) * s->kh * s->kw * s->h_out * s->w_out;
}

/* Range [lo, hi) of outputs o whose input index o * stride - pad + k lies
 * in [0, in). */
static void
valid_range (int n_out, int in, int stride, int pad, int k, int *lo, int *hi)
{
  int first = pad - k; /* o * stride >= first */
  int a = first <= 0 ? 0 : (first + stride - 1) / stride;
  int last = in - 1 + pad - k; /* o * stride <= last */
  int b = last < 0 ? 0 : MIN (n_out, last / stride + 1);
  *lo = MIN (a, b);
  *hi = b;
}

/* dst[ox] = src[ox * stride] for ox in [lo, hi), 0 elsewhere in [0, n):
 * plain loops, not memcpy/memset calls, because the rows are short (tens
 * of floats) and a call per piece cost more than the copy; the stride-1
 * and stride-2 cases get their own vectorised loops. */
MM_INLINE void
im2col_row (float *restrict dst, const float *restrict src, int n, int lo, int hi, int stride)
{
  for (int ox = 0; ox < lo; ox++)
    dst[ox] = 0.0f;
  if (stride == 1)
    for (int ox = lo; ox < hi; ox++)
      dst[ox] = src[ox];
  else if (stride == 2)
    for (int ox = lo; ox < hi; ox++)
      dst[ox] = src[2 * ox];
  else
    for (int ox = lo; ox < hi; ox++)
      dst[ox] = src[ox * stride];
  for (int ox = hi; ox < n; ox++)
    dst[ox] = 0.0f;
}

/* cols (c_n * kh * kw, (oy1 - oy0) * w_out) = im2col of output rows
 * [oy0, oy1) of x (c_n, h, w); row (c, ki, kj) holds, for each of those
 * output positions, the input pixel under kernel tap (ki, kj), or 0 in the
 * padding. */
static MM_SIMD void
im2col (float *cols, const float *x, int c_n, const ConvShape *s, int oy0, int oy1)
{
  gsize n_pos = (gsize)(oy1 - oy0) * s->w_out;
  for (int c = 0; c < c_n; c++) {
    const float *xc = x + (gsize)c * s->h * s->w;
    for (int ki = 0; ki < s->kh; ki++)
      for (int kj = 0; kj < s->kw; kj++) {
        float *row = cols + ((gsize)(c * s->kh + ki) * s->kw + kj) * n_pos;
        int lo, hi;
        valid_range (s->w_out, s->w, s->sw, s->pw, kj, &lo, &hi);
        for (int oy = oy0; oy < oy1; oy++) {
          float *dst = row + (gsize)(oy - oy0) * s->w_out;
          int iy = oy * s->sh - s->ph + ki;
          if (iy < 0 || iy >= s->h)
            im2col_row (dst, xc, s->w_out, 0, 0, 1);
          else
            im2col_row (dst, xc + (gsize)iy * s->w - s->pw + kj, s->w_out, lo, hi, s->sw);
        }
      }
  }
}

/* y (c_out, h_out, w_out) += b per channel */
static MM_SIMD void
add_channel_bias (float *y, const float *b, int c, gsize n)
{
  for (int i = 0; i < c; i++) {
    float *yc = y + (gsize)i * n;
    float bi = b[i];
    for (gsize j = 0; j < n; j++)
      yc[j] += bi;
  }
}

/* Outputs [lo, hi) whose three taps all fall inside the input row. */
static void
interior3 (int w_out, int w, int stride, int pad, int *lo, int *hi)
{
  int unused;
  valid_range (w_out, w, stride, pad, 0, lo, &unused);
  valid_range (w_out, w, stride, pad, 2, &unused, hi);
  *hi = MAX (*hi, *lo);
}

/* yr[ox] += sum_kj w[kj] x[ox * stride - pad + kj] for a 3-wide kernel row
 * over [0, w_out), taps outside the input row xr (w) skipped.  Interior
 * outputs [lo, hi) (all three taps inside, see interior3) take one
 * vectorised pass. */
MM_INLINE void
row_taps3 (float *restrict yr, const float *restrict xr, int w, int w_out, int stride, int pad,
    const float *wk, int lo, int hi)
{
  float w0 = wk[0], w1 = wk[1], w2 = wk[2];
  const float *restrict src = xr - pad;
  if (stride == 1)
    for (int ox = lo; ox < hi; ox++)
      yr[ox] += w0 * src[ox] + w1 * src[ox + 1] + w2 * src[ox + 2];
  else
    for (int ox = lo; ox < hi; ox++)
      yr[ox] += w0 * src[ox * stride] + w1 * src[ox * stride + 1] + w2 * src[ox * stride + 2];
  for (int ox = 0; ox < w_out; ox++) {
    if (ox == lo)
      ox = MAX (hi, lo); /* skip the interior */
    if (ox >= w_out)
      break;
    for (int kj = 0; kj < 3; kj++) {
      int ix = ox * stride - pad + kj;
      if (ix >= 0 && ix < w)
        yr[ox] += wk[kj] * xr[ix];
    }
  }
}

/* Outputs per vector block in row_taps3x3 (one AVX-512 register). */
#define DW_BLOCK 16

/* yr (w_out) = bias + 3x3 kernel over the input rows x0, x1, x2 (all
 * inside the input), taps in the horizontal padding skipped.  The interior
 * [lo, hi) goes in fixed blocks of DW_BLOCK outputs, which the compiler
 * turns into straight vector code; the last block is shifted back to end
 * at hi, recomputing a few outputs, which is harmless because outputs are
 * assigned, not accumulated. */
MM_INLINE void
row_taps3x3 (float *restrict yr, const float *restrict x0, const float *restrict x1,
    const float *restrict x2, int w, int w_out, int stride, int pad, const float *wk, float bias,
    int lo, int hi)
{
  float a0 = wk[0], a1 = wk[1], a2 = wk[2], b0 = wk[3], b1 = wk[4], b2 = wk[5];
  float c0 = wk[6], c1 = wk[7], c2 = wk[8];
  const float *restrict s0 = x0 - pad, *restrict s1 = x1 - pad, *restrict s2 = x2 - pad;
#define TAPS9(i)                                                                                   \
  (a0 * s0[i] + a1 * s0[(i) + 1] + a2 * s0[(i) + 2] + b0 * s1[i] + b1 * s1[(i) + 1]                \
      + b2 * s1[(i) + 2] + c0 * s2[i] + c1 * s2[(i) + 1] + c2 * s2[(i) + 2])
  if (hi - lo >= DW_BLOCK) {
    for (int ox = lo;; ox += DW_BLOCK) {
      ox = MIN (ox, hi - DW_BLOCK);
      if (stride == 1)
        for (int l = 0; l < DW_BLOCK; l++)
          yr[ox + l] = bias + TAPS9 (ox + l);
      else
        for (int l = 0; l < DW_BLOCK; l++)
          yr[ox + l] = bias + TAPS9 ((ox + l) * stride);
      if (ox + DW_BLOCK >= hi)
        break;
    }
  } else {
    for (int ox = lo; ox < hi; ox++)
      yr[ox] = bias + TAPS9 (ox * stride);
  }
#undef TAPS9
  const float *rows[3] = { x0, x1, x2 };
  for (int ox = 0; ox < w_out; ox++) {
    if (ox == lo)
      ox = hi; /* skip the interior */
    if (ox >= w_out)
      break;
    float acc = bias;
    for (int kj = 0; kj < 3; kj++) {
      int ix = ox * stride - pad + kj;
      if (ix >= 0 && ix < w)
        for (int r = 0; r < 3; r++)
          acc += wk[r * 3 + kj] * rows[r][ix];
    }
    yr[ox] = acc;
  }
}

/* Direct conv for one input channel per group: output channel oc reads
 * input channel oc / (c_out / groups).  Kernel row by kernel row, each
 * valid output row gets the taps of that row added; the planes stay in L1.
 * 3x3 kernels (the usual depthwise case) take all nine taps in one pass
 * where the three input rows exist, 3-wide kernels one kernel row per
 * pass, others go tap by tap (an axpy per tap with stride 1). */
static MM_SIMD void
conv_direct (float *y, const float *x, const float *w, const float *b, const ConvShape *s)
{
  int per_group = s->c_out / s->groups;
  gsize n_pos = (gsize)s->h_out * s->w_out;
  for (int oc = 0; oc < s->c_out; oc++) {
    const float *xc = x + (gsize)(oc / per_group) * s->h * s->w;
    const float *wc = w + (gsize)oc * s->kh * s->kw;
    float *yc = y + (gsize)oc * n_pos;
    float bias = b ? b[oc] : 0.0f;
    for (gsize i = 0; i < n_pos; i++)
      yc[i] = bias;
    gboolean is3x3 = s->kh == 3 && s->kw == 3;
    int lo3 = 0, hi3 = 0;
    if (s->kw == 3)
      interior3 (s->w_out, s->w, s->sw, s->pw, &lo3, &hi3);
    for (int oy = 0; is3x3 && oy < s->h_out; oy++) {
      int iy = oy * s->sh - s->ph;
      if (iy < 0 || iy + 2 >= s->h)
        continue; /* done row by row below */
      const float *x0 = xc + (gsize)iy * s->w;
      row_taps3x3 (yc + (gsize)oy * s->w_out, x0, x0 + s->w, x0 + 2 * s->w, s->w, s->w_out, s->sw,
          s->pw, wc, bias, lo3, hi3);
    }
    for (int ki = 0; ki < s->kh; ki++) {
      int oy_lo, oy_hi;
      valid_range (s->h_out, s->h, s->sh, s->ph, ki, &oy_lo, &oy_hi);
      if (s->kw == 3) {
        for (int oy = oy_lo; oy < oy_hi; oy++) {
          int iy = oy * s->sh - s->ph;
          if (is3x3 && iy >= 0 && iy + 2 < s->h)
            continue; /* all three rows done above */
          row_taps3 (yc + (gsize)oy * s->w_out, xc + (gsize)(iy + ki) * s->w, s->w, s->w_out, s->sw,
              s->pw, wc + ki * 3, lo3, hi3);
        }
        continue;
      }
      for (int kj = 0; kj < s->kw; kj++) {
        int lo, hi;
        valid_range (s->w_out, s->w, s->sw, s->pw, kj, &lo, &hi);
        float wv = wc[ki * s->kw + kj];
        for (int oy = oy_lo; oy < oy_hi; oy++) {
          float *yr = yc + (gsize)oy * s->w_out;
          const float *src = xc + (gsize)(oy * s->sh - s->ph + ki) * s->w - s->pw + kj;
          if (s->sw == 1)
            for (int ox = lo; ox < hi; ox++)
              yr[ox] += wv * src[ox];
          else
            for (int ox = lo; ox < hi; ox++)
              yr[ox] += wv * src[ox * s->sw];
        }
      }
    }
  }
}

static void
conv_reference (float *y, const float *x, const float *w, const float *b, const ConvShape *s)
{
  int cig = s->c_in / s->groups, cog = s->c_out / s->groups;
  for (int oc = 0; oc < s->c_out; oc++) {
    int g = oc / cog;
    for (int oy = 0; oy < s->h_out; oy++)
      for (int ox = 0; ox < s->w_out; ox++) {
        double acc = b ? b[oc] : 0.0;
        for (int ic = 0; ic < cig; ic++)
          for (int ki = 0; ki < s->kh; ki++)
            for (int kj = 0; kj < s->kw; kj++) {
              int iy = oy * s->sh - s->ph + ki, ix = ox * s->sw - s->pw + kj;
              if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                continue;
              acc += (double)w[(((gsize)oc * cig + ic) * s->kh + ki) * s->kw + kj]
                  * x[(((gsize)g * cig + ic) * s->h + iy) * s->w + ix];
            }
        y[((gsize)oc * s->h_out + oy) * s->w_out + ox] = (float)acc;
      }
  }
}

/* Output rows per im2col block: the whole output when its im2col matrix
 * is small, else blocks of about IM2COL_BLOCK floats (so the matrix is
 * still in cache when the GEMM packs it) but at least IM2COL_MIN_N
 * positions wide (narrower GEMMs lose more than the cache saves). */
#define IM2COL_BLOCK (64 * 1024)
#define IM2COL_MIN_N 256
static int
im2col_rows (const ConvShape *s, int k)
{
  gsize row = (gsize)k * s->w_out;
  int rows = (int)MAX (IM2COL_BLOCK / row, 1);
  rows = MAX (rows, (IM2COL_MIN_N + s->w_out - 1) / s->w_out);
  return MIN (rows, s->h_out);
}

/* Per group g: y_g (c_out/g, P) = W_g (c_out/g, K) cols_g (K, P), with
 * K = c_in/g * kh * kw and P = h_out * w_out. */
static void
conv_run (
    float *y, const float *x, const float *w, const float *b, const ConvShape *s, float *scratch)
{
  if (use_reference) {
    conv_reference (y, x, w, b, s);
    return;
  }
  if (conv_is_direct (s)) {
    conv_direct (y, x, w, b, s);
    return;
  }
  int cig = s->c_in / s->groups, cog = s->c_out / s->groups;
  int k = cig * s->kh * s->kw;
  int n_pos = s->h_out * s->w_out;
  gboolean pointwise = conv_is_pointwise (s);
  int rows = pointwise ? s->h_out : im2col_rows (s, k);
  for (int g = 0; g < s->groups; g++) {
    const float *xg = x + (gsize)g * cig * s->h * s->w;
    const float *wg = w + (gsize)g * cog * k;
    float *yg = y + (gsize)g * cog * n_pos;
    if (pointwise) {
      mm_sgemm (FALSE, FALSE, cog, n_pos, k, 1.0f, wg, k, xg, n_pos, 0.0f, yg, n_pos);
      continue;
    }
    /* output rows in blocks: y_g[:, block] = W_g cols (block) */
    for (int oy0 = 0; oy0 < s->h_out; oy0 += rows) {
      int oy1 = MIN (oy0 + rows, s->h_out), n = (oy1 - oy0) * s->w_out;
      im2col (scratch, xg, cig, s, oy0, oy1);
      mm_sgemm (FALSE, FALSE, cog, n, k, 1.0f, wg, k, scratch, n, 0.0f, yg + (gsize)oy0 * s->w_out,
          n_pos);
    }
  }
  if (b)
    add_channel_bias (y, b, s->c_out, n_pos);
}

gsize
mm_conv2d_scratch_size (int c_in, int h, int w, int kh, int kw, int stride, int pad, int groups)
{
  ConvShape s;
  /* c_out does not change the scratch; groups is a valid stand-in */
  if (!conv_shape_init (&s, c_in, h, w, groups, kh, kw, stride, stride, pad, pad, groups))
    return 0;
  return conv_scratch (&s);
}

/* y (c_out, h_out, w_out) = conv2d (x (c_in, h, w), W (c_out, c_in/groups, kh, kw)) + b */
void
mm_conv2d (float *y, const float *x, const float *w, const float *b, int c_in, int h, int wd,
    int c_out, int kh, int kw, int stride, int pad, int groups, float *scratch)
{
  ConvShape s;
  g_return_if_fail (
      conv_shape_init (&s, c_in, h, wd, c_out, kh, kw, stride, stride, pad, pad, groups));
  conv_run (y, x, w, b, &s, scratch);
}

gsize
mm_conv1d_scratch_size (int c_in, int t, int k, int stride, int pad, int groups)
{
  ConvShape s;
  if (!conv_shape_init (&s, c_in, 1, t, groups, 1, k, 1, stride, 0, pad, groups))
    return 0;
  return conv_scratch (&s);
}

/* y (c_out, t_out) = conv1d (x (c_in, t), W (c_out, c_in/groups, k)) + b */
void
mm_conv1d (float *y, const float *x, const float *w, const float *b, int c_in, int t, int c_out,
    int k, int stride, int pad, int groups, float *scratch)
{
  ConvShape s;
  g_return_if_fail (conv_shape_init (&s, c_in, 1, t, c_out, 1, k, 1, stride, 0, pad, groups));
  conv_run (y, x, w, b, &s, scratch);
}

/* ------------------------------------------------------------------ */
/* Normalisation and pooling                                           */

void
mm_batchnorm_fold (float *scale, float *shift, const float *gamma, const float *beta,
    const float *mean, const float *var, int c, float eps)
{
  for (int i = 0; i < c; i++) {
    double g = gamma ? gamma[i] : 1.0;
    double sc = g / sqrt ((double)var[i] + eps);
    scale[i] = (float)sc;
    shift[i] = (float)((beta ? beta[i] : 0.0) - mean[i] * sc);
  }
}

/* x (c, n) = x * scale[c] + shift[c], in place; NULL scale = 1, shift = 0 */
MM_SIMD void
mm_channel_affine (float *x, int c, int n, const float *scale, const float *shift)
{
  for (int i = 0; i < c; i++) {
    float *xc = x + (gsize)i * n;
    float a = scale ? scale[i] : 1.0f, s = shift ? shift[i] : 0.0f;
    for (int j = 0; j < n; j++)
      xc[j] = xc[j] * a + s;
  }
}

/* Max pool: for each output row, the max over the valid kernel rows of
 * the per-row window max.  Padding never wins (PyTorch pads with -inf); a
 * window with no input at all (only with pad > k/2, which PyTorch refuses)
 * gives 0. */
MM_SIMD void
mm_maxpool2d (float *y, const float *x, int c, int h, int w, int k, int stride, int pad)
{
  int h_out = out_size (h, k, stride, pad), w_out = out_size (w, k, stride, pad);
  if (c <= 0 || h_out <= 0 || w_out <= 0)
    return;
  for (int ch = 0; ch < c; ch++) {
    const float *xc = x + (gsize)ch * h * w;
    float *yc = y + (gsize)ch * h_out * w_out;
    for (int oy = 0; oy < h_out; oy++) {
      int y0 = MAX (oy * stride - pad, 0), y1 = MIN (oy * stride - pad + k, h);
      float *yr = yc + (gsize)oy * w_out;
      for (int ox = 0; ox < w_out; ox++) {
        int x0 = MAX (ox * stride - pad, 0), x1 = MIN (ox * stride - pad + k, w);
        float m = -INFINITY;
        for (int iy = y0; iy < y1; iy++) {
          const float *xr = xc + (gsize)iy * w;
          for (int ix = x0; ix < x1; ix++)
            m = xr[ix] > m ? xr[ix] : m;
        }
        yr[ox] = (y0 < y1 && x0 < x1) ? m : 0.0f;
      }
    }
  }
}

/* Average pool, count_include_pad=True: the divisor is the window clipped
 * to the padded input (always k*k in floor mode), as PyTorch computes it. */
MM_SIMD void
mm_avgpool2d (float *y, const float *x, int c, int h, int w, int k, int stride, int pad)
{
  int h_out = out_size (h, k, stride, pad), w_out = out_size (w, k, stride, pad);
  if (c <= 0 || h_out <= 0 || w_out <= 0)
    return;
  for (int ch = 0; ch < c; ch++) {
    const float *xc = x + (gsize)ch * h * w;
    float *yc = y + (gsize)ch * h_out * w_out;
    for (int oy = 0; oy < h_out; oy++) {
      int ys = oy * stride - pad, ye = MIN (ys + k, h + pad);
      int y0 = MAX (ys, 0), y1 = MIN (ye, h);
      float *yr = yc + (gsize)oy * w_out;
      for (int ox = 0; ox < w_out; ox++) {
        int xs = ox * stride - pad, xe = MIN (xs + k, w + pad);
        int x0 = MAX (xs, 0), x1 = MIN (xe, w);
        float sum = 0.0f;
        for (int iy = y0; iy < y1; iy++) {
          const float *xr = xc + (gsize)iy * w;
          for (int ix = x0; ix < x1; ix++)
            sum += xr[ix];
        }
        yr[ox] = sum / (float)((ye - ys) * (xe - xs));
      }
    }
  }
}

/* Sum of n floats with eight independent partial sums: vectorisable
 * without -ffast-math, and more accurate than one running sum. */
MM_INLINE float
sum_floats (const float *x, int n)
{
  float acc[8] = { 0 };
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++)
      acc[l] += x[i + l];
  float s = 0.0f;
  for (; i < n; i++)
    s += x[i];
  return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Max of n >= 1 floats, eight running maxima as in sum_floats. */
MM_INLINE float
max_floats (const float *x, int n)
{
  float acc[8];
  for (int l = 0; l < 8; l++)
    acc[l] = x[0];
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++)
      acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  float m = x[0];
  for (; i < n; i++)
    m = x[i] > m ? x[i] : m;
  for (int l = 0; l < 8; l++)
    m = acc[l] > m ? acc[l] : m;
  return m;
}

/* y (c) = mean over n of x (c, n) */
void
mm_global_avgpool (float *y, const float *x, int c, int n)
{
  for (int i = 0; i < c; i++)
    y[i] = n > 0 ? sum_floats (x + (gsize)i * n, n) / (float)n : 0.0f;
}

/* y (c) = max over n of x (c, n) */
void
mm_global_maxpool (float *y, const float *x, int c, int n)
{
  for (int i = 0; i < c; i++)
    y[i] = n > 0 ? max_floats (x + (gsize)i * n, n) : 0.0f;
}

static void
layernorm_reference (
    float *y, const float *x, int n, int d, const float *gamma, const float *beta, float eps)
{
  for (int i = 0; i < n; i++) {
    const float *xi = x + (gsize)i * d;
    float *yi = y + (gsize)i * d;
    double mean = 0.0, var = 0.0;
    for (int j = 0; j < d; j++)
      mean += xi[j];
    mean /= d;
    for (int j = 0; j < d; j++)
      var += (xi[j] - mean) * (xi[j] - mean);
    var /= d;
    double rstd = 1.0 / sqrt (var + eps);
    for (int j = 0; j < d; j++)
      yi[j] = (float)((xi[j] - mean) * rstd * (gamma ? gamma[j] : 1.0) + (beta ? beta[j] : 0.0));
  }
}

/* *s1 = sum (x - mean), *s2 = sum (x - mean)^2, with partial sums as
 * above. */
MM_INLINE void
sum_dev (const float *x, int n, float mean, float *s1, float *s2)
{
  float a1[8] = { 0 }, a2[8] = { 0 };
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      float dv = x[i + l] - mean;
      a1[l] += dv;
      a2[l] += dv * dv;
    }
  float t1 = 0.0f, t2 = 0.0f;
  for (; i < n; i++) {
    t1 += x[i] - mean;
    t2 += (x[i] - mean) * (x[i] - mean);
  }
  for (int l = 0; l < 8; l++) {
    t1 += a1[l];
    t2 += a2[l];
  }
  *s1 = t1;
  *s2 = t2;
}

/* y (n, d) = (x - mean) / sqrt (var + eps) * gamma + beta per row, biased
 * variance. */
MM_SIMD void
mm_layernorm (
    float *y, const float *x, int n, int d, const float *gamma, const float *beta, float eps)
{
  if (d <= 0)
    return;
  if (use_reference) {
    layernorm_reference (y, x, n, d, gamma, beta, eps);
    return;
  }
  for (int i = 0; i < n; i++) {
    const float *xi = x + (gsize)i * d;
    float *yi = y + (gsize)i * d;
    /* corrected two-pass: the float mean of a row with a large offset is
     * off by a few ulps of the offset; sum (x - mean) measures that error
     * exactly enough to remove it from both the mean and the variance */
    float mean = sum_floats (xi, d) / (float)d, s1, s2;
    sum_dev (xi, d, mean, &s1, &s2);
    float delta = s1 / (float)d;
    float var = MAX (s2 / (float)d - delta * delta, 0.0f);
    float rstd = 1.0f / sqrtf (var + eps);
    /* x - mean is exact; mean + delta would round to the offset's ulp */
    if (gamma && beta)
      for (int j = 0; j < d; j++)
        yi[j] = ((xi[j] - mean) - delta) * rstd * gamma[j] + beta[j];
    else
      for (int j = 0; j < d; j++)
        yi[j] =
            ((xi[j] - mean) - delta) * rstd * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
  }
}

/* ------------------------------------------------------------------ */
/* Activations                                                         */

MM_SIMD void
mm_relu (float *x, gsize n)
{
  for (gsize i = 0; i < n; i++)
    x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

MM_SIMD void
mm_gelu (float *x, gsize n)
{
  if (use_reference) {
    for (gsize i = 0; i < n; i++)
      x[i] = (float)(0.5 * x[i] * (1.0 + erf (x[i] * M_SQRT1_2)));
    return;
  }
  for (gsize i = 0; i < n; i++)
    x[i] = 0.5f * x[i] * (1.0f + erf_fast (x[i] * (float)M_SQRT1_2));
}

MM_SIMD void
mm_silu (float *x, gsize n)
{
  if (use_reference) {
    for (gsize i = 0; i < n; i++)
      x[i] = (float)(x[i] / (1.0 + exp (-(double)x[i])));
    return;
  }
  for (gsize i = 0; i < n; i++)
    x[i] = x[i] / (1.0f + exp_fast (-x[i]));
}

MM_SIMD void
mm_tanh (float *x, gsize n)
{
  if (use_reference) {
    for (gsize i = 0; i < n; i++)
      x[i] = tanhf (x[i]);
    return;
  }
  for (gsize i = 0; i < n; i++)
    x[i] = tanh_fast (x[i]);
}

MM_SIMD void
mm_sigmoid (float *x, gsize n)
{
  if (use_reference) {
    for (gsize i = 0; i < n; i++)
      x[i] = (float)(1.0 / (1.0 + exp (-(double)x[i])));
    return;
  }
  for (gsize i = 0; i < n; i++)
    x[i] = 1.0f / (1.0f + exp_fast (-x[i]));
}

/* row (d) = softmax (row), in place */
static MM_SIMD void
softmax_row (float *row, int d)
{
  float m = max_floats (row, d);
  for (int j = 0; j < d; j++)
    row[j] = exp_fast (row[j] - m);
  float inv = 1.0f / sum_floats (row, d);
  for (int j = 0; j < d; j++)
    row[j] *= inv;
}

static void
softmax_row_reference (float *row, int d, const guint8 *valid)
{
  double m = -INFINITY, sum = 0.0;
  for (int j = 0; j < d; j++)
    if (!valid || valid[j])
      m = MAX (m, row[j]);
  if (m == -INFINITY) { /* nothing to attend to */
    memset (row, 0, sizeof (float) * d);
    return;
  }
  for (int j = 0; j < d; j++)
    sum += (!valid || valid[j]) ? exp (row[j] - m) : 0.0;
  for (int j = 0; j < d; j++)
    row[j] = (!valid || valid[j]) ? (float)(exp (row[j] - m) / sum) : 0.0f;
}

void
mm_softmax (float *x, int n, int d)
{
  if (d <= 0)
    return;
  for (int i = 0; i < n; i++) {
    if (use_reference)
      softmax_row_reference (x + (gsize)i * d, d, NULL);
    else
      softmax_row (x + (gsize)i * d, d);
  }
}

MM_SIMD void
mm_add (float *y, const float *x, gsize n)
{
  for (gsize i = 0; i < n; i++)
    y[i] += x[i];
}

/* y (n, d) = table[ids[i]] */
void
mm_embedding (float *y, const float *table, const gint32 *ids, int n, int d)
{
  for (int i = 0; i < n; i++)
    memcpy (y + (gsize)i * d, table + (gsize)ids[i] * d, sizeof (float) * d);
}

/* ------------------------------------------------------------------ */
/* Attention                                                           */

/* Masked keys are dropped by zeroing their weight after the max-subtracted
 * exp, rather than adding -inf, so an all-masked row is simply all zeros. */
static MM_SIMD void
softmax_row_masked (float *row, int d, const guint8 *valid)
{
  float m = -INFINITY;
  for (int j = 0; j < d; j++)
    m = valid[j] && row[j] > m ? row[j] : m;
  if (m == -INFINITY) {
    memset (row, 0, sizeof (float) * d);
    return;
  }
  for (int j = 0; j < d; j++)
    row[j] = valid[j] ? exp_fast (row[j] - m) : 0.0f;
  float inv = 1.0f / sum_floats (row, d);
  for (int j = 0; j < d; j++)
    row[j] *= inv;
}

static void
attention_reference (float *y, const float *q, const float *k, const float *v, int n_q, int n_k,
    int d, int heads, const guint8 *key_valid, float *scores)
{
  int dh = d / heads;
  double scale = 1.0 / sqrt ((double)dh);
  for (int hd = 0; hd < heads; hd++) {
    int off = hd * dh;
    for (int i = 0; i < n_q; i++) {
      float *s = scores + (gsize)i * n_k;
      for (int j = 0; j < n_k; j++) {
        double acc = 0.0;
        for (int c = 0; c < dh; c++)
          acc += (double)q[(gsize)i * d + off + c] * k[(gsize)j * d + off + c];
        s[j] = (float)(acc * scale);
      }
      softmax_row_reference (s, n_k, key_valid);
      for (int c = 0; c < dh; c++) {
        double acc = 0.0;
        for (int j = 0; j < n_k; j++)
          acc += (double)s[j] * v[(gsize)j * d + off + c];
        y[(gsize)i * d + off + c] = (float)acc;
      }
    }
  }
}

/* Per head h (columns h*dh .. (h+1)*dh of q, k, v and y, dh = d / heads):
 *   S (n_q, n_k) = q_h k_h^T / sqrt (dh),  masked row softmax,
 *   y_h (n_q, dh) = S v_h. */
void
mm_attention (float *y, const float *q, const float *k, const float *v, int n_q, int n_k, int d,
    int heads, const guint8 *key_valid, float *scratch)
{
  g_return_if_fail (heads > 0 && d % heads == 0);
  if (n_q <= 0 || d <= 0)
    return;
  if (n_k <= 0) {
    memset (y, 0, sizeof (float) * n_q * d);
    return;
  }
  if (use_reference) {
    attention_reference (y, q, k, v, n_q, n_k, d, heads, key_valid, scratch);
    return;
  }
  int dh = d / heads;
  float scale = (float)(1.0 / sqrt ((double)dh));
  for (int hd = 0; hd < heads; hd++) {
    int off = hd * dh;
    mm_sgemm (FALSE, TRUE, n_q, n_k, dh, scale, q + off, d, k + off, d, 0.0f, scratch, n_k);
    for (int i = 0; i < n_q; i++) {
      if (key_valid)
        softmax_row_masked (scratch + (gsize)i * n_k, n_k, key_valid);
      else
        softmax_row (scratch + (gsize)i * n_k, n_k);
    }
    mm_sgemm (FALSE, FALSE, n_q, dh, n_k, 1.0f, scratch, n_k, v + off, d, 0.0f, y + off, d);
  }
}
