/* libmm: BERT-style text encoder (Hugging Face BertModel tensor names).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Three parts, as in llama2.c:
 * - BertConfig + MmBertWeights: parsed and bound once at model load; the
 *   weights are const float * into the mapped file, shared by contexts.
 * - MmBertContext: the WordPiece tokenizer and every activation buffer,
 *   sized for min (max_len, max_text_bytes + 2) tokens when the context is
 *   created.
 * - mm_bert_encode(): tokenise, forward, pool; never allocates.
 *
 * The forward pass is the post-LayerNorm BERT of Devlin et al. as
 * transformers' BertModel runs it in eval mode, for one sequence without
 * padding (so every key is valid in self-attention).
 */
#include <math.h>
#include <string.h>

#include "mm-private.h"
#include "attention.h"
#include "conv-cl.h"
#include "linear-packed.h"
#include "conv-bf16.h"
#include "ops.h"
#include "preprocess.h"

#include "text-bert.h"

#define BERT_MAX_LAYERS 64
#define BERT_MAX_DIM 65536
/* Attention is O(max_len^2) in time (its scratch is linear in max_len: a
 * tile, attention.c); 8192 tokens is far beyond any BERT context. */
#define BERT_MAX_LEN 8192

typedef enum
{
  BERT_POOL_CLS,    /* hidden state of [CLS] */
  BERT_POOL_MEAN,   /* mean over all tokens, [CLS] and [SEP] included */
  BERT_POOL_POOLER, /* tanh (dense ([CLS])), BertPooler */
} BertPooling;

typedef struct
{
  guint vocab_size;   /* V */
  guint hidden;       /* H */
  guint layers;       /* L */
  guint heads;        /* A, H % A == 0 */
  guint intermediate; /* I */
  guint max_len;      /* tokens with [CLS] and [SEP], <= n_positions */
  guint n_positions;  /* P, rows of the position table */
  guint dim;          /* output size: H, or proj rows */
  gboolean lowercase;
  BertPooling pooling;
  float eps; /* LayerNorm epsilon */
} BertConfig;

typedef struct
{
  const float *query_w, *query_b; /* (H, H), (H) */
  const float *key_w, *key_b;
  const float *value_w, *value_b;
  const float *attn_out_w, *attn_out_b; /* (H, H), (H) */
  const float *attn_ln_w, *attn_ln_b;   /* (H) */
  const float *inter_w, *inter_b;       /* (I, H), (I) */
  const float *out_w, *out_b;           /* (H, I), (H) */
  const float *out_ln_w, *out_ln_b;     /* (H) */
  /* the linears again, packed at load with their biases (linear-packed.h),
   * see bert_linear; qkv is query, key and value as one (3H, H) linear: x
   * is read once, and its output rows (q | k | v) feed the fused attention
   * in place */
  MmLinearPacked qkv, attn_out, inter, out;
  /* the same in bf16 (conv-bf16.h), packed by the first bf16 context */
  MmConvBf16 qkv16, attn_out16, inter16, out16;
} BertLayer;

struct _MmBertWeights
{
  BertConfig cfg;
  const MmVocab *vocab;             /* owned by MmTextWeights */
  const float *word_emb;            /* (V, H) */
  const float *pos_emb;             /* (P, H) */
  const float *type_emb;            /* (T, H); only row 0 is used */
  const float *emb_ln_w, *emb_ln_b; /* (H) */
  BertLayer *layer;                 /* L */
  const float *pooler_w, *pooler_b; /* (H, H), (H) when pooling is "pooler" */
  const float *proj_w, *proj_b;     /* (D, H), (D) or NULL */
  gboolean bf16_ready;              /* the layers' bf16 linears are packed; under bf16_lock */
};

/* guards the one-time bf16 packing of any model's layers */
static GMutex bf16_lock;

struct _MmBertContext
{
  const MmBertWeights *w;
  MmWordPiece *wp;
  gint32 *ids;           /* (max_len) */
  float *x;              /* (max_len, H) hidden states */
  float *qkv;            /* (max_len, 3H): rows q | k | v */
  float *attn;           /* (max_len, H) attention output, heads concatenated */
  float *tmp;            /* (max_len, H) sublayer output + residual */
  float *ffn;            /* (max_len, I) */
  float *scratch;        /* mm_attention_fused_scratch (max_len, H / heads) */
  float *pooled;         /* (H) */
  guint max_tokens;      /* min (max_len, max_text_bytes + 2): the buffers' rows */
  gboolean bf16;         /* linears in bf16 (mm_bert_context_use_bf16) */
  guint16 *bf16_scratch; /* bf16: (max_tokens, max (H, I) + 1), a linear's input in bf16 */
};

/* ---------------------------------------------------------------------- */
/* Load                                                                    */

/* Binds "text.<name>" with a shape of @ndim dims (-1 = any). */
static const float *
bind2 (const MmSafetensors *st, const char *label, const char *name, guint ndim, gint64 d0,
    gint64 d1, GError **error)
{
  char full[256];
  gint64 shape[2] = { d0, d1 };

  g_snprintf (full, sizeof full, "text.%s", name);
  return mm_bind (st, label, full, ndim, shape, error);
}

/* Binds "text.encoder.layer.<i>.<name>". */
static const float *
bind_layer (const MmSafetensors *st, const char *label, guint i, const char *name, guint ndim,
    gint64 d0, gint64 d1, GError **error)
{
  char sub[200];

  g_snprintf (sub, sizeof sub, "encoder.layer.%u.%s", i, name);
  return bind2 (st, label, sub, ndim, d0, d1, error);
}

/* Rows of a tensor already bound with a free first dimension. */
static guint
tensor_rows (const MmSafetensors *st, const char *name)
{
  const MmTensor *t = mm_safetensors_find (st, name);
  return t && t->ndim >= 1 ? (guint)t->shape[0] : 0;
}

static gboolean
parse_config (BertConfig *c, JsonObject *cfg, const char *label, const MmVocab *vocab,
    gboolean lowercase, guint dim, GError **error)
{
  double eps;
  const char *pooling;

  memset (c, 0, sizeof *c);
  c->vocab_size = mm_vocab_size (vocab);
  c->lowercase = lowercase;
  c->dim = dim;
  if (!mm_json_uint (cfg, label, "hidden", TRUE, 0, 1, BERT_MAX_DIM, &c->hidden, error)
      || !mm_json_uint (cfg, label, "layers", TRUE, 0, 1, BERT_MAX_LAYERS, &c->layers, error)
      || !mm_json_uint (cfg, label, "heads", TRUE, 0, 1, BERT_MAX_DIM, &c->heads, error)
      || !mm_json_uint (
          cfg, label, "intermediate", TRUE, 0, 1, BERT_MAX_DIM, &c->intermediate, error)
      || !mm_json_uint (cfg, label, "max_len", TRUE, 0, 2, BERT_MAX_LEN, &c->max_len, error)
      || !mm_json_double (cfg, label, "layer_norm_eps", FALSE, 1e-12, &eps, error))
    return FALSE;
  if (c->hidden % c->heads != 0) {
    mm_format_error (
        error, label, "text: hidden size %u is not a multiple of heads %u", c->hidden, c->heads);
    return FALSE;
  }
  if (!(eps > 0.0 && eps < 1.0)) {
    mm_format_error (error, label, "text: layer_norm_eps %g is not in (0, 1)", eps);
    return FALSE;
  }
  c->eps = (float)eps;

  pooling = mm_json_string (cfg, label, "pooling", FALSE, "cls", error);
  if (!pooling)
    return FALSE;
  if (g_str_equal (pooling, "cls"))
    c->pooling = BERT_POOL_CLS;
  else if (g_str_equal (pooling, "mean"))
    c->pooling = BERT_POOL_MEAN;
  else if (g_str_equal (pooling, "pooler"))
    c->pooling = BERT_POOL_POOLER;
  else {
    mm_format_error (error, label, "text: unknown pooling \"%s\" (cls, mean or pooler)", pooling);
    return FALSE;
  }

  static const char *const special[] = { "[CLS]", "[SEP]", "[UNK]", "[PAD]" };
  for (guint i = 0; i < G_N_ELEMENTS (special); i++) {
    if (mm_vocab_lookup (vocab, special[i], strlen (special[i])) < 0) {
      mm_format_error (error, label, "text: the WordPiece vocabulary has no %s token", special[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
bind_embeddings (MmBertWeights *w, const MmSafetensors *st, const char *label, GError **error)
{
  BertConfig *c = &w->cfg;
  gint64 H = c->hidden;

  w->word_emb = bind2 (st, label, "embeddings.word_embeddings.weight", 2, c->vocab_size, H, error);
  if (!w->word_emb)
    return FALSE;
  w->pos_emb = bind2 (st, label, "embeddings.position_embeddings.weight", 2, -1, H, error);
  if (!w->pos_emb)
    return FALSE;
  c->n_positions = tensor_rows (st, "text.embeddings.position_embeddings.weight");
  if (c->max_len > c->n_positions) {
    mm_format_error (error, label,
        "text: max_len %u exceeds the %u rows of text.embeddings.position_embeddings.weight",
        c->max_len, c->n_positions);
    return FALSE;
  }
  w->type_emb = bind2 (st, label, "embeddings.token_type_embeddings.weight", 2, -1, H, error);
  if (!w->type_emb)
    return FALSE;
  if (tensor_rows (st, "text.embeddings.token_type_embeddings.weight") < 1) {
    mm_format_error (error, label, "text: text.embeddings.token_type_embeddings.weight is empty");
    return FALSE;
  }
  w->emb_ln_w = bind2 (st, label, "embeddings.LayerNorm.weight", 1, H, 0, error);
  w->emb_ln_b = w->emb_ln_w ? bind2 (st, label, "embeddings.LayerNorm.bias", 1, H, 0, error) : NULL;
  return w->emb_ln_b != NULL;
}

static gboolean
bind_layer_weights (BertLayer *l, guint i, const BertConfig *c, const MmSafetensors *st,
    const char *label, GError **error)
{
  gint64 H = c->hidden, I = c->intermediate;
  struct
  {
    const float **dst;
    const char *name;
    guint ndim;
    gint64 d0, d1;
  } t[] = {
    { &l->query_w, "attention.self.query.weight", 2, H, H },
    { &l->query_b, "attention.self.query.bias", 1, H, 0 },
    { &l->key_w, "attention.self.key.weight", 2, H, H },
    { &l->key_b, "attention.self.key.bias", 1, H, 0 },
    { &l->value_w, "attention.self.value.weight", 2, H, H },
    { &l->value_b, "attention.self.value.bias", 1, H, 0 },
    { &l->attn_out_w, "attention.output.dense.weight", 2, H, H },
    { &l->attn_out_b, "attention.output.dense.bias", 1, H, 0 },
    { &l->attn_ln_w, "attention.output.LayerNorm.weight", 1, H, 0 },
    { &l->attn_ln_b, "attention.output.LayerNorm.bias", 1, H, 0 },
    { &l->inter_w, "intermediate.dense.weight", 2, I, H },
    { &l->inter_b, "intermediate.dense.bias", 1, I, 0 },
    { &l->out_w, "output.dense.weight", 2, H, I },
    { &l->out_b, "output.dense.bias", 1, H, 0 },
    { &l->out_ln_w, "output.LayerNorm.weight", 1, H, 0 },
    { &l->out_ln_b, "output.LayerNorm.bias", 1, H, 0 },
  };

  for (guint j = 0; j < G_N_ELEMENTS (t); j++) {
    *t[j].dst = bind_layer (st, label, i, t[j].name, t[j].ndim, t[j].d0, t[j].d1, error);
    if (!*t[j].dst)
      return FALSE;
  }
  return TRUE;
}

/* Optional "proj" (dim, H); without it the output is the pooled H vector. */
static gboolean
bind_head (MmBertWeights *w, const MmSafetensors *st, const char *label, GError **error)
{
  BertConfig *c = &w->cfg;
  gint64 H = c->hidden;

  if (c->pooling == BERT_POOL_POOLER) {
    w->pooler_w = bind2 (st, label, "pooler.dense.weight", 2, H, H, error);
    if (!w->pooler_w)
      return FALSE;
    w->pooler_b = bind2 (st, label, "pooler.dense.bias", 1, H, 0, error);
    if (!w->pooler_b)
      return FALSE;
  }
  if (mm_has_tensor (st, "text.proj.weight")) {
    w->proj_w = bind2 (st, label, "proj.weight", 2, c->dim, H, error);
    if (!w->proj_w)
      return FALSE;
    if (mm_has_tensor (st, "text.proj.bias")) {
      w->proj_b = bind2 (st, label, "proj.bias", 1, c->dim, 0, error);
      if (!w->proj_b)
        return FALSE;
    }
  } else if (c->dim != c->hidden) {
    mm_format_error (error, label,
        "text: \"dim\" is %u but there is no text.proj.weight and hidden is %u", c->dim, c->hidden);
    return FALSE;
  }
  return TRUE;
}

/* qkv_w (3H, H), qkv_b (3H) = the layer's query, key and value weights
 * and biases, one under the other (the one linear both packers take) */
static void
concat_qkv (const BertLayer *l, int H, float *qkv_w, float *qkv_b)
{
  gsize hh = (gsize)H * H;
  memcpy (qkv_w, l->query_w, hh * sizeof (float));
  memcpy (qkv_w + hh, l->key_w, hh * sizeof (float));
  memcpy (qkv_w + 2 * hh, l->value_w, hh * sizeof (float));
  memcpy (qkv_b, l->query_b, H * sizeof (float));
  memcpy (qkv_b + H, l->key_b, H * sizeof (float));
  memcpy (qkv_b + 2 * H, l->value_b, H * sizeof (float));
}

/* Packs every layer's linears once, as 1x1 convolutions over n positions
 * of d_in channels (a linear is one): OpenBLAS repacked the weights on
 * every call, a fifth of the encoder's time at 64 tokens.  Query, key and
 * value become one (3H, H) linear (copied together first, freed after
 * packing).  Packing fails with a GError when memory is short. */
static gboolean
pack_layers (MmBertWeights *w, const char *label, GError **error)
{
  const BertConfig *c = &w->cfg;
  int H = c->hidden, I = c->intermediate;
  gsize hh = (gsize)H * H;
  float *qkv_w = g_try_new (float, 3 * hh), *qkv_b = g_try_new (float, 3 * (gsize)H);

  if (!qkv_w || !qkv_b) {
    mm_format_error (error, label,
        "text: cannot allocate %" G_GSIZE_FORMAT " MB to pack the query/key/value weights",
        (3 * hh * sizeof (float)) >> 20);
    g_free (qkv_w);
    g_free (qkv_b);
    return FALSE;
  }
  for (guint i = 0; i < c->layers; i++) {
    BertLayer *l = &w->layer[i];
    concat_qkv (l, H, qkv_w, qkv_b);
    struct
    {
      MmLinearPacked *cl;
      const float *w, *b;
      int d_in, d_out;
      const char *name;
    } m[] = {
      { &l->qkv, qkv_w, qkv_b, H, 3 * H, "query/key/value" },
      { &l->attn_out, l->attn_out_w, l->attn_out_b, H, H, "attention output" },
      { &l->inter, l->inter_w, l->inter_b, H, I, "intermediate" },
      { &l->out, l->out_w, l->out_b, I, H, "output" },
    };
    for (guint j = 0; j < G_N_ELEMENTS (m); j++) {
      GError *err = NULL;
      if (!mm_linear_packed_init (
              m[j].cl, m[j].w, m[j].b, m[j].d_in, m[j].d_out, m[j].name, &err)) {
        mm_format_error (error, label, "text: layer %u: %s", i, err->message);
        g_error_free (err);
        g_free (qkv_w);
        g_free (qkv_b);
        return FALSE;
      }
    }
  }
  g_free (qkv_w);
  g_free (qkv_b);
  return TRUE;
}

/* Floats of a context's buffers for n tokens (as mm_bert_context_new
 * allocates them): ids, x, qkv (3H), attn, tmp, ffn, attention scratch,
 * pooled. */
static guint64
bert_context_floats (const BertConfig *c, gsize n)
{
  guint64 H = c->hidden;
  return (guint64)n * (1 + 6 * H + c->intermediate)
      + mm_attention_fused_scratch ((int)n, (int)(H / c->heads)) + H;
}

/* The budget for sequences of up to @n tokens: the packed linears, a
 * context's buffers and the work of one cue of n tokens (the six linears,
 * QK^T and attention times V). */
static gboolean
bert_budget (const BertConfig *c, gsize n, const char *label, GError **error)
{
  int H = c->hidden, I = c->intermediate;
  guint64 packed = mm_linear_packed_bytes (H, 3 * H) + mm_linear_packed_bytes (H, H)
      + mm_linear_packed_bytes (H, I) + mm_linear_packed_bytes (I, H);
  guint64 linears = 4 * mm_conv_cl_flops (H, H, 1, 1, 1, n) + mm_conv_cl_flops (H, I, 1, 1, 1, n)
      + mm_conv_cl_flops (I, H, 1, 1, 1, n);
  guint64 bytes = c->layers * packed + bert_context_floats (c, n) * sizeof (float);
  guint64 flops =
      c->layers * (linears + 4 * (guint64)n * n * H) + 4 * (guint64)H * H + 2 * (guint64)c->dim * H;
  char what[160];
  g_snprintf (what, sizeof what,
      "text: BERT (%u layers, hidden %u, intermediate %u, %" G_GSIZE_FORMAT " tokens)", c->layers,
      c->hidden, c->intermediate, n);
  return mm_budget_check (label, what, bytes, flops, error);
}

MmBertWeights *
mm_bert_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label,
    const MmVocab *vocab, gboolean lowercase, guint dim, GError **error)
{
  MmBertWeights *w = g_new0 (MmBertWeights, 1);

  w->vocab = vocab;
  /* the budget at the default context size (max_text_bytes 64 KiB) */
  if (!parse_config (&w->cfg, cfg, label, vocab, lowercase, dim, error)
      || !bert_budget (&w->cfg,
          MIN ((gsize)w->cfg.max_len, (gsize)mm_context_default_params ().max_text_bytes + 2),
          label, error)
      || !bind_embeddings (w, st, label, error))
    goto fail;
  w->layer = g_new0 (BertLayer, w->cfg.layers);
  for (guint i = 0; i < w->cfg.layers; i++)
    if (!bind_layer_weights (&w->layer[i], i, &w->cfg, st, label, error))
      goto fail;
  if (!bind_head (w, st, label, error) || !pack_layers (w, label, error))
    goto fail;
  return w;

fail:
  mm_bert_weights_free (w);
  return NULL;
}

void
mm_bert_weights_free (MmBertWeights *w)
{
  if (!w)
    return;
  for (guint i = 0; w->layer && i < w->cfg.layers; i++) {
    BertLayer *l = &w->layer[i];
    mm_linear_packed_clear (&l->qkv);
    mm_linear_packed_clear (&l->attn_out);
    mm_linear_packed_clear (&l->inter);
    mm_linear_packed_clear (&l->out);
    mm_conv_bf16_clear (&l->qkv16);
    mm_conv_bf16_clear (&l->attn_out16);
    mm_conv_bf16_clear (&l->inter16);
    mm_conv_bf16_clear (&l->out16);
  }
  g_free (w->layer);
  g_free (w);
}

/* ---------------------------------------------------------------------- */
/* Context                                                                 */

/* Scratch sizes come from the file (max_len <= P rows, I columns), so a
 * hostile file can ask for gigabytes: allocate with g_try and fail cleanly. */
static float *
try_floats (gsize n, gboolean *ok)
{
  float *p = *ok ? g_try_new0 (float, n) : NULL;
  *ok = p != NULL;
  return p;
}

MmBertContext *
mm_bert_context_new (
    const MmBertWeights *w, gsize max_text_bytes, const char *label, GError **error)
{
  const BertConfig *c = &w->cfg;
  gsize H = c->hidden, n;
  MmBertContext *ctx = g_new0 (MmBertContext, 1);
  gboolean ok = TRUE;

  /* Every WordPiece token but [CLS] and [SEP] covers at least one byte, so
   * a text of max_text_bytes never needs more than max_text_bytes + 2 rows;
   * the tokenizer truncates at max_tokens regardless. */
  n = MIN ((gsize)c->max_len, max_text_bytes + 2);
  if (!bert_budget (c, n, label, error)) {
    g_free (ctx);
    return NULL;
  }
  ctx->max_tokens = (guint)n;
  ctx->w = w;
  ctx->wp = mm_wordpiece_new (w->vocab, c->lowercase, ctx->max_tokens, max_text_bytes, error);
  if (!ctx->wp) {
    mm_bert_context_free (ctx);
    return NULL;
  }
  ctx->ids = g_try_new0 (gint32, n);
  ok = ctx->ids != NULL;
  ctx->x = try_floats (n * H, &ok);
  ctx->qkv = try_floats (n * 3 * H, &ok);
  ctx->attn = try_floats (n * H, &ok);
  ctx->tmp = try_floats (n * H, &ok);
  ctx->ffn = try_floats (n * c->intermediate, &ok);
  ctx->scratch = try_floats (mm_attention_fused_scratch ((int)n, (int)(H / c->heads)), &ok);
  ctx->pooled = try_floats (H, &ok);
  if (!ok) {
    gsize bytes = bert_context_floats (c, n) * sizeof (float);
    mm_format_error (error, label,
        "text: cannot allocate %" G_GSIZE_FORMAT
        " MB of BERT scratch for %u tokens, hidden %u, intermediate %u",
        bytes >> 20, ctx->max_tokens, c->hidden, c->intermediate);
    mm_bert_context_free (ctx);
    return NULL;
  }
  return ctx;
}

/* The layers' linears in bf16, packed once for all contexts of the model */
static gboolean
pack_layers_bf16 (MmBertWeights *w, const char *label, GError **error)
{
  const BertConfig *c = &w->cfg;
  int H = c->hidden, I = c->intermediate;
  gsize hh = (gsize)H * H;
  float *qkv_w = g_try_new (float, 3 * hh), *qkv_b = g_try_new (float, 3 * (gsize)H);
  gboolean ok = qkv_w && qkv_b;
  GError *err = NULL;

  for (guint i = 0; ok && i < c->layers; i++) {
    BertLayer *l = &w->layer[i];
    /* from an earlier attempt that ran out of memory */
    mm_conv_bf16_clear (&l->qkv16);
    mm_conv_bf16_clear (&l->attn_out16);
    mm_conv_bf16_clear (&l->inter16);
    mm_conv_bf16_clear (&l->out16);
    concat_qkv (l, H, qkv_w, qkv_b);
    ok = mm_conv_bf16_init (&l->qkv16, qkv_w, NULL, qkv_b, H, 3 * H, 1, 1, "query/key/value", &err)
        && mm_conv_bf16_init (&l->attn_out16, l->attn_out_w, NULL, l->attn_out_b, H, H, 1, 1,
            "attention output", &err)
        && mm_conv_bf16_init (
            &l->inter16, l->inter_w, NULL, l->inter_b, H, I, 1, 1, "intermediate", &err)
        && mm_conv_bf16_init (&l->out16, l->out_w, NULL, l->out_b, I, H, 1, 1, "output", &err);
  }
  if (!ok)
    mm_format_error (error, label, "text: bf16 linears: %s",
        err ? err->message : "cannot allocate the query/key/value weights");
  g_clear_error (&err);
  g_free (qkv_w);
  g_free (qkv_b);
  return ok;
}

gboolean
mm_bert_context_use_bf16 (MmBertContext *ctx, const char *label, GError **error)
{
  MmBertWeights *w = (MmBertWeights *)ctx->w; /* packed once, under the lock */
  gboolean ok = TRUE;
  g_mutex_lock (&bf16_lock);
  if (!w->bf16_ready)
    ok = w->bf16_ready = pack_layers_bf16 (w, label, error);
  g_mutex_unlock (&bf16_lock);
  const BertConfig *c = &ctx->w->cfg;
  gsize n = (gsize)ctx->max_tokens * (MAX (c->hidden, c->intermediate) + 1);
  if (ok && !ctx->bf16_scratch && !(ctx->bf16_scratch = g_try_new (guint16, n))) {
    mm_format_error (error, label, "text: cannot allocate %" G_GSIZE_FORMAT " MB of bf16 scratch",
        (n * sizeof (guint16)) >> 20);
    ok = FALSE;
  }
  ctx->bf16 = ok;
  return ok;
}

void
mm_bert_context_free (MmBertContext *ctx)
{
  if (!ctx)
    return;
  if (ctx->wp)
    mm_wordpiece_free (ctx->wp);
  g_free (ctx->ids);
  g_free (ctx->x);
  g_free (ctx->qkv);
  g_free (ctx->attn);
  g_free (ctx->tmp);
  g_free (ctx->ffn);
  g_free (ctx->scratch);
  g_free (ctx->pooled);
  g_free (ctx->bf16_scratch);
  g_free (ctx);
}

/* ---------------------------------------------------------------------- */
/* Forward                                                                 */

/* x (n, H) = LayerNorm (word[ids] + position[0..n) + token_type[0]) */
static void
bert_embed (float *x, const MmBertWeights *w, const gint32 *ids, int n)
{
  int H = w->cfg.hidden;

  mm_embedding (x, w->word_emb, ids, n, H);
  mm_add (x, w->pos_emb, (gsize)n * H); /* positions 0..n-1 are rows 0..n-1 */
  for (int t = 0; t < n; t++)
    mm_add (x + (gsize)t * H, w->type_emb, H);
  mm_layernorm (x, x, n, H, w->emb_ln_w, w->emb_ln_b, w->cfg.eps);
}

/* The reference ops path runs mm_linear (textbook loops); so do big
 * products when OpenBLAS has several threads (MM_THREADS), which the packed kernel
 * would not use. */
static gboolean
bert_unpacked (int n, int d_in, int d_out)
{
  return mm_ops_get_reference () || (mm_blas_get_threads () > 1 && (double)n * d_in * d_out > 1e6);
}

/* y (n, d_out) = act (x (n, d_in) W^T + b [+ residual (n, d_out)]) through
 * the packed weights (bf16 ones when l16 is given, x rounded into
 * @scratch), the bias, residual and GELU in the kernel's epilogue; act is
 * NULL or GELU. */
static void
bert_linear (float *y, const float *x, const float *w, const float *b, const MmLinearPacked *cl,
    const MmConvBf16 *l16, guint16 *scratch, const float *residual, const MmAct *act, int n,
    int d_in, int d_out)
{
  if (l16 && !mm_ops_get_reference ()) {
    mm_linear_bf16_run (l16, y, x, n, residual, act, scratch);
    return;
  }
  if (bert_unpacked (n, d_in, d_out)) {
    mm_linear (y, x, w, b, n, d_in, d_out);
    if (residual)
      mm_add (y, residual, (gsize)n * d_out);
    if (act)
      mm_gelu (y, (gsize)n * d_out);
    return;
  }
  mm_linear_packed_run (cl, y, x, n, residual, act);
}

/* qkv (n, 3H) = x (n, H) [Wq; Wk; Wv]^T + [bq; bk; bv]; in bf16 when
 * @bf16 (the scratch for x in bf16) is given */
static void
bert_qkv (float *qkv, float *tmp, const float *x, const BertLayer *l, guint16 *bf16, int n, int H)
{
  if (bf16 && !mm_ops_get_reference ()) {
    mm_linear_bf16_run (&l->qkv16, qkv, x, n, NULL, NULL, bf16);
    return;
  }
  if (!bert_unpacked (n, H, 3 * H)) {
    mm_linear_packed_run (&l->qkv, qkv, x, n, NULL, NULL);
    return;
  }
  const float *ws[3] = { l->query_w, l->key_w, l->value_w };
  const float *bs[3] = { l->query_b, l->key_b, l->value_b };
  for (int p = 0; p < 3; p++) {
    mm_linear (tmp, x, ws[p], bs[p], n, H, H);
    for (int t = 0; t < n; t++)
      memcpy (qkv + (gsize)t * 3 * H + p * H, tmp + (gsize)t * H, H * sizeof (float));
  }
}

/* x (n, H) = BertLayer (x): post-LN self-attention block, then FFN block. */
static void
bert_layer (MmBertContext *s, const BertLayer *l, const BertConfig *c, int n)
{
  int H = c->hidden, I = c->intermediate;
  static const MmAct gelu = { MM_ACT_GELU, 0.0f, 0.0f };

  gboolean b16 = s->bf16;
  guint16 *sc = s->bf16 ? s->bf16_scratch : NULL;
  bert_qkv (s->qkv, s->tmp, s->x, l, sc, n, H);
  mm_attention_fused (
      s->attn, H, s->qkv, s->qkv + H, s->qkv + 2 * H, 3 * (gsize)H, n, H, c->heads, s->scratch);
  bert_linear (s->tmp, s->attn, l->attn_out_w, l->attn_out_b, &l->attn_out,
      b16 ? &l->attn_out16 : NULL, sc, s->x, NULL, n, H, H);
  mm_layernorm (s->x, s->tmp, n, H, l->attn_ln_w, l->attn_ln_b, c->eps);

  bert_linear (s->ffn, s->x, l->inter_w, l->inter_b, &l->inter, b16 ? &l->inter16 : NULL, sc, NULL,
      &gelu, n, H, I);
  bert_linear (
      s->tmp, s->ffn, l->out_w, l->out_b, &l->out, b16 ? &l->out16 : NULL, sc, s->x, NULL, n, I, H);
  mm_layernorm (s->x, s->tmp, n, H, l->out_ln_w, l->out_ln_b, c->eps);
}

/* pooled (H) from x (n, H) */
static void
bert_pool (float *pooled, const MmBertWeights *w, const float *x, int n)
{
  int H = w->cfg.hidden;

  switch (w->cfg.pooling) {
    case BERT_POOL_MEAN:
      for (int j = 0; j < H; j++) {
        double sum = 0.0;
        for (int t = 0; t < n; t++)
          sum += x[(gsize)t * H + j];
        pooled[j] = (float)(sum / n);
      }
      break;
    case BERT_POOL_POOLER:
      mm_linear (pooled, x, w->pooler_w, w->pooler_b, 1, H, H);
      mm_tanh (pooled, H);
      break;
    case BERT_POOL_CLS:
    default:
      memcpy (pooled, x, H * sizeof (float));
      break;
  }
}

/* embedding (dim) = proj (pool (BERT (wordpiece (utf8)))).  @utf8 must be
 * valid UTF-8 of at most the context's max_text_bytes.  *n_content receives
 * the number of WordPiece tokens without [CLS]/[SEP].  Errors are not
 * prefixed with the model: the caller adds it. */
gboolean
mm_bert_encode (MmBertContext *ctx, const char *utf8, gsize len, float *embedding, guint *n_content,
    GError **error)
{
  const MmBertWeights *w = ctx->w;
  const BertConfig *c = &w->cfg;
  guint n;

  n = mm_wordpiece_encode (ctx->wp, utf8, len, ctx->ids, n_content);
  if (n < 2 || n > ctx->max_tokens) { /* cannot happen: specials checked at load */
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "text: WordPiece gave %u tokens (at most %u)", n,
        ctx->max_tokens);
    return FALSE;
  }

  bert_embed (ctx->x, w, ctx->ids, n);
  for (guint i = 0; i < c->layers; i++)
    bert_layer (ctx, &w->layer[i], c, n);
  bert_pool (ctx->pooled, w, ctx->x, n);

  if (w->proj_w)
    mm_linear (embedding, ctx->pooled, w->proj_w, w->proj_b, 1, c->hidden, c->dim);
  else
    memcpy (embedding, ctx->pooled, c->hidden * sizeof (float));
  return TRUE;
}
