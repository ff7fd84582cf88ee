/* libmm internal: activations on vectors of 16 floats, inlined into the
 * epilogues of the channel-last kernels (conv-cl.c, dwconv-cl.c).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GCC vector extensions only, so each target clone of a kernel gets its
 * own instructions (AVX-512: one register, AVX2: two, SSE2: four).  The
 * polynomials are those of ops.c (Cephes expf, ~2e-7 relative; Abramowitz
 * & Stegun erf, < 1.5e-7 absolute).  NaN stays NaN except through ReLU
 * and clip, which give their lower bound as conv-cl's ReLU always did.
 */
#ifndef MM_ACT_VEC_H
#define MM_ACT_VEC_H

#include <glib.h>

#include "conv-cl.h"

typedef float V16 __attribute__ ((vector_size (64)));
typedef gint32 V16i __attribute__ ((vector_size (64)));

/* the vectors never cross a call boundary (always inlined): no ABI concern */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#if defined(__GNUC__)
#define ACT_INLINE static inline __attribute__ ((always_inline))
#else
#define ACT_INLINE static inline
#endif

/* m ? a : b, lane by lane (m from a vector comparison) */
ACT_INLINE V16
v16_sel (V16i m, V16 a, V16 b)
{
  return (V16)(((V16i)a & m) | ((V16i)b & ~m));
}

ACT_INLINE V16
v16_splat (float f)
{
  V16 v = { 0 };
  return v + f;
}

/* e^x; below -87 gives 0, above 88 saturates at e^88 */
ACT_INLINE V16
v16_exp (V16 x)
{
  const V16 lo = v16_splat (-87.0f), hi = v16_splat (88.0f), big = v16_splat (12582912.0f);
  V16 xc = v16_sel (x > lo, x, lo); /* NaN -> -87 (no NaN float -> int below) */
  xc = v16_sel (xc < hi, xc, hi);
  V16 n = (xc * 1.44269504088896341f + big) - big;
  V16 r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  V16 p = v16_splat (1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  V16i e = (__builtin_convertvector(n, V16i) + 127) << 23;
  V16 y = p * (V16)e;
  y = v16_sel (x < lo, v16_splat (0.0f), y);
  return v16_sel (x != x, x, y);
}

ACT_INLINE V16
v16_erf (V16 x)
{
  V16i sign = (V16i)x & (gint32)0x80000000;
  V16 ax = (V16)((V16i)x & 0x7fffffff);
  V16 t = 1.0f / (1.0f + 0.3275911f * ax);
  V16 p = v16_splat (1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  V16 y = 1.0f - p * t * v16_exp (-ax * ax);
  return (V16)((V16i)y | sign);
}

/* act (v); kind is not MM_ACT_NONE */
ACT_INLINE V16
v16_act (V16 v, const MmAct *act)
{
  switch (act->kind) {
    case MM_ACT_RELU:
      return (V16)((V16i)v & (v > 0.0f));
    case MM_ACT_CLIP: {
      V16 lo = v16_splat (act->lo), hi = v16_splat (act->hi);
      v = v16_sel (v > lo, v, lo);
      return v16_sel (v < hi, v, hi);
    }
    case MM_ACT_SILU:
      return v / (1.0f + v16_exp (-v));
    case MM_ACT_HARDSWISH: {
      V16 t = v + 3.0f, z = v16_splat (0.0f), six = v16_splat (6.0f);
      t = v16_sel (t > z, t, z);
      t = v16_sel (t < six, t, six);
      return v * t / 6.0f;
    }
    case MM_ACT_SIGMOID:
      return 1.0f / (1.0f + v16_exp (-v));
    case MM_ACT_GELU:
      return 0.5f * v * (1.0f + v16_erf (v * 0.70710678118654752f));
    case MM_ACT_NONE:
    default:
      return v;
  }
}

#endif
