/* libmm image/audio encoders, fusion and head: parity with PyTorch and
 * input/weight validation.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * References come from tests/lib/ref_encoders.py (PyTorch, float64, random
 * seeded weights), stored in $MM_FIXTURES/encoders/NAME-io.safetensors as
 * "io.*" tensors next to the model NAME.safetensors.  Every parity case runs
 * twice: with the BLAS path and with the plain C reference ops.
 *
 * Optional: MM_RESNET18=/tmp/mm-resnet18.safetensors (written by
 * `ref_encoders.py --resnet18`) checks torchvision's resnet18 at 224x224.
 */
#include <math.h>
#include <string.h>

#include "bundled-model.h"
#include "mm.h"
#include "mm-private.h"
#include "ops.h"
#include "preprocess.h"
#include "winograd.h"

#define TOLERANCE 1e-4

#include "alloc-count.h"

static char *
fixture (const char *name)
{
  const char *dir = g_getenv ("MM_FIXTURES");
  return g_build_filename (dir ? dir : "tests/fixtures", name, NULL);
}

static MmModel *
open_model (const char *name)
{
  GError *err = NULL;
  char *path = fixture (name);
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_nonnull (m);
  g_free (path);
  return m;
}

static MmSafetensors *
open_io (const char *name)
{
  GError *err = NULL;
  char *path = fixture (name);
  MmSafetensors *st = mm_safetensors_open (path, &err);
  g_assert_no_error (err);
  g_free (path);
  return st;
}

static const MmTensor *
io_tensor (const MmSafetensors *st, const char *fmt, int i)
{
  char name[64];
  g_snprintf (name, sizeof name, fmt, i);
  const MmTensor *t = mm_safetensors_find (st, name);
  if (!t)
    g_error ("fixture tensor %s missing", name);
  return t;
}

/* max |got - want| <= TOLERANCE * max (1, max |want|) */
static void
assert_close (const float *got, const float *want, gsize n, const char *what)
{
  double err = 0.0, scale = 1.0;
  for (gsize i = 0; i < n; i++) {
    g_assert_true (isfinite (got[i]));
    err = MAX (err, fabs ((double)got[i] - want[i]));
    scale = MAX (scale, fabs ((double)want[i]));
  }
  g_test_message ("%s: max abs error %.3g (output scale %.3g)", what, err, scale);
  if (err > TOLERANCE * scale)
    g_error ("%s: max abs error %.3g exceeds %.3g", what, err, TOLERANCE * scale);
}

static void
each_ops_path (void (*fn) (gboolean reference))
{
  fn (FALSE);
  mm_ops_set_reference (TRUE);
  fn (TRUE);
  mm_ops_set_reference (FALSE);
}

/* pixels tensor (h, w, 3) floats 0..255 -> packed RGB bytes */
static guint8 *
io_pixels (const MmTensor *t, guint *w, guint *h)
{
  g_assert_cmpuint (t->ndim, ==, 3);
  g_assert_cmpint (t->shape[2], ==, 3);
  *h = t->shape[0];
  *w = t->shape[1];
  guint8 *px = g_malloc (t->n_elements);
  for (gsize i = 0; i < t->n_elements; i++)
    px[i] = (guint8)t->data[i];
  return px;
}

/* ---- image ------------------------------------------------------------ */

static void
check_image_model (const char *model_name, const char *io_name, guint n_cases, gboolean reference)
{
  GError *err = NULL;
  MmModel *m = open_model (model_name);
  MmSafetensors *io = open_io (io_name);
  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  guint dim = mm_model_get_dim (m, MM_COMPONENT_IMAGE);
  float *z = g_new (float, dim);

  for (guint i = 0; i < n_cases; i++) {
    guint w, h;
    const MmTensor *want = io_tensor (io, "io.expected%d", i);
    guint8 *px = io_pixels (io_tensor (io, "io.pixels%d", i), &w, &h);
    g_assert_cmpuint (want->n_elements, ==, dim);
    g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, px, w, h, (gsize)w * 3, z, &err));
    g_assert_no_error (err);
    char *what = g_strdup_printf (
        "%s picture %u (%ux%u) %s", model_name, i, w, h, reference ? "reference ops" : "BLAS");
    assert_close (z, want->data, dim, what);
    g_free (what);
    g_free (px);
  }
  g_free (z);
  mm_image_encoder_free (enc);
  mm_safetensors_free (io);
  mm_model_unref (m);
}

static void
image_parity_run (gboolean reference)
{
  check_image_model (
      "encoders/resnet-small.safetensors", "encoders/resnet-small-io.safetensors", 3, reference);
  /* batch-norms folded into conv biases: same network, same references */
  check_image_model (
      "encoders/resnet-folded.safetensors", "encoders/resnet-small-io.safetensors", 3, reference);
  /* 3x3 stride-1 stem, no max-pool, three stages, no fc */
  check_image_model (
      "encoders/resnet-nostem.safetensors", "encoders/resnet-nostem-io.safetensors", 1, reference);
}

static void
test_image_parity (void)
{
  each_ops_path (image_parity_run);
}

/* The channel-last path (conv-cl.c) against the reference ops on the
 * bundled model: its 16..96 channels fill the 16- and 32-wide panels and
 * its 2x2 last stage a partial tile, which the small PyTorch fixtures
 * (4..16 channels) do not. */
static void
test_image_fast_vs_reference (void)
{
  MmModel *m = bundled_model_open_or_skip ();
  if (!m)
    return;
  GError *err = NULL;
  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  guint dim = mm_model_get_dim (m, MM_COMPONENT_IMAGE), nw, nh;
  g_assert_true (mm_model_get_image_size (m, &nw, &nh));
  float *fast = g_new (float, dim), *ref = g_new (float, dim);
  /* the network's size (no resize) and a resized odd size */
  const guint sizes[][2] = { { nw, nh }, { 2 * nw + 3, nh + 7 } };
  for (guint c = 0; c < G_N_ELEMENTS (sizes); c++) {
    guint w = sizes[c][0], h = sizes[c][1];
    guint8 *px = g_new (guint8, (gsize)w * h * 3);
    for (gsize i = 0; i < (gsize)w * h * 3; i++)
      px[i] = (guint8)((i * 37 + (i / (3 * w)) * 11 + (i * i) % 23) & 0xff);
    g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, px, w, h, (gsize)w * 3, fast, &err));
    g_assert_no_error (err);
    mm_ops_set_reference (TRUE);
    g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, px, w, h, (gsize)w * 3, ref, &err));
    mm_ops_set_reference (FALSE);
    g_assert_no_error (err);
    char *what = g_strdup_printf ("bundled image %ux%u: fast vs reference", w, h);
    assert_close (fast, ref, dim, what);
    g_free (what);
    g_free (px);
  }
  g_free (fast);
  g_free (ref);
  mm_image_encoder_free (enc);
  mm_model_unref (m);
}

/* A ResNet built here with random weights whose blocks take both layouts
 * of the fast path: widths 16/32/40/48 at 48x48 (3x3 stem, no max pool),
 * the 32- and 40-channel blocks at 24x24 and 12x12 on Winograd planes, the
 * others channel-last, so the activation changes layout twice. */
static void
add_tensor (JsonBuilder *hb, GByteArray *data, GRand *r, const char *name, const int *shape,
    int ndim, double lo, double hi)
{
  gsize n = 1, off = data->len;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  for (gsize i = 0; i < n; i++) {
    float v = (float)g_rand_double_range (r, lo, hi);
    g_byte_array_append (data, (const guint8 *)&v, sizeof v);
  }
  json_builder_set_member_name (hb, name);
  json_builder_begin_object (hb);
  json_builder_set_member_name (hb, "dtype");
  json_builder_add_string_value (hb, "F32");
  json_builder_set_member_name (hb, "shape");
  json_builder_begin_array (hb);
  for (int i = 0; i < ndim; i++)
    json_builder_add_int_value (hb, shape[i]);
  json_builder_end_array (hb);
  json_builder_set_member_name (hb, "data_offsets");
  json_builder_begin_array (hb);
  json_builder_add_int_value (hb, (gint64)off);
  json_builder_add_int_value (hb, (gint64)data->len);
  json_builder_end_array (hb);
  json_builder_end_object (hb);
}

static void
add_convbn (JsonBuilder *hb, GByteArray *data, GRand *r, const char *conv, const char *bn, int c_in,
    int c_out, int k)
{
  char name[128];
  int shape[4] = { c_out, c_in, k, k }, ch[1] = { c_out };
  double a = 1.5 / sqrt ((double)c_in * k * k);
  g_snprintf (name, sizeof name, "%s.weight", conv);
  add_tensor (hb, data, r, name, shape, 4, -a, a);
  static const char *const parts[4] = { "weight", "bias", "running_mean", "running_var" };
  static const double range[4][2] = { { 0.5, 1.5 }, { -0.2, 0.2 }, { -0.2, 0.2 }, { 0.5, 1.5 } };
  for (int i = 0; i < 4; i++) {
    g_snprintf (name, sizeof name, "%s.%s", bn, parts[i]);
    add_tensor (hb, data, r, name, ch, 1, range[i][0], range[i][1]);
  }
}

static MmModel *
mixed_layout_model (void)
{
  static const int widths[] = { 16, 32, 40, 48 }, blocks[] = { 1, 2, 1, 1 };
  GRand *r = g_rand_new_with_seed (7);
  GByteArray *data = g_byte_array_new ();
  JsonBuilder *hb = json_builder_new ();
  char conv[96], bn[96];

  json_builder_begin_object (hb);
  json_builder_set_member_name (hb, "__metadata__");
  json_builder_begin_object (hb);
  json_builder_set_member_name (hb, "mm");
  json_builder_add_string_value (hb,
      "{\"version\": 1, \"name\": \"mixed\", \"components\": {\"image\": {\"type\": "
      "\"resnet\", \"width\": 48, \"height\": 48, \"mean\": [0.5, 0.4, 0.3], \"std\": "
      "[0.2, 0.25, 0.3], \"stem_kernel\": 3, \"stem_stride\": 1, \"stem_maxpool\": false, "
      "\"widths\": [16, 32, 40, 48], \"blocks\": [1, 2, 1, 1], \"dim\": 8}}}");
  json_builder_end_object (hb);
  add_convbn (hb, data, r, "image.conv1", "image.bn1", 3, 16, 3);
  int c = 16;
  for (int s = 0; s < 4; s++)
    for (int b = 0; b < blocks[s]; b++) {
      int out = widths[s], stride = (s > 0 && b == 0) ? 2 : 1;
      g_snprintf (conv, sizeof conv, "image.layer%d.%d.conv1", s + 1, b);
      g_snprintf (bn, sizeof bn, "image.layer%d.%d.bn1", s + 1, b);
      add_convbn (hb, data, r, conv, bn, c, out, 3);
      g_snprintf (conv, sizeof conv, "image.layer%d.%d.conv2", s + 1, b);
      g_snprintf (bn, sizeof bn, "image.layer%d.%d.bn2", s + 1, b);
      add_convbn (hb, data, r, conv, bn, out, out, 3);
      if (stride != 1 || c != out) {
        g_snprintf (conv, sizeof conv, "image.layer%d.%d.downsample.0", s + 1, b);
        g_snprintf (bn, sizeof bn, "image.layer%d.%d.downsample.1", s + 1, b);
        add_convbn (hb, data, r, conv, bn, c, out, 1);
      }
      c = out;
    }
  int fc_shape[2] = { 8, 48 }, fc_b[1] = { 8 };
  add_tensor (hb, data, r, "image.fc.weight", fc_shape, 2, -0.2, 0.2);
  add_tensor (hb, data, r, "image.fc.bias", fc_b, 1, -0.2, 0.2);
  json_builder_end_object (hb);

  JsonNode *root = json_builder_get_root (hb); /* a new reference */
  char *header = json_to_string (root, FALSE);
  json_node_unref (root);
  gsize hlen = strlen (header);
  GByteArray *file = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint8 byte = (guint8)((guint64)hlen >> (8 * i));
    g_byte_array_append (file, &byte, 1);
  }
  g_byte_array_append (file, (const guint8 *)header, hlen);
  g_byte_array_append (file, data->data, data->len);
  GError *err = NULL;
  MmSafetensors *st = mm_safetensors_open_bytes ("mixed", file->data, file->len, &err);
  g_assert_no_error (err);
  MmModel *m = mm_model_new_from_safetensors (st, "mixed", &err);
  g_assert_no_error (err);
  g_free (header);
  g_byte_array_unref (file);
  g_byte_array_unref (data);
  g_object_unref (hb);
  g_rand_free (r);
  return m;
}

static void
test_image_mixed_layouts (void)
{
  /* the layout each block takes (see prepare_convs) */
  g_assert_cmpint (mm_winograd_pick (16, 16, 48, 48), ==, 0);
  g_assert_cmpint (mm_winograd_pick (32, 32, 24, 24), >, 0);
  g_assert_cmpint (mm_winograd_pick (40, 40, 12, 12), >, 0);
  g_assert_cmpint (mm_winograd_pick (48, 48, 6, 6), ==, 0);

  GError *err = NULL;
  MmModel *m = mixed_layout_model ();
  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  const guint sizes[][2] = { { 48, 48 }, { 53, 41 } };
  for (guint c = 0; c < G_N_ELEMENTS (sizes); c++) {
    guint w = sizes[c][0], h = sizes[c][1];
    float fast[8], ref[8];
    guint8 *px = g_new (guint8, (gsize)w * h * 3);
    for (gsize i = 0; i < (gsize)w * h * 3; i++)
      px[i] = (guint8)((i * 29 + (i / (3 * w)) * 7 + (i * i) % 31) & 0xff);
    g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, px, w, h, (gsize)w * 3, fast, &err));
    mm_ops_set_reference (TRUE);
    g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, px, w, h, (gsize)w * 3, ref, &err));
    mm_ops_set_reference (FALSE);
    g_assert_no_error (err);
    char *what = g_strdup_printf ("mixed layouts %ux%u: fast vs reference", w, h);
    assert_close (fast, ref, 8, what);
    g_free (what);
    g_free (px);
  }
  mm_image_encoder_free (enc);
  mm_model_unref (m);
}

static void
test_image_resnet18 (void)
{
  const char *path = g_getenv ("MM_RESNET18");
  if (!path || !g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_test_skip ("set MM_RESNET18 to the file `ref_encoders.py --resnet18` writes");
    return;
  }
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  guint w, h;
  g_assert_true (mm_model_get_image_size (m, &w, &h));
  g_assert_cmpuint (w, ==, 224);
  g_assert_cmpuint (h, ==, 224);
  char *io_path = g_strdup (path);
  char *dot = g_strrstr (io_path, ".safetensors");
  g_assert_nonnull (dot);
  *dot = '\0';
  char *io_name = g_strconcat (io_path, "-io.safetensors", NULL);
  MmSafetensors *io = mm_safetensors_open (io_name, &err);
  g_assert_no_error (err);

  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  guint pw, ph;
  guint8 *px = io_pixels (io_tensor (io, "io.pixels%d", 0), &pw, &ph);
  float z[32];
  g_assert_cmpuint (mm_model_get_dim (m, MM_COMPONENT_IMAGE), ==, 32);
  gint64 t0 = g_get_monotonic_time ();
  g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, px, pw, ph, pw * 3, z, &err));
  g_test_message ("resnet18 224x224: %.1f ms (%s)", (g_get_monotonic_time () - t0) / 1000.0,
      mm_blas_core_name ());
  assert_close (z, io_tensor (io, "io.expected%d", 0)->data, 32, "resnet18");

  g_free (px);
  g_free (io_name);
  g_free (io_path);
  mm_image_encoder_free (enc);
  mm_safetensors_free (io);
  mm_model_unref (m);
}

/* Byte positions of R, G, B (or -1) and bytes per pixel of each format. */
typedef struct
{
  MmPixelFormat format;
  const char *name;
  int bpp, r, g, b;
} PixelLayout;

static const PixelLayout layouts[] = {
  { MM_PIXEL_RGB, "RGB", 3, 0, 1, 2 },
  { MM_PIXEL_BGR, "BGR", 3, 2, 1, 0 },
  { MM_PIXEL_RGBx, "RGBx", 4, 0, 1, 2 },
  { MM_PIXEL_BGRx, "BGRx", 4, 2, 1, 0 },
  { MM_PIXEL_xRGB, "xRGB", 4, 1, 2, 3 },
  { MM_PIXEL_xBGR, "xBGR", 4, 3, 2, 1 },
  { MM_PIXEL_RGBA, "RGBA", 4, 0, 1, 2 },
  { MM_PIXEL_BGRA, "BGRA", 4, 2, 1, 0 },
  { MM_PIXEL_ARGB, "ARGB", 4, 1, 2, 3 },
  { MM_PIXEL_ABGR, "ABGR", 4, 3, 2, 1 },
};

/* Packs an RGB picture in @l's layout with @pad extra bytes per row; the
 * unused byte is filled with junk that must be ignored. */
static guint8 *
pack (const guint8 *rgb, guint w, guint h, const PixelLayout *l, gsize pad, gsize *stride)
{
  *stride = (gsize)w * l->bpp + pad;
  guint8 *out = g_malloc (*stride * h);
  memset (out, 0xa5, *stride * h);
  for (guint y = 0; y < h; y++)
    for (guint x = 0; x < w; x++) {
      guint8 *p = out + y * *stride + (gsize)x * l->bpp;
      const guint8 *s = rgb + ((gsize)y * w + x) * 3;
      if (l->bpp == 4)
        p[0] = p[1] = p[2] = p[3] = (guint8)(x * 37 + y * 11);
      p[l->r] = s[0];
      p[l->g] = s[1];
      p[l->b] = s[2];
    }
  return out;
}

static void
test_image_pixel_formats (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("encoders/resnet-small.safetensors");
  MmSafetensors *io = open_io ("encoders/resnet-small-io.safetensors");
  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  guint w, h, dim = mm_model_get_dim (m, MM_COMPONENT_IMAGE);
  guint8 *rgb = io_pixels (io_tensor (io, "io.pixels%d", 1), &w, &h);
  float *z_ref = g_new (float, dim), *z = g_new (float, dim);

  g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, rgb, w, h, w * 3, z_ref, &err));
  g_assert_no_error (err);
  for (guint i = 0; i < G_N_ELEMENTS (layouts); i++) {
    gsize stride;
    guint8 *px = pack (rgb, w, h, &layouts[i], 5 + i, &stride);
    g_assert_true (mm_image_encoder_encode (enc, layouts[i].format, px, w, h, stride, z, &err));
    g_assert_no_error (err);
    for (guint k = 0; k < dim; k++)
      if (fabsf (z[k] - z_ref[k]) > 1e-6f)
        g_error ("%s differs from RGB at %u: %g vs %g", layouts[i].name, k, z[k], z_ref[k]);
    g_free (px);
  }

  /* GRAY8 = the same grey picture as RGB with R = G = B */
  guint8 *gray = g_malloc ((gsize)w * h), *grey_rgb = g_malloc ((gsize)w * h * 3);
  for (gsize i = 0; i < (gsize)w * h; i++) {
    gray[i] = rgb[3 * i + 1];
    grey_rgb[3 * i] = grey_rgb[3 * i + 1] = grey_rgb[3 * i + 2] = gray[i];
  }
  g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, grey_rgb, w, h, w * 3, z_ref, &err));
  g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_GRAY8, gray, w, h, w, z, &err));
  g_assert_no_error (err);
  for (guint k = 0; k < dim; k++)
    g_assert_cmpfloat_with_epsilon (z[k], z_ref[k], 1e-6);

  g_free (gray);
  g_free (grey_rgb);
  g_free (z);
  g_free (z_ref);
  g_free (rgb);
  mm_image_encoder_free (enc);
  mm_safetensors_free (io);
  mm_model_unref (m);
}

static void
test_image_bad_sizes (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("tiny.safetensors");
  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  static guint8 px[64 * 64 * 4];
  float z[8];
  struct
  {
    guint w, h;
    gsize stride;
    const guint8 *pixels;
  } cases[] = {
    { 0, 16, 64, px },
    { 16, 0, 64, px },
    { 16385, 1, 16385 * 4, px },
    { 1, 16385, 4, px },
    { 16, 16, 63, px },
    { 16, 16, 0, px },
    { 16, 16, 64, NULL },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_assert_false (mm_image_encoder_encode (
        enc, MM_PIXEL_RGBx, cases[i].pixels, cases[i].w, cases[i].h, cases[i].stride, z, &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
    g_test_message ("case %u: %s", i, err->message);
    g_clear_error (&err);
  }
  /* the smallest picture is fine */
  g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGBx, px, 1, 1, 4, z, &err));
  g_assert_no_error (err);
  mm_image_encoder_free (enc);
  mm_model_unref (m);
}

/* ---- audio ------------------------------------------------------------ */

static void
audio_parity_run (gboolean reference)
{
  GError *err = NULL;
  MmModel *m = open_model ("encoders/audio.safetensors");
  MmSafetensors *io = open_io ("encoders/audio-io.safetensors");
  MmAudioEncoder *enc = mm_audio_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  guint dim = mm_model_get_dim (m, MM_COMPONENT_AUDIO);
  float *z = g_new (float, dim);

  for (int i = 0; i < 3; i++) {
    const MmTensor *s = io_tensor (io, "io.samples%d", i);
    const MmTensor *want = io_tensor (io, "io.expected%d", i);
    g_assert_cmpuint (want->n_elements, ==, dim);
    g_assert_true (mm_audio_encoder_encode (enc, s->data, s->n_elements, z, &err));
    g_assert_no_error (err);
    char *what = g_strdup_printf ("audio %" G_GSIZE_FORMAT " samples %s", s->n_elements,
        reference ? "reference ops" : "BLAS");
    assert_close (z, want->data, dim, what);
    g_free (what);
  }
  g_free (z);
  mm_audio_encoder_free (enc);
  mm_safetensors_free (io);
  mm_model_unref (m);
}

static void
test_audio_parity (void)
{
  each_ops_path (audio_parity_run);
}

static void
test_audio_bad_input (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("encoders/audio.safetensors");
  MmContextParams params = mm_context_default_params ();
  params.max_audio_samples = 5000;
  MmAudioEncoder *enc = mm_audio_encoder_new (m, &params, &err);
  g_assert_no_error (err);
  float *s = g_new0 (float, 6000), z[6];

  /* shorter than n_fft (512) */
  g_assert_false (mm_audio_encoder_encode (enc, s, 511, z, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_assert_nonnull (strstr (err->message, "n_fft"));
  g_clear_error (&err);
  /* one frame: the unpadded last conv has nothing left */
  g_assert_false (mm_audio_encoder_encode (enc, s, 512, z, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  /* longer than max_audio_samples */
  g_assert_false (mm_audio_encoder_encode (enc, s, 5001, z, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  g_assert_false (mm_audio_encoder_encode (enc, NULL, 4000, z, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  /* the maximum itself works, silence included (log_offset keeps it finite) */
  g_assert_true (mm_audio_encoder_encode (enc, s, 5000, z, &err));
  g_assert_no_error (err);
  for (int i = 0; i < 6; i++)
    g_assert_true (isfinite (z[i]));

  g_free (s);
  mm_audio_encoder_free (enc);
  mm_model_unref (m);
}

/* ---- fusion ----------------------------------------------------------- */

static void
fusion_attention_run (gboolean reference)
{
  GError *err = NULL;
  MmModel *m = open_model ("encoders/fusion-attn.safetensors");
  MmSafetensors *io = open_io ("encoders/fusion-attn-io.safetensors");
  MmFusion *f = mm_fusion_new (m, NULL, &err);
  g_assert_no_error (err);
  guint n = mm_model_get_fusion_n_inputs (m), dim = mm_model_get_dim (m, MM_COMPONENT_FUSION);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpuint (dim, ==, 8);
  g_assert_cmpstr (mm_model_get_fusion_input_modality (m, 1), ==, "audio");
  g_assert_cmpuint (mm_model_get_fusion_input_dim (m, 1), ==, 7);
  float fused[8];

  for (int c = 0; c < 4; c++) {
    const MmTensor *mask = io_tensor (io, "io.mask%d", c);
    const float *inputs[3];
    for (guint i = 0; i < n; i++)
      inputs[i] = mask->data[i] != 0.0f ? io_tensor (io, "io.input%d", i)->data : NULL;
    g_assert_true (mm_fusion_run (f, inputs, fused, &err));
    g_assert_no_error (err);
    char *what = g_strdup_printf ("attention mask %g%g%g %s", mask->data[0], mask->data[1],
        mask->data[2], reference ? "reference ops" : "BLAS");
    assert_close (fused, io_tensor (io, "io.expected%d", c)->data, dim, what);
    g_free (what);
  }
  mm_fusion_free (f);
  mm_safetensors_free (io);
  mm_model_unref (m);
}

static void
test_fusion_attention (void)
{
  each_ops_path (fusion_attention_run);
}

/* concat's layout follows from FORMAT.md: check it against the inputs. */
static void
test_fusion_concat (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("tiny.safetensors");
  MmFusion *f = mm_fusion_new (m, NULL, &err);
  g_assert_no_error (err);
  guint n = mm_model_get_fusion_n_inputs (m), dim = mm_model_get_dim (m, MM_COMPONENT_FUSION);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpstr (mm_model_get_component_type (m, MM_COMPONENT_FUSION), ==, "concat");
  guint total = 0;
  for (guint i = 0; i < n; i++)
    total += mm_model_get_fusion_input_dim (m, i);
  g_assert_cmpuint (dim, ==, total + n); /* append_mask */
  g_assert_cmpint (mm_model_find_fusion_input (m, "text"), ==, 2);

  float in[3][8], *fused = g_new (float, dim);
  for (guint i = 0; i < n; i++)
    for (int k = 0; k < 8; k++)
      in[i][k] = (float)(i * 10 + k + 1);
  for (guint mask = 0; mask < 8; mask++) {
    const float *inputs[3];
    for (guint i = 0; i < n; i++)
      inputs[i] = (mask >> i) & 1 ? in[i] : NULL;
    memset (fused, 0x7f, dim * sizeof (float));
    g_assert_true (mm_fusion_run (f, inputs, fused, &err));
    g_assert_no_error (err);
    guint off = 0;
    for (guint i = 0; i < n; i++) {
      guint d = mm_model_get_fusion_input_dim (m, i);
      for (guint k = 0; k < d; k++)
        g_assert_cmpfloat (fused[off + k], ==, inputs[i] ? inputs[i][k] : 0.0f);
      off += d;
    }
    for (guint i = 0; i < n; i++)
      g_assert_cmpfloat (fused[off + i], ==, (mask >> i) & 1 ? 1.0f : 0.0f);
  }
  g_assert_false (mm_fusion_run (f, NULL, fused, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  g_free (fused);
  mm_fusion_free (f);
  mm_model_unref (m);
}

/* ---- head ------------------------------------------------------------- */

static void
head_parity_run (gboolean reference)
{
  static const struct
  {
    const char *kind;
    MmHeadKind expect;
  } kinds[] = {
    { "softmax", MM_HEAD_SOFTMAX },
    { "sigmoid", MM_HEAD_SIGMOID },
    { "regression", MM_HEAD_REGRESSION },
  };
  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
    GError *err = NULL;
    char *name = g_strdup_printf ("encoders/head-%s.safetensors", kinds[k].kind);
    char *io_name = g_strdup_printf ("encoders/head-%s-io.safetensors", kinds[k].kind);
    MmModel *m = open_model (name);
    MmSafetensors *io = open_io (io_name);
    g_assert_cmpint (mm_model_get_head_kind (m), ==, kinds[k].expect);
    guint n = mm_model_get_n_outputs (m);
    char label0[16];
    g_snprintf (label0, sizeof label0, "%.3s0", kinds[k].kind);
    g_assert_cmpstr (mm_model_get_label (m, 0), ==, label0);
    g_assert_nonnull (mm_model_get_label (m, n - 1));
    MmHead *head = mm_head_new (m, NULL, &err);
    g_assert_no_error (err);
    float *scores = g_new (float, n);
    for (int i = 0; i < 3; i++) {
      const MmTensor *want = io_tensor (io, "io.expected%d", i);
      g_assert_cmpuint (want->n_elements, ==, n);
      g_assert_true (mm_head_run (head, io_tensor (io, "io.input%d", i)->data, scores, &err));
      g_assert_no_error (err);
      char *what = g_strdup_printf (
          "head %s case %d %s", kinds[k].kind, i, reference ? "reference ops" : "BLAS");
      assert_close (scores, want->data, n, what);
      g_free (what);
    }
    g_free (scores);
    mm_head_free (head);
    mm_safetensors_free (io);
    mm_model_unref (m);
    g_free (name);
    g_free (io_name);
  }
}

static void
test_head_parity (void)
{
  each_ops_path (head_parity_run);
}

/* ---- loading ---------------------------------------------------------- */

static void
test_bad_shapes (void)
{
  static const struct
  {
    const char *file, *tensor;
  } cases[] = {
    { "encoders/bad-image.safetensors", "image.layer2.0.downsample.0.weight" },
    { "encoders/bad-audio.safetensors", "audio.convs.1.weight" },
    { "encoders/bad-fusion.safetensors", "fusion.attn.in_proj_weight" },
    { "encoders/bad-head.safetensors", "head.layers.1.weight" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *err = NULL;
    char *path = fixture (cases[i].file);
    MmModel *m = mm_model_open (path, &err);
    g_assert_null (m);
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_test_message ("%s", err->message);
    if (!strstr (err->message, cases[i].tensor))
      g_error ("error for %s does not name %s: %s", cases[i].file, cases[i].tensor, err->message);
    g_clear_error (&err);
    g_free (path);
  }
}

/* Config validation: tiny.safetensors with one key of one component's
 * configuration replaced (or removed); each must fail to load with an error
 * naming the problem, never crash. */
typedef struct
{
  const char *component, *key;
  const char *json;         /* new value, NULL = remove the key */
  const char *must_contain; /* in the error message */
  const char *key2, *json2; /* optional second key changed in the same way */
} ConfigCase;

static const ConfigCase config_cases[] = {
  { "image", "widths", "[4,8,16]", "blocks" },
  { "image", "blocks", "[1,0]", "blocks" },
  { "image", "blocks", "[1,\"2\"]", "blocks" },
  { "image", "widths", "[4,8,1,1,1,1,1,1,1]", "widths" },
  { "image", "width", "0", "width" },
  { "image", "width", "-3", "width" },
  { "image", "height", "1e9", "height" },
  { "image", "mean", "[0.5]", "mean" },
  { "image", "std", "[0,1,1]", "std" },
  { "image", "std", NULL, "std" },
  { "image", "dim", "9", "image.fc.weight" },
  { "image", "stem_kernel", "5", "image.conv1.weight" },
  { "audio", "convs", "[]", "convs" },
  { "audio", "convs", "{}", "convs" },
  { "audio", "convs", "[{\"out\":8,\"kernel\":3,\"groups\":3}]", "groups" },
  { "audio", "convs", "[{\"out\":8,\"kernel\":5,\"padding\":1}]", "audio.convs.0.weight" },
  { "audio", "convs", "[{\"kernel\":3}]", "out" },
  { "audio", "window", "100", "window" },
  /* one log-mel frame, then a kernel-3 conv without padding: nothing left */
  { "audio", "window", "400", "window", "convs", "[{\"out\":8,\"kernel\":3,\"padding\":0}]" },
  { "audio", "hop_length", "65535", "window", "convs", "[{\"out\":8,\"kernel\":3,\"padding\":0}]" },
  { "audio", "n_mels", "20", "audio.convs.0.weight" },
  { "audio", "n_fft", "0", "n_fft" },
  { "audio", "win_length", "401", "win_length" },
  { "audio", "hop_length", "0", "hop_length" },
  { "audio", "f_max", "0", "f_max" },
  { "audio", "log_offset", "0", "log_offset" },
  { "audio", "n_fft", "8192", "n_fft" },
  { "audio", "sample_rate", "44100.5", "sample_rate" },
  { "audio", "dim", "7", "audio.fc.weight" },
  { "fusion", "type", "\"sum\"", "sum" },
  { "fusion", "dim", "26", "dim" },
  { "fusion", "inputs", "[]", "inputs" },
  { "fusion", "inputs", "[{\"modality\":\"image\"}]", "dim" },
  { "fusion", "inputs", "[{\"dim\":8}]", "modality" },
  { "fusion", "inputs", "[3]", "inputs" },
  { "head", "kind", "\"max\"", "max" },
  { "head", "labels", "[\"a\",\"b\"]", "labels" },
  { "head", "labels", "[\"a\",\"b\",3]", "labels" },
  { "head", "layers", "3", "head.layers.2.weight" },
  { "head", "layers", "0", "layers" },
  { "head", "layers", "1", "head.layers.0.weight" },
};

/* tiny.safetensors bytes with components[component][key] changed. */
static GBytes *
mutate_tiny (const ConfigCase *c)
{
  char *path = fixture ("tiny.safetensors"), *raw;
  gsize len;
  g_assert_true (g_file_get_contents (path, &raw, &len, NULL));
  guint64 n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | (guint8)raw[i];
  g_assert_cmpuint (8 + n, <=, len);

  JsonParser *hp = json_parser_new ();
  g_assert_true (json_parser_load_from_data (hp, raw + 8, n, NULL));
  JsonObject *meta = json_object_get_object_member (
      json_node_get_object (json_parser_get_root (hp)), "__metadata__");
  JsonParser *mp = json_parser_new ();
  g_assert_true (
      json_parser_load_from_data (mp, json_object_get_string_member (meta, "mm"), -1, NULL));
  JsonObject *cfg = json_object_get_object_member (
      json_object_get_object_member (
          json_node_get_object (json_parser_get_root (mp)), "components"),
      c->component);
  if (c->json)
    json_object_set_member (cfg, c->key, json_from_string (c->json, NULL));
  else
    json_object_remove_member (cfg, c->key);
  if (c->key2)
    json_object_set_member (cfg, c->key2, json_from_string (c->json2, NULL));
  char *mm = json_to_string (json_parser_get_root (mp), FALSE);
  json_object_set_string_member (meta, "mm", mm);
  char *header = json_to_string (json_parser_get_root (hp), FALSE);

  gsize hlen = strlen (header);
  GByteArray *b = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint8 byte = (guint8)((guint64)hlen >> (8 * i));
    g_byte_array_append (b, &byte, 1);
  }
  g_byte_array_append (b, (const guint8 *)header, hlen);
  g_byte_array_append (b, (const guint8 *)raw + 8 + n, len - 8 - n);

  g_free (header);
  g_free (mm);
  g_object_unref (mp);
  g_object_unref (hp);
  g_free (raw);
  g_free (path);
  return g_byte_array_free_to_bytes (b);
}

static void
test_bad_configs (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (config_cases); i++) {
    const ConfigCase *c = &config_cases[i];
    GError *err = NULL;
    GBytes *bytes = mutate_tiny (c);
    gsize len;
    const guint8 *data = g_bytes_get_data (bytes, &len);
    MmSafetensors *st = mm_safetensors_open_bytes ("mutated", data, len, &err);
    g_assert_no_error (err);
    MmModel *m = mm_model_new_from_safetensors (st, "mutated", &err);
    if (m)
      g_error ("%s.%s = %s: loaded, expected an error", c->component, c->key,
          c->json ? c->json : "(removed)");
    g_assert_nonnull (err);
    g_assert_true (err->domain == MM_ERROR);
    g_test_message (
        "%s.%s = %s: %s", c->component, c->key, c->json ? c->json : "(removed)", err->message);
    if (!strstr (err->message, c->must_contain))
      g_error ("%s.%s: error does not mention \"%s\": %s", c->component, c->key, c->must_contain,
          err->message);
    g_clear_error (&err);
    mm_safetensors_free (st);
    g_bytes_unref (bytes);
  }
}

/* Unusual but valid configurations (same tensors): must load and run. */
static const ConfigCase odd_cases[] = {
  { "image", "width", "1", NULL },
  { "image", "height", "1", NULL },
  { "image", "height", "300", NULL },
  { "image", "stem_maxpool", "false", NULL },
  { "image", "stem_stride", "5", NULL },
  { "audio", "window", "400", NULL },
  { "audio", "convs", "[{\"out\":8,\"kernel\":3,\"stride\":3,\"padding\":1}]", NULL },
  { "audio", "hop_length", "1", NULL },
};

static void
test_odd_configs (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (odd_cases); i++) {
    const ConfigCase *c = &odd_cases[i];
    GError *err = NULL;
    GBytes *bytes = mutate_tiny (c);
    gsize len;
    const guint8 *data = g_bytes_get_data (bytes, &len);
    MmSafetensors *st = mm_safetensors_open_bytes ("odd", data, len, &err);
    g_assert_no_error (err);
    MmModel *m = mm_model_new_from_safetensors (st, "odd", &err);
    g_assert_no_error (err);
    MmImageEncoder *ie = mm_image_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    MmAudioEncoder *ae = mm_audio_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    static guint8 px[7 * 5 * 3];
    for (guint k = 0; k < sizeof px; k++)
      px[k] = (guint8)(k * 13);
    guint window = mm_model_get_audio_window (m);
    float *audio = g_new (float, 4 * window), z[8];
    for (guint k = 0; k < 4 * window; k++)
      audio[k] = sinf (k * 0.01f);
    g_assert_true (mm_image_encoder_encode (ie, MM_PIXEL_RGB, px, 7, 5, 21, z, &err));
    g_assert_no_error (err);
    for (int k = 0; k < 8; k++)
      g_assert_true (isfinite (z[k]));
    g_assert_true (mm_audio_encoder_encode (ae, audio, 4 * window, z, &err));
    g_assert_true (mm_audio_encoder_encode (ae, audio, 400, z, &err));
    g_assert_no_error (err);
    for (int k = 0; k < 8; k++)
      g_assert_true (isfinite (z[k]));
    g_free (audio);
    mm_image_encoder_free (ie);
    mm_audio_encoder_free (ae);
    mm_model_unref (m);
    g_bytes_unref (bytes);
  }
}

static void
test_missing_component (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("encoders/head-regression.safetensors");
  g_assert_null (mm_image_encoder_new (m, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_MISSING_COMPONENT);
  g_clear_error (&err);
  g_assert_null (mm_audio_encoder_new (m, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_MISSING_COMPONENT);
  g_clear_error (&err);
  g_assert_null (mm_fusion_new (m, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_MISSING_COMPONENT);
  g_clear_error (&err);
  mm_model_unref (m);
}

/* The fixture models the element tests use: every component runs, and the
 * hand-made text path decides the label. */
static void
test_tiny_models (void)
{
  static const char *const files[] = {
    "tiny.safetensors",
    "tiny-attn.safetensors",
    "tiny-notext.safetensors",
  };
  for (guint f = 0; f < G_N_ELEMENTS (files); f++) {
    GError *err = NULL;
    MmModel *m = open_model (files[f]);
    g_assert_cmpstr (mm_model_get_name (m), ==, "tiny");
    g_assert_cmpuint (mm_model_get_audio_rate (m), ==, 16000);
    g_assert_cmpuint (mm_model_get_audio_window (m), ==, 16000);
    g_assert_cmpuint (mm_model_get_audio_hop (m), ==, 8000);
    g_assert_cmpuint (mm_model_get_n_outputs (m), ==, 3);
    g_assert_cmpstr (mm_model_get_label (m, 1), ==, "music");
    g_assert_true (mm_model_has_component (m, MM_COMPONENT_TEXT) == (f != 2));
    MmImageEncoder *ie = mm_image_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    MmAudioEncoder *ae = mm_audio_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    MmFusion *fu = mm_fusion_new (m, NULL, &err);
    g_assert_no_error (err);
    MmHead *hd = mm_head_new (m, NULL, &err);
    g_assert_no_error (err);

    guint8 px[16 * 16 * 3];
    for (guint i = 0; i < sizeof px; i++)
      px[i] = (guint8)(i * 7);
    float *audio = g_new (float, 16000);
    for (int i = 0; i < 16000; i++)
      audio[i] = 0.5f * sinf (2 * G_PI * 440 * i / 16000.0f);
    float zi[8], za[8], zt[8] = { 0 }, fused[27], scores[3];
    g_assert_true (mm_image_encoder_encode (ie, MM_PIXEL_RGB, px, 16, 16, 48, zi, &err));
    g_assert_true (mm_audio_encoder_encode (ae, audio, 16000, za, &err));
    g_assert_no_error (err);
    const float *inputs[3] = { zi, za, NULL };
    g_assert_true (mm_fusion_run (fu, inputs, fused, &err));
    g_assert_true (mm_head_run (hd, fused, scores, &err));
    g_assert_no_error (err);
    g_assert_cmpfloat_with_epsilon (scores[0] + scores[1] + scores[2], 1.0, 1e-5);

    if (f == 0) {
      /* "music" alone: text dims 0/1/2 carry speech/music/noise */
      GError *e2 = NULL;
      MmTextEncoder *te = mm_text_encoder_new (m, NULL, &e2);
      if (te) {
        g_assert_true (mm_text_encoder_encode (te, "Music!", -1, zt, NULL, &e2));
        const float *only_text[3] = { NULL, NULL, zt };
        g_assert_true (mm_fusion_run (fu, only_text, fused, &e2));
        g_assert_true (mm_head_run (hd, fused, scores, &e2));
        g_assert_cmpfloat (scores[1], >, 0.9f);
        mm_text_encoder_free (te);
      }
      g_clear_error (&e2);
    }
    g_free (audio);
    mm_image_encoder_free (ie);
    mm_audio_encoder_free (ae);
    mm_fusion_free (fu);
    mm_head_free (hd);
    mm_model_unref (m);
  }

  GError *err = NULL;
  char *path = fixture ("corrupt.safetensors");
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_clear_error (&err);
  g_free (path);
}

/* ---- no allocation in encode / run ------------------------------------ */

/* Allocations made by one more round of encode/run on warmed-up contexts. */
static gint
count_run_allocs (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("tiny-attn.safetensors");
  MmModel *ma = open_model ("encoders/audio.safetensors");
  MmImageEncoder *ie = mm_image_encoder_new (m, NULL, &err);
  MmAudioEncoder *ae = mm_audio_encoder_new (ma, NULL, &err);
  MmFusion *fu = mm_fusion_new (m, NULL, &err);
  MmHead *hd = mm_head_new (m, NULL, &err);
  g_assert_no_error (err);
  static guint8 px[40 * 30 * 4];
  float *audio = g_new0 (float, 8000), zi[8], za[6], fused[8], scores[3];
  for (int i = 0; i < 8000; i++)
    audio[i] = sinf (i * 0.05f);
  const float *inputs[3] = { zi, NULL, zi };

  for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up */
    n_allocs = 0;
    counting = pass;
    gboolean ok = mm_image_encoder_encode (ie, MM_PIXEL_BGRx, px, 40, 30, 160, zi, &err)
        && mm_audio_encoder_encode (ae, audio, 8000, za, &err)
        && mm_audio_encoder_encode (ae, audio, 3000, za, &err)
        && mm_fusion_run (fu, inputs, fused, &err) && mm_head_run (hd, fused, scores, &err);
    counting = 0;
    g_assert_no_error (err);
    g_assert_true (ok);
  }

  g_free (audio);
  mm_image_encoder_free (ie);
  mm_audio_encoder_free (ae);
  mm_fusion_free (fu);
  mm_head_free (hd);
  mm_model_unref (m);
  mm_model_unref (ma);
  return n_allocs;
}

static void
test_no_alloc (void)
{
  if (!COUNT_ALLOCS) {
    g_test_skip ("malloc is not interposable in this build (sanitizer or not glibc)");
    return;
  }
  n_allocs = 0;
  counting = 1;
  g_free (g_malloc (16));
  counting = 0;
  g_assert_cmpint (n_allocs, ==, 1);

  /* libmm itself: the plain C ops path must not allocate at all */
  mm_ops_set_reference (TRUE);
  gint n_ref = count_run_allocs ();
  mm_ops_set_reference (FALSE);
  g_assert_cmpint (n_ref, ==, 0);

  /* Through OpenBLAS: its AVX-512 small-matrix sgemm kernels (SkylakeX,
   * Cooperlake, in 0.3.21) call malloc on every call, so libmm keeps every
   * GEMM under their threshold (M*N*K <= 100^3, all of these models') in
   * its own kernel (blas.c); the big ones OpenBLAS runs from buffers it
   * allocated once. */
  gint n_blas = count_run_allocs ();
  g_test_message ("allocations per round through BLAS (%s): %d", mm_blas_core_name (), n_blas);
  g_assert_cmpint (n_blas, ==, 0);
}

/* A NULL output buffer is an MM_ERROR_INPUT naming the model (as for the
 * text encoder), not only a g_return critical: mm.h promises a GError. */
static void
check_null_output (GError *err, const char *what)
{
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_test_message ("%s: %s", what, err->message);
  if (!strstr (err->message, "tiny"))
    g_error ("%s: error does not name the model: %s", what, err->message);
}

static void
test_null_outputs (void)
{
  static const char *const files[] = { "tiny.safetensors", "tiny-attn.safetensors" };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    GError *err = NULL;
    MmModel *m = open_model (files[i]);
    MmImageEncoder *ie = mm_image_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    MmAudioEncoder *ae = mm_audio_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    MmFusion *fu = mm_fusion_new (m, NULL, &err);
    g_assert_no_error (err);
    MmHead *hd = mm_head_new (m, NULL, &err);
    g_assert_no_error (err);
    static guint8 px[4 * 4 * 3];
    guint window = mm_model_get_audio_window (m);
    float *audio = g_new0 (float, window);
    float z[8] = { 0 }, fused[64] = { 0 };
    const float *inputs[8] = { z, z, z, z, z, z, z, z };

    g_assert_false (mm_image_encoder_encode (ie, MM_PIXEL_RGB, px, 4, 4, 12, NULL, &err));
    check_null_output (err, "image");
    g_clear_error (&err);
    g_assert_false (mm_audio_encoder_encode (ae, audio, window, NULL, &err));
    check_null_output (err, "audio");
    g_clear_error (&err);
    g_assert_false (mm_fusion_run (fu, inputs, NULL, &err));
    check_null_output (err, "fusion");
    g_clear_error (&err);
    g_assert_false (mm_head_run (hd, fused, NULL, &err));
    check_null_output (err, "head");
    g_clear_error (&err);

    g_free (audio);
    mm_image_encoder_free (ie);
    mm_audio_encoder_free (ae);
    mm_fusion_free (fu);
    mm_head_free (hd);
    mm_model_unref (m);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/encoders/image/parity", test_image_parity);
  g_test_add_func ("/encoders/image/resnet18", test_image_resnet18);
  g_test_add_func ("/encoders/image/fast-vs-reference", test_image_fast_vs_reference);
  g_test_add_func ("/encoders/image/mixed-layouts", test_image_mixed_layouts);
  g_test_add_func ("/encoders/image/pixel-formats", test_image_pixel_formats);
  g_test_add_func ("/encoders/image/bad-sizes", test_image_bad_sizes);
  g_test_add_func ("/encoders/audio/parity", test_audio_parity);
  g_test_add_func ("/encoders/audio/bad-input", test_audio_bad_input);
  g_test_add_func ("/encoders/fusion/attention", test_fusion_attention);
  g_test_add_func ("/encoders/fusion/concat", test_fusion_concat);
  g_test_add_func ("/encoders/head/parity", test_head_parity);
  g_test_add_func ("/encoders/load/bad-shapes", test_bad_shapes);
  g_test_add_func ("/encoders/load/missing-component", test_missing_component);
  g_test_add_func ("/encoders/load/bad-configs", test_bad_configs);
  g_test_add_func ("/encoders/load/odd-configs", test_odd_configs);
  g_test_add_func ("/encoders/tiny", test_tiny_models);
  g_test_add_func ("/encoders/no-alloc", test_no_alloc);
  g_test_add_func ("/encoders/null-outputs", test_null_outputs);
  return g_test_run ();
}
