/* Tests of libmm's layers (lib/src/kernels/ops.c).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Three kinds of checks:
 * - the fast path (BLAS, vectorised approximations) against the reference
 *   path (plain loops, libm, double accumulators) on random inputs of many
 *   shapes, including odd sizes, n = 1 and kernels larger than the input;
 *   scratch and output buffers carry guard values that must survive;
 * - tiny cases whose answers were worked out by hand;
 * - PyTorch parity: tests/lib/ref_ops.py writes inputs, weights and
 *   outputs to $MM_FIXTURES/ops (manifest.json + raw float32 files), and
 *   every case there is run through both paths.
 */
#include <math.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "conv-cl.h"
#include "mm.h"
#include "ops.h"
#include "winograd.h"

#define GUARD 1234.5f
#define N_GUARD 16

static GRand *rng;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void
fill_random (float *x, gsize n, float scale)
{
  for (gsize i = 0; i < n; i++)
    x[i] = (float)g_rand_double_range (rng, -scale, scale);
}

static float *
random_array (gsize n, float scale)
{
  float *x = g_new (float, MAX (n, 1)); /* exact size: ASan sees over-reads */
  fill_random (x, n, scale);
  return x;
}

/* Buffer of n floats followed by N_GUARD guard values. */
static float *
guarded_new (gsize n)
{
  float *x = g_new (float, n + N_GUARD);
  for (gsize i = 0; i < n; i++)
    x[i] = NAN;
  for (gsize i = 0; i < N_GUARD; i++)
    x[n + i] = GUARD;
  return x;
}

static void
assert_guard (const float *x, gsize n, const char *what)
{
  for (gsize i = 0; i < N_GUARD; i++)
    if (x[n + i] != GUARD)
      g_error ("%s: wrote past its %" G_GSIZE_FORMAT " floats", what, n);
}

static float
max_abs (const float *x, gsize n)
{
  float m = 0.0f;
  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabsf (x[i]));
  return m;
}

/* max |got - want| <= tol * max (max |want|, 1e-6); NaN fails. */
static void
assert_close (const float *got, const float *want, gsize n, float tol, const char *what)
{
  float scale = MAX (max_abs (want, n), 1e-6f);
  float err = 0.0f;
  gsize worst = 0;
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

static void
assert_values (const float *got, const float *want, gsize n, const char *what)
{
  assert_close (got, want, n, 1e-6f, what);
}

/* ------------------------------------------------------------------ */
/* Linear                                                              */

static void
test_linear_paths (void)
{
  static const int shapes[][3] = {
    { 1, 1, 1 }, { 1, 33, 5 }, { 2, 3, 1 }, { 3, 50, 6 }, { 4, 70, 9 },
    { 4, 16, 2 },                                 /* few-row path */
    { 5, 40, 3 }, { 7, 33, 64 }, { 13, 128, 17 }, /* sgemm */
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      int n = shapes[s][0], d_in = shapes[s][1], d_out = shapes[s][2];
      float *x = random_array (n * d_in, 1.0f), *w = random_array (d_out * d_in, 0.5f);
      float *b = with_bias ? random_array (d_out, 1.0f) : NULL;
      float *fast = guarded_new (n * d_out), *ref = guarded_new (n * d_out);
      mm_linear (fast, x, w, b, n, d_in, d_out);
      mm_ops_set_reference (TRUE);
      mm_linear (ref, x, w, b, n, d_in, d_out);
      mm_ops_set_reference (FALSE);
      char *what = g_strdup_printf ("linear n=%d %d->%d bias=%d", n, d_in, d_out, with_bias);
      assert_close (fast, ref, n * d_out, 1e-5f, what);
      assert_guard (fast, n * d_out, what);
      assert_guard (ref, n * d_out, what);
      g_free (what);
      g_free (x), g_free (w), g_free (b), g_free (fast), g_free (ref);
    }
}

/* A linear layer as the BERT encoder runs it: a 1x1 channel-last conv
 * over n positions with the weights packed at load and the bias as its
 * shift, optionally adding a residual.  The same result as mm_linear's
 * reference on shapes that leave partial 8-row tiles and partial 32- and
 * 16-column panels, with reductions of 1 to 300. */
static void
test_linear_as_conv (void)
{
  static const int shapes[][3] = {
    { 1, 7, 3 },
    { 3, 50, 16 },
    { 9, 130, 33 },
    { 64, 256, 96 },
    { 17, 300, 48 },
    { 13, 129, 1 },
    { 5, 1, 40 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    int n = shapes[s][0], d_in = shapes[s][1], d_out = shapes[s][2];
    float *x = random_array (n * d_in, 1.0f), *w = random_array (d_out * d_in, 0.5f);
    float *b = random_array (d_out, 1.0f), *res = random_array (n * d_out, 1.0f);
    MmConvCl cl;
    GError *err = NULL;
    g_assert_true (mm_conv_cl_init (&cl, w, NULL, b, d_in, d_out, 1, 1, 1, "linear", &err));
    g_assert_no_error (err);
    float *fast = guarded_new (n * d_out), *ref = guarded_new (n * d_out);
    mm_ops_set_reference (TRUE);
    mm_linear (ref, x, w, b, n, d_in, d_out);
    mm_ops_set_reference (FALSE);
    char *what = g_strdup_printf ("linear as conv n=%d %d->%d", n, d_in, d_out);
    mm_conv_cl_run (&cl, fast, 0, x, 0, 1, n, 1, 1, NULL, 0, FALSE);
    assert_close (fast, ref, n * d_out, 1e-5f, what);
    assert_guard (fast, n * d_out, what);
    /* + residual: ref + res */
    mm_conv_cl_run (&cl, fast, 0, x, 0, 1, n, 1, 1, res, 0, FALSE);
    for (int i = 0; i < n * d_out; i++)
      ref[i] += res[i];
    assert_close (fast, ref, n * d_out, 1e-5f, what);
    assert_guard (fast, n * d_out, what);
    mm_conv_cl_clear (&cl);
    g_free (what);
    g_free (x), g_free (w), g_free (b), g_free (res), g_free (fast), g_free (ref);
  }
}

static void
test_linear_hand (void)
{
  const float x[] = { 1, 2 }, w[] = { 1, 0, 0, 1, 1, 1 }, b[] = { 0, 0, 1 };
  const float want[] = { 1, 2, 4 }, want_nb[] = { 1, 2, 3 };
  float y[3];
  for (int r = 0; r < 2; r++) {
    mm_ops_set_reference (r);
    mm_linear (y, x, w, b, 1, 2, 3);
    assert_values (y, want, 3, "linear hand");
    mm_linear (y, x, w, NULL, 1, 2, 3);
    assert_values (y, want_nb, 3, "linear hand, no bias");
  }
  mm_ops_set_reference (FALSE);
}

/* ------------------------------------------------------------------ */
/* Convolution                                                         */

typedef struct
{
  int c_in, h, w, c_out, kh, kw, stride, pad, groups;
} Conv2dCase;

static const Conv2dCase conv2d_cases[] = {
  { 3, 16, 16, 8, 3, 3, 1, 1, 1 },
  { 3, 17, 15, 8, 3, 3, 2, 1, 1 }, /* odd sizes, stride 2 */
  { 4, 9, 11, 6, 3, 3, 1, 1, 2 },  /* groups 2 */
  { 6, 12, 10, 6, 3, 3, 1, 1, 6 }, /* depthwise */
  { 6, 12, 10, 6, 3, 3, 2, 1, 6 }, /* depthwise stride 2 */
  { 4, 6, 6, 4, 3, 3, 1, 0, 4 },   /* depthwise, no padding */
  { 8, 20, 37, 8, 3, 3, 1, 1, 8 }, /* depthwise, rows of several vector blocks */
  { 8, 21, 45, 8, 3, 3, 2, 1, 8 },
  { 4, 6, 18, 4, 3, 3, 1, 0, 4 }, /* interior of exactly one block */
  { 4, 7, 19, 4, 3, 3, 1, 1, 4 },
  { 4, 9, 40, 4, 5, 5, 1, 2, 4 },  /* depthwise 5x5 */
  { 3, 10, 9, 12, 3, 3, 1, 1, 3 }, /* channel multiplier 4 */
  { 8, 7, 7, 16, 1, 1, 1, 0, 1 },  /* pointwise: no scratch */
  { 8, 8, 8, 8, 1, 1, 1, 0, 2 },   /* grouped pointwise */
  { 8, 7, 7, 16, 1, 1, 2, 0, 1 },  /* 1x1 stride 2 */
  { 2, 3, 4, 5, 5, 5, 1, 2, 1 },   /* kernel larger than the input */
  { 3, 5, 5, 4, 7, 7, 2, 3, 1 },
  { 1, 1, 1, 4, 3, 3, 1, 1, 1 },   /* one pixel */
  { 1, 28, 28, 8, 5, 5, 2, 2, 1 }, /* single input channel */
  { 5, 4, 13, 3, 3, 1, 2, 1, 1 },  /* non-square kernel */
  { 16, 14, 14, 32, 3, 3, 1, 1, 1 },
  { 9, 61, 37, 5, 3, 3, 1, 1, 1 }, /* im2col in blocks of output rows, a short last block */
  { 3, 95, 91, 4, 7, 7, 2, 3, 1 },
};

static void
run_conv2d_case (const Conv2dCase *c)
{
  int h_out = mm_conv_out_size (c->h, c->kh, c->stride, c->pad);
  int w_out = mm_conv_out_size (c->w, c->kw, c->stride, c->pad);
  gsize n_x = (gsize)c->c_in * c->h * c->w, n_y = (gsize)c->c_out * h_out * w_out;
  gsize n_w = (gsize)c->c_out * (c->c_in / c->groups) * c->kh * c->kw;
  gsize n_s =
      mm_conv2d_scratch_size (c->c_in, c->h, c->w, c->kh, c->kw, c->stride, c->pad, c->groups);
  char *what = g_strdup_printf ("conv2d %dx%dx%d -> %d k%dx%d s%d p%d g%d", c->c_in, c->h, c->w,
      c->c_out, c->kh, c->kw, c->stride, c->pad, c->groups);

  gboolean pointwise = c->kh == 1 && c->kw == 1 && c->stride == 1 && c->pad == 0;
  /* 1x1 convs need no im2col, depthwise ones run a direct loop */
  if (pointwise || (c->groups > 1 && c->groups == c->c_in))
    g_assert_cmpuint (n_s, ==, 0);
  else
    g_assert_cmpuint (n_s, >=, (gsize)(c->c_in / c->groups) * c->kh * c->kw * h_out * w_out);

  float *x = random_array (n_x, 1.0f), *w = random_array (n_w, 0.5f);
  float *b = random_array (c->c_out, 1.0f);
  float *scratch = guarded_new (n_s);
  float *fast = guarded_new (n_y), *ref = guarded_new (n_y);
  for (int with_bias = 0; with_bias < 2; with_bias++) {
    const float *bias = with_bias ? b : NULL;
    mm_conv2d (fast, x, w, bias, c->c_in, c->h, c->w, c->c_out, c->kh, c->kw, c->stride, c->pad,
        c->groups, scratch);
    mm_ops_set_reference (TRUE);
    mm_conv2d (ref, x, w, bias, c->c_in, c->h, c->w, c->c_out, c->kh, c->kw, c->stride, c->pad,
        c->groups, scratch);
    mm_ops_set_reference (FALSE);
    assert_close (fast, ref, n_y, 1e-5f, what);
    assert_guard (fast, n_y, what);
    assert_guard (ref, n_y, what);
    assert_guard (scratch, n_s, what);
  }
  g_free (what);
  g_free (x), g_free (w), g_free (b), g_free (scratch), g_free (fast), g_free (ref);
}

/* Winograd F(m x m, 3x3), stride 1, pad 1: against the reference conv
 * (double accumulators), with a folded scale, shift, residual and ReLU. */
typedef struct
{
  int c_in, c_out, h, w, m;
} WinogradCase;

static const WinogradCase winograd_cases[] = {
  { 5, 7, 9, 11, 2 }, /* odd sizes: partial tiles on both edges */
  { 5, 7, 9, 11, 4 },
  { 3, 17, 1, 1, 4 }, /* one pixel */
  { 3, 17, 2, 13, 2 },
  { 17, 9, 13, 6, 4 },
  { 1, 1, 4, 4, 2 },
  { 33, 35, 15, 15, 4 },
  { 40, 24, 30, 29, 4 }, /* several tile rows per GEMM */
  { 24, 40, 7, 7, 2 },
};

static void
run_winograd_case (const WinogradCase *c)
{
  gsize n_x = (gsize)c->c_in * c->h * c->w, n_y = (gsize)c->c_out * c->h * c->w;
  gsize n_w = (gsize)c->c_out * c->c_in * 9;
  gsize n_u = mm_winograd_weights_size (c->m, c->c_in, c->c_out);
  gsize n_s = mm_winograd_scratch_size (c->m, c->c_in, c->c_out, c->h, c->w);
  char *what =
      g_strdup_printf ("winograd F(%d,3) %dx%dx%d -> %d", c->m, c->c_in, c->h, c->w, c->c_out);
  g_assert_cmpuint (n_u, ==, (gsize)(c->m + 2) * (c->m + 2) * c->c_out * c->c_in);
  g_assert_cmpuint (n_s, >, 0);

  float *x = random_array (n_x, 1.0f), *w = random_array (n_w, 0.5f);
  float *scale = random_array (c->c_out, 2.0f), *shift = random_array (c->c_out, 1.0f);
  float *id = random_array (n_y, 1.0f);
  float *u = guarded_new (n_u), *scratch = guarded_new (n_s);
  float *fast = guarded_new (n_y), *ref = guarded_new (n_y);
  float *conv = g_new (float, n_y);

  mm_ops_set_reference (TRUE);
  mm_conv2d (conv, x, w, NULL, c->c_in, c->h, c->w, c->c_out, 3, 3, 1, 1, 1, NULL);
  mm_ops_set_reference (FALSE);
  for (int variant = 0; variant < 3; variant++) {
    /* 0: plain conv; 1: scale + shift + ReLU; 2: scale + shift + residual + ReLU */
    const float *sc = variant ? scale : NULL, *sh = variant ? shift : NULL;
    const float *identity = variant == 2 ? id : NULL;
    gboolean relu = variant > 0;
    mm_winograd_weights (u, c->m, w, sc, c->c_in, c->c_out);
    mm_winograd_conv3x3 (
        fast, x, u, c->m, c->c_in, c->h, c->w, c->c_out, sh, identity, relu, scratch);
    gsize plane = (gsize)c->h * c->w;
    for (gsize i = 0; i < n_y; i++) {
      int oc = (int)(i / plane);
      float v = conv[i] * (sc ? sc[oc] : 1.0f) + (sh ? sh[oc] : 0.0f) + (identity ? id[i] : 0.0f);
      ref[i] = relu && v < 0.0f ? 0.0f : v;
    }
    assert_close (fast, ref, n_y, c->m == 4 ? 2e-5f : 1e-5f, what);
    assert_guard (fast, n_y, what);
    assert_guard (u, n_u, what);
    assert_guard (scratch, n_s, what);
  }
  g_free (what);
  g_free (x), g_free (w), g_free (scale), g_free (shift), g_free (id), g_free (u);
  g_free (scratch), g_free (fast), g_free (ref), g_free (conv);
}

static void
test_winograd_paths (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (winograd_cases); i++)
    run_winograd_case (&winograd_cases[i]);
  /* the measured rule: 6x6 tiles on large planes, 4x4 on mid, none on
   * small planes or few channels */
  g_assert_cmpint (mm_winograd_pick (64, 64, 56, 56), ==, 4);
  g_assert_cmpint (mm_winograd_pick (256, 256, 14, 14), ==, 2);
  g_assert_cmpint (mm_winograd_pick (512, 512, 7, 7), ==, 0);
  g_assert_cmpint (mm_winograd_pick (16, 16, 56, 56), ==, 0);
}

static void
test_conv2d_paths (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (conv2d_cases); i++)
    run_conv2d_case (&conv2d_cases[i]);
}

typedef struct
{
  int c_in, t, c_out, k, stride, pad, groups;
} Conv1dCase;

static const Conv1dCase conv1d_cases[] = {
  { 4, 20, 6, 3, 1, 1, 1 },
  { 4, 21, 6, 3, 2, 1, 1 },
  { 6, 15, 9, 5, 1, 2, 3 },
  { 4, 13, 4, 3, 1, 1, 4 },  /* depthwise */
  { 4, 13, 8, 3, 2, 1, 4 },  /* depthwise, multiplier 2, stride 2 */
  { 8, 10, 16, 1, 1, 0, 1 }, /* pointwise */
  { 2, 3, 3, 7, 1, 3, 1 },   /* kernel larger than the input */
  { 1, 1, 2, 1, 1, 0, 1 },   /* t = 1 */
  { 3, 1, 2, 3, 2, 1, 1 },   /* t = 1, padded */
  { 64, 50, 64, 3, 1, 1, 1 },
};

static void
run_conv1d_case (const Conv1dCase *c)
{
  int t_out = mm_conv_out_size (c->t, c->k, c->stride, c->pad);
  gsize n_x = (gsize)c->c_in * c->t, n_y = (gsize)c->c_out * t_out;
  gsize n_w = (gsize)c->c_out * (c->c_in / c->groups) * c->k;
  gsize n_s = mm_conv1d_scratch_size (c->c_in, c->t, c->k, c->stride, c->pad, c->groups);
  char *what = g_strdup_printf ("conv1d %dx%d -> %d k%d s%d p%d g%d", c->c_in, c->t, c->c_out, c->k,
      c->stride, c->pad, c->groups);

  if ((c->k == 1 && c->stride == 1 && c->pad == 0) || (c->groups > 1 && c->groups == c->c_in))
    g_assert_cmpuint (n_s, ==, 0);
  else
    g_assert_cmpuint (n_s, >=, (gsize)(c->c_in / c->groups) * c->k * t_out);

  float *x = random_array (n_x, 1.0f), *w = random_array (n_w, 0.5f);
  float *b = random_array (c->c_out, 1.0f);
  float *scratch = guarded_new (n_s);
  float *fast = guarded_new (n_y), *ref = guarded_new (n_y);
  mm_conv1d (fast, x, w, b, c->c_in, c->t, c->c_out, c->k, c->stride, c->pad, c->groups, scratch);
  mm_ops_set_reference (TRUE);
  mm_conv1d (ref, x, w, b, c->c_in, c->t, c->c_out, c->k, c->stride, c->pad, c->groups, scratch);
  mm_ops_set_reference (FALSE);
  assert_close (fast, ref, n_y, 1e-5f, what);
  assert_guard (fast, n_y, what);
  assert_guard (scratch, n_s, what);
  g_free (what);
  g_free (x), g_free (w), g_free (b), g_free (scratch), g_free (fast), g_free (ref);
}

static void
test_conv1d_paths (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (conv1d_cases); i++)
    run_conv1d_case (&conv1d_cases[i]);
}

/* Channel-last conv (conv-cl.c) against the reference conv (double
 * accumulators, channel-first): odd sizes, strides, 7x7 and 1x1 kernels,
 * channel counts around the 16/32-wide panels, groups, and the epilogue
 * variants.  Input, output and identity have row strides wider than their
 * rows; the gaps and the guards must survive. */
typedef struct
{
  int c_in, c_out, h, w, kh, kw, stride, ph, pw, groups;
} ConvClCase;

static const ConvClCase conv_cl_cases[] = {
  { 3, 16, 13, 11, 7, 7, 2, 3, 3, 1 }, /* ResNet stem, odd sides */
  { 5, 7, 9, 11, 3, 3, 2, 1, 1, 1 },   /* odd channels, stride 2 */
  { 17, 33, 7, 5, 3, 3, 1, 1, 1, 1 },  /* a 32 panel and a 16 panel with 1 real column */
  { 6, 20, 9, 7, 1, 1, 2, 0, 0, 1 },   /* downsample: 1x1 stride 2 */
  { 16, 48, 5, 5, 3, 3, 1, 1, 1, 1 },
  { 64, 96, 4, 4, 3, 3, 2, 1, 1, 1 },  /* bundled model, last stage */
  { 2, 3, 1, 1, 3, 3, 1, 1, 1, 1 },    /* one pixel */
  { 8, 40, 10, 12, 3, 3, 1, 1, 1, 2 }, /* groups */
  { 12, 18, 1, 13, 1, 5, 2, 0, 2, 3 }, /* 1-D with groups (audio) */
  { 40, 64, 1, 50, 1, 3, 1, 0, 1, 1 }, /* 1-D */
};

static void
run_conv_cl_case (const ConvClCase *c)
{
  int h_out = mm_conv_out_size (c->h, c->kh, c->stride, c->ph);
  int w_out = mm_conv_out_size (c->w, c->kw, c->stride, c->pw);
  int cg = c->c_in / c->groups;
  gsize n_x = (gsize)c->c_in * c->h * c->w, n_y = (gsize)c->c_out * h_out * w_out;
  gsize n_w = (gsize)c->c_out * cg * c->kh * c->kw;
  char *what = g_strdup_printf ("conv-cl %dx%dx%d -> %d k%dx%d s%d p%d,%d g%d", c->c_in, c->h, c->w,
      c->c_out, c->kh, c->kw, c->stride, c->ph, c->pw, c->groups);
  float *x = random_array (n_x, 1.0f), *w = random_array (n_w, 0.5f);
  float *scale = random_array (c->c_out, 2.0f), *shift = random_array (c->c_out, 1.0f);
  float *conv = g_new (float, n_y), *ref = g_new (float, n_y);

  /* reference: channel-first, no bias */
  mm_ops_set_reference (TRUE);
  if (c->h == 1 && c->kh == 1)
    mm_conv1d (conv, x, w, NULL, c->c_in, c->w, c->c_out, c->kw, c->stride, c->pw, c->groups, NULL);
  else
    mm_conv2d (conv, x, w, NULL, c->c_in, c->h, c->w, c->c_out, c->kh, c->kw, c->stride, c->ph,
        c->groups, NULL);
  mm_ops_set_reference (FALSE);

  /* x channel-last with its zero border, rows one pixel wider still */
  int xw = c->w + 2 * c->pw + 1;
  gsize x_row = (gsize)xw * c->c_in, n_xp = (gsize)(c->h + 2 * c->ph) * x_row;
  float *xp = g_new0 (float, n_xp);
  for (int ch = 0; ch < c->c_in; ch++)
    for (int r = 0; r < c->h; r++)
      for (int q = 0; q < c->w; q++)
        xp[(gsize)(r + c->ph) * x_row + (gsize)(q + c->pw) * c->c_in + ch] =
            x[((gsize)ch * c->h + r) * c->w + q];
  /* y and identity: rows 1 and 2 positions wider than w_out */
  gsize y_row = (gsize)(w_out + 1) * c->c_out, id_row = (gsize)(w_out + 2) * c->c_out;
  gsize n_yp = h_out * y_row, n_id = h_out * id_row;
  float *y = guarded_new (n_yp), *id = random_array (n_id, 1.0f);

  for (int variant = 0; variant < 4; variant++) {
    /* 0: plain conv; 1: scale + shift + ReLU; 2: + residual + ReLU; 3: residual, no ReLU */
    const float *sc = variant ? scale : NULL, *sh = variant ? shift : NULL;
    const float *identity = variant >= 2 ? id : NULL;
    gboolean relu = variant == 1 || variant == 2;
    MmConvCl cl;
    GError *err = NULL;
    g_assert_true (
        mm_conv_cl_init (&cl, w, sc, sh, c->c_in, c->c_out, c->kh, c->kw, c->groups, what, &err));
    g_assert_no_error (err);
    for (gsize i = 0; i < n_yp; i++)
      y[i] = GUARD;
    mm_conv_cl_run (
        &cl, y, y_row, xp, x_row, h_out, w_out, c->stride, c->stride, identity, id_row, relu);
    mm_conv_cl_clear (&cl);
    /* gather the inside of y channel-first, check the gaps kept GUARD */
    float *got = g_new (float, n_y);
    for (int oc = 0; oc < c->c_out; oc++)
      for (int r = 0; r < h_out; r++) {
        for (int q = 0; q < w_out; q++) {
          gsize i = ((gsize)oc * h_out + r) * w_out + q;
          float v = conv[i] * (sc ? sc[oc] : 1.0f) + (sh ? sh[oc] : 0.0f)
              + (identity ? id[r * id_row + (gsize)q * c->c_out + oc] : 0.0f);
          ref[i] = relu && v < 0.0f ? 0.0f : v;
          got[i] = y[r * y_row + (gsize)q * c->c_out + oc];
        }
        g_assert_cmpfloat (y[r * y_row + (gsize)w_out * c->c_out + oc], ==, GUARD);
      }
    char *wv = g_strdup_printf ("%s variant %d", what, variant);
    assert_close (got, ref, n_y, 1e-5f, wv);
    assert_guard (y, n_yp, wv);
    g_free (wv);
    g_free (got);
  }
  g_free (what);
  g_free (x), g_free (w), g_free (scale), g_free (shift), g_free (conv), g_free (ref);
  g_free (xp), g_free (y), g_free (id);
}

static float pool_window (
    const float *x, int h, int w, int oy, int ox, int k, int stride, int pad, gboolean is_max);

static void
test_conv_cl (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (conv_cl_cases); i++)
    run_conv_cl_case (&conv_cl_cases[i]);

  /* bad shapes are an error, not a crash */
  MmConvCl cl;
  GError *err = NULL;
  float wt[6] = { 0 };
  g_assert_false (mm_conv_cl_init (&cl, wt, NULL, NULL, 3, 2, 1, 1, 2, "bad", &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_clear_error (&err);
  g_assert_null (cl.packed);
  /* a depthwise conv whose packing (8 columns per group) would pass 1 GiB:
   * refused before anything is read or allocated */
  g_assert_false (
      mm_conv_cl_init (&cl, wt, NULL, NULL, 131072, 131072, 1, 300, 131072, "dw", &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_assert_nonnull (strstr (err->message, "at most 1024 MB"));
  g_clear_error (&err);
  g_assert_null (cl.packed);

  /* channel-last max pool against the window max, rows of y wider */
  static const int pools[][6] = {
    /* c, h, w, k, stride, pad */
    { 16, 32, 32, 3, 2, 1 },
    { 5, 11, 10, 3, 2, 1 },
    { 17, 7, 9, 2, 2, 0 },
    { 3, 1, 1, 3, 2, 1 },
  };
  for (guint t = 0; t < G_N_ELEMENTS (pools); t++) {
    int c = pools[t][0], h = pools[t][1], w = pools[t][2], k = pools[t][3];
    int stride = pools[t][4], pad = pools[t][5];
    int h_out = mm_conv_out_size (h, k, stride, pad), w_out = mm_conv_out_size (w, k, stride, pad);
    gsize y_row = (gsize)(w_out + 1) * c, n_y = h_out * y_row;
    float *x = random_array ((gsize)c * h * w, 3.0f), *xcl = g_new (float, (gsize)c *h *w);
    float *y = guarded_new (n_y);
    for (int ch = 0; ch < c; ch++)
      for (int i = 0; i < h * w; i++)
        xcl[(gsize)i * c + ch] = x[(gsize)ch * h * w + i];
    for (gsize i = 0; i < n_y; i++)
      y[i] = GUARD;
    mm_maxpool2d_cl (y, y_row, xcl, c, h, w, k, stride, pad);
    char *what = g_strdup_printf ("maxpool-cl c%d %dx%d k%d s%d p%d", c, h, w, k, stride, pad);
    for (int ch = 0; ch < c; ch++)
      for (int oy = 0; oy < h_out; oy++) {
        for (int ox = 0; ox < w_out; ox++) {
          float want = pool_window (x + (gsize)ch * h * w, h, w, oy, ox, k, stride, pad, TRUE);
          if (y[oy * y_row + (gsize)ox * c + ch] != want)
            g_error ("%s: [%d][%d][%d] = %g, want %g", what, oy, ox, ch,
                y[oy * y_row + (gsize)ox * c + ch], want);
        }
        g_assert_cmpfloat (y[oy * y_row + (gsize)w_out * c + ch], ==, GUARD);
      }
    assert_guard (y, n_y, what);
    g_free (what);
    g_free (x), g_free (xcl), g_free (y);
  }
}

static void
test_conv_hand (void)
{
  /* x = 1..9 (3x3), an all-ones 3x3 kernel with padding 1: each output is
   * the sum of the pixel's neighbourhood, plus the bias 0.5 */
  const float x[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
  const float ones[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, bias = 0.5f;
  const float want_s1[] = { 12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5 };
  const float want_s2[] = { 12.5, 16.5, 24.5, 28.5 };
  /* depthwise, 2x2 kernels, no padding: ch0 x = 1..4 with [1 0; 0 -1],
   * ch1 x = 10..40 with [0 1; 1 0] */
  const float dx[] = { 1, 2, 3, 4, 10, 20, 30, 40 };
  const float dw[] = { 1, 0, 0, -1, 0, 1, 1, 0 }, want_dw[] = { -3, 50 };
  /* conv1d: [1 2 3 4 5] * [1 0 -1], padding 1, stride 2 */
  const float x1[] = { 1, 2, 3, 4, 5 }, w1[] = { 1, 0, -1 }, want_1d[] = { -2, -2, 4 };
  float y[9], scratch[81];

  for (int r = 0; r < 2; r++) {
    mm_ops_set_reference (r);
    g_assert_cmpuint (mm_conv2d_scratch_size (1, 3, 3, 3, 3, 1, 1, 1), <=, 81);
    mm_conv2d (y, x, ones, &bias, 1, 3, 3, 1, 3, 3, 1, 1, 1, scratch);
    assert_values (y, want_s1, 9, "conv2d hand stride 1");
    mm_conv2d (y, x, ones, &bias, 1, 3, 3, 1, 3, 3, 2, 1, 1, scratch);
    assert_values (y, want_s2, 4, "conv2d hand stride 2");
    mm_conv2d (y, dx, dw, NULL, 2, 2, 2, 2, 2, 2, 1, 0, 2, NULL);
    assert_values (y, want_dw, 2, "conv2d hand depthwise");
    g_assert_cmpuint (mm_conv1d_scratch_size (1, 5, 3, 2, 1, 1), <=, 81);
    mm_conv1d (y, x1, w1, NULL, 1, 5, 1, 3, 2, 1, 1, scratch);
    assert_values (y, want_1d, 3, "conv1d hand");
  }
  mm_ops_set_reference (FALSE);
}

/* ------------------------------------------------------------------ */
/* Normalisation and pooling                                           */

static void
test_batchnorm_hand (void)
{
  /* scale = g / sqrt (var + eps), shift = b - mean * scale */
  const float gamma[] = { 2, 1 }, beta[] = { 1, 0 }, mean[] = { 3, -1 }, var[] = { 4, 0.25 };
  float scale[2], shift[2];
  mm_batchnorm_fold (scale, shift, gamma, beta, mean, var, 2, 0.0f);
  const float want_scale[] = { 1, 2 }, want_shift[] = { -2, 2 };
  assert_values (scale, want_scale, 2, "batchnorm scale");
  assert_values (shift, want_shift, 2, "batchnorm shift");

  float x[] = { 0, 1, 2, 3, 0, 1 };
  const float want[] = { -2, -1, 0, 8, 2, 4 };
  mm_channel_affine (x, 2, 3, scale, shift);
  assert_values (x, want, 6, "channel affine");
}

static void
test_pool_hand (void)
{
  float x[16], neg[16], y[4];
  for (int i = 0; i < 16; i++)
    x[i] = i, neg[i] = -(i + 1);
  /* 4x4 ramp 0..15, 3x3 stride 2 pad 1: windows {0,1,4,5}, {1..3,5..7},
   * {4,5,8,9,12,13}, {5..7,9..11,13..15} */
  const float want_max[] = { 5, 7, 13, 15 };
  mm_maxpool2d (y, x, 1, 4, 4, 3, 2, 1);
  assert_values (y, want_max, 4, "maxpool hand");
  /* all negative: padding must not win */
  const float want_neg[] = { -1, -2, -5, -6 };
  mm_maxpool2d (y, neg, 1, 4, 4, 3, 2, 1);
  assert_values (y, want_neg, 4, "maxpool hand, negative input");
  /* 2x2 input 1..4, 3x3 stride 1 pad 1: every window covers all four
   * pixels and five padding cells, which count: 10 / 9 */
  const float x4[] = { 1, 2, 3, 4 };
  const float want_avg[] = { 10.f / 9, 10.f / 9, 10.f / 9, 10.f / 9 };
  mm_avgpool2d (y, x4, 1, 2, 2, 3, 1, 1);
  assert_values (y, want_avg, 4, "avgpool hand, padding counted");
  /* 2x2 stride 2 on the ramp */
  const float want_avg2[] = { 2.5, 4.5, 10.5, 12.5 };
  mm_avgpool2d (y, x, 1, 4, 4, 2, 2, 0);
  assert_values (y, want_avg2, 4, "avgpool hand, 2x2");

  const float g[] = { 1, 2, 3, -1, -5, -2 };
  const float want_gavg[] = { 2, -8.f / 3 }, want_gmax[] = { 3, -1 };
  mm_global_avgpool (y, g, 2, 3);
  assert_values (y, want_gavg, 2, "global avgpool");
  mm_global_maxpool (y, g, 2, 3);
  assert_values (y, want_gmax, 2, "global maxpool");
}

/* Pools have one implementation; check it against the definition, written
 * independently here, on random sizes. */
static float
pool_window (
    const float *x, int h, int w, int oy, int ox, int k, int stride, int pad, gboolean is_max)
{
  double acc = is_max ? -INFINITY : 0.0;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      int iy = oy * stride - pad + i, ix = ox * stride - pad + j;
      if (iy < 0 || iy >= h || ix < 0 || ix >= w)
        continue; /* zero for avg, ignored for max */
      acc = is_max ? MAX (acc, x[iy * w + ix]) : acc + x[iy * w + ix];
    }
  return is_max ? (float)acc : (float)(acc / (k * k));
}

static void
test_pool_random (void)
{
  static const int cases[][6] = {
    /* c, h, w, k, stride, pad */
    { 3, 11, 10, 3, 2, 1 },
    { 2, 7, 9, 2, 2, 0 },
    { 1, 1, 1, 1, 1, 0 },
    { 4, 5, 6, 3, 1, 1 },
    { 2, 1, 5, 3, 2, 1 },
    { 3, 33, 31, 5, 3, 2 },
    { 1, 2, 2, 2, 1, 1 },
  };
  for (guint t = 0; t < G_N_ELEMENTS (cases); t++) {
    int c = cases[t][0], h = cases[t][1], w = cases[t][2], k = cases[t][3];
    int stride = cases[t][4], pad = cases[t][5];
    int h_out = mm_conv_out_size (h, k, stride, pad), w_out = mm_conv_out_size (w, k, stride, pad);
    gsize n_y = (gsize)c * h_out * w_out;
    float *x = random_array ((gsize)c * h * w, 3.0f), *y = guarded_new (n_y);
    float *want = g_new (float, n_y);
    for (int is_max = 0; is_max < 2; is_max++) {
      for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < h_out; oy++)
          for (int ox = 0; ox < w_out; ox++)
            want[(ch * h_out + oy) * w_out + ox] =
                pool_window (x + ch * h * w, h, w, oy, ox, k, stride, pad, is_max);
      if (is_max)
        mm_maxpool2d (y, x, c, h, w, k, stride, pad);
      else
        mm_avgpool2d (y, x, c, h, w, k, stride, pad);
      char *what = g_strdup_printf (
          "%s c%d %dx%d k%d s%d p%d", is_max ? "maxpool" : "avgpool", c, h, w, k, stride, pad);
      assert_close (y, want, n_y, 1e-6f, what);
      assert_guard (y, n_y, what);
      g_free (what);
    }
    g_free (x), g_free (y), g_free (want);
  }

  /* global pools, odd lengths around the 8-wide partial sums */
  for (int n = 1; n < 40; n += 3) {
    float *x = random_array (3 * n, 2.0f), avg[3], mx[3], want_avg[3], want_max[3];
    for (int ch = 0; ch < 3; ch++) {
      double s = 0.0, m = -INFINITY;
      for (int i = 0; i < n; i++)
        s += x[ch * n + i], m = MAX (m, x[ch * n + i]);
      want_avg[ch] = (float)(s / n), want_max[ch] = (float)m;
    }
    mm_global_avgpool (avg, x, 3, n);
    mm_global_maxpool (mx, x, 3, n);
    assert_close (avg, want_avg, 3, 1e-6f, "global avgpool");
    assert_values (mx, want_max, 3, "global maxpool");
    g_free (x);
  }
}

static void
test_layernorm (void)
{
  /* hand: [1 2 3] -> (x - 2) / sqrt (2/3) */
  const float x3[] = { 1, 2, 3 };
  const float want3[] = { -1.22474487f, 0.0f, 1.22474487f };
  float y3[3];
  for (int r = 0; r < 2; r++) {
    mm_ops_set_reference (r);
    mm_layernorm (y3, x3, 1, 3, NULL, NULL, 0.0f);
    assert_values (y3, want3, 3, "layernorm hand");
  }
  mm_ops_set_reference (FALSE);

  static const int shapes[][2] = { { 1, 1 }, { 1, 7 }, { 5, 24 }, { 3, 768 }, { 9, 33 } };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    int n = shapes[s][0], d = shapes[s][1];
    float *x = random_array ((gsize)n * d, 2.0f);
    for (int j = 0; j < d; j++)
      x[j] += 1000.0f; /* a large mean */
    float *g = random_array (d, 1.0f), *b = random_array (d, 1.0f);
    float *fast = guarded_new ((gsize)n * d), *ref = guarded_new ((gsize)n * d);
    for (int affine = 0; affine < 2; affine++) {
      mm_layernorm (fast, x, n, d, affine ? g : NULL, affine ? b : NULL, 1e-5f);
      mm_ops_set_reference (TRUE);
      mm_layernorm (ref, x, n, d, affine ? g : NULL, affine ? b : NULL, 1e-5f);
      mm_ops_set_reference (FALSE);
      assert_close (fast, ref, (gsize)n * d, 1e-5f, "layernorm fast vs reference");
      assert_guard (fast, (gsize)n * d, "layernorm");
    }
    /* in place */
    float *inplace = g_memdup2 (x, sizeof (float) * n * d);
    mm_layernorm (inplace, inplace, n, d, g, b, 1e-5f);
    mm_layernorm (fast, x, n, d, g, b, 1e-5f);
    assert_values (inplace, fast, (gsize)n * d, "layernorm in place");
    g_free (x), g_free (g), g_free (b), g_free (fast), g_free (ref), g_free (inplace);
  }
}

/* ------------------------------------------------------------------ */
/* Activations                                                         */

typedef void (*ActFn) (float *x, gsize n);

static const float act_specials[] = {
  0.0f,
  -0.0f,
  1e-8f,
  -1e-8f,
  1e-3f,
  -1e-3f,
  0.5f,
  -0.5f,
  0.62f,
  0.63f,
  1.0f,
  -1.0f,
  3.0f,
  -3.0f,
  9.0f,
  -9.0f,
  20.0f,
  -20.0f,
  40.0f,
  -40.0f,
  87.0f,
  -87.0f,
  88.5f,
  -88.5f,
  100.0f,
  -100.0f,
  1e4f,
  -1e4f,
};

/* Per element: |fast - reference| <= tol * max (1, |reference|). */
static void
check_activation (ActFn fn, const char *name, float tol)
{
  gsize n_spec = G_N_ELEMENTS (act_specials), n = n_spec + 4001;
  float *x = g_new (float, n), *fast = g_new (float, n), *ref = g_new (float, n);
  memcpy (x, act_specials, sizeof act_specials);
  for (gsize i = n_spec; i < n; i++) /* a dense sweep of -20..20 */
    x[i] = -20.0f + 40.0f * (i - n_spec) / 4000.0f;
  memcpy (fast, x, sizeof (float) * n);
  memcpy (ref, x, sizeof (float) * n);
  fn (fast, n);
  mm_ops_set_reference (TRUE);
  fn (ref, n);
  mm_ops_set_reference (FALSE);
  for (gsize i = 0; i < n; i++) {
    float err = fabsf (fast[i] - ref[i]);
    if (!(err <= tol * MAX (1.0f, fabsf (ref[i]))))
      g_error ("%s (%g): fast %.9g, reference %.9g", name, x[i], fast[i], ref[i]);
  }
  g_free (x), g_free (fast), g_free (ref);
}

static void
test_activations_paths (void)
{
  check_activation (mm_gelu, "gelu", 1e-6f);
  check_activation (mm_silu, "silu", 1e-6f);
  check_activation (mm_tanh, "tanh", 1e-6f);
  check_activation (mm_sigmoid, "sigmoid", 1e-6f);
  check_activation (mm_relu, "relu", 0.0f);
  /* odd lengths exercise the vector loop tails */
  for (gsize n = 1; n < 20; n++) {
    float x[20], y[20];
    for (gsize i = 0; i < n; i++)
      x[i] = y[i] = (float)i - 9.5f;
    mm_sigmoid (x, n);
    for (gsize i = 0; i < n; i++)
      g_assert_cmpfloat_with_epsilon (x[i], 1.0 / (1.0 + exp (-y[i])), 1e-6);
  }
}

static void
test_activations_hand (void)
{
  for (int r = 0; r < 2; r++) {
    mm_ops_set_reference (r);
    float g[] = { 0, 1, -1 }, s[] = { 0, 1 }, t[] = { 0.5f, -0.5f }, sg[] = { 0, 2 };
    float re[] = { -1, 0, 2 };
    const float want_g[] = { 0, 0.841344746f, -0.158655254f };
    const float want_s[] = { 0, 0.731058579f }, want_t[] = { 0.462117157f, -0.462117157f };
    const float want_sg[] = { 0.5f, 0.880797078f }, want_re[] = { 0, 0, 2 };
    mm_gelu (g, 3);
    mm_silu (s, 2);
    mm_tanh (t, 2);
    mm_sigmoid (sg, 2);
    mm_relu (re, 3);
    assert_values (g, want_g, 3, "gelu hand");
    assert_values (s, want_s, 2, "silu hand");
    assert_values (t, want_t, 2, "tanh hand");
    assert_values (sg, want_sg, 2, "sigmoid hand");
    assert_values (re, want_re, 3, "relu hand");

    /* softmax [0, ln 2] = [1/3, 2/3]; [1000, 1000.5] = [1, e^0.5] / (1 +
     * e^0.5) needs the max subtracted; one element = 1 */
    float sm[] = { 0, G_LN2, 1000, 1000.5f, 5 };
    const float want_sm[] = { 1.f / 3, 2.f / 3, 0.377540669f, 0.622459331f, 1 };
    mm_softmax (sm, 2, 2);
    mm_softmax (sm + 4, 1, 1);
    assert_values (sm, want_sm, 5, "softmax hand");

    /* NaN stays NaN through the exp-based activations, as in PyTorch (the
     * fast exp once converted NaN to int, which is undefined), among
     * values of 16-wide vectors; the others are unchanged */
    float act[4][20];
    void (*fn[4]) (float *, gsize) = { mm_gelu, mm_silu, mm_tanh, mm_sigmoid };
    for (int f = 0; f < 4; f++) {
      for (int i = 0; i < 20; i++)
        act[f][i] = (float)i / 4 - 2;
      act[f][3] = NAN;
      act[f][17] = NAN;
      fn[f](act[f], 20);
      for (int i = 0; i < 20; i++)
        if ((i == 3 || i == 17) != !!isnan (act[f][i]))
          g_error ("activation %d (reference %d): value %d is %g", f, r, i, act[f][i]);
    }
  }
  mm_ops_set_reference (FALSE);

  float y[] = { 1, 2, 3 };
  const float x[] = { 0.5f, -2, 4 }, want[] = { 1.5f, 0, 7 };
  mm_add (y, x, 3);
  assert_values (y, want, 3, "add");

  const float table[] = { 0, 1, 10, 11, 20, 21 };
  const gint32 ids[] = { 2, 0, 2 };
  const float want_e[] = { 20, 21, 0, 1, 20, 21 };
  float e[6];
  mm_embedding (e, table, ids, 3, 2);
  assert_values (e, want_e, 6, "embedding");
}

static void
test_softmax_paths (void)
{
  static const int shapes[][2] = { { 1, 1 }, { 3, 7 }, { 4, 100 }, { 2, 1000 }, { 5, 9 } };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    int n = shapes[s][0], d = shapes[s][1];
    float *x = random_array ((gsize)n * d, 30.0f);
    float *fast = g_memdup2 (x, sizeof (float) * n * d),
          *ref = g_memdup2 (x, sizeof (float) * n * d);
    mm_softmax (fast, n, d);
    mm_ops_set_reference (TRUE);
    mm_softmax (ref, n, d);
    mm_ops_set_reference (FALSE);
    assert_close (fast, ref, (gsize)n * d, 1e-6f, "softmax fast vs reference");
    for (int i = 0; i < n; i++) {
      double sum = 0.0;
      for (int j = 0; j < d; j++)
        sum += fast[i * d + j];
      g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-5);
    }
    g_free (x), g_free (fast), g_free (ref);
  }
}

/* ------------------------------------------------------------------ */
/* Attention                                                           */

static void
test_attention_hand (void)
{
  /* one head: q = 0 gives equal scores, so y = mean of the valid v rows */
  const float q[] = { 0, 0 }, k[] = { 1, 2, 3, 4, 5, 6 }, v[] = { 1, 2, 3, 4, 5, 6 };
  const guint8 valid[] = { 1, 0, 1 }, none[] = { 0, 0, 0 };
  const float want[] = { 3, 4 }, want_all[] = { 3, 4 }, zeros[] = { 0, 0 };
  /* two heads of width 1: head 0 has q = 1 against k = [0, ln 2] so
   * weights [1/3, 2/3] on v = [3, 6] -> 5; head 1 has q = 0 -> mean of
   * [2, 4] = 3 */
  const float q2[] = { 1, 0 }, k2[] = { 0, 7, G_LN2, -7 }, v2[] = { 3, 2, 6, 4 };
  const float want2[] = { 5, 3 };
  float y[2], scratch[3];

  for (int r = 0; r < 2; r++) {
    mm_ops_set_reference (r);
    mm_attention (y, q, k, v, 1, 3, 2, 1, valid, scratch);
    assert_values (y, want, 2, "attention hand, masked");
    mm_attention (y, q, k, v, 1, 3, 2, 1, NULL, scratch);
    assert_values (y, want_all, 2, "attention hand, no mask"); /* mean of 1,3,5 / 2,4,6 */
    y[0] = y[1] = NAN;
    mm_attention (y, q, k, v, 1, 3, 2, 1, none, scratch);
    assert_values (y, zeros, 2, "attention, all keys masked");
    mm_attention (y, q2, k2, v2, 1, 2, 2, 2, NULL, scratch);
    assert_values (y, want2, 2, "attention hand, two heads");
  }
  mm_ops_set_reference (FALSE);
}

static void
test_attention_paths (void)
{
  static const int shapes[][4] = {
    /* n_q, n_k, d, heads */
    { 1, 1, 8, 1 },
    { 5, 9, 32, 4 },
    { 7, 7, 24, 3 },
    { 1, 13, 16, 2 },
    { 16, 40, 64, 8 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    int n_q = shapes[s][0], n_k = shapes[s][1], d = shapes[s][2], heads = shapes[s][3];
    float *q = random_array ((gsize)n_q * d, 2.0f), *k = random_array ((gsize)n_k * d, 2.0f);
    float *v = random_array ((gsize)n_k * d, 1.0f);
    float *scratch = guarded_new ((gsize)n_q * n_k);
    float *fast = guarded_new ((gsize)n_q * d), *ref = guarded_new ((gsize)n_q * d);
    guint8 *valid = g_new (guint8, n_k);
    for (int m = 0; m < 3; m++) { /* no mask, random mask, all masked */
      for (int j = 0; j < n_k; j++)
        valid[j] = m == 0 ? 1 : m == 1 ? (j == 0 || g_rand_boolean (rng)) : 0;
      mm_attention (fast, q, k, v, n_q, n_k, d, heads, m ? valid : NULL, scratch);
      mm_ops_set_reference (TRUE);
      mm_attention (ref, q, k, v, n_q, n_k, d, heads, m ? valid : NULL, scratch);
      mm_ops_set_reference (FALSE);
      char *what =
          g_strdup_printf ("attention n_q=%d n_k=%d d=%d heads=%d mask=%d", n_q, n_k, d, heads, m);
      assert_close (fast, ref, (gsize)n_q * d, 1e-5f, what);
      assert_guard (fast, (gsize)n_q * d, what);
      assert_guard (scratch, (gsize)n_q * n_k, what);
      if (m == 2)
        g_assert_cmpfloat (max_abs (fast, (gsize)n_q * d), ==, 0.0f);
      g_free (what);
    }
    g_free (q), g_free (k), g_free (v), g_free (scratch), g_free (fast), g_free (ref);
    g_free (valid);
  }
}

/* ------------------------------------------------------------------ */
/* PyTorch parity (fixtures from tests/lib/ref_ops.py)                 */

typedef struct
{
  const char *dir;
  const char *name;
  JsonObject *params;
  JsonObject *arrays;
} Fixture;

static int
param (const Fixture *f, const char *key)
{
  g_assert_true (json_object_has_member (f->params, key));
  return (int)json_object_get_int_member (f->params, key);
}

static gsize
array_len (const Fixture *f, const char *key)
{
  JsonArray *shape = json_object_get_array_member (f->arrays, key);
  gsize n = 1;
  for (guint i = 0; i < json_array_get_length (shape); i++)
    n *= json_array_get_int_element (shape, i);
  return n;
}

/* Reads <dir>/<case>.<key>.f32 and checks it holds @n floats. */
static float *
load (const Fixture *f, const char *key, gsize n)
{
  char *path = g_strdup_printf ("%s/%s.%s.f32", f->dir, f->name, key);
  char *bytes;
  gsize len;
  GError *err = NULL;
  if (!g_file_get_contents (path, &bytes, &len, &err))
    g_error ("%s", err->message);
  if (len != n * sizeof (float))
    g_error ("%s: %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT " floats", path, len, n);
  g_assert_cmpuint (array_len (f, key), ==, n);
  float *x = g_new (float, n);
  for (gsize i = 0; i < n; i++) {
    guint32 u;
    memcpy (&u, bytes + 4 * i, 4);
    u = GUINT32_FROM_LE (u);
    memcpy (&x[i], &u, 4);
  }
  g_free (bytes);
  g_free (path);
  return x;
}

/* Runs one fixture case through both paths; each must match PyTorch within
 * 1e-4 of the output's scale. */
static void
run_fixture (const Fixture *f, const char *op)
{
  const float tol = 1e-4f;
  for (int r = 0; r < 2; r++) {
    mm_ops_set_reference (r);
    char *what = g_strdup_printf ("%s (%s path)", f->name, r ? "reference" : "fast");
    if (g_str_equal (op, "conv2d") || g_str_equal (op, "conv1d")) {
      gboolean two_d = g_str_equal (op, "conv2d");
      int c_in = param (f, "c_in"), c_out = param (f, "c_out"), k = param (f, "k");
      int stride = param (f, "stride"), pad = param (f, "pad"), groups = param (f, "groups");
      int h = two_d ? param (f, "h") : 1, w = two_d ? param (f, "w") : param (f, "t");
      int h_out = two_d ? mm_conv_out_size (h, k, stride, pad) : 1;
      int w_out = mm_conv_out_size (w, k, stride, pad);
      gsize n_y = (gsize)c_out * h_out * w_out;
      float *x = load (f, "x", (gsize)c_in * h * w);
      float *wt = load (f, "w", (gsize)c_out * (c_in / groups) * k * (two_d ? k : 1));
      float *b = load (f, "b", c_out), *want = load (f, "y", n_y);
      gsize n_s = two_d ? mm_conv2d_scratch_size (c_in, h, w, k, k, stride, pad, groups)
                        : mm_conv1d_scratch_size (c_in, w, k, stride, pad, groups);
      float *scratch = guarded_new (n_s), *y = guarded_new (n_y);
      if (two_d)
        mm_conv2d (y, x, wt, b, c_in, h, w, c_out, k, k, stride, pad, groups, scratch);
      else
        mm_conv1d (y, x, wt, b, c_in, w, c_out, k, stride, pad, groups, scratch);
      assert_close (y, want, n_y, tol, what);
      assert_guard (y, n_y, what);
      assert_guard (scratch, n_s, what);
      g_free (x), g_free (wt), g_free (b), g_free (want), g_free (scratch), g_free (y);
    } else if (g_str_equal (op, "maxpool2d") || g_str_equal (op, "avgpool2d")) {
      int c = param (f, "c"), h = param (f, "h"), w = param (f, "w"), k = param (f, "k");
      int stride = param (f, "stride"), pad = param (f, "pad");
      gsize n_y =
          (gsize)c * mm_conv_out_size (h, k, stride, pad) * mm_conv_out_size (w, k, stride, pad);
      float *x = load (f, "x", (gsize)c * h * w), *want = load (f, "y", n_y);
      float *y = guarded_new (n_y);
      if (g_str_equal (op, "maxpool2d"))
        mm_maxpool2d (y, x, c, h, w, k, stride, pad);
      else
        mm_avgpool2d (y, x, c, h, w, k, stride, pad);
      assert_close (y, want, n_y, tol, what);
      assert_guard (y, n_y, what);
      g_free (x), g_free (want), g_free (y);
    } else if (g_str_equal (op, "layernorm")) {
      int n = param (f, "n"), d = param (f, "d");
      float eps = json_object_get_double_member (f->params, "eps");
      gboolean affine = json_object_has_member (f->arrays, "gamma");
      float *x = load (f, "x", (gsize)n * d), *want = load (f, "y", (gsize)n * d);
      float *g = affine ? load (f, "gamma", d) : NULL, *b = affine ? load (f, "beta", d) : NULL;
      float *y = guarded_new ((gsize)n * d);
      mm_layernorm (y, x, n, d, g, b, eps);
      assert_close (y, want, (gsize)n * d, tol, what);
      g_free (x), g_free (want), g_free (g), g_free (b), g_free (y);
    } else if (g_str_equal (op, "softmax")) {
      int n = param (f, "n"), d = param (f, "d");
      float *x = load (f, "x", (gsize)n * d), *want = load (f, "y", (gsize)n * d);
      mm_softmax (x, n, d);
      assert_close (x, want, (gsize)n * d, tol, what);
      g_free (x), g_free (want);
    } else if (g_str_equal (op, "gelu") || g_str_equal (op, "silu") || g_str_equal (op, "tanh")
        || g_str_equal (op, "sigmoid")) {
      int n = param (f, "n");
      float *x = load (f, "x", n), *want = load (f, "y", n);
      if (g_str_equal (op, "gelu"))
        mm_gelu (x, n);
      else if (g_str_equal (op, "silu"))
        mm_silu (x, n);
      else if (g_str_equal (op, "tanh"))
        mm_tanh (x, n);
      else
        mm_sigmoid (x, n);
      assert_close (x, want, n, tol, what);
      g_free (x), g_free (want);
    } else if (g_str_equal (op, "mha")) {
      /* torch.nn.MultiheadAttention: q/k/v projections with the three
       * blocks of in_proj, attention, out_proj */
      int e = param (f, "e"), heads = param (f, "heads"), n_q = param (f, "n_q");
      int n_k = param (f, "n_k");
      float *query = load (f, "query", (gsize)n_q * e);
      float *key = load (f, "key", (gsize)n_k * e), *value = load (f, "value", (gsize)n_k * e);
      float *valid_f = load (f, "key_valid", n_k);
      float *in_w = load (f, "in_w", (gsize)3 * e * e), *in_b = load (f, "in_b", 3 * e);
      float *out_w = load (f, "out_w", (gsize)e * e), *out_b = load (f, "out_b", e);
      float *want = load (f, "y", (gsize)n_q * e);
      float *q = g_new (float, n_q *e), *k = g_new (float, n_k *e), *v = g_new (float, n_k *e);
      float *a = g_new (float, n_q *e), *y = guarded_new ((gsize)n_q * e);
      float *scratch = guarded_new ((gsize)n_q * n_k);
      guint8 *valid = g_new (guint8, n_k);
      for (int j = 0; j < n_k; j++)
        valid[j] = valid_f[j] != 0.0f;
      mm_linear (q, query, in_w, in_b, n_q, e, e);
      mm_linear (k, key, in_w + e * e, in_b + e, n_k, e, e);
      mm_linear (v, value, in_w + 2 * e * e, in_b + 2 * e, n_k, e, e);
      mm_attention (a, q, k, v, n_q, n_k, e, heads, valid, scratch);
      mm_linear (y, a, out_w, out_b, n_q, e, e);
      assert_close (y, want, (gsize)n_q * e, tol, what);
      assert_guard (y, (gsize)n_q * e, what);
      assert_guard (scratch, (gsize)n_q * n_k, what);
      g_free (query), g_free (key), g_free (value), g_free (valid_f), g_free (in_w);
      g_free (in_b), g_free (out_w), g_free (out_b), g_free (want), g_free (q), g_free (k);
      g_free (v), g_free (a), g_free (y), g_free (scratch), g_free (valid);
    } else {
      g_error ("%s: unknown op '%s' in the manifest", f->name, op);
    }
    g_free (what);
  }
  mm_ops_set_reference (FALSE);
}

static void
test_pytorch (gconstpointer data)
{
  const char *want_op = data;
  const char *root = g_getenv ("MM_FIXTURES");
  if (!root) {
    g_test_skip ("MM_FIXTURES not set (meson test sets it)");
    return;
  }
  char *dir = g_build_filename (root, "ops", NULL);
  char *manifest = g_build_filename (dir, "manifest.json", NULL);
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  if (!json_parser_load_from_file (parser, manifest, &err))
    g_error ("%s: %s", manifest, err->message);
  JsonArray *cases =
      json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "cases");
  guint n_run = 0;
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *op = json_object_get_string_member (c, "op");
    gboolean is_act = g_str_equal (want_op, "activation")
        && (g_str_equal (op, "gelu") || g_str_equal (op, "silu") || g_str_equal (op, "tanh")
            || g_str_equal (op, "sigmoid"));
    gboolean is_pool = g_str_equal (want_op, "pool") && g_str_has_suffix (op, "pool2d");
    if (!is_act && !is_pool && !g_str_equal (op, want_op))
      continue;
    Fixture f = { dir, json_object_get_string_member (c, "name"),
      json_object_get_object_member (c, "params"), json_object_get_object_member (c, "arrays") };
    g_test_message ("PyTorch case %s", f.name);
    run_fixture (&f, op);
    n_run++;
  }
  /* a manifest that lost its cases must not pass quietly */
  g_assert_cmpuint (n_run, >=, 1);
  g_object_unref (parser);
  g_free (manifest);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  rng = g_rand_new_with_seed (20240601);
  mm_blas_init ();

  g_test_add_func ("/ops/linear/paths", test_linear_paths);
  g_test_add_func ("/ops/linear/hand", test_linear_hand);
  g_test_add_func ("/ops/linear/as-conv", test_linear_as_conv);
  g_test_add_func ("/ops/conv2d/paths", test_conv2d_paths);
  g_test_add_func ("/ops/conv2d/winograd", test_winograd_paths);
  g_test_add_func ("/ops/conv1d/paths", test_conv1d_paths);
  g_test_add_func ("/ops/conv/channel-last", test_conv_cl);
  g_test_add_func ("/ops/conv/hand", test_conv_hand);
  g_test_add_func ("/ops/batchnorm/hand", test_batchnorm_hand);
  g_test_add_func ("/ops/pool/hand", test_pool_hand);
  g_test_add_func ("/ops/pool/random", test_pool_random);
  g_test_add_func ("/ops/layernorm", test_layernorm);
  g_test_add_func ("/ops/activation/paths", test_activations_paths);
  g_test_add_func ("/ops/activation/hand", test_activations_hand);
  g_test_add_func ("/ops/softmax/paths", test_softmax_paths);
  g_test_add_func ("/ops/attention/hand", test_attention_hand);
  g_test_add_func ("/ops/attention/paths", test_attention_paths);
  static const char *const torch_ops[] = {
    "conv2d",
    "conv1d",
    "pool",
    "layernorm",
    "activation",
    "softmax",
    "mha",
  };
  for (guint i = 0; i < G_N_ELEMENTS (torch_ops); i++) {
    char *path = g_strdup_printf ("/ops/pytorch/%s", torch_ops[i]);
    g_test_add_data_func (path, torch_ops[i], test_pytorch);
    g_free (path);
  }

  int ret = g_test_run ();
  g_rand_free (rng);
  return ret;
}
