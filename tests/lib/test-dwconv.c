/* Tests of the channel-last depthwise conv (dwconv-cl.c), the activations
 * of the channel-last epilogues (act-vec.h, mm_act_apply) and
 * mm_conv_cl_run_act (conv-cl.c), and the channel-last Winograd conv
 * (winograd.c) against the reference conv.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every result is checked against the reference conv (mm_conv2d /
 * mm_conv1d with groups = channels, double accumulators) followed by the
 * activation computed here in double, over odd sides, strides 1 and 2,
 * 1x1 to 7x7 kernels, channel counts around the 16-float vectors, every
 * activation, with and without residual.  Input, output and identity rows
 * are wider than their data: the gaps and the guards after y must keep
 * their values.
 */
#include <math.h>
#include <string.h>

#include "conv-cl.h"
#include "dwconv-cl.h"
#include "winograd.h"
#include "mm.h"
#include "ops.h"

#define GUARD 1234.5f
#define N_GUARD 16

static GRand *rng;

static float *
random_array (gsize n, float scale)
{
  float *x = g_new (float, MAX (n, 1)); /* exact size: ASan/valgrind see over-reads */
  for (gsize i = 0; i < n; i++)
    x[i] = (float)g_rand_double_range (rng, -scale, scale);
  return x;
}

/* max |got - want| <= tol * max (max |want|, 1); NaN fails */
static void
assert_close (const float *got, const float *want, gsize n, float tol, const char *what)
{
  float scale = 1.0f, err = 0.0f;
  gsize worst = 0;
  for (gsize i = 0; i < n; i++)
    scale = MAX (scale, fabsf (want[i]));
  for (gsize i = 0; i < n; i++) {
    float e = fabsf (got[i] - want[i]);
    if (!(e <= err)) {
      err = isnan (e) ? INFINITY : e;
      worst = i;
    }
  }
  if (!(err <= tol * scale))
    g_error ("%s: max abs error %g at [%" G_GSIZE_FORMAT "] (got %g, want %g), scale %g, tol %g",
        what, err, worst, got[worst], want[worst], scale, tol);
}

static const MmAct acts[] = {
  { MM_ACT_NONE, 0, 0 },
  { MM_ACT_RELU, 0, 0 },
  { MM_ACT_CLIP, 0.0f, 6.0f }, /* ReLU6 */
  { MM_ACT_CLIP, -0.5f, 0.75f },
  { MM_ACT_SILU, 0, 0 },
  { MM_ACT_HARDSWISH, 0, 0 },
  { MM_ACT_SIGMOID, 0, 0 },
  { MM_ACT_GELU, 0, 0 },
};

/* the activation as PyTorch defines it, in double */
static float
act_want (const MmAct *a, float v)
{
  double x = v;
  switch (a->kind) {
    case MM_ACT_RELU:
      return x > 0 ? v : 0.0f;
    case MM_ACT_CLIP:
      return (float)fmin (fmax (x, a->lo), a->hi);
    case MM_ACT_SILU:
      return (float)(x / (1.0 + exp (-x)));
    case MM_ACT_HARDSWISH:
      return (float)(x * fmin (fmax (x + 3.0, 0.0), 6.0) / 6.0);
    case MM_ACT_SIGMOID:
      return (float)(1.0 / (1.0 + exp (-x)));
    case MM_ACT_GELU:
      return (float)(0.5 * x * (1.0 + erf (x / sqrt (2.0))));
    default:
      return v;
  }
}

/* ------------------------------------------------------------------ */

typedef struct
{
  int c, h, w, kh, kw, stride, ph, pw;
} DwCase;

static const DwCase dw_cases[] = {
  { 1, 7, 9, 3, 3, 1, 1, 1 },    /* one channel: only the scalar tail */
  { 3, 11, 13, 3, 3, 2, 1, 1 },  /* odd sides, stride 2 */
  { 15, 9, 10, 5, 5, 1, 2, 2 },  /* EfficientNet 5x5 */
  { 16, 12, 12, 3, 3, 2, 1, 1 }, /* one whole vector */
  { 17, 7, 19, 3, 3, 1, 1, 1 },  /* a vector and one channel; rows of 19 = 8 + 8 + 1 + 1 + 1 */
  { 33, 5, 6, 5, 5, 2, 2, 2 },   /* two vectors and one channel, 5x5 stride 2 */
  { 96, 14, 14, 7, 7, 1, 3, 3 }, /* ConvNeXt 7x7 */
  { 40, 3, 3, 3, 3, 1, 1, 1 },   /* 3x3 plane, tile of 1 */
  { 24, 1, 1, 3, 3, 1, 1, 1 },   /* one pixel */
  { 32, 8, 8, 1, 1, 1, 0, 0 },   /* 1x1 */
  { 48, 6, 7, 3, 3, 2, 0, 0 },   /* no padding */
  { 20, 1, 37, 1, 5, 1, 0, 2 },  /* 1-D */
  { 64, 1, 23, 1, 3, 2, 0, 1 },  /* 1-D stride 2 */
};

static void
run_dw_case (const DwCase *c, gboolean reference)
{
  int h_out = mm_conv_out_size (c->h, c->kh, c->stride, c->ph);
  int w_out = mm_conv_out_size (c->w, c->kw, c->stride, c->pw);
  int n_pos = h_out * w_out;
  gsize n_x = (gsize)c->c * c->h * c->w, n_y = (gsize)c->c * n_pos;
  char *what = g_strdup_printf ("dwconv-cl %dx%dx%d k%dx%d s%d p%d,%d%s", c->c, c->h, c->w, c->kh,
      c->kw, c->stride, c->ph, c->pw, reference ? " (reference)" : "");
  float *x = random_array (n_x, 1.0f), *w = random_array ((gsize)c->c * c->kh * c->kw, 0.7f);
  float *scale = random_array (c->c, 2.0f), *shift = random_array (c->c, 1.0f);
  float *conv = g_new (float, n_y);

  /* reference: channel-first, groups = channels */
  mm_ops_set_reference (TRUE);
  if (c->h == 1 && c->kh == 1)
    mm_conv1d (conv, x, w, NULL, c->c, c->w, c->c, c->kw, c->stride, c->pw, c->c, NULL);
  else
    mm_conv2d (
        conv, x, w, NULL, c->c, c->h, c->w, c->c, c->kh, c->kw, c->stride, c->ph, c->c, NULL);
  mm_ops_set_reference (reference);

  /* x channel-last with its zero border, rows one pixel wider still */
  int xw = c->w + 2 * c->pw + 1;
  gsize x_row = (gsize)xw * c->c, n_xp = (gsize)(c->h + 2 * c->ph) * x_row;
  float *xp = g_new0 (float, n_xp);
  for (int ch = 0; ch < c->c; ch++)
    for (int r = 0; r < c->h; r++)
      for (int q = 0; q < c->w; q++)
        xp[(gsize)(r + c->ph) * x_row + (gsize)(q + c->pw) * c->c + ch] =
            x[((gsize)ch * c->h + r) * c->w + q];
  gsize y_row = (gsize)(w_out + 1) * c->c, id_row = (gsize)(w_out + 2) * c->c;
  gsize n_yp = (gsize)h_out * y_row, n_id = (gsize)h_out * id_row;
  float *y = g_new (float, n_yp + N_GUARD), *id = random_array (n_id, 3.0f);
  float *got = g_new (float, n_y), *want = g_new (float, n_y);

  for (guint a = 0; a < G_N_ELEMENTS (acts); a++)
    for (int variant = 0; variant < 3; variant++) {
      /* 0: plain; 1: scale + shift; 2: scale + shift + residual */
      const float *sc = variant ? scale : NULL, *sh = variant ? shift : NULL;
      const float *identity = variant == 2 ? id : NULL;
      MmDwConvCl dw;
      GError *err = NULL;
      g_assert_true (mm_dwconv_cl_init (&dw, w, sc, sh, c->c, c->kh, c->kw, what, &err));
      g_assert_no_error (err);
      for (gsize i = 0; i < n_yp + N_GUARD; i++)
        y[i] = GUARD;
      mm_dwconv_cl_run (&dw, y, y_row, xp, x_row, h_out, w_out, c->stride, c->stride, identity,
          id_row, a == 0 && variant == 1 ? NULL : &acts[a]);
      mm_dwconv_cl_clear (&dw);
      for (int ch = 0; ch < c->c; ch++)
        for (int r = 0; r < h_out; r++) {
          for (int q = 0; q < w_out; q++) {
            gsize i = ((gsize)ch * h_out + r) * w_out + q;
            float v = conv[i] * (sc ? sc[ch] : 1.0f) + (sh ? sh[ch] : 0.0f)
                + (identity ? id[r * id_row + (gsize)q * c->c + ch] : 0.0f);
            want[i] = act_want (&acts[a], v);
            got[i] = y[r * y_row + (gsize)q * c->c + ch];
          }
          g_assert_cmpfloat (y[r * y_row + (gsize)w_out * c->c + ch], ==, GUARD);
        }
      for (int i = 0; i < N_GUARD; i++)
        g_assert_cmpfloat (y[n_yp + i], ==, GUARD);
      char *wv = g_strdup_printf ("%s act %u variant %d", what, a, variant);
      assert_close (got, want, n_y, 2e-6f, wv);
      g_free (wv);
    }
  mm_ops_set_reference (FALSE);
  g_free (what);
  g_free (x), g_free (w), g_free (scale), g_free (shift), g_free (conv);
  g_free (xp), g_free (y), g_free (id), g_free (got), g_free (want);
}

static void
test_dwconv_fast (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (dw_cases); i++)
    run_dw_case (&dw_cases[i], FALSE);
}

static void
test_dwconv_reference (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (dw_cases); i++)
    run_dw_case (&dw_cases[i], TRUE);
}

/* y may be the identity itself (an in-place residual) */
static void
test_dwconv_in_place_residual (void)
{
  int c = 33, h = 6, w = 7;
  gsize row = (gsize)w * c, n = (gsize)h * row;
  float *x = g_new0 (float, (gsize)(h + 2) * (w + 2) * c), *wt = random_array ((gsize)c * 9, 0.5f);
  float *id = random_array (n, 1.0f), *sep = g_new (float, n);
  for (int r = 0; r < h; r++)
    for (int q = 0; q < w; q++)
      for (int ch = 0; ch < c; ch++)
        x[((gsize)(r + 1) * (w + 2) + q + 1) * c + ch] = (float)g_rand_double_range (rng, -1, 1);
  MmDwConvCl dw;
  g_assert_true (mm_dwconv_cl_init (&dw, wt, NULL, NULL, c, 3, 3, "in-place", NULL));
  MmAct silu = { MM_ACT_SILU, 0, 0 };
  mm_dwconv_cl_run (&dw, sep, row, x, (gsize)(w + 2) * c, h, w, 1, 1, id, row, &silu);
  mm_dwconv_cl_run (&dw, id, row, x, (gsize)(w + 2) * c, h, w, 1, 1, id, row, &silu);
  g_assert_cmpmem (id, n * sizeof (float), sep, n * sizeof (float));
  mm_dwconv_cl_clear (&dw);
  g_free (x), g_free (wt), g_free (id), g_free (sep);
}

static void
test_dwconv_bad_shape (void)
{
  MmDwConvCl dw;
  GError *err = NULL;
  float wt[9] = { 0 };
  static const int bad[][3] = { { 0, 3, 3 }, { -4, 3, 3 }, { 8, 0, 3 }, { 8, 3, -1 } };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_false (
        mm_dwconv_cl_init (&dw, wt, NULL, NULL, bad[i][0], bad[i][1], bad[i][2], "bad", &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_assert_nonnull (strstr (err->message, "bad"));
    g_clear_error (&err);
    g_assert_null (dw.w);
    mm_dwconv_cl_clear (&dw);
  }
  /* absurd sizes are refused before anything is read or allocated */
  g_assert_false (mm_dwconv_cl_init (&dw, wt, NULL, NULL, 1 << 20, 1 << 10, 1 << 10, "huge", &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_assert_nonnull (strstr (err->message, "huge"));
  g_clear_error (&err);
  g_assert_false (
      mm_dwconv_cl_init (&dw, wt, NULL, NULL, G_MAXINT, G_MAXINT, G_MAXINT, "huge", &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_clear_error (&err);
  /* an empty output is no work, not a crash */
  g_assert_true (mm_dwconv_cl_init (&dw, wt, NULL, NULL, 1, 3, 3, "empty", &err));
  mm_dwconv_cl_run (&dw, NULL, 0, NULL, 0, 0, 5, 1, 1, NULL, 0, NULL);
  mm_dwconv_cl_clear (&dw);
}

/* ------------------------------------------------------------------ */
/* mm_conv_cl_run_act: every activation after a conv-cl conv            */

typedef struct
{
  int c_in, c_out, h, w, kh, kw, stride, pad, groups;
} ConvCase;

static const ConvCase conv_cases[] = {
  { 3, 16, 13, 11, 3, 3, 2, 1, 1 }, /* stem */
  { 17, 33, 5, 7, 1, 1, 1, 0, 1 },  /* 1x1: a 32 panel and a 16 panel */
  { 24, 96, 4, 5, 1, 1, 1, 0, 1 },  /* expand */
  { 16, 24, 7, 6, 3, 3, 1, 1, 2 },  /* groups */
  { 8, 20, 1, 29, 1, 3, 1, 1, 1 },  /* 1-D */
  { 64, 64, 9, 7, 3, 3, 1, 1, 8 },  /* RegNet: group width 8 (8-wide panels) */
  { 30, 30, 5, 6, 3, 3, 2, 1, 5 },  /* 6 outputs per group, stride 2 */
  { 24, 24, 6, 5, 3, 3, 1, 1, 24 }, /* depthwise through conv-cl */
  { 12, 21, 1, 17, 1, 5, 1, 2, 3 }, /* 1-D, groups of 4 in, 7 out */
};

static void
run_conv_act_case (const ConvCase *c)
{
  int ph = c->kh == 1 && c->h == 1 ? 0 : c->pad; /* 1-D: no rows of padding */
  int h_out = mm_conv_out_size (c->h, c->kh, c->stride, ph);
  int w_out = mm_conv_out_size (c->w, c->kw, c->stride, c->pad);
  int n_pos = h_out * w_out, cg = c->c_in / c->groups;
  gsize n_y = (gsize)c->c_out * n_pos;
  float *x = random_array ((gsize)c->c_in * c->h * c->w, 1.0f);
  float *w = random_array ((gsize)c->c_out * cg * c->kh * c->kw, 0.5f);
  float *scale = random_array (c->c_out, 2.0f), *shift = random_array (c->c_out, 1.0f);
  float *conv = g_new (float, n_y);
  char *what = g_strdup_printf (
      "conv-cl act %d -> %d k%dx%d g%d", c->c_in, c->c_out, c->kh, c->kw, c->groups);
  mm_ops_set_reference (TRUE);
  if (c->h == 1 && c->kh == 1)
    mm_conv1d (
        conv, x, w, NULL, c->c_in, c->w, c->c_out, c->kw, c->stride, c->pad, c->groups, NULL);
  else
    mm_conv2d (conv, x, w, NULL, c->c_in, c->h, c->w, c->c_out, c->kh, c->kw, c->stride, c->pad,
        c->groups, NULL);
  mm_ops_set_reference (FALSE);
  int xw = c->w + 2 * c->pad;
  gsize x_row = (gsize)xw * c->c_in;
  float *xp = g_new0 (float, (gsize)(c->h + 2 * ph) * x_row);
  for (int ch = 0; ch < c->c_in; ch++)
    for (int r = 0; r < c->h; r++)
      for (int q = 0; q < c->w; q++)
        xp[(gsize)(r + ph) * x_row + (gsize)(q + c->pad) * c->c_in + ch] =
            x[((gsize)ch * c->h + r) * c->w + q];
  gsize y_row = (gsize)w_out * c->c_out;
  float *y = g_new (float, n_y + N_GUARD), *y2 = g_new (float, n_y);
  float *id = random_array (n_y, 2.0f), *got = g_new (float, n_y), *want = g_new (float, n_y);
  MmConvCl cl;
  g_assert_true (mm_conv_cl_init (
      &cl, w, scale, shift, c->c_in, c->c_out, c->kh, c->kw, c->groups, what, NULL));
  for (guint a = 0; a < G_N_ELEMENTS (acts); a++)
    for (int res = 0; res < 2; res++) {
      const float *identity = res ? id : NULL;
      for (gsize i = 0; i < n_y + N_GUARD; i++)
        y[i] = GUARD;
      mm_conv_cl_run_act (
          &cl, y, y_row, xp, x_row, h_out, w_out, c->stride, c->stride, identity, y_row, &acts[a]);
      for (int i = 0; i < N_GUARD; i++)
        g_assert_cmpfloat (y[n_y + i], ==, GUARD);
      for (int oc = 0; oc < c->c_out; oc++)
        for (int p = 0; p < n_pos; p++) {
          gsize i = (gsize)oc * n_pos + p;
          float v = conv[i] * scale[oc] + shift[oc] + (res ? id[(gsize)p * c->c_out + oc] : 0);
          want[i] = act_want (&acts[a], v);
          got[i] = y[(gsize)p * c->c_out + oc];
        }
      char *wv = g_strdup_printf ("%s act %u res %d", what, a, res);
      assert_close (got, want, n_y, 2e-6f, wv);
      g_free (wv);
      /* none and ReLU are exactly the old entry point */
      if (acts[a].kind == MM_ACT_NONE || acts[a].kind == MM_ACT_RELU) {
        mm_conv_cl_run (&cl, y2, y_row, xp, x_row, h_out, w_out, c->stride, c->stride, identity,
            y_row, acts[a].kind == MM_ACT_RELU);
        g_assert_cmpmem (y, n_y * sizeof (float), y2, n_y * sizeof (float));
      }
    }
  /* NULL = none */
  mm_conv_cl_run_act (&cl, y, y_row, xp, x_row, h_out, w_out, c->stride, c->stride, NULL, 0, NULL);
  mm_conv_cl_run (&cl, y2, y_row, xp, x_row, h_out, w_out, c->stride, c->stride, NULL, 0, FALSE);
  g_assert_cmpmem (y, n_y * sizeof (float), y2, n_y * sizeof (float));
  mm_conv_cl_clear (&cl);
  g_free (what);
  g_free (x), g_free (w), g_free (scale), g_free (shift), g_free (conv), g_free (xp);
  g_free (y), g_free (y2), g_free (id), g_free (got), g_free (want);
}

static void
test_conv_cl_act (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (conv_cases); i++)
    run_conv_act_case (&conv_cases[i]);
}

/* ---- channel-last Winograd (winograd.c) ---------------------------- */

typedef struct
{
  int c_in, c_out, h, w, m;
} WinoCase;

static const WinoCase wino_cases[] = {
  { 16, 16, 7, 9, 4 },    /* partial tiles at the bottom and the right */
  { 32, 48, 9, 13, 4 },   /* a 32-channel panel and a 16 one */
  { 48, 16, 5, 6, 2 },    /* F(2, 3), one 16 panel */
  { 16, 32, 1, 1, 2 },    /* one pixel: a tile mostly outside */
  { 16, 16, 2, 3, 4 },    /* a plane smaller than one tile */
  { 256, 32, 20, 20, 4 }, /* two chunks of tiles */
  { 512, 16, 16, 16, 2 }, /* four chunks */
  { 64, 64, 14, 14, 4 },  /* ResNet's shape, one chunk */
};

static void
run_wino_case (const WinoCase *c, guint act_i)
{
  int n_pos = c->h * c->w;
  gsize n_y = (gsize)c->c_out * n_pos;
  float *x = random_array ((gsize)c->c_in * n_pos, 1.0f);
  float *w = random_array ((gsize)c->c_out * c->c_in * 9, 1.0f / sqrtf (c->c_in * 9.0f));
  float *scale = random_array (c->c_out, 2.0f), *shift = random_array (c->c_out, 1.0f);
  float *conv = g_new (float, n_y);
  char *what = g_strdup_printf (
      "winograd-cl F%d %d -> %d %dx%d act %u", c->m, c->c_in, c->c_out, c->h, c->w, act_i);
  mm_ops_set_reference (TRUE);
  mm_conv2d (conv, x, w, NULL, c->c_in, c->h, c->w, c->c_out, 3, 3, 1, 1, 1, NULL);
  mm_ops_set_reference (FALSE);
  /* x channel-last in its zero border, rows two pixels wider still, which
   * hold NaN: the kernel must read no pixel outside the border; exactly
   * h + 2 rows (ASan/valgrind see over-reads) */
  int xw = c->w + 4;
  gsize x_row = (gsize)xw * c->c_in;
  float *xp = g_new0 (float, (gsize)(c->h + 2) * x_row);
  for (int r = 0; r < c->h + 2; r++)
    for (gsize i = (gsize)(c->w + 2) * c->c_in; i < x_row; i++)
      xp[(gsize)r * x_row + i] = NAN;
  for (int ch = 0; ch < c->c_in; ch++)
    for (int r = 0; r < c->h; r++)
      for (int q = 0; q < c->w; q++)
        xp[(gsize)(r + 1) * x_row + (gsize)(q + 1) * c->c_in + ch] =
            x[((gsize)ch * c->h + r) * c->w + q];
  /* y and the identity in rows one pixel wider than the data: the gap of y
   * keeps its guard */
  gsize y_row = (gsize)(c->w + 1) * c->c_out, n_yr = (gsize)c->h * y_row;
  float *y = g_new (float, n_yr + N_GUARD), *id = random_array (n_yr, 2.0f);
  float *got = g_new (float, n_y), *want = g_new (float, n_y);
  MmWinogradCl wc;
  g_assert_true (mm_winograd_cl_init (&wc, c->m, w, scale, shift, c->c_in, c->c_out, what, NULL));
  float *scratch = g_new (float, mm_winograd_cl_scratch_size (&wc, c->h, c->w));
  for (int res = 0; res < 2; res++) {
    const float *identity = res ? id : NULL;
    for (gsize i = 0; i < n_yr + N_GUARD; i++)
      y[i] = GUARD;
    mm_winograd_cl_run (
        &wc, y, y_row, xp, x_row, c->h, c->w, identity, y_row, &acts[act_i], scratch);
    for (int i = 0; i < N_GUARD; i++)
      g_assert_cmpfloat (y[n_yr + i], ==, GUARD);
    for (int r = 0; r < c->h; r++)
      for (int oc = 0; oc < c->c_out; oc++)
        g_assert_cmpfloat (y[(gsize)r * y_row + (gsize)c->w * c->c_out + oc], ==, GUARD);
    for (int oc = 0; oc < c->c_out; oc++)
      for (int p = 0; p < n_pos; p++) {
        gsize i = (gsize)oc * n_pos + p,
              at = (gsize)(p / c->w) * y_row + (gsize)(p % c->w) * c->c_out + oc;
        float v = conv[i] * scale[oc] + shift[oc] + (res ? id[at] : 0);
        want[i] = act_want (&acts[act_i], v);
        got[i] = y[at];
      }
    char *wv = g_strdup_printf ("%s res %d", what, res);
    /* Winograd's transforms round more than a direct sum (measured 1e-6 to
     * 7e-6 of the largest output on these shapes); the graph parity tests
     * hold whole networks to 1e-4 of PyTorch */
    assert_close (got, want, n_y, 3e-5f, wv);
    g_free (wv);
  }
  mm_winograd_cl_clear (&wc);
  g_free (what);
  g_free (x), g_free (w), g_free (scale), g_free (shift), g_free (conv), g_free (xp);
  g_free (y), g_free (id), g_free (got), g_free (want), g_free (scratch);
}

static void
test_winograd_cl (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (wino_cases); i++)
    run_wino_case (&wino_cases[i], i % G_N_ELEMENTS (acts));
  /* every activation on a small shape, both tile sizes */
  for (guint a = 0; a < G_N_ELEMENTS (acts); a++) {
    WinoCase c = { 16, 32, 6, 5, 2 + 2 * (a % 2) };
    run_wino_case (&c, a);
  }
}

static void
test_winograd_cl_refused (void)
{
  static const int shapes[][3] = { { 3, 16, 32 }, { 16, 20, 16 }, { 16, 16, 8 }, { 0, 16, 16 } };
  float w[16 * 20 * 9] = { 0 };
  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++) {
    MmWinogradCl wc;
    GError *err = NULL;
    int m = shapes[i][0], c_in = shapes[i][1], c_out = shapes[i][2];
    g_assert_false (mm_winograd_cl_init (&wc, m, w, NULL, NULL, c_in, c_out, "node 7", &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_assert_nonnull (strstr (err->message, "node 7"));
    g_assert_null (wc.mem);
    mm_winograd_cl_clear (&wc);
    g_clear_error (&err);
  }
  g_assert_cmpint (mm_winograd_cl_pick (20, 64, 56, 56), ==, 0);
  g_assert_cmpint (mm_winograd_cl_pick (64, 64, 3, 3), ==, 0);
}

/* mm_act_apply on both paths, over a range that reaches the exp clamps,
 * lengths around the vector width; NaN stays NaN where it should */
static void
test_act_apply (void)
{
  static const gsize lens[] = { 1, 15, 16, 17, 100 };
  for (int reference = 0; reference < 2; reference++)
    for (guint a = 0; a < G_N_ELEMENTS (acts); a++)
      for (guint l = 0; l < G_N_ELEMENTS (lens); l++) {
        gsize n = lens[l];
        float *x = random_array (n + N_GUARD, 12.0f), *want = g_new (float, n);
        x[0] = a % 2 ? -100.0f : 95.0f;
        for (gsize i = 0; i < n; i++)
          want[i] = act_want (&acts[a], x[i]);
        for (gsize i = 0; i < N_GUARD; i++)
          x[n + i] = GUARD;
        mm_ops_set_reference (reference);
        mm_act_apply (&acts[a], x, n);
        mm_ops_set_reference (FALSE);
        char *what = g_strdup_printf ("act %u n %" G_GSIZE_FORMAT " ref %d", a, n, reference);
        /* relative to each value (sigmoid's tiny outputs count too); GELU's
         * erf polynomial is exact to 1.5e-7 absolute only, as ops.c's */
        float floor = acts[a].kind == MM_ACT_GELU ? 1.0f : 1e-3f;
        for (gsize i = 0; i < n; i++)
          if (!(fabsf (x[i] - want[i]) <= 2e-6f * MAX (fabsf (want[i]), floor)))
            g_error ("%s: [%" G_GSIZE_FORMAT "] got %g want %g", what, i, x[i], want[i]);
        for (gsize i = 0; i < N_GUARD; i++)
          g_assert_cmpfloat (x[n + i], ==, GUARD);
        g_free (what);
        g_free (x), g_free (want);
      }
  static const MmActKind keep_nan[] = { MM_ACT_SILU, MM_ACT_HARDSWISH, MM_ACT_SIGMOID,
    MM_ACT_GELU };
  for (guint k = 0; k < G_N_ELEMENTS (keep_nan); k++) {
    MmAct a = { keep_nan[k], 0, 0 };
    float v[17];
    for (int i = 0; i < 17; i++)
      v[i] = NAN;
    mm_act_apply (&a, v, 17);
    for (int i = 0; i < 17; i++)
      g_assert_true (isnan (v[i]));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  rng = g_rand_new_with_seed (20261205);
  mm_blas_init ();
  g_test_add_func ("/dwconv/fast", test_dwconv_fast);
  g_test_add_func ("/dwconv/reference", test_dwconv_reference);
  g_test_add_func ("/dwconv/in-place-residual", test_dwconv_in_place_residual);
  g_test_add_func ("/dwconv/bad-shape", test_dwconv_bad_shape);
  g_test_add_func ("/conv-cl/activations", test_conv_cl_act);
  g_test_add_func ("/act/apply", test_act_apply);
  g_test_add_func ("/winograd-cl/against-reference", test_winograd_cl);
  g_test_add_func ("/winograd-cl/refused", test_winograd_cl_refused);
  int ret = g_test_run ();
  g_rand_free (rng);
  return ret;
}
