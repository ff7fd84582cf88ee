/* libmm head: MLP to classes (softmax), tags (sigmoid) or values (regression).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   x (d_in) -> [linear -> relu] x (layers - 1) -> linear (dim) -> activation
 *
 * The layer sizes come from the tensors head.layers.i.weight (out, in): the
 * first layer's input is the fused vector, the last layer's output is
 * "dim" (= the number of labels).
 */
#include <string.h>

#include "graph.h"
#include "mm-private.h"
#include "ops.h"

#define MAX_LAYERS 64

typedef struct
{
  guint d_in, d_out;
  const float *w, *b; /* (d_out, d_in), (d_out) */
} Linear;

struct _MmHeadWeights
{
  MmHeadKind kind;
  guint n_layers;
  Linear *layer; /* n_layers, owned */
  guint dim;
  const char **labels; /* dim strings into the JSON tree; vector owned */
  guint max_width;     /* largest layer output */
  MmGraph *graph;      /* type "graph": the network instead of the layers */
  guint d_in;          /* graph: the features input's size */
};

struct _MmHead
{
  MmModel *model; /* owned reference */
  const MmHeadWeights *w;
  float *buf[2]; /* max_width each */
  MmGraphCtx *graph;
};

/* ---- weights ----------------------------------------------------------- */

void
mm_head_weights_free (MmHeadWeights *w)
{
  if (!w)
    return;
  g_free (w->layer);
  g_free (w->labels);
  mm_graph_free (w->graph);
  g_free (w);
}

static gboolean
parse_kind (const char *s, MmHeadKind *kind)
{
  if (strcmp (s, "softmax") == 0)
    *kind = MM_HEAD_SOFTMAX;
  else if (strcmp (s, "sigmoid") == 0)
    *kind = MM_HEAD_SIGMOID;
  else if (strcmp (s, "regression") == 0)
    *kind = MM_HEAD_REGRESSION;
  else
    return FALSE;
  return TRUE;
}

static gboolean
bind_layers (MmHeadWeights *w, const MmSafetensors *st, const char *label, GError **error)
{
  char name[64];
  gint64 d_in = -1; /* the first layer's input size is what the file says */

  w->layer = g_new0 (Linear, w->n_layers);
  for (guint i = 0; i < w->n_layers; i++) {
    Linear *l = &w->layer[i];
    gboolean last = i + 1 == w->n_layers;
    gint64 d_out = last ? (gint64)w->dim : -1;

    g_snprintf (name, sizeof name, "head.layers.%u.weight", i);
    l->w = mm_bind (st, label, name, MM_SHAPE (d_out, d_in), error);
    if (!l->w)
      return FALSE;
    const MmTensor *t = mm_safetensors_find (st, name);
    if (!t || t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > 65535 || t->shape[1] < 1
        || t->shape[1] > 65535 + MAX_LAYERS) {
      mm_format_error (error, label, "tensor \"%s\": sizes must be 1 to 65535", name);
      return FALSE;
    }
    l->d_out = t->shape[0];
    l->d_in = t->shape[1];
    g_snprintf (name, sizeof name, "head.layers.%u.bias", i);
    l->b = mm_bind (st, label, name, MM_SHAPE (l->d_out), error);
    if (!l->b)
      return FALSE;
    w->max_width = MAX (w->max_width, l->d_out);
    d_in = l->d_out;
  }
  return TRUE;
}

MmHeadWeights *
mm_head_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  MmHeadWeights *w = g_new0 (MmHeadWeights, 1);
  const char *kind;
  guint n_labels;

  kind = mm_json_string (cfg, label, "kind", TRUE, NULL, error);
  if (!kind)
    goto fail;
  if (!parse_kind (kind, &w->kind)) {
    mm_format_error (error, label,
        "unknown \"kind\" \"%s\" (softmax, sigmoid or "
        "regression)",
        kind);
    goto fail;
  }
  gboolean graph =
      g_strcmp0 (json_object_get_string_member_with_default (cfg, "type", ""), "graph") == 0;
  if ((!graph && !mm_json_uint (cfg, label, "layers", TRUE, 0, 1, MAX_LAYERS, &w->n_layers, error))
      || !mm_json_uint (cfg, label, "dim", TRUE, 0, 1, 65535, &w->dim, error))
    goto fail;
  w->labels = mm_json_string_array (cfg, label, "labels", 1, 65535, &n_labels, error);
  if (!w->labels)
    goto fail;
  if (n_labels != w->dim) {
    mm_format_error (error, label, "%u labels but \"dim\" is %u", n_labels, w->dim);
    goto fail;
  }
  if (graph) {
    gint64 d[8];
    w->graph = mm_graph_load (st, cfg, "head.", label, error);
    if (!w->graph)
      goto fail;
    if (mm_graph_n_inputs (w->graph) != 1
        || mm_graph_input_kind (w->graph, 0) != MM_GRAPH_INPUT_FEATURES
        || mm_graph_input_shape (w->graph, 0, d) != 2 || d[0] != 1 || d[1] > 65535) {
      mm_format_error (error, label,
          "a head graph takes one input of kind \"features\" and shape [1, D], D <= 65535");
      goto fail;
    }
    w->d_in = (guint)d[1];
    w->max_width = 1;
    return w;
  }
  if (!bind_layers (w, st, label, error))
    goto fail;
  return w;

fail:
  mm_head_weights_free (w);
  return NULL;
}

guint
mm_head_weights_dim (const MmHeadWeights *w)
{
  return w->dim;
}

guint
mm_head_weights_n_inputs (const MmHeadWeights *w)
{
  return w->graph ? w->d_in : w->layer[0].d_in;
}

MmHeadKind
mm_head_weights_kind (const MmHeadWeights *w)
{
  return w->kind;
}

const char *
mm_head_weights_label (const MmHeadWeights *w, guint i)
{
  return i < w->dim ? w->labels[i] : NULL;
}

/* ---- context ----------------------------------------------------------- */

MmHead *
mm_head_new (MmModel *model, const MmContextParams *params, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  if (!model->head) {
    mm_set_error (error, MM_ERROR_MISSING_COMPONENT, MM_MODEL_LABEL (model),
        "the model has no head component");
    return NULL;
  }
  const MmHeadWeights *w = model->head;
  mm_blas_init ();
  if (params && params->n_threads > 0)
    mm_blas_set_threads (params->n_threads);

  MmHead *head = g_new0 (MmHead, 1);
  head->model = mm_model_ref (model);
  head->w = w;
  /* max_width comes from the file: allocate with g_try and fail cleanly */
  head->buf[0] = g_try_new (float, w->max_width);
  head->buf[1] = g_try_new (float, w->max_width);
  if (!head->buf[0] || !head->buf[1]) {
    mm_format_error (error, MM_MODEL_LABEL (model),
        "head: cannot allocate %" G_GSIZE_FORMAT " MB of scratch for layers %u wide",
        ((gsize)2 * w->max_width * sizeof (float)) >> 20, w->max_width);
    mm_head_free (head);
    return NULL;
  }
  if (w->graph
      && !(head->graph = mm_graph_ctx_new (w->graph, MM_MODEL_LABEL (model), FALSE, error))) {
    mm_head_free (head);
    return NULL;
  }
  return head;
}

void
mm_head_free (MmHead *head)
{
  if (!head)
    return;
  g_free (head->buf[0]);
  g_free (head->buf[1]);
  mm_graph_ctx_free (head->graph);
  mm_model_unref (head->model);
  g_free (head);
}

gboolean
mm_head_run (MmHead *head, const float *fused, float *scores, GError **error)
{
  g_return_val_if_fail (head != NULL, FALSE);
  const MmHeadWeights *w = head->w;
  if (!scores) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (head->model), "head: no output buffer");
    return FALSE;
  }
  if (!fused) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (head->model), "head: no input vector");
    return FALSE;
  }

  if (head->graph) {
    memcpy (mm_graph_ctx_input (head->graph, 0), fused, w->d_in * sizeof (float));
    mm_graph_ctx_run (head->graph, scores);
  }
  const float *x = fused;
  for (guint i = 0; i < w->n_layers; i++) {
    const Linear *l = &w->layer[i];
    gboolean last = i + 1 == w->n_layers;
    float *y = last ? scores : head->buf[i % 2];
    /* y (d_out) = x (d_in) W^T + b, ReLU between layers */
    mm_linear (y, x, l->w, l->b, 1, l->d_in, l->d_out);
    if (!last)
      mm_relu (y, l->d_out);
    x = y;
  }
  if (w->kind == MM_HEAD_SOFTMAX)
    mm_softmax (scores, 1, w->dim);
  else if (w->kind == MM_HEAD_SIGMOID)
    mm_sigmoid (scores, w->dim);
  return TRUE;
}
