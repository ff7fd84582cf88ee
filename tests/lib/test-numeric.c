/* libmm numeric encoder: parity with PyTorch, missing values, bad input and
 * bad files.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * References come from tests/lib/ref_numeric.py (a torch module exported by
 * models/export.py, run in float64): $MM_FIXTURES/encoders/NAME-io.safetensors
 * holds "io.input<i>" (NaN = missing) and "io.expected<i>".  Every parity case
 * runs with the BLAS path and with the plain C reference ops.
 */
#include <math.h>
#include <string.h>

#include "mm.h"
#include "mm-private.h"
#include "ops.h"

#include "alloc-count.h"

#define TOLERANCE 1e-4

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
  g_free (path);
  return m;
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

static const struct
{
  const char *name;
  guint n_features, dim;
  gboolean has_nan; /* the odd inputs have missing values */
} parity_cases[] = {
  { "numeric-mean", 5, 8, TRUE },
  { "numeric-zero", 3, 4, TRUE },
  { "numeric-error", 4, 2, FALSE },
};

static void
parity_run (gboolean reference)
{
  mm_ops_set_reference (reference);
  for (guint k = 0; k < G_N_ELEMENTS (parity_cases); k++) {
    GError *err = NULL;
    char *name = g_strdup_printf ("encoders/%s.safetensors", parity_cases[k].name);
    char *io_name = g_strdup_printf ("encoders/%s-io.safetensors", parity_cases[k].name);
    char *io_path = fixture (io_name);
    MmModel *m = open_model (name);
    MmSafetensors *io = mm_safetensors_open (io_path, &err);
    g_assert_no_error (err);
    g_assert_cmpstr (mm_model_get_component_type (m, MM_COMPONENT_NUMERIC), ==, "mlp");
    g_assert_cmpstr (mm_component_name (MM_COMPONENT_NUMERIC), ==, "numeric");
    g_assert_cmpuint (mm_model_get_numeric_n_features (m), ==, parity_cases[k].n_features);
    g_assert_cmpuint (mm_model_get_dim (m, MM_COMPONENT_NUMERIC), ==, parity_cases[k].dim);
    g_assert_cmpstr (mm_model_get_numeric_modality (m), ==, "sensor");
    MmNumericEncoder *enc = mm_numeric_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    float out[16];
    for (int i = 0; i < 4; i++) {
      const MmTensor *in = io_tensor (io, "io.input%d", i);
      const MmTensor *want = io_tensor (io, "io.expected%d", i);
      guint n_missing = 99, n_nan = 0;
      for (gsize j = 0; j < in->n_elements; j++)
        n_nan += isnan (in->data[j]);
      g_assert_cmpuint (n_nan > 0, ==, parity_cases[k].has_nan && i % 2);
      g_assert_true (
          mm_numeric_encoder_encode (enc, in->data, in->n_elements, out, &n_missing, &err));
      g_assert_no_error (err);
      g_assert_cmpuint (n_missing, ==, n_nan);
      double e = 0, scale = 1;
      for (guint j = 0; j < parity_cases[k].dim; j++) {
        g_assert_true (isfinite (out[j]));
        e = MAX (e, fabs ((double)out[j] - want->data[j]));
        scale = MAX (scale, fabs ((double)want->data[j]));
      }
      g_test_message ("%s case %d (%s): max abs error %.3g", parity_cases[k].name, i,
          reference ? "reference" : "BLAS", e);
      g_assert_cmpfloat (e, <=, TOLERANCE * scale);
    }
    mm_numeric_encoder_free (enc);
    mm_safetensors_free (io);
    mm_model_unref (m);
    g_free (name);
    g_free (io_name);
    g_free (io_path);
  }
  mm_ops_set_reference (FALSE);
}

static void
test_parity (void)
{
  parity_run (FALSE);
  parity_run (TRUE);
}

static void
test_feature_names (void)
{
  MmModel *m = open_model ("encoders/numeric-zero.safetensors");
  g_assert_cmpstr (mm_model_get_numeric_feature_name (m, 0), ==, "speed");
  g_assert_cmpstr (mm_model_get_numeric_feature_name (m, 2), ==, "level");
  g_assert_null (mm_model_get_numeric_feature_name (m, 3));
  mm_model_unref (m);
  m = open_model ("encoders/numeric-mean.safetensors");
  g_assert_null (mm_model_get_numeric_feature_name (m, 0));
  mm_model_unref (m);
  /* a model without the component */
  m = open_model ("encoders/head-softmax.safetensors");
  g_assert_cmpuint (mm_model_get_numeric_n_features (m), ==, 0);
  g_assert_null (mm_model_get_numeric_modality (m));
  GError *err = NULL;
  g_assert_null (mm_numeric_encoder_new (m, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_MISSING_COMPONENT);
  g_clear_error (&err);
  mm_model_unref (m);
}

/* Bad input: an error, and the output left as it was. */
static void
test_bad_input (void)
{
  GError *err = NULL;
  MmModel *m = open_model ("encoders/numeric-error.safetensors");
  MmNumericEncoder *enc = mm_numeric_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  float out[2] = { 7, 7 };
  const float nan_in[4] = { 1, NAN, 2, 3 }, inf_in[4] = { 1, 2, -INFINITY, 3 };
  const float ok_in[5] = { 1, 2, 3, 4, 5 };
  g_assert_false (mm_numeric_encoder_encode (enc, nan_in, 4, out, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_assert_nonnull (strstr (err->message, "value 1 is missing"));
  g_clear_error (&err);
  g_assert_false (mm_numeric_encoder_encode (enc, inf_in, 4, out, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_assert_nonnull (strstr (err->message, "value 2 is infinite"));
  g_clear_error (&err);
  g_assert_false (mm_numeric_encoder_encode (enc, ok_in, 5, out, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_assert_nonnull (strstr (err->message, "got 5 values, the model takes 4"));
  g_clear_error (&err);
  g_assert_false (mm_numeric_encoder_encode (enc, ok_in, 3, out, NULL, &err));
  g_clear_error (&err);
  g_assert_false (mm_numeric_encoder_encode (enc, NULL, 4, out, NULL, &err));
  g_clear_error (&err);
  g_assert_false (mm_numeric_encoder_encode (enc, ok_in, 4, NULL, NULL, &err));
  g_clear_error (&err);
  g_assert_cmpfloat (out[0], ==, 7);
  g_assert_cmpfloat (out[1], ==, 7);
  g_assert_true (mm_numeric_encoder_encode (enc, ok_in, 4, out, NULL, &err));
  g_assert_no_error (err);
  mm_numeric_encoder_free (enc);
  mm_model_unref (m);
}

/* ---- bad files: numeric-mean with one change to its "mm" document ------- */

typedef struct
{
  const char *key;    /* in components.numeric; NULL: none */
  const char *json;   /* its new value; NULL: removed */
  const char *fusion; /* a fusion component to add, or NULL */
  const char *expect; /* in the error message; NULL: must load */
} ConfigCase;

static const ConfigCase config_cases[] = {
  { "nan", "\"drop\"", NULL, "unknown \"nan\" \"drop\"" },
  { "nan", "3", NULL, "nan" },
  { "names", "[\"a\", \"b\"]", NULL, "2 names but \"features\" is 5" },
  { "features", NULL, NULL, "features" },
  { "features", "6", NULL, "numeric.mean" },
  { "features", "0", NULL, "features" },
  { "layers", "3", NULL, "numeric.layers.2.weight" },
  { "layers", "1", NULL, "numeric.layers.0.weight" },
  { "dim", "9", NULL, "numeric.layers.1.weight" },
  { "modality", "\"\"", NULL, "modality" },
  { NULL, NULL,
      "{\"type\": \"concat\", \"inputs\": [{\"modality\": \"sensor\", \"dim\": 7}], "
      "\"dim\": 7}",
      "the numeric encoder outputs 8" },
  { NULL, NULL,
      "{\"type\": \"concat\", \"inputs\": [{\"modality\": \"sensor\", \"dim\": 8}], "
      "\"dim\": 8}",
      NULL },
  { "modality", "\"radar\"",
      "{\"type\": \"concat\", \"inputs\": [{\"modality\": \"sensor\", "
      "\"dim\": 3}, {\"modality\": \"radar\", \"dim\": 8}], \"dim\": 11}",
      NULL },
};

static GBytes *
mutate (const ConfigCase *c)
{
  char *path = fixture ("encoders/numeric-mean.safetensors"), *raw;
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
  JsonObject *comps = json_object_get_object_member (
      json_node_get_object (json_parser_get_root (mp)), "components");
  JsonObject *cfg = json_object_get_object_member (comps, "numeric");
  if (c->key && c->json)
    json_object_set_member (cfg, c->key, json_from_string (c->json, NULL));
  else if (c->key)
    json_object_remove_member (cfg, c->key);
  if (c->fusion)
    json_object_set_member (comps, "fusion", json_from_string (c->fusion, NULL));
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
    GBytes *bytes = mutate (c);
    gsize len;
    const guint8 *data = g_bytes_get_data (bytes, &len);
    MmSafetensors *st = mm_safetensors_open_bytes ("mutated", data, len, &err);
    g_assert_no_error (err);
    MmModel *m = mm_model_new_from_safetensors (st, "mutated", &err);
    if (c->expect) {
      g_assert_null (m);
      g_assert_nonnull (err);
      g_test_message ("case %u: %s", i, err->message);
      if (!strstr (err->message, c->expect))
        g_error ("case %u: '%s' does not mention '%s'", i, err->message, c->expect);
      g_clear_error (&err);
      mm_safetensors_free (st);
    } else {
      g_assert_no_error (err);
      g_assert_nonnull (m);
      gint idx = mm_model_find_fusion_input (m, mm_model_get_numeric_modality (m));
      g_assert_cmpint (idx, >=, 0);
      g_assert_cmpuint (mm_model_get_fusion_input_dim (m, idx), ==, 8);
      mm_model_unref (m); /* owns st */
    }
    g_bytes_unref (bytes);
  }
}

static void
test_bad_std (void)
{
  GError *err = NULL;
  char *path = fixture ("encoders/bad-numeric.safetensors");
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_assert_nonnull (strstr (err->message, "feature 3"));
  g_clear_error (&err);
  g_free (path);
}

static void
test_no_alloc (void)
{
  if (!COUNT_ALLOCS) {
    g_test_skip ("malloc is not interposable in this build (sanitizer or not glibc)");
    return;
  }
  GError *err = NULL;
  MmModel *m = open_model ("encoders/numeric-mean.safetensors");
  MmNumericEncoder *enc = mm_numeric_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  const float in[5] = { 1, NAN, 3, 4, 5 };
  float out[8];
  for (int pass = 0; pass < 2; pass++) {
    n_allocs = 0;
    counting = pass;
    gboolean ok = mm_numeric_encoder_encode (enc, in, 5, out, NULL, &err);
    counting = 0;
    g_assert_true (ok);
  }
  g_assert_cmpint (n_allocs, ==, 0);
  mm_numeric_encoder_free (enc);
  mm_model_unref (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/numeric/parity", test_parity);
  g_test_add_func ("/numeric/feature-names", test_feature_names);
  g_test_add_func ("/numeric/bad-input", test_bad_input);
  g_test_add_func ("/numeric/bad-configs", test_bad_configs);
  g_test_add_func ("/numeric/bad-std", test_bad_std);
  g_test_add_func ("/numeric/no-alloc", test_no_alloc);
  return g_test_run ();
}
