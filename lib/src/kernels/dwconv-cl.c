/* libmm: channel-last depthwise convolution (1-D and 2-D).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Output position (ho, wo), channels ch..ch+15, is one vector: for each
 * tap (i, j) it adds x[ho sh + i][wo sw + j][ch..] times the tap's 16
 * weights.  A tile of MR positions of one output row (8 with AVX-512, else
 * 4) shares each weight vector, so the loop is one load of x and one FMA
 * per tap and position; whole groups of 16 channels run that way, the
 * last c % 16 channels through a scalar accumulation into a 16-float
 * buffer that then takes the same vector epilogue (shift, residual,
 * activation from act-vec.h).
 */
#include <math.h>
#include <string.h>

#include "clones.h"
#include "dwconv-cl.h"
#include "act-vec.h"
#include "ops.h"
#include "mm-private.h"

#define DW_CLONES MM_TARGET_CLONES
#if defined(__GNUC__)
#define DW_INLINE static inline __attribute__ ((always_inline))
#else
#define DW_INLINE static inline
#endif

#define MAX_WEIGHT_FLOATS ((gsize)1 << 28) /* 1 GiB */

void
mm_dwconv_cl_clear (MmDwConvCl *d)
{
  g_free (d->mem);
  memset (d, 0, sizeof *d);
}

gboolean
mm_dwconv_cl_init (MmDwConvCl *d, const float *w, const float *scale, const float *shift, int c,
    int kh, int kw, const char *what, GError **error)
{
  memset (d, 0, sizeof *d);
  if (c <= 0 || kh <= 0 || kw <= 0 || c > G_MAXINT - 15 || !w) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: bad depthwise conv shape: %d channels, %dx%d", what, c, kh, kw);
    return FALSE;
  }
  int c_pad = (c + 15) / 16 * 16;
  gsize n = (gsize)kh * kw * c_pad;
  if ((gsize)kh * kw <= MAX_WEIGHT_FLOATS && n + c_pad <= MAX_WEIGHT_FLOATS)
    d->mem = g_try_malloc0 ((n + c_pad) * sizeof (float) + 63);
  if (!d->mem) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "%s: depthwise conv %d channels %dx%d: the weights would take too much memory (at most "
        "%u MB)",
        what, c, kh, kw, (guint)(MAX_WEIGHT_FLOATS / (1024 * 1024 / 4)));
    return FALSE;
  }
  d->c = c;
  d->kh = kh;
  d->kw = kw;
  d->c_pad = c_pad;
  d->w = (float *)(((guintptr)d->mem + 63) & ~(guintptr)63);
  d->shift = d->w + n;
  for (int ch = 0; ch < c; ch++) {
    float sc = scale ? scale[ch] : 1.0f;
    for (int t = 0; t < kh * kw; t++)
      d->w[(gsize)t * c_pad + ch] = w[(gsize)ch * kh * kw + t] * sc;
    d->shift[ch] = shift ? shift[ch] : 0.0f;
  }
  return TRUE;
}

/* the reference: double accumulators, libm activations */
static void
dw_run_reference (const MmDwConvCl *d, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act)
{
  int c = d->c;
  for (int ho = 0; ho < h_out; ho++)
    for (int wo = 0; wo < w_out; wo++) {
      float *yo = y + (gsize)ho * y_row + (gsize)wo * c;
      for (int ch = 0; ch < c; ch++) {
        double s = d->shift[ch];
        for (int i = 0; i < d->kh; i++)
          for (int j = 0; j < d->kw; j++)
            s += (double)d->w[((gsize)i * d->kw + j) * d->c_pad + ch]
                * x[((gsize)ho * sh + i) * x_row + ((gsize)wo * sw + j) * c + ch];
        if (identity)
          s += identity[(gsize)ho * id_row + (gsize)wo * c + ch];
        yo[ch] = (float)s;
      }
      mm_act_apply (act, yo, c);
    }
}

/* out (16 channels) = act (acc + shift [+ id]), nr of them stored */
DW_INLINE void
epilogue (float *yo, V16 acc, const float *shift, const float *id, int nr, const MmAct *act)
{
  V16 s;
  memcpy (&s, shift, sizeof s); /* shift is padded to c_pad */
  acc += s;
  if (id) {
    V16 iv;
    if (nr == 16)
      memcpy (&iv, id, sizeof iv);
    else {
      float t[16] = { 0 };
      memcpy (t, id, nr * sizeof (float));
      memcpy (&iv, t, sizeof iv);
    }
    acc += iv;
  }
  if (act)
    acc = v16_act (acc, act);
  if (nr == 16)
    memcpy (yo, &acc, sizeof acc);
  else {
    float t[16];
    memcpy (t, &acc, sizeof acc);
    memcpy (yo, t, nr * sizeof (float));
  }
}

/* MR positions wo0.. of one output row, channels ch..ch+15 (all real):
 * xr is the top-left tap of position wo0 at channel ch, pstep the floats
 * between two positions' inputs (sw c) */
#define DEFINE_TILE(MR)                                                                            \
  DW_INLINE void tile_##MR (float *yo, const float *xr, gsize x_row, gsize pstep, int c, int kh,   \
      int kw, const float *wt, int c_pad, const float *shift, const float *id, const MmAct *act)   \
  {                                                                                                \
    V16 a[MR], z = { 0 };                                                                          \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a[r] = z;                                \
    for (int i = 0; i < kh; i++) {                                                                 \
      const float *xi = xr + (gsize)i * x_row;                                                     \
      const float *wi = wt + (gsize)i * kw * c_pad;                                                \
      for (int j = 0; j < kw; j++) {                                                               \
        V16 wv = *(const V16 *)(wi + (gsize)j * c_pad);                                            \
        const float *xj = xi + (gsize)j * c;                                                       \
        _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                      \
        {                                                                                          \
          V16 xv;                                                                                  \
          memcpy (&xv, xj + r * pstep, sizeof xv);                                                 \
          a[r] += xv * wv;                                                                         \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                          \
        epilogue (yo + (gsize)r * c, a[r], shift, id ? id + (gsize)r * c : NULL, 16, act);         \
  }
DEFINE_TILE (8)
DEFINE_TILE (4)
DEFINE_TILE (1)

/* The same for a kernel KW wide at stride S known at compile time: each
 * input column of a kernel row is loaded once and feeds every (position,
 * tap) that reads it, the KW weight vectors stay in registers (8 x 3:
 * 10 loads for 24 FMAs instead of 24 + 3). */
#define DEFINE_SLIDE(MR, KW, S)                                                                    \
  DW_INLINE void slide_##MR##_##KW##_##S (float *yo, const float *xr, gsize x_row, int c, int kh,  \
      const float *wt, int c_pad, const float *shift, const float *id, const MmAct *act)           \
  {                                                                                                \
    V16 a[MR], z = { 0 };                                                                          \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++) a[r] = z;                                \
    for (int i = 0; i < kh; i++) {                                                                 \
      const float *xi = xr + (gsize)i * x_row;                                                     \
      const float *wi = wt + (gsize)i * KW * c_pad;                                                \
      V16 wv[KW];                                                                                  \
      _Pragma ("GCC unroll 7") for (int j = 0; j < KW; j++) wv[j] =                                \
          *(const V16 *)(wi + (gsize)j * c_pad);                                                   \
      _Pragma ("GCC unroll 24") for (int col = 0; col < S * (MR - 1) + KW; col++)                  \
      {                                                                                            \
        V16 xv;                                                                                    \
        memcpy (&xv, xi + (gsize)col * c, sizeof xv);                                              \
        _Pragma ("GCC unroll 7") for (int j = 0; j < KW; j++)                                      \
        {                                                                                          \
          int d = col - j;                                                                         \
          if (d >= 0 && d % S == 0 && d / S < MR)                                                  \
            a[d / S] += xv * wv[j];                                                                \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    _Pragma ("GCC unroll 8") for (int r = 0; r < MR; r++)                                          \
        epilogue (yo + (gsize)r * c, a[r], shift, id ? id + (gsize)r * c : NULL, 16, act);         \
  }
DEFINE_SLIDE (8, 3, 1)
DEFINE_SLIDE (8, 3, 2)
DEFINE_SLIDE (8, 5, 1)
DEFINE_SLIDE (8, 5, 2)
DEFINE_SLIDE (8, 7, 1)
DEFINE_SLIDE (8, 7, 2)
DEFINE_SLIDE (4, 3, 1)
DEFINE_SLIDE (4, 3, 2)
DEFINE_SLIDE (4, 5, 1)
DEFINE_SLIDE (4, 5, 2)
DEFINE_SLIDE (4, 7, 1)
DEFINE_SLIDE (4, 7, 2)

/* the sliding tile for (kw, sw), MR = 8 or 4; FALSE when there is none */
DW_INLINE gboolean
slide (int mr, int kw, int sw, float *yo, const float *xr, gsize x_row, int c, int kh,
    const float *wt, int c_pad, const float *shift, const float *id, const MmAct *act)
{
#define SLIDE_CASE(MR, KW, S)                                                                      \
  if (mr == MR && kw == KW && sw == S) {                                                           \
    slide_##MR##_##KW##_##S (yo, xr, x_row, c, kh, wt, c_pad, shift, id, act);                     \
    return TRUE;                                                                                   \
  }
  SLIDE_CASE (8, 3, 1)
  SLIDE_CASE (8, 3, 2)
  SLIDE_CASE (8, 5, 1)
  SLIDE_CASE (8, 5, 2)
  SLIDE_CASE (8, 7, 1)
  SLIDE_CASE (8, 7, 2)
  SLIDE_CASE (4, 3, 1)
  SLIDE_CASE (4, 3, 2)
  SLIDE_CASE (4, 5, 1)
  SLIDE_CASE (4, 5, 2)
  SLIDE_CASE (4, 7, 1)
  SLIDE_CASE (4, 7, 2)
#undef SLIDE_CASE
  return FALSE;
}

static DW_CLONES void
dw_run (const MmDwConvCl *d, float *y, gsize y_row, const float *x, gsize x_row, int h_out,
    int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act, gboolean wide)
{
  int c = d->c, kh = d->kh, kw = d->kw, c_pad = d->c_pad, c16 = c / 16 * 16;
  gsize pstep = (gsize)sw * c;
  gboolean overlap = !identity || identity != y;
  for (int ho = 0; ho < h_out; ho++) {
    const float *xrow = x + (gsize)ho * sh * x_row;
    float *yrow = y + (gsize)ho * y_row;
    const float *idrow = identity ? identity + (gsize)ho * id_row : NULL;
    for (int ch = 0; ch < c16; ch += 16) {
      const float *wt = d->w + ch, *shift = d->shift + ch;
      for (int wo = 0; wo < w_out;) {
        /* the last positions of a row: a whole tile ending at the row's
         * end, recomputing a few outputs, unless y is the identity */
        if (overlap && wide && w_out - wo < 8 && w_out >= 8)
          wo = w_out - 8;
        else if (overlap && w_out - wo < 4 && w_out >= 4)
          wo = w_out - 4;
        const float *xr = xrow + (gsize)wo * pstep + ch;
        float *yo = yrow + (gsize)wo * c + ch;
        const float *id = idrow ? idrow + (gsize)wo * c + ch : NULL;
        if (wide && w_out - wo >= 8) {
          if (!slide (8, kw, sw, yo, xr, x_row, c, kh, wt, c_pad, shift, id, act))
            tile_8 (yo, xr, x_row, pstep, c, kh, kw, wt, c_pad, shift, id, act);
          wo += 8;
        } else if (w_out - wo >= 4) {
          if (!slide (4, kw, sw, yo, xr, x_row, c, kh, wt, c_pad, shift, id, act))
            tile_4 (yo, xr, x_row, pstep, c, kh, kw, wt, c_pad, shift, id, act);
          wo += 4;
        } else {
          tile_1 (yo, xr, x_row, pstep, c, kh, kw, wt, c_pad, shift, id, act);
          wo += 1;
        }
      }
    }
    if (c16 < c) { /* the last c % 16 channels */
      int nr = c - c16;
      for (int wo = 0; wo < w_out; wo++) {
        float acc[16] = { 0 };
        const float *xr = xrow + (gsize)wo * pstep + c16;
        for (int i = 0; i < kh; i++)
          for (int j = 0; j < kw; j++) {
            const float *xj = xr + (gsize)i * x_row + (gsize)j * c;
            const float *wj = d->w + ((gsize)i * kw + j) * c_pad + c16;
            for (int k = 0; k < nr; k++)
              acc[k] += xj[k] * wj[k];
          }
        V16 a;
        memcpy (&a, acc, sizeof a);
        epilogue (yrow + (gsize)wo * c + c16, a, d->shift + c16,
            idrow ? idrow + (gsize)wo * c + c16 : NULL, nr, act);
      }
    }
  }
}

void
mm_dwconv_cl_run (const MmDwConvCl *d, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act)
{
  if (h_out <= 0 || w_out <= 0 || d->c <= 0)
    return;
  if (act && act->kind == MM_ACT_NONE)
    act = NULL;
  if (mm_ops_get_reference ())
    dw_run_reference (d, y, y_row, x, x_row, h_out, w_out, sh, sw, identity, id_row, act);
  else
    dw_run (
        d, y, y_row, x, x_row, h_out, w_out, sh, sw, identity, id_row, act, mm_cpu_has_avx512 ());
}
