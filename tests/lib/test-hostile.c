/* libmm against hostile model files: JSON that json-glib reads differently
 * from a naive bracket counter (issue 14, finding 1).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * json-glib's parser recurses once per nesting level, so a header that hides
 * 100,000 '[' from the depth check overflows an 8 MB stack (SIGSEGV).  Each
 * case hides the brackets a different way json-glib 1.6 accepts; each is
 * tried as the safetensors header and as the "mm" document, and must be
 * refused with "nested more than", not crash.
 */
#include <string.h>
#include <glib/gstdio.h>

#include "mm.h"
#include "mm-private.h"

#define LEVELS 100000

static char *tmpdir;

static char *
write_header (const char *name, const GString *header)
{
  char *path = g_build_filename (tmpdir, name, NULL);
  GByteArray *b = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint8 c = (guint8)((guint64)header->len >> (8 * i));
    g_byte_array_append (b, &c, 1);
  }
  g_byte_array_append (b, (const guint8 *)header->str, header->len);
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

typedef struct
{
  const char *name;
  const char *prefix; /* JSON before the brackets, as json-glib reads it */
  const char *suffix;
} HidingCase;

static const HidingCase hiding_cases[] = {
  /* the 150 KB file: a slash-star comment holding a quote */
  { "comment-quote", "{\"a\": /* \" */ ", "}" },
  /* json-glib 1.6 reads '/' to the next '/' as a comment */
  { "slash-comment", "{\"a\": / \" / ", "}" },
  /* single-quoted strings, no escapes inside */
  { "single-quote", "{'\"': ", "}" },
  { "single-quote-backslash", "{'\\': ", "}" },
  /* a plain escaped quote still counts as inside the string */
  { "plain", "{\"a\\\"\": ", "}" },
};

/* JSON text -> the same text as a JSON string literal's contents. */
static GString *
json_escape (const GString *s)
{
  GString *e = g_string_sized_new (s->len + 16);
  for (gsize i = 0; i < s->len; i++) {
    char c = s->str[i];
    if (c == '"' || c == '\\')
      g_string_append_c (e, '\\');
    if (c == '\n')
      g_string_append (e, "\\n");
    else
      g_string_append_c (e, c);
  }
  return e;
}

static void
expect_nested_error (const GString *header)
{
  char *path = write_header ("hostile", header);
  GError *err = NULL;
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  if (!strstr (err->message, "nested more than"))
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
  expect_nested_error (doc); /* as the safetensors header */

  GString *esc = json_escape (doc);
  GString *header = g_string_new ("{\"__metadata__\":{\"mm\":\"");
  g_string_append_len (header, esc->str, esc->len);
  g_string_append (header, "\"}}");
  expect_nested_error (header); /* as the "mm" document */
  g_string_free (header, TRUE);
  g_string_free (esc, TRUE);
  g_string_free (doc, TRUE);
}

/* Brackets inside strings are not counted, so a real model whose
 * vocabulary holds "[" and "{" tokens still loads.  (Brackets inside comments
 * and single-quoted strings do count: the check also reads the text as strict
 * JSON, in case another json-glib reads it so.) */
static void
test_hidden_brackets_accepted (void)
{
  GString *h = g_string_new ("{\"__metadata__\": {\"s\": \"");
  for (int i = 0; i < 1000; i++)
    g_string_append (h, "[{");
  g_string_append (
      h, "\", \"t\": \"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\",");
  g_string_append (h, " \"mm\": \"{\\\"version\\\": 1, \\\"components\\\": {}}\"}}");
  char *path = write_header ("brackets-in-strings", h);
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  if (!m)
    g_error ("%s", err->message);
  mm_model_unref (m);
  g_unlink (path);
  g_free (path);
  g_string_free (h, TRUE);
}

/* A \u surrogate in json-glib 1.6 swallows the byte after it, and "\ud8"
 * is already one (its digits are the high ones): the brackets after such
 * strings are real in every reading. */
static void
test_surrogate_escapes (void)
{
  const char *prefixes[] = { "[\"\\ud800x\" ", "[\"\\ud8x\" ", "[\"\\ud800\\x\" " };
  for (guint i = 0; i < G_N_ELEMENTS (prefixes); i++) {
    GString *s = deep (prefixes[i], "]");
    g_assert_false (mm_json_check_depth (s->str, s->len, "t", "x", NULL));
    g_string_free (s, TRUE);
  }
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
  g_test_add_func ("/hostile/json/hidden-brackets-accepted", test_hidden_brackets_accepted);
  g_test_add_func ("/hostile/json/surrogate-escapes", test_surrogate_escapes);
  int ret = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return ret;
}
