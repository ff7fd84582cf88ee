/* libmm: fused multi-head self-attention (online softmax over key tiles).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Per head: the keys are packed transposed and scaled by 1 / sqrt (dh), a
 * tile of up to AT_TK keys at a time (Kt, dh x tk each, zero columns past
 * n) and the values padded to whole vectors (Vp, np x dhp, np = n rounded
 * up to 16).  Then for each key tile, and for each block of AT_R query rows
 * while the tile is in cache:
 *   S (AT_R x tk) = Q Kt                  broadcast q, vector over keys
 *   m' = max (m, max S), a = e^(m - m'), P = e^(S - m'), l = a l + sum P
 *   O (AT_R x dhp) = a O + P Vp           broadcast p, vector over dh
 * and at the end y = O / l: the running maximum and sum of flash attention
 * (Dao et al. 2022): the scratch is per row (O, m, l) and one S block,
 * linear in n, never an n x n matrix.  GCC
 * vector extensions, cloned per ISA (AVX-512, AVX2, SSE2), like conv-cl.c;
 * e^x is act-vec.h's polynomial (ops.c's softmax uses the same one).
 */
#include <math.h>
#include <string.h>

#include "clones.h"
#include "attention.h"
#include "act-vec.h"
#include "ops.h"

#define AT_R 4    /* query rows per block */
#define AT_TK 128 /* keys per tile */

#if defined(__GNUC__) && !defined(__clang__)
#define AT_VECTORIZE                                                                               \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define AT_VECTORIZE
#endif
#define AT_CLONES MM_TARGET_CLONES

/* 16 floats at any 4-byte aligned address */
typedef float AV16 __attribute__ ((vector_size (64), aligned (4), may_alias));

static inline gsize
round16 (gsize v)
{
  return (v + 15) & ~(gsize)15;
}

gsize
mm_attention_fused_scratch (int n, int dh)
{
  gsize np = round16 (MAX (n, 1)), dhp = round16 (MAX (dh, 1));
  /* Kt, Vp, output accumulators, max and sum per row, one S block; the
   * reference path's score row (n) fits in the same space */
  return (gsize)dh * np + 2 * np * dhp + 2 * np + AT_R * AT_TK;
}

/* ---------------------------------------------------------------------- */
/* Reference: the textbook loops in double, one score row at a time        */

static void
attention_reference (float *y, gsize ldy, const float *q, const float *k, const float *v, gsize ld,
    int n, int d, int heads, float *row)
{
  int dh = d / heads;
  double scale = 1.0 / sqrt ((double)dh);
  for (int hd = 0; hd < heads; hd++) {
    int off = hd * dh;
    for (int i = 0; i < n; i++) {
      double m = -INFINITY, sum = 0.0;
      for (int j = 0; j < n; j++) {
        double acc = 0.0;
        for (int c = 0; c < dh; c++)
          acc += (double)q[(gsize)i * ld + off + c] * k[(gsize)j * ld + off + c];
        row[j] = (float)(acc * scale);
        m = MAX (m, row[j]);
      }
      for (int j = 0; j < n; j++)
        sum += exp (row[j] - m);
      for (int j = 0; j < n; j++)
        row[j] = (float)(exp (row[j] - m) / sum);
      for (int c = 0; c < dh; c++) {
        double acc = 0.0;
        for (int j = 0; j < n; j++)
          acc += (double)row[j] * v[(gsize)j * ld + off + c];
        y[(gsize)i * ldy + off + c] = (float)acc;
      }
    }
  }
}

/* ---------------------------------------------------------------------- */
/* Fast path                                                               */

/* S[r][jb..jb + 16 NV) = sum over c < dh of q_r[c] Kt[c][jb..] (Kt: the
 * tile's keys, rows of tk floats) */
#define SCORES(NV)                                                                                 \
  do {                                                                                             \
    V16 a[AT_R][NV];                                                                               \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
        _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++) a[r][u] = v16_splat (0.0f);          \
    for (int c = 0; c < dh; c++) {                                                                 \
      const float *kc = ktile + (gsize)c * tk + jb;                                                \
      V16 kv[NV];                                                                                  \
      _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++) kv[u] = *(const AV16 *)(kc + 16 * u);  \
      _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                      \
      {                                                                                            \
        float qv = qr[r][c];                                                                       \
        _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++) a[r][u] += qv * kv[u];               \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
            _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++)                                  \
        * (AV16 *)(s + r * AT_TK + jb + 16 * u) = a[r][u];                                         \
  } while (0)

/* O[r][cb..cb + 16 NV) = alpha[r] O[r][cb..] + sum over j < tk of
 * P[r][j] Vp[j0 + j][cb..] */
#define PV(NV)                                                                                     \
  do {                                                                                             \
    V16 o[AT_R][NV];                                                                               \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
        _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++) o[r][u] =                            \
            alpha[r] * *(const AV16 *)(ob + r * dhp + cb + 16 * u);                                \
    for (int j = 0; j < tk; j++) {                                                                 \
      const float *vj = vp + (gsize)(j0 + j) * dhp + cb;                                           \
      V16 vv[NV];                                                                                  \
      _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++) vv[u] = *(const AV16 *)(vj + 16 * u);  \
      _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                      \
      {                                                                                            \
        float pv = s[r * AT_TK + j];                                                               \
        _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++) o[r][u] += pv * vv[u];               \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
            _Pragma ("GCC unroll 4") for (int u = 0; u < NV; u++)                                  \
        * (AV16 *)(ob + r * dhp + cb + 16 * u) = o[r][u];                                          \
  } while (0)

/* row[0..tk) = e^(row - m) for j < valid, 0 past it; returns the sum */
static inline __attribute__ ((always_inline)) float
exp_row (float *row, int tk, int valid, float m)
{
  V16 sum = v16_splat (0.0f);
  V16i lane = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
  for (int j = 0; j < tk; j += 16) {
    V16 x = *(const AV16 *)(row + j);
    V16 e = v16_exp (x - m);
    e = v16_sel (lane + j < valid, e, v16_splat (0.0f));
    *(AV16 *)(row + j) = e;
    sum += e;
  }
  float t = 0.0f;
  for (int u = 0; u < 16; u++)
    t += sum[u];
  return t;
}

static inline __attribute__ ((always_inline)) float
max_row (const float *row, int valid)
{
  V16 vm = v16_splat (-INFINITY);
  int j = 0;
  for (; j + 16 <= valid; j += 16) {
    V16 x = *(const AV16 *)(row + j);
    vm = v16_sel (x > vm, x, vm);
  }
  float m = -INFINITY;
  for (int u = 0; u < 16; u++)
    m = vm[u] > m ? vm[u] : m;
  for (; j < valid; j++)
    m = row[j] > m ? row[j] : m;
  return m;
}

/* Key tiles outer, query blocks inner: a tile's keys and values (AT_TK x
 * dh each, 32 KB at dh 64) stay in cache while every query block passes
 * over them; each query row keeps its output accumulator, maximum and sum
 * across tiles (scratch linear in n). */
static AT_VECTORIZE AT_CLONES void
attention_fast (float *y, gsize ldy, const float *q, const float *k, const float *v, gsize ld,
    int n, int d, int heads, float *scratch)
{
  int dh = d / heads;
  int np = (int)round16 (n), dhp = (int)round16 (dh);
  float *kt = scratch;                                  /* tiles of (dh, tk) */
  float *vp = kt + (gsize)dh * np;                      /* (np, dhp) */
  float *o = vp + (gsize)np * dhp;                      /* (np, dhp) output accumulators */
  float *mrow = o + (gsize)np * dhp, *lrow = mrow + np; /* (np) each */
  float *s = lrow + np;                                 /* (AT_R, AT_TK) */
  float scale = (float)(1.0 / sqrt ((double)dh));

  for (int hd = 0; hd < heads; hd++) {
    int off = hd * dh;
    for (int j0 = 0; j0 < np; j0 += AT_TK) {
      int tk = MIN (AT_TK, np - j0);
      float *ktile = kt + (gsize)j0 * dh;
      /* row by row: k's rows are contiguous, the tile (32 KB) stays in L1 */
      for (int j = 0; j < tk; j++) {
        const float *kj = k + (gsize)(j0 + j) * ld + off;
        if (j0 + j < n)
          for (int c = 0; c < dh; c++)
            ktile[(gsize)c * tk + j] = kj[c] * scale;
        else
          for (int c = 0; c < dh; c++)
            ktile[(gsize)c * tk + j] = 0.0f;
      }
    }
    for (int j = 0; j < np; j++) {
      float *vj = vp + (gsize)j * dhp;
      if (j < n)
        memcpy (vj, v + (gsize)j * ld + off, sizeof (float) * dh);
      else
        memset (vj, 0, sizeof (float) * dh);
      memset (vj + dh, 0, sizeof (float) * (dhp - dh));
    }
    memset (o, 0, sizeof (float) * np * dhp);
    for (int i = 0; i < np; i++) {
      mrow[i] = -INFINITY;
      lrow[i] = 0.0f;
    }

    for (int j0 = 0; j0 < np; j0 += AT_TK) {
      int tk = MIN (AT_TK, np - j0), valid = MIN (tk, n - j0);
      const float *ktile = kt + (gsize)j0 * dh;
      for (int i0 = 0; i0 < n; i0 += AT_R) {
        int rows = MIN (AT_R, n - i0);
        const float *qr[AT_R];
        float alpha[AT_R];
        float *ob = o + (gsize)i0 * dhp;
        /* rows past n repeat the last one into slots < np; never stored */
        for (int r = 0; r < AT_R; r++)
          qr[r] = q + (gsize)(i0 + MIN (r, rows - 1)) * ld + off;
        int jb = 0;
        for (; jb + 64 <= tk; jb += 64)
          SCORES (4);
        for (; jb + 32 <= tk; jb += 32)
          SCORES (2);
        for (; jb < tk; jb += 16)
          SCORES (1);
        for (int r = 0; r < AT_R; r++) {
          float *row = s + r * AT_TK;
          float *m = mrow + i0 + r, *l = lrow + i0 + r;
          float mnew = MAX (*m, max_row (row, valid));
          alpha[r] = *m == -INFINITY ? 0.0f : expf (*m - mnew);
          *l = *l * alpha[r] + exp_row (row, tk, valid, mnew);
          *m = mnew;
        }
        int cb = 0;
        for (; cb + 64 <= dhp; cb += 64)
          PV (4);
        for (; cb + 32 <= dhp; cb += 32)
          PV (2);
        for (; cb < dhp; cb += 16)
          PV (1);
      }
    }
    for (int i = 0; i < n; i++) {
      float inv = 1.0f / lrow[i];
      float *yr = y + (gsize)i * ldy + off;
      for (int c = 0; c < dh; c++)
        yr[c] = o[(gsize)i * dhp + c] * inv;
    }
  }
}

void
mm_attention_fused (float *y, gsize ldy, const float *q, const float *k, const float *v, gsize ld,
    int n, int d, int heads, float *scratch)
{
  g_return_if_fail (heads > 0 && d % heads == 0);
  if (n <= 0 || d <= 0)
    return;
  if (mm_ops_get_reference ())
    attention_reference (y, ldy, q, k, v, ld, n, d, heads, scratch);
  else
    attention_fast (y, ldy, q, k, v, ld, n, d, heads, scratch);
}
