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

#include "bundled-model.h"
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
    guint32 u = GUINT32_FROM_LE (((guint32 *)bytes)[i]);
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
          (int)json_array_get_int_element (want, i));
}

/* allocation counter: see alloc-count.h */
#include "alloc-count.h"

/* ---------------------------------------------------------------- vocab */

static void
test_vocab (void)
{
  static const char *const words[] = { "a", "bc", "bc", "", "##x", "héllo", NULL, "z" };
  MmVocab *v = mm_vocab_new (words, G_N_ELEMENTS (words));
  g_assert_cmpuint (mm_vocab_size (v), ==, G_N_ELEMENTS (words));
  g_assert_cmpint (mm_vocab_lookup (v, "a", 1), ==, 0);
  g_assert_cmpint (mm_vocab_lookup (v, "bc", 2), ==, 1); /* first of duplicates */
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
  v = mm_vocab_new ((const char *const *)big, n);
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
    gsize n = mm_utf8_sanitize (out, cap, (const char *)in, in_len);
    g_assert_cmpmem (out, n, want, want_len);
    g_assert_cmpint (out[n], ==, 0);
    g_assert_cmpint (out[cap], ==, 'Z'); /* nothing written past cap */
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
    n = mm_utf8_sanitize (big, sizeof big, (const char *)in, len);
    g_assert_cmpuint (n, <=, 3 * len);
    g_assert_true (g_utf8_validate (big, n, NULL));
  }
  /* valid text without NUL (ASCII runs take a fast path): copied as is, cut
   * at the last whole character that fits in cap - 1 bytes */
  static const char *const pieces[] = { "a", "Z ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
    "hello ", "\x7f" };
  for (int round = 0; round < 2000; round++) {
    char in[256] = "", out2[256];
    gsize len = 0, bounds[256], nb = 0;
    while (len < 200) {
      const char *p = pieces[g_rand_int_range (rand, 0, G_N_ELEMENTS (pieces))];
      memcpy (in + len, p, strlen (p));
      for (gsize k = 0; k < strlen (p); k++)
        bounds[nb++] = k + 1 == strlen (p) || (guint8)p[0] < 0x80 ? len + k + 1 : 0;
      len += strlen (p);
    }
    gsize cap = g_rand_int_range (rand, 1, 240), want = 0;
    for (gsize k = 0; k < nb; k++)
      if (bounds[k] && bounds[k] <= cap - 1)
        want = bounds[k];
    n = mm_utf8_sanitize (out2, cap, in, len);
    g_assert_cmpuint (n, ==, want);
    g_assert_cmpmem (out2, n, in, want);
    g_assert_cmpint (out2[n], ==, 0);
  }
  g_rand_free (rand);
}

/* ---------------------------------------------------------------- WordPiece */

static void
check_wordpiece_fixture (const char *file)
{
  JsonNode *root = load_json (file);
  JsonObject *doc = json_node_get_object (root);
  guint n_words;
  const char **words = string_array (json_object_get_array_member (doc, "bert_vocab"), &n_words);
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
    MmWordPiece *wp = mm_wordpiece_new (v, json_object_get_boolean_member (c, "lowercase"), max_len,
        json_object_get_int_member (c, "max_text_bytes"), &error);
    g_assert_no_error (error);
    gint32 *ids = g_new (gint32, max_len + 1);
    ids[max_len] = -12345;
    guint n_content = 999;
    guint n = mm_wordpiece_encode (wp, (const char *)text, len, ids, &n_content);
    char *what = g_strdup_printf ("%s: wordpiece case %s", file, name);
    assert_ids (ids, n, json_object_get_array_member (c, "ids"), what);
    g_assert_cmpuint (n_content, ==, json_object_get_int_member (c, "n_content"));
    g_assert_cmpint (ids[max_len], ==, -12345);
    /* encoding twice gives the same result (no state left behind) */
    n = mm_wordpiece_encode (wp, (const char *)text, len, ids, NULL);
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
test_wordpiece (void)
{
  check_wordpiece_fixture ("tokenizer.json");
}

/* random strings of tricky characters; every character is its own piece,
 * so any difference in normalisation or word boundaries shows */
static void
test_wordpiece_random (void)
{
  check_wordpiece_fixture ("tokenizer_random.json");
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
      in[i] = round % 2 ? g_rand_int_range (rand, 0, 256)
                        : "a\xc3\xa9 \xe4\xb8\xad\x80!"[g_rand_int_range (rand, 0, 10)];
    gint32 ids[17];
    guint n_content;
    guint n = mm_wordpiece_encode (round % 3 ? wp : wpc, (const char *)in, len, ids, &n_content);
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
  const char **words = string_array (json_object_get_array_member (doc, "word_vocab"), &n_words);
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
        (const char *)text, len, ids, max_ids, scratch, scratch_size);
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
  guint n = mm_word_tokenize (v, TRUE, "helloo World hello!", 19, ids, 4, scratch, sizeof scratch);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpint (ids[0], ==, 1);
  g_assert_cmpint (ids[1], ==, 0);
  g_assert_cmpuint (mm_word_tokenize (v, TRUE, "hello", 5, ids, 0, scratch, 5), ==, 0);
  g_assert_cmpuint (mm_word_tokenize (v, TRUE, NULL, 5, ids, 4, scratch, 5), ==, 0);
  /* only len bytes are read */
  g_assert_cmpuint (mm_word_tokenize (v, TRUE, "hellox", 5, ids, 4, scratch, 5), ==, 1);
  mm_vocab_free (v);
}

/* ---------------------------------------------------------------- image */

typedef struct
{
  MmPixelFormat fmt;
  const char *name;
  guint bpp;
  int off[4]; /* byte offset of R, G, B, and the pad/alpha byte (-1: none) */
} FormatCase;

static const FormatCase formats[] = {
  { MM_PIXEL_RGB, "RGB", 3, { 0, 1, 2, -1 } },
  { MM_PIXEL_BGR, "BGR", 3, { 2, 1, 0, -1 } },
  { MM_PIXEL_RGBx, "RGBx", 4, { 0, 1, 2, 3 } },
  { MM_PIXEL_BGRx, "BGRx", 4, { 2, 1, 0, 3 } },
  { MM_PIXEL_xRGB, "xRGB", 4, { 1, 2, 3, 0 } },
  { MM_PIXEL_xBGR, "xBGR", 4, { 3, 2, 1, 0 } },
  { MM_PIXEL_RGBA, "RGBA", 4, { 0, 1, 2, 3 } },
  { MM_PIXEL_BGRA, "BGRA", 4, { 2, 1, 0, 3 } },
  { MM_PIXEL_ARGB, "ARGB", 4, { 1, 2, 3, 0 } },
  { MM_PIXEL_ABGR, "ABGR", 4, { 3, 2, 1, 0 } },
};

/* Packs interleaved RGB (w, h) into @f with @pad bytes after each row;
 * pad and alpha bytes get values that would show if they were read. */
static guint8 *
pack_pixels (const guint8 *rgb, guint w, guint h, const FormatCase *f, gsize pad, gsize *stride)
{
  *stride = (gsize)w * f->bpp + pad;
  guint8 *buf = g_malloc ((gsize)h * *stride);
  memset (buf, 0xA5, (gsize)h * *stride);
  for (guint y = 0; y < h; y++)
    for (guint x = 0; x < w; x++) {
      guint8 *p = buf + y * *stride + x * f->bpp;
      for (int c = 0; c < 3; c++)
        p[f->off[c]] = rgb[(y * w + x) * 3 + c];
      if (f->off[3] >= 0)
        p[f->off[3]] = (guint8)(x * 37 + y * 11);
    }
  return buf;
}

static float
image_max_err (const float *got, JsonArray *want, gsize n)
{
  float err = 0.0f;
  for (gsize i = 0; i < n; i++)
    err = MAX (err, fabsf (got[i] - (float)json_array_get_double_element (want, i)));
  return err;
}

static void
test_image (void)
{
  JsonNode *root = load_json ("image.json");
  JsonObject *doc = json_node_get_object (root);
  float mean[3], std[3];
  for (int c = 0; c < 3; c++) {
    mean[c] = json_array_get_double_element (json_object_get_array_member (doc, "mean"), c);
    std[c] = json_array_get_double_element (json_object_get_array_member (doc, "std"), c);
  }
  JsonArray *cases = json_object_get_array_member (doc, "cases");
  float worst = 0.0f;
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    guint w = json_object_get_int_member (c, "width"), h = json_object_get_int_member (c, "height");
    guint ow = json_object_get_int_member (c, "out_width");
    guint oh = json_object_get_int_member (c, "out_height");
    JsonArray *want = json_object_get_array_member (c, "out");
    gsize n = 3 * (gsize)ow * oh, len;
    g_assert_cmpuint (json_array_get_length (want), ==, n);
    guint8 *px = hex_decode (json_object_get_string_member (c, "pixels_hex"), &len);
    float *out = g_new (float, n + 1);
    GError *error = NULL;
    out[n] = 12345.0f;
    if (json_object_get_boolean_member (c, "gray")) {
      g_assert_cmpuint (len, ==, (gsize)w * h);
      for (gsize pad = 0; pad <= 3; pad += 3) {
        gsize stride = w + pad;
        guint8 *buf = g_malloc0 (h * stride);
        for (guint y = 0; y < h; y++) {
          memcpy (buf + y * stride, px + y * w, w);
          memset (buf + y * stride + w, 0xA5, pad);
        }
        g_assert_true (mm_image_preprocess (
            out, ow, oh, mean, std, MM_PIXEL_GRAY8, buf, w, h, stride, &error));
        g_assert_no_error (error);
        float err = image_max_err (out, want, n);
        if (err > 1e-5f)
          g_error ("image %ux%u -> %ux%u GRAY8 stride %" G_GSIZE_FORMAT ": max error %g", w, h, ow,
              oh, stride, err);
        worst = MAX (worst, err);
        g_free (buf);
      }
    } else {
      g_assert_cmpuint (len, ==, (gsize)w * h * 3);
      for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
        for (gsize pad = 0; pad <= 5; pad += 5) {
          gsize stride;
          guint8 *buf = pack_pixels (px, w, h, &formats[f], pad, &stride);
          g_assert_true (mm_image_preprocess (
              out, ow, oh, mean, std, formats[f].fmt, buf, w, h, stride, &error));
          g_assert_no_error (error);
          float err = image_max_err (out, want, n);
          if (err > 1e-5f)
            g_error ("image %ux%u -> %ux%u %s stride %" G_GSIZE_FORMAT ": max error %g", w, h, ow,
                oh, formats[f].name, stride, err);
          worst = MAX (worst, err);
          g_free (buf);
        }
    }
    g_assert_cmpfloat (out[n], ==, 12345.0f);
    g_free (out);
    g_free (px);
  }
  g_test_message ("image: max abs error vs torch interpolate %g", worst);
  json_node_unref (root);
}

static void
test_image_errors (void)
{
  static const float mean[3] = { 0.5f, 0.5f, 0.5f }, std[3] = { 0.25f, 0.25f, 0.25f };
  static const float zero_std[3] = { 0.25f, 0.0f, 0.25f };
  guint8 px[64 * 4] = { 0 };
  float out[3 * 4 * 4];
  GError *error = NULL;
  struct
  {
    guint ow, oh, w, h;
    gsize stride;
    MmPixelFormat fmt;
    const float *std;
  } bad[] = {
    { 4, 4, 0, 4, 16, MM_PIXEL_RGBx, std },           /* width 0 */
    { 4, 4, 4, 0, 16, MM_PIXEL_RGBx, std },           /* height 0 */
    { 4, 4, 16385, 1, 1 << 20, MM_PIXEL_GRAY8, std }, /* too wide */
    { 4, 4, 1, 16385, 16, MM_PIXEL_GRAY8, std },      /* too high */
    { 0, 4, 4, 4, 16, MM_PIXEL_RGBx, std },           /* output width 0 */
    { 4, 16385, 4, 4, 16, MM_PIXEL_RGBx, std },       /* output too high */
    { 4, 4, 4, 4, 15, MM_PIXEL_RGBx, std },           /* stride short by one */
    { 4, 4, 4, 4, 11, MM_PIXEL_RGB, std },
    { 4, 4, 4, 4, 3, MM_PIXEL_GRAY8, std },
    { 4, 4, 4, 4, 16, (MmPixelFormat)99, std }, /* unknown format */
    { 4, 4, 4, 4, 16, (MmPixelFormat)-1, std },
    { 4, 4, 4, 4, 16, MM_PIXEL_RGBx, zero_std },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_false (mm_image_preprocess (out, bad[i].ow, bad[i].oh, mean, bad[i].std, bad[i].fmt,
        px, bad[i].w, bad[i].h, bad[i].stride, &error));
    g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
    g_clear_error (&error);
  }
  g_assert_false (mm_image_preprocess (out, 4, 4, mean, std, MM_PIXEL_RGB, NULL, 4, 4, 12, &error));
  g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&error);
  /* the limits themselves are accepted: 16384 x 1 into 4 x 4 */
  guint8 *wide = g_malloc0 (16384);
  g_assert_true (
      mm_image_preprocess (out, 4, 4, mean, std, MM_PIXEL_GRAY8, wide, 16384, 1, 16384, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat_with_epsilon (out[0], -2.0f, 1e-6f);
  g_free (wide);
  /* exact stride accepted */
  g_assert_true (mm_image_preprocess (out, 4, 4, mean, std, MM_PIXEL_RGB, px, 4, 4, 12, &error));
}

/* ---------------------------------------------------------------- YUV */

/* The reference, in double: each pixel converted by the standard's formula
 * and clamped, then the same bilinear taps and normalisation. */
static double
yuv_ref_channel (int c, double y, double u, double v, double kr, double kb, gboolean full)
{
  double kg = 1.0 - kr - kb;
  double yy = full ? y : (y - 16.0) * 255.0 / 219.0;
  double cb = (u - 128.0) * (full ? 1.0 : 255.0 / 224.0);
  double cr = (v - 128.0) * (full ? 1.0 : 255.0 / 224.0);
  double r = c == 0 ? yy + 2.0 * (1.0 - kr) * cr
      : c == 2      ? yy + 2.0 * (1.0 - kb) * cb
                    : yy - (2.0 * kr * (1.0 - kr) * cr + 2.0 * kb * (1.0 - kb) * cb) / kg;
  return CLAMP (r, 0.0, 255.0);
}

/* a w x h frame (w even) in the three YUV layouts with the same samples:
 * chroma per 2 x 2 block for I420/NV12; YUY2 repeats each chroma row. */
typedef struct
{
  guint w, h;
  guint8 *y, *u, *v; /* Y (h, w), U/V (ceil h/2, w/2), tight */
  guint8 *i420[3], *nv12[2], *yuy2;
  gsize pad;
} YuvFrame;

static void
yuv_frame_make (YuvFrame *f, guint w, guint h, gsize pad, guint32 seed)
{
  GRand *rand = g_rand_new_with_seed (seed);
  guint cw = (w + 1) / 2, ch = (h + 1) / 2;
  f->w = w;
  f->h = h;
  f->pad = pad;
  f->y = g_malloc ((gsize)w * h);
  f->u = g_malloc ((gsize)cw * ch);
  f->v = g_malloc ((gsize)cw * ch);
  for (gsize i = 0; i < (gsize)w * h; i++)
    f->y[i] = g_rand_int_range (rand, 0, 256);
  for (gsize i = 0; i < (gsize)cw * ch; i++) {
    f->u[i] = g_rand_int_range (rand, 0, 256);
    f->v[i] = g_rand_int_range (rand, 0, 256);
  }
  f->i420[0] = g_malloc0 ((w + pad) * h);
  f->i420[1] = g_malloc0 ((cw + pad) * ch);
  f->i420[2] = g_malloc0 ((cw + pad) * ch);
  f->nv12[0] = f->i420[0];
  f->nv12[1] = g_malloc0 ((2 * cw + pad) * ch);
  f->yuy2 = g_malloc0 ((4 * cw + pad) * h);
  for (guint y = 0; y < h; y++)
    for (guint x = 0; x < w; x++) {
      guint8 Y = f->y[y * w + x], U = f->u[(y / 2) * cw + x / 2], V = f->v[(y / 2) * cw + x / 2];
      f->i420[0][y * (w + pad) + x] = Y;
      f->i420[1][(y / 2) * (cw + pad) + x / 2] = U;
      f->i420[2][(y / 2) * (cw + pad) + x / 2] = V;
      f->nv12[1][(y / 2) * (2 * cw + pad) + (x & ~1u)] = U;
      f->nv12[1][(y / 2) * (2 * cw + pad) + (x & ~1u) + 1] = V;
      guint8 *mp = f->yuy2 + y * (4 * cw + pad) + (x / 2) * 4;
      mp[(x & 1) * 2] = Y;
      mp[1] = U;
      mp[3] = V;
    }
  g_rand_free (rand);
}

static void
yuv_frame_clear (YuvFrame *f)
{
  g_free (f->y);
  g_free (f->u);
  g_free (f->v);
  g_free (f->i420[0]);
  g_free (f->i420[1]);
  g_free (f->i420[2]);
  g_free (f->nv12[1]);
  g_free (f->yuy2);
}

static MmImage
yuv_frame_image (const YuvFrame *f, MmPixelFormat fmt, MmYuvMatrix m, gboolean full)
{
  guint cw = (f->w + 1) / 2;
  MmImage im = { .format = fmt, .width = f->w, .height = f->h, .matrix = m, .full_range = full };
  if (fmt == MM_PIXEL_I420) {
    for (int i = 0; i < 3; i++)
      im.planes[i] = f->i420[i];
    im.strides[0] = f->w + f->pad;
    im.strides[1] = im.strides[2] = cw + f->pad;
  } else if (fmt == MM_PIXEL_NV12) {
    im.planes[0] = f->nv12[0];
    im.planes[1] = f->nv12[1];
    im.strides[0] = f->w + f->pad;
    im.strides[1] = 2 * cw + f->pad;
  } else {
    im.planes[0] = f->yuy2;
    im.strides[0] = 4 * cw + f->pad;
  }
  return im;
}

static void
test_image_yuv (void)
{
  static const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
  static const struct
  {
    MmYuvMatrix m;
    double kr, kb;
  } mats[] = { { MM_YUV_BT601, 0.299, 0.114 }, { MM_YUV_BT709, 0.2126, 0.0722 },
    { MM_YUV_BT2020, 0.2627, 0.0593 } };
  static const MmPixelFormat fmts[] = { MM_PIXEL_I420, MM_PIXEL_NV12, MM_PIXEL_YUY2 };
  static const guint sizes[][4] = { { 40, 30, 16, 12 }, { 37, 29, 37, 29 }, { 64, 48, 100, 70 },
    { 320, 240, 32, 32 } };
  double worst = 0.0;
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    guint w = sizes[s][0], h = sizes[s][1], ow = sizes[s][2], oh = sizes[s][3];
    YuvFrame f;
    yuv_frame_make (&f, w, h, s & 1 ? 7 : 0, 42 + s);
    gsize n = 3 * (gsize)ow * oh;
    float *out = g_new (float, n);
    double *ref = g_new (double, n);
    for (guint m = 0; m < G_N_ELEMENTS (mats); m++)
      for (int full = 0; full <= 1; full++) {
        float scale_x = (float)w / ow, scale_y = (float)h / oh;
        for (guint oy = 0; oy < oh; oy++)
          for (guint ox = 0; ox < ow; ox++) {
            /* the same taps as the RGB path (and PyTorch) */
            float sy = MAX (scale_y * (oy + 0.5f) - 0.5f, 0.0f);
            float sx = MAX (scale_x * (ox + 0.5f) - 0.5f, 0.0f);
            guint y0 = MIN ((guint)sy, h - 1), x0 = MIN ((guint)sx, w - 1);
            guint y1 = y0 + (y0 < h - 1), x1 = x0 + (x0 < w - 1);
            double ly = CLAMP (sy - y0, 0.0, 1.0), lx = CLAMP (sx - x0, 0.0, 1.0);
            guint ty[2] = { y0, y1 }, tx[2] = { x0, x1 };
            double wy[2] = { 1 - ly, ly }, wx[2] = { 1 - lx, lx };
            for (int c = 0; c < 3; c++) {
              double v = 0.0;
              for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {
                  guint yy = ty[a], xx = tx[b];
                  guint ci = (yy / 2) * ((w + 1) / 2) + xx / 2;
                  v += wy[a] * wx[b]
                      * yuv_ref_channel (
                          c, f.y[yy * w + xx], f.u[ci], f.v[ci], mats[m].kr, mats[m].kb, full);
                }
              ref[(gsize)c * ow * oh + oy * ow + ox] = v;
            }
          }
        for (guint k = 0; k < G_N_ELEMENTS (fmts); k++) {
          GError *error = NULL;
          MmImage im = yuv_frame_image (&f, fmts[k], mats[m].m, full);
          g_assert_true (mm_image_preprocess_image (out, ow, oh, mean, std, &im, &error));
          g_assert_no_error (error);
          /* the error in 8-bit levels before normalisation */
          for (gsize i = 0; i < n; i++) {
            int c = i / ((gsize)ow * oh);
            double level = ((double)out[i] * std[c] + mean[c]) * 255.0;
            double err = fabs (level - ref[i]);
            if (err > 0.01)
              g_error ("YUV format %d %ux%u -> %ux%u matrix %d full %d: %g levels off at "
                       "%" G_GSIZE_FORMAT,
                  fmts[k], w, h, ow, oh, m, full, err, i);
            worst = MAX (worst, err);
          }
        }
      }
    g_free (out);
    g_free (ref);
    yuv_frame_clear (&f);
  }
  g_test_message ("YUV: max error vs the double-precision formula %g levels", worst);
}

/* Known colours, from the standards' tables rather than the formula. */
static void
test_image_yuv_colours (void)
{
  static const float mean[3] = { 0, 0, 0 }, std[3] = { 1, 1, 1 };
  static const struct
  {
    MmYuvMatrix m;
    gboolean full;
    guint8 y, u, v;
    float r, g, b;
  } cases[] = {
    { MM_YUV_BT601, FALSE, 235, 128, 128, 255, 255, 255 }, /* white */
    { MM_YUV_BT601, FALSE, 16, 128, 128, 0, 0, 0 },        /* black */
    { MM_YUV_BT601, FALSE, 81, 90, 240, 255, 0, 0 },       /* red */
    { MM_YUV_BT601, FALSE, 145, 54, 34, 0, 255, 0 },       /* green */
    { MM_YUV_BT601, FALSE, 41, 240, 110, 0, 0, 255 },      /* blue */
    { MM_YUV_BT709, FALSE, 63, 102, 240, 255, 0, 0 },
    { MM_YUV_BT709, FALSE, 173, 42, 26, 0, 255, 0 },
    { MM_YUV_BT709, FALSE, 32, 240, 118, 0, 0, 255 },
    { MM_YUV_BT601, TRUE, 255, 128, 128, 255, 255, 255 },
    { MM_YUV_BT601, TRUE, 76, 85, 255, 255, 0, 0 },
    { MM_YUV_BT601, TRUE, 128, 128, 128, 128, 128, 128 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    guint8 y[4], u = cases[i].u, v = cases[i].v, uv[2] = { u, v }, yuy2[4] = { 0, u, 0, v };
    memset (y, cases[i].y, 4);
    yuy2[0] = yuy2[2] = cases[i].y;
    const guint8 *up = &u, *vp = &v;
    MmImage ims[3] = {
      { MM_PIXEL_I420, 2, 2, { y, up, vp }, { 2, 1, 1 }, cases[i].m, cases[i].full },
      { MM_PIXEL_NV12, 2, 2, { y, uv }, { 2, 2 }, cases[i].m, cases[i].full },
      { MM_PIXEL_YUY2, 2, 1, { yuy2 }, { 4 }, cases[i].m, cases[i].full },
    };
    for (int k = 0; k < 3; k++) {
      float out[3 * 2 * 2];
      g_assert_true (mm_image_preprocess_image (out, 2, ims[k].height, mean, std, &ims[k], NULL));
      gsize plane = 2 * ims[k].height;
      float want[3] = { cases[i].r, cases[i].g, cases[i].b };
      for (int c = 0; c < 3; c++)
        if (fabsf (out[c * plane] * 255.0f - want[c]) > 1.5f)
          g_error ("case %u format %d channel %d: %g, want %g", i, k, c, out[c * plane] * 255.0f,
              want[c]);
    }
  }
}

static void
test_image_yuv_errors (void)
{
  static const float mean[3] = { 0, 0, 0 }, std[3] = { 1, 1, 1 };
  guint8 px[64] = { 0 };
  float out[3 * 4 * 4];
  GError *error = NULL;
  MmImage good = { MM_PIXEL_I420, 5, 4, { px, px, px }, { 5, 3, 3 }, MM_YUV_BT601, FALSE };
  g_assert_true (mm_image_preprocess_image (out, 4, 4, mean, std, &good, &error));
  g_assert_no_error (error);
  MmImage bad[] = {
    { MM_PIXEL_I420, 5, 4, { px, px, px }, { 4, 3, 3 } },   /* Y stride short */
    { MM_PIXEL_I420, 5, 4, { px, px, px }, { 5, 2, 3 } },   /* U stride short (odd width) */
    { MM_PIXEL_I420, 5, 4, { px, px, NULL }, { 5, 3, 3 } }, /* no V plane */
    { MM_PIXEL_NV12, 5, 4, { px, px }, { 5, 5 } },          /* UV stride short */
    { MM_PIXEL_NV12, 5, 4, { px, NULL }, { 5, 6 } },        /* no UV plane */
    { MM_PIXEL_YUY2, 5, 4, { px }, { 11 } },                /* 3 macro-pixels need 12 */
    { MM_PIXEL_YUY2, 0, 4, { px }, { 12 } },                /* width 0 */
    { MM_PIXEL_YUY2, 4, 16385, { px }, { 8 } },             /* too high */
    { (MmPixelFormat)77, 4, 4, { px }, { 16 } },            /* unknown format */
    { MM_PIXEL_YUY2, 4, 4, { px }, { 8 }, (MmYuvMatrix)9 }, /* unknown matrix */
    { MM_PIXEL_RGB, 4, 4, { px }, { 11 } },                 /* packed: short stride */
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_false (mm_image_preprocess_image (out, 4, 4, mean, std, &bad[i], &error));
    g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
    g_clear_error (&error);
  }
  g_assert_false (mm_image_preprocess_image (out, 4, 4, mean, std, NULL, &error));
  g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&error);
  /* the packed entry point refuses YUV with a clear error */
  g_assert_false (mm_image_preprocess (out, 4, 4, mean, std, MM_PIXEL_I420, px, 4, 4, 4, &error));
  g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&error);
}

/* ---------------------------------------------------------------- log-mel */

#define LOGMEL_TOL 1e-3f /* max abs error on ln (mel + offset) */

static MmMelParams
mel_params (JsonObject *c)
{
  MmMelParams p = {
    .sample_rate = json_object_get_int_member (c, "sample_rate"),
    .n_fft = json_object_get_int_member (c, "n_fft"),
    .win_length = json_object_get_int_member (c, "win_length"),
    .hop_length = json_object_get_int_member (c, "hop_length"),
    .n_mels = json_object_get_int_member (c, "n_mels"),
    .f_min = json_object_get_double_member (c, "f_min"),
    .f_max = json_object_get_double_member (c, "f_max"),
    .log_offset = json_object_get_double_member (c, "log_offset"),
  };
  return p;
}

/* max |got[m, t0 + t] - want[m, t]| over the reference's frames */
static float
logmel_max_err (
    const float *got, guint got_frames, guint t0, const float *want, guint n_frames, guint n_mels)
{
  float err = 0.0f;
  for (guint m = 0; m < n_mels; m++)
    for (guint t = 0; t < n_frames; t++)
      err = MAX (err, fabsf (got[(gsize)m * got_frames + t0 + t] - want[(gsize)m * n_frames + t]));
  return err;
}

static void
test_logmel (void)
{
  JsonNode *root = load_json ("logmel.json");
  JsonObject *doc = json_node_get_object (root);
  gsize n;
  float *x = load_f32 ("logmel_input.f32", &n);
  g_assert_cmpuint (n, ==, json_object_get_int_member (doc, "n_samples"));
  /* the input six times over: frames past the first block of 256 */
  gsize n_long = 6 * n;
  float *x_long = g_new (float, n_long);
  for (int r = 0; r < 6; r++)
    memcpy (x_long + r * n, x, n * sizeof (float));

  JsonArray *cases = json_object_get_array_member (doc, "cases");
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    MmMelParams p = mel_params (c);
    char *fname = g_strdup_printf ("logmel_%s.f32", json_object_get_string_member (c, "name"));
    gsize n_want;
    float *want = load_f32 (fname, &n_want);
    guint n_frames = json_object_get_int_member (c, "n_frames");
    g_assert_cmpuint (n_want, ==, (gsize)n_frames * p.n_mels);

    for (int reference = 0; reference <= 1; reference++) {
      mm_ops_set_reference (reference);
      GError *error = NULL;
      MmLogMel *lm = mm_logmel_new (&p, n_long, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (mm_logmel_n_frames (lm, n), ==, n_frames);
      float *out = g_new (float, (gsize)n_frames *p.n_mels + 1);
      out[(gsize)n_frames * p.n_mels] = 12345.0f;
      g_assert_cmpuint (mm_logmel_compute (lm, out, x, n, &error), ==, n_frames);
      g_assert_no_error (error);
      g_assert_cmpfloat (out[(gsize)n_frames * p.n_mels], ==, 12345.0f);
      float err = logmel_max_err (out, n_frames, 0, want, n_frames, p.n_mels);
      g_test_message ("log-mel %s (%s): max abs error %g (tolerance %g)", fname,
          reference ? "reference loops" : "fast path", err, LOGMEL_TOL);
      g_assert_cmpfloat (err, <=, LOGMEL_TOL);
      g_free (out);

      /* long input: every copy of x that starts on a hop gives the same frames */
      guint long_frames = mm_logmel_n_frames (lm, n_long);
      g_assert_cmpuint (long_frames, >, 256);
      out = g_new (float, (gsize)long_frames *p.n_mels);
      g_assert_cmpuint (mm_logmel_compute (lm, out, x_long, n_long, &error), ==, long_frames);
      for (int r = 0; r < 6; r++)
        if ((r * n) % p.hop_length == 0) {
          guint t0 = r * n / p.hop_length;
          err = logmel_max_err (out, long_frames, t0, want, n_frames, p.n_mels);
          g_assert_cmpfloat (err, <=, LOGMEL_TOL);
        }
      g_free (out);
      mm_logmel_free (lm);
    }
    mm_ops_set_reference (FALSE);
    g_free (want);
    g_free (fname);
  }
  g_free (x_long);
  g_free (x);
  json_node_unref (root);
}

static void
test_logmel_errors (void)
{
  const MmMelParams good = { 16000, 400, 400, 160, 64, 0.0, 8000.0, 1e-6 };
  GError *error = NULL;
  MmLogMel *lm = mm_logmel_new (&good, 16000, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (mm_logmel_n_frames (lm, 399), ==, 0);
  g_assert_cmpuint (mm_logmel_n_frames (lm, 400), ==, 1);
  g_assert_cmpuint (mm_logmel_n_frames (lm, 559), ==, 1);
  g_assert_cmpuint (mm_logmel_n_frames (lm, 560), ==, 2);
  g_assert_cmpuint (mm_logmel_n_frames (lm, 16000), ==, 98);

  float *x = g_new0 (float, 16001), *out = g_new (float, 64 * 100);
  g_assert_cmpuint (mm_logmel_compute (lm, out, x, 399, &error), ==, 0);
  g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_cmpuint (mm_logmel_compute (lm, out, x, 16001, &error), ==, 0);
  g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_cmpuint (mm_logmel_compute (lm, out, NULL, 1000, &error), ==, 0);
  g_assert_error (error, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&error);
  /* silence: every value is ln (log_offset) */
  g_assert_cmpuint (mm_logmel_compute (lm, out, x, 400, &error), ==, 1);
  for (int m = 0; m < 64; m++)
    g_assert_cmpfloat_with_epsilon (out[m], logf (1e-6f), 1e-4f);
  mm_logmel_free (lm);
  g_free (x);
  g_free (out);

  MmMelParams bad[12];
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    bad[i] = good;
  bad[0].sample_rate = 0;
  bad[1].n_fft = 0;
  bad[2].n_fft = 1 << 20;
  bad[3].win_length = 0;
  bad[4].win_length = 401;
  bad[5].hop_length = 0;
  bad[6].n_mels = 0;
  bad[7].n_mels = 100000;
  bad[8].f_max = 0.0;
  bad[9].f_min = -1.0;
  bad[10].log_offset = 0.0;
  bad[11].f_max = NAN;
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_null (mm_logmel_new (&bad[i], 16000, &error));
    g_assert_error (error, MM_ERROR, MM_ERROR_FORMAT);
    g_clear_error (&error);
  }
  g_assert_null (mm_logmel_new (&good, 399, &error));
  g_assert_error (error, MM_ERROR, MM_ERROR_FORMAT);
  g_clear_error (&error);
  g_assert_null (mm_logmel_new (NULL, 16000, &error));
  g_clear_error (&error);
}

/* The fast path's vectorised ln covers normal numbers only: a subnormal
 * sum (a tiny log_offset over silence) must come out as the reference
 * path's logf gives it, and a NaN sample must make its frames NaN. */
static void
test_logmel_extremes (void)
{
  MmMelParams p = { 16000, 400, 400, 160, 64, 0.0, 8000.0, 1e-40 };
  gsize n = 400 + 160 * 20; /* 21 frames: a full vector and a partial one */
  float *x = g_new0 (float, n);
  x[n - 5] = NAN; /* silence but for that */
  MmLogMel *lm = mm_logmel_new (&p, n, NULL);
  guint frames = mm_logmel_n_frames (lm, n);
  float *fast = g_new (float, 64 * frames), *ref = g_new (float, 64 * frames);
  int n_sub = 0, n_nan = 0;

  g_assert_cmpuint (mm_logmel_compute (lm, fast, x, n, NULL), ==, frames);
  mm_ops_set_reference (TRUE);
  g_assert_cmpuint (mm_logmel_compute (lm, ref, x, n, NULL), ==, frames);
  mm_ops_set_reference (FALSE);
  for (guint i = 0; i < 64 * frames; i++) {
    if (isnan (ref[i])) {
      g_assert_true (isnan (fast[i]));
      n_nan++;
    } else {
      g_assert_cmpfloat (fast[i], ==, ref[i]);
      g_assert_cmpfloat (ref[i], ==, logf (1e-40f)); /* ln of a subnormal */
      n_sub++;
    }
  }
  /* every kind of value really occurred */
  g_assert_cmpint (n_sub, >, 0);
  g_assert_cmpint (n_nan, >, 0);
  mm_logmel_free (lm);
  g_free (x);
  g_free (fast);
  g_free (ref);
}

/* Non-finite samples that fall only where the window is zero padding
 * (win_length < n_fft) are not read by the reference path; the fast path
 * must not let them in either (0 * NaN is NaN): same NaN frames, same
 * finite values. */
static void
test_logmel_outside_window (void)
{
  MmMelParams p = { 16000, 400, 320, 160, 40, 0.0, 8000.0, 1e-6 };
  gsize n = 400 + 160 * 20;
  float *x = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    x[i] = 0.3f * sinf (i * 0.05f);
  x[0] = NAN;          /* frame 0's left padding only (window starts at 40) */
  x[n - 1] = INFINITY; /* the last frame's right padding only */
  MmLogMel *lm = mm_logmel_new (&p, n, NULL);
  guint frames = mm_logmel_n_frames (lm, n);
  float *fast = g_new (float, 40 * frames), *ref = g_new (float, 40 * frames);
  g_assert_cmpuint (mm_logmel_compute (lm, fast, x, n, NULL), ==, frames);
  mm_ops_set_reference (TRUE);
  g_assert_cmpuint (mm_logmel_compute (lm, ref, x, n, NULL), ==, frames);
  mm_ops_set_reference (FALSE);
  for (guint i = 0; i < 40 * frames; i++) {
    g_assert_true (isfinite (ref[i]));
    if (!(fabsf (fast[i] - ref[i]) <= 1e-3f))
      g_error ("value %u (frame %u): fast %g, reference %g", i, i / 40, fast[i], ref[i]);
  }
  mm_logmel_free (lm);
  g_free (x);
  g_free (fast);
  g_free (ref);
}

/* The audio encoder's fast path (channel-last conv1d with a register-tiled
 * kernel, 8/4/1-row tiles of 16- and 32-wide panels) against its reference
 * path (im2col + GEMM loops), which test-encoders checks against PyTorch,
 * on the bundled model: 64..128 channels take the full-width panels the
 * small PyTorch fixture (12 channels) does not. */
static void
test_audio_fast_vs_reference (void)
{
  MmModel *m = bundled_model_open_or_skip ();
  if (!m)
    return;
  GError *err = NULL;
  MmAudioEncoder *enc = mm_audio_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  guint dim = mm_model_get_dim (m, MM_COMPONENT_AUDIO);
  guint window = mm_model_get_audio_window (m);
  float *x = g_new (float, window), *fast = g_new (float, dim), *ref = g_new (float, dim);
  for (guint i = 0; i < window; i++)
    x[i] = 0.3f * sinf (i * 0.07f) + 0.2f * sinf (i * 0.011f * (1.0f + i / (float)window));
  /* the whole window, then lengths leaving row remainders in every conv */
  const gsize lengths[] = { window, window * 5 / 8 + 77, 400 + 160 * 9 };
  for (guint c = 0; c < G_N_ELEMENTS (lengths); c++) {
    g_assert_true (mm_audio_encoder_encode (enc, x, lengths[c], fast, &err));
    g_assert_no_error (err);
    mm_ops_set_reference (TRUE);
    g_assert_true (mm_audio_encoder_encode (enc, x, lengths[c], ref, &err));
    mm_ops_set_reference (FALSE);
    g_assert_no_error (err);
    float err_max = 0.0f, scale = 1.0f;
    for (guint i = 0; i < dim; i++) {
      err_max = MAX (err_max, fabsf (fast[i] - ref[i]));
      scale = MAX (scale, fabsf (ref[i]));
    }
    g_test_message ("audio %" G_GSIZE_FORMAT " samples: fast vs reference max abs error %g",
        lengths[c], err_max);
    g_assert_cmpfloat (err_max, <=, 1e-4f * scale);
  }
  g_free (x);
  g_free (fast);
  g_free (ref);
  mm_audio_encoder_free (enc);
  mm_model_unref (m);
}

/* ---------------------------------------------------------------- no allocation */

static void
test_run_functions_do_not_allocate (void)
{
#if COUNT_ALLOCS
  static const char *const words[] = { "[UNK]", "[CLS]", "[SEP]", "cafe", "##s", "中" };
  MmVocab *v = mm_vocab_new (words, G_N_ELEMENTS (words));
  const char *text = "Cafés CAFÉ \xff\xfe ΟΔΟΣ İ 中文 don't, Ⅻ\x00 x";
  gsize len = 48;
  gint32 ids[64];
  char scratch[4 * 48 + 16];
  guint nc;
  MmWordPiece *wp = mm_wordpiece_new (v, TRUE, 64, 1024, NULL);
  MmWordPiece *wpc = mm_wordpiece_new (v, FALSE, 64, 1024, NULL);
  static const float mean[3] = { 0.5f, 0.5f, 0.5f }, std[3] = { 0.25f, 0.25f, 0.25f };
  guint8 *px = g_malloc0 (37 * 29 * 4);
  float *img = g_new (float, 3 * 16 * 16);
  const MmMelParams p = { 16000, 400, 400, 160, 64, 0.0, 8000.0, 1e-6 };
  MmLogMel *lm = mm_logmel_new (&p, 16000, NULL);
  float *x = g_new0 (float, 16000), *mel = g_new (float, 64 * 98);
  for (int i = 0; i < 16000; i++)
    x[i] = sinf (i * 0.1f);

  /* OpenBLAS's threaded sgemm itself mallocs per call (seen with
   * MM_THREADS=2); libmm's default is one thread per streaming thread. */
  mm_blas_set_threads (1);
  for (int round = 0; round < 2; round++) { /* the first round warms up BLAS */
    allocs_begin ();
    guint n = mm_wordpiece_encode (wp, text, len, ids, &nc);
    n += mm_wordpiece_encode (wpc, text, len, ids, &nc);
    n += mm_word_tokenize (v, TRUE, text, len, ids, 64, scratch, sizeof scratch);
    n += mm_utf8_sanitize (scratch, sizeof scratch, text, len);
    gboolean ok =
        mm_image_preprocess (img, 16, 16, mean, std, MM_PIXEL_xBGR, px, 37, 29, 37 * 4, NULL);
    guint frames = mm_logmel_compute (lm, mel, x, 16000, NULL);
    int allocs = allocs_end ();
    g_assert_cmpuint (n, >, 0);
    g_assert_true (ok);
    g_assert_cmpuint (frames, ==, 98);
    if (round == 1)
      g_assert_cmpint (allocs, ==, 0);
  }
  /* the counter works */
  allocs_begin ();
  g_free (g_malloc (16));
  g_assert_cmpint (allocs_end (), ==, 1);

  mm_logmel_free (lm);
  g_free (x);
  g_free (mel);
  g_free (px);
  g_free (img);
  mm_wordpiece_free (wp);
  mm_wordpiece_free (wpc);
  mm_vocab_free (v);
#else
  g_test_skip ("needs glibc malloc interposition (not under AddressSanitizer)");
#endif
}

/* ---------------------------------------------------------------- main */

/* textenc's text path (mm_cue_length, mm_markup_strip, mm_text_is_blank) */
static void
check_strip (const char *in, gssize len, const char *want, gsize want_len)
{
  GString *out = g_string_new ("stale");
  gsize n = len < 0 ? strlen (in) : (gsize)len;
  mm_markup_strip (in, n, out);
  g_assert_cmpuint (out->len, ==, want_len);
  g_assert_cmpmem (out->str, out->len, want, want_len);
  g_assert_cmpuint (out->len, <=, n);
  g_string_free (out, TRUE);
}

static void
test_cue_text (void)
{
  check_strip ("<i>Hello</i> &amp; <b>bye</b>", -1, "Hello & bye", 11);
  check_strip ("a <font color=\"#ff0\">b", -1, "a b", 3);
  check_strip ("cut <i", -1, "cut ", 4); /* a tag that never closes: dropped to the end */
  check_strip ("&lt;b&gt; &quot;q&quot; &apos;", -1, "<b> \"q\" '", 9);
  check_strip ("&#65;&#x42;&#X63;", -1, "ABc", 3);
  /* malformed or not a scalar value: kept literally */
  check_strip ("&bogus; &#0; &#x110000; &#xD800; &#; &#65", -1,
      "&bogus; &#0; &#x110000; &#xD800; &#; &#65",
      strlen ("&bogus; &#0; &#x110000; &#xD800; &#; &#65"));
  check_strip ("&#x1F600;", -1, "\xf0\x9f\x98\x80", 4);
  check_strip ("&nbsp;", -1, "\xc2\xa0", 2);
  check_strip ("&", -1, "&", 1);
  check_strip ("", 0, "", 0);
  check_strip ("\xff<i>\xfe</i>", -1, "\xff\xfe", 2); /* invalid UTF-8 passes through */

  g_assert_cmpuint (mm_cue_length (NULL, 0), ==, 0);
  g_assert_cmpuint (mm_cue_length ("ab\0cd", 5), ==, 2);
  g_assert_cmpuint (mm_cue_length ("abcd", 4), ==, 4);

  g_assert_true (mm_text_is_blank (NULL, 0));
  g_assert_true (mm_text_is_blank (" \t\r\n", 4));
  g_assert_true (mm_text_is_blank ("\xc2\xa0 \xe3\x80\x80", 6)); /* NBSP, ideographic space */
  g_assert_false (mm_text_is_blank (" a ", 3));
  g_assert_false (mm_text_is_blank ("\xff", 1));     /* invalid UTF-8 is text */
  g_assert_false (mm_text_is_blank ("\xe3\x80", 2)); /* a truncated space is not blank */
  g_assert_false (mm_text_is_blank ("\xc3\xa9", 2)); /* e acute */

  /* any bytes: never longer than the input, never past it */
  GRand *r = g_rand_new_with_seed (7);
  GString *out = g_string_new (NULL);
  static const char alphabet[] = "<>&;#xX0123456789abfglt quot\xc2\xa0\xff";
  for (int it = 0; it < 20000; it++) {
    char buf[48];
    gsize n = g_rand_int_range (r, 0, sizeof buf + 1);
    for (gsize i = 0; i < n; i++)
      buf[i] = alphabet[g_rand_int_range (r, 0, sizeof alphabet - 1)];
    char *exact = g_memdup2 (buf, n); /* ASan sees a read past n */
    mm_markup_strip (exact, n, out);
    g_assert_cmpuint (out->len, <=, n);
    (void)mm_text_is_blank (out->str, out->len);
    g_free (exact);
  }
  g_string_free (out, TRUE);
  g_rand_free (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/preprocess/vocab", test_vocab);
  g_test_add_func ("/preprocess/cue-text", test_cue_text);
  g_test_add_func ("/preprocess/sanitize", test_sanitize);
  g_test_add_func ("/preprocess/wordpiece", test_wordpiece);
  g_test_add_func ("/preprocess/wordpiece/random", test_wordpiece_random);
  g_test_add_func ("/preprocess/wordpiece/errors", test_wordpiece_errors);
  g_test_add_func ("/preprocess/wordpiece/fuzz", test_wordpiece_fuzz);
  g_test_add_func ("/preprocess/word", test_word_tokenize);
  g_test_add_func ("/preprocess/word/lowercase-strdown", test_word_lowercase_matches_strdown);
  g_test_add_func ("/preprocess/word/small-scratch", test_word_small_scratch);
  g_test_add_func ("/preprocess/image", test_image);
  g_test_add_func ("/preprocess/image/errors", test_image_errors);
  g_test_add_func ("/preprocess/image/yuv", test_image_yuv);
  g_test_add_func ("/preprocess/image/yuv/colours", test_image_yuv_colours);
  g_test_add_func ("/preprocess/image/yuv/errors", test_image_yuv_errors);
  g_test_add_func ("/preprocess/logmel", test_logmel);
  g_test_add_func ("/preprocess/logmel/errors", test_logmel_errors);
  g_test_add_func ("/preprocess/logmel/extremes", test_logmel_extremes);
  g_test_add_func ("/preprocess/logmel/outside-window", test_logmel_outside_window);
  g_test_add_func ("/preprocess/audio/fast-vs-reference", test_audio_fast_vs_reference);
  g_test_add_func ("/preprocess/no-allocation", test_run_functions_do_not_allocate);
  return g_test_run ();
}
