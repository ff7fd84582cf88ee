/* libmm preprocessing: tokenizers, image resize/normalise, log-mel.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 * None of the run functions allocate after their *_new ().
 */
#ifndef MM_PREPROCESS_H
#define MM_PREPROCESS_H

#include <glib.h>
#include "mm.h"

G_BEGIN_DECLS

/* ---- vocabulary (shared, immutable; built at model load) ---- */
typedef struct _MmVocab MmVocab;
/* @words: n strings (pointers kept, must outlive the vocab).  Duplicate
 * words keep their first id. */
MmVocab *mm_vocab_new (const char *const *words, guint n);
void mm_vocab_free (MmVocab *v);
/* id of @word (length @len bytes), or -1 */
gint32 mm_vocab_lookup (const MmVocab *v, const char *word, gsize len);
guint mm_vocab_size (const MmVocab *v);

/* Replaces invalid UTF-8 by U+FFFD into @out (capacity @cap bytes, needs
 * 3 * len + 1 in the worst case); stops at a whole character when full.
 * Returns bytes written (NUL-terminated). */
gsize mm_utf8_sanitize (char *out, gsize cap, const char *in, gsize len);

/* ---- word tokenizer (wordvec): see models/FORMAT.md ----
 * Writes up to @max_ids known-word ids; returns how many.  @scratch must hold
 * 4 * len + 16 bytes (lower-casing can grow text). */
guint mm_word_tokenize (const MmVocab *v, gboolean lowercase, const char *utf8, gsize len,
    gint32 *ids, guint max_ids, char *scratch, gsize scratch_size);

/* ---- WordPiece (BERT) ----
 * ids[0] = [CLS], then pieces, then [SEP]; total <= max_len.  Returns the
 * number of ids; *n_content receives the number of pieces (without CLS/SEP).
 * Returns 0 if the vocab lacks [CLS]/[SEP]/[UNK] (checked at load instead). */
typedef struct _MmWordPiece MmWordPiece;
MmWordPiece *mm_wordpiece_new (
    const MmVocab *v, gboolean lowercase, guint max_len, gsize max_text_bytes, GError **error);
void mm_wordpiece_free (MmWordPiece *wp);
guint
mm_wordpiece_encode (MmWordPiece *wp, const char *utf8, gsize len, gint32 *ids, guint *n_content);

/* ---- image ----
 * out (3, out_h, out_w) planar RGB floats = ((bilinear resize of src) / 255 - mean) / std.
 * Bilinear with half-pixel centres, edge clamp (PyTorch align_corners=False,
 * antialias=False).  Validates sizes/stride (MM_ERROR_INPUT). */
gboolean mm_image_preprocess (float *out, guint out_w, guint out_h, const float mean[3],
    const float std[3], MmPixelFormat fmt, const guint8 *pixels, guint width, guint height,
    gsize stride, GError **error);
/* The same for any MmImage, YUV included: each bilinear tap is converted
 * to RGB in float (BT.601/709/2020, limited or full range, clamped to
 * 0..255) and the taps are then blended as above.  Validates sizes, planes
 * and strides (MM_ERROR_INPUT). */
gboolean mm_image_preprocess_image (float *out, guint out_w, guint out_h, const float mean[3],
    const float std[3], const MmImage *image, GError **error);

/* ---- log-mel ---- */
typedef struct
{
  guint sample_rate, n_fft, win_length, hop_length, n_mels;
  double f_min, f_max, log_offset;
} MmMelParams;

/* Limits of the log-mel front end (also what the audio loader accepts). */
#define MM_LOGMEL_MAX_FFT 4096
#define MM_LOGMEL_MAX_MELS 2048

typedef struct _MmLogMel MmLogMel;
/* Precomputes window, DFT basis and filterbank; scratch for up to
 * @max_samples samples. */
MmLogMel *mm_logmel_new (const MmMelParams *p, gsize max_samples, GError **error);
void mm_logmel_free (MmLogMel *lm);
/* Number of frames for n samples: 0 if n < win... (n >= n_fft needed):
 * 1 + (n - n_fft) / hop_length. */
guint mm_logmel_n_frames (const MmLogMel *lm, gsize n_samples);
/* out (n_mels, n_frames) = ln (mel power + log_offset).  Returns n_frames
 * (0 with error when n_samples < n_fft or > max_samples). */
guint
mm_logmel_compute (MmLogMel *lm, float *out, const float *samples, gsize n_samples, GError **error);

G_END_DECLS
#endif
