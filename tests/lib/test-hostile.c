/* libmm against hostile model files (issue 14): JSON that would crash
 * json-glib, paths that are not files.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * json-glib's parser recurses once per nesting level, so 100,000 '[' reaching
 * it overflow an 8 MB stack (SIGSEGV).  json-glib 1.6 also reads comments,
 * single-quoted strings and escapes that strict JSON does not have, which
 * hide brackets from a naive counter.  Each hiding trick is tried as the
 * safetensors header and as the "mm" document, and must be a GError.  Every
 * model in the repository must still load.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "mm.h"
#include "mm-private.h"

#define LEVELS 100000

static char *tmpdir;

static char *
write_file (const char *name, const GString *header, const guint8 *data, gsize data_len)
{
  char *path = g_build_filename (tmpdir, name, NULL);
  GByteArray *b = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint8 c = (guint8)((guint64)header->len >> (8 * i));
    g_byte_array_append (b, &c, 1);
  }
  g_byte_array_append (b, (const guint8 *)header->str, header->len);
  if (data_len)
    g_byte_array_append (b, data, data_len);
  g_assert_true (g_file_set_contents (path, (const char *)b->data, b->len, NULL));
  g_byte_array_unref (b);
  return path;
}

/* prefix + LEVELS '[' + LEVELS ']' + suffix */
static GString *
deep (const char *prefix, const char *suffix)
{
  GString *s = g_string_new (prefix);
  for (int i = 0; i < LEVELS; i++)
    g_string_append_c (s, '[');
  for (int i = 0; i < LEVELS; i++)
    g_string_append_c (s, ']');
  g_string_append (s, suffix);
  return s;
}

/* JSON text -> the contents of a JSON string literal holding it. */
static GString *
json_escape (const char *s, gsize len)
{
  GString *e = g_string_sized_new (len + 16);
  for (gsize i = 0; i < len; i++) {
    char c = s[i];
    if (c == '"' || c == '\\')
      g_string_append_c (e, '\\');
    if (c == '\n')
      g_string_append (e, "\\n");
    else
      g_string_append_c (e, c);
  }
  return e;
}

/* {"__metadata__": {"mm": "<doc as a string>"}} */
static GString *
header_with_mm (const char *doc, gsize len)
{
  GString *esc = json_escape (doc, len);
  GString *h = g_string_new ("{\"__metadata__\":{\"mm\":\"");
  g_string_append_len (h, esc->str, esc->len);
  g_string_append (h, "\"}}");
  g_string_free (esc, TRUE);
  return h;
}

typedef struct
{
  const char *name;
  const char *prefix; /* JSON before the brackets */
  const char *suffix;
} HidingCase;

static const HidingCase hiding_cases[] = {
  /* no hiding at all */
  { "plain", "{\"a\": ", "}" },
  /* the 150 KB file: a slash-star comment holding a quote */
  { "comment-quote", "{\"a\": /* \" */ ", "}" },
  /* json-glib 1.6 reads '/' to the next '/' as a comment */
  { "slash-comment", "{\"a\": / \" / ", "}" },
  { "slash-slash-comment", "{\"a\": // \"\n ", "}" },
  /* single-quoted strings, no escapes inside */
  { "single-quote", "{'\"': ", "}" },
  { "single-quote-backslash", "{'\\': ", "}" },
  /* an escaped quote and an escaped backslash before the brackets */
  { "escaped-quote", "{\"a\\\"\": ", "}" },
  { "escaped-backslash", "{\"a\\\\\": ", "}" },
  /* json-glib 1.6 takes the two bytes after a high surrogate escape as the
   * start of its pair: the closing quote is swallowed, and the brackets that
   * strict JSON reads inside the next string are structure to json-glib */
  { "lone-surrogate", "[\"\\ud800\",\",", "\"]" },
  { "lone-low-surrogate", "[\"\\udc00\",\",", "\"]" },
  /* json-glib's octal escape */
  { "octal-escape", "[\"\\0\", ", "]" },
};

static void
expect_refused (const GString *header, const char *must_contain)
{
  char *path = write_file ("hostile", header, NULL, 0);
  GError *err = NULL;
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_test_message ("%s", err->message);
  if (must_contain && !strstr (err->message, must_contain))
    g_error ("unexpected error: %s", err->message);
  g_assert_nonnull (strstr (err->message, path));
  g_error_free (err);
  g_unlink (path);
  g_free (path);
}

static void
test_hidden_nesting (gconstpointer data)
{
  const HidingCase *c = data;
  GString *doc = deep (c->prefix, c->suffix);
  expect_refused (doc, "header is");
  GString *header = header_with_mm (doc->str, doc->len);
  expect_refused (header, "__metadata__ \"mm\" is");
  g_string_free (header, TRUE);
  g_string_free (doc, TRUE);
}

/* 64 levels pass, 65 do not, in both documents. */
static void
test_depth_limit (void)
{
  for (int levels = 63; levels <= 66; levels++) {
    GString *s = g_string_new (NULL);
    for (int i = 0; i < levels; i++)
      g_string_append_c (s, '[');
    for (int i = 0; i < levels; i++)
      g_string_append_c (s, ']');
    GError *err = NULL;
    gboolean ok = mm_json_check_depth (s->str, s->len, "t", "x", NULL, &err);
    g_assert_true (ok == (levels <= MM_JSON_MAX_DEPTH));
    if (!ok) {
      g_assert_nonnull (strstr (err->message, "nested more than 64 levels"));
      g_error_free (err);
    }
    g_string_free (s, TRUE);
  }
}

/* What strict JSON allows must pass, whatever it holds in its strings:
 * a real vocabulary has "[", "{", "/", quotes and backslashes as tokens. */
static void
test_strict_json_accepted (void)
{
  static const char *const ok[] = {
    "{}",
    "[]",
    " {\"a\" : [ 1 , -2.5e+3 , 0 , 0.125E-2 , true , false , null , \"\" ] } ",
    "{\"layer/0/conv\": \"/*\", \"b/\": \"//\", \"c\": \"'\"}",
    "{\"a\\\\\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
    "{\"a\": \"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
    "[\"\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t\", \"caf\xc3\xa9\"]",
    "{\"a\": 1}\n\r\t  \0\0\0garbage after a NUL is never read",
  };
  for (guint i = 0; i < G_N_ELEMENTS (ok); i++) {
    GError *err = NULL;
    gsize len = strlen (ok[i]);
    if (i == G_N_ELEMENTS (ok) - 1)
      len += 3 + strlen (ok[i] + len + 3);
    if (!mm_json_check_depth (ok[i], len, "t", "x", NULL, &err))
      g_error ("case %u: %s", i, err->message);
  }
}

static void
test_not_strict_refused (void)
{
  static const char *const bad[] = {
    "{\"a\": 1,}",
    "[1,]",
    "{\"a\" 1}",
    "{a: 1}",
    "[01]",
    "[1.]",
    "[.5]",
    "[-]",
    "[1e]",
    "[0x10]",
    "[NaN]",
    "[Infinity]",
    "[tru]",
    "[\"\\x\"]",
    "[\"\\u12\"]",
    "[\"\\ud800\\u0041\"]",
    "[\"a\tb\"]",
    "[\"abc",
    "[1] [2]",
    "[1}",
    "{\"a\": 1]",
    "[1 /* c */]",
    "['a']",
    "",
    "   ",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    GError *err = NULL;
    if (mm_json_check_depth (bad[i], strlen (bad[i]), "t", "x", NULL, &err))
      g_error ("accepted: %s", bad[i]);
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_assert_nonnull (strstr (err->message, "not valid JSON"));
    g_error_free (err);
  }
}

static void
collect_models (const char *dir, GPtrArray *out)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (!d)
    return;
  const char *name;
  while ((name = g_dir_read_name (d))) {
    char *path = g_build_filename (dir, name, NULL);
    if (g_file_test (path, G_FILE_TEST_IS_DIR))
      collect_models (path, out);
    else if (g_str_has_suffix (name, ".safetensors"))
      g_ptr_array_add (out, g_strdup (path));
    g_free (path);
  }
  g_dir_close (d);
}

/* Every model file in the repository (models/, tests/fixtures/): its header
 * passes the JSON check, and it loads within the default budget, but for
 * the fixtures made to fail (bad-*, corrupt*), which fail for another
 * reason than their JSON. */
static void
test_repository_models_pass (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  collect_models (fixtures, paths);
  char *models = g_build_filename (fixtures, "..", "..", "models", NULL);
  collect_models (models, paths);
  g_free (models);
  g_assert_cmpuint (paths->len, >, 10);
  guint loaded = 0;
  for (guint i = 0; i < paths->len; i++) {
    const char *path = paths->pdata[i];
    char *bytes = NULL;
    gsize len = 0;
    g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
    guint64 n = 0;
    for (int k = 7; len >= 8 && k >= 0; k--)
      n = (n << 8) | (guint8)bytes[k];
    GError *err = NULL;
    if (len >= 8 && n <= len - 8 && g_utf8_validate (bytes + 8, (gssize)n, NULL)) {
      if (!mm_json_check_depth (bytes + 8, n, path, "header", NULL, &err))
        g_error ("%s", err->message);
    }
    g_free (bytes);
    MmModel *m = mm_model_open (path, &err);
    if (m) {
      loaded++;
      mm_model_unref (m);
    } else {
      g_test_message ("%s: %s", path, err->message);
      /* only the fixtures made to fail may fail, and never for their JSON */
      char *base = g_path_get_basename (path);
      gboolean made_to_fail = g_str_has_prefix (base, "bad-") || g_str_has_prefix (base, "corrupt");
      g_free (base);
      if (!made_to_fail || strstr (err->message, "not valid JSON")
          || strstr (err->message, "nested more than"))
        g_error ("%s", err->message);
      g_error_free (err);
    }
  }
  g_test_message ("%u of %u model files load", loaded, paths->len);
  g_ptr_array_unref (paths);
}

/* ---- the model path must be a regular file ---- */

static void
on_alarm (int sig)
{
  (void)sig;
  static const char msg[] = "Bail out! opening a FIFO as a model blocked\n";
  if (write (1, msg, sizeof msg - 1) < 0)
    _exit (2);
  _exit (1);
}

static void
test_not_regular_file (void)
{
  char *fifo = g_build_filename (tmpdir, "model.fifo", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  /* without the check, open() waits for a writer forever */
  signal (SIGALRM, on_alarm);
  alarm (10);
  const char *paths[] = { fifo, "/dev/null", tmpdir };
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++) {
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time ();
    g_assert_null (mm_model_open (paths[i], &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_IO);
    g_test_message ("%s", err->message);
    g_assert_nonnull (strstr (err->message, "not a regular file"));
    g_clear_error (&err);
    g_assert_cmpint (g_get_monotonic_time () - t0, <, G_USEC_PER_SEC);
    /* the loader below mm_model_open checks what it opened, too (the path
     * may have been replaced by a FIFO after the first check) */
    g_assert_null (mm_safetensors_open (paths[i], &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_IO);
    g_assert_nonnull (strstr (err->message, "not a regular file"));
    g_error_free (err);
  }
  alarm (0);
  g_unlink (fifo);
  g_free (fifo);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("mm-hostile-XXXXXX", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (hiding_cases); i++) {
    char *name = g_strdup_printf ("/hostile/json/%s", hiding_cases[i].name);
    g_test_add_data_func (name, &hiding_cases[i], test_hidden_nesting);
    g_free (name);
  }
  g_test_add_func ("/hostile/json/depth-limit", test_depth_limit);
  g_test_add_func ("/hostile/json/strict-accepted", test_strict_json_accepted);
  g_test_add_func ("/hostile/json/not-strict-refused", test_not_strict_refused);
  g_test_add_func ("/hostile/json/repository-models", test_repository_models_pass);
  g_test_add_func ("/hostile/path/not-regular-file", test_not_regular_file);
  int ret = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return ret;
}
