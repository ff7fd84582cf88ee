/* libmm bf16 path (issue 15): conv-bf16.c against a reference on the same
 * bf16-rounded operands, the encoders in bf16 against fp32, and the
 * fallback to fp32 with one warning.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mm.h"
#include "conv-bf16.h"
#include "bundled-model.h"
#include "alloc-count.h"

static float
rnd (guint32 *s)
{
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float
b16 (float f)
{
  return mm_bf16_to_float (mm_bf16_from_float (f));
}

static gboolean
need_bf16 (void)
{
  if (mm_cpu_has_bf16 ())
    return TRUE;
  g_test_skip ("no AVX512_BF16 on this CPU (or MM_DISABLE_BF16 set)");
  return FALSE;
}

static double
act_ref (double v, const MmAct *act)
{
  if (!act || act->kind == MM_ACT_NONE)
    return v;
  if (act->kind == MM_ACT_RELU)
    return v > 0.0 ? v : 0.0;
  return 0.5 * v * (1.0 + erf (v * M_SQRT1_2)); /* GELU, the only other one used */
}

/* one conv: c_in -> c_out, k x k, stride s, pad p on an h x w input;
 * reference in double on the bf16-rounded weights and input */
static void
check_conv (
    int c_in, int c_out, int k, int s, int p, int h, int w, gboolean with_id, const MmAct *act)
{
  guint32 seed = (guint32)(c_in * 131 + c_out * 7 + k * 3 + s + h);
  int hp = h + 2 * p, wp = w + 2 * p;
  int ho = (hp - k) / s + 1, wo = (wp - k) / s + 1;
  gsize nw = (gsize)c_out * c_in * k * k;
  float *wt = g_new (float, nw), *scale = g_new (float, c_out), *shift = g_new (float, c_out);
  float *x = g_new0 (float, (gsize)hp *wp *c_in);
  float *id = g_new (float, (gsize)ho *wo *c_out), *y = g_new (float, (gsize)ho *wo *c_out);
  for (gsize i = 0; i < nw; i++)
    wt[i] = rnd (&seed) * 0.2f;
  for (int o = 0; o < c_out; o++) {
    scale[o] = 0.5f + 0.5f * fabsf (rnd (&seed));
    shift[o] = rnd (&seed);
  }
  for (int r = p; r < p + h; r++)
    for (int q = p; q < p + w; q++)
      for (int ci = 0; ci < c_in; ci++)
        x[((gsize)r * wp + q) * c_in + ci] = rnd (&seed);
  for (gsize i = 0; i < (gsize)ho * wo * c_out; i++)
    id[i] = rnd (&seed);

  MmConvBf16 c;
  GError *err = NULL;
  g_assert_true (mm_conv_bf16_init (&c, wt, scale, shift, c_in, c_out, k, k, "test", &err));
  g_assert_no_error (err);
  /* the documented bound: two bf16 per float of the input */
  guint16 *scratch = g_new (guint16, 2 * (gsize)hp * wp * c_in);
  mm_conv_bf16_run (&c, y, (gsize)wo * c_out, x, (gsize)wp * c_in, ho, wo, s, s,
      with_id ? id : NULL, (gsize)wo * c_out, act, scratch);
  g_free (scratch);

  double worst = 0.0;
  for (int r = 0; r < ho; r++)
    for (int q = 0; q < wo; q++)
      for (int o = 0; o < c_out; o++) {
        double sum = 0.0, mag = 0.0;
        for (int i = 0; i < k; i++)
          for (int j = 0; j < k; j++)
            for (int ci = 0; ci < c_in; ci++) {
              double prod = (double)b16 (wt[(((gsize)o * c_in + ci) * k + i) * k + j] * scale[o])
                  * b16 (x[(((gsize)r * s + i) * wp + q * s + j) * c_in + ci]);
              sum += prod;
              mag += fabs (prod);
            }
        gsize at = ((gsize)r * wo + q) * c_out + o;
        double ref = act_ref (sum + shift[o] + (with_id ? id[at] : 0.0), act);
        /* fp32 sums in another order: error ~ 1e-6 of the magnitudes summed */
        double err_scaled = fabs (y[at] - ref) / (mag + fabs (shift[o]) + 1.0);
        worst = MAX (worst, err_scaled);
      }
  g_test_message ("conv %d->%d %dx%d/%d pad %d @%dx%d%s act %d: worst scaled error %.2g", c_in,
      c_out, k, k, s, p, h, w, with_id ? " +id" : "", act ? (int)act->kind : 0, worst);
  g_assert_cmpfloat (worst, <, 2e-6);
  mm_conv_bf16_clear (&c);
  g_free (wt);
  g_free (scale);
  g_free (shift);
  g_free (x);
  g_free (id);
  g_free (y);
}

static void
test_conv (void)
{
  if (!need_bf16 ())
    return;
  static const MmAct relu = { MM_ACT_RELU, 0, 0 }, gelu = { MM_ACT_GELU, 0, 0 };
  check_conv (3, 16, 7, 2, 3, 23, 19, FALSE, &relu); /* odd c_in, half a panel */
  check_conv (16, 32, 3, 1, 1, 9, 11, TRUE, &relu);
  check_conv (32, 40, 3, 2, 1, 13, 8, FALSE, NULL); /* 32 + 8 channels */
  check_conv (64, 64, 1, 2, 0, 14, 14, TRUE, NULL);
  check_conv (24, 96, 3, 1, 1, 7, 7, TRUE, &gelu);
  check_conv (5, 33, 1, 1, 0, 1, 3, FALSE, &relu); /* 3 positions: the 1-wide tile */
}

/* y (n, d_out) = x W^T + b [+ residual] through mm_linear_bf16_run */
static void
test_linear (void)
{
  if (!need_bf16 ())
    return;
  static const int cases[][3] = { { 1, 256, 768 }, { 7, 64, 48 }, { 64, 256, 1024 },
    { 13, 1024, 256 } };
  static const MmAct gelu = { MM_ACT_GELU, 0, 0 };
  for (guint t = 0; t < G_N_ELEMENTS (cases); t++) {
    int n = cases[t][0], di = cases[t][1], d_o = cases[t][2];
    guint32 seed = (guint32)(t + 1);
    float *w = g_new (float, (gsize)di *d_o), *b = g_new (float, d_o);
    float *x = g_new (float, (gsize)n *di), *res = g_new (float, (gsize)n *d_o);
    float *y = g_new (float, (gsize)n *d_o);
    for (gsize i = 0; i < (gsize)di * d_o; i++)
      w[i] = rnd (&seed) * 0.1f;
    for (int i = 0; i < d_o; i++)
      b[i] = rnd (&seed);
    for (gsize i = 0; i < (gsize)n * di; i++)
      x[i] = rnd (&seed);
    for (gsize i = 0; i < (gsize)n * d_o; i++)
      res[i] = rnd (&seed);
    MmConvBf16 c;
    g_assert_true (mm_conv_bf16_init (&c, w, NULL, b, di, d_o, 1, 1, "test", NULL));
    gboolean with_res = t % 2 == 0;
    const MmAct *act = t == 2 ? &gelu : NULL;
    guint16 *scratch = g_new (guint16, (gsize)n * (di + 1));
    mm_linear_bf16_run (&c, y, x, n, with_res ? res : NULL, act, scratch);
    g_free (scratch);
    double worst = 0.0;
    for (int r = 0; r < n; r++)
      for (int o = 0; o < d_o; o++) {
        double sum = 0.0, mag = 0.0;
        for (int i = 0; i < di; i++) {
          double prod = (double)b16 (w[(gsize)o * di + i]) * b16 (x[(gsize)r * di + i]);
          sum += prod;
          mag += fabs (prod);
        }
        double ref = act_ref (sum + b[o] + (with_res ? res[(gsize)r * d_o + o] : 0.0), act);
        worst = MAX (worst, fabs (y[(gsize)r * d_o + o] - ref) / (mag + fabs (b[o]) + 1.0));
      }
    g_test_message ("linear %dx%d->%d: worst scaled error %.2g", n, di, d_o, worst);
    g_assert_cmpfloat (worst, <, 2e-6);
    mm_conv_bf16_clear (&c);
    g_free (w);
    g_free (b);
    g_free (x);
    g_free (res);
    g_free (y);
  }
}

/* the bundled model's image encoder: bf16 close to fp32 on a test card */
/* @model's image encoder in bf16 against fp32 on one picture: runs bf16,
 * max |dz| under @max_rel of max |z|, cosine over @min_cos, and not equal */
static void
compare_image (MmModel *model, const char *what, double max_rel, double min_cos)
{
  MmContextParams p32 = mm_context_default_params (), p16 = p32;
  p16.precision = MM_PRECISION_BF16;
  GError *err = NULL;
  MmImageEncoder *e32 = mm_image_encoder_new (model, &p32, &err);
  g_assert_no_error (err);
  MmImageEncoder *e16 = mm_image_encoder_new (model, &p16, &err);
  g_assert_no_error (err);
  g_assert_cmpint (mm_image_encoder_get_precision (e32), ==, MM_PRECISION_FP32);
  g_assert_cmpint (mm_image_encoder_get_precision (e16), ==, MM_PRECISION_BF16);
  guint w = 97, h = 71, dim = mm_model_get_dim (model, MM_COMPONENT_IMAGE);
  guint8 *rgb = g_new (guint8, (gsize)w * h * 3);
  for (guint i = 0; i < w * h * 3; i++)
    rgb[i] = (guint8)((i * 37 + (i / (w * 3)) * 11) & 0xff);
  float *z32 = g_new (float, dim), *z16 = g_new (float, dim);
  g_assert_true (mm_image_encoder_encode (e32, MM_PIXEL_RGB, rgb, w, h, w * 3, z32, &err));
  g_assert_true (mm_image_encoder_encode (e16, MM_PIXEL_RGB, rgb, w, h, w * 3, z16, &err));
  double dmax = 0.0, zmax = 0.0, dot = 0.0, n32 = 0.0, n16 = 0.0;
  for (guint k = 0; k < dim; k++) {
    dmax = MAX (dmax, fabs ((double)z32[k] - z16[k]));
    zmax = MAX (zmax, fabs (z32[k]));
    dot += (double)z32[k] * z16[k];
    n32 += (double)z32[k] * z32[k];
    n16 += (double)z16[k] * z16[k];
  }
  double cosine = dot / sqrt (n32 * n16);
  g_test_message (
      "%s bf16 vs fp32: max |dz| %.3g of max |z| %.3g, cosine %.6f", what, dmax, zmax, cosine);
  g_assert_cmpfloat (dmax, <, max_rel * zmax);
  g_assert_cmpfloat (cosine, >, min_cos);
  g_assert_cmpfloat (dmax, >, 0.0); /* it did run in bf16 */
  g_free (z32);
  g_free (z16);
  g_free (rgb);
  mm_image_encoder_free (e32);
  mm_image_encoder_free (e16);
}

/* the bundled model's image encoder (resnet family): bf16 close to fp32;
 * bf16 keeps 8 significant bits: a few per mille of the scale, not more */
static void
test_image_encoder (void)
{
  if (!need_bf16 ())
    return;
  MmModel *model = bundled_model_open_or_skip ();
  if (!model)
    return;
  compare_image (model, "image", 0.05, 0.999);
  mm_model_unref (model);
}

static void compare_text (MmModel *model, const char *what);
static MmModel *open_fixture (const char *sub, const char *name);

/* graph components (ONNX imports, tests/fixtures/graph): their convs of
 * groups 1 and MatMuls by a weight matrix run bf16, the rest fp32; close
 * to fp32 */
static void
test_graph (void)
{
  if (!need_bf16 ())
    return;
  static const char *const files[] = { "cifar_resnet18_graph.safetensors",
    "mobilenet_v2.safetensors", "efficientnet_b0_narrow.safetensors" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    MmModel *model = open_fixture ("graph", files[i]);
    compare_image (model, files[i], 0.05, 0.999);
    mm_model_unref (model);
  }
  /* a transformer's MatMuls by weight matrices */
  MmModel *model = open_fixture ("graph", "bert_tiny.safetensors");
  compare_text (model, "bert_tiny (graph)");
  mm_model_unref (model);
}

/* the bundled model's audio encoder (cnn1d): bf16 close to fp32 */
static void
test_audio_encoder (void)
{
  if (!need_bf16 ())
    return;
  MmModel *model = bundled_model_open_or_skip ();
  if (!model)
    return;
  MmContextParams p32 = mm_context_default_params (), p16 = p32;
  p16.precision = MM_PRECISION_BF16;
  GError *err = NULL;
  MmAudioEncoder *e32 = mm_audio_encoder_new (model, &p32, &err);
  MmAudioEncoder *e16 = mm_audio_encoder_new (model, &p16, &err);
  g_assert_no_error (err);
  g_assert_cmpint (mm_audio_encoder_get_precision (e16), ==, MM_PRECISION_BF16);
  guint n = mm_model_get_audio_window (model), dim = mm_model_get_dim (model, MM_COMPONENT_AUDIO);
  float *pcm = g_new (float, n), *z32 = g_new (float, dim), *z16 = g_new (float, dim);
  guint32 seed = 7;
  for (guint i = 0; i < n; i++)
    pcm[i] = 0.3f * sinf (i * 0.05f) + 0.05f * rnd (&seed);
  g_assert_true (mm_audio_encoder_encode (e32, pcm, n, z32, &err));
  g_assert_true (mm_audio_encoder_encode (e16, pcm, n, z16, &err));
  double dmax = 0.0, zmax = 0.0;
  for (guint k = 0; k < dim; k++) {
    dmax = MAX (dmax, fabs ((double)z32[k] - z16[k]));
    zmax = MAX (zmax, fabs (z32[k]));
  }
  g_test_message ("audio bf16 vs fp32: max |dz| %.3g of max |z| %.3g", dmax, zmax);
  g_assert_cmpfloat (dmax, <, 0.05 * zmax);
  g_assert_cmpfloat (dmax, >, 0.0);
  g_free (pcm);
  g_free (z32);
  g_free (z16);
  mm_audio_encoder_free (e32);
  mm_audio_encoder_free (e16);
  mm_model_unref (model);
}

/* @model's text encoder in bf16 against fp32 on one sentence */
static void
compare_text (MmModel *model, const char *what)
{
  GError *err = NULL;
  MmContextParams p32 = mm_context_default_params (), p16 = p32;
  p16.precision = MM_PRECISION_BF16;
  MmTextEncoder *e32 = mm_text_encoder_new (model, &p32, &err);
  MmTextEncoder *e16 = mm_text_encoder_new (model, &p16, &err);
  g_assert_no_error (err);
  g_assert_cmpint (mm_text_encoder_get_precision (e16), ==, MM_PRECISION_BF16);
  guint dim = mm_model_get_dim (model, MM_COMPONENT_TEXT);
  float *z32 = g_new (float, dim), *z16 = g_new (float, dim);
  const char *text = "a dog barks at the red truck while the children play in the park";
  g_assert_true (mm_text_encoder_encode (e32, text, -1, z32, NULL, &err));
  g_assert_true (mm_text_encoder_encode (e16, text, -1, z16, NULL, &err));
  double dmax = 0.0, zmax = 0.0;
  for (guint k = 0; k < dim; k++) {
    dmax = MAX (dmax, fabs ((double)z32[k] - z16[k]));
    zmax = MAX (zmax, fabs (z32[k]));
  }
  g_test_message ("%s bf16 vs fp32: max |dz| %.3g of max |z| %.3g", what, dmax, zmax);
  g_assert_cmpfloat (dmax, <, 0.05 * zmax);
  g_assert_cmpfloat (dmax, >, 0.0);
  g_free (z32);
  g_free (z16);
  mm_text_encoder_free (e32);
  mm_text_encoder_free (e16);
}

static MmModel *
open_fixture (const char *sub, const char *name)
{
  const char *dir = g_getenv ("MM_FIXTURES");
  char *path = g_build_filename (dir ? dir : "tests/fixtures", sub, name, NULL);
  GError *err = NULL;
  MmModel *model = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_free (path);
  return model;
}

/* the BERT family's linears: bf16 close to fp32 */
static void
test_bert (void)
{
  if (!need_bf16 ())
    return;
  MmModel *model = open_fixture ("text", "bert-mean.safetensors");
  compare_text (model, "bert");
  mm_model_unref (model);
}

/* the bf16 encoders allocate nothing per call once created (image and
 * audio of the bundled model, the bert-mean fixture) */
static void
test_no_alloc (void)
{
  if (!need_bf16 ())
    return;
  if (!COUNT_ALLOCS) {
    g_test_skip ("allocations are not counted here (sanitizer)");
    return;
  }
  MmModel *model = bundled_model_open_or_skip ();
  if (!model)
    return;
  const char *dir = g_getenv ("MM_FIXTURES");
  char *path =
      g_build_filename (dir ? dir : "tests/fixtures", "text", "bert-mean.safetensors", NULL);
  MmModel *bert = mm_model_open (path, NULL);
  g_free (path);
  g_assert_nonnull (bert);
  MmContextParams p = mm_context_default_params ();
  p.precision = MM_PRECISION_BF16;
  MmImageEncoder *ie = mm_image_encoder_new (model, &p, NULL);
  MmAudioEncoder *ae = mm_audio_encoder_new (model, &p, NULL);
  MmTextEncoder *te = mm_text_encoder_new (bert, &p, NULL);
  g_assert_true (ie && ae && te);
  guint n = mm_model_get_audio_window (model);
  float *pcm = g_new0 (float, n), z[1024];
  guint8 *rgb = g_new0 (guint8, 50 * 40 * 3);
  g_assert_cmpuint (mm_model_get_dim (bert, MM_COMPONENT_TEXT), <=, 1024);
  for (int round = 0; round < 2; round++) { /* the first round may warm anything up */
    allocs_begin ();
    g_assert_true (mm_image_encoder_encode (ie, MM_PIXEL_RGB, rgb, 50, 40, 150, z, NULL));
    g_assert_true (mm_audio_encoder_encode (ae, pcm, n, z, NULL));
    g_assert_true (mm_text_encoder_encode (te, "a dog barks in the park", -1, z, NULL, NULL));
    int allocs = allocs_end ();
    if (round == 1)
      g_assert_cmpint (allocs, ==, 0);
  }
  g_free (pcm);
  g_free (rgb);
  mm_image_encoder_free (ie);
  mm_audio_encoder_free (ae);
  mm_text_encoder_free (te);
  mm_model_unref (bert);
  mm_model_unref (model);
}

/* MM_DISABLE_BF16=1: bf16 asked twice, fp32 run twice, one warning */
static void
test_fallback (void)
{
  if (g_test_subprocess ()) {
    g_setenv ("MM_DISABLE_BF16", "1", TRUE);
    g_assert_false (mm_precision_supported (MM_PRECISION_BF16));
    g_assert_true (mm_precision_supported (MM_PRECISION_FP32));
    MmModel *model = bundled_model_open_or_skip ();
    if (!model)
      return;
    MmContextParams p = mm_context_default_params ();
    p.precision = MM_PRECISION_BF16;
    GError *err = NULL;
    g_test_expect_message ("libmm", G_LOG_LEVEL_WARNING, "*bf16*fp32*");
    MmImageEncoder *a = mm_image_encoder_new (model, &p, &err);
    g_test_assert_expected_messages ();
    MmImageEncoder *b = mm_image_encoder_new (model, &p, &err); /* no second warning */
    g_assert_no_error (err);
    g_assert_cmpint (mm_image_encoder_get_precision (a), ==, MM_PRECISION_FP32);
    g_assert_cmpint (mm_image_encoder_get_precision (b), ==, MM_PRECISION_FP32);
    mm_image_encoder_free (a);
    mm_image_encoder_free (b);
    mm_model_unref (model);
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/bf16/conv/against-reference", test_conv);
  g_test_add_func ("/bf16/linear/against-reference", test_linear);
  g_test_add_func ("/bf16/image-encoder/close-to-fp32", test_image_encoder);
  g_test_add_func ("/bf16/graph/close-to-fp32", test_graph);
  g_test_add_func ("/bf16/audio-encoder/close-to-fp32", test_audio_encoder);
  g_test_add_func ("/bf16/bert/close-to-fp32", test_bert);
  g_test_add_func ("/bf16/no-alloc", test_no_alloc);
  g_test_add_func ("/bf16/fallback/one-warning", test_fallback);
  return g_test_run ();
}
