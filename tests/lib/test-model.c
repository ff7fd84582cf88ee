/* libmm model loader: hostile files, sharing, thread safety.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each corrupt case is built byte by byte here, so the test states exactly
 * which rule the loader must enforce; each must fail with MM_ERROR and a
 * message that names the file and the problem.
 */
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "mm.h"
#include "mm-private.h"

static char *tmpdir;

/* Writes u64 header length + header + data to a fresh file; returns path. */
static char *
write_model (const char *name, const char *header, gsize header_len_claim, const guint8 *data,
    gsize data_len)
{
  char *path = g_build_filename (tmpdir, name, NULL);
  gsize hl = strlen (header);
  guint64 claim = header_len_claim ? header_len_claim : hl;
  GByteArray *b = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint8 c = (guint8)(claim >> (8 * i));
    g_byte_array_append (b, &c, 1);
  }
  g_byte_array_append (b, (const guint8 *)header, hl);
  if (data_len)
    g_byte_array_append (b, data, data_len);
  g_assert_true (g_file_set_contents (path, (const char *)b->data, b->len, NULL));
  g_byte_array_unref (b);
  return path;
}

/* A valid head-only model: 1 linear layer 3 -> 2, softmax. */
#define HEAD_META                                                                                  \
  "\"__metadata__\":{\"mm\":\"{\\\"version\\\":1,\\\"name\\\":\\\"t\\\",\\\"components\\\":{"      \
  "\\\"head\\\":{\\\"type\\\":\\\"mlp\\\",\\\"kind\\\":\\\"softmax\\\",\\\"layers\\\":1,"          \
  "\\\"labels\\\":[\\\"a\\\",\\\"b\\\"],\\\"dim\\\":2}}}\"}"

static const float head_data[8] = { 1, 0, 0, 0, 1, 0, 0.5f, -0.5f };

typedef struct
{
  const char *name;
  const char *header;
  gsize claim;              /* 0 = true header length */
  gsize data_len;           /* bytes of head_data appended */
  const char *must_contain; /* in the error message */
} CorruptCase;

static const CorruptCase corrupt_cases[] = {
  { "zero-header", "", 0, 0, "impossible" },
  { "not-json", "{not json", 0, 0, "not valid JSON" },
  { "json-array", "[1,2,3]", 0, 0, "not a JSON object" },
  { "header-past-eof", "{}", 4096, 0, "impossible" },
  { "header-2gb", "{}", G_GUINT64_CONSTANT (2147483648), 0, "impossible" },
  { "no-metadata", "{}", 0, 0, "not a libmm model" },
  { "metadata-not-json", "{\"__metadata__\":{\"mm\":\"{oops\"}}", 0, 0, "not valid JSON" },
  { "metadata-not-object", "{\"__metadata__\":{\"mm\":\"[1]\"}}", 0, 0, "not a JSON object" },
  { "version-2", "{\"__metadata__\":{\"mm\":\"{\\\"version\\\":2,\\\"components\\\":{}}\"}}", 0, 0,
      "version 2" },
  { "unknown-component",
      "{\"__metadata__\":{\"mm\":\"{\\\"version\\\":1,\\\"components\\\":{\\\"smell\\\":{}}}\"}}",
      0, 0, "unknown component 'smell'" },
  { "bad-dtype", "{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}," HEAD_META "}",
      0, 32, "dtype 'I64'" },
  { "offset-past-eof",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}," HEAD_META "}", 0, 32,
      "past the end" },
  { "size-mismatch",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}," HEAD_META "}", 0, 32,
      "bytes for 3 elements" },
  { "negative-dim",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}," HEAD_META "}", 0, 32,
      "non-negative" },
  { "overflow-dims",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}"
      "," HEAD_META "}",
      0, 32, "overflows" },
  { "reversed-offsets",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}," HEAD_META "}", 0, 32,
      "begin <= end" },
  { "overlap",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}," HEAD_META "}",
      0, 32, "overlap" },
  { "overlap-behind-empty",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}," HEAD_META "}",
      0, 32, "overlap" },
  { "unsupported-type",
      "{\"__metadata__\":{\"mm\":\"{\\\"version\\\":1,\\\"components\\\":{"
      "\\\"head\\\":{\\\"type\\\":\\\"xgboost\\\"}}}\"}}",
      0, 0, "type 'xgboost' is not supported" },
  { "missing-tensor", "{" HEAD_META "}", 0, 0, "head.layers.0.weight' is missing" },
  { "shape-mismatch",
      "{\"head.layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      "\"head.layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}," HEAD_META
      "}",
      0, 32, "head.layers.0.bias" },
};

static const char *valid_header =
    "{\"head.layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"head.layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}," HEAD_META
    "}";

static void
test_corrupt (gconstpointer data)
{
  const CorruptCase *c = data;
  char *path = write_model (c->name, c->header, c->claim, (const guint8 *)head_data, c->data_len);
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_null (m);
  g_assert_error (err, MM_ERROR, err->code);
  g_test_message ("%s -> %s", c->name, err->message);
  g_assert_nonnull (strstr (err->message, path));
  if (!strstr (err->message, c->must_contain))
    g_error ("case %s: message '%s' lacks '%s'", c->name, err->message, c->must_contain);
  g_error_free (err);
  g_free (path);
}

/* A header claim that fits in the file but exceeds the 100 MB cap (a
 * sparse 101 MB file of zeros): refused by the cap before any parsing
 * (which would otherwise fail later, as invalid JSON). */
static void
test_header_over_cap (void)
{
  char *path = g_build_filename (tmpdir, "header-over-cap", NULL);
  guint64 n = 101u * 1024 * 1024;
  guint8 len_le[8];
  for (int i = 0; i < 8; i++)
    len_le[i] = (guint8)(n >> (8 * i));
  FILE *f = fopen (path, "wb");
  g_assert_nonnull (f);
  g_assert_cmpuint (fwrite (len_le, 1, 8, f), ==, 8);
  g_assert_cmpint (ftruncate (fileno (f), (off_t)(8 + n)), ==, 0);
  fclose (f);
  GError *err = NULL;
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_assert_nonnull (strstr (err->message, "is impossible"));
  g_assert_nonnull (strstr (err->message, "at most 100 MB"));
  g_error_free (err);
  g_unlink (path);
  g_free (path);
}

static void
test_empty_file (void)
{
  char *path = g_build_filename (tmpdir, "empty-file", NULL);
  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  GError *err = NULL;
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_assert_nonnull (strstr (err->message, "too short"));
  g_error_free (err);
  g_free (path);
}

/* json-glib recurses per nesting level: 100,000 levels would overflow the
 * stack, in the header or in the "mm" document.  Both must be refused. */
static void
test_deep_nesting (void)
{
  const int levels = 100000;
  GString *deep = g_string_new (NULL);
  for (int i = 0; i < levels; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < levels; i++)
    g_string_append_c (deep, ']');
  char *in_mm = g_strdup_printf ("{\"__metadata__\":{\"mm\":\"%s\"}}", deep->str);
  const char *headers[2] = { deep->str, in_mm };
  for (int i = 0; i < 2; i++) {
    char *path = write_model ("deep", headers[i], 0, NULL, 0);
    GError *err = NULL;
    g_assert_null (mm_model_open (path, &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_assert_nonnull (strstr (err->message, "nested more than"));
    g_error_free (err);
    g_free (path);
  }
  g_free (in_mm);
  g_string_free (deep, TRUE);
}

static void
test_missing_file (void)
{
  GError *err = NULL;
  g_assert_null (mm_model_open ("/nonexistent/model.safetensors", &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_IO);
  g_assert_nonnull (strstr (err->message, "/nonexistent/model.safetensors"));
  g_error_free (err);
}

static void
test_valid_and_shared (void)
{
  char *path = write_model ("valid", valid_header, 0, (const guint8 *)head_data, 32);
  GError *err = NULL;
  MmModel *a = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_nonnull (a);
  g_assert_cmpstr (mm_model_get_name (a), ==, "t");
  g_assert_true (mm_model_has_component (a, MM_COMPONENT_HEAD));
  g_assert_false (mm_model_has_component (a, MM_COMPONENT_TEXT));
  g_assert_cmpuint (mm_model_get_dim (a, MM_COMPONENT_HEAD), ==, 2);
  g_assert_cmpuint (mm_model_get_n_outputs (a), ==, 2);
  g_assert_cmpstr (mm_model_get_label (a, 1), ==, "b");
  g_assert_null (mm_model_get_label (a, 2));

  /* same file through another spelling of the path: one mapping */
  char *other = g_strdup_printf ("%s/./valid", tmpdir);
  MmModel *b = mm_model_open (other, &err);
  g_assert_no_error (err);
  g_assert_true (a == b);
  mm_model_unref (b);

  /* the head runs on the mapped weights */
  MmContextParams p = mm_context_default_params ();
  MmHead *h = mm_head_new (a, &p, &err);
  g_assert_no_error (err);
  float x[3] = { 1, 2, 3 }, y[2];
  g_assert_true (mm_head_run (h, x, y, &err));
  /* logits: 1+0.5 = 1.5, 2-0.5 = 1.5 -> softmax 0.5/0.5 */
  g_assert_cmpfloat_with_epsilon (y[0], 0.5, 1e-6);
  g_assert_cmpfloat_with_epsilon (y[1], 0.5, 1e-6);
  mm_head_free (h);

  /* components the model lacks are a clear error, not a crash */
  MmTextEncoder *t = mm_text_encoder_new (a, &p, &err);
  g_assert_null (t);
  g_assert_error (err, MM_ERROR, MM_ERROR_MISSING_COMPONENT);
  g_clear_error (&err);
  mm_model_unref (a);

  /* after the last unref, a new open maps it anew */
  MmModel *c = mm_model_open (path, &err);
  g_assert_nonnull (c);

  /* a file replaced on disk while a model is open is a new model, not the
   * stale mapping (g_file_set_contents writes a new inode) */
  char *header = g_strdup (valid_header);
  char *name_at = strstr (header, "\\\"t\\\"");
  g_assert_nonnull (name_at);
  name_at[2] = 'u'; /* name "t" -> "u" */
  g_free (write_model ("valid", header, 0, (const guint8 *)head_data, 32));
  MmModel *d = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_true (d != c);
  g_assert_cmpstr (mm_model_get_name (d), ==, "u");
  g_assert_cmpstr (mm_model_get_name (c), ==, "t");
  mm_model_unref (d);
  mm_model_unref (c);
  g_free (header);
  g_free (other);
  g_free (path);
}

static char *thread_path;

static gpointer
open_close_loop (gpointer data)
{
  for (int i = 0; i < 200; i++) {
    MmModel *m = mm_model_open (thread_path, NULL);
    g_assert_nonnull (m);
    g_assert_cmpuint (mm_model_get_n_outputs (m), ==, 2);
    mm_model_unref (m);
  }
  return NULL;
}

static void
test_threads (void)
{
  thread_path = write_model ("threads", valid_header, 0, (const guint8 *)head_data, 32);
  GThread *t[8];
  for (int i = 0; i < 8; i++)
    t[i] = g_thread_new ("open", open_close_loop, NULL);
  for (int i = 0; i < 8; i++)
    g_thread_join (t[i]);
  g_free (thread_path);
}

/* F16 and BF16 tensors are converted at load. */
static void
test_half_dtypes (void)
{
  /* weight (2,3) as F16: 1,0,0 / 0,1,0 ; bias as BF16: 0.5, -0.5 */
  const guint16 w16[6] = { 0x3c00, 0, 0, 0, 0x3c00, 0 };
  const guint16 b16[2] = { 0x3f00, 0xbf00 };
  guint8 data[16];
  memcpy (data, w16, 12);
  memcpy (data + 12, b16, 4);
  const char *hdr =
      "{\"head.layers.0.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
      "\"head.layers.0.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}"
      "," HEAD_META "}";
  char *path = write_model ("half", hdr, 0, data, 16);
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  MmContextParams p = mm_context_default_params ();
  MmHead *h = mm_head_new (m, &p, &err);
  float x[3] = { 1, 2, 3 }, y[2];
  g_assert_true (mm_head_run (h, x, y, &err));
  g_assert_cmpfloat_with_epsilon (y[0], 0.5, 1e-6);
  mm_head_free (h);
  mm_model_unref (m);
  g_free (path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("mm-test-model-XXXXXX", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (corrupt_cases); i++) {
    char *name = g_strdup_printf ("/model/corrupt/%s", corrupt_cases[i].name);
    g_test_add_data_func (name, &corrupt_cases[i], test_corrupt);
    g_free (name);
  }
  g_test_add_func ("/model/missing-file", test_missing_file);
  g_test_add_func ("/model/empty-file", test_empty_file);
  g_test_add_func ("/model/header-over-cap", test_header_over_cap);
  g_test_add_func ("/model/deep-nesting", test_deep_nesting);
  g_test_add_func ("/model/valid-and-shared", test_valid_and_shared);
  g_test_add_func ("/model/threads", test_threads);
  g_test_add_func ("/model/half-dtypes", test_half_dtypes);
  int ret = g_test_run ();
  /* leave no files behind */
  GDir *d = g_dir_open (tmpdir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name (d))) {
    char *p = g_build_filename (tmpdir, n, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (tmpdir);
  return ret;
}
