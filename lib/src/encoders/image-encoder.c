/* libmm image encoder: ResNet with torchvision names (basic blocks).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Config + weights (MmImageWeights) are bound once at model load: convs are
 * const float * into the mapping; each batch-norm is folded into a small
 * owned per-channel scale/shift.  A context (MmImageEncoder) owns every
 * activation buffer, sized at creation from the shape trace done at load,
 * so mm_image_encoder_encode() never allocates.
 *
 *   x (3, H, W) -> conv1/bn1/relu [-> maxpool 3x3 s2 p1]
 *     -> stages of basic blocks: relu (bn2 (conv2 (relu (bn1 (conv1 x)))) + identity)
 *        (identity = downsample.1 (downsample.0 x) where stride or width change)
 *     -> global average pool -> [fc]
 *
 * Two paths.  The fast one (default) runs the stem, the max pool and every
 * block without a Winograd conv channel-last through conv-cl.c (weights
 * packed at load with the batch-norm scale, shift/residual/ReLU fused, no
 * im2col), and blocks with a Winograd conv (big planes, many channels, as
 * in resnet18) on channel-first planes.  The reference path
 * (mm_ops_set_reference (TRUE)) is channel-first throughout with
 * mm_conv2d and a separate epilogue.  With MM_PRECISION_BF16 every block
 * runs channel-last on conv-bf16.c (weights rounded and packed when the
 * first bf16 context is made, no Winograd).
 */
#include <math.h>
#include <string.h>

#include "clones.h"
#include "conv-cl.h"
#include "conv-bf16.h"
#include "mm-private.h"
#include "graph.h"
#include "ops.h"
#include "preprocess.h"
#include "winograd.h"

#define MAX_STAGES 8
#define MAX_LAYERS 64                       /* basic blocks, all stages together */
#define MAX_SCRATCH_FLOATS ((gsize)1 << 28) /* 1 GiB per buffer: sane ceiling */
#define BN_EPS 1e-5f

typedef struct
{
  int c_in, c_out, k, stride, pad;
  const float *w;       /* (c_out, c_in, k, k), mapped */
  const float *bias;    /* (c_out) used by the conv itself (no bn), or NULL */
  float *scale, *shift; /* (c_out) owned folded bn, or NULL */
  int wino_m;           /* Winograd F(m x m, 3x3) tile, 0 = im2col + GEMM */
  float *wino;          /* owned transformed weights (scale folded in), or NULL */
  MmConvCl cl;          /* channel-last path: packed weights (scale folded in) */
  int wcl_m;            /* channel-last Winograd F(m x m, 3x3) tile, 0 = conv-cl */
  int h_in, w_in;       /* the input plane (from the trace) */
  MmWinogradCl wcl;     /* channel-last path, wcl_m > 0: transformed weights */
  MmConvBf16 bf16;      /* bf16 path: the same in bf16, packed by prepare_bf16 */
} ConvBn;

typedef struct
{
  ConvBn conv1, conv2, down;
  gboolean has_down;
  gboolean channel_last; /* fast path: conv-cl, as no conv here takes Winograd */
} BasicBlock;

struct _MmImageWeights
{
  guint width, height, dim;
  float mean[3], std[3];
  guint stem_kernel, stem_stride;
  gboolean stem_maxpool;
  guint n_stages;
  guint widths[MAX_STAGES], blocks[MAX_STAGES];

  ConvBn stem;
  BasicBlock *block; /* n_blocks, owned */
  guint n_blocks;
  guint features;           /* channels out of the last stage */
  const float *fc_w, *fc_b; /* (dim, features), (dim) or NULL */

  /* from the shape trace at load: what a context must allocate */
  gsize max_act;               /* floats of the largest activation (channel-first, or
                        channel-last with its zero border) */
  gsize max_scratch;           /* floats of the largest im2col buffer */
  guint64 packed_bytes, flops; /* for the budget: packed weights, work per frame */

  MmGraph *graph;      /* type "graph": the whole network (models/FORMAT.md) */
  gboolean bf16_ready; /* the convs' bf16 weights are packed; under bf16_lock */
};

/* guards the one-time bf16 packing of any model's weights (prepare_bf16) */
static GMutex bf16_lock;

struct _MmImageEncoder
{
  MmModel *model; /* owned reference */
  const MmImageWeights *w;
  float *input;   /* (3, height, width) */
  float *buf[4];  /* max_act each */
  float *scratch; /* max_scratch */
  float *pooled;  /* (features) */
  MmGraphCtx *graph;
  gboolean bf16;         /* MM_PRECISION_BF16: every block on conv-bf16.c */
  guint16 *bf16_scratch; /* bf16: 2 max_act, a conv's input rounded to bf16 */
};

/* ---- config ------------------------------------------------------------ */

static gboolean
json_uint_array (JsonObject *o, const char *label, const char *key, guint min_len, guint max_len,
    guint min, guint max, guint *out, guint *n_out, GError **error)
{
  JsonNode *node = json_object_get_member (o, key);
  if (!node || !JSON_NODE_HOLDS_ARRAY (node)) {
    mm_format_error (error, label, "\"%s\" must be an array of integers", key);
    return FALSE;
  }
  JsonArray *a = json_node_get_array (node);
  guint n = json_array_get_length (a);
  if (n < min_len || n > max_len) {
    mm_format_error (
        error, label, "\"%s\" has %u entries, expected %u to %u", key, n, min_len, max_len);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64) {
      mm_format_error (error, label, "\"%s\"[%u] is not an integer", key, i);
      return FALSE;
    }
    gint64 v = json_node_get_int (e);
    if (v < (gint64)min || v > (gint64)max) {
      mm_format_error (error, label, "\"%s\"[%u] = %" G_GINT64_FORMAT " is outside [%u, %u]", key,
          i, v, min, max);
      return FALSE;
    }
    out[i] = (guint)v;
  }
  *n_out = n;
  return TRUE;
}

/* ---- weights ----------------------------------------------------------- */

static void
convbn_clear (ConvBn *c)
{
  g_clear_pointer (&c->scale, g_free);
  g_clear_pointer (&c->shift, g_free);
  g_clear_pointer (&c->wino, g_free);
  mm_conv_cl_clear (&c->cl);
  mm_winograd_cl_clear (&c->wcl);
  mm_conv_bf16_clear (&c->bf16);
}

/* Binds "<conv>.weight" (c_out, c_in, k, k) and either the batch-norm
 * "<bn>.{weight,bias,running_mean,running_var}" (folded here) or, when the
 * file has no "<bn>.weight", the conv's own "<conv>.bias" (a folded export). */
static gboolean
convbn_bind (ConvBn *c, const MmSafetensors *st, const char *label, const char *conv,
    const char *bn, int c_in, int c_out, int k, int stride, int pad, GError **error)
{
  char name[256];

  c->c_in = c_in;
  c->c_out = c_out;
  c->k = k;
  c->stride = stride;
  c->pad = pad;
  g_snprintf (name, sizeof name, "%s.weight", conv);
  c->w = mm_bind (st, label, name, MM_SHAPE (c_out, c_in, k, k), error);
  if (!c->w)
    return FALSE;

  g_snprintf (name, sizeof name, "%s.bias", conv);
  const float *conv_bias = NULL;
  if (mm_has_tensor (st, name)) {
    conv_bias = mm_bind (st, label, name, MM_SHAPE (c_out), error);
    if (!conv_bias)
      return FALSE;
  }

  g_snprintf (name, sizeof name, "%s.weight", bn);
  if (!mm_has_tensor (st, name)) {
    if (!conv_bias) {
      mm_format_error (error, label,
          "missing tensor \"%s\" (or \"%s.bias\" for a folded "
          "batch-norm)",
          name, conv);
      return FALSE;
    }
    c->bias = conv_bias;
    return TRUE;
  }

  static const char *const parts[4] = { "weight", "bias", "running_mean", "running_var" };
  const float *p[4];
  for (int i = 0; i < 4; i++) {
    g_snprintf (name, sizeof name, "%s.%s", bn, parts[i]);
    p[i] = mm_bind (st, label, name, MM_SHAPE (c_out), error);
    if (!p[i])
      return FALSE;
  }
  for (int i = 0; i < c_out; i++) {
    if (!(p[3][i] >= 0.0f)) {
      mm_format_error (error, label,
          "tensor \"%s.running_var\" has a negative or NaN "
          "entry at %d",
          bn, i);
      return FALSE;
    }
  }
  c->scale = g_try_new (float, (guint)c_out);
  c->shift = g_try_new (float, (guint)c_out);
  if (!c->scale || !c->shift) {
    mm_format_error (error, label, "cannot allocate the batch-norm of \"%s\"", bn);
    return FALSE;
  }
  mm_batchnorm_fold (c->scale, c->shift, p[0], p[1], p[2], p[3], c_out, BN_EPS);
  /* conv bias before a batch-norm: (y + b) * s + t = y * s + (b * s + t) */
  if (conv_bias)
    for (int i = 0; i < c_out; i++)
      c->shift[i] += conv_bias[i] * c->scale[i];
  return TRUE;
}

/* Shape trace of one conv on an input of h x wd: output size, buffer
 * needs and the Winograd choice (a 3x3 stride-1 "same" conv where
 * mm_winograd_pick measured it faster); FALSE when the input is too small
 * for it.  Buffers also fit the channel-last layout: the input and output
 * with a zero border of one pixel (the blocks' 3x3 padding). */
static gboolean
convbn_trace (MmImageWeights *w, ConvBn *c, int h, int wd, int *h_out, int *w_out)
{
  if (h + 2 * c->pad < c->k || wd + 2 * c->pad < c->k)
    return FALSE;
  *h_out = mm_conv_out_size (h, c->k, c->stride, c->pad);
  *w_out = mm_conv_out_size (wd, c->k, c->stride, c->pad);
  gsize act = (gsize)c->c_out * (*h_out + 2) * (*w_out + 2);
  act = MAX (act, (gsize)c->c_in * (h + 2) * (wd + 2));
  gsize scratch = mm_conv2d_scratch_size (c->c_in, h, wd, c->k, c->k, c->stride, c->pad, 1);
  c->h_in = h;
  c->w_in = wd;
  if (c->k == 3 && c->stride == 1 && c->pad == 1) {
    c->wino_m = mm_winograd_pick (c->c_in, c->c_out, h, wd);
    c->wcl_m = mm_winograd_cl_pick (c->c_in, c->c_out, h, wd);
  }
  if (c->wino_m)
    scratch = MAX (scratch, mm_winograd_scratch_size (c->wino_m, c->c_in, c->c_out, h, wd));
  w->max_act = MAX (w->max_act, act);
  w->max_scratch = MAX (w->max_scratch, scratch);
  guint64 positions = (guint64)*h_out * *w_out;
  w->flops += mm_conv_cl_flops (c->c_in, c->c_out, c->k, c->k, 1, positions);
  w->packed_bytes += mm_conv_cl_packed_bytes (c->c_in, c->c_out, c->k, c->k, 1);
  if (c->wino_m)
    w->packed_bytes += mm_winograd_weights_size (c->wino_m, c->c_in, c->c_out) * sizeof (float);
  if (c->wcl_m)
    w->packed_bytes += mm_winograd_cl_bytes (c->wcl_m, c->c_in, c->c_out);
  return TRUE;
}

/* After the trace: a conv on the channel-last path gets its packed
 * weights, a Winograd conv its transformed weights, batch-norm scale folded
 * in either way; the model is immutable afterwards. */
static gboolean
convbn_prepare (
    MmImageWeights *w, ConvBn *c, gboolean channel_last, const char *label, GError **error)
{
  const float *shift = c->scale ? c->shift : c->bias;
  if (channel_last) {
    char what[320];
    g_snprintf (
        what, sizeof what, "%s: conv %d -> %d, %dx%d", label, c->c_in, c->c_out, c->k, c->k);
    /* a 3x3 conv where mm_winograd_cl_pick measured Winograd faster; one
     * the kernel refuses stays on conv-cl */
    if (c->wcl_m
        && mm_winograd_cl_init (
            &c->wcl, c->wcl_m, c->w, c->scale, shift, c->c_in, c->c_out, what, NULL))
      w->max_scratch =
          MAX (w->max_scratch, mm_winograd_cl_scratch_size (&c->wcl, c->h_in, c->w_in));
    else
      c->wcl_m = 0;
    return mm_conv_cl_init (
        &c->cl, c->w, c->scale, shift, c->c_in, c->c_out, c->k, c->k, 1, what, error);
  }
  if (!c->wino_m)
    return TRUE;
  gsize n = mm_winograd_weights_size (c->wino_m, c->c_in, c->c_out);
  c->wino = g_try_new (float, n);
  if (!c->wino) {
    mm_format_error (error, label,
        "cannot allocate %" G_GSIZE_FORMAT " MB for the Winograd weights of a %d -> %d conv",
        (n * sizeof (float)) >> 20, c->c_in, c->c_out);
    return FALSE;
  }
  mm_winograd_weights (c->wino, c->wino_m, c->w, c->scale, c->c_in, c->c_out);
  return TRUE;
}

/* Chooses each block's layout on the fast path (channel-last unless one
 * of its convs takes Winograd, which works on channel-first planes; the
 * stem always channel-last) and prepares every conv for it.  Measured with
 * mm-bench layers and tests/bench: conv-cl runs the bundled model's convs
 * and resnet18's 7x7 stem and last stage at 100-115 GFLOP/s where im2col
 * + OpenBLAS gave 40-90; Winograd stays ahead on resnet18's 3x3 convs at
 * 14x14 and larger. */
static gboolean
prepare_convs (MmImageWeights *w, const char *label, GError **error)
{
  if (!convbn_prepare (w, &w->stem, TRUE, label, error))
    return FALSE;
  for (guint i = 0; i < w->n_blocks; i++) {
    BasicBlock *b = &w->block[i];
    /* a conv that takes channel-first Winograd must have the channel-last
     * one too, or the block stays channel-first */
    b->channel_last = (!b->conv1.wino_m || b->conv1.wcl_m) && (!b->conv2.wino_m || b->conv2.wcl_m)
        && !(b->has_down && b->down.wino_m);
    if (!convbn_prepare (w, &b->conv1, b->channel_last, label, error)
        || !convbn_prepare (w, &b->conv2, b->channel_last, label, error)
        || (b->has_down && !convbn_prepare (w, &b->down, b->channel_last, label, error)))
      return FALSE;
    /* channel-last Winograd refused at init: the block as before */
    if (b->channel_last
        && ((b->conv1.wino_m && !b->conv1.wcl_m) || (b->conv2.wino_m && !b->conv2.wcl_m))) {
      b->channel_last = FALSE;
      if (!convbn_prepare (w, &b->conv1, FALSE, label, error)
          || !convbn_prepare (w, &b->conv2, FALSE, label, error))
        return FALSE;
    }
  }
  return TRUE;
}

/* The bf16 weights of every conv, packed once for all contexts (the model
 * is shared; the lock makes the first bf16 context do it) */
static gboolean
prepare_bf16 (MmImageWeights *w, const char *label, GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&bf16_lock);
  for (guint i = 0; !w->bf16_ready && ok && i <= w->n_blocks; i++) {
    ConvBn *convs[3] = { &w->stem, NULL, NULL };
    if (i > 0) {
      BasicBlock *b = &w->block[i - 1];
      convs[0] = &b->conv1;
      convs[1] = &b->conv2;
      convs[2] = b->has_down ? &b->down : NULL;
    }
    for (int k = 0; k < 3 && ok && convs[k]; k++) {
      ConvBn *c = convs[k];
      char what[320];
      mm_conv_bf16_clear (&c->bf16); /* from an earlier attempt that ran out of memory */
      g_snprintf (
          what, sizeof what, "%s: bf16 conv %d -> %d, %dx%d", label, c->c_in, c->c_out, c->k, c->k);
      ok = mm_conv_bf16_init (&c->bf16, c->w, c->scale, c->scale ? c->shift : c->bias, c->c_in,
          c->c_out, c->k, c->k, what, error);
    }
  }
  if (ok)
    w->bf16_ready = TRUE;
  g_mutex_unlock (&bf16_lock);
  return ok;
}

void
mm_image_weights_free (MmImageWeights *w)
{
  if (!w)
    return;
  convbn_clear (&w->stem);
  for (guint i = 0; i < w->n_blocks; i++) {
    convbn_clear (&w->block[i].conv1);
    convbn_clear (&w->block[i].conv2);
    convbn_clear (&w->block[i].down);
  }
  g_free (w->block);
  mm_graph_free (w->graph);
  g_free (w);
}

static gboolean
load_config (MmImageWeights *w, JsonObject *cfg, const char *label, GError **error)
{
  guint n_blocks_cfg;

  if (!mm_json_uint (cfg, label, "width", TRUE, 0, 1, 16384, &w->width, error)
      || !mm_json_uint (cfg, label, "height", TRUE, 0, 1, 16384, &w->height, error)
      || !mm_json_uint (cfg, label, "stem_kernel", FALSE, 7, 1, 31, &w->stem_kernel, error)
      || !mm_json_uint (cfg, label, "stem_stride", FALSE, 2, 1, 16, &w->stem_stride, error)
      || !mm_json_bool (cfg, label, "stem_maxpool", TRUE, &w->stem_maxpool, error)
      || !mm_json_float_array (cfg, label, "mean", 3, w->mean, error)
      || !mm_json_float_array (cfg, label, "std", 3, w->std, error)
      || !json_uint_array (
          cfg, label, "widths", 1, MAX_STAGES, 1, 65535, w->widths, &w->n_stages, error)
      || !json_uint_array (
          cfg, label, "blocks", 1, MAX_STAGES, 1, MAX_LAYERS, w->blocks, &n_blocks_cfg, error)
      || !mm_json_uint (cfg, label, "dim", TRUE, 0, 1, 65535, &w->dim, error))
    return FALSE;
  if (n_blocks_cfg != w->n_stages) {
    mm_format_error (
        error, label, "\"widths\" has %u stages but \"blocks\" has %u", w->n_stages, n_blocks_cfg);
    return FALSE;
  }
  for (int i = 0; i < 3; i++) {
    if (!(w->std[i] != 0.0f) || !isfinite (w->std[i]) || !isfinite (w->mean[i])) {
      mm_format_error (error, label, "\"std\"/\"mean\" entry %d is zero or not finite", i);
      return FALSE;
    }
  }
  w->n_blocks = 0;
  for (guint s = 0; s < w->n_stages; s++)
    w->n_blocks += w->blocks[s];
  if (w->n_blocks > MAX_LAYERS) {
    mm_format_error (error, label, "%u blocks, at most %d supported", w->n_blocks, MAX_LAYERS);
    return FALSE;
  }
  return TRUE;
}

/* type "graph": the resize/normalise keys, then the network, whose one
 * input must be the (1, 3, height, width) image */
static gboolean
load_graph (
    MmImageWeights *w, const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  gint64 d[8];
  if (!mm_json_uint (cfg, label, "width", TRUE, 0, 1, 16384, &w->width, error)
      || !mm_json_uint (cfg, label, "height", TRUE, 0, 1, 16384, &w->height, error)
      || !mm_json_float_array (cfg, label, "mean", 3, w->mean, error)
      || !mm_json_float_array (cfg, label, "std", 3, w->std, error))
    return FALSE;
  for (int i = 0; i < 3; i++)
    if (!(w->std[i] != 0.0f) || !isfinite (w->std[i]) || !isfinite (w->mean[i])) {
      mm_format_error (error, label, "\"std\"/\"mean\" entry %d is zero or not finite", i);
      return FALSE;
    }
  w->graph = mm_graph_load (st, cfg, "image.", label, error);
  if (!w->graph)
    return FALSE;
  if (mm_graph_n_inputs (w->graph) != 1 || mm_graph_input_kind (w->graph, 0) != MM_GRAPH_INPUT_IMAGE
      || mm_graph_input_shape (w->graph, 0, d) != 4 || d[0] != 1 || d[1] != 3 || d[2] != w->height
      || d[3] != w->width) {
    mm_format_error (error, label,
        "an image graph takes one input of kind \"image\" and shape [1, 3, %u, %u]", w->height,
        w->width);
    return FALSE;
  }
  w->dim = mm_graph_dim (w->graph);
  w->features = 1;
  return TRUE;
}

MmImageWeights *
mm_image_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  MmImageWeights *w = g_new0 (MmImageWeights, 1);
  char conv[96], bn[96];
  int h, wd, c;

  if (g_strcmp0 (json_object_get_string_member_with_default (cfg, "type", ""), "graph") == 0) {
    if (!load_graph (w, st, cfg, label, error))
      goto fail;
    return w;
  }

  if (!load_config (w, cfg, label, error))
    goto fail;
  w->block = g_new0 (BasicBlock, w->n_blocks);
  int stem_pad = w->stem_kernel / 2;

  /* stem */
  c = w->widths[0];
  if (!convbn_bind (&w->stem, st, label, "image.conv1", "image.bn1", 3, c, w->stem_kernel,
          w->stem_stride, stem_pad, error))
    goto fail;
  /* the input, channel-first or channel-last with the stem's zero border */
  w->max_act = (gsize)3 * (w->height + 2 * stem_pad) * (w->width + 2 * stem_pad);
  if (!convbn_trace (w, &w->stem, w->height, w->width, &h, &wd))
    goto too_small;
  if (w->stem_maxpool) {
    if (h + 2 < 3 || wd + 2 < 3)
      goto too_small;
    h = mm_conv_out_size (h, 3, 2, 1);
    wd = mm_conv_out_size (wd, 3, 2, 1);
  }

  /* stages */
  guint bi = 0;
  for (guint s = 0; s < w->n_stages; s++) {
    for (guint b = 0; b < w->blocks[s]; b++, bi++) {
      BasicBlock *blk = &w->block[bi];
      int out = w->widths[s];
      int stride = (s > 0 && b == 0) ? 2 : 1;
      int h1, w1, h2, w2;

      g_snprintf (conv, sizeof conv, "image.layer%u.%u.conv1", s + 1, b);
      g_snprintf (bn, sizeof bn, "image.layer%u.%u.bn1", s + 1, b);
      if (!convbn_bind (&blk->conv1, st, label, conv, bn, c, out, 3, stride, 1, error))
        goto fail;
      g_snprintf (conv, sizeof conv, "image.layer%u.%u.conv2", s + 1, b);
      g_snprintf (bn, sizeof bn, "image.layer%u.%u.bn2", s + 1, b);
      if (!convbn_bind (&blk->conv2, st, label, conv, bn, out, out, 3, 1, 1, error))
        goto fail;
      blk->has_down = stride != 1 || c != out;
      if (blk->has_down) {
        g_snprintf (conv, sizeof conv, "image.layer%u.%u.downsample.0", s + 1, b);
        g_snprintf (bn, sizeof bn, "image.layer%u.%u.downsample.1", s + 1, b);
        if (!convbn_bind (&blk->down, st, label, conv, bn, c, out, 1, stride, 0, error))
          goto fail;
      }
      if (!convbn_trace (w, &blk->conv1, h, wd, &h1, &w1)
          || !convbn_trace (w, &blk->conv2, h1, w1, &h2, &w2))
        goto too_small;
      if (blk->has_down && !convbn_trace (w, &blk->down, h, wd, &h1, &w1))
        goto too_small;
      h = h2;
      wd = w2;
      c = out;
    }
  }
  w->features = c;

  /* head of the encoder */
  if (mm_has_tensor (st, "image.fc.weight")) {
    w->fc_w = mm_bind (st, label, "image.fc.weight", MM_SHAPE (w->dim, c), error);
    if (!w->fc_w)
      goto fail;
    w->fc_b = mm_bind (st, label, "image.fc.bias", MM_SHAPE (w->dim), error);
    if (!w->fc_b)
      goto fail;
  } else if (w->dim != (guint)c) {
    mm_format_error (error, label,
        "\"dim\" is %u but there is no \"image.fc.weight\" "
        "and the last stage has %d channels",
        w->dim, c);
    goto fail;
  }
  /* the budget, before packing and before a context allocates: packed
   * weights, a context's buffers (mm_image_encoder_new), work per frame */
  guint64 ctx_bytes = ((guint64)3 * w->width * w->height + 4 * (guint64)MAX (w->max_act, 1)
                          + MAX (w->max_scratch, 1) + w->features)
      * sizeof (float);
  char what[128];
  g_snprintf (what, sizeof what, "the image encoder (%ux%u input, %u blocks)", w->width, w->height,
      w->n_blocks);
  if (!mm_budget_check (label, what, w->packed_bytes + ctx_bytes,
          w->flops + 2 * (guint64)w->features * w->dim, error))
    goto fail;
  if (w->max_act > MAX_SCRATCH_FLOATS || w->max_scratch > MAX_SCRATCH_FLOATS) {
    mm_format_error (error, label,
        "input %ux%u needs too much memory "
        "(%" G_GSIZE_FORMAT " floats per buffer)",
        w->width, w->height, MAX (w->max_act, w->max_scratch));
    goto fail;
  }
  if (!prepare_convs (w, label, error))
    goto fail;
  return w;

too_small:
  mm_format_error (error, label, "input %ux%u is too small for the network", w->width, w->height);
fail:
  mm_image_weights_free (w);
  return NULL;
}

guint
mm_image_weights_dim (const MmImageWeights *w)
{
  return w->dim;
}

void
mm_image_weights_size (const MmImageWeights *w, guint *width, guint *height)
{
  if (width)
    *width = w->width;
  if (height)
    *height = w->height;
}

/* ---- context ----------------------------------------------------------- */

MmImageEncoder *
mm_image_encoder_new (MmModel *model, const MmContextParams *params, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  if (!model->image) {
    mm_set_error (error, MM_ERROR_MISSING_COMPONENT, MM_MODEL_LABEL (model),
        "the model has no image component");
    return NULL;
  }
  mm_blas_init ();
  if (params && params->n_threads > 0)
    mm_blas_set_threads (params->n_threads);

  const MmImageWeights *w = model->image;
  MmImageEncoder *enc = g_new0 (MmImageEncoder, 1);
  enc->model = mm_model_ref (model);
  enc->w = w;
  gsize act = MAX (w->max_act, 1), scratch = MAX (w->max_scratch, 1);
  enc->input = g_try_new (float, (gsize)3 * w->width * w->height);
  for (int i = 0; i < 4; i++)
    enc->buf[i] = g_try_new (float, act);
  enc->scratch = g_try_new (float, scratch);
  enc->pooled = g_try_new (float, w->features);
  if (!enc->input || !enc->buf[0] || !enc->buf[1] || !enc->buf[2] || !enc->buf[3] || !enc->scratch
      || !enc->pooled) {
    mm_format_error (error, MM_MODEL_LABEL (model),
        "image encoder: cannot allocate %" G_GSIZE_FORMAT " MB of scratch for a %ux%u input",
        ((3 * (gsize)w->width * w->height + 4 * act + scratch + w->features) * sizeof (float))
            >> 20,
        w->width, w->height);
    mm_image_encoder_free (enc);
    return NULL;
  }
  if (w->graph) {
    enc->graph = mm_graph_ctx_new (w->graph, MM_MODEL_LABEL (model),
        mm_precision_resolve (params) == MM_PRECISION_BF16, error);
    if (!enc->graph) {
      mm_image_encoder_free (enc);
      return NULL;
    }
    /* (the context says whether the graph runs bf16; the resnet path's bf16
     * fields stay unused) */
    enc->bf16 = mm_graph_ctx_is_bf16 (enc->graph);
    return enc;
  }
  /* bf16 for the resnet family */
  if (mm_precision_resolve (params) == MM_PRECISION_BF16) {
    if (!prepare_bf16 ((MmImageWeights *)w, MM_MODEL_LABEL (model), error)) {
      mm_image_encoder_free (enc);
      return NULL;
    }
    enc->bf16_scratch = g_try_new (guint16, 2 * act);
    if (!enc->bf16_scratch) {
      mm_format_error (error, MM_MODEL_LABEL (model),
          "image encoder: cannot allocate %" G_GSIZE_FORMAT " MB of bf16 scratch",
          (2 * act * sizeof (guint16)) >> 20);
      mm_image_encoder_free (enc);
      return NULL;
    }
    enc->bf16 = TRUE;
  }
  return enc;
}

MmPrecision
mm_image_encoder_get_precision (const MmImageEncoder *enc)
{
  return enc && enc->bf16 ? MM_PRECISION_BF16 : MM_PRECISION_FP32;
}

void
mm_image_encoder_free (MmImageEncoder *enc)
{
  if (!enc)
    return;
  g_free (enc->input);
  for (int i = 0; i < 4; i++)
    g_free (enc->buf[i]);
  g_free (enc->scratch);
  g_free (enc->pooled);
  g_free (enc->bf16_scratch);
  mm_graph_ctx_free (enc->graph);
  mm_model_unref (enc->model);
  g_free (enc);
}

#if defined(__GNUC__) && !defined(__clang__)
#define EPILOGUE_VECTORIZE                                                                         \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define EPILOGUE_VECTORIZE
#endif
#define EPILOGUE_CLONES MM_TARGET_CLONES

/* y (c, n) = [relu] (y * scale[c] + shift[c] [+ identity (c, n)]) in one
 * pass over memory (the batch-norm, the residual and the ReLU of a conv's
 * output; NULL scale = 1, shift = 0) */
static EPILOGUE_VECTORIZE EPILOGUE_CLONES void
conv_epilogue (float *y, int c, gsize n, const float *scale, const float *shift,
    const float *identity, gboolean relu)
{
  for (int i = 0; i < c; i++) {
    float *restrict yc = y + (gsize)i * n;
    const float *restrict idc = identity ? identity + (gsize)i * n : NULL;
    float a = scale ? scale[i] : 1.0f, b = shift ? shift[i] : 0.0f;
    if (idc && relu)
      for (gsize j = 0; j < n; j++) {
        float v = yc[j] * a + b + idc[j];
        yc[j] = v > 0.0f ? v : 0.0f;
      }
    else if (idc)
      for (gsize j = 0; j < n; j++)
        yc[j] = yc[j] * a + b + idc[j];
    else if (relu)
      for (gsize j = 0; j < n; j++) {
        float v = yc[j] * a + b;
        yc[j] = v > 0.0f ? v : 0.0f;
      }
    else
      for (gsize j = 0; j < n; j++)
        yc[j] = yc[j] * a + b;
  }
}

/* y (c_out, h_out, w_out) = bn (conv (x (c_in, h, w))) [+ identity],
 * optionally relu */
static void
convbn_forward (const ConvBn *c, float *y, const float *x, int h, int wd, int *h_out, int *w_out,
    const float *identity, gboolean relu, float *scratch)
{
  *h_out = mm_conv_out_size (h, c->k, c->stride, c->pad);
  *w_out = mm_conv_out_size (wd, c->k, c->stride, c->pad);
  if (c->wino && !mm_ops_get_reference ()) {
    /* scale is in the weights; bias, residual and ReLU in the output pass */
    mm_winograd_conv3x3 (y, x, c->wino, c->wino_m, c->c_in, h, wd, c->c_out,
        c->scale ? c->shift : c->bias, identity, relu, scratch);
    return;
  }
  mm_conv2d (
      y, x, c->w, c->bias, c->c_in, h, wd, c->c_out, c->k, c->k, c->stride, c->pad, 1, scratch);
  gsize n = (gsize)*h_out * *w_out;
  if (c->scale || identity || relu)
    conv_epilogue (y, c->c_out, n, c->scale, c->shift, identity, relu);
}

/* ---- channel-last path ------------------------------------------------
 *
 * Activations (h, w, c) with a zero border of one pixel (the padding of the
 * blocks' 3x3 convs) are what conv-cl.c reads without im2col; each conv
 * writes the inside of the next buffer and the border is zeroed after it.
 * The pixels are transposed once, into a buffer with the stem's padding. */

/* A padded channel-last activation: (h + 2 pad, w + 2 pad, c) at base */
typedef struct
{
  float *base;
  int h, w, c, pad;
} Act;

static gsize
act_row (const Act *a)
{
  return (gsize)(a->w + 2 * a->pad) * a->c;
}

/* the first pixel inside the border */
static float *
act_inside (const Act *a)
{
  return a->base + (gsize)a->pad * act_row (a) + (gsize)a->pad * a->c;
}

/* zero the border of a */
static void
act_zero_border (const Act *a)
{
  gsize row = act_row (a), side = (gsize)a->pad * a->c;
  memset (a->base, 0, (gsize)a->pad * row * sizeof (float));
  memset (a->base + (gsize)(a->pad + a->h) * row, 0, (gsize)a->pad * row * sizeof (float));
  for (int y = 0; y < a->h; y++) {
    float *r = a->base + (gsize)(a->pad + y) * row;
    memset (r, 0, side * sizeof (float));
    memset (r + row - side, 0, side * sizeof (float));
  }
}

/* y = relu? (bn (conv (x)) [+ identity]) into a fresh Act over @out; in
 * bf16 when @bf16 (the scratch for x rounded to bf16) is given */
static void
conv_cl (const ConvBn *c, Act *y, float *out, int pad_out, const Act *x, const float *identity,
    gsize id_row, gboolean relu, guint16 *bf16, float *scratch)
{
  *y = (Act){ out, mm_conv_out_size (x->h, c->k, c->stride, c->pad),
    mm_conv_out_size (x->w, c->k, c->stride, c->pad), c->c_out, pad_out };
  /* the window's top-left: x's padding minus this conv's */
  const float *xs = x->base + (gsize)(x->pad - c->pad) * (act_row (x) + x->c);
  if (bf16) {
    MmAct act = { relu ? MM_ACT_RELU : MM_ACT_NONE, 0.0f, 0.0f };
    mm_conv_bf16_run (&c->bf16, act_inside (y), act_row (y), xs, act_row (x), y->h, y->w, c->stride,
        c->stride, identity, id_row, &act, bf16);
  } else if (c->wcl_m) {
    MmAct act = { relu ? MM_ACT_RELU : MM_ACT_NONE, 0.0f, 0.0f };
    mm_winograd_cl_run (&c->wcl, act_inside (y), act_row (y), xs, act_row (x), y->h, y->w, identity,
        id_row, relu ? &act : NULL, scratch);
  } else {
    mm_conv_cl_run (&c->cl, act_inside (y), act_row (y), xs, act_row (x), y->h, y->w, c->stride,
        c->stride, identity, id_row, relu);
  }
  if (pad_out)
    act_zero_border (y);
}

/* x (H + 2 p, W + 2 p, 3) = transposed input (3, H, W) with a zero border */
static void
input_to_cl (Act *x, float *out, const float *in, int h, int w, int pad)
{
  *x = (Act){ out, h, w, 3, pad };
  float *inside = act_inside (x);
  gsize row = act_row (x), plane = (gsize)h * w;
  for (int y = 0; y < h; y++) {
    float *r = inside + (gsize)y * row;
    const float *s = in + (gsize)y * w;
    for (int i = 0; i < w; i++) {
      r[3 * i] = s[i];
      r[3 * i + 1] = s[plane + i];
      r[3 * i + 2] = s[2 * plane + i];
    }
  }
  act_zero_border (x);
}

/* y (c, h, w) = the inside of a */
static void
act_to_planes (float *y, const Act *a)
{
  const float *inside = act_inside (a);
  gsize row = act_row (a), plane = (gsize)a->h * a->w;
  for (int r = 0; r < a->h; r++)
    for (int q = 0; q < a->w; q++) {
      const float *px = inside + r * row + (gsize)q * a->c;
      for (int ch = 0; ch < a->c; ch++)
        y[ch * plane + (gsize)r * a->w + q] = px[ch];
    }
}

/* a = x (c, h, w) channel-last over @out, border of one pixel */
static void
planes_to_act (Act *a, float *out, const float *x, int c, int h, int w)
{
  *a = (Act){ out, h, w, c, 1 };
  float *inside = act_inside (a);
  gsize row = act_row (a), plane = (gsize)h * w;
  for (int r = 0; r < h; r++)
    for (int q = 0; q < w; q++) {
      float *px = inside + r * row + (gsize)q * c;
      for (int ch = 0; ch < c; ch++)
        px[ch] = x[ch * plane + (gsize)r * w + q];
    }
  act_zero_border (a);
}

/* the three buffers of enc other than @x */
static void
other_buffers (MmImageEncoder *enc, const float *x, float *o[3])
{
  int n = 0;
  for (int i = 0; i < 4; i++)
    if (enc->buf[i] != x && n < 3)
      o[n++] = enc->buf[i];
}

/* The fast path after preprocessing: enc->input (3, H, W) -> pooled (c).
 * Channel-last blocks run on Act (conv-cl), the others (Winograd) on
 * channel-first planes; the activation changes layout between them. */
static void
encode_fast (MmImageEncoder *enc, float *pooled)
{
  const MmImageWeights *w = enc->w;
  Act x, t, y, down;
  float *o[3];

  input_to_cl (&x, enc->buf[0], enc->input, w->height, w->width, w->stem.pad);
  if (w->stem_maxpool) {
    conv_cl (&w->stem, &t, enc->buf[1], 0, &x, NULL, 0, TRUE, enc->bf16_scratch, enc->scratch);
    y = (Act){ enc->buf[2], mm_conv_out_size (t.h, 3, 2, 1), mm_conv_out_size (t.w, 3, 2, 1), t.c,
      1 };
    mm_maxpool2d_cl (act_inside (&y), act_row (&y), t.base, t.c, t.h, t.w, 3, 2, 1);
    act_zero_border (&y);
  } else {
    conv_cl (&w->stem, &y, enc->buf[2], 1, &x, NULL, 0, TRUE, enc->bf16_scratch, enc->scratch);
  }
  x = y;
  gboolean planes = FALSE; /* x.base holds (c, h, w) planes, not an Act */

  for (guint i = 0; i < w->n_blocks; i++) {
    const BasicBlock *blk = &w->block[i];
    gboolean channel_last = blk->channel_last || enc->bf16;
    if (channel_last && planes) {
      other_buffers (enc, x.base, o);
      planes_to_act (&x, o[0], x.base, x.c, x.h, x.w);
      planes = FALSE;
    } else if (!channel_last && !planes) {
      other_buffers (enc, x.base, o);
      act_to_planes (o[0], &x);
      x.base = o[0];
      planes = TRUE;
    }
    other_buffers (enc, x.base, o);

    if (!planes) {
      /* x -> conv1 in o[0] [, down in o[1]] -> conv2 + identity in o[2] */
      const float *identity = act_inside (&x);
      gsize id_row = act_row (&x);
      if (blk->has_down) {
        conv_cl (&blk->down, &down, o[1], 0, &x, NULL, 0, FALSE, enc->bf16_scratch, enc->scratch);
        identity = down.base;
        id_row = act_row (&down);
      }
      conv_cl (&blk->conv1, &t, o[0], 1, &x, NULL, 0, TRUE, enc->bf16_scratch, enc->scratch);
      conv_cl (
          &blk->conv2, &y, o[2], 1, &t, identity, id_row, TRUE, enc->bf16_scratch, enc->scratch);
      x = y;
      continue;
    }

    /* planes: as the reference path, with Winograd where chosen */
    const float *identity = x.base;
    int h1, w1, h2, w2;
    if (blk->has_down) {
      convbn_forward (&blk->down, o[1], x.base, x.h, x.w, &h1, &w1, NULL, FALSE, enc->scratch);
      identity = o[1];
    }
    convbn_forward (&blk->conv1, o[0], x.base, x.h, x.w, &h1, &w1, NULL, TRUE, enc->scratch);
    convbn_forward (&blk->conv2, o[2], o[0], h1, w1, &h2, &w2, identity, TRUE, enc->scratch);
    x = (Act){ o[2], h2, w2, blk->conv2.c_out, 0 };
  }

  /* global average pool */
  if (planes) {
    mm_global_avgpool (pooled, x.base, x.c, x.h * x.w);
    return;
  }
  for (int ch = 0; ch < x.c; ch++)
    pooled[ch] = 0.0f;
  for (int r = 0; r < x.h; r++) {
    const float *row = act_inside (&x) + (gsize)r * act_row (&x);
    for (int i = 0; i < x.w; i++)
      for (int ch = 0; ch < x.c; ch++)
        pooled[ch] += row[(gsize)i * x.c + ch];
  }
  for (int ch = 0; ch < x.c; ch++)
    pooled[ch] /= (float)(x.h * x.w);
}

static guint
pixel_bytes (MmPixelFormat format)
{
  switch (format) {
    case MM_PIXEL_RGB:
    case MM_PIXEL_BGR:
      return 3;
    case MM_PIXEL_GRAY8:
      return 1;
    case MM_PIXEL_RGBx:
    case MM_PIXEL_BGRx:
    case MM_PIXEL_xRGB:
    case MM_PIXEL_xBGR:
    case MM_PIXEL_RGBA:
    case MM_PIXEL_BGRA:
    case MM_PIXEL_ARGB:
    case MM_PIXEL_ABGR:
      return 4;
    case MM_PIXEL_I420: /* planar: mm_image_encoder_encode_image () only */
    case MM_PIXEL_NV12:
    case MM_PIXEL_YUY2:
      return 0;
  }
  return 0;
}

static gboolean encode_input (MmImageEncoder *enc, float *embedding);

gboolean
mm_image_encoder_encode (MmImageEncoder *enc, MmPixelFormat format, const guint8 *pixels,
    guint width, guint height, gsize stride, float *embedding, GError **error)
{
  g_return_val_if_fail (enc != NULL, FALSE);
  const MmImageWeights *w = enc->w;
  const char *label = MM_MODEL_LABEL (enc->model);
  guint bpp = pixel_bytes (format);

  if (!embedding) {
    mm_set_error (error, MM_ERROR_INPUT, label, "image: no output buffer");
    return FALSE;
  }
  if (bpp == 0) {
    mm_set_error (error, MM_ERROR_INPUT, label,
        format >= MM_PIXEL_I420 && format <= MM_PIXEL_YUY2
            ? "image: pixel format %d is planar YUV: use mm_image_encoder_encode_image ()"
            : "image: unknown pixel format %d",
        format);
    return FALSE;
  }
  if (!pixels || width == 0 || height == 0 || width > 16384 || height > 16384) {
    mm_set_error (error, MM_ERROR_INPUT, label,
        "image: bad frame %ux%u%s (sizes must be "
        "1 to 16384)",
        width, height, pixels ? "" : " without pixels");
    return FALSE;
  }
  if (stride < (gsize)width * bpp) {
    mm_set_error (error, MM_ERROR_INPUT, label,
        "image: stride %" G_GSIZE_FORMAT " is shorter than a row of %u pixels (%u bytes)", stride,
        width, width * bpp);
    return FALSE;
  }
  if (!mm_image_preprocess (enc->input, w->width, w->height, w->mean, w->std, format, pixels, width,
          height, stride, error)) {
    g_prefix_error (error, "%s: ", label);
    return FALSE;
  }
  return encode_input (enc, embedding);
}

gboolean
mm_image_encoder_encode_image (
    MmImageEncoder *enc, const MmImage *image, float *embedding, GError **error)
{
  g_return_val_if_fail (enc != NULL, FALSE);
  const MmImageWeights *w = enc->w;
  const char *label = MM_MODEL_LABEL (enc->model);

  if (!embedding || !image) {
    mm_set_error (error, MM_ERROR_INPUT, label, "image: no %s", !image ? "image" : "output buffer");
    return FALSE;
  }
  if (!mm_image_preprocess_image (enc->input, w->width, w->height, w->mean, w->std, image, error)) {
    g_prefix_error (error, "%s: ", label);
    return FALSE;
  }
  return encode_input (enc, embedding);
}

/* embedding = the network on enc->input (already preprocessed) */
static gboolean
encode_input (MmImageEncoder *enc, float *embedding)
{
  const MmImageWeights *w = enc->w;

  if (enc->graph) {
    memcpy (mm_graph_ctx_input (enc->graph, 0), enc->input,
        (gsize)3 * w->width * w->height * sizeof (float));
    mm_graph_ctx_run (enc->graph, embedding);
    return TRUE;
  }
  if (!mm_ops_get_reference ()) {
    float *pooled = w->fc_w ? enc->pooled : embedding;
    encode_fast (enc, pooled);
    if (w->fc_w)
      mm_linear (embedding, pooled, w->fc_w, w->fc_b, 1, w->features, w->dim);
    return TRUE;
  }

  /* x (3, H, W) -> stem */
  float *x = enc->buf[0], *t1 = enc->buf[1], *t2 = enc->buf[2], *t3 = enc->buf[3];
  int h, wd, h1, w1, h2, w2;
  convbn_forward (&w->stem, t1, enc->input, w->height, w->width, &h, &wd, NULL, TRUE, enc->scratch);
  if (w->stem_maxpool) {
    mm_maxpool2d (x, t1, w->stem.c_out, h, wd, 3, 2, 1);
    h = mm_conv_out_size (h, 3, 2, 1);
    wd = mm_conv_out_size (wd, 3, 2, 1);
  } else {
    float *tmp = x;
    x = t1;
    t1 = tmp;
  }

  /* basic blocks: x -> out (in t2), then swap so x is the block output */
  int c = w->stem.c_out;
  for (guint i = 0; i < w->n_blocks; i++) {
    const BasicBlock *blk = &w->block[i];
    const float *identity = x;
    if (blk->has_down) {
      convbn_forward (&blk->down, t3, x, h, wd, &h1, &w1, NULL, FALSE, enc->scratch);
      identity = t3;
    }
    convbn_forward (&blk->conv1, t1, x, h, wd, &h1, &w1, NULL, TRUE, enc->scratch);
    /* relu (bn2 (conv2 (.)) + identity) in conv2's epilogue */
    convbn_forward (&blk->conv2, t2, t1, h1, w1, &h2, &w2, identity, TRUE, enc->scratch);
    c = blk->conv2.c_out;
    float *tmp = x;
    x = t2;
    t2 = tmp;
    h = h2;
    wd = w2;
  }

  /* global average pool -> (c) -> fc */
  if (w->fc_w) {
    mm_global_avgpool (enc->pooled, x, c, h * wd);
    mm_linear (embedding, enc->pooled, w->fc_w, w->fc_b, 1, c, w->dim);
  } else {
    mm_global_avgpool (embedding, x, c, h * wd);
  }
  return TRUE;
}
