/* libmm: fused multi-head self-attention (online softmax over key tiles).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Per head: the keys are packed transposed and scaled by 1 / sqrt (dh)
 * (Kt, dh x np, np = n rounded up to 16, zero columns past n) and the
 * values padded to whole vectors (Vp, np x dhp).  Then for each block of
 * AT_R query rows and each tile of up to AT_TK keys:
 *   S (AT_R x tk) = Q Kt                  broadcast q, vector over keys
 *   m' = max (m, max S), a = e^(m - m'), P = e^(S - m'), l = a l + sum P
 *   O (AT_R x dhp) = a O + P Vp           broadcast p, vector over dh
 * and at the end y = O / l: the running maximum and sum of flash attention
 * (Dao et al. 2022), so the scratch is a tile, not an n x n matrix.  GCC
 * vector extensions, cloned per ISA (AVX-512, AVX2, SSE2), like conv-cl.c;
 * e^x is act-vec.h's polynomial (ops.c's softmax uses the same one).
 */
#include <math.h>
#include <string.h>

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
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)          \
    && !defined(MM_NO_CLONES)
#define AT_CLONES __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AT_CLONES
#endif

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
  return (gsize)dh * np + np * dhp + AT_R * AT_TK + AT_R * dhp + (gsize)MAX (n, 1);
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

/* S[r][jb..jb + 16 NV) = sum over c < dh of q_r[c] Kt[c][jb..] */
#define SCORES(NV)                                                                                 \
  do {                                                                                             \
    V16 a[AT_R][NV];                                                                               \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
        _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++) a[r][u] = v16_splat (0.0f);          \
    for (int c = 0; c < dh; c++) {                                                                 \
      const float *kc = kt + (gsize)c * np + jb;                                                   \
      V16 kv[NV];                                                                                  \
      _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++) kv[u] = *(const AV16 *)(kc + 16 * u);  \
      _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                      \
      {                                                                                            \
        float qv = qr[r][c];                                                                       \
        _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++) a[r][u] += qv * kv[u];               \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
            _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++)                                  \
        * (AV16 *)(s + r * AT_TK + jb - j0 + 16 * u) = a[r][u];                                    \
  } while (0)

/* O[r][cb..cb + 16 NV) += sum over j < tk of P[r][j] Vp[j0 + j][cb..] */
#define PV(NV)                                                                                     \
  do {                                                                                             \
    V16 o[AT_R][NV];                                                                               \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
        _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++) o[r][u] =                            \
            *(const AV16 *)(out + r * dhp + cb + 16 * u);                                          \
    for (int j = 0; j < tk; j++) {                                                                 \
      const float *vj = vp + (gsize)(j0 + j) * dhp + cb;                                           \
      V16 vv[NV];                                                                                  \
      _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++) vv[u] = *(const AV16 *)(vj + 16 * u);  \
      _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                      \
      {                                                                                            \
        float pv = s[r * AT_TK + j];                                                               \
        _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++) o[r][u] += pv * vv[u];               \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 4") for (int r = 0; r < AT_R; r++)                                        \
            _Pragma ("GCC unroll 2") for (int u = 0; u < NV; u++)                                  \
        * (AV16 *)(out + r * dhp + cb + 16 * u) = o[r][u];                                         \
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

static AT_VECTORIZE AT_CLONES void
attention_fast (float *y, gsize ldy, const float *q, const float *k, const float *v, gsize ld,
    int n, int d, int heads, float *scratch)
{
  int dh = d / heads;
  int np = (int)round16 (n), dhp = (int)round16 (dh);
  float *kt = scratch;             /* (dh, np) */
  float *vp = kt + (gsize)dh * np; /* (np, dhp) */
  float *s = vp + (gsize)np * dhp; /* (AT_R, AT_TK) */
  float *out = s + AT_R * AT_TK;   /* (AT_R, dhp) */
  float scale = (float)(1.0 / sqrt ((double)dh));

  for (int hd = 0; hd < heads; hd++) {
    int off = hd * dh;
    for (int c = 0; c < dh; c++) {
      float *ktc = kt + (gsize)c * np;
      for (int j = 0; j < n; j++)
        ktc[j] = k[(gsize)j * ld + off + c] * scale;
      for (int j = n; j < np; j++)
        ktc[j] = 0.0f;
    }
    for (int j = 0; j < np; j++) {
      float *vj = vp + (gsize)j * dhp;
      if (j < n)
        memcpy (vj, v + (gsize)j * ld + off, sizeof (float) * dh);
      else
        memset (vj, 0, sizeof (float) * dh);
      memset (vj + dh, 0, sizeof (float) * (dhp - dh));
    }

    for (int i0 = 0; i0 < n; i0 += AT_R) {
      int rows = MIN (AT_R, n - i0);
      const float *qr[AT_R];
      float m[AT_R], l[AT_R];
      for (int r = 0; r < AT_R; r++) {
        /* rows past n repeat the last one; they are not stored */
        qr[r] = q + (gsize)(i0 + MIN (r, rows - 1)) * ld + off;
        m[r] = -INFINITY;
        l[r] = 0.0f;
      }
      memset (out, 0, sizeof (float) * AT_R * dhp);
      for (int j0 = 0; j0 < np; j0 += AT_TK) {
        int tk = MIN (AT_TK, np - j0), valid = MIN (tk, n - j0);
        int jb = j0;
        for (; jb + 32 <= j0 + tk; jb += 32)
          SCORES (2);
        for (; jb < j0 + tk; jb += 16)
          SCORES (1);
        for (int r = 0; r < AT_R; r++) {
          float *row = s + r * AT_TK;
          float mx = max_row (row, valid);
          float mnew = MAX (m[r], mx);
          float alpha = m[r] == -INFINITY ? 0.0f : expf (m[r] - mnew);
          l[r] = l[r] * alpha + exp_row (row, tk, valid, mnew);
          m[r] = mnew;
          if (alpha != 1.0f)
            for (int c = 0; c < dhp; c++)
              out[r * dhp + c] *= alpha;
        }
        int cb = 0;
        for (; cb + 32 <= dhp; cb += 32)
          PV (2);
        for (; cb < dhp; cb += 16)
          PV (1);
      }
      for (int r = 0; r < rows; r++) {
        float inv = 1.0f / l[r];
        float *yr = y + (gsize)(i0 + r) * ldy + off;
        for (int c = 0; c < dh; c++)
          yr[c] = out[r * dhp + c] * inv;
      }
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
