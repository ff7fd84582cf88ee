/* libFuzzer target: the preprocessing on arbitrary input -- the word and
 * WordPiece tokenizers and UTF-8 repair on any bytes, the image resize /
 * normalise for every pixel format at odd sizes and strides, the log-mel
 * front end on any parameters and samples (NaN, Inf, huge), and textenc's
 * text path (a cue cut at its NUL, pango markup stripped, blank cues,
 * invalid UTF-8, then both tokenizers).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The first byte picks the part.  Buffers are allocated at their exact size
 * so ASan sees any read past them.  Build and run: tests/fuzz/README.
 */
#include <math.h>
#include <string.h>

#include "mm-private.h"
#include "preprocess.h"

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

#define MAX_TEXT 4096
#define MAX_IDS 64

static const char *const words[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "a", "dog", "bark",
  "##s", "##ing", "caf", "##\xc3\xa9", "\xc3\xa9t\xc3\xa9", "hello", "wor", "##ld", "un", "##aff",
  "##able", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", ",", ".", "'", "##'", "i", "##i" };

static MmVocab *vocab;
static MmWordPiece *wordpiece[2];

static void
init_text (void)
{
  if (vocab)
    return;
  vocab = mm_vocab_new (words, G_N_ELEMENTS (words));
  for (int lc = 0; lc < 2; lc++) {
    GError *err = NULL;
    wordpiece[lc] = mm_wordpiece_new (vocab, lc, MAX_IDS, MAX_TEXT, &err);
    g_assert_no_error (err);
  }
}

/* both tokenizers and UTF-8 repair on @text (@n bytes, no NUL after it) */
static void
tokenize_all (const char *text, gsize n, gboolean lc)
{
  gint32 ids[MAX_IDS];
  gsize scratch_size = 4 * n + 16;
  char *scratch = g_malloc (scratch_size);
  guint k = mm_word_tokenize (vocab, lc, text, n, ids, MAX_IDS, scratch, scratch_size);
  g_assert (k <= MAX_IDS);
  for (guint i = 0; i < k; i++)
    g_assert (ids[i] >= 0 && (guint)ids[i] < G_N_ELEMENTS (words));

  guint n_content = 0;
  k = mm_wordpiece_encode (wordpiece[lc], text, n, ids, &n_content);
  g_assert (k >= 2 && k <= MAX_IDS && n_content + 2 == k);
  for (guint i = 0; i < k; i++)
    g_assert (ids[i] >= 0 && (guint)ids[i] < G_N_ELEMENTS (words));

  gsize cap = 3 * n + 1;
  char *clean = g_malloc (cap);
  gsize w = mm_utf8_sanitize (clean, cap, text, n);
  g_assert (w < cap && clean[w] == '\0' && g_utf8_validate (clean, (gssize)w, NULL));
  g_free (clean);
  g_free (scratch);
}

static void
fuzz_text (const guint8 *d, gsize n)
{
  if (n < 1)
    return;
  init_text ();
  gboolean lc = d[0] & 1;
  n = MIN (n - 1, MAX_TEXT);
  char *text = g_malloc (n ? n : 1); /* exact: no NUL after it */
  memcpy (text, d + 1, n);
  tokenize_all (text, n, lc);
  g_free (text);
}

/* textenc's text path: a cue's bytes (NULs, markup or not, invalid UTF-8)
 * cut at the first NUL, markup stripped, blank or encoded */
static void
fuzz_cue (const guint8 *d, gsize n)
{
  if (n < 1)
    return;
  init_text ();
  gboolean markup = d[0] & 1, lc = (d[0] >> 1) & 1;
  n = MIN (n - 1, MAX_TEXT);
  char *cue = n ? g_malloc (n) : NULL; /* exact; an empty buffer maps to NULL */
  if (n)
    memcpy (cue, d + 1, n);
  gsize len = mm_cue_length (cue, n);
  g_assert (len <= n && (len == n || cue[len] == '\0'));
  GString *stripped = g_string_new (NULL);
  const char *text = cue;
  if (markup) {
    mm_markup_strip (cue, len, stripped);
    g_assert (stripped->len <= len);
    text = stripped->str;
    len = stripped->len;
  }
  if (!mm_text_is_blank (text, len)) {
    char *exact = g_malloc (len ? len : 1);
    memcpy (exact, text, len);
    tokenize_all (exact, len, lc);
    g_free (exact);
  }
  g_string_free (stripped, TRUE);
  g_free (cue);
}

/* a plane of rows x stride, the last row only as long as it needs */
static guint8 *
plane_from (const guint8 **d, gsize *n, gsize stride, gsize row, guint rows, gsize *len)
{
  *len = rows ? stride * (rows - 1) + row : 0;
  guint8 *p = g_malloc (*len ? *len : 1);
  gsize take = MIN (*len, *n);
  memcpy (p, *d, take);
  memset (p + take, 0x80, *len - take);
  *d += take;
  *n -= take;
  return p;
}

static void
fuzz_image (const guint8 *d, gsize n)
{
  if (n < 8)
    return;
  MmPixelFormat fmt = (MmPixelFormat)(d[0] % (MM_PIXEL_YUY2 + 1));
  guint width = 1 + d[1] % 48, height = 1 + d[2] % 48;
  int pad = d[3] % 8 - (d[3] == 255); /* -1: a stride one byte short */
  guint out_w = 1 + d[4] % 24, out_h = 1 + d[5] % 24;
  MmYuvMatrix matrix = (MmYuvMatrix)(d[6] % 3);
  gboolean full_range = d[7] & 1;
  d += 8;
  n -= 8;

  gsize cw = (width + 1) / 2, ch = (height + 1) / 2;
  gsize row[3] = { 0 }, stride[3] = { 0 };
  guint rows[3] = { 0 };
  switch (fmt) {
    case MM_PIXEL_I420:
      row[0] = width, row[1] = row[2] = cw;
      rows[0] = height, rows[1] = rows[2] = (guint)ch;
      break;
    case MM_PIXEL_NV12:
      row[0] = width, row[1] = 2 * cw;
      rows[0] = height, rows[1] = (guint)ch;
      break;
    case MM_PIXEL_YUY2:
      row[0] = 4 * cw, rows[0] = height;
      break;
    case MM_PIXEL_GRAY8:
      row[0] = width, rows[0] = height;
      break;
    case MM_PIXEL_RGB:
    case MM_PIXEL_BGR:
      row[0] = 3 * (gsize)width, rows[0] = height;
      break;
    default:
      row[0] = 4 * (gsize)width, rows[0] = height;
      break;
  }
  MmImage im = { fmt, width, height, { NULL }, { 0 }, matrix, full_range };
  guint8 *planes[3] = { NULL };
  for (int p = 0; p < 3 && rows[p]; p++) {
    stride[p] = (gsize)((gssize)row[p] + pad);
    gsize len;
    planes[p] = plane_from (&d, &n, MAX (stride[p], row[p]), row[p], rows[p], &len);
    im.planes[p] = planes[p];
    im.strides[p] = stride[p];
  }

  const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
  gsize n_out = 3 * (gsize)out_w * out_h;
  float *out = g_malloc (n_out * sizeof (float));
  GError *err = NULL;
  gboolean ok = mm_image_preprocess_image (out, out_w, out_h, mean, std, &im, &err);
  g_assert (ok || (err && err->domain == MM_ERROR));
  g_clear_error (&err);
  if (ok)
    for (gsize i = 0; i < n_out; i++)
      g_assert (isfinite (out[i]));
  if (fmt < MM_PIXEL_I420) {
    ok = mm_image_preprocess (
        out, out_w, out_h, mean, std, fmt, planes[0], width, height, stride[0], &err);
    g_assert (ok || (err && err->domain == MM_ERROR));
    g_clear_error (&err);
    if (ok)
      for (gsize i = 0; i < n_out; i++)
        g_assert (isfinite (out[i]));
  }
  g_free (out);
  for (int p = 0; p < 3; p++)
    g_free (planes[p]);
}

static void
fuzz_logmel (const guint8 *d, gsize n)
{
  if (n < 12)
    return;
  MmMelParams p = { 0 };
  p.n_fft = 4 + (guint)((d[0] | d[1] << 8) % 1021);
  p.win_length = 1 + d[2] % p.n_fft;
  p.hop_length = 1 + (guint)((d[3] | d[4] << 8) % 600);
  p.n_mels = 1 + d[5] % 80;
  p.sample_rate = 1000 + 1000 * (d[6] % 48);
  p.f_min = d[7] % 2 ? 0.0 : 20.0 * (d[7] % 10);
  p.f_max = p.sample_rate / 2.0 * (1 + d[8] % 4) / 4.0;
  p.log_offset = d[9] % 2 ? 1e-6 : 1e-10;
  gsize max_samples = (gsize)(d[10] | d[11] << 8) % 16384;
  d += 12;
  n -= 12;
  gsize n_samples = MIN (n / sizeof (float), max_samples);

  GError *err = NULL;
  MmLogMel *lm = mm_logmel_new (&p, max_samples, &err);
  if (!lm) {
    g_assert (err && err->domain == MM_ERROR);
    g_error_free (err);
    return;
  }
  float *samples = g_malloc ((n_samples ? n_samples : 1) * sizeof (float));
  memcpy (samples, d, n_samples * sizeof (float)); /* NaN, Inf, huge: all allowed */
  guint frames = mm_logmel_n_frames (lm, n_samples);
  float *out = g_malloc (((gsize)p.n_mels * MAX (frames, 1)) * sizeof (float));
  guint t = mm_logmel_compute (lm, out, samples, n_samples, &err);
  g_assert (t == frames || (t == 0 && err && err->domain == MM_ERROR));
  g_clear_error (&err);
  g_free (out);
  g_free (samples);
  mm_logmel_free (lm);
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  if (size < 1)
    return 0;
  switch (data[0] % 4) {
    case 0:
      fuzz_text (data + 1, size - 1);
      break;
    case 1:
      fuzz_image (data + 1, size - 1);
      break;
    case 2:
      fuzz_logmel (data + 1, size - 1);
      break;
    default:
      fuzz_cue (data + 1, size - 1);
      break;
  }
  return 0;
}
