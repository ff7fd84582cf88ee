/* libmm: bf16 channel-last convolution and linears (AVX512_BF16).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * vdpbf16ps multiplies 16 pairs of bf16 and adds both products to 16 fp32
 * sums: twice the fp32 FMA's multiply-adds per instruction.  A panel row
 * therefore holds two consecutive reduction steps for each of 32 output
 * channels (two registers), and the activation side broadcasts the same
 * two steps of one position as one 32-bit word.  The register tile is 12
 * positions x 32 channels (24 fp32 accumulators) over the whole reduction,
 * as in conv-cl.c, and the epilogue (shift, residual, activation) is fp32.
 * Only this file is compiled for the bf16 instructions, function by
 * function; callers reach it after mm_cpu_has_bf16 ().
 */
#include <math.h>
#include <string.h>

#include "conv-bf16.h"
#include "act-vec.h"
#include "ops.h"
#include "mm-private.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 10
#define HAVE_BF16_KERNEL 1
#include <cpuid.h>
#include <immintrin.h>
#define BF16_TARGET __attribute__ ((target ("avx512f,avx512bf16,avx512bw,avx512vl")))
#define BF16_INLINE static inline __attribute__ ((always_inline)) BF16_TARGET
#endif

#define NR 32                       /* panel width */
#define MR_WIDE 12                  /* positions per register tile */
#define MAX_PACKED ((gsize)1 << 29) /* bf16 values: 1 GiB */

guint16
mm_bf16_from_float (float f)
{
  guint32 u;
  memcpy (&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (guint16)((u >> 16) | 0x40); /* NaN stays a (quiet) NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (guint16)(u >> 16);
}

float
mm_bf16_to_float (guint16 h)
{
  guint32 u = (guint32)h << 16;
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

gboolean
mm_cpu_has_bf16 (void)
{
  const char *off = g_getenv ("MM_DISABLE_BF16");
  if (off && *off && strcmp (off, "0") != 0)
    return FALSE;
#ifdef HAVE_BF16_KERNEL
  static gsize cached; /* 0 unset, 1 no, 2 yes */
  if (g_once_init_enter (&cached)) {
    unsigned a = 0, b = 0, cx = 0, d = 0;
    gboolean yes =
        mm_cpu_has_avx512 () && __get_cpuid_count (7, 1, &a, &b, &cx, &d) && (a & (1u << 5)) != 0;
    g_once_init_leave (&cached, yes ? 2 : 1);
  }
  return cached == 2;
#else
  return FALSE;
#endif
}

void
mm_conv_bf16_clear (MmConvBf16 *c)
{
  g_free (c->mem);
  g_free (c->shift);
  memset (c, 0, sizeof *c);
}

gsize
mm_conv_bf16_packed_bytes (int c_in, int c_out, int kh, int kw)
{
  gsize c_pad = (gsize)(c_in + 1) / 2 * 2, panels = (gsize)(c_out + NR - 1) / NR;
  return panels * NR * kh * kw * c_pad * sizeof (guint16) + 64;
}

gboolean
mm_conv_bf16_init (MmConvBf16 *c, const float *w, const float *scale, const float *shift, int c_in,
    int c_out, int kh, int kw, const char *what, GError **error)
{
  memset (c, 0, sizeof *c);
  if (c_in <= 0 || c_out <= 0 || kh <= 0 || kw <= 0) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT, "%s: bad conv shape %d -> %d, %dx%d", what, c_in,
        c_out, kh, kw);
    return FALSE;
  }
  int c_pad = (c_in + 1) / 2 * 2, panels = (c_out + NR - 1) / NR;
  gsize pairs = (gsize)kh * kw * c_pad / 2, n = (gsize)panels * pairs * 2 * NR;
  *c = (MmConvBf16){ c_in, c_out, kh, kw, c_pad, panels, NULL, NULL, NULL };
  if (n <= MAX_PACKED)
    c->mem = g_try_malloc0 (n * sizeof (guint16) + 63);
  if (c->mem)
    c->shift = g_try_new0 (float, (gsize)panels *NR);
  if (!c->mem || !c->shift) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: the packed bf16 conv weights would take %" G_GSIZE_FORMAT " MB", what,
        (n * sizeof (guint16)) >> 20);
    mm_conv_bf16_clear (c);
    return FALSE;
  }
  c->packed = (guint16 *)(((guintptr)c->mem + 63) & ~(guintptr)63);

  /* pair t of panel pn = reduction steps 2t, 2t + 1 (step (i kw + j) c_pad
   * + ci); each pair is 32 columns x 2 values, in two registers of 16 */
  for (int pn = 0; pn < panels; pn++) {
    guint16 *panel = c->packed + (gsize)pn * pairs * 2 * NR;
    for (int col = 0; col < NR; col++) {
      int o = pn * NR + col;
      if (o >= c_out)
        break;
      float sc = scale ? scale[o] : 1.0f;
      guint16 *dst = panel + (col / 16) * 32 + (col % 16) * 2;
      for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw; j++)
          for (int ci = 0; ci < c_in; ci++) {
            gsize step = ((gsize)i * kw + j) * c_pad + ci;
            dst[(step / 2) * 2 * NR + step % 2] =
                mm_bf16_from_float (w[(((gsize)o * c_in + ci) * kh + i) * kw + j] * sc);
          }
    }
  }
  for (int o = 0; o < c_out; o++)
    c->shift[o] = shift ? shift[o] : 0.0f;
  return TRUE;
}

#ifdef HAVE_BF16_KERNEL

/* dst (n) = bf16 of src (n) */
static BF16_TARGET void
round_run (guint16 *dst, const float *src, gsize n)
{
  gsize i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh (_mm512_loadu_ps (src + i + 16), _mm512_loadu_ps (src + i));
    _mm512_storeu_si512 ((void *)(dst + i), (__m512i)v);
  }
  if (i < n) {
    gsize left = n - i;
    __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
    __mmask16 m1 = left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    __m512bh v = _mm512_cvtne2ps_pbh (
        _mm512_maskz_loadu_ps (m1, src + i + 16), _mm512_maskz_loadu_ps (m0, src + i));
    _mm512_mask_storeu_epi16 (dst + i, (__mmask32)((1ull << left) - 1), (__m512i)v);
  }
}

/* xb (rows, cols, c_pad) = bf16 of x (rows, cols, c_in), rows x_row
 * floats apart; the channel added to an odd c_in is zero */
static void
round_input (guint16 *xb, const float *x, gsize x_row, int rows, int cols, int c_in, int c_pad)
{
  gsize xb_row = (gsize)cols * c_pad;
  for (int r = 0; r < rows; r++) {
    const float *s = x + (gsize)r * x_row;
    guint16 *d = xb + (gsize)r * xb_row;
    if (c_in == c_pad) {
      round_run (d, s, xb_row);
      continue;
    }
    for (int q = 0; q < cols; q++) {
      for (int ci = 0; ci < c_in; ci++)
        d[(gsize)q * c_pad + ci] = mm_bf16_from_float (s[(gsize)q * c_in + ci]);
      for (int ci = c_in; ci < c_pad; ci++)
        d[(gsize)q * c_pad + ci] = 0;
    }
  }
}

/* MR positions x 32 channels, nr of them real: position r reads its
 * window from xr[r] (kh rows of run bf16, xb_row apart), writes yr[r] and
 * adds idr[r] when idr is given */
BF16_INLINE void
tile (const int MR, float *const *yr, const guint16 *const *xr, const float *const *idr,
    gsize xb_row, int kh, int run, const guint16 *panel, const float *shift, int nr, gboolean relu,
    const MmAct *act)
{
  __m512 a0[MR_WIDE], a1[MR_WIDE];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++)
    a0[r] = a1[r] = _mm512_setzero_ps ();
  const guint16 *p = panel;
  for (int i = 0; i < kh; i++) {
    gsize off = (gsize)i * xb_row;
    for (int j = 0; j < run; j += 2, p += 2 * NR) {
      __m512bh b0 = (__m512bh)_mm512_load_si512 ((const void *)p);
      __m512bh b1 = (__m512bh)_mm512_load_si512 ((const void *)(p + NR));
#pragma GCC unroll 12
      for (int r = 0; r < MR; r++) {
        guint32 pair;
        memcpy (&pair, xr[r] + off + j, sizeof pair);
        __m512bh a = (__m512bh)_mm512_set1_epi32 ((int)pair);
        a0[r] = _mm512_dpbf16_ps (a0[r], a, b0);
        a1[r] = _mm512_dpbf16_ps (a1[r], a, b1);
      }
    }
  }
  __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
  __mmask16 m1 = nr >= 32 ? 0xffff : (nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1));
  __m512 s0 = _mm512_loadu_ps (shift), s1 = _mm512_loadu_ps (shift + 16);
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) {
    __m512 o0 = _mm512_add_ps (a0[r], s0), o1 = _mm512_add_ps (a1[r], s1);
    if (idr) {
      o0 = _mm512_add_ps (o0, _mm512_maskz_loadu_ps (m0, idr[r]));
      o1 = _mm512_add_ps (o1, _mm512_maskz_loadu_ps (m1, idr[r] + 16));
    }
    if (relu) {
      /* NaN gives 0, as conv-cl's ReLU */
      o0 = _mm512_max_ps (o0, _mm512_setzero_ps ());
      o1 = _mm512_max_ps (o1, _mm512_setzero_ps ());
    } else if (act) {
      o0 = (__m512)v16_act ((V16)o0, act);
      o1 = (__m512)v16_act ((V16)o1, act);
    }
    _mm512_mask_storeu_ps (yr[r], m0, o0);
    if (m1)
      _mm512_mask_storeu_ps (yr[r] + 16, m1, o1);
  }
}

static BF16_TARGET void
conv_bf16 (const MmConvBf16 *c, float *y, gsize y_row, const guint16 *xb, gsize xb_row, int h_out,
    int w_out, int sh, int sw, const float *identity, gsize id_row, gboolean relu, const MmAct *act)
{
  gsize pairs = (gsize)c->kh * c->kw * c->c_pad / 2;
  int run = c->kw * c->c_pad, n_pos = h_out * w_out;
  for (int pn = 0; pn < c->panels; pn++) {
    int j0 = pn * NR, nr = MIN (NR, c->c_out - j0);
    const guint16 *panel = c->packed + (gsize)pn * pairs * 2 * NR;
    const float *shift = c->shift + j0;
    for (int p = 0; p < n_pos;) {
      int mr = n_pos - p >= MR_WIDE ? MR_WIDE : (n_pos - p >= 4 ? 4 : 1);
      const guint16 *xr[MR_WIDE];
      const float *idr[MR_WIDE];
      float *yr[MR_WIDE];
      int ho = p / w_out, wo = p - ho * w_out;
      for (int r = 0; r < mr; r++) {
        xr[r] = xb + (gsize)ho * sh * xb_row + (gsize)wo * sw * c->c_pad;
        yr[r] = y + (gsize)ho * y_row + (gsize)wo * c->c_out + j0;
        idr[r] = identity ? identity + (gsize)ho * id_row + (gsize)wo * c->c_out + j0 : NULL;
        if (++wo == w_out) {
          wo = 0;
          ho++;
        }
      }
      const float *const *ids = identity ? idr : NULL;
      if (mr == MR_WIDE)
        tile (MR_WIDE, yr, xr, ids, xb_row, c->kh, run, panel, shift, nr, relu, act);
      else if (mr == 4)
        tile (4, yr, xr, ids, xb_row, c->kh, run, panel, shift, nr, relu, act);
      else
        tile (1, yr, xr, ids, xb_row, c->kh, run, panel, shift, nr, relu, act);
      p += mr;
    }
  }
}

void
mm_conv_bf16_run (const MmConvBf16 *c, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act,
    guint16 *xb)
{
  if (h_out <= 0 || w_out <= 0)
    return;
  int rows = (h_out - 1) * sh + c->kh, cols = (w_out - 1) * sw + c->kw;
  gsize xb_row = (gsize)cols * c->c_pad;
  round_input (xb, x, x_row, rows, cols, c->c_in, c->c_pad);
  gboolean relu = act && act->kind == MM_ACT_RELU;
  if (!act || act->kind == MM_ACT_NONE || relu)
    act = NULL;
  conv_bf16 (c, y, y_row, xb, xb_row, h_out, w_out, sh, sw, identity, id_row, relu, act);
}

void
mm_linear_bf16_run (const MmConvBf16 *c, float *y, const float *x, int n, const float *residual,
    const MmAct *act, guint16 *scratch)
{
  /* n positions of one row: a 1x1 conv with stride 1 */
  mm_conv_bf16_run (c, y, 0, x, 0, 1, n, 1, 1, residual, 0, act, scratch);
}

#else /* no bf16 kernel in this build: mm_cpu_has_bf16 () is FALSE */

void
mm_conv_bf16_run (const MmConvBf16 *c, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act,
    guint16 *scratch)
{
  g_return_if_reached ();
}

void
mm_linear_bf16_run (const MmConvBf16 *c, float *y, const float *x, int n, const float *residual,
    const MmAct *act, guint16 *scratch)
{
  g_return_if_reached ();
}

#endif
