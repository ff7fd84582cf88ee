/* bf16-agreement: the image encoder in bf16 against fp32 on a picture list
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   bf16-agreement MODEL LIST [MIN_AGREEMENT]
 *
 * LIST has one picture path a line (read with gdk-pixbuf, alpha composited
 * on white as tools/mm-classify.c does).  Each picture is encoded by an
 * fp32 and a bf16 image encoder (MmContextParams.precision) and classified
 * from the image alone (fusion with the other modalities missing, then the
 * head).  Prints the top-1 agreement and the largest deviation of the
 * embeddings (absolute, and relative to the largest |z| of that picture);
 * exits 1 when the agreement is below MIN_AGREEMENT (default 0.995), 77
 * (skipped) when the CPU has no bf16 path (mm_precision_supported).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gdk-pixbuf/gdk-pixbuf.h>

#include "mm.h"

typedef struct
{
  MmImageEncoder *enc;
  MmFusion *fusion;
  MmHead *head;
} Side;

static guint8 *
read_rgb (const char *file, guint *width, guint *height)
{
  GError *err = NULL;
  GdkPixbuf *pb = gdk_pixbuf_new_from_file (file, &err);
  if (!pb) {
    fprintf (stderr, "%s: %s\n", file, err->message);
    g_error_free (err);
    return NULL;
  }
  guint w = gdk_pixbuf_get_width (pb), h = gdk_pixbuf_get_height (pb);
  guint nc = gdk_pixbuf_get_n_channels (pb);
  gsize stride = gdk_pixbuf_get_rowstride (pb);
  const guint8 *src = gdk_pixbuf_read_pixels (pb);
  guint8 *rgb = NULL;
  if (gdk_pixbuf_get_bits_per_sample (pb) == 8 && (nc == 3 || nc == 4)) {
    rgb = g_malloc ((gsize)w * h * 3);
    for (guint y = 0; y < h; y++) {
      const guint8 *s = src + y * stride;
      guint8 *d = rgb + (gsize)y * w * 3;
      for (guint x = 0; x < w; x++, s += nc, d += 3) {
        guint a = nc == 4 ? s[3] : 255;
        for (int k = 0; k < 3; k++)
          d[k] = (guint8)((s[k] * a + 255 * (255 - a) + 127) / 255);
      }
    }
  }
  g_object_unref (pb);
  *width = w;
  *height = h;
  return rgb;
}

static gboolean
side_new (Side *s, MmModel *model, MmPrecision precision)
{
  GError *err = NULL;
  MmContextParams p = mm_context_default_params ();
  p.precision = precision;
  s->enc = mm_image_encoder_new (model, &p, &err);
  if (s->enc)
    s->fusion = mm_fusion_new (model, &p, &err);
  if (s->fusion)
    s->head = mm_head_new (model, &p, &err);
  if (!s->head) {
    fprintf (stderr, "context: %s\n", err->message);
    g_error_free (err);
    return FALSE;
  }
  return TRUE;
}

/* z = the image embedding; returns the top-1 class from the image alone */
static int
classify (Side *s, MmModel *model, const guint8 *rgb, guint w, guint h, float *z, float *fused,
    float *scores)
{
  GError *err = NULL;
  guint n_in = mm_model_get_fusion_n_inputs (model), n_out = mm_model_get_n_outputs (model);
  const float *inputs[16] = { NULL };
  for (guint i = 0; i < n_in && i < 16; i++)
    if (g_strcmp0 (mm_model_get_fusion_input_modality (model, i), "image") == 0)
      inputs[i] = z;
  if (!mm_image_encoder_encode (s->enc, MM_PIXEL_RGB, rgb, w, h, (gsize)w * 3, z, &err)
      || !mm_fusion_run (s->fusion, inputs, fused, &err)
      || !mm_head_run (s->head, fused, scores, &err)) {
    fprintf (stderr, "run: %s\n", err->message);
    g_error_free (err);
    return -1;
  }
  int best = 0;
  for (guint k = 1; k < n_out; k++)
    if (scores[k] > scores[best])
      best = (int)k;
  return best;
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: bf16-agreement MODEL LIST [MIN_AGREEMENT]\n");
    return 2;
  }
  double min_agree = argc > 3 ? g_ascii_strtod (argv[3], NULL) : 0.995;
  if (!mm_precision_supported (MM_PRECISION_BF16)) {
    printf ("skipped: this CPU has no AVX512_BF16 (or MM_DISABLE_BF16 is set)\n");
    return 77;
  }
  GError *err = NULL;
  MmModel *model = mm_model_open (argv[1], &err);
  if (!model) {
    fprintf (stderr, "%s\n", err->message);
    return 2;
  }
  Side fp = { 0 }, bf = { 0 };
  if (!side_new (&fp, model, MM_PRECISION_FP32) || !side_new (&bf, model, MM_PRECISION_BF16))
    return 2;
  if (mm_image_encoder_get_precision (bf.enc) != MM_PRECISION_BF16) {
    fprintf (stderr, "the bf16 context runs fp32 (a graph image encoder?)\n");
    return 1;
  }
  gchar *list = NULL;
  if (!g_file_get_contents (argv[2], &list, NULL, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 2;
  }
  guint dim = mm_model_get_dim (model, MM_COMPONENT_IMAGE);
  guint fdim = mm_model_get_dim (model, MM_COMPONENT_FUSION);
  guint n_out = mm_model_get_n_outputs (model);
  float *z32 = g_new (float, dim), *z16 = g_new (float, dim);
  float *fused = g_new (float, fdim), *scores = g_new (float, n_out);
  gchar **lines = g_strsplit (list, "\n", -1);
  guint n = 0, agree = 0, unreadable = 0;
  double max_abs = 0.0, max_rel = 0.0, max_z = 0.0;
  for (gchar **l = lines; *l; l++) {
    if (!**l)
      continue;
    guint w, h;
    guint8 *rgb = read_rgb (*l, &w, &h);
    if (!rgb) {
      unreadable++;
      continue;
    }
    int c32 = classify (&fp, model, rgb, w, h, z32, fused, scores);
    int c16 = classify (&bf, model, rgb, w, h, z16, fused, scores);
    g_free (rgb);
    if (c32 < 0 || c16 < 0)
      return 2;
    double zmax = 0.0, dmax = 0.0;
    for (guint k = 0; k < dim; k++) {
      zmax = MAX (zmax, fabs (z32[k]));
      dmax = MAX (dmax, fabs ((double)z32[k] - z16[k]));
    }
    max_abs = MAX (max_abs, dmax);
    max_rel = MAX (max_rel, zmax > 0.0 ? dmax / zmax : 0.0);
    max_z = MAX (max_z, zmax);
    n++;
    agree += c32 == c16;
    if (c32 != c16)
      printf ("differs: %s (fp32 %s, bf16 %s)\n", *l, mm_model_get_label (model, c32),
          mm_model_get_label (model, c16));
  }
  double rate = n ? (double)agree / n : 0.0;
  printf ("pictures: %u (unreadable: %u)\n", n, unreadable);
  printf (
      "top-1 agreement bf16 vs fp32: %u/%u = %.4f (at least %.4f)\n", agree, n, rate, min_agree);
  printf ("embedding max |z_bf16 - z_fp32|: %.3g (largest |z| %.3g; per picture, relative to "
          "its largest |z|: %.3g)\n",
      max_abs, max_z, max_rel);
  g_strfreev (lines);
  g_free (list);
  g_free (z32);
  g_free (z16);
  g_free (fused);
  g_free (scores);
  Side *sides[2] = { &fp, &bf };
  for (int i = 0; i < 2; i++) {
    mm_head_free (sides[i]->head);
    mm_fusion_free (sides[i]->fusion);
    mm_image_encoder_free (sides[i]->enc);
  }
  mm_model_unref (model);
  return n > 0 && rate >= min_agree ? 0 : 1;
}
