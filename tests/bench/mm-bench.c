/* mm-bench: times libmm's components, its heavy layers and OpenBLAS sgemm.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   mm-bench [model] MODEL [REPEATS]     median ms per call at batch 1 of
 *                                        every component MODEL has, and
 *                                        sgemm 1024^3 GFLOP/s
 *   mm-bench layers [REPEATS]            heavy layers (resnet18 convs at
 *                                        224x224, BERT linears) next to one
 *                                        sgemm of the same M, N, K
 *   mm-bench streams MODEL SECONDS COMP...  one thread per COMP (text, image,
 *                                        audio), each with its own context on
 *                                        the one shared model, all running at
 *                                        once for SECONDS: calls/s, latency
 *   mm-bench memory MODEL N CALLS        N opens + N contexts of every
 *                                        encoder: mappings of the file, RSS;
 *                                        then RSS over CALLS encode rounds
 *
 * Prints one JSON object on stdout.  tests/bench/bench.py runs it next to
 * PyTorch on the same weights.  MM_THREADS sets BLAS threads (default 1);
 * MM_BENCH_ONLY=COMP times one component; MM_BENCH_TEXT_TIMES=N encodes the
 * bench text repeated N times (a long BERT input, truncated at max_len);
 * MM_BENCH_PRECISION=bf16 makes the contexts with MM_PRECISION_BF16.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm.h"
#include "ops.h"
#include "winograd.h"
#include "conv-cl.h"
#include "linear-packed.h"

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef gboolean (*RunFn) (gpointer ctx, gpointer arg);

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Median over @repeats samples of the ms per call; a sample times enough
 * back-to-back calls to last about 0.2 ms, so microsecond components are
 * not clock noise. */
static double
median_ms (RunFn fn, gpointer ctx, gpointer arg, int repeats)
{
  double *t = g_new (double, repeats);
  double t0 = now_ms ();
  for (int i = 0; i < 3; i++)
    fn (ctx, arg);
  double once = (now_ms () - t0) / 3;
  int inner = once > 0.2 ? 1 : (int)MIN (1000.0, 0.2 / MAX (once, 1e-4)) + 1;
  for (int i = 0; i < repeats; i++) {
    t0 = now_ms ();
    for (int j = 0; j < inner; j++)
      if (!fn (ctx, arg)) {
        fprintf (stderr, "mm-bench: run failed\n");
        exit (1);
      }
    t[i] = (now_ms () - t0) / inner;
  }
  qsort (t, repeats, sizeof *t, cmp_double);
  double m = t[repeats / 2];
  g_free (t);
  return m;
}

/* 62 WordPiece tokens of plain words: with [CLS] and [SEP] this fills a
 * 64-token BERT exactly (longer text is truncated to max_len). */
static const char *bench_text =
    "the quick brown fox jumps over the lazy dog while the news anchor reads the "
    "weather report about rain snow and wind over the mountains and the sea , then "
    "the sports results follow with football tennis and cycling scores from the "
    "weekend and a long interview about music art and science in the city today . "
    "the quick brown fox jumps over the lazy dog while the news anchor reads the "
    "weather report about rain snow and wind over the mountains and the sea";

static float *
random_floats (gsize n, float scale)
{
  float *v = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    v[i] = scale * (float)(g_random_double () * 2.0 - 1.0);
  return v;
}

/* ---- per-component contexts ------------------------------------------- */

typedef struct
{
  MmComponent comp;
  gpointer ctx;
  guint8 *pixels; /* image: RGB at the network size */
  guint w, h;
  float *samples; /* audio: one default window */
  gsize n_samples;
  const float **inputs; /* fusion */
  guint n_inputs;
  float *fused; /* head input */
  float out[65536];
} Runner;

/* bench_text, or MM_BENCH_TEXT_TIMES copies of it */
static const char *
text_input (void)
{
  static char *text;
  if (!text) {
    int times = g_getenv ("MM_BENCH_TEXT_TIMES") ? atoi (g_getenv ("MM_BENCH_TEXT_TIMES")) : 1;
    GString *s = g_string_new (bench_text);
    for (int i = 1; i < times; i++)
      g_string_append_printf (s, " %s", bench_text);
    text = g_string_free (s, FALSE);
  }
  return text;
}

static gboolean
runner_run (gpointer ctx, gpointer arg)
{
  Runner *r = ctx;
  guint n;
  switch (r->comp) {
    case MM_COMPONENT_TEXT:
      return mm_text_encoder_encode (r->ctx, text_input (), -1, r->out, &n, NULL);
    case MM_COMPONENT_IMAGE:
      return mm_image_encoder_encode (
          r->ctx, MM_PIXEL_RGB, r->pixels, r->w, r->h, r->w * 3, r->out, NULL);
    case MM_COMPONENT_AUDIO:
      return mm_audio_encoder_encode (r->ctx, r->samples, r->n_samples, r->out, NULL);
    case MM_COMPONENT_FUSION:
      return mm_fusion_run (r->ctx, r->inputs, r->out, NULL);
    case MM_COMPONENT_HEAD:
      return mm_head_run (r->ctx, r->fused, r->out, NULL);
    default:
      return FALSE;
  }
}

static Runner *
runner_new (MmModel *m, MmComponent comp, GError **err)
{
  MmContextParams p = mm_context_default_params ();
  if (g_strcmp0 (g_getenv ("MM_BENCH_PRECISION"), "bf16") == 0)
    p.precision = MM_PRECISION_BF16;
  Runner *r = g_new0 (Runner, 1);
  r->comp = comp;
  switch (comp) {
    case MM_COMPONENT_TEXT:
      r->ctx = mm_text_encoder_new (m, &p, err);
      break;
    case MM_COMPONENT_IMAGE:
      r->ctx = mm_image_encoder_new (m, &p, err);
      mm_model_get_image_size (m, &r->w, &r->h);
      r->pixels = g_malloc ((gsize)r->w * r->h * 3);
      for (gsize i = 0; i < (gsize)r->w * r->h * 3; i++)
        r->pixels[i] = (guint8)g_random_int_range (0, 256);
      break;
    case MM_COMPONENT_AUDIO:
      r->ctx = mm_audio_encoder_new (m, &p, err);
      r->n_samples = mm_model_get_audio_window (m);
      r->samples = random_floats (r->n_samples, 0.3f);
      break;
    case MM_COMPONENT_FUSION:
      r->ctx = mm_fusion_new (m, &p, err);
      r->n_inputs = mm_model_get_fusion_n_inputs (m);
      r->inputs = g_new0 (const float *, r->n_inputs);
      for (guint i = 0; i < r->n_inputs; i++)
        r->inputs[i] = random_floats (mm_model_get_fusion_input_dim (m, i), 1.0f);
      break;
    case MM_COMPONENT_HEAD:
      r->ctx = mm_head_new (m, &p, err);
      r->fused = random_floats (mm_model_get_dim (m, MM_COMPONENT_FUSION), 1.0f);
      break;
    default:
      break;
  }
  if (!r->ctx) {
    g_free (r);
    return NULL;
  }
  return r;
}

static void
runner_free (Runner *r)
{
  switch (r->comp) {
    case MM_COMPONENT_TEXT:
      mm_text_encoder_free (r->ctx);
      break;
    case MM_COMPONENT_IMAGE:
      mm_image_encoder_free (r->ctx);
      break;
    case MM_COMPONENT_AUDIO:
      mm_audio_encoder_free (r->ctx);
      break;
    case MM_COMPONENT_FUSION:
      mm_fusion_free (r->ctx);
      break;
    case MM_COMPONENT_HEAD:
      mm_head_free (r->ctx);
      break;
    default:
      break;
  }
  g_free (r->pixels);
  g_free (r->samples);
  for (guint i = 0; i < r->n_inputs; i++)
    g_free ((gpointer)r->inputs[i]);
  g_free (r->inputs);
  g_free (r->fused);
  g_free (r);
}

static MmModel *
open_or_die (const char *path)
{
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  if (!m) {
    fprintf (stderr, "mm-bench: %s\n", err->message);
    exit (1);
  }
  return m;
}

static int
component_from_name (const char *name)
{
  for (int c = 0; c < MM_N_COMPONENTS; c++)
    if (g_strcmp0 (mm_component_name (c), name) == 0)
      return c;
  return -1;
}

/* ---- sgemm ------------------------------------------------------------- */

typedef struct
{
  float *a, *b, *c;
  int m, n, k;
} Gemm;

static gboolean
run_sgemm (gpointer ctx, gpointer arg)
{
  Gemm *g = arg;
  mm_sgemm (FALSE, FALSE, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c, g->n);
  return TRUE;
}

/* GFLOP/s of C (m, n) = A (m, k) B (k, n) through libmm's BLAS entry */
static double
sgemm_gflops (int m, int n, int k, int repeats)
{
  Gemm g = { NULL, NULL, NULL, m, n, k };
  g.a = random_floats ((gsize)m * k, 1.0f);
  g.b = random_floats ((gsize)k * n, 1.0f);
  g.c = g_new (float, (gsize)m *n);
  double ms = median_ms (run_sgemm, NULL, &g, repeats);
  g_free (g.a);
  g_free (g.b);
  g_free (g.c);
  return 2.0 * m * n * k / (ms * 1e6);
}

/* The core's fp32 multiply-add limit, measured: 24 independent chains of
 * 16-float FMAs on registers only (no memory traffic), in the widest vector
 * ISA the CPU has.  A GEMM kernel can approach this, never pass it. */
typedef float BenchV16 __attribute__ ((vector_size (64)));

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)          \
    && !defined(MM_NO_CLONES)
__attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static float
fma_chains (long iters, float seed)
{
  BenchV16 acc[24], m, a;
  for (int i = 0; i < 24; i++)
    acc[i] = (BenchV16){ 0 } + seed * (float)i;
  m = (BenchV16){ 0 } + 0.999999f;
  a = (BenchV16){ 0 } + 1e-7f;
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; i++)
      acc[i] = acc[i] * m + a;
  }
  float sum = 0.0f;
  for (int i = 0; i < 24; i++)
    for (int j = 0; j < 16; j++)
      sum += acc[i][j];
  return sum;
}

static gboolean
run_fma (gpointer ctx, gpointer arg)
{
  volatile float sink = fma_chains (100000, 0.5f);
  (void)sink;
  return TRUE;
}

static double
fma_peak_gflops (int repeats)
{
  double ms = median_ms (run_fma, NULL, NULL, repeats);
  return 100000.0 * 24 * 16 * 2 / (ms * 1e6);
}

/* ---- mode: model ------------------------------------------------------- */

static int
mode_model (const char *path, int repeats)
{
  GError *err = NULL;
  MmModel *m = open_or_die (path);
  printf ("{\"model\": \"%s\", \"core\": \"%s\", \"threads\": \"%s\", \"components\": {",
      mm_model_get_name (m), mm_blas_core_name (),
      g_getenv ("MM_THREADS") ? g_getenv ("MM_THREADS") : "1");
  const char *sep = "", *only = g_getenv ("MM_BENCH_ONLY");
  for (int c = 0; c < MM_N_COMPONENTS; c++) {
    if (!mm_model_has_component (m, c))
      continue;
    if (c == MM_COMPONENT_HEAD && !mm_model_has_component (m, MM_COMPONENT_FUSION))
      continue;
    if (only && g_strcmp0 (only, mm_component_name (c)) != 0)
      continue; /* MM_BENCH_ONLY=image: one component, e.g. under perf */
    Runner *r = runner_new (m, c, &err);
    if (!r || !runner_run (r, NULL)) {
      fprintf (stderr, "mm-bench: %s\n", err ? err->message : "run failed");
      return 1;
    }
    double ms = median_ms (runner_run, r, NULL, repeats);
    printf ("%s\"%s\": {\"ms\": %.5f", sep, mm_component_name (c), ms);
    if (c == MM_COMPONENT_TEXT) {
      guint n = 0;
      mm_text_encoder_encode (r->ctx, text_input (), -1, r->out, &n, NULL);
      printf (", \"tokens\": %u", n);
    }
    printf ("}");
    sep = ", ";
    runner_free (r);
  }
  printf ("}, \"sgemm\": {\"n\": 1024, \"gflops\": %.2f}, \"fma_peak_gflops\": %.2f}\n",
      sgemm_gflops (1024, 1024, 1024, 7), fma_peak_gflops (7));
  mm_model_unref (m);
  return 0;
}

/* ---- mode: layers ------------------------------------------------------ */

typedef struct
{
  const char *name;
  int conv;                              /* 1: conv2d, 0: linear */
  int c_in, h, w, c_out, k, stride, pad; /* conv */
  int n, d_in, d_out;                    /* linear: y (n, d_out) = x (n, d_in) W^T */
  int cl; /* the image encoder runs it channel-last (conv-cl.c): resnet18's
           * stem and layer4, whose blocks take no Winograd conv */
} Layer;

typedef struct
{
  const Layer *l;
  float *x, *w, *b, *y, *scratch;
  float *wino; /* Winograd weights where the image encoder uses them */
  int wino_m;
  MmConvCl conv_cl;
  MmLinearPacked lp; /* BERT linears: packed at load (linear-packed.h) */
  float *x_cl;       /* channel-last input with its zero border */
} LayerRun;

static gboolean
run_layer (gpointer ctx, gpointer arg)
{
  LayerRun *r = arg;
  const Layer *l = r->l;
  if (l->conv && r->x_cl) {
    int ho = mm_conv_out_size (l->h, l->k, l->stride, l->pad);
    int wo = mm_conv_out_size (l->w, l->k, l->stride, l->pad);
    mm_conv_cl_run (&r->conv_cl, r->y, (gsize)wo * l->c_out, r->x_cl,
        (gsize)(l->w + 2 * l->pad) * l->c_in, ho, wo, l->stride, l->stride, NULL, 0, FALSE);
  } else if (l->conv && r->wino)
    mm_winograd_conv3x3 (r->y, r->x, r->wino, r->wino_m, l->c_in, l->h, l->w, l->c_out, NULL, NULL,
        FALSE, r->scratch);
  else if (l->conv)
    mm_conv2d (r->y, r->x, r->w, NULL, l->c_in, l->h, l->w, l->c_out, l->k, l->k, l->stride, l->pad,
        1, r->scratch);
  else if (r->lp.packed) /* as the BERT encoder runs them */
    mm_linear_packed_run (&r->lp, r->y, r->x, l->n, NULL, NULL);
  else
    mm_linear (r->y, r->x, r->w, r->b, l->n, l->d_in, l->d_out);
  return TRUE;
}

static const Layer layers[] = {
  { "resnet18 conv1 7x7/2 3->64 @224", 1, 3, 224, 224, 64, 7, 2, 3, .cl = 1 },
  { "resnet18 layer1 3x3 64->64 @56", 1, 64, 56, 56, 64, 3, 1, 1 },
  { "resnet18 layer2 3x3/2 64->128 @56", 1, 64, 56, 56, 128, 3, 2, 1 },
  { "resnet18 layer2 3x3 128->128 @28", 1, 128, 28, 28, 128, 3, 1, 1 },
  { "resnet18 layer3 3x3 256->256 @14", 1, 256, 14, 14, 256, 3, 1, 1 },
  { "resnet18 layer4 3x3 512->512 @7", 1, 512, 7, 7, 512, 3, 1, 1, .cl = 1 },
  { "resnet18 layer2 down 1x1/2 64->128 @56", 1, 64, 56, 56, 128, 1, 2, 0 },
  { "bert4 qkv 64x256->768 (q, k, v as one)", 0, 0, 0, 0, 0, 0, 0, 0, 64, 256, 768 },
  { "bert4 ffn-in 64x256->1024", 0, 0, 0, 0, 0, 0, 0, 0, 64, 256, 1024 },
  { "bert4 ffn-out 64x1024->256", 0, 0, 0, 0, 0, 0, 0, 0, 64, 1024, 256 },
  { "bert-base ffn-in 126x768->3072", 0, 0, 0, 0, 0, 0, 0, 0, 126, 768, 3072 },
  { "bert-base ffn-out 126x3072->768", 0, 0, 0, 0, 0, 0, 0, 0, 126, 3072, 768 },
};

static int
mode_layers (int repeats)
{
  printf ("{\"core\": \"%s\", \"sgemm\": {\"n\": 1024, \"gflops\": %.2f}, \"layers\": [",
      mm_blas_core_name (), sgemm_gflops (1024, 1024, 1024, 7));
  for (guint i = 0; i < G_N_ELEMENTS (layers); i++) {
    const Layer *l = &layers[i];
    LayerRun r = { l };
    int m, n, k; /* the GEMM the layer is */
    gsize nx, ny, nw, ns = 0;
    if (l->conv) {
      int ho = mm_conv_out_size (l->h, l->k, l->stride, l->pad);
      int wo = mm_conv_out_size (l->w, l->k, l->stride, l->pad);
      m = l->c_out;
      n = ho * wo;
      k = l->c_in * l->k * l->k;
      nx = (gsize)l->c_in * l->h * l->w;
      ny = (gsize)m * n;
      nw = (gsize)m * k;
      ns = mm_conv2d_scratch_size (l->c_in, l->h, l->w, l->k, l->k, l->stride, l->pad, 1);
    } else {
      m = l->n;
      n = l->d_out;
      k = l->d_in;
      nx = (gsize)m * k;
      ny = (gsize)m * n;
      nw = (gsize)n * k;
    }
    r.x = random_floats (nx, 1.0f);
    r.w = random_floats (nw, 0.1f);
    r.b = random_floats (MAX (n, m), 0.1f);
    r.y = g_new (float, ny);
    r.scratch = g_new (float, MAX (ns, 1));
    double unpacked_ms = 0.0; /* the plain op: im2col + sgemm / OpenBLAS linear */
    if (l->cl) {
      unpacked_ms = median_ms (run_layer, NULL, &r, repeats);
      if (!mm_conv_cl_init (
              &r.conv_cl, r.w, NULL, NULL, l->c_in, l->c_out, l->k, l->k, 1, l->name, NULL))
        g_error ("mm-bench: conv-cl init failed for %s", l->name);
      int hp = l->h + 2 * l->pad, wp = l->w + 2 * l->pad;
      r.x_cl = g_new0 (float, (gsize)hp *wp * l->c_in);
      for (int y = 0; y < l->h; y++)
        for (int x = 0; x < l->w; x++)
          for (int c = 0; c < l->c_in; c++)
            r.x_cl[((gsize)(y + l->pad) * wp + x + l->pad) * l->c_in + c] =
                r.x[((gsize)c * l->h + y) * l->w + x];
    } else if (l->conv && l->k == 3 && l->stride == 1 && l->pad == 1
        && (r.wino_m = mm_winograd_pick (l->c_in, l->c_out, l->h, l->w)) > 0) {
      unpacked_ms = median_ms (run_layer, NULL, &r, repeats);
      r.wino = g_new (float, mm_winograd_weights_size (r.wino_m, l->c_in, l->c_out));
      mm_winograd_weights (r.wino, r.wino_m, r.w, NULL, l->c_in, l->c_out);
      gsize ws = mm_winograd_scratch_size (r.wino_m, l->c_in, l->c_out, l->h, l->w);
      if (ws > ns) {
        g_free (r.scratch);
        r.scratch = g_new (float, ws);
      }
    }
    if (!l->conv) {
      unpacked_ms = median_ms (run_layer, NULL, &r, repeats); /* mm_linear: OpenBLAS */
      if (!mm_linear_packed_init (&r.lp, r.w, r.b, l->d_in, l->d_out, l->name, NULL))
        g_error ("mm-bench: packing failed for %s", l->name);
    }
    double ms = median_ms (run_layer, NULL, &r, repeats);
    double flops = 2.0 * m * n * k;
    /* the references right after the layer: the machine's load changes */
    double same = sgemm_gflops (m, n, k, repeats);
    double big = sgemm_gflops (1024, 1024, 1024, 3);
    printf ("%s{\"name\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"ms\": %.4f, "
            "\"gflops\": %.2f, \"sgemm_gflops\": %.2f, \"sgemm1024_gflops\": %.2f, "
            "\"unpacked_ms\": %.4f, \"how\": \"%s\"}",
        i ? ", " : "", l->name, m, n, k, ms, flops / (ms * 1e6), same, big, unpacked_ms,
        r.x_cl       ? "channel-last, packed weights"
            : r.wino ? (r.wino_m == 4 ? "winograd F(4x4,3x3)" : "winograd F(2x2,3x3)")
                     : (l->conv ? "im2col + sgemm" : "packed linear (linear-packed.h)"));
    g_free (r.x);
    g_free (r.w);
    g_free (r.b);
    g_free (r.y);
    g_free (r.scratch);
    g_free (r.wino);
    g_free (r.x_cl);
    mm_conv_cl_clear (&r.conv_cl);
    mm_linear_packed_clear (&r.lp);
  }
  printf ("]}\n");
  return 0;
}

/* ---- mode: streams ----------------------------------------------------- */

typedef struct
{
  Runner *r;
  gint64 end;
  GArray *ms; /* double, per call */
} Stream;

static gpointer
stream_thread (gpointer data)
{
  Stream *s = data;
  runner_run (s->r, NULL); /* warm-up */
  while (g_get_monotonic_time () < s->end) {
    gint64 t0 = g_get_monotonic_time ();
    runner_run (s->r, NULL);
    double ms = (g_get_monotonic_time () - t0) / 1000.0;
    g_array_append_val (s->ms, ms);
  }
  return NULL;
}

static int
mode_streams (const char *path, double seconds, int n, char **comps)
{
  MmModel *m = open_or_die (path);
  GError *err = NULL;
  Stream *s = g_new0 (Stream, n);
  for (int i = 0; i < n; i++) {
    int c = component_from_name (comps[i]);
    if (c < 0 || !(s[i].r = runner_new (m, c, &err))) {
      fprintf (stderr, "mm-bench: %s: %s\n", comps[i], err ? err->message : "unknown");
      return 1;
    }
    s[i].ms = g_array_new (FALSE, FALSE, sizeof (double));
  }
  GThread **th = g_new (GThread *, n);
  gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < n; i++) {
    s[i].end = t0 + (gint64)(seconds * 1e6);
    th[i] = g_thread_new ("stream", stream_thread, &s[i]);
  }
  for (int i = 0; i < n; i++)
    g_thread_join (th[i]);
  double wall = (g_get_monotonic_time () - t0) / 1e6;
  printf ("{\"core\": \"%s\", \"seconds\": %.3f, \"streams\": [", mm_blas_core_name (), wall);
  for (int i = 0; i < n; i++) {
    GArray *a = s[i].ms;
    qsort (a->data, a->len, sizeof (double), cmp_double);
    double med = a->len ? g_array_index (a, double, a->len / 2) : 0.0;
    double p90 = a->len ? g_array_index (a, double, a->len * 9 / 10) : 0.0;
    printf ("%s{\"component\": \"%s\", \"calls\": %u, \"per_s\": %.2f, \"median_ms\": %.4f, "
            "\"p90_ms\": %.4f}",
        i ? ", " : "", comps[i], a->len, a->len / wall, med, p90);
    g_array_free (a, TRUE);
    runner_free (s[i].r);
  }
  printf ("]}\n");
  g_free (th);
  g_free (s);
  mm_model_unref (m);
  return 0;
}

/* ---- mode: memory ------------------------------------------------------ */

static long
status_kb (const char *field)
{
  char *text = NULL;
  long v = -1;
  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return -1;
  char *p = strstr (text, field);
  if (p)
    v = strtol (p + strlen (field) + 1, NULL, 10);
  g_free (text);
  return v;
}

/* lines of /proc/self/maps that map @path */
static int
count_mappings (const char *path)
{
  char *text = NULL, *real = realpath (path, NULL);
  int n = 0;
  if (real && g_file_get_contents ("/proc/self/maps", &text, NULL, NULL)) {
    char **lines = g_strsplit (text, "\n", -1);
    for (char **l = lines; *l; l++)
      if (g_str_has_suffix (*l, real))
        n++;
    g_strfreev (lines);
  }
  free (real);
  g_free (text);
  return n;
}

static int
mode_memory (const char *path, int n, int calls)
{
  MmModel *first = open_or_die (path);
  GError *err = NULL;
  long rss0 = status_kb ("VmRSS:");
  GPtrArray *models = g_ptr_array_new ();
  GPtrArray *runners = g_ptr_array_new ();
  for (int i = 0; i < n; i++) {
    MmModel *m = open_or_die (path);
    g_ptr_array_add (models, m);
    for (int c = MM_COMPONENT_TEXT; c <= MM_COMPONENT_AUDIO; c++) {
      if (!mm_model_has_component (m, c))
        continue;
      Runner *r = runner_new (m, c, &err);
      if (!r) {
        fprintf (stderr, "mm-bench: %s\n", err->message);
        return 1;
      }
      runner_run (r, NULL);
      g_ptr_array_add (runners, r);
    }
    if (i == 0)
      rss0 = status_kb ("VmRSS:");
  }
  long rss_n = status_kb ("VmRSS:");
  printf ("{\"opens\": %d, \"contexts\": %u, \"same_model\": %s, \"file_mappings\": %d, "
          "\"rss_kb_one\": %ld, \"rss_kb_all\": %ld, \"rss_kb_loop\": [",
      n + 1, runners->len, models->len && g_ptr_array_index (models, 0) == first ? "true" : "false",
      count_mappings (path), rss0, rss_n);
  /* steady state: every context encodes @calls times; RSS sampled 10 times */
  for (int step = 0; step < 10; step++) {
    for (int i = 0; i < calls / 10; i++)
      for (guint j = 0; j < runners->len; j++)
        runner_run (g_ptr_array_index (runners, j), NULL);
    printf ("%s%ld", step ? ", " : "", status_kb ("VmRSS:"));
  }
  printf ("], \"hwm_kb\": %ld}\n", status_kb ("VmHWM:"));
  for (guint j = 0; j < runners->len; j++)
    runner_free (g_ptr_array_index (runners, j));
  for (guint j = 0; j < models->len; j++)
    mm_model_unref (g_ptr_array_index (models, j));
  g_ptr_array_free (runners, TRUE);
  g_ptr_array_free (models, TRUE);
  mm_model_unref (first);
  return 0;
}

static int
usage (void)
{
  fprintf (stderr,
      "usage: mm-bench [model] MODEL [REPEATS]\n"
      "       mm-bench layers [REPEATS]\n"
      "       mm-bench streams MODEL SECONDS COMPONENT...\n"
      "       mm-bench memory MODEL N CALLS\n");
  return 2;
}

int
main (int argc, char **argv)
{
  g_random_set_seed (1);
  if (argc < 2)
    return usage ();
  const char *mode = argv[1];
  if (g_str_equal (mode, "layers"))
    return mode_layers (argc > 2 ? MAX (atoi (argv[2]), 1) : 20);
  if (g_str_equal (mode, "streams")) {
    if (argc < 5)
      return usage ();
    return mode_streams (argv[2], g_ascii_strtod (argv[3], NULL), argc - 4, argv + 4);
  }
  if (g_str_equal (mode, "memory")) {
    if (argc < 5)
      return usage ();
    return mode_memory (argv[2], MAX (atoi (argv[3]), 1), MAX (atoi (argv[4]), 10));
  }
  if (g_str_equal (mode, "model")) {
    argv++;
    argc--;
  }
  if (argc < 2)
    return usage ();
  return mode_model (argv[1], argc > 2 ? MAX (atoi (argv[2]), 1) : 30);
}
