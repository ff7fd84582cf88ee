/* libmm numeric encoder: a vector of measurements (sensor readings, lab
 * values, frame statistics) -> embedding.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   v (F) -> missing values (NaN) as "nan" says -> x = (v - mean) / std
 *         -> [linear -> relu] x (layers - 1) -> linear (dim)
 *
 * mean and std are tensors of the file (numeric.mean, numeric.std), so the
 * normalisation a model was trained with travels with it.  The layer sizes
 * come from the tensors numeric.layers.i.weight (out, in): the first layer
 * takes F inputs, the last gives "dim".
 */
#include <math.h>
#include <string.h>

#include "mm-private.h"
#include "ops.h"

#define MAX_LAYERS 64
#define MAX_WIDTH 65535

typedef enum
{
  NAN_MEAN,  /* a missing value becomes the feature's mean (0 after normalising) */
  NAN_ZERO,  /* a missing value becomes 0 before normalising */
  NAN_ERROR, /* a missing value is an input error */
} NanPolicy;

typedef struct
{
  guint d_in, d_out;
  const float *w, *b; /* (d_out, d_in), (d_out) */
} Linear;

struct _MmNumericWeights
{
  guint n_features;
  const float *mean, *std; /* (n_features) each, into the mapping */
  NanPolicy nan;
  const char *modality;       /* into the JSON tree */
  const char **feature_names; /* n_features strings into the JSON tree, or NULL */
  guint n_layers;
  Linear *layer; /* n_layers, owned */
  guint dim;
  guint max_width; /* largest of n_features and every layer output */
};

struct _MmNumericEncoder
{
  MmModel *model; /* owned reference */
  const MmNumericWeights *w;
  float *x;      /* n_features: the normalised input */
  float *buf[2]; /* max_width each */
};

/* ---- weights ----------------------------------------------------------- */

void
mm_numeric_weights_free (MmNumericWeights *w)
{
  if (!w)
    return;
  g_free (w->layer);
  g_free (w->feature_names);
  g_free (w);
}

static gboolean
bind_layers (MmNumericWeights *w, const MmSafetensors *st, const char *label, GError **error)
{
  char name[64];
  gint64 d_in = w->n_features;

  w->layer = g_new0 (Linear, w->n_layers);
  for (guint i = 0; i < w->n_layers; i++) {
    Linear *l = &w->layer[i];
    gboolean last = i + 1 == w->n_layers;
    gint64 d_out = last ? (gint64)w->dim : -1;

    g_snprintf (name, sizeof name, "numeric.layers.%u.weight", i);
    l->w = mm_bind (st, label, name, MM_SHAPE (d_out, d_in), error);
    if (!l->w)
      return FALSE;
    const MmTensor *t = mm_safetensors_find (st, name);
    if (t->shape[0] < 1 || t->shape[0] > MAX_WIDTH) {
      mm_format_error (error, label, "tensor \"%s\": sizes must be 1 to %d", name, MAX_WIDTH);
      return FALSE;
    }
    l->d_out = t->shape[0];
    l->d_in = d_in;
    g_snprintf (name, sizeof name, "numeric.layers.%u.bias", i);
    l->b = mm_bind (st, label, name, MM_SHAPE (l->d_out), error);
    if (!l->b)
      return FALSE;
    w->max_width = MAX (w->max_width, l->d_out);
    d_in = l->d_out;
  }
  return TRUE;
}

MmNumericWeights *
mm_numeric_weights_load (
    const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  MmNumericWeights *w = g_new0 (MmNumericWeights, 1);

  if (!mm_json_uint (cfg, label, "features", TRUE, 0, 1, MAX_WIDTH, &w->n_features, error)
      || !mm_json_uint (cfg, label, "layers", TRUE, 0, 1, MAX_LAYERS, &w->n_layers, error)
      || !mm_json_uint (cfg, label, "dim", TRUE, 0, 1, MAX_WIDTH, &w->dim, error))
    goto fail;
  const char *nan = mm_json_string (cfg, label, "nan", FALSE, "mean", error);
  if (!nan)
    goto fail;
  if (strcmp (nan, "mean") == 0)
    w->nan = NAN_MEAN;
  else if (strcmp (nan, "zero") == 0)
    w->nan = NAN_ZERO;
  else if (strcmp (nan, "error") == 0)
    w->nan = NAN_ERROR;
  else {
    mm_format_error (error, label, "unknown \"nan\" \"%s\" (mean, zero or error)", nan);
    goto fail;
  }
  w->modality = mm_json_string (cfg, label, "modality", FALSE, "sensor", error);
  if (!w->modality)
    goto fail;
  if (!w->modality[0]) {
    mm_format_error (error, label, "\"modality\" is empty");
    goto fail;
  }
  if (json_object_has_member (cfg, "names")) {
    guint n_names;
    w->feature_names = mm_json_string_array (cfg, label, "names", 1, MAX_WIDTH, &n_names, error);
    if (!w->feature_names)
      goto fail;
    if (n_names != w->n_features) {
      mm_format_error (error, label, "%u names but \"features\" is %u", n_names, w->n_features);
      goto fail;
    }
  }
  w->mean = mm_bind (st, label, "numeric.mean", MM_SHAPE (w->n_features), error);
  w->std = w->mean ? mm_bind (st, label, "numeric.std", MM_SHAPE (w->n_features), error) : NULL;
  if (!w->std)
    goto fail;
  /* a zero, negative or non-finite std (or a non-finite mean) would turn
   * every input into inf or NaN: refuse the file, naming the feature */
  for (guint i = 0; i < w->n_features; i++) {
    if (!isfinite (w->mean[i]) || !isfinite (w->std[i]) || !(w->std[i] > 0.0f)) {
      mm_format_error (error, label,
          "feature %u: mean %g, std %g (the mean must be finite and the std finite and > 0)", i,
          w->mean[i], w->std[i]);
      goto fail;
    }
  }
  w->max_width = w->n_features;
  if (!bind_layers (w, st, label, error))
    goto fail;
  return w;

fail:
  mm_numeric_weights_free (w);
  return NULL;
}

guint
mm_numeric_weights_dim (const MmNumericWeights *w)
{
  return w->dim;
}

guint
mm_numeric_weights_n_features (const MmNumericWeights *w)
{
  return w->n_features;
}

const char *
mm_numeric_weights_modality (const MmNumericWeights *w)
{
  return w->modality;
}

const char *
mm_numeric_weights_feature_name (const MmNumericWeights *w, guint i)
{
  return w->feature_names && i < w->n_features ? w->feature_names[i] : NULL;
}

/* ---- context ----------------------------------------------------------- */

MmNumericEncoder *
mm_numeric_encoder_new (MmModel *model, const MmContextParams *params, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  if (!model->numeric) {
    mm_set_error (error, MM_ERROR_MISSING_COMPONENT, MM_MODEL_LABEL (model),
        "the model has no numeric component");
    return NULL;
  }
  const MmNumericWeights *w = model->numeric;
  mm_blas_init ();
  if (params && params->n_threads > 0)
    mm_blas_set_threads (params->n_threads);

  MmNumericEncoder *enc = g_new0 (MmNumericEncoder, 1);
  enc->model = mm_model_ref (model);
  enc->w = w;
  /* sizes come from the file: allocate with g_try and fail cleanly */
  enc->x = g_try_new (float, w->n_features);
  enc->buf[0] = g_try_new (float, w->max_width);
  enc->buf[1] = g_try_new (float, w->max_width);
  if (!enc->x || !enc->buf[0] || !enc->buf[1]) {
    mm_format_error (error, MM_MODEL_LABEL (model),
        "numeric: cannot allocate scratch for layers %u wide", w->max_width);
    mm_numeric_encoder_free (enc);
    return NULL;
  }
  return enc;
}

void
mm_numeric_encoder_free (MmNumericEncoder *enc)
{
  if (!enc)
    return;
  g_free (enc->x);
  g_free (enc->buf[0]);
  g_free (enc->buf[1]);
  mm_model_unref (enc->model);
  g_free (enc);
}

gboolean
mm_numeric_encoder_encode (MmNumericEncoder *enc, const float *features, gsize n_features,
    float *embedding, guint *n_missing, GError **error)
{
  g_return_val_if_fail (enc != NULL, FALSE);
  const MmNumericWeights *w = enc->w;
  const char *label = MM_MODEL_LABEL (enc->model);
  if (!embedding || (!features && n_features)) {
    mm_set_error (error, MM_ERROR_INPUT, label, "numeric: no input or output buffer");
    return FALSE;
  }
  if (n_features != w->n_features) {
    mm_set_error (error, MM_ERROR_INPUT, label,
        "numeric: got %" G_GSIZE_FORMAT " values, the model takes %u", n_features, w->n_features);
    return FALSE;
  }
  /* checked before anything is computed: an error leaves no half state */
  guint missing = 0;
  for (guint i = 0; i < w->n_features; i++) {
    if (isnan (features[i])) {
      if (w->nan == NAN_ERROR) {
        mm_set_error (error, MM_ERROR_INPUT, label,
            "numeric: value %u is missing (NaN) and the model's \"nan\" is \"error\"", i);
        return FALSE;
      }
      missing++;
    } else if (isinf (features[i])) {
      mm_set_error (error, MM_ERROR_INPUT, label, "numeric: value %u is infinite", i);
      return FALSE;
    }
  }
  /* x (F) = (v - mean) / std, a missing value replaced first */
  for (guint i = 0; i < w->n_features; i++) {
    float v = features[i];
    if (isnan (v))
      v = w->nan == NAN_ZERO ? 0.0f : w->mean[i];
    enc->x[i] = (v - w->mean[i]) / w->std[i];
  }
  const float *x = enc->x;
  for (guint i = 0; i < w->n_layers; i++) {
    const Linear *l = &w->layer[i];
    gboolean last = i + 1 == w->n_layers;
    float *y = last ? embedding : enc->buf[i % 2];
    /* y (d_out) = x (d_in) W^T + b, ReLU between layers */
    mm_linear (y, x, l->w, l->b, 1, l->d_in, l->d_out);
    if (!last)
      mm_relu (y, l->d_out);
    x = y;
  }
  if (n_missing)
    *n_missing = missing;
  return TRUE;
}
