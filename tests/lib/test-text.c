/* libmm text encoders (wordvec, bert): parity with PyTorch, load errors,
 * no allocation while encoding.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The models and the expected token ids and embeddings in
 * $MM_FIXTURES/text/ come from tests/lib/ref_text.py (PyTorch, float64,
 * tokenizers written from models/FORMAT.md).  Each model runs every case
 * through the public API twice: with BLAS and with the plain C reference
 * ops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mm.h"
#include "mm-private.h"
#include "ops.h"
#include "preprocess.h"

#include "alloc-count.h"

/* ---------------------------------------------------------------------- */
/* Fixtures */

static JsonParser *expected_parser;
static JsonObject *expected;
static char *text_dir;

static char *
fixture_path (const char *file)
{
  return g_build_filename (text_dir, file, NULL);
}

/* The case's text as bytes (text_hex for invalid UTF-8).  Returns a new
 * buffer; *len receives its length. */
static char *
case_text (JsonObject *c, gsize *len)
{
  if (json_object_has_member (c, "text")) {
    const char *t = json_object_get_string_member (c, "text");
    *len = strlen (t);
    return g_strdup (t);
  }
  const char *hex = json_object_get_string_member (c, "text_hex");
  gsize n = strlen (hex) / 2;
  char *out = g_malloc (n + 1);
  for (gsize i = 0; i < n; i++)
    out[i] =
        (char)((g_ascii_xdigit_value (hex[2 * i]) << 4) | g_ascii_xdigit_value (hex[2 * i + 1]));
  out[n] = '\0';
  *len = n;
  return out;
}

static gsize
default_max_bytes (void)
{
  return (gsize)json_object_get_int_member (expected, "default_max_text_bytes");
}

static gsize
case_max_bytes (JsonObject *c)
{
  if (json_object_has_member (c, "max_text_bytes"))
    return (gsize)json_object_get_int_member (c, "max_text_bytes");
  return default_max_bytes ();
}

static JsonObject *
find_model (const char *file)
{
  JsonArray *models = json_object_get_array_member (expected, "models");
  for (guint i = 0; i < json_array_get_length (models); i++) {
    JsonObject *m = json_array_get_object_element (models, i);
    if (g_str_equal (json_object_get_string_member (m, "file"), file))
      return m;
  }
  g_assert_not_reached ();
  return NULL;
}

static MmModel *
open_fixture (const char *file)
{
  GError *err = NULL;
  char *path = fixture_path (file);
  MmModel *model = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_nonnull (model);
  g_free (path);
  return model;
}

static MmTextEncoder *
new_encoder (MmModel *model, gsize max_text_bytes)
{
  GError *err = NULL;
  MmContextParams params = mm_context_default_params ();
  params.max_text_bytes = max_text_bytes;
  MmTextEncoder *enc = mm_text_encoder_new (model, &params, &err);
  g_assert_no_error (err);
  g_assert_nonnull (enc);
  return enc;
}

/* ---------------------------------------------------------------------- */
/* Parity */

/* max |got - want| / max (1, max |want|) */
static double
scaled_error (const float *got, JsonArray *want, guint dim)
{
  double scale = 1.0, err = 0.0;
  g_assert_cmpuint (json_array_get_length (want), ==, dim);
  for (guint j = 0; j < dim; j++)
    scale = MAX (scale, fabs (json_array_get_double_element (want, j)));
  for (guint j = 0; j < dim; j++) {
    g_assert_true (isfinite (got[j]));
    err = MAX (err, fabs (got[j] - json_array_get_double_element (want, j)));
  }
  return err / scale;
}

static void
run_parity (JsonObject *m, gboolean reference)
{
  const char *file = json_object_get_string_member (m, "file");
  JsonArray *cases = json_object_get_array_member (m, "cases");
  guint dim = json_object_get_int_member (m, "dim");
  MmModel *model = open_fixture (file);
  double worst = 0.0;

  mm_ops_set_reference (reference);
  g_assert_cmpstr (mm_model_get_component_type (model, MM_COMPONENT_TEXT), ==,
      json_object_get_string_member (m, "type"));
  g_assert_cmpuint (mm_model_get_dim (model, MM_COMPONENT_TEXT), ==, dim);

  /* one encoder for the default size, reused across cases (long then short
   * text checks that no state leaks between calls) */
  MmTextEncoder *enc = new_encoder (model, default_max_bytes ());
  float *z = g_new (float, dim);

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    gsize len, max_bytes = case_max_bytes (c);
    char *text = case_text (c, &len);
    MmTextEncoder *e = enc;
    GError *err = NULL;
    guint n_tokens = G_MAXUINT;

    if (json_object_has_member (c, "max_text_bytes"))
      e = new_encoder (model, max_bytes);
    for (guint j = 0; j < dim; j++)
      z[j] = NAN;
    /* NUL-terminated and valid: also exercise len = -1 */
    gssize pass_len = json_object_has_member (c, "text") && (i % 2) ? -1 : (gssize)len;
    g_assert_true (mm_text_encoder_encode (e, text, pass_len, z, &n_tokens, &err));
    g_assert_no_error (err);
    g_assert_cmpuint (n_tokens, ==, json_object_get_int_member (c, "n_tokens"));
    double scaled = scaled_error (z, json_object_get_array_member (c, "embedding"), dim);
    if (scaled > 1e-4)
      g_printerr ("%s case %u (%s): scaled error %g\n", file, i,
          json_object_has_member (c, "text") ? json_object_get_string_member (c, "text")
                                             : "(invalid UTF-8)",
          scaled);
    g_assert_cmpfloat (scaled, <=, 1e-4);
    worst = MAX (worst, scaled);
    if (e != enc)
      mm_text_encoder_free (e);
    g_free (text);
  }
  g_test_message ("%s (%s): %u cases, worst scaled error %.3g", file,
      reference ? "reference ops" : mm_blas_core_name (), json_array_get_length (cases), worst);

  g_free (z);
  mm_text_encoder_free (enc);
  mm_model_unref (model);
  mm_ops_set_reference (FALSE);
}

static void
test_parity (gconstpointer data)
{
  JsonObject *m = find_model (data);
  run_parity (m, FALSE);
  run_parity (m, TRUE);
}

/* The tokenizers alone give the ids PyTorch's reference tokenizers gave. */
static void
test_token_ids (gconstpointer data)
{
  JsonObject *m = find_model (data);
  JsonArray *vocab_json = json_object_get_array_member (m, "vocab");
  JsonArray *cases = json_object_get_array_member (m, "cases");
  gboolean bert = g_str_equal (json_object_get_string_member (m, "type"), "bert");
  gboolean lowercase = json_object_get_boolean_member (m, "lowercase");
  guint n_vocab = json_array_get_length (vocab_json);
  const char **words = g_new0 (const char *, n_vocab + 1);

  for (guint i = 0; i < n_vocab; i++)
    words[i] = json_array_get_string_element (vocab_json, i);
  MmVocab *vocab = mm_vocab_new (words, n_vocab);

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    JsonArray *want = json_object_get_array_member (c, "ids");
    gsize len, max_bytes = case_max_bytes (c);
    char *text = case_text (c, &len);
    char *clean = g_malloc (max_bytes + 1);
    gsize clean_len = mm_utf8_sanitize (clean, max_bytes + 1, text, len);
    gint32 *ids = g_new0 (gint32, clean_len + 8);
    guint n;

    g_assert_cmpuint (clean_len, <=, max_bytes);
    g_assert_true (g_utf8_validate (clean, clean_len, NULL));
    if (bert) {
      guint max_len = json_object_get_int_member (m, "max_len"), n_content = 0;
      GError *err = NULL;
      MmWordPiece *wp = mm_wordpiece_new (vocab, lowercase, max_len, max_bytes, &err);
      g_assert_no_error (err);
      n = mm_wordpiece_encode (wp, clean, clean_len, ids, &n_content);
      g_assert_cmpuint (n_content + 2, ==, n);
      mm_wordpiece_free (wp);
    } else {
      gsize scratch_size = 4 * clean_len + 16;
      char *scratch = g_malloc (scratch_size);
      n = mm_word_tokenize (
          vocab, lowercase, clean, clean_len, ids, clean_len + 8, scratch, scratch_size);
      g_free (scratch);
    }
    if (n != json_array_get_length (want))
      g_printerr ("%s case %u: %u ids, expected %u\n", (const char *)data, i, n,
          json_array_get_length (want));
    g_assert_cmpuint (n, ==, json_array_get_length (want));
    for (guint j = 0; j < n; j++)
      g_assert_cmpint (ids[j], ==, json_array_get_int_element (want, j));
    g_free (ids);
    g_free (clean);
    g_free (text);
  }
  mm_vocab_free (vocab);
  g_free (words);
}

/* Contexts on one shared model run concurrently and agree with PyTorch. */
typedef struct
{
  MmModel *model;
  JsonObject *m;
  double worst;
} ThreadJob;

static gpointer
thread_encode (gpointer data)
{
  ThreadJob *job = data;
  JsonArray *cases = json_object_get_array_member (job->m, "cases");
  guint dim = mm_model_get_dim (job->model, MM_COMPONENT_TEXT);
  MmTextEncoder *enc = mm_text_encoder_new (job->model, NULL, NULL);
  float *z = g_new (float, dim);

  job->worst = enc ? 0.0 : INFINITY;
  for (guint r = 0; enc && r < 20; r++) {
    for (guint i = 0; i < json_array_get_length (cases); i++) {
      JsonObject *c = json_array_get_object_element (cases, i);
      gsize len;
      char *text;
      if (json_object_has_member (c, "max_text_bytes"))
        continue;
      text = case_text (c, &len);
      if (!mm_text_encoder_encode (enc, text, len, z, NULL, NULL))
        job->worst = INFINITY;
      else
        job->worst =
            MAX (job->worst, scaled_error (z, json_object_get_array_member (c, "embedding"), dim));
      g_free (text);
    }
  }
  g_free (z);
  mm_text_encoder_free (enc);
  return NULL;
}

static void
test_threads (void)
{
  ThreadJob jobs[4];
  GThread *threads[4];
  MmModel *model = open_fixture ("bert-mean.safetensors");

  for (guint t = 0; t < G_N_ELEMENTS (jobs); t++) {
    jobs[t] = (ThreadJob){ model, find_model ("bert-mean.safetensors"), 0.0 };
    threads[t] = g_thread_new ("encode", thread_encode, &jobs[t]);
  }
  for (guint t = 0; t < G_N_ELEMENTS (jobs); t++) {
    g_thread_join (threads[t]);
    g_assert_cmpfloat (jobs[t].worst, <=, 1e-4);
  }
  mm_model_unref (model);
}

/* ---------------------------------------------------------------------- */
/* Load errors */

static void
test_bad_models (void)
{
  JsonArray *bad = json_object_get_array_member (expected, "bad");

  /* the variants are edits of these two, which load */
  mm_model_unref (open_fixture ("bert-tiny.safetensors"));
  mm_model_unref (open_fixture ("wordvec.safetensors"));

  g_assert_cmpuint (json_array_get_length (bad), >=, 10);
  for (guint i = 0; i < json_array_get_length (bad); i++) {
    JsonObject *b = json_array_get_object_element (bad, i);
    char *path = fixture_path (json_object_get_string_member (b, "file"));
    const char *must = json_object_get_string_member (b, "error");
    GError *err = NULL;
    MmModel *model = mm_model_open (path, &err);

    g_assert_null (model);
    g_assert_nonnull (err);
    g_assert_true (err->domain == MM_ERROR);
    g_test_message ("%s: %s", json_object_get_string_member (b, "file"), err->message);
    if (!strstr (err->message, must))
      g_printerr ("error \"%s\" lacks \"%s\"\n", err->message, must);
    g_assert_nonnull (strstr (err->message, must));
    g_error_free (err);
    g_free (path);
  }
}

/* The bytes of text fixture @file with components.text.@key set to @json. */
static GBytes *
mutate_text_config (const char *file, const char *key, const char *json)
{
  char *path = fixture_path (file), *raw;
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
      "text");
  json_object_set_member (cfg, key, json_from_string (json, NULL));
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

/* max_len is capped at 8192 (attention scratch is max_len^2 floats): a file
 * asking for more is refused with an error naming the key and the cap,
 * before the position table is looked at. */
static void
test_max_len_cap (void)
{
  static const char *const values[] = { "10000", "65536", "100000" };

  for (guint i = 0; i < G_N_ELEMENTS (values); i++) {
    GError *err = NULL;
    GBytes *bytes = mutate_text_config ("bert-tiny.safetensors", "max_len", values[i]);
    gsize len;
    const guint8 *data = g_bytes_get_data (bytes, &len);
    MmSafetensors *st = mm_safetensors_open_bytes ("mutated", data, len, &err);
    g_assert_no_error (err);
    MmModel *model = mm_model_new_from_safetensors (st, "mutated", &err);

    g_assert_null (model);
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_test_message ("max_len %s: %s", values[i], err->message);
    g_assert_nonnull (strstr (err->message, "mutated"));
    g_assert_nonnull (strstr (err->message, "max_len"));
    g_assert_nonnull (strstr (err->message, values[i]));
    g_assert_nonnull (strstr (err->message, "8192"));
    g_clear_error (&err);
    mm_safetensors_free (st);
    g_bytes_unref (bytes);
  }
}

static void
test_missing_component (void)
{
  GError *err = NULL;
  char *path = g_build_filename (g_getenv ("MM_FIXTURES"), "tiny-notext.safetensors", NULL);
  MmModel *model = mm_model_open (path, &err);

  g_assert_no_error (err);
  g_assert_null (mm_text_encoder_new (model, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_MISSING_COMPONENT);
  g_clear_error (&err);
  mm_model_unref (model);
  g_free (path);
}

static void
test_bad_input (void)
{
  MmModel *model = open_fixture ("bert-tiny.safetensors");
  MmTextEncoder *enc = new_encoder (model, 1024);
  GError *err = NULL;
  float z[4];
  guint n = 99;

  g_assert_false (mm_text_encoder_encode (enc, "dog", -1, NULL, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  g_assert_false (mm_text_encoder_encode (enc, NULL, 5, z, NULL, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  /* NULL with length 0 is the empty text */
  g_assert_true (mm_text_encoder_encode (enc, NULL, 0, z, &n, &err));
  g_assert_no_error (err);
  g_assert_cmpuint (n, ==, 0);
  mm_text_encoder_free (enc);

  MmContextParams params = mm_context_default_params ();
  params.max_text_bytes = G_MAXSIZE / 2;
  g_assert_null (mm_text_encoder_new (model, &params, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  mm_model_unref (model);
}

/* An explicit length is honoured: "the dog barks" cut at 7 bytes encodes
 * like "the dog", and bytes after an embedded NUL count when len says so
 * (the NUL separates words for wordvec; BERT's cleaning drops it, joining
 * "thedog" into one unknown word, as Hugging Face's BasicTokenizer does). */
static void
test_explicit_length (void)
{
  const char *files[] = { "bert-mean.safetensors", "wordvec.safetensors" };

  for (guint f = 0; f < G_N_ELEMENTS (files); f++) {
    MmModel *model = open_fixture (files[f]);
    guint dim = mm_model_get_dim (model, MM_COMPONENT_TEXT);
    MmTextEncoder *enc = new_encoder (model, 1024);
    float *a = g_new (float, dim), *b = g_new (float, dim);
    guint na, nb;

    g_assert_true (mm_text_encoder_encode (enc, "the dog barks", 7, a, &na, NULL));
    g_assert_true (mm_text_encoder_encode (enc, "the dog", -1, b, &nb, NULL));
    g_assert_cmpuint (na, ==, 2);
    g_assert_cmpuint (nb, ==, 2);
    g_assert_cmpmem (a, dim * sizeof (float), b, dim * sizeof (float));

    g_assert_true (mm_text_encoder_encode (enc, "the\0dog", 7, a, &na, NULL));
    g_assert_cmpuint (na, ==, f == 0 ? 1 : 2);
    g_assert_true (mm_text_encoder_encode (enc, "the\0dog", -1, b, &nb, NULL));
    g_assert_cmpuint (nb, ==, 1);

    g_free (a);
    g_free (b);
    mm_text_encoder_free (enc);
    mm_model_unref (model);
  }
}

/* ---------------------------------------------------------------------- */
/* No allocation in steady state */

static void
count_encode_allocs (const char *file)
{
  MmModel *model = open_fixture (file);
  guint dim = mm_model_get_dim (model, MM_COMPONENT_TEXT);
  MmTextEncoder *enc = new_encoder (model, 4096);
  float *z = g_new (float, dim);
  const char *texts[] = { "The dog barks loudly, really!", "", "caf\xc3\xa9 \xff dog",
    "the dog barks the dog barks the dog barks the dog barks the dog barks" };
  guint n;

  /* warm up: BLAS and GLib may set things up on first use */
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    g_assert_true (mm_text_encoder_encode (enc, texts[i], -1, z, &n, NULL));

  n_allocs = 0;
  counting = 1;
  for (guint r = 0; r < 3; r++)
    for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
      mm_text_encoder_encode (enc, texts[i], -1, z, &n, NULL);
  counting = 0;
  g_test_message ("%s: %d allocations in 12 encodes", file, n_allocs);
  g_assert_cmpint (n_allocs, ==, 0);

  g_free (z);
  mm_text_encoder_free (enc);
  mm_model_unref (model);
}

static void
test_no_alloc (void)
{
  if (!COUNT_ALLOCS) {
    g_test_skip ("malloc is not interposable in this build (sanitizer or not glibc)");
    return;
  }
  /* the counter itself works */
  n_allocs = 0;
  counting = 1;
  g_free (g_malloc (16));
  counting = 0;
  g_assert_cmpint (n_allocs, ==, 1);

  count_encode_allocs ("bert-mean.safetensors");
  count_encode_allocs ("bert-pooler.safetensors");
  count_encode_allocs ("wordvec.safetensors");
}

/* ---------------------------------------------------------------------- */

int
main (int argc, char **argv)
{
  GError *err = NULL;
  const char *fixtures = g_getenv ("MM_FIXTURES");

  g_test_init (&argc, &argv, NULL);
  if (!fixtures) {
    g_printerr ("MM_FIXTURES is not set\n");
    return 1;
  }
  text_dir = g_build_filename (fixtures, "text", NULL);
  char *json_path = g_build_filename (text_dir, "expected.json", NULL);
  expected_parser = json_parser_new ();
  if (!json_parser_load_from_file (expected_parser, json_path, &err)) {
    g_printerr ("%s: %s\n", json_path, err->message);
    return 1;
  }
  expected = json_node_get_object (json_parser_get_root (expected_parser));

  JsonArray *models = json_object_get_array_member (expected, "models");
  for (guint i = 0; i < json_array_get_length (models); i++) {
    const char *file =
        json_object_get_string_member (json_array_get_object_element (models, i), "file");
    char *name = g_strdup_printf ("/text/parity/%s", file);
    g_test_add_data_func (name, file, test_parity);
    g_free (name);
    name = g_strdup_printf ("/text/token-ids/%s", file);
    g_test_add_data_func (name, file, test_token_ids);
    g_free (name);
  }
  g_test_add_func ("/text/bad-models", test_bad_models);
  g_test_add_func ("/text/missing-component", test_missing_component);
  g_test_add_func ("/text/max-len-cap", test_max_len_cap);
  g_test_add_func ("/text/bad-input", test_bad_input);
  g_test_add_func ("/text/explicit-length", test_explicit_length);
  g_test_add_func ("/text/no-alloc", test_no_alloc);
  g_test_add_func ("/text/threads", test_threads);

  int ret = g_test_run ();
  g_object_unref (expected_parser);
  g_free (json_path);
  g_free (text_dir);
  return ret;
}
