/* libmm fusion: concatenation, or attention over modality tokens.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Both take a presence mask: a NULL input is a missing modality.
 *
 * concat:     Z = z_1 (+) ... (+) z_M [(+) mask], missing slices are zeros.
 * attention:  token_i = proj_i (z_i) + modality_embed[i]  (present inputs)
 *             out = LayerNorm (query + MHA (query, tokens, tokens))
 *             with missing tokens masked out of the keys, exactly as
 *             torch.nn.MultiheadAttention with key_padding_mask; with every
 *             input missing the attention term is zero: LayerNorm (query).
 */
#include <string.h>

#include "mm-private.h"
#include "ops.h"

#define MAX_INPUTS 64
#define LN_EPS 1e-5f

typedef enum
{
  FUSION_CONCAT,
  FUSION_ATTENTION,
} FusionKind;

typedef struct
{
  const char *modality; /* into the model's JSON tree */
  guint dim;
  guint offset;                 /* concat: where the slice starts */
  const float *proj_w, *proj_b; /* attention: (d_model, dim), (d_model) */
} FusionInput;

struct _MmFusionWeights
{
  FusionKind kind;
  guint n_inputs;
  FusionInput *input; /* n_inputs, owned */
  guint dim;
  gboolean append_mask;         /* concat */
  guint d_model, heads;         /* attention */
  const float *modality_embed;  /* (M, d_model) */
  const float *query;           /* (1, d_model) */
  const float *in_proj_w;       /* (3 d_model, d_model): q, k, v rows */
  const float *in_proj_b;       /* (3 d_model) */
  const float *out_w, *out_b;   /* (d_model, d_model), (d_model) */
  const float *norm_w, *norm_b; /* (d_model) */
};

struct _MmFusion
{
  MmModel *model; /* owned reference */
  const MmFusionWeights *w;
  /* attention scratch */
  float *tokens; /* (M, d_model) */
  float *q;      /* (1, d_model) */
  float *k, *v;  /* (M, d_model) */
  float *attn;   /* (1, d_model) */
  float *scores; /* (1, M) attention weights, mm_attention scratch */
  guint8 *valid; /* (M) */
};

/* ---- weights ----------------------------------------------------------- */

void
mm_fusion_weights_free (MmFusionWeights *w)
{
  if (!w)
    return;
  g_free (w->input);
  g_free (w);
}

static gboolean
load_inputs (MmFusionWeights *w, JsonObject *cfg, const char *label, GError **error)
{
  JsonNode *node = json_object_get_member (cfg, "inputs");
  if (!node || !JSON_NODE_HOLDS_ARRAY (node)) {
    mm_format_error (error, label, "\"inputs\" must be an array of objects");
    return FALSE;
  }
  JsonArray *a = json_node_get_array (node);
  guint n = json_array_get_length (a);
  if (n < 1 || n > MAX_INPUTS) {
    mm_format_error (error, label, "\"inputs\" has %u entries, expected 1 to %d", n, MAX_INPUTS);
    return FALSE;
  }
  w->input = g_new0 (FusionInput, n);
  w->n_inputs = n;
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, i);
    char what[512];

    if (!JSON_NODE_HOLDS_OBJECT (e)) {
      mm_format_error (error, label, "\"inputs\"[%u] is not an object", i);
      return FALSE;
    }
    g_snprintf (what, sizeof what, "%s: inputs[%u]", label, i);
    JsonObject *o = json_node_get_object (e);
    w->input[i].modality = mm_json_string (o, what, "modality", TRUE, NULL, error);
    if (!w->input[i].modality
        || !mm_json_uint (o, what, "dim", TRUE, 0, 1, 65535, &w->input[i].dim, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
load_concat (MmFusionWeights *w, JsonObject *cfg, const char *label, GError **error)
{
  guint total = 0;

  if (!mm_json_bool (cfg, label, "append_mask", FALSE, &w->append_mask, error))
    return FALSE;
  for (guint i = 0; i < w->n_inputs; i++) {
    w->input[i].offset = total;
    total += w->input[i].dim;
  }
  if (w->append_mask)
    total += w->n_inputs;
  if (w->dim != total) {
    mm_format_error (error, label,
        "concat \"dim\" is %u but the inputs%s add up "
        "to %u",
        w->dim, w->append_mask ? " and mask" : "", total);
    return FALSE;
  }
  return TRUE;
}

static gboolean
load_attention (
    MmFusionWeights *w, const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  char name[64];
  guint d, m = w->n_inputs;

  if (!mm_json_uint (cfg, label, "d_model", TRUE, 0, 1, 65535, &w->d_model, error)
      || !mm_json_uint (cfg, label, "heads", TRUE, 0, 1, 1024, &w->heads, error))
    return FALSE;
  d = w->d_model;
  if (d % w->heads != 0) {
    mm_format_error (error, label, "\"d_model\" %u is not a multiple of \"heads\" %u", d, w->heads);
    return FALSE;
  }
  if (w->dim != d) {
    mm_format_error (error, label, "attention \"dim\" %u differs from \"d_model\" %u", w->dim, d);
    return FALSE;
  }
  for (guint i = 0; i < m; i++) {
    FusionInput *in = &w->input[i];
    g_snprintf (name, sizeof name, "fusion.proj.%u.weight", i);
    in->proj_w = mm_bind (st, label, name, MM_SHAPE (d, in->dim), error);
    if (!in->proj_w)
      return FALSE;
    g_snprintf (name, sizeof name, "fusion.proj.%u.bias", i);
    in->proj_b = mm_bind (st, label, name, MM_SHAPE (d), error);
    if (!in->proj_b)
      return FALSE;
  }
  return (w->modality_embed = mm_bind (st, label, "fusion.modality_embed", MM_SHAPE (m, d), error))
      && (w->query = mm_bind (st, label, "fusion.query", MM_SHAPE (1, d), error))
      && (w->in_proj_w =
              mm_bind (st, label, "fusion.attn.in_proj_weight", MM_SHAPE (3 * d, d), error))
      && (w->in_proj_b = mm_bind (st, label, "fusion.attn.in_proj_bias", MM_SHAPE (3 * d), error))
      && (w->out_w = mm_bind (st, label, "fusion.attn.out_proj.weight", MM_SHAPE (d, d), error))
      && (w->out_b = mm_bind (st, label, "fusion.attn.out_proj.bias", MM_SHAPE (d), error))
      && (w->norm_w = mm_bind (st, label, "fusion.norm.weight", MM_SHAPE (d), error))
      && (w->norm_b = mm_bind (st, label, "fusion.norm.bias", MM_SHAPE (d), error));
}

MmFusionWeights *
mm_fusion_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  MmFusionWeights *w = g_new0 (MmFusionWeights, 1);
  const char *type = mm_json_string (cfg, label, "type", TRUE, NULL, error);

  if (!type)
    goto fail;
  if (strcmp (type, "concat") == 0)
    w->kind = FUSION_CONCAT;
  else if (strcmp (type, "attention") == 0)
    w->kind = FUSION_ATTENTION;
  else {
    mm_set_error (error, MM_ERROR_UNSUPPORTED, label, "unknown type \"%s\"", type);
    goto fail;
  }
  if (!mm_json_uint (cfg, label, "dim", TRUE, 0, 1, 65535 + MAX_INPUTS, &w->dim, error)
      || !load_inputs (w, cfg, label, error))
    goto fail;
  if (w->kind == FUSION_CONCAT ? !load_concat (w, cfg, label, error)
                               : !load_attention (w, st, cfg, label, error))
    goto fail;
  return w;

fail:
  mm_fusion_weights_free (w);
  return NULL;
}

guint
mm_fusion_weights_dim (const MmFusionWeights *w)
{
  return w->dim;
}

guint
mm_fusion_weights_n_inputs (const MmFusionWeights *w)
{
  return w->n_inputs;
}

const char *
mm_fusion_weights_input_modality (const MmFusionWeights *w, guint i)
{
  return i < w->n_inputs ? w->input[i].modality : NULL;
}

guint
mm_fusion_weights_input_dim (const MmFusionWeights *w, guint i)
{
  return i < w->n_inputs ? w->input[i].dim : 0;
}

/* ---- context ----------------------------------------------------------- */

MmFusion *
mm_fusion_new (MmModel *model, const MmContextParams *params, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  if (!model->fusion) {
    mm_set_error (error, MM_ERROR_MISSING_COMPONENT, MM_MODEL_LABEL (model),
        "the model has no fusion component");
    return NULL;
  }
  mm_blas_init ();
  if (params && params->n_threads > 0)
    mm_blas_set_threads (params->n_threads);

  const MmFusionWeights *w = model->fusion;
  MmFusion *f = g_new0 (MmFusion, 1);
  f->model = mm_model_ref (model);
  f->w = w;
  if (w->kind == FUSION_ATTENTION) {
    /* d_model comes from the file: allocate with g_try and fail cleanly */
    gsize md = (gsize)w->n_inputs * w->d_model;
    f->tokens = g_try_new (float, md);
    f->k = g_try_new (float, md);
    f->v = g_try_new (float, md);
    f->q = g_try_new (float, w->d_model);
    f->attn = g_try_new (float, w->d_model);
    f->scores = g_try_new (float, w->n_inputs);
    f->valid = g_try_new (guint8, w->n_inputs);
    if (!f->tokens || !f->k || !f->v || !f->q || !f->attn || !f->scores || !f->valid) {
      gsize bytes = (3 * md + 2 * w->d_model + w->n_inputs) * sizeof (float) + w->n_inputs;
      mm_format_error (error, MM_MODEL_LABEL (model),
          "fusion: cannot allocate %" G_GSIZE_FORMAT " MB of scratch for %u inputs of d_model %u",
          bytes >> 20, w->n_inputs, w->d_model);
      mm_fusion_free (f);
      return NULL;
    }
  }
  return f;
}

void
mm_fusion_free (MmFusion *f)
{
  if (!f)
    return;
  g_free (f->tokens);
  g_free (f->k);
  g_free (f->v);
  g_free (f->q);
  g_free (f->attn);
  g_free (f->scores);
  g_free (f->valid);
  mm_model_unref (f->model);
  g_free (f);
}

/* fused (dim) = z_1 (+) ... (+) z_M [(+) presence bits] */
static void
run_concat (const MmFusionWeights *w, const float *const *inputs, float *fused)
{
  for (guint i = 0; i < w->n_inputs; i++) {
    float *slice = fused + w->input[i].offset;
    if (inputs[i])
      memcpy (slice, inputs[i], w->input[i].dim * sizeof (float));
    else
      memset (slice, 0, w->input[i].dim * sizeof (float));
  }
  if (w->append_mask) {
    float *mask = fused + w->dim - w->n_inputs;
    for (guint i = 0; i < w->n_inputs; i++)
      mask[i] = inputs[i] ? 1.0f : 0.0f;
  }
}

/* fused (d) = LayerNorm (query + out_proj (attention (q, K, V))) */
static void
run_attention (MmFusion *f, const float *const *inputs, float *fused)
{
  const MmFusionWeights *w = f->w;
  int d = w->d_model, m = w->n_inputs, n_present = 0;

  for (int i = 0; i < m; i++) {
    float *tok = f->tokens + (gsize)i * d;
    f->valid[i] = inputs[i] != NULL;
    if (!inputs[i]) {
      memset (tok, 0, d * sizeof (float));
      continue;
    }
    n_present++;
    /* token_i (d) = proj_i (z_i (d_i)) + modality_embed[i] */
    mm_linear (tok, inputs[i], w->input[i].proj_w, w->input[i].proj_b, 1, w->input[i].dim, d);
    mm_add (tok, w->modality_embed + (gsize)i * d, d);
  }

  /* residual starts as the learned query */
  memcpy (fused, w->query, d * sizeof (float));
  if (n_present > 0) {
    /* q (1, d) = query Wq^T + bq;  K, V (m, d) = tokens Wk^T + bk, tokens Wv^T + bv */
    const gsize dd = (gsize)d * d;
    mm_linear (f->q, w->query, w->in_proj_w, w->in_proj_b, 1, d, d);
    mm_linear (f->k, f->tokens, w->in_proj_w + dd, w->in_proj_b + d, m, d, d);
    mm_linear (f->v, f->tokens, w->in_proj_w + 2 * dd, w->in_proj_b + 2 * d, m, d, d);
    mm_attention (f->attn, f->q, f->k, f->v, 1, m, d, w->heads, f->valid, f->scores);
    /* fused += attn (1, d) Wo^T + bo  (q reused as the output buffer) */
    mm_linear (f->q, f->attn, w->out_w, w->out_b, 1, d, d);
    mm_add (fused, f->q, d);
  }
  mm_layernorm (fused, fused, 1, d, w->norm_w, w->norm_b, LN_EPS);
}

gboolean
mm_fusion_run (MmFusion *fusion, const float *const *inputs, float *fused, GError **error)
{
  g_return_val_if_fail (fusion != NULL, FALSE);
  if (!fused) {
    mm_set_error (
        error, MM_ERROR_INPUT, MM_MODEL_LABEL (fusion->model), "fusion: no output buffer");
    return FALSE;
  }
  if (!inputs) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (fusion->model),
        "fusion: the inputs array is NULL (pass an array of %u entries, NULL = missing)",
        fusion->w->n_inputs);
    return FALSE;
  }
  if (fusion->w->kind == FUSION_CONCAT)
    run_concat (fusion->w, inputs, fused);
  else
    run_attention (fusion, inputs, fused);
  return TRUE;
}
