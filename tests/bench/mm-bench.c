/* mm-bench: times libmm's components of one model, and OpenBLAS sgemm.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   mm-bench MODEL [REPEATS]
 *
 * Prints one JSON object: the BLAS core in use, the median milliseconds per
 * call at batch 1 for every component the model has, and sgemm GFLOP/s for
 * 1024^3 through the same BLAS entry point libmm uses.  tests/bench/bench.py
 * runs it next to PyTorch on the same weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm.h"
#include "ops.h"

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

typedef gboolean (*RunFn) (gpointer ctx, gpointer arg);

static double
median_ms (RunFn fn, gpointer ctx, gpointer arg, int repeats)
{
  double *t = g_new (double, repeats);
  for (int i = 0; i < 3; i++)
    fn (ctx, arg);
  for (int i = 0; i < repeats; i++) {
    gint64 t0 = g_get_monotonic_time ();
    if (!fn (ctx, arg)) {
      fprintf (stderr, "mm-bench: run failed\n");
      exit (1);
    }
    t[i] = (g_get_monotonic_time () - t0) / 1000.0;
  }
  qsort (t, repeats, sizeof *t, cmp_double);
  double m = t[repeats / 2];
  g_free (t);
  return m;
}

static float out[65536];
static const char *bench_text =
    "the quick brown fox jumps over the lazy dog while the news anchor reads the "
    "weather report about rain snow and wind over the mountains and the sea, then "
    "the sports results follow with football tennis and cycling scores from the "
    "weekend and a long interview about music art and science in the city today";

static gboolean
run_text (gpointer ctx, gpointer arg)
{
  guint n;
  return mm_text_encoder_encode (ctx, bench_text, -1, out, &n, NULL);
}

typedef struct
{
  guint8 *pixels;
  guint w, h;
} Frame;

static gboolean
run_image (gpointer ctx, gpointer arg)
{
  Frame *f = arg;
  return mm_image_encoder_encode (ctx, MM_PIXEL_RGB, f->pixels, f->w, f->h, f->w * 3, out,
      NULL);
}

typedef struct
{
  float *samples;
  gsize n;
} Pcm;

static gboolean
run_audio (gpointer ctx, gpointer arg)
{
  Pcm *p = arg;
  return mm_audio_encoder_encode (ctx, p->samples, p->n, out, NULL);
}

static gboolean
run_fusion (gpointer ctx, gpointer arg)
{
  return mm_fusion_run (ctx, arg, out, NULL);
}

static gboolean
run_head (gpointer ctx, gpointer arg)
{
  return mm_head_run (ctx, arg, out, NULL);
}

typedef struct
{
  float *a, *b, *c;
  int n;
} Gemm;

static gboolean
run_sgemm (gpointer ctx, gpointer arg)
{
  Gemm *g = arg;
  mm_sgemm (FALSE, FALSE, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c, g->n);
  return TRUE;
}

static float *
random_floats (gsize n, float scale)
{
  float *v = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    v[i] = scale * (float) (g_random_double () * 2.0 - 1.0);
  return v;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: mm-bench MODEL [REPEATS]\n");
    return 2;
  }
  int repeats = argc > 2 ? atoi (argv[2]) : 30;
  if (repeats < 1)
    repeats = 1;
  g_random_set_seed (1);
  GError *err = NULL;
  MmModel *m = mm_model_open (argv[1], &err);
  if (!m) {
    fprintf (stderr, "mm-bench: %s\n", err->message);
    return 1;
  }
  MmContextParams p = mm_context_default_params ();
  printf ("{\"model\": \"%s\", \"core\": \"%s\", \"threads\": \"%s\", \"components\": {",
      mm_model_get_name (m), mm_blas_core_name (), g_getenv ("MM_THREADS") ?
      g_getenv ("MM_THREADS") : "1");
  const char *sep = "";
  if (mm_model_has_component (m, MM_COMPONENT_TEXT)) {
    MmTextEncoder *e = mm_text_encoder_new (m, &p, &err);
    guint n = 0;
    if (!e || !mm_text_encoder_encode (e, bench_text, -1, out, &n, &err))
      goto fail;
    printf ("%s\"text\": {\"ms\": %.4f, \"tokens\": %u}", sep,
        median_ms (run_text, e, NULL, repeats), n);
    sep = ", ";
    mm_text_encoder_free (e);
  }
  if (mm_model_has_component (m, MM_COMPONENT_IMAGE)) {
    MmImageEncoder *e = mm_image_encoder_new (m, &p, &err);
    if (!e)
      goto fail;
    Frame f;
    mm_model_get_image_size (m, &f.w, &f.h);
    f.pixels = g_malloc ((gsize) f.w * f.h * 3);
    for (gsize i = 0; i < (gsize) f.w * f.h * 3; i++)
      f.pixels[i] = (guint8) g_random_int_range (0, 256);
    printf ("%s\"image\": {\"ms\": %.4f, \"width\": %u, \"height\": %u}", sep,
        median_ms (run_image, e, &f, repeats), f.w, f.h);
    sep = ", ";
    g_free (f.pixels);
    mm_image_encoder_free (e);
  }
  if (mm_model_has_component (m, MM_COMPONENT_AUDIO)) {
    MmAudioEncoder *e = mm_audio_encoder_new (m, &p, &err);
    if (!e)
      goto fail;
    Pcm pcm = { NULL, mm_model_get_audio_window (m) };
    pcm.samples = random_floats (pcm.n, 0.3f);
    printf ("%s\"audio\": {\"ms\": %.4f, \"samples\": %" G_GSIZE_FORMAT "}", sep,
        median_ms (run_audio, e, &pcm, repeats), pcm.n);
    sep = ", ";
    g_free (pcm.samples);
    mm_audio_encoder_free (e);
  }
  if (mm_model_has_component (m, MM_COMPONENT_FUSION)) {
    MmFusion *f = mm_fusion_new (m, &p, &err);
    if (!f)
      goto fail;
    guint n = mm_model_get_fusion_n_inputs (m);
    const float **inputs = g_new0 (const float *, n);
    for (guint i = 0; i < n; i++)
      inputs[i] = random_floats (mm_model_get_fusion_input_dim (m, i), 1.0f);
    printf ("%s\"fusion\": {\"ms\": %.5f}", sep, median_ms (run_fusion, f, inputs,
            repeats * 10));
    sep = ", ";
    for (guint i = 0; i < n; i++)
      g_free ((gpointer) inputs[i]);
    g_free (inputs);
    mm_fusion_free (f);
  }
  if (mm_model_has_component (m, MM_COMPONENT_HEAD)
      && mm_model_has_component (m, MM_COMPONENT_FUSION)) {
    MmHead *h = mm_head_new (m, &p, &err);
    if (!h)
      goto fail;
    float *x = random_floats (mm_model_get_dim (m, MM_COMPONENT_FUSION), 1.0f);
    printf ("%s\"head\": {\"ms\": %.5f}", sep, median_ms (run_head, h, x, repeats * 10));
    g_free (x);
    mm_head_free (h);
  }
  Gemm g = { NULL, NULL, NULL, 1024 };
  g.a = random_floats (1024 * 1024, 1.0f);
  g.b = random_floats (1024 * 1024, 1.0f);
  g.c = g_new (float, 1024 * 1024);
  double ms = median_ms (run_sgemm, NULL, &g, 7);
  printf ("}, \"sgemm\": {\"n\": 1024, \"ms\": %.3f, \"gflops\": %.2f}}\n", ms,
      2.0 * 1024 * 1024 * 1024 / (ms * 1e6));
  g_free (g.a);
  g_free (g.b);
  g_free (g.c);
  mm_model_unref (m);
  return 0;

fail:
  fprintf (stderr, "mm-bench: %s\n", err ? err->message : "failed");
  return 1;
}
