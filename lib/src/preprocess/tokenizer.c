/* libmm: vocabulary, UTF-8 sanitising, word tokenizer and WordPiece.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything here works on a stream of characters decoded by utf8_next(),
 * which never reads past the given length and turns every invalid sequence
 * into U+FFFD.  Nothing allocates after mm_vocab_new () / mm_wordpiece_new ():
 * case mapping and accent stripping are done one character at a time with
 * g_unichar_tolower () and g_unichar_fully_decompose (), which do not
 * allocate (unlike g_utf8_strdown () and g_utf8_normalize ()).
 *
 * Threads: an MmVocab is immutable after mm_vocab_new () and may be shared;
 * an MmWordPiece holds the scratch of one encode, so one per thread.
 *
 * UTF-8 policy (mm_utf8_sanitize and both tokenizers):
 * - each maximal subpart of an ill-formed sequence becomes one U+FFFD
 *   (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts";
 *   the same as Python's bytes.decode ("utf-8", "replace") and WHATWG):
 *   a byte that cannot start a sequence is one U+FFFD, a truncated sequence
 *   (lead byte plus the valid continuation bytes that follow it) is one;
 * - overlong forms, surrogates (ED A0..BF) and values above U+10FFFF are
 *   ill-formed;
 * - an embedded NUL byte is treated as invalid and becomes U+FFFD, so the
 *   sanitised text is a proper C string.  BERT's cleaning drops U+0000 and
 *   U+FFFD alike, and for the word tokenizer U+FFFD separates words, so a NUL
 *   never glues two words together there.
 */
#include <string.h>

#include "preprocess.h"

/* ------------------------------------------------------------------ */
/* vocabulary: open addressing with linear probing, keys are (ptr, len) */

typedef struct
{
  const char *word; /* NULL = empty slot */
  guint32 len;
  guint32 hash;
  gint32 id;
} VocabSlot;

struct _MmVocab
{
  VocabSlot *slots;
  guint32 mask;  /* capacity - 1, capacity a power of two */
  guint n_words; /* ids given out: the n passed to mm_vocab_new */
};

/* FNV-1a, 32 bits */
static guint32
hash_bytes (const char *s, gsize len)
{
  guint32 h = 2166136261u;
  for (gsize i = 0; i < len; i++) {
    h ^= (guint8)s[i];
    h *= 16777619u;
  }
  return h;
}

MmVocab *
mm_vocab_new (const char *const *words, guint n)
{
  if (!words)
    n = 0;
  /* load factor <= 1/2 */
  guint64 cap = 16;
  while (cap < 2 * (guint64)n)
    cap *= 2;
  if (cap > G_MAXUINT32)
    return NULL;

  MmVocab *v = g_new0 (MmVocab, 1);
  v->slots = g_new0 (VocabSlot, cap);
  v->mask = (guint32)(cap - 1);
  v->n_words = n;
  for (guint i = 0; i < n; i++) {
    const char *w = words[i];
    if (!w)
      continue;
    gsize len = strlen (w);
    if (len > G_MAXUINT32)
      continue;
    guint32 h = hash_bytes (w, len);
    guint32 j = h & v->mask;
    gboolean duplicate = FALSE;
    while (v->slots[j].word) {
      VocabSlot *s = &v->slots[j];
      if (s->hash == h && s->len == len && memcmp (s->word, w, len) == 0) {
        duplicate = TRUE; /* keep the first id */
        break;
      }
      j = (j + 1) & v->mask;
    }
    if (duplicate)
      continue;
    v->slots[j] = (VocabSlot){ .word = w, .len = (guint32)len, .hash = h, .id = (gint32)i };
  }
  return v;
}

void
mm_vocab_free (MmVocab *v)
{
  if (!v)
    return;
  g_free (v->slots);
  g_free (v);
}

gint32
mm_vocab_lookup (const MmVocab *v, const char *word, gsize len)
{
  if (!v || (!word && len) || len > G_MAXUINT32)
    return -1;
  guint32 h = hash_bytes (word, len);
  for (guint32 j = h & v->mask;; j = (j + 1) & v->mask) {
    const VocabSlot *s = &v->slots[j];
    if (!s->word)
      return -1;
    if (s->hash == h && s->len == len && memcmp (s->word, word, len) == 0)
      return s->id;
  }
}

guint
mm_vocab_size (const MmVocab *v)
{
  return v ? v->n_words : 0;
}

/* ------------------------------------------------------------------ */
/* UTF-8 decoding */

#define REPLACEMENT 0xFFFDu

/* Decodes the character at s[*pos] (*pos < len) and advances *pos past it.
 * See the policy at the top of the file. */
static gunichar
utf8_next (const guint8 *s, gsize len, gsize *pos)
{
  gsize i = *pos;
  guint8 b0 = s[i++];
  if (b0 < 0x80) {
    *pos = i;
    return b0 ? b0 : REPLACEMENT;
  }
  int need;
  gunichar c;
  guint8 lo = 0x80, hi = 0xBF; /* allowed range of the next byte */
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    c = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    c = b0 & 0x0F;
    if (b0 == 0xE0)
      lo = 0xA0; /* no overlongs */
    else if (b0 == 0xED)
      hi = 0x9F; /* no surrogates */
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    c = b0 & 0x07;
    if (b0 == 0xF0)
      lo = 0x90; /* no overlongs */
    else if (b0 == 0xF4)
      hi = 0x8F; /* <= U+10FFFF */
  } else {
    *pos = i;
    return REPLACEMENT;
  }
  for (int k = 0; k < need; k++, i++) {
    if (i >= len || s[i] < lo || s[i] > hi) {
      *pos = i; /* the maximal subpart ends before s[i] */
      return REPLACEMENT;
    }
    c = (c << 6) | (s[i] & 0x3F);
    lo = 0x80;
    hi = 0xBF;
  }
  *pos = i;
  return c;
}

/* Peeks the character at @pos without advancing; 0 at the end. */
static gunichar
utf8_peek (const guint8 *s, gsize len, gsize pos)
{
  return pos < len ? utf8_next (s, len, &pos) : 0;
}

gsize
mm_utf8_sanitize (char *out, gsize cap, const char *in, gsize len)
{
  if (!out || cap == 0)
    return 0;
  if (!in)
    len = 0;
  const guint8 *s = (const guint8 *)in;
  gsize w = 0, pos = 0;
  while (pos < len) {
    if (s[pos] - 1u < 0x7Fu) { /* a run of ASCII other than NUL: as is */
      gsize end = pos + 1;
      while (end < len && s[end] - 1u < 0x7Fu)
        end++;
      gsize n = MIN (end - pos, cap - 1 - w);
      memcpy (out + w, s + pos, n);
      w += n;
      pos += n;
      if (pos < end)
        break; /* out is full */
      continue;
    }
    gsize start = pos;
    gunichar c = utf8_next (s, len, &pos);
    /* U+FFFD from the decoder, unless the input really held EF BF BD */
    gboolean invalid =
        c == REPLACEMENT && !(pos - start == 3 && memcmp (s + start, "\xEF\xBF\xBD", 3) == 0);
    gsize n = invalid ? 3 : pos - start;
    if (w + n + 1 > cap)
      break;
    memcpy (out + w, invalid ? "\xEF\xBF\xBD" : (const char *)s + start, n);
    w += n;
  }
  out[w] = '\0';
  return w;
}

/* Bytes of @in to keep so that at most @max bytes remain and a valid
 * multi-byte character is not cut in two (at most 3 bytes are given back). */
static gsize
truncate_utf8 (const guint8 *in, gsize len, gsize max)
{
  if (len <= max)
    return len;
  gsize cut = max;
  for (int k = 0; k < 3 && cut > 0 && (in[cut] & 0xC0) == 0x80; k++)
    cut--;
  if ((in[cut] & 0xC0) == 0x80)
    cut = max; /* stray continuation bytes: invalid anyway */
  return cut;
}

/* ------------------------------------------------------------------ */
/* character classes */

static gboolean
is_letter_type (GUnicodeType t)
{
  return t == G_UNICODE_UPPERCASE_LETTER || t == G_UNICODE_LOWERCASE_LETTER
      || t == G_UNICODE_TITLECASE_LETTER || t == G_UNICODE_MODIFIER_LETTER
      || t == G_UNICODE_OTHER_LETTER;
}

/* BERT's _is_whitespace, plus U+2028/U+2029 which Python's str.split ()
 * (BERT's whitespace_tokenize) also splits on.  The other characters
 * str.split () knows (\v \f U+001C..U+001F U+0085) are Cc and were already
 * removed by _clean_text. */
static gboolean
bert_is_whitespace (gunichar c)
{
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x2028 || c == 0x2029)
    return TRUE;
  return g_unichar_type (c) == G_UNICODE_SPACE_SEPARATOR;
}

/* BERT's _is_control (original google-research tokenization.py: Cc, Cf) */
static gboolean
bert_is_control (gunichar c)
{
  if (c == '\t' || c == '\n' || c == '\r')
    return FALSE;
  GUnicodeType t = g_unichar_type (c);
  return t == G_UNICODE_CONTROL || t == G_UNICODE_FORMAT;
}

static gboolean
bert_is_punctuation (gunichar c)
{
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96)
      || (c >= 123 && c <= 126))
    return TRUE;
  switch (g_unichar_type (c)) {
    case G_UNICODE_CONNECT_PUNCTUATION:
    case G_UNICODE_DASH_PUNCTUATION:
    case G_UNICODE_CLOSE_PUNCTUATION:
    case G_UNICODE_FINAL_PUNCTUATION:
    case G_UNICODE_INITIAL_PUNCTUATION:
    case G_UNICODE_OTHER_PUNCTUATION:
    case G_UNICODE_OPEN_PUNCTUATION:
      return TRUE;
    default:
      return FALSE;
  }
}

/* BERT's _is_chinese_char: the CJK Unified Ideographs blocks */
static gboolean
bert_is_cjk (gunichar c)
{
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF)
      || (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F)
      || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF)
      || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Python's Cased property, approximated: Lu, Ll, Lt, and the circled
 * letters and Roman numerals (Other_Uppercase / Other_Lowercase). */
static gboolean
py_is_cased (gunichar c)
{
  GUnicodeType t = g_unichar_type (c);
  return t == G_UNICODE_UPPERCASE_LETTER || t == G_UNICODE_LOWERCASE_LETTER
      || t == G_UNICODE_TITLECASE_LETTER || (c >= 0x2160 && c <= 0x217F)
      || (c >= 0x24B6 && c <= 0x24E9);
}

/* Python's Case_Ignorable property: Mn, Me, Cf, Lm, Sk and the
 * Word_Break MidLetter / MidNumLet / Single_Quote characters. */
static gboolean
py_is_case_ignorable (gunichar c)
{
  switch (c) {
    case '\'':
    case '.':
    case ':':
    case 0x00B7:
    case 0x0387:
    case 0x055F:
    case 0x05F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return TRUE;
    default:
      break;
  }
  switch (g_unichar_type (c)) {
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_ENCLOSING_MARK:
    case G_UNICODE_FORMAT:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_MODIFIER_SYMBOL:
      return TRUE;
    default:
      return FALSE;
  }
}

/* Simple lower-case mapping shared by both tokenizers: GLib's, plus the
 * Roman numerals and circled letters (Nl / So with a lower-case mapping)
 * that g_unichar_tolower () leaves alone but Python's str.lower () maps.
 * Callers handle U+0130 and U+03A3 themselves. */
static gunichar
simple_lower (gunichar c)
{
  if (c >= 0x2160 && c <= 0x216F)
    return c + 0x10;
  if (c >= 0x24B6 && c <= 0x24CF)
    return c + 0x1A;
  return g_unichar_tolower (c);
}

static int
put_utf8 (char *buf, gsize cap, gsize *len, gunichar c)
{
  if (c < 0x80) {
    if (*len + 1 > cap)
      return 0;
    buf[(*len)++] = (char)c;
    return 1;
  }
  char tmp[8];
  int n = g_unichar_to_utf8 (c, tmp);
  if (*len + n > cap)
    return 0;
  memcpy (buf + *len, tmp, n);
  *len += n;
  return n;
}

/* ------------------------------------------------------------------ */
/* word tokenizer (wordvec, models/FORMAT.md)
 *
 * Lower-casing is g_utf8_strdown ()'s, done per character without
 * allocating and independent of the locale (as g_utf8_strdown () behaves in
 * a non-Turkic, non-Lithuanian locale): the simple mapping, U+0130 -> "i"
 * U+0307, and capital sigma -> final sigma unless a letter follows.  The
 * apostrophe is ASCII U+0027 only; it belongs to a word when it has an
 * alphanumeric character on both sides ("don't"; "'tis" -> "tis"). */

typedef struct
{
  const MmVocab *v;
  char *buf;
  gsize cap, len;
  gboolean overflow; /* the word did not fit: cannot be known */
  gboolean pending_apostrophe;
  gint32 *ids;
  guint n, max;
} WordState;

static void
word_end (WordState *st)
{
  if (st->len && !st->overflow && st->n < st->max) {
    gint32 id = mm_vocab_lookup (st->v, st->buf, st->len);
    if (id >= 0)
      st->ids[st->n++] = id;
  }
  st->len = 0;
  st->overflow = FALSE;
  st->pending_apostrophe = FALSE;
}

static void
word_feed (WordState *st, gunichar c)
{
  /* g_unichar_isalnum () is g_ascii_isalnum () on ASCII, without the call */
  if (c < 0x80 ? g_ascii_isalnum (c) : g_unichar_isalnum (c)) {
    if (st->pending_apostrophe && !put_utf8 (st->buf, st->cap, &st->len, '\''))
      st->overflow = TRUE;
    st->pending_apostrophe = FALSE;
    if (!put_utf8 (st->buf, st->cap, &st->len, c))
      st->overflow = TRUE;
  } else if (c == '\'' && (st->len || st->overflow) && !st->pending_apostrophe) {
    st->pending_apostrophe = TRUE;
  } else {
    word_end (st);
  }
}

guint
mm_word_tokenize (const MmVocab *v, gboolean lowercase, const char *utf8, gsize len, gint32 *ids,
    guint max_ids, char *scratch, gsize scratch_size)
{
  if (!v || !ids || max_ids == 0 || !utf8 || !scratch)
    return 0;
  const guint8 *s = (const guint8 *)utf8;
  WordState st = { .v = v, .buf = scratch, .cap = scratch_size, .ids = ids, .max = max_ids };
  gsize pos = 0;
  while (pos < len && st.n < st.max) {
    gunichar c = utf8_next (s, len, &pos);
    if (!lowercase) {
      word_feed (&st, c);
    } else if (c < 0x80) {
      word_feed (&st, g_ascii_tolower (c)); /* = g_unichar_tolower on ASCII */
    } else if (c == 0x0130) {
      word_feed (&st, 'i');
      word_feed (&st, 0x0307);
    } else if (c == 0x03A3) {
      gunichar next = utf8_peek (s, len, pos);
      word_feed (&st, next && is_letter_type (g_unichar_type (next)) ? 0x03C3 : 0x03C2);
    } else {
      word_feed (&st, g_unichar_tolower (c));
    }
  }
  word_end (&st);
  return st.n;
}

/* ------------------------------------------------------------------ */
/* WordPiece (BERT)
 *
 * BERT's BasicTokenizer (google-research/bert tokenization.py) as one pass
 * over the characters:
 *   _clean_text: drop U+0000, U+FFFD (hence invalid UTF-8) and Cc/Cf
 *     characters except \t \n \r; whitespace separates words;
 *   _tokenize_chinese_chars: a CJK ideograph is a word of its own;
 *   lower () + _run_strip_accents when lowercase: Python's str.lower ()
 *     (simple mapping, U+0130 -> "i" U+0307, final sigma by Python's rule,
 *     case-ignorable and cased sets approximated, see py_is_*), then each
 *     character's canonical decomposition (g_unichar_fully_decompose) with
 *     the Mn marks dropped.  NFD's canonical reordering is skipped: it only
 *     permutes combining marks, and the Mn ones are dropped anyway;
 *   _run_split_on_punc: each punctuation character is a word of its own;
 * then WordpieceTokenizer: words over MM_WP_MAX_WORD_CHARS characters are
 * [UNK], otherwise greedy longest-match-first with "##" continuations, a
 * word with an unmatchable rest being a single [UNK].
 */

#define MM_WP_MAX_WORD_CHARS 100

struct _MmWordPiece
{
  const MmVocab *vocab;
  gboolean lowercase;
  guint max_len; /* including [CLS] and [SEP], >= 2 */
  gsize max_text_bytes;
  gint32 cls_id, sep_id, unk_id;

  /* the word being built: chars and their byte offsets into word[] */
  char word[MM_WP_MAX_WORD_CHARS * 4 + 4];
  guint word_off[MM_WP_MAX_WORD_CHARS + 1];
  guint word_chars; /* may exceed MM_WP_MAX_WORD_CHARS (then not stored) */
  /* "##" + a word tail for continuation lookups */
  char piece[2 + MM_WP_MAX_WORD_CHARS * 4 + 4];
  gint32 word_pieces[MM_WP_MAX_WORD_CHARS];

  /* output of the running encode */
  gint32 *ids;
  guint n_ids;
  gboolean full; /* content reached max_len - 2 */
};

MmWordPiece *
mm_wordpiece_new (
    const MmVocab *v, gboolean lowercase, guint max_len, gsize max_text_bytes, GError **error)
{
  if (!v) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT, "WordPiece: no vocabulary");
    return NULL;
  }
  gint32 cls = mm_vocab_lookup (v, "[CLS]", 5), sep = mm_vocab_lookup (v, "[SEP]", 5),
         unk = mm_vocab_lookup (v, "[UNK]", 5);
  if (cls < 0 || sep < 0 || unk < 0) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT, "WordPiece: vocabulary lacks %s",
        cls < 0       ? "[CLS]"
            : sep < 0 ? "[SEP]"
                      : "[UNK]");
    return NULL;
  }
  if (max_len < 2) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "WordPiece: max_len %u cannot hold [CLS] and [SEP]", max_len);
    return NULL;
  }
  MmWordPiece *wp = g_new0 (MmWordPiece, 1);
  wp->vocab = v;
  wp->lowercase = lowercase;
  wp->max_len = max_len;
  wp->max_text_bytes = max_text_bytes;
  wp->cls_id = cls;
  wp->sep_id = sep;
  wp->unk_id = unk;
  wp->piece[0] = wp->piece[1] = '#';
  return wp;
}

void
mm_wordpiece_free (MmWordPiece *wp)
{
  g_free (wp);
}

static void
wp_emit (MmWordPiece *wp, gint32 id)
{
  if (wp->n_ids < wp->max_len - 1)
    wp->ids[wp->n_ids++] = id;
  if (wp->n_ids >= wp->max_len - 1)
    wp->full = TRUE;
}

/* WordpieceTokenizer on the word being built, then clears it. */
static void
wp_flush_word (MmWordPiece *wp)
{
  guint n = wp->word_chars;
  if (n == 0)
    return;
  wp->word_chars = 0;
  if (n > MM_WP_MAX_WORD_CHARS) {
    wp_emit (wp, wp->unk_id);
    return;
  }
  guint n_pieces = 0;
  for (guint start = 0; start < n;) {
    const char *key = wp->word + wp->word_off[start];
    gsize prefix = 0;
    if (start > 0) {
      memcpy (wp->piece + 2, key, wp->word_off[n] - wp->word_off[start]);
      key = wp->piece;
      prefix = 2;
    }
    gint32 id = -1;
    guint end;
    for (end = n; end > start; end--) {
      id = mm_vocab_lookup (wp->vocab, key, prefix + wp->word_off[end] - wp->word_off[start]);
      if (id >= 0)
        break;
    }
    if (id < 0) {
      wp_emit (wp, wp->unk_id);
      return;
    }
    wp->word_pieces[n_pieces++] = id;
    start = end;
  }
  for (guint i = 0; i < n_pieces; i++)
    wp_emit (wp, wp->word_pieces[i]);
}

static void
wp_append (MmWordPiece *wp, gunichar c)
{
  guint i = wp->word_chars;
  if (i < MM_WP_MAX_WORD_CHARS) {
    if (i == 0)
      wp->word_off[0] = 0;
    wp->word_off[i + 1] = wp->word_off[i] + g_unichar_to_utf8 (c, wp->word + wp->word_off[i]);
  }
  if (wp->word_chars <= MM_WP_MAX_WORD_CHARS)
    wp->word_chars++;
}

/* One character after lower-casing and accent stripping:
 * _run_split_on_punc. */
static void
wp_feed_normalized (MmWordPiece *wp, gunichar c)
{
  if (bert_is_punctuation (c)) {
    wp_flush_word (wp);
    wp_append (wp, c);
    wp_flush_word (wp);
  } else {
    wp_append (wp, c);
  }
}

static void
wp_feed_lowered (MmWordPiece *wp, gunichar c)
{
  gunichar d[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
  gsize n = g_unichar_fully_decompose (c, FALSE, d, G_N_ELEMENTS (d));
  for (gsize i = 0; i < n; i++)
    if (g_unichar_type (d[i]) != G_UNICODE_NON_SPACING_MARK)
      wp_feed_normalized (wp, d[i]);
}

/* Cleaned text is what Python sees: characters _clean_text keeps */
static gboolean
bert_is_dropped (gunichar c)
{
  return c == 0 || c == REPLACEMENT || bert_is_control (c);
}

/* Python's final-sigma test, forward half: no cased character follows
 * (skipping case-ignorable ones) in the cleaned text. */
static gboolean
sigma_is_final (const guint8 *s, gsize len, gsize pos)
{
  while (pos < len) {
    gunichar c = utf8_next (s, len, &pos);
    if (bert_is_dropped (c) || py_is_case_ignorable (c))
      continue;
    return !py_is_cased (c);
  }
  return TRUE;
}

guint
mm_wordpiece_encode (MmWordPiece *wp, const char *utf8, gsize len, gint32 *ids, guint *n_content)
{
  if (n_content)
    *n_content = 0;
  if (!wp || !ids)
    return 0;
  if (!utf8)
    len = 0;
  const guint8 *s = (const guint8 *)utf8;
  len = truncate_utf8 (s, len, wp->max_text_bytes);

  wp->ids = ids;
  wp->n_ids = 0;
  wp->full = FALSE;
  wp->word_chars = 0;
  ids[wp->n_ids++] = wp->cls_id;
  if (wp->max_len <= 2)
    wp->full = TRUE;

  gboolean after_cased = FALSE; /* last non-case-ignorable character was cased */
  gsize pos = 0;
  while (pos < len && !wp->full) {
    gunichar c = utf8_next (s, len, &pos);
    if (bert_is_dropped (c))
      continue;
    if (bert_is_whitespace (c)) {
      wp_flush_word (wp);
      after_cased = FALSE;
      continue;
    }
    gboolean cjk = bert_is_cjk (c);
    if (cjk)
      wp_flush_word (wp);
    if (!wp->lowercase) {
      wp_feed_normalized (wp, c);
    } else if (c == 0x0130) {
      wp_feed_lowered (wp, 'i');
      wp_feed_lowered (wp, 0x0307);
    } else if (c == 0x03A3) {
      gboolean final = after_cased && sigma_is_final (s, len, pos);
      wp_feed_lowered (wp, final ? 0x03C2 : 0x03C3);
    } else {
      wp_feed_lowered (wp, simple_lower (c));
    }
    if (cjk)
      wp_flush_word (wp);
    if (!py_is_case_ignorable (c))
      after_cased = py_is_cased (c);
  }
  if (!wp->full)
    wp_flush_word (wp);

  guint n = wp->n_ids;
  ids[n++] = wp->sep_id;
  if (n_content)
    *n_content = n - 2;
  wp->ids = NULL;
  return n;
}
