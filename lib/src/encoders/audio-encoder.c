/* libmm audio encoder: log-mel front end + 1-D CNN over time ("cnn1d").
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   samples (n) -> log-mel (n_mels, T) -> [conv1d -> bn -> relu] x L
 *     -> mean over time (c) -> fc (dim)
 *
 * Weights are const float * into the mapping; batch-norms are folded into
 * small owned scale/shift arrays at load, and for the fast path (the
 * default; mm_ops_set_reference (TRUE) runs the channel-first reference
 * path with mm_conv1d) into conv weights packed for conv-cl.c (conv_fast).
 * The context sizes the log-mel scratch and every activation for the longest accepted input
 * (params->max_audio_samples, default four windows), so encode never
 * allocates.
 */
#include <math.h>
#include <string.h>

#include "conv-cl.h"
#include "conv-bf16.h"
#include "graph.h"
#include "mm-private.h"
#include "ops.h"
#include "preprocess.h"

#define MAX_LAYERS 64
#define MAX_BUFFER_FLOATS ((gsize)1 << 28)
#define BN_EPS 1e-5f
/* the log-mel front end's limits (logmel.c), checked here so that a model
 * it cannot run fails at load rather than at encoder creation */

typedef struct
{
  int c_in, c_out, k, stride, pad, groups;
  const float *w;       /* (c_out, c_in / groups, k) */
  const float *bias;    /* (c_out) applied by the conv (no bn), or NULL */
  float *scale, *shift; /* (c_out) owned folded bn (incl. conv bias), or NULL */
  MmConvCl cl;          /* fast path: weights packed, scale folded in */
  MmConvBf16 bf16;      /* bf16 path (groups 1): packed by prepare_bf16 */
} Conv1d;

struct _MmAudioWeights
{
  MmMelParams mel;
  guint window, hop, dim;
  guint n_convs;
  Conv1d *conv;             /* n_convs, owned */
  guint features;           /* channels out of the last conv */
  const float *fc_w, *fc_b; /* (dim, features), (dim) */
  MmGraph *graph;           /* type "graph": the network after the front end */
  MmGraphInputKind kind;    /* graph: logmel, logmel_t or waveform */
  gboolean bf16_ready;      /* the convs' bf16 weights are packed; under bf16_lock */
};

/* guards the one-time bf16 packing of any model's convs (prepare_bf16) */
static GMutex bf16_lock;

struct _MmAudioEncoder
{
  MmModel *model; /* owned reference */
  const MmAudioWeights *w;
  MmLogMel *logmel;
  gsize max_samples;
  float *buf[2];  /* max_act each; buf[0] first holds the log-mel */
  float *scratch; /* im2col, max_scratch */
  float *pooled;  /* (features) */
  MmGraphCtx *graph;
  float *window;         /* graph: the zero-padded window (samples) */
  float *mel;            /* graph: log-mel (n_mels, T) before a time-major input */
  gboolean bf16;         /* MM_PRECISION_BF16: the convs without groups on conv-bf16.c */
  guint16 *bf16_scratch; /* bf16: 2 max_act, a conv's input rounded to bf16 */
};

/* ---- weights ----------------------------------------------------------- */

void
mm_audio_weights_free (MmAudioWeights *w)
{
  if (!w)
    return;
  for (guint i = 0; i < w->n_convs; i++) {
    g_free (w->conv[i].scale);
    g_free (w->conv[i].shift);
    mm_conv_cl_clear (&w->conv[i].cl);
    mm_conv_bf16_clear (&w->conv[i].bf16);
  }
  g_free (w->conv);
  mm_graph_free (w->graph);
  g_free (w);
}

/* ---- fast conv1d ------------------------------------------------------
 *
 * Channel-last activations make a conv1d a matrix product with no im2col:
 * with x (t, c) row-major and the zero padding stored as rows around it,
 * output row t reads the k consecutive input rows from t stride - pad, one
 * contiguous run of k c floats (per group: k runs of c / groups).  The
 * kernel (conv-cl.c, shared with the image encoder) keeps a tile of
 * outputs in vector registers over the whole reduction and applies the
 * folded batch-norm shift and the ReLU on the way out; the weights are
 * packed at load, batch-norm scale folded in.  Measured at the bundled
 * model's 2 s window: the four convs took 0.17 ms by im2col + OpenBLAS +
 * affine + ReLU, ~0.11 ms this way (~100 GFLOP/s with AVX-512, about this
 * machine's sgemm peak). */

/* y (t_out, c_out) = relu (conv1d (x) scale + shift), channel-last; x
 * points at the first of the pad zero rows before the input (t + 2 pad,
 * c_in). */
static void
conv_fast (float *y, const float *x, const Conv1d *c, int t_out, guint16 *bf16)
{
  static const MmAct relu = { MM_ACT_RELU, 0.0f, 0.0f };
  if (bf16 && c->groups == 1)
    mm_conv_bf16_run (&c->bf16, y, 0, x, 0, 1, t_out, 1, c->stride, NULL, 0, &relu, bf16);
  else
    mm_conv_cl_run (&c->cl, y, 0, x, 0, 1, t_out, 1, c->stride, NULL, 0, TRUE);
}

/* The bf16 weights of the convs without groups, packed once for all
 * contexts (the model is shared; the lock makes the first bf16 context do
 * it) */
static gboolean
prepare_bf16 (MmAudioWeights *w, const char *label, GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&bf16_lock);
  for (guint i = 0; !w->bf16_ready && ok && i < w->n_convs; i++) {
    Conv1d *c = &w->conv[i];
    if (c->groups != 1)
      continue;
    char what[320];
    mm_conv_bf16_clear (&c->bf16); /* from an earlier attempt that ran out of memory */
    g_snprintf (
        what, sizeof what, "%s: bf16 conv1d %d -> %d, k %d", label, c->c_in, c->c_out, c->k);
    ok = mm_conv_bf16_init (&c->bf16, c->w, c->scale, c->scale ? c->shift : c->bias, c->c_in,
        c->c_out, 1, c->k, what, error);
  }
  if (ok)
    w->bf16_ready = TRUE;
  g_mutex_unlock (&bf16_lock);
  return ok;
}

static gboolean
load_mel_config (MmAudioWeights *w, JsonObject *cfg, const char *label, GError **error)
{
  MmMelParams *m = &w->mel;
  guint hop_default;

  if (!mm_json_uint (cfg, label, "sample_rate", TRUE, 0, 1000, 1000000, &m->sample_rate, error)
      || !mm_json_uint (cfg, label, "n_fft", TRUE, 0, 4, MM_LOGMEL_MAX_FFT, &m->n_fft, error)
      || !mm_json_uint (
          cfg, label, "win_length", FALSE, m->n_fft, 1, m->n_fft, &m->win_length, error))
    return FALSE;
  /* defaults as torch.stft / torchaudio: win_length = n_fft, hop = n_fft / 4,
   * f_max = sample_rate / 2 */
  hop_default = MAX (m->n_fft / 4, 1);
  if (!mm_json_uint (cfg, label, "hop_length", FALSE, hop_default, 1, 65535, &m->hop_length, error)
      || !mm_json_uint (cfg, label, "n_mels", TRUE, 0, 1, MM_LOGMEL_MAX_MELS, &m->n_mels, error)
      || !mm_json_double (cfg, label, "f_min", FALSE, 0.0, &m->f_min, error)
      || !mm_json_double (cfg, label, "f_max", FALSE, m->sample_rate / 2.0, &m->f_max, error)
      || !mm_json_double (cfg, label, "log_offset", FALSE, 1e-6, &m->log_offset, error))
    return FALSE;
  if (!(m->f_min >= 0.0) || !(m->f_max > m->f_min) || !isfinite (m->f_max)) {
    mm_format_error (error, label, "need 0 <= f_min < f_max (got %g, %g)", m->f_min, m->f_max);
    return FALSE;
  }
  if (!(m->log_offset > 0.0) || !isfinite (m->log_offset)) {
    mm_format_error (error, label, "\"log_offset\" must be finite and > 0 (got %g)", m->log_offset);
    return FALSE;
  }
  if (!mm_json_uint (cfg, label, "window", TRUE, 0, m->n_fft, 1 << 24, &w->window, error)
      || !mm_json_uint (cfg, label, "hop", FALSE, w->window, 1, 1 << 24, &w->hop, error)
      || !mm_json_uint (cfg, label, "dim", TRUE, 0, 1, 65535, &w->dim, error))
    return FALSE;
  return TRUE;
}

static gboolean
bind_conv (Conv1d *c, const MmSafetensors *st, const char *label, guint i, GError **error)
{
  char name[96];
  const float *conv_bias = NULL;

  g_snprintf (name, sizeof name, "audio.convs.%u.weight", i);
  c->w = mm_bind (st, label, name, MM_SHAPE (c->c_out, c->c_in / c->groups, c->k), error);
  if (!c->w)
    return FALSE;
  g_snprintf (name, sizeof name, "audio.convs.%u.bias", i);
  if (mm_has_tensor (st, name)) {
    conv_bias = mm_bind (st, label, name, MM_SHAPE (c->c_out), error);
    if (!conv_bias)
      return FALSE;
  }
  g_snprintf (name, sizeof name, "audio.bns.%u.weight", i);
  if (!mm_has_tensor (st, name)) {
    c->bias = conv_bias;
    return TRUE;
  }
  static const char *const parts[4] = { "weight", "bias", "running_mean", "running_var" };
  const float *p[4];
  for (int j = 0; j < 4; j++) {
    g_snprintf (name, sizeof name, "audio.bns.%u.%s", i, parts[j]);
    p[j] = mm_bind (st, label, name, MM_SHAPE (c->c_out), error);
    if (!p[j])
      return FALSE;
  }
  for (int j = 0; j < c->c_out; j++) {
    if (!(p[3][j] >= 0.0f)) {
      mm_format_error (error, label,
          "tensor \"audio.bns.%u.running_var\" has a negative or "
          "NaN entry at %d",
          i, j);
      return FALSE;
    }
  }
  c->scale = g_try_new (float, (guint)c->c_out);
  c->shift = g_try_new (float, (guint)c->c_out);
  if (!c->scale || !c->shift) {
    mm_format_error (error, label, "cannot allocate the batch-norm of convs[%u]", i);
    return FALSE;
  }
  mm_batchnorm_fold (c->scale, c->shift, p[0], p[1], p[2], p[3], c->c_out, BN_EPS);
  if (conv_bias)
    for (int j = 0; j < c->c_out; j++)
      c->shift[j] += conv_bias[j] * c->scale[j];
  return TRUE;
}

static gboolean
load_convs (
    MmAudioWeights *w, const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  JsonNode *node = json_object_get_member (cfg, "convs");
  if (!node || !JSON_NODE_HOLDS_ARRAY (node)) {
    mm_format_error (error, label, "\"convs\" must be an array of objects");
    return FALSE;
  }
  JsonArray *a = json_node_get_array (node);
  guint n = json_array_get_length (a);
  if (n < 1 || n > MAX_LAYERS) {
    mm_format_error (error, label, "\"convs\" has %u entries, expected 1 to %d", n, MAX_LAYERS);
    return FALSE;
  }
  w->conv = g_new0 (Conv1d, n);
  w->n_convs = n;
  int c_in = w->mel.n_mels;
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, i);
    Conv1d *c = &w->conv[i];
    guint out, k, stride, pad, groups;
    char what[512];

    g_snprintf (what, sizeof what, "%s: convs[%u]", label, i);
    if (!JSON_NODE_HOLDS_OBJECT (e)) {
      mm_format_error (error, label, "\"convs\"[%u] is not an object", i);
      return FALSE;
    }
    JsonObject *o = json_node_get_object (e);
    if (!mm_json_uint (o, what, "out", TRUE, 0, 1, 65535, &out, error)
        || !mm_json_uint (o, what, "kernel", TRUE, 0, 1, 4096, &k, error)
        || !mm_json_uint (o, what, "stride", FALSE, 1, 1, 4096, &stride, error)
        || !mm_json_uint (o, what, "padding", FALSE, 0, 0, 4096, &pad, error)
        || !mm_json_uint (o, what, "groups", FALSE, 1, 1, 65535, &groups, error))
      return FALSE;
    if (c_in % groups != 0 || out % groups != 0) {
      mm_format_error (error, label,
          "convs[%u]: %u groups do not divide %d input "
          "and %u output channels",
          i, groups, c_in, out);
      return FALSE;
    }
    c->c_in = c_in;
    c->c_out = out;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->groups = groups;
    if (!bind_conv (c, st, label, i, error))
      return FALSE;
    c_in = out;
  }
  w->features = c_in;
  return TRUE;
}

/* Packs every conv for the fast path (after the budget check). */
static gboolean
pack_convs (MmAudioWeights *w, const char *label, GError **error)
{
  for (guint i = 0; i < w->n_convs; i++) {
    Conv1d *c = &w->conv[i];
    char what[512];
    g_snprintf (what, sizeof what, "%s: convs[%u]", label, i);
    if (!mm_conv_cl_init (&c->cl, c->w, c->scale, c->scale ? c->shift : c->bias, c->c_in, c->c_out,
            1, c->k, c->groups, what, error))
      return FALSE;
  }
  return TRUE;
}

/* Frames after conv i for @t input frames; 0 when the input is too short. */
static int
conv_out_frames (const Conv1d *c, int t)
{
  /* in 64 bits: t and pad come from the file and the caller's maximum */
  gint64 span = (gint64)t + 2 * (gint64)c->pad;
  if (span < c->k)
    return 0;
  return (int)MIN ((span - c->k) / c->stride + 1, G_MAXINT);
}

/* The default window must leave at least one frame after the log-mel
 * (window >= n_fft is checked with the key) and after every conv, or
 * every buffer of that length would fail to encode. */
static gboolean
check_window (const MmAudioWeights *w, const char *label, GError **error)
{
  int t = (int)((w->window - w->mel.n_fft) / w->mel.hop_length + 1);

  for (guint i = 0; i < w->n_convs; i++) {
    t = conv_out_frames (&w->conv[i], t);
    if (t <= 0) {
      mm_format_error (error, label,
          "\"window\" = %u samples is too short for the network "
          "(no frame left after conv %u)",
          w->window, i);
      return FALSE;
    }
  }
  return TRUE;
}

/* The budget of a cnn1d encoder on inputs of up to @max_samples: memory
 * of the packed weights, the log-mel front end and a context's buffers
 * (as mm_audio_encoder_new sizes them), and the work of one window.  The
 * log-mel is counted as a plain DFT per frame (an upper bound of the FFT)
 * plus a fixed cost per frame and per output position, which a network of
 * tiny layers over millions of frames pays in calls, not FLOPs. */
#define WORK_PER_POSITION 16384 /* ~160 ns at 100 GFLOP/s */

static void
audio_cost (const MmAudioWeights *w, gsize max_samples, guint64 *bytes, guint64 *flops)
{
  const MmMelParams *m = &w->mel;
  guint64 nf = m->n_fft / 2 + 1;
  guint64 t = 1 + (max_samples - m->n_fft) / m->hop_length;
  guint64 t_win = 1 + (w->window - m->n_fft) / m->hop_length;
  guint64 packed = 0, max_act = (guint64)m->n_mels * t, max_scratch = 1;
  guint64 work =
      t_win * (4 * (guint64)m->n_fft * nf + 2 * (guint64)m->n_mels * nf + WORK_PER_POSITION);
  guint64 tt = t, tw = t_win;
  int c_in = m->n_mels;
  for (guint i = 0; i < w->n_convs; i++) {
    const Conv1d *c = &w->conv[i];
    packed += mm_conv_cl_packed_bytes (c_in, c->c_out, 1, c->k, c->groups);
    max_act = MAX (max_act, (tt + 2 * (guint64)c->pad) * c_in);
    int t_out = conv_out_frames (c, (int)MIN (tt, G_MAXINT));
    int tw_out = conv_out_frames (c, (int)MIN (tw, G_MAXINT));
    max_act = MAX (max_act, (guint64)c->c_out * MAX (t_out, 1));
    if (t_out > 0)
      max_scratch = MAX (max_scratch,
          mm_conv1d_scratch_size (
              c_in, (int)MIN (tt, G_MAXINT), c->k, c->stride, c->pad, c->groups));
    work += mm_conv_cl_flops (c_in, c->c_out, 1, c->k, c->groups, MAX (tw_out, 1))
        + (guint64)MAX (tw_out, 1) * WORK_PER_POSITION;
    tt = MAX (t_out, 1);
    tw = MAX (tw_out, 1);
    c_in = c->c_out;
  }
  work += 2 * (guint64)w->features * w->dim;
  guint64 logmel = 2 * (guint64)m->n_fft * nf + (guint64)m->n_mels * nf + 256 * (m->n_fft + 3 * nf);
  *bytes = packed + (logmel + 2 * max_act + max_scratch + w->features) * sizeof (float);
  *flops = work;
}

static gboolean
audio_budget (const MmAudioWeights *w, gsize max_samples, const char *label, GError **error)
{
  guint64 bytes, flops;
  char what[160];
  audio_cost (w, max_samples, &bytes, &flops);
  g_snprintf (what, sizeof what,
      "the audio encoder (window %u samples, hop_length %u, %u convs, up to %" G_GSIZE_FORMAT
      " samples per call)",
      w->window, w->mel.hop_length, w->n_convs, max_samples);
  return mm_budget_check (label, what, bytes, flops, error);
}

/* type "graph": one input of kind waveform [1, window], or logmel
 * [1, (1,) n_mels, T] / logmel_t [1, (1,) T, n_mels] with the front end's
 * keys, T the frames of one window */
static gboolean
load_graph (
    MmAudioWeights *w, const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  gint64 d[8];
  w->graph = mm_graph_load (st, cfg, "audio.", label, error);
  if (!w->graph)
    return FALSE;
  w->kind = mm_graph_input_kind (w->graph, 0);
  guint rank = mm_graph_input_shape (w->graph, 0, d);
  if (mm_graph_n_inputs (w->graph) != 1
      || (w->kind != MM_GRAPH_INPUT_WAVEFORM && w->kind != MM_GRAPH_INPUT_LOGMEL
          && w->kind != MM_GRAPH_INPUT_LOGMEL_T)) {
    mm_format_error (error, label,
        "an audio graph takes one input of kind waveform, logmel or "
        "logmel_t");
    return FALSE;
  }
  if (w->kind == MM_GRAPH_INPUT_WAVEFORM) {
    if (!mm_json_uint (
            cfg, label, "sample_rate", TRUE, 0, 1000, 1000000, &w->mel.sample_rate, error)
        || !mm_json_uint (cfg, label, "window", TRUE, 0, 1, 1 << 24, &w->window, error)
        || !mm_json_uint (cfg, label, "hop", FALSE, w->window, 1, 1 << 24, &w->hop, error))
      return FALSE;
    if (rank != 2 || d[0] != 1 || d[1] != w->window) {
      mm_format_error (
          error, label, "the waveform input must have shape [1, %u] (the window)", w->window);
      return FALSE;
    }
  } else {
    if (!load_mel_config (w, cfg, label, error))
      return FALSE;
    gint64 t = 1 + (w->window - w->mel.n_fft) / w->mel.hop_length, m = w->mel.n_mels;
    gboolean tm = w->kind == MM_GRAPH_INPUT_LOGMEL_T;
    guint o = rank == 4 ? 2 : 1;
    if ((rank != 3 && rank != 4) || d[0] != 1 || (rank == 4 && d[1] != 1) || d[o] != (tm ? t : m)
        || d[o + 1] != (tm ? m : t)) {
      mm_format_error (error, label,
          "the %s input must have shape [1, %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
          "] (or with a 1 before): %" G_GINT64_FORMAT " frames of %" G_GINT64_FORMAT " mel bands",
          tm ? "logmel_t" : "logmel", tm ? t : m, tm ? m : t, t, m);
      return FALSE;
    }
  }
  w->dim = mm_graph_dim (w->graph);
  return TRUE;
}

MmAudioWeights *
mm_audio_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error)
{
  MmAudioWeights *w = g_new0 (MmAudioWeights, 1);

  if (g_strcmp0 (json_object_get_string_member_with_default (cfg, "type", ""), "graph") == 0) {
    if (!load_graph (w, st, cfg, label, error))
      goto fail;
    return w;
  }

  /* the budget before packing, at the context's default of four windows */
  if (!load_mel_config (w, cfg, label, error) || !load_convs (w, st, cfg, label, error)
      || !check_window (w, label, error) || !audio_budget (w, (gsize)4 * w->window, label, error)
      || !pack_convs (w, label, error))
    goto fail;
  w->fc_w = mm_bind (st, label, "audio.fc.weight", MM_SHAPE (w->dim, w->features), error);
  if (!w->fc_w)
    goto fail;
  w->fc_b = mm_bind (st, label, "audio.fc.bias", MM_SHAPE (w->dim), error);
  if (!w->fc_b)
    goto fail;
  return w;

fail:
  mm_audio_weights_free (w);
  return NULL;
}

guint
mm_audio_weights_dim (const MmAudioWeights *w)
{
  return w->dim;
}

void
mm_audio_weights_params (const MmAudioWeights *w, guint *rate, guint *window, guint *hop)
{
  if (rate)
    *rate = w->mel.sample_rate;
  if (window)
    *window = w->window;
  if (hop)
    *hop = w->hop;
}

/* ---- context ----------------------------------------------------------- */

/* a graph runs on exactly one window */
static MmAudioEncoder *
graph_encoder_new (
    MmModel *model, const MmAudioWeights *w, const MmContextParams *params, GError **error)
{
  MmAudioEncoder *enc = g_new0 (MmAudioEncoder, 1);
  enc->model = mm_model_ref (model);
  enc->w = w;
  enc->max_samples = w->window;
  if (w->kind != MM_GRAPH_INPUT_WAVEFORM) {
    enc->logmel = mm_logmel_new (&w->mel, w->window, error);
    if (!enc->logmel) {
      g_prefix_error (error, "%s: ", MM_MODEL_LABEL (model));
      mm_audio_encoder_free (enc);
      return NULL;
    }
  }
  enc->graph = mm_graph_ctx_new (
      w->graph, MM_MODEL_LABEL (model), mm_precision_resolve (params) == MM_PRECISION_BF16, error);
  if (!enc->graph) {
    mm_audio_encoder_free (enc);
    return NULL;
  }
  enc->bf16 = mm_graph_ctx_is_bf16 (enc->graph);
  enc->window = g_try_new0 (float, w->window);
  if (w->kind == MM_GRAPH_INPUT_LOGMEL_T)
    enc->mel = g_try_new (float, (gsize)w->mel.n_mels *mm_logmel_n_frames (enc->logmel, w->window));
  if (!enc->window || (w->kind == MM_GRAPH_INPUT_LOGMEL_T && !enc->mel)) {
    mm_format_error (
        error, MM_MODEL_LABEL (model), "audio: cannot allocate a window of %u samples", w->window);
    mm_audio_encoder_free (enc);
    return NULL;
  }
  return enc;
}

/* embedding = the graph on the window: samples, zero-padded */
static gboolean
graph_encode (
    MmAudioEncoder *enc, const float *samples, gsize n_samples, float *embedding, GError **error)
{
  const MmAudioWeights *w = enc->w;
  if (!samples || n_samples == 0 || n_samples > w->window) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (enc->model),
        "audio: %" G_GSIZE_FORMAT " samples: this graph takes 1 to %u (its window)",
        samples ? n_samples : 0, w->window);
    return FALSE;
  }
  float *in = mm_graph_ctx_input (enc->graph, 0);
  float *x = w->kind == MM_GRAPH_INPUT_WAVEFORM ? in : enc->window;
  memcpy (x, samples, n_samples * sizeof (float));
  memset (x + n_samples, 0, (w->window - n_samples) * sizeof (float));
  if (w->kind != MM_GRAPH_INPUT_WAVEFORM) {
    float *mel = w->kind == MM_GRAPH_INPUT_LOGMEL ? in : enc->mel;
    int t = (int)mm_logmel_compute (enc->logmel, mel, x, w->window, error);
    if (t == 0) {
      g_prefix_error (error, "%s: ", MM_MODEL_LABEL (enc->model));
      return FALSE;
    }
    if (w->kind == MM_GRAPH_INPUT_LOGMEL_T)
      for (int i = 0; i < t; i++)
        for (guint m = 0; m < w->mel.n_mels; m++)
          in[(gsize)i * w->mel.n_mels + m] = mel[(gsize)m * t + i];
  }
  mm_graph_ctx_run (enc->graph, embedding);
  return TRUE;
}

MmAudioEncoder *
mm_audio_encoder_new (MmModel *model, const MmContextParams *params, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  if (!model->audio) {
    mm_set_error (error, MM_ERROR_MISSING_COMPONENT, MM_MODEL_LABEL (model),
        "the model has no audio component");
    return NULL;
  }
  mm_blas_init ();
  if (params && params->n_threads > 0)
    mm_blas_set_threads (params->n_threads);

  const MmAudioWeights *w = model->audio;
  if (w->graph)
    return graph_encoder_new (model, w, params, error);
  gsize max_samples =
      (params && params->max_audio_samples) ? params->max_audio_samples : (gsize)4 * w->window;
  if (max_samples < w->mel.n_fft)
    max_samples = w->mel.n_fft;
  if (max_samples > (gsize)G_MAXINT) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (model),
        "audio encoder: max_audio_samples %" G_GSIZE_FORMAT " is too large", max_samples);
    return NULL;
  }

  if (!audio_budget (w, max_samples, MM_MODEL_LABEL (model), error))
    return NULL;

  /* shape trace at the longest input: activations only grow with T */
  int t = 1 + (int)((max_samples - w->mel.n_fft) / w->mel.hop_length);
  gsize max_act = (gsize)w->mel.n_mels * t, max_scratch = 1;
  int c_in = w->mel.n_mels;
  for (guint i = 0; i < w->n_convs; i++) {
    const Conv1d *c = &w->conv[i];
    int t_out = conv_out_frames (c, t);
    /* fast path: the input with its zero rows, channel-last */
    max_act = MAX (max_act, ((gsize)t + 2 * (gsize)c->pad) * c_in);
    if (t_out > 0) {
      max_scratch =
          MAX (max_scratch, mm_conv1d_scratch_size (c_in, t, c->k, c->stride, c->pad, c->groups));
      max_act = MAX (max_act, (gsize)c->c_out * t_out);
    }
    t = MAX (t_out, 1);
    c_in = c->c_out;
  }
  if (max_act > MAX_BUFFER_FLOATS || max_scratch > MAX_BUFFER_FLOATS) {
    mm_set_error (error, MM_ERROR_INPUT, MM_MODEL_LABEL (model),
        "audio encoder: "
        "max_audio_samples %" G_GSIZE_FORMAT " needs too much scratch memory",
        max_samples);
    return NULL;
  }

  MmAudioEncoder *enc = g_new0 (MmAudioEncoder, 1);
  enc->model = mm_model_ref (model);
  enc->w = w;
  enc->max_samples = max_samples;
  enc->logmel = mm_logmel_new (&w->mel, max_samples, error);
  if (!enc->logmel) {
    g_prefix_error (error, "%s: ", MM_MODEL_LABEL (model));
    mm_audio_encoder_free (enc);
    return NULL;
  }
  enc->buf[0] = g_try_new (float, max_act);
  enc->buf[1] = g_try_new (float, max_act);
  enc->scratch = g_try_new (float, max_scratch);
  enc->pooled = g_try_new (float, w->features);
  if (!enc->buf[0] || !enc->buf[1] || !enc->scratch || !enc->pooled) {
    mm_format_error (error, MM_MODEL_LABEL (model),
        "audio encoder: cannot allocate %" G_GSIZE_FORMAT " MB of scratch for %" G_GSIZE_FORMAT
        " samples",
        ((2 * max_act + max_scratch + w->features) * sizeof (float)) >> 20, max_samples);
    mm_audio_encoder_free (enc);
    return NULL;
  }
  if (mm_precision_resolve (params) == MM_PRECISION_BF16) {
    if (!prepare_bf16 ((MmAudioWeights *)w, MM_MODEL_LABEL (model), error)) {
      mm_audio_encoder_free (enc);
      return NULL;
    }
    enc->bf16_scratch = g_try_new (guint16, 2 * max_act);
    if (!enc->bf16_scratch) {
      mm_format_error (error, MM_MODEL_LABEL (model),
          "audio encoder: cannot allocate %" G_GSIZE_FORMAT " MB of bf16 scratch",
          (2 * max_act * sizeof (guint16)) >> 20);
      mm_audio_encoder_free (enc);
      return NULL;
    }
    enc->bf16 = TRUE;
  }
  return enc;
}

MmPrecision
mm_audio_encoder_get_precision (const MmAudioEncoder *enc)
{
  return enc && enc->bf16 ? MM_PRECISION_BF16 : MM_PRECISION_FP32;
}

void
mm_audio_encoder_free (MmAudioEncoder *enc)
{
  if (!enc)
    return;
  if (enc->logmel)
    mm_logmel_free (enc->logmel);
  g_free (enc->buf[0]);
  g_free (enc->buf[1]);
  g_free (enc->scratch);
  g_free (enc->pooled);
  g_free (enc->bf16_scratch);
  mm_graph_ctx_free (enc->graph);
  g_free (enc->window);
  g_free (enc->mel);
  mm_model_unref (enc->model);
  g_free (enc);
}

/* x rows [-pad, 0) and [t, t + pad) of a (t, c) channel-last activation = 0 */
static void
zero_pad_rows (float *x, int t, int c, int pad)
{
  memset (x - (gsize)pad * c, 0, (gsize)pad * c * sizeof (float));
  memset (x + (gsize)t * c, 0, (gsize)pad * c * sizeof (float));
}

/* The encoder on channel-last activations with conv_fast; each layer's
 * input sits after its pad zero rows. */
static gboolean
encode_fast (
    MmAudioEncoder *enc, const float *samples, gsize n_samples, float *embedding, GError **error)
{
  const MmAudioWeights *w = enc->w;
  int n_mels = (int)w->mel.n_mels;

  /* log-mel (n_mels, T) into buf[1], then (T, n_mels) into buf[0] */
  float *mel = enc->buf[1];
  int t = (int)mm_logmel_compute (enc->logmel, mel, samples, n_samples, error);
  if (t == 0) {
    g_prefix_error (error, "%s: ", MM_MODEL_LABEL (enc->model));
    return FALSE;
  }
  int pad = w->conv[0].pad;
  float *x = enc->buf[0] + (gsize)pad * n_mels;
  for (int i = 0; i < t; i++)
    for (int m = 0; m < n_mels; m++)
      x[(gsize)i * n_mels + m] = mel[(gsize)m * t + i];
  zero_pad_rows (x, t, n_mels, pad);

  int cur = 0;
  for (guint i = 0; i < w->n_convs; i++) {
    const Conv1d *c = &w->conv[i];
    int t_out = conv_out_frames (c, t);
    int next_pad = i + 1 < w->n_convs ? w->conv[i + 1].pad : 0;
    float *y = enc->buf[!cur] + (gsize)next_pad * c->c_out;
    /* y (t_out, c_out) = relu (bn (conv1d (x (t, c_in)))) */
    conv_fast (y, x - (gsize)c->pad * c->c_in, c, t_out, enc->bf16_scratch);
    zero_pad_rows (y, t_out, c->c_out, next_pad);
    x = y;
    t = t_out;
    cur = !cur;
  }

  /* mean over time (c) -> fc (dim) */
  int nc = (int)w->features;
  for (int ch = 0; ch < nc; ch++)
    enc->pooled[ch] = 0.0f;
  for (int i = 0; i < t; i++)
    for (int ch = 0; ch < nc; ch++)
      enc->pooled[ch] += x[(gsize)i * nc + ch];
  for (int ch = 0; ch < nc; ch++)
    enc->pooled[ch] /= (float)t;
  mm_linear (embedding, enc->pooled, w->fc_w, w->fc_b, 1, w->features, w->dim);
  return TRUE;
}

gboolean
mm_audio_encoder_encode (
    MmAudioEncoder *enc, const float *samples, gsize n_samples, float *embedding, GError **error)
{
  g_return_val_if_fail (enc != NULL, FALSE);
  const MmAudioWeights *w = enc->w;
  const char *label = MM_MODEL_LABEL (enc->model);

  if (!embedding) {
    mm_set_error (error, MM_ERROR_INPUT, label, "audio: no output buffer");
    return FALSE;
  }
  if (w->graph)
    return graph_encode (enc, samples, n_samples, embedding, error);
  if (!samples || n_samples < w->mel.n_fft) {
    mm_set_error (error, MM_ERROR_INPUT, label,
        "audio: %" G_GSIZE_FORMAT " samples is "
        "shorter than one FFT frame (n_fft = %u samples)",
        samples ? n_samples : 0, w->mel.n_fft);
    return FALSE;
  }
  if (n_samples > enc->max_samples) {
    mm_set_error (error, MM_ERROR_INPUT, label,
        "audio: %" G_GSIZE_FORMAT " samples is "
        "more than this encoder's maximum of %" G_GSIZE_FORMAT " (max_audio_samples)",
        n_samples, enc->max_samples);
    return FALSE;
  }
  /* check the whole conv stack has at least one output frame before running */
  int t = (int)mm_logmel_n_frames (enc->logmel, n_samples);
  for (guint i = 0; i < w->n_convs; i++) {
    t = conv_out_frames (&w->conv[i], t);
    if (t <= 0) {
      mm_set_error (error, MM_ERROR_INPUT, label,
          "audio: %" G_GSIZE_FORMAT " samples is "
          "too short for the network (no frame left after conv %u)",
          n_samples, i);
      return FALSE;
    }
  }

  if (!mm_ops_get_reference ())
    return encode_fast (enc, samples, n_samples, embedding, error);

  /* reference path, channel-first: log-mel (n_mels, T) */
  float *x = enc->buf[0], *y = enc->buf[1];
  t = (int)mm_logmel_compute (enc->logmel, x, samples, n_samples, error);
  if (t == 0) {
    g_prefix_error (error, "%s: ", label);
    return FALSE;
  }

  for (guint i = 0; i < w->n_convs; i++) {
    const Conv1d *c = &w->conv[i];
    int t_out = conv_out_frames (c, t);
    /* y (c_out, t_out) = relu (bn (conv1d (x (c_in, t)))) */
    mm_conv1d (y, x, c->w, c->bias, c->c_in, t, c->c_out, c->k, c->stride, c->pad, c->groups,
        enc->scratch);
    if (c->scale)
      mm_channel_affine (y, c->c_out, t_out, c->scale, c->shift);
    mm_relu (y, (gsize)c->c_out * t_out);
    float *tmp = x;
    x = y;
    y = tmp;
    t = t_out;
  }

  /* mean over time (c) -> fc (dim) */
  mm_global_avgpool (enc->pooled, x, w->features, t);
  mm_linear (embedding, enc->pooled, w->fc_w, w->fc_b, 1, w->features, w->dim);
  return TRUE;
}
