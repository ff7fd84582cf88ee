/* mmdecode: fused embeddings to decisions
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-mmdecode
 * @title: mmdecode
 *
 * Runs the model's head on each fused embedding (from mmfuse) and reports
 * the decision three ways, all with the input buffer's PTS and duration:
 *
 * - on the src pad, `text/x-raw, format=utf8` with the top labels and
 *   their scores, best first, joined by ", " (e.g. `speech 0.93, music
 *   0.05`), fit for textoverlay's text pad or a subtitle muxer.  When no
 *   label reaches #GstMmDecode:threshold the buffer is empty (zero bytes),
 *   which clears a textoverlay;
 * - an element message `mm-classification` on the bus with the fields
 *   - `pts`, `duration`, `running-time`, `stream-time` (guint64, -1 when
 *     unknown; running and stream time from the input segment, so a
 *     non-zero segment start or a seek is accounted for);
 *   - `labels` (#GstValueArray of strings) and `scores` (#GstValueArray
 *     of doubles, same order, best first; empty when no label reaches the
 *     threshold);
 *   - `present` and `missing` (#GstValueArray of strings: the modalities
 *     that fed this decision and those that were missing, from the input's
 *     MmFusionMeta; without one every fusion input of the model counts as
 *     present);
 *   - the same as plain scalars, for bindings and for printing: `label`
 *     (string, the best label, "" when none), `score` (double, its score,
 *     0 when none), `text` (string, the text pushed on the src pad),
 *     `present-csv` and `missing-csv` (strings, modality names joined by
 *     ",", "" when none).  An empty #GstValueArray has no element type and
 *     gst_structure_to_string() prints it as `(int)< >`; the scalar fields
 *     always read back as what they are.
 *   - `kind` (string: softmax, sigmoid or regression), `outputs`
 *     (doubles: the whole output vector in the model's order, smoothed)
 *     and `names` (its labels);
 *   - provenance, one entry per fusion input in the model's order:
 *     `inputs` (modalities), `input-present` (booleans), `input-pts`,
 *     `input-duration` (the embedding used) and `input-age` (decision PTS
 *     minus the end of that embedding, 0 when it covers the decision),
 *     guint64, -1 when missing or unknown.
 * - an MmClassificationMeta (gstmmmeta.h) on the output buffer with the
 *   same labels, scores, output vector and provenance, and a GstCustomMeta
 *   `MmClassificationStructureMeta` whose structure equals the message
 *   (for Python and other bindings).
 *
 * Head kinds: softmax and sigmoid heads report the labels whose score
 * reaches #GstMmDecode:threshold, best first, at most #GstMmDecode:top-k
 * (for a sigmoid head, every tag above the threshold).  A regression head
 * reports every output, in the model's order, with its raw value: top-k
 * and threshold do not apply, nothing is clipped, and the text reads
 * `pressure=0.189 temperature=-0.065` (3 significant digits; the message
 * and the meta have the full float value; `label`/`score` are the first
 * output).
 *
 * #GstMmDecode:smoothing s keeps an exponential moving average of the
 * score vector over successive decisions: smoothed = s * previous + (1 - s)
 * * current, the first decision after start, a flush or a DISCONT input
 * buffer being the current scores as they are (as is any score whose
 * previous value was not finite, so that one NaN input does not poison
 * the average).  0 turns smoothing off; s is at most 0.99, since at 1 the
 * first scores would never change (at 0.99 a new score reaches half
 * weight after about 69 decisions).  The labels and scores reported are
 * the smoothed ones.
 *
 * Input caps whose `dim` is not the model's fusion dimension are refused
 * with a CORE/NEGOTIATION error; caps naming another model (`model` field)
 * are accepted with a warning.
 *
 * The size of the fused embeddings the head takes is the model's fusion
 * dimension, so the model must also have a fusion component (it is the
 * same file mmfuse uses); a model with a head only fails READY->PAUSED.
 * mmdecode adds no latency and passes GAP, EOS and segment events on.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc ! videoconvert ! imageenc model=scenes.safetensors ! f.sink_0 \
 *     audiotestsrc ! audioconvert ! audioresample ! audioenc model=scenes.safetensors ! f.sink_1 \
 *     mmfuse name=f model=scenes.safetensors ! \
 *     mmdecode model=scenes.safetensors top-k=2 smoothing=0.5 ! fakesink dump=true
 * ]| Prints the two best labels for each fused embedding.
 * |[
 * gst-launch-1.0 -m filesrc location=cues.srt ! subparse ! \
 *     textenc model=tests/fixtures/tiny.safetensors ! f.sink_0 \
 *     mmfuse name=f model=tests/fixtures/tiny.safetensors ! \
 *     mmdecode model=tests/fixtures/tiny.safetensors top-k=2 ! fakesink dump=true
 * ]| Classifies subtitles alone and prints the `mm-classification` messages.
 * |[
 * gst-launch-1.0 videotestsrc ! videoconvert ! tee name=t \
 *     t. ! queue ! imageenc model=scenes.safetensors ! f.sink_0 \
 *     mmfuse name=f model=scenes.safetensors ! \
 *     mmdecode model=scenes.safetensors threshold=0.5 ! o.text_sink \
 *     t. ! queue ! textoverlay name=o ! videoconvert ! autovideosink
 * ]| Burns the label into the video it was computed from.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <string.h>

#include <mm.h>

#include "gstmmdecode.h"
#include "gstmmelement.h"
#include "gstmmmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_mm_decode_debug);
#define GST_CAT_DEFAULT gst_mm_decode_debug

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", modality = (string) fused, "
                                                "dim = (int) [ 1, 65536 ]"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("text/x-raw, format = (string) utf8"));

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_TOP_K,
  PROP_THRESHOLD,
  PROP_SMOOTHING,
};

#define DEFAULT_TOP_K 1
#define DEFAULT_THRESHOLD 0.0
#define DEFAULT_SMOOTHING 0.0
/* Largest smoothing: at 1 the first scores would be kept forever. */
#define MAX_SMOOTHING 0.99

struct _GstMmDecode
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties and negotiation results: object lock */
  gchar *model_path;
  guint top_k;
  gdouble threshold;
  gdouble smoothing;
  guint fused_dim; /* 0 while no model is loaded */

  /* set in READY->PAUSED, cleared in PAUSED->READY after the pads are
   * deactivated; used by the streaming thread in between */
  MmModel *model;
  MmHead *head;
  guint in_dim; /* = fused_dim */
  guint n_outputs;
  MmHeadKind kind;
  gfloat *scores;   /* n_outputs */
  gfloat *smoothed; /* n_outputs */

  /* streaming thread (stream lock) */
  gboolean negotiated;
  gboolean have_smoothed; /* smoothed holds a previous decision */
  GstSegment segment;
  GString *text;
};

#define gst_mm_decode_parent_class parent_class
G_DEFINE_TYPE (GstMmDecode, gst_mm_decode, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (mmdecode, "mmdecode", GST_RANK_NONE, GST_TYPE_MM_DECODE);

static void gst_mm_decode_finalize (GObject *object);
static void
gst_mm_decode_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void
gst_mm_decode_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn
gst_mm_decode_change_state (GstElement *element, GstStateChange transition);
static gboolean gst_mm_decode_sink_event (GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean gst_mm_decode_sink_query (GstPad *pad, GstObject *parent, GstQuery *query);
static GstFlowReturn gst_mm_decode_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer);

static void
gst_mm_decode_class_init (GstMmDecodeClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->finalize = gst_mm_decode_finalize;
  gobject_class->set_property = gst_mm_decode_set_property;
  gobject_class->get_property = gst_mm_decode_get_property;

  gst_mm_install_model_property (gobject_class, PROP_MODEL);
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top k",
          "Number of best labels reported per decision (softmax and sigmoid "
          "heads; regression heads report every output)",
          1, MM_MAX_TOP, DEFAULT_TOP_K,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
          "Labels whose (smoothed) score is below this are not reported; "
          "when none reaches it the text is empty (softmax and sigmoid heads; "
          "ignored by regression heads, whose values are all reported)",
          0.0, 1.0, DEFAULT_THRESHOLD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SMOOTHING,
      g_param_spec_double ("smoothing", "Smoothing",
          "Weight of the previous scores in an exponential moving average "
          "over decisions: s = smoothing * s + (1 - smoothing) * scores "
          "(0 = off, at most 0.99 so that the scores keep adapting; reset "
          "on flush and on DISCONT)",
          0.0, MAX_SMOOTHING, DEFAULT_SMOOTHING,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Multimodal decision decoder",
      "Filter/Analyzer",
      "Runs a libmm model's head on fused embeddings and reports labels as "
      "text, bus messages and buffer metadata",
      "mm-gst developers");
  /* shown by gst-inspect-1.0 */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 -m filesrc location=cues.srt ! subparse ! textenc "
      "model=tests/fixtures/tiny.safetensors ! f.sink_0 mmfuse name=f "
      "model=tests/fixtures/tiny.safetensors ! mmdecode model=tests/fixtures/tiny.safetensors "
      "top-k=2 ! fakesink dump=true");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_mm_decode_change_state);

  GST_DEBUG_CATEGORY_INIT (gst_mm_decode_debug, "mmdecode", 0, "multimodal decision decoder");
}

static void
gst_mm_decode_init (GstMmDecode *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_mm_decode_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_mm_decode_sink_event));
  gst_pad_set_query_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_mm_decode_sink_query));
  /* accept any dim, so that the CAPS event can say why it is wrong */
  GST_PAD_SET_ACCEPT_TEMPLATE (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->top_k = DEFAULT_TOP_K;
  self->threshold = DEFAULT_THRESHOLD;
  self->smoothing = DEFAULT_SMOOTHING;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  self->text = g_string_new (NULL);
}

static void
gst_mm_decode_finalize (GObject *object)
{
  GstMmDecode *self = GST_MM_DECODE (object);

  g_free (self->model_path);
  g_string_free (self->text, TRUE);
  g_free (self->scores);
  g_free (self->smoothed);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_mm_decode_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMmDecode *self = GST_MM_DECODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_TOP_K:
      self->top_k = g_value_get_uint (value);
      break;
    case PROP_THRESHOLD:
      self->threshold = g_value_get_double (value);
      break;
    case PROP_SMOOTHING:
      self->smoothing = g_value_get_double (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mm_decode_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMmDecode *self = GST_MM_DECODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->top_k);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, self->threshold);
      break;
    case PROP_SMOOTHING:
      g_value_set_double (value, self->smoothing);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Pure helpers */

/* smoothed (n) = s * smoothed + (1 - s) * scores, or scores when @first
 * (or where smoothed is not finite). */
static void
smooth_scores (gfloat *smoothed, const gfloat *scores, guint n, gdouble s, gboolean first)
{
  guint i;

  for (i = 0; i < n; i++)
    smoothed[i] = first || !isfinite (smoothed[i])
        ? scores[i]
        : (gfloat)(s * smoothed[i] + (1.0 - s) * scores[i]);
}

/* order (<= k) = indices of the @k largest @scores (n), best first, ties
 * by lower index, keeping only scores >= @threshold.  Returns the count. */
static guint
select_top (const gfloat *scores, guint n, guint k, gdouble threshold, guint *order)
{
  guint count = 0, i, j;

  for (i = 0; i < n; i++) {
    if (!(scores[i] >= threshold))
      continue;
    /* insertion into the sorted prefix, dropping what falls past k */
    for (j = count; j > 0 && scores[order[j - 1]] < scores[i]; j--)
      if (j < k)
        order[j] = order[j - 1];
    if (j < k) {
      order[j] = i;
      if (count < k)
        count++;
    }
  }
  return count;
}

/* Virtual methods */

static gboolean
gst_mm_decode_start (GstElement *element)
{
  GstMmDecode *self = GST_MM_DECODE (element);
  MmContextParams params = mm_context_default_params ();
  GError *err = NULL;
  guint fused_dim;

  self->model =
      gst_mm_element_open_model_property (GST_ELEMENT (self), &self->model_path, MM_COMPONENT_HEAD);
  if (self->model == NULL)
    return FALSE;

  fused_dim = mm_model_get_dim (self->model, MM_COMPONENT_FUSION);
  if (fused_dim == 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("%s: the model has no fusion component, so the size of the "
         "embeddings its head takes is unknown",
            mm_model_get_path (self->model)),
        (NULL));
    g_clear_pointer (&self->model, mm_model_unref);
    return FALSE;
  }

  self->head = mm_head_new (self->model, &params, &err);
  if (self->head == NULL) {
    gst_mm_element_post_context_error (GST_ELEMENT (self), "head", err);
    g_clear_error (&err);
    g_clear_pointer (&self->model, mm_model_unref);
    return FALSE;
  }
  self->in_dim = fused_dim;
  self->n_outputs = mm_model_get_n_outputs (self->model);
  self->kind = mm_model_get_head_kind (self->model);
  self->scores = g_new0 (gfloat, self->n_outputs);
  self->smoothed = g_new0 (gfloat, self->n_outputs);
  self->have_smoothed = FALSE;
  self->negotiated = FALSE;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);

  GST_OBJECT_LOCK (self);
  self->fused_dim = fused_dim;
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self, "model %s, fused dim %u, %u outputs", mm_model_get_name (self->model),
      fused_dim, self->n_outputs);
  return TRUE;
}

static void
gst_mm_decode_stop (GstElement *element)
{
  GstMmDecode *self = GST_MM_DECODE (element);
  GST_OBJECT_LOCK (self);
  self->fused_dim = 0;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->head, mm_head_free);
  g_clear_pointer (&self->model, mm_model_unref);
  g_clear_pointer (&self->scores, g_free);
  g_clear_pointer (&self->smoothed, g_free);
  self->n_outputs = 0;
  self->negotiated = FALSE;
}

static GstStateChangeReturn
gst_mm_decode_change_state (GstElement *element, GstStateChange transition)
{
  return gst_mm_element_change_state (element, transition, GST_ELEMENT_CLASS (parent_class),
      gst_mm_decode_start, gst_mm_decode_stop);
}

static gboolean
gst_mm_decode_set_caps (GstMmDecode *self, GstCaps *caps)
{
  GstStructure *s = gst_caps_get_structure (caps, 0);
  GstCaps *outcaps;
  gint dim = 0;
  guint fused_dim;
  gboolean ret;

  GST_OBJECT_LOCK (self);
  fused_dim = self->fused_dim;
  GST_OBJECT_UNLOCK (self);
  if (self->model == NULL)
    return FALSE;
  if (!gst_structure_get_int (s, "dim", &dim) || (guint)dim != fused_dim) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Fused embeddings of dimension %d, but the head of model \"%s\" "
         "takes %u: give mmfuse and mmdecode the same model",
            dim, mm_model_get_name (self->model), fused_dim),
        ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  gst_mm_element_check_caps_model (GST_ELEMENT (self), "Input", caps, self->model);
  self->negotiated = TRUE;

  outcaps = gst_static_pad_template_get_caps (&src_template);
  ret = gst_pad_set_caps (self->srcpad, outcaps);
  gst_caps_unref (outcaps);
  return ret;
}

static gboolean
gst_mm_decode_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstMmDecode *self = GST_MM_DECODE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gboolean ret;

      gst_event_parse_caps (event, &caps);
      ret = gst_mm_decode_set_caps (self, caps);
      gst_event_unref (event);
      return ret;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &self->segment);
      break;
    case GST_EVENT_FLUSH_STOP:
      gst_segment_init (&self->segment, GST_FORMAT_TIME);
      self->have_smoothed = FALSE;
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_mm_decode_sink_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstMmDecode *self = GST_MM_DECODE (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    GstCaps *caps;
    guint dim;

    GST_OBJECT_LOCK (self);
    dim = self->fused_dim;
    GST_OBJECT_UNLOCK (self);
    caps = gst_pad_get_pad_template_caps (pad);
    if (dim > 0) {
      caps = gst_caps_make_writable (caps);
      gst_caps_set_simple (caps, "dim", G_TYPE_INT, (gint)dim, NULL);
    }
    return gst_mm_caps_query_reply (query, caps);
  }
  return gst_pad_query_default (pad, parent, query);
}

/* Fills the provenance part of @meta from @fmeta, or marks every fusion
 * input of the model present (with unknown times) when @fmeta is NULL.  The
 * age of an embedding is how long before the decision at @pts its interval
 * ended (0 when it covers @pts; its PTS stands for its end when it has no
 * duration), as mmfuse's max-age counts it. */
static void
gst_mm_decode_fill_provenance (
    GstMmDecode *self, const MmFusionMeta *fmeta, GstClockTime pts, MmClassificationMeta *meta)
{
  guint i;

  if (fmeta) {
    meta->n_inputs = MIN (fmeta->n_inputs, MM_MAX_INPUTS);
    for (i = 0; i < meta->n_inputs; i++) {
      GstClockTime end;

      meta->modality[i] = fmeta->modality[i];
      meta->present[i] = fmeta->present[i];
      meta->pts[i] = fmeta->present[i] ? fmeta->pts[i] : GST_CLOCK_TIME_NONE;
      meta->duration[i] = fmeta->present[i] ? fmeta->duration[i] : GST_CLOCK_TIME_NONE;
      meta->age[i] = GST_CLOCK_TIME_NONE;
      if (!GST_CLOCK_TIME_IS_VALID (meta->pts[i]) || !GST_CLOCK_TIME_IS_VALID (pts))
        continue;
      end = meta->pts[i];
      if (GST_CLOCK_TIME_IS_VALID (meta->duration[i]))
        end += meta->duration[i];
      meta->age[i] = pts > end ? pts - end : 0;
    }
    return;
  }
  meta->n_inputs = MIN (mm_model_get_fusion_n_inputs (self->model), MM_MAX_INPUTS);
  for (i = 0; i < meta->n_inputs; i++) {
    meta->modality[i] = g_quark_from_string (mm_model_get_fusion_input_modality (self->model, i));
    meta->present[i] = TRUE;
  }
}

static gboolean
copy_field (GQuark field, const GValue *value, gpointer user_data)
{
  gst_structure_id_set_value ((GstStructure *)user_data, field, value);
  return TRUE;
}

static const gchar *
head_kind_name (MmHeadKind kind)
{
  switch (kind) {
    case MM_HEAD_SOFTMAX:
      return "softmax";
    case MM_HEAD_SIGMOID:
      return "sigmoid";
    default:
      return "regression";
  }
}

static void
value_array_append_string (GValue *array, const gchar *str)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_STRING);
  g_value_set_string (&v, str);
  gst_value_array_append_and_take_value (array, &v);
}

static void
value_array_append_double (GValue *array, gdouble d)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, d);
  gst_value_array_append_and_take_value (array, &v);
}

static void
value_array_append_uint64 (GValue *array, guint64 u)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_UINT64);
  g_value_set_uint64 (&v, u);
  gst_value_array_append_and_take_value (array, &v);
}

static void
value_array_append_boolean (GValue *array, gboolean b)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_BOOLEAN);
  g_value_set_boolean (&v, b);
  gst_value_array_append_and_take_value (array, &v);
}

/* The mm-classification element message for @meta at @pts/@duration, with
 * self->text as the text pushed. */
static GstMessage *
gst_mm_decode_make_message (
    GstMmDecode *self, const MmClassificationMeta *meta, GstClockTime pts, GstClockTime duration)
{
  GValue labels = G_VALUE_INIT, scores = G_VALUE_INIT, present = G_VALUE_INIT,
         missing = G_VALUE_INIT, outputs = G_VALUE_INIT, names = G_VALUE_INIT,
         inputs = G_VALUE_INIT, in_present = G_VALUE_INIT, in_pts = G_VALUE_INIT,
         in_duration = G_VALUE_INIT, in_age = G_VALUE_INIT;
  GstClockTime running_time = GST_CLOCK_TIME_NONE;
  GstClockTime stream_time = GST_CLOCK_TIME_NONE;
  GString *present_csv = g_string_new (NULL);
  GString *missing_csv = g_string_new (NULL);
  GstStructure *s;
  guint i;

  if (GST_CLOCK_TIME_IS_VALID (pts) && self->segment.format == GST_FORMAT_TIME) {
    running_time = gst_segment_to_running_time (&self->segment, GST_FORMAT_TIME, pts);
    stream_time = gst_segment_to_stream_time (&self->segment, GST_FORMAT_TIME, pts);
  }

  gst_value_array_init (&labels, meta->n_top);
  gst_value_array_init (&scores, meta->n_top);
  gst_value_array_init (&present, meta->n_inputs);
  gst_value_array_init (&missing, meta->n_inputs);
  for (i = 0; i < meta->n_top; i++) {
    value_array_append_string (&labels, g_quark_to_string (meta->label[i]));
    value_array_append_double (&scores, meta->score[i]);
  }
  gst_value_array_init (&outputs, meta->n_outputs);
  gst_value_array_init (&names, meta->n_outputs);
  for (i = 0; i < meta->n_outputs; i++) {
    value_array_append_double (&outputs, meta->outputs[i]);
    value_array_append_string (&names, mm_model_get_label (self->model, i));
  }
  gst_value_array_init (&inputs, meta->n_inputs);
  gst_value_array_init (&in_present, meta->n_inputs);
  gst_value_array_init (&in_pts, meta->n_inputs);
  gst_value_array_init (&in_duration, meta->n_inputs);
  gst_value_array_init (&in_age, meta->n_inputs);
  for (i = 0; i < meta->n_inputs; i++) {
    const gchar *name = g_quark_to_string (meta->modality[i]);
    GString *csv = meta->present[i] ? present_csv : missing_csv;

    value_array_append_string (meta->present[i] ? &present : &missing, name);
    g_string_append_printf (csv, "%s%s", csv->len ? "," : "", name);
    value_array_append_string (&inputs, name);
    value_array_append_boolean (&in_present, meta->present[i]);
    value_array_append_uint64 (&in_pts, meta->pts[i]);
    value_array_append_uint64 (&in_duration, meta->duration[i]);
    value_array_append_uint64 (&in_age, meta->age[i]);
  }

  s = gst_structure_new ("mm-classification", "pts", G_TYPE_UINT64, (guint64)pts, "duration",
      G_TYPE_UINT64, (guint64)duration, "running-time", G_TYPE_UINT64, (guint64)running_time,
      "stream-time", G_TYPE_UINT64, (guint64)stream_time, NULL);
  gst_structure_take_value (s, "labels", &labels);
  gst_structure_take_value (s, "scores", &scores);
  gst_structure_take_value (s, "present", &present);
  gst_structure_take_value (s, "missing", &missing);
  gst_structure_set (s, "kind", G_TYPE_STRING, head_kind_name (self->kind), NULL);
  gst_structure_take_value (s, "outputs", &outputs);
  gst_structure_take_value (s, "names", &names);
  gst_structure_take_value (s, "inputs", &inputs);
  gst_structure_take_value (s, "input-present", &in_present);
  gst_structure_take_value (s, "input-pts", &in_pts);
  gst_structure_take_value (s, "input-duration", &in_duration);
  gst_structure_take_value (s, "input-age", &in_age);
  gst_structure_set (s, "label", G_TYPE_STRING,
      meta->n_top ? g_quark_to_string (meta->label[0]) : "", "score", G_TYPE_DOUBLE,
      meta->n_top ? (gdouble)meta->score[0] : 0.0, "text", G_TYPE_STRING, self->text->str,
      "present-csv", G_TYPE_STRING, present_csv->str, "missing-csv", G_TYPE_STRING,
      missing_csv->str, NULL);
  g_string_free (present_csv, TRUE);
  g_string_free (missing_csv, TRUE);
  return gst_message_new_element (GST_OBJECT (self), s);
}

static GstFlowReturn
gst_mm_decode_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  GstMmDecode *self = GST_MM_DECODE (parent);
  guint order[MM_MAX_TOP];
  guint top_k, n_top, i;
  gdouble threshold, smoothing;
  GstMapInfo in;
  GError *err = NULL;
  GstBuffer *outbuf;
  MmClassificationMeta *meta;
  GstCustomMeta *cmeta;
  GstMessage *msg;
  gboolean ok;

  if (!self->negotiated || self->head == NULL) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("embedding before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  GST_OBJECT_LOCK (self);
  top_k = MIN (self->top_k, MM_MAX_TOP);
  threshold = self->threshold;
  smoothing = self->smoothing;
  GST_OBJECT_UNLOCK (self);

  if (!gst_buffer_map (buffer, &in, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }
  if (in.size != (gsize)self->in_dim * sizeof (gfloat)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("embedding of %" G_GSIZE_FORMAT " bytes, expected %u floats", in.size, self->in_dim));
    gst_buffer_unmap (buffer, &in);
    gst_buffer_unref (buffer);
    return GST_FLOW_ERROR;
  }
  if (((guintptr)in.data) % G_ALIGNOF (gfloat) == 0) {
    ok = mm_head_run (self->head, (const float *)in.data, self->scores, &err);
  } else {
    gfloat *copy = g_memdup2 (in.data, in.size);
    ok = mm_head_run (self->head, copy, self->scores, &err);
    g_free (copy);
  }
  gst_buffer_unmap (buffer, &in);
  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("%s", err->message), ("head failed"));
    g_clear_error (&err);
    gst_buffer_unref (buffer);
    return GST_FLOW_ERROR;
  }

  if (GST_BUFFER_IS_DISCONT (buffer))
    self->have_smoothed = FALSE;
  smooth_scores (self->smoothed, self->scores, self->n_outputs, smoothing,
      !self->have_smoothed || smoothing <= 0.0);
  self->have_smoothed = TRUE;
  if (self->kind == MM_HEAD_REGRESSION) {
    /* values, not probabilities: every output, in the model's order, raw */
    n_top = MIN (self->n_outputs, MM_MAX_TOP);
    for (i = 0; i < n_top; i++)
      order[i] = i;
  } else {
    n_top = select_top (self->smoothed, self->n_outputs, top_k, threshold, order);
  }

  g_string_truncate (self->text, 0);
  if (self->kind == MM_HEAD_REGRESSION) {
    for (i = 0; i < self->n_outputs; i++) {
      gchar num[G_ASCII_DTOSTR_BUF_SIZE];

      g_ascii_formatd (num, sizeof (num), "%.3g", self->smoothed[i]);
      g_string_append_printf (
          self->text, "%s%s=%s", i ? " " : "", mm_model_get_label (self->model, i), num);
    }
  } else {
    for (i = 0; i < n_top; i++) {
      gchar num[G_ASCII_DTOSTR_BUF_SIZE];

      g_ascii_formatd (num, sizeof (num), "%.2f", self->smoothed[order[i]]);
      g_string_append_printf (
          self->text, "%s%s %s", i ? ", " : "", mm_model_get_label (self->model, order[i]), num);
    }
  }

  outbuf = self->text->len > 0 ? gst_buffer_new_memdup (self->text->str, self->text->len)
                               : gst_buffer_new ();
  gst_buffer_copy_into (outbuf, buffer, GST_BUFFER_COPY_TIMESTAMPS | GST_BUFFER_COPY_FLAGS, 0, -1);
  meta = gst_buffer_add_mm_classification_meta (outbuf);
  meta->kind = (MmClassificationKind)self->kind;
  meta->n_top = n_top;
  for (i = 0; i < n_top; i++) {
    meta->label[i] = g_quark_from_string (mm_model_get_label (self->model, order[i]));
    meta->score[i] = self->smoothed[order[i]];
  }
  mm_classification_meta_set_outputs (meta, self->smoothed, self->n_outputs);
  gst_mm_decode_fill_provenance (
      self, gst_buffer_get_mm_fusion_meta (buffer), GST_BUFFER_PTS (outbuf), meta);
  gst_buffer_unref (buffer);

  msg = gst_mm_decode_make_message (
      self, meta, GST_BUFFER_PTS (outbuf), GST_BUFFER_DURATION (outbuf));
  /* the same fields for bindings that cannot read the C struct */
  mm_classification_structure_meta_get_info (); /* registered once */
  cmeta = gst_buffer_add_custom_meta (outbuf, MM_CLASSIFICATION_STRUCTURE_META);
  if (cmeta) {
    GstStructure *cs = gst_custom_meta_get_structure (cmeta);

    gst_structure_set_name (cs, "mm-classification");
    gst_structure_foreach (gst_message_get_structure (msg), copy_field, cs);
  }

  GST_LOG_OBJECT (self, "%" GST_TIME_FORMAT ": \"%s\"", GST_TIME_ARGS (GST_BUFFER_PTS (outbuf)),
      self->text->str);
  gst_element_post_message (GST_ELEMENT (self), msg);

  return gst_mm_element_push (GST_ELEMENT (self), self->srcpad, outbuf);
}
