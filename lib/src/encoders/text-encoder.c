/* libmm: text encoders -- averaged word vectors ("wordvec") and, through
 * text-bert.c, a BERT-style transformer ("bert").
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * MmTextWeights holds what both types share (the vocabulary, the case
 * setting, the output size) plus the type's own weights; it is built once
 * at model load and never changes.  MmTextEncoder is one user's context:
 * the sanitised-text buffer and the tokenizer/activation scratch, all sized
 * from MmContextParams.max_text_bytes in mm_text_encoder_new(), so
 * mm_text_encoder_encode() never allocates.
 */
#include <string.h>

#include "graph.h"
#include "mm-private.h"
#include "ops.h"
#include "preprocess.h"

#include "text-bert.h"

#define TEXT_MAX_VOCAB (1u << 22)
#define TEXT_MAX_DIM 65536
/* Beyond this a context's scratch would be hundreds of MB. */
#define TEXT_MAX_TEXT_BYTES (16u << 20)

typedef enum
{
  TEXT_WORDVEC,
  TEXT_BERT,
  TEXT_GRAPH,
} TextType;

struct _MmTextWeights
{
  TextType type;
  guint dim; /* D, output size */
  gboolean lowercase;
  char **words; /* V owned copies; the vocab points into them */
  MmVocab *vocab;

  /* wordvec */
  guint emb_dim;           /* E */
  const float *embeddings; /* (V, E) */
  const float *proj_w;     /* (D, E) or NULL (then D = E) */
  const float *proj_b;     /* (D) or NULL */

  /* bert */
  MmBertWeights *bert;

  /* graph: token ids (and mask, types) of max_len positions */
  MmGraph *graph;
  guint max_len, pad_id;
};

struct _MmTextEncoder
{
  MmModel *model; /* strong ref: keeps the weights mapped */
  const MmTextWeights *w;
  gsize max_text_bytes;
  char *text; /* (max_text_bytes + 1) sanitised, truncated input */

  /* wordvec */
  gint32 *ids; /* (max_ids) known-word ids */
  guint max_ids;
  char *scratch; /* tokenizer scratch (lower-cased text) */
  gsize scratch_size;
  float *mean; /* (E) */

  /* bert */
  MmBertContext *bert;
  gboolean bf16; /* its linears run bf16 */

  /* graph */
  MmGraphCtx *graph;
  MmWordPiece *wp;
};

/* ---------------------------------------------------------------------- */
/* Load                                                                    */

static gboolean
load_wordvec (MmTextWeights *w, const MmSafetensors *st, const char *label, GError **error)
{
  const char *emb_name = "text.embeddings.weight";
  guint V = mm_vocab_size (w->vocab);

  w->embeddings = mm_bind (st, label, emb_name, 2, (const gint64[]){ V, -1 }, error);
  if (!w->embeddings)
    return FALSE;
  w->emb_dim = (guint)mm_safetensors_find (st, emb_name)->shape[1];
  if (w->emb_dim < 1 || w->emb_dim > TEXT_MAX_DIM) {
    mm_format_error (error, label, "text: %s has %u columns (1..%u allowed)", emb_name, w->emb_dim,
        TEXT_MAX_DIM);
    return FALSE;
  }

  if (mm_has_tensor (st, "text.proj.weight")) {
    w->proj_w =
        mm_bind (st, label, "text.proj.weight", 2, (const gint64[]){ w->dim, w->emb_dim }, error);
    if (!w->proj_w)
      return FALSE;
    if (mm_has_tensor (st, "text.proj.bias")) {
      w->proj_b = mm_bind (st, label, "text.proj.bias", 1, (const gint64[]){ w->dim }, error);
      if (!w->proj_b)
        return FALSE;
    }
  } else if (w->dim != w->emb_dim) {
    mm_format_error (error, label,
        "text: \"dim\" is %u but %s has %u columns and there is no text.proj.weight", w->dim,
        emb_name, w->emb_dim);
    return FALSE;
  }
  return TRUE;
}

/* Copies the vocabulary out of the JSON tree so the weights own it. */
static gboolean
load_vocab (MmTextWeights *w, JsonObject *cfg, const char *label, GError **error)
{
  guint n = 0;
  const char **words = mm_json_string_array (cfg, label, "vocab", 1, TEXT_MAX_VOCAB, &n, error);

  if (!words)
    return FALSE;
  w->words = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    w->words[i] = g_strdup (words[i]);
  g_free (words);
  w->vocab = mm_vocab_new ((const char *const *)w->words, n);
  return TRUE;
}

/* type "graph": a token_ids input [1, max_len] and optionally
 * attention_mask and token_type_ids of the same shape */
static gboolean
load_graph (
    MmTextWeights *w, const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  if (!mm_json_uint (cfg, label, "max_len", TRUE, 0, 2, 8192, &w->max_len, error)
      || !mm_json_uint (
          cfg, label, "pad_id", FALSE, 0, 0, mm_vocab_size (w->vocab) - 1, &w->pad_id, error))
    return FALSE;
  static const char *const special[] = { "[CLS]", "[SEP]", "[UNK]" };
  for (guint i = 0; i < G_N_ELEMENTS (special); i++)
    if (mm_vocab_lookup (w->vocab, special[i], strlen (special[i])) < 0) {
      mm_format_error (error, label, "text: the WordPiece vocabulary has no %s token", special[i]);
      return FALSE;
    }
  w->graph = mm_graph_load (st, cfg, "text.", label, error);
  if (!w->graph)
    return FALSE;
  if (mm_graph_find_input (w->graph, MM_GRAPH_INPUT_TOKEN_IDS) < 0) {
    mm_format_error (error, label, "a text graph needs an input of kind token_ids");
    return FALSE;
  }
  for (guint i = 0; i < mm_graph_n_inputs (w->graph); i++) {
    gint64 d[8];
    MmGraphInputKind k = mm_graph_input_kind (w->graph, i);
    if ((k != MM_GRAPH_INPUT_TOKEN_IDS && k != MM_GRAPH_INPUT_ATTENTION_MASK
            && k != MM_GRAPH_INPUT_TOKEN_TYPE_IDS)
        || mm_graph_input_shape (w->graph, i, d) != 2 || d[0] != 1 || d[1] != w->max_len) {
      mm_format_error (error, label,
          "text graph input %u: the inputs are token_ids, attention_mask, token_type_ids, each "
          "of shape [1, %u] (max_len)",
          i, w->max_len);
      return FALSE;
    }
  }
  if (mm_graph_dim (w->graph) != w->dim) {
    mm_format_error (error, label, "text graph: \"dim\" differs");
    return FALSE;
  }
  return TRUE;
}

MmTextWeights *
mm_text_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  MmTextWeights *w = g_new0 (MmTextWeights, 1);
  const char *type = mm_json_string (cfg, label, "type", TRUE, NULL, error);

  if (!type)
    goto fail;
  if (g_str_equal (type, "wordvec"))
    w->type = TEXT_WORDVEC;
  else if (g_str_equal (type, "bert"))
    w->type = TEXT_BERT;
  else if (g_str_equal (type, "graph"))
    w->type = TEXT_GRAPH;
  else {
    mm_set_error (
        error, MM_ERROR_UNSUPPORTED, label, "text: unknown type \"%s\" (wordvec or bert)", type);
    goto fail;
  }

  if (!mm_json_uint (cfg, label, "dim", TRUE, 0, 1, TEXT_MAX_DIM, &w->dim, error)
      || !mm_json_bool (cfg, label, "lowercase", TRUE, &w->lowercase, error)
      || !load_vocab (w, cfg, label, error))
    goto fail;

  if (w->type == TEXT_WORDVEC) {
    if (!load_wordvec (w, st, label, error))
      goto fail;
  } else if (w->type == TEXT_GRAPH) {
    if (!load_graph (w, st, cfg, label, error))
      goto fail;
  } else {
    w->bert = mm_bert_weights_load (st, cfg, label, w->vocab, w->lowercase, w->dim, error);
    if (!w->bert)
      goto fail;
  }
  return w;

fail:
  mm_text_weights_free (w);
  return NULL;
}

void
mm_text_weights_free (MmTextWeights *w)
{
  if (!w)
    return;
  mm_bert_weights_free (w->bert);
  mm_graph_free (w->graph);
  if (w->vocab)
    mm_vocab_free (w->vocab);
  g_strfreev (w->words);
  g_free (w);
}

guint
mm_text_weights_dim (const MmTextWeights *w)
{
  return w ? w->dim : 0;
}

/* ---------------------------------------------------------------------- */
/* Context                                                                 */

MmTextEncoder *
mm_text_encoder_new (MmModel *model, const MmContextParams *params, GError **error)
{
  MmContextParams defaults = mm_context_default_params ();
  MmTextEncoder *enc;
  const MmTextWeights *w;

  g_return_val_if_fail (model != NULL, NULL);
  if (!params)
    params = &defaults;
  w = model->text;
  if (!w) {
    mm_set_error (error, MM_ERROR_MISSING_COMPONENT, MM_MODEL_LABEL (model),
        "the model has no text component");
    return NULL;
  }
  if (params->max_text_bytes > TEXT_MAX_TEXT_BYTES) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (model),
        "max_text_bytes %" G_GSIZE_FORMAT " is above the %u supported", params->max_text_bytes,
        TEXT_MAX_TEXT_BYTES);
    return NULL;
  }

  mm_blas_init ();
  if (params->n_threads > 0)
    mm_blas_set_threads (params->n_threads);

  enc = g_new0 (MmTextEncoder, 1);
  enc->model = mm_model_ref (model);
  enc->w = w;
  enc->max_text_bytes = params->max_text_bytes ? params->max_text_bytes : defaults.max_text_bytes;
  enc->text = g_try_malloc (enc->max_text_bytes + 1);
  if (!enc->text)
    goto oom;

  if (w->type == TEXT_WORDVEC) {
    /* every word takes at least one byte of text */
    enc->max_ids = (guint)enc->max_text_bytes + 1;
    enc->ids = g_try_new (gint32, enc->max_ids);
    enc->scratch_size = 4 * enc->max_text_bytes + 16;
    enc->scratch = g_try_malloc (enc->scratch_size);
    enc->mean = g_try_new0 (float, w->emb_dim);
    if (!enc->ids || !enc->scratch || !enc->mean)
      goto oom;
  } else if (w->type == TEXT_GRAPH) {
    enc->wp = mm_wordpiece_new (w->vocab, w->lowercase, w->max_len, enc->max_text_bytes, error);
    enc->graph = enc->wp ? mm_graph_ctx_new (w->graph, MM_MODEL_LABEL (model),
                     mm_precision_resolve (params) == MM_PRECISION_BF16, error)
                         : NULL;
    enc->ids = g_try_new (gint32, w->max_len);
    if (!enc->graph || !enc->ids) {
      if (!enc->ids && enc->graph)
        goto oom;
      mm_text_encoder_free (enc);
      return NULL;
    }
    enc->bf16 = mm_graph_ctx_is_bf16 (enc->graph);
  } else {
    enc->bert = mm_bert_context_new (w->bert, enc->max_text_bytes, MM_MODEL_LABEL (model), error);
    /* bf16 covers BERT's linears and a graph's convs; wordvec runs fp32 */
    if (!enc->bert
        || (mm_precision_resolve (params) == MM_PRECISION_BF16
            && !mm_bert_context_use_bf16 (enc->bert, MM_MODEL_LABEL (model), error))) {
      mm_text_encoder_free (enc);
      return NULL;
    }
    enc->bf16 = mm_precision_resolve (params) == MM_PRECISION_BF16;
  }
  return enc;

oom:
  mm_format_error (error, MM_MODEL_LABEL (model),
      "text: cannot allocate %" G_GSIZE_FORMAT " MB of scratch for max_text_bytes %" G_GSIZE_FORMAT,
      (9 * enc->max_text_bytes + 21 + (gsize)w->emb_dim * sizeof (float)) >> 20,
      enc->max_text_bytes);
  mm_text_encoder_free (enc);
  return NULL;
}

MmPrecision
mm_text_encoder_get_precision (const MmTextEncoder *enc)
{
  return enc && enc->bf16 ? MM_PRECISION_BF16 : MM_PRECISION_FP32;
}

void
mm_text_encoder_free (MmTextEncoder *enc)
{
  if (!enc)
    return;
  mm_bert_context_free (enc->bert);
  mm_graph_ctx_free (enc->graph);
  if (enc->wp)
    mm_wordpiece_free (enc->wp);
  g_free (enc->text);
  g_free (enc->ids);
  g_free (enc->scratch);
  g_free (enc->mean);
  mm_model_unref (enc->model);
  g_free (enc);
}

/* ---------------------------------------------------------------------- */
/* Forward                                                                 */

/* mean (E) = average of embeddings[ids] (zeros when n = 0) */
static void
wordvec_mean (float *mean, const float *embeddings, const gint32 *ids, guint n, guint E)
{
  memset (mean, 0, E * sizeof (float));
  for (guint i = 0; i < n; i++)
    mm_add (mean, embeddings + (gsize)ids[i] * E, E);
  if (n > 0) {
    float inv = 1.0f / n;
    for (guint j = 0; j < E; j++)
      mean[j] *= inv;
  }
}

/* embedding (D) = proj (mean of the known words' vectors) */
static guint
wordvec_encode (MmTextEncoder *enc, const char *utf8, gsize len, float *embedding)
{
  const MmTextWeights *w = enc->w;
  guint n;

  n = mm_word_tokenize (
      w->vocab, w->lowercase, utf8, len, enc->ids, enc->max_ids, enc->scratch, enc->scratch_size);
  wordvec_mean (enc->mean, w->embeddings, enc->ids, n, w->emb_dim);
  if (w->proj_w)
    mm_linear (embedding, enc->mean, w->proj_w, w->proj_b, 1, w->emb_dim, w->dim);
  else
    memcpy (embedding, enc->mean, w->dim * sizeof (float));
  return n;
}

/* the graph on [CLS] pieces [SEP] padded to max_len */
static guint
graph_encode (MmTextEncoder *enc, const char *utf8, gsize len, float *embedding)
{
  const MmTextWeights *w = enc->w;
  const MmGraph *g = w->graph;
  guint n_content = 0, n = mm_wordpiece_encode (enc->wp, utf8, len, enc->ids, &n_content);
  for (guint i = 0; i < mm_graph_n_inputs (g); i++) {
    float *x = mm_graph_ctx_input (enc->graph, i);
    MmGraphInputKind k = mm_graph_input_kind (g, i);
    for (guint t = 0; t < w->max_len; t++)
      x[t] = k == MM_GRAPH_INPUT_TOKEN_IDS     ? (float)(t < n ? (guint)enc->ids[t] : w->pad_id)
          : k == MM_GRAPH_INPUT_ATTENTION_MASK ? (t < n ? 1.0f : 0.0f)
                                               : 0.0f;
  }
  mm_graph_ctx_run (enc->graph, embedding);
  return n_content;
}

gboolean
mm_text_encoder_encode (MmTextEncoder *enc, const char *text, gssize len, float *embedding,
    guint *n_tokens, GError **error)
{
  gsize n_bytes, clean_len;
  guint n = 0;

  g_return_val_if_fail (enc != NULL, FALSE);
  if (!embedding) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (enc->model), "text: no output buffer");
    return FALSE;
  }
  if (!text && len != 0) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (enc->model), "text: NULL text");
    return FALSE;
  }
  n_bytes = !text ? 0 : len < 0 ? strlen (text) : (gsize)len;

  /* Invalid UTF-8 becomes U+FFFD; the copy stops at the last whole
   * character that fits in max_text_bytes. */
  clean_len = mm_utf8_sanitize (enc->text, enc->max_text_bytes + 1, text ? text : "", n_bytes);

  if (enc->w->type == TEXT_WORDVEC) {
    n = wordvec_encode (enc, enc->text, clean_len, embedding);
  } else if (enc->w->type == TEXT_GRAPH) {
    n = graph_encode (enc, enc->text, clean_len, embedding);
  } else if (!mm_bert_encode (enc->bert, enc->text, clean_len, embedding, &n, error)) {
    g_prefix_error (error, "%s: ", MM_MODEL_LABEL (enc->model));
    return FALSE;
  }
  if (n_tokens)
    *n_tokens = n;
  return TRUE;
}
