/* libmm preprocessing tests: vocabulary, UTF-8 sanitising, tokenizers,
 * image resize/normalise and log-mel against reference outputs.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The fixtures in tests/fixtures/preprocess/ come from
 * tests/lib/ref_preprocess.py (a Python transcription of BERT's
 * tokenization.py, torch.nn.functional.interpolate, torch.stft and
 * torchaudio's melscale_fbanks); MM_FIXTURES names tests/fixtures.
 */
#include <math.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "mm.h"
#include "ops.h"
#include "preprocess.h"

/* ---------------------------------------------------------------- helpers */

static char *
fixture_path (const char *name)
{
  const char *dir = g_getenv ("MM_FIXTURES");
  return g_build_filename (dir ? dir : "tests/fixtures", "preprocess", name, NULL);
}

static JsonNode *
load_json (const char *name)
{
  char *path = fixture_path (name);
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  JsonNode *root = json_node_copy (json_parser_get_root (parser));
  g_object_unref (parser);
  g_free (path);
  return root;
}

static float *
load_f32 (const char *name, gsize *n)
{
  char *path = fixture_path (name), *bytes = NULL;
  gsize len = 0;
  GError *error = NULL;
  g_file_get_contents (path, &bytes, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len % 4, ==, 0);
  *n = len / 4;
  float *v = g_new (float, *n);
  for (gsize i = 0; i < *n; i++) {
    guint32 u = GUINT32_FROM_LE (((guint32 *) bytes)[i]);
    memcpy (&v[i], &u, 4);
  }
  g_free (bytes);
  g_free (path);
  return v;
}

static guint8 *
hex_decode (const char *hex, gsize *len)
{
  gsize n = strlen (hex) / 2;
  guint8 *out = g_malloc (n + 1);
  for (gsize i = 0; i < n; i++)
    out[i] = (g_ascii_xdigit_value (hex[2 * i]) << 4) | g_ascii_xdigit_value (hex[2 * i + 1]);
  out[n] = 0;
  *len = n;
  return out;
}

/* strings of a JSON array; the array owns them */
static const char **
string_array (JsonArray *a, guint *n)
{
  *n = json_array_get_length (a);
  const char **w = g_new (const char *, *n);
  for (guint i = 0; i < *n; i++)
    w[i] = json_array_get_string_element (a, i);
  return w;
}

static void
assert_ids (const gint32 *got, guint n_got, JsonArray *want, const char *what)
{
  guint n = json_array_get_length (want);
  if (n_got != n)
    g_error ("%s: %u ids, expected %u", what, n_got, n);
  for (guint i = 0; i < n; i++)
    if (got[i] != json_array_get_int_element (want, i))
      g_error ("%s: id %u is %d, expected %d", what, i, got[i],
          (int) json_array_get_int_element (want, i));
}

/* ---------------------------------------------------------------- vocab */

static void
test_vocab (void)
{
  static const char *const words[] = { "a", "bc", "bc", "", "##x", "héllo", NULL, "z" };
  MmVocab *v = mm_vocab_new (words, G_N_ELEMENTS (words));
  g_assert_cmpuint (mm_vocab_size (v), ==, G_N_ELEMENTS (words));
  g_assert_cmpint (mm_vocab_lookup (v, "a", 1), ==, 0);
  g_assert_cmpint (mm_vocab_lookup (v, "bc", 2), ==, 1);      /* first of duplicates */
  g_assert_cmpint (mm_vocab_lookup (v, "", 0), ==, 3);
  g_assert_cmpint (mm_vocab_lookup (v, "##x", 3), ==, 4);
  g_assert_cmpint (mm_vocab_lookup (v, "héllo", strlen ("héllo")), ==, 5);
  g_assert_cmpint (mm_vocab_lookup (v, "z", 1), ==, 7);
  /* lookup by (ptr, len) inside a longer string */
  g_assert_cmpint (mm_vocab_lookup (v, "abcd", 1), ==, 0);
  g_assert_cmpint (mm_vocab_lookup (v, "xbcx" + 1, 2), ==, 1);
  g_assert_cmpint (mm_vocab_lookup (v, "ab", 2), ==, -1);
  g_assert_cmpint (mm_vocab_lookup (v, "b", 1), ==, -1);
  g_assert_cmpint (mm_vocab_lookup (v, "a\0", 2), ==, -1);
  g_assert_cmpint (mm_vocab_lookup (NULL, "a", 1), ==, -1);
  mm_vocab_free (v);

  /* a large vocabulary: every word finds its own id */
  guint n = 50000;
  char **big = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    big[i] = g_strdup_printf ("w%u", i);
  v = mm_vocab_new ((const char *const *) big, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (mm_vocab_lookup (v, big[i], strlen (big[i])), ==, i);
  g_assert_cmpint (mm_vocab_lookup (v, "w50000", 6), ==, -1);
  mm_vocab_free (v);
  g_strfreev (big);

  v = mm_vocab_new (NULL, 0);
  g_assert_cmpint (mm_vocab_lookup (v, "a", 1), ==, -1);
  mm_vocab_free (v);
}

/* ---------------------------------------------------------------- sanitize */

static void
test_sanitize (void)
{
  JsonNode *root = load_json ("tokenizer.json");
  JsonArray *cases = json_object_get_array_member (json_node_get_object (root), "sanitize");
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    gsize in_len, want_len;
    guint8 *in = hex_decode (json_object_get_string_member (c, "in_hex"), &in_len);
    guint8 *want = hex_decode (json_object_get_string_member (c, "out_hex"), &want_len);
    gsize cap = json_object_get_int_member (c, "cap");
    char *out = g_malloc (cap + 8);
    memset (out, 'Z', cap + 8);
    gsize n = mm_utf8_sanitize (out, cap, (const char *) in, in_len);
    g_assert_cmpmem (out, n, want, want_len);
    g_assert_cmpint (out[n], ==, 0);
    g_assert_cmpint (out[cap], ==, 'Z');        /* nothing written past cap */
    g_assert_true (g_utf8_validate (out, n, NULL));
    g_free (out);
    g_free (in);
    g_free (want);
  }
  json_node_unref (root);

  /* never reads past len: the byte after a truncated sequence would complete it */
  char out[16];
  gsize n = mm_utf8_sanitize (out, sizeof out, "ab\xc3\xa9", 3);
  g_assert_cmpstr (out, ==, "ab\xef\xbf\xbd");
  g_assert_cmpuint (n, ==, 5);
  g_assert_cmpuint (mm_utf8_sanitize (out, 0, "ab", 2), ==, 0);
  g_assert_cmpuint (mm_utf8_sanitize (out, sizeof out, NULL, 5), ==, 0);
  g_assert_cmpstr (out, ==, "");

  /* random bytes: output always valid UTF-8, within 3 * len + 1 */
  GRand *rand = g_rand_new_with_seed (7);
  for (int round = 0; round < 2000; round++) {
    guint8 in[64];
    gsize len = g_rand_int_range (rand, 0, sizeof in);
    for (gsize i = 0; i < len; i++)
      in[i] = g_rand_int_range (rand, 0, 256);
    char big[3 * 64 + 1];
    n = mm_utf8_sanitize (big, sizeof big, (const char *) in, len);
    g_assert_cmpuint (n, <=, 3 * len);
    g_assert_true (g_utf8_validate (big, n, NULL));
  }
  g_rand_free (rand);
}

/* ---------------------------------------------------------------- WordPiece */

static void
test_wordpiece (void)
{
  JsonNode *root = load_json ("tokenizer.json");
  JsonObject *doc = json_node_get_object (root);
  guint n_words;
  const char **words = string_array (json_object_get_array_member (doc, "bert_vocab"),
      &n_words);
  MmVocab *v = mm_vocab_new (words, n_words);
  JsonArray *cases = json_object_get_array_member (doc, "wordpiece");
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *name = json_object_get_string_member (c, "name");
    gsize unit_len;
    guint8 *unit = hex_decode (json_object_get_string_member (c, "text_hex"), &unit_len);
    guint repeat = json_object_get_int_member (c, "repeat");
    gsize len = unit_len * repeat;
    /* no NUL terminator, and a byte after the text that must not be read */
    guint8 *text = g_malloc (len + 1);
    for (guint r = 0; r < repeat; r++)
      memcpy (text + r * unit_len, unit, unit_len);
    text[len] = 'q';
    guint max_len = json_object_get_int_member (c, "max_len");
    GError *error = NULL;
    MmWordPiece *wp = mm_wordpiece_new (v, json_object_get_boolean_member (c, "lowercase"),
        max_len, json_object_get_int_member (c, "max_text_bytes"), &error);
    g_assert_no_error (error);
    gint32 *ids = g_new (gint32, max_len + 1);
    ids[max_len] = -12345;
    guint n_content = 999;
    guint n = mm_wordpiece_encode (wp, (const char *) text, len, ids, &n_content);
    char *what = g_strdup_printf ("wordpiece case %s", name);
    assert_ids (ids, n, json_object_get_array_member (c, "ids"), what);
    g_assert_cmpuint (n_content, ==, json_object_get_int_member (c, "n_content"));
    g_assert_cmpint (ids[max_len], ==, -12345);
    /* encoding twice gives the same result (no state left behind) */
    n = mm_wordpiece_encode (wp, (const char *) text, len, ids, NULL);
    assert_ids (ids, n, json_object_get_array_member (c, "ids"), what);
    g_free (what);
    g_free (ids);
    mm_wordpiece_free (wp);
    g_free (text);
    g_free (unit);
  }
  mm_vocab_free (v);
  g_free (words);
  json_node_unref (root);
}

static void
test_wordpiece_errors (void)
{
  static const char *const no_cls[] = { "[UNK]", "[SEP]", "a" };
  static const char *const ok[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "##b" };
  GError *error = NULL;
  MmVocab *v = mm_vocab_new (no_cls, G_N_ELEMENTS (no_cls));
  g_assert_null (mm_wordpiece_new (v, TRUE, 16, 100, &error));
  g_assert_error (error, MM_ERROR, MM_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "[CLS]"));
  g_clear_error (&error);
  mm_vocab_free (v);

  v = mm_vocab_new (ok, G_N_ELEMENTS (ok));
  g_assert_null (mm_wordpiece_new (v, TRUE, 1, 100, &error));
  g_assert_error (error, MM_ERROR, MM_ERROR_FORMAT);
  g_clear_error (&error);
  g_assert_null (mm_wordpiece_new (NULL, TRUE, 16, 100, &error));
  g_clear_error (&error);

  MmWordPiece *wp = mm_wordpiece_new (v, TRUE, 8, 0, &error);
  g_assert_no_error (error);
  gint32 ids[8];
  guint n_content;
  /* max_text_bytes 0: every text is empty */
  g_assert_cmpuint (mm_wordpiece_encode (wp, "ab ab", 5, ids, &n_content), ==, 2);
  g_assert_cmpint (ids[0], ==, 2);
  g_assert_cmpint (ids[1], ==, 3);
  g_assert_cmpuint (n_content, ==, 0);
  g_assert_cmpuint (mm_wordpiece_encode (wp, NULL, 5, ids, &n_content), ==, 2);
  g_assert_cmpuint (mm_wordpiece_encode (wp, "ab", 2, NULL, &n_content), ==, 0);
  mm_wordpiece_free (wp);

  /* reads only len bytes: "ab" of "abb" is a, ##b */
  wp = mm_wordpiece_new (v, TRUE, 8, 100, &error);
  g_assert_cmpuint (mm_wordpiece_encode (wp, "abb", 2, ids, &n_content), ==, 4);
  g_assert_cmpint (ids[1], ==, 4);
  g_assert_cmpint (ids[2], ==, 5);
  g_assert_cmpuint (mm_wordpiece_encode (wp, "abb", 3, ids, &n_content), ==, 5);
  mm_wordpiece_free (wp);
  mm_vocab_free (v);
}

/* random bytes must never crash nor break the [CLS] ... [SEP] frame */
static void
test_wordpiece_fuzz (void)
{
  static const char *const words[] = { "[UNK]", "[CLS]", "[SEP]", "a", "##a", "é", "中" };
  MmVocab *v = mm_vocab_new (words, G_N_ELEMENTS (words));
  MmWordPiece *wp = mm_wordpiece_new (v, TRUE, 16, 200, NULL);
  MmWordPiece *wpc = mm_wordpiece_new (v, FALSE, 16, 200, NULL);
  GRand *rand = g_rand_new_with_seed (11);
  for (int round = 0; round < 3000; round++) {
    guint8 in[300];
    gsize len = g_rand_int_range (rand, 0, sizeof in);
    for (gsize i = 0; i < len; i++)
      in[i] = round % 2 ? g_rand_int_range (rand, 0, 256) : "a\xc3\xa9 \xe4\xb8\xad\x80!"
          [g_rand_int_range (rand, 0, 10)];
    gint32 ids[17];
    guint n_content;
    guint n = mm_wordpiece_encode (round % 3 ? wp : wpc, (const char *) in, len, ids,
        &n_content);
    g_assert_cmpuint (n, >=, 2);
    g_assert_cmpuint (n, <=, 16);
    g_assert_cmpuint (n_content, ==, n - 2);
    g_assert_cmpint (ids[0], ==, 1);
    g_assert_cmpint (ids[n - 1], ==, 2);
    for (guint i = 1; i + 1 < n; i++)
      g_assert_true (ids[i] == 0 || (ids[i] >= 3 && ids[i] < 7));
  }
  g_rand_free (rand);
  mm_wordpiece_free (wp);
  mm_wordpiece_free (wpc);
  mm_vocab_free (v);
}

/* ---------------------------------------------------------------- word tokenizer */

static void
test_word_tokenize (void)
{
  JsonNode *root = load_json ("tokenizer.json");
  JsonObject *doc = json_node_get_object (root);
  guint n_words;
  const char **words = string_array (json_object_get_array_member (doc, "word_vocab"),
      &n_words);
  MmVocab *v = mm_vocab_new (words, n_words);
  JsonArray *cases = json_object_get_array_member (doc, "word");
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    gsize len;
    guint8 *text = hex_decode (json_object_get_string_member (c, "text_hex"), &len);
    guint max_ids = json_object_get_int_member (c, "max_ids");
    gint32 *ids = g_new (gint32, max_ids + 1);
    ids[max_ids] = -12345;
    gsize scratch_size = 4 * len + 16;
    char *scratch = g_malloc (scratch_size);
    guint n = mm_word_tokenize (v, json_object_get_boolean_member (c, "lowercase"),
        (const char *) text, len, ids, max_ids, scratch, scratch_size);
    char *what = g_strdup_printf ("word case %s", json_object_get_string_member (c, "name"));
    assert_ids (ids, n, json_object_get_array_member (c, "ids"), what);
    g_assert_cmpint (ids[max_ids], ==, -12345);
    g_free (what);
    g_free (scratch);
    g_free (ids);
    g_free (text);
  }
  mm_vocab_free (v);
  g_free (words);
  json_node_unref (root);
}

/* The word tokenizer's lower-casing equals g_utf8_strdown () (FORMAT.md)
 * on every code point: "X<c>Y" lower-cased, with a vocabulary holding
 * g_utf8_strdown ("x<c>y"), finds that word exactly when the reference
 * keeps it one word. */
static void
test_word_lowercase_matches_strdown (void)
{
  guint mismatches = 0;
  for (gunichar c = 0x80; c < 0x20000; c++) {
    if (!g_unichar_validate (c) || !g_unichar_isalnum (c))
      continue;
    char text[16];
    int n = 0;
    text[n++] = 'X';
    n += g_unichar_to_utf8 (c, text + n);
    text[n++] = 'Y';
    text[n] = 0;
    char *ref = g_utf8_strdown (text, n);
    gboolean one_word = TRUE;
    for (const char *p = ref; *p; p = g_utf8_next_char (p))
      if (!g_unichar_isalnum (g_utf8_get_char (p)))
        one_word = FALSE;
    const char *words[] = { ref };
    MmVocab *v = mm_vocab_new (words, 1);
    gint32 id = -1;
    char scratch[96];
    guint got = mm_word_tokenize (v, TRUE, text, n, &id, 1, scratch, sizeof scratch);
    if ((got == 1) != one_word)
      mismatches++;
    mm_vocab_free (v);
    g_free (ref);
  }
  g_assert_cmpuint (mismatches, ==, 0);
}

static void
test_word_small_scratch (void)
{
  static const char *const words[] = { "hello", "world" };
  MmVocab *v = mm_vocab_new (words, 2);
  gint32 ids[4];
  char scratch[5];
  /* "world" (5 bytes) fits, "hello!" fits, "helloo" does not and is skipped */
  guint n = mm_word_tokenize (v, TRUE, "helloo World hello!", 19, ids, 4, scratch,
      sizeof scratch);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpint (ids[0], ==, 1);
  g_assert_cmpint (ids[1], ==, 0);
  g_assert_cmpuint (mm_word_tokenize (v, TRUE, "hello", 5, ids, 0, scratch, 5), ==, 0);
  g_assert_cmpuint (mm_word_tokenize (v, TRUE, NULL, 5, ids, 4, scratch, 5), ==, 0);
  /* only len bytes are read */
  g_assert_cmpuint (mm_word_tokenize (v, TRUE, "hellox", 5, ids, 4, scratch, 5), ==, 1);
  mm_vocab_free (v);
}

/* ---------------------------------------------------------------- main */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/preprocess/vocab", test_vocab);
  g_test_add_func ("/preprocess/sanitize", test_sanitize);
  g_test_add_func ("/preprocess/wordpiece", test_wordpiece);
  g_test_add_func ("/preprocess/wordpiece/errors", test_wordpiece_errors);
  g_test_add_func ("/preprocess/wordpiece/fuzz", test_wordpiece_fuzz);
  g_test_add_func ("/preprocess/word", test_word_tokenize);
  g_test_add_func ("/preprocess/word/lowercase-strdown", test_word_lowercase_matches_strdown);
  g_test_add_func ("/preprocess/word/small-scratch", test_word_small_scratch);
  return g_test_run ();
}
