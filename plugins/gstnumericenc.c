/* numericenc: numeric samples (sensor values) to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-numericenc
 * @title: numericenc
 *
 * Turns each sample of a numeric stream (sensor readings, lab values,
 * statistics logged by another program) into one embedding with the
 * model's `numeric` component (per-feature normalisation and an MLP, see
 * models/FORMAT.md).  The output has the modality the model names
 * (`sensor` by default), so mmfuse pairs it with the other streams.
 *
 * Input, either:
 * - `application/x-mm-features, dim=F`: one buffer = one sample of F
 *   float32 values (native endianness), with a PTS; from an appsrc.  F must
 *   be the model's number of features.
 * - text lines (`text/plain`, `text/csv`, `text/x-raw`, or no caps at all, as
 *   from filesrc): a sensor log, one sample per line, either CSV
 *   `TIME,V1,...,VF` or a JSON object `{"t": TIME, "values": [V1, ...]}`,
 *   TIME in seconds from the start of the stream.  A first CSV line whose
 *   first field is not a number is a header and is skipped, as are empty
 *   lines and lines starting with `#`.  A missing value is an empty CSV
 *   field, `nan`, or JSON `null`: it becomes NaN, handled as the model's
 *   "nan" says.  The output segment is TIME, from 0.
 *
 * Time: every sample keeps its timestamp and is valid until the next one
 * (it is held until the next sample arrives; at EOS the last one keeps the
 * interval before it, or 1 s when it is alone), or for
 * #GstNumericEnc:duration when that is set (then each sample leaves at
 * once: use it in live pipelines).
 *
 * Bad input: a sample with the wrong number of values, a value that is not
 * a number or is infinite, a NaN where the model's "nan" is "error", a
 * missing timestamp, or a time not after the previous sample's.  By
 * default the first one stops the stream with an error naming the line (or
 * buffer) and the problem.  With #GstNumericEnc:skip-bad, bad samples are
 * dropped and counted in #GstNumericEnc:skipped; the first one also posts
 * a warning on the bus.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=sensors.csv ! numericenc model=m.safetensors ! fakesink
 * ]| One embedding per logged sample.  See pipelines/video-sensor.sh for video and a
 * sensor log fused.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>
#include <mm.h>

#include "gstnumericenc.h"
#include "gstmmelement.h"
#include "gstmmmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_numeric_enc_debug);
#define GST_CAT_DEFAULT gst_numeric_enc_debug

#define FEATURES_CAPS_NAME "application/x-mm-features"
/* a longer line is bad input, not a reason to grow memory without bound */
#define MAX_LINE_BYTES (1 << 20)

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (FEATURES_CAPS_NAME ", dim = (int) [ 1, 65535 ]; text/plain; text/csv; "
                                            "text/x-raw, format = (string) utf8"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", dim = (int) [ 1, 65536 ]"));

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_DURATION,
  PROP_SKIP_BAD,
  PROP_SKIPPED,
};

#define DEFAULT_DURATION 0
#define DEFAULT_SKIP_BAD FALSE

struct _GstNumericEnc
{
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties: object lock */
  gchar *model_path;
  GstClockTime duration;
  gboolean skip_bad;
  guint skipped;
  GstCaps *src_caps; /* fixed output caps while a model is loaded */

  /* set in READY->PAUSED, cleared in PAUSED->READY */
  MmModel *model;
  MmNumericEncoder *encoder;
  guint n_features, dim;

  /* streaming thread */
  gboolean text_input;   /* lines, not feature buffers */
  gboolean segment_sent; /* our TIME segment, for text input */
  GString *line;         /* an incomplete line */
  guint64 line_no;
  gboolean header_allowed;
  float *values;         /* n_features */
  GstClockTime last_pts; /* of the last accepted sample */
  GstClockTime last_interval;
  GstBuffer *held; /* the last embedding, waiting for its end */
};

#define gst_numeric_enc_parent_class parent_class
G_DEFINE_TYPE (GstNumericEnc, gst_numeric_enc, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (numericenc, "numericenc", GST_RANK_NONE,
    GST_TYPE_NUMERIC_ENC,
    GST_DEBUG_CATEGORY_INIT (gst_numeric_enc_debug, "numericenc", 0, "numeric encoder"));

static void gst_numeric_enc_finalize (GObject *object);
static void
gst_numeric_enc_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec);
static void
gst_numeric_enc_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn
gst_numeric_enc_change_state (GstElement *element, GstStateChange transition);
static gboolean gst_numeric_enc_sink_event (GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean gst_numeric_enc_src_query (GstPad *pad, GstObject *parent, GstQuery *query);
static GstFlowReturn gst_numeric_enc_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer);

static void
gst_numeric_enc_class_init (GstNumericEncClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->finalize = gst_numeric_enc_finalize;
  gobject_class->set_property = gst_numeric_enc_set_property;
  gobject_class->get_property = gst_numeric_enc_get_property;

  gst_mm_install_model_property (gobject_class, PROP_MODEL);
  g_object_class_install_property (gobject_class, PROP_DURATION,
      g_param_spec_uint64 ("duration", "Duration",
          "How long (ns) each sample is valid; 0 = until the next sample (each is held until "
          "the next arrives)",
          0, G_MAXUINT64 - 1, DEFAULT_DURATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SKIP_BAD,
      g_param_spec_boolean ("skip-bad", "Skip bad samples",
          "Drop bad samples and count them in 'skipped' instead of stopping with an error",
          DEFAULT_SKIP_BAD, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SKIPPED,
      g_param_spec_uint ("skipped", "Skipped", "Number of bad samples dropped (skip-bad)", 0,
          G_MAXUINT, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Numeric encoder",
      "Filter/Encoder/Analyzer",
      "Encodes numeric samples (sensor values, from float vectors or CSV/JSON lines) into "
      "embeddings with a libmm model",
      "mm-gst");
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_numeric_enc_change_state);
}

static void
gst_numeric_enc_init (GstNumericEnc *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_numeric_enc_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_numeric_enc_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_numeric_enc_src_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
  self->duration = DEFAULT_DURATION;
  self->skip_bad = DEFAULT_SKIP_BAD;
  self->line = g_string_new (NULL);
}

static void
gst_numeric_enc_finalize (GObject *object)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (object);
  g_free (self->model_path);
  g_string_free (self->line, TRUE);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_numeric_enc_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (object);
  GST_OBJECT_LOCK (self);
  switch (id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_DURATION:
      self->duration = g_value_get_uint64 (value);
      break;
    case PROP_SKIP_BAD:
      self->skip_bad = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_numeric_enc_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (object);
  GST_OBJECT_LOCK (self);
  switch (id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_DURATION:
      g_value_set_uint64 (value, self->duration);
      break;
    case PROP_SKIP_BAD:
      g_value_set_boolean (value, self->skip_bad);
      break;
    case PROP_SKIPPED:
      g_value_set_uint (value, self->skipped);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
reset_stream (GstNumericEnc *self)
{
  g_string_truncate (self->line, 0);
  self->line_no = 0;
  self->header_allowed = TRUE;
  self->last_pts = GST_CLOCK_TIME_NONE;
  self->last_interval = GST_CLOCK_TIME_NONE;
  gst_clear_buffer (&self->held);
  self->segment_sent = FALSE;
}

static gboolean
gst_numeric_enc_start (GstElement *element)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (element);
  MmContextParams params = mm_context_default_params ();
  GError *err = NULL;

  self->model = gst_mm_element_open_model_property (
      GST_ELEMENT (self), &self->model_path, MM_COMPONENT_NUMERIC);
  if (!self->model)
    return FALSE;
  self->encoder = mm_numeric_encoder_new (self->model, &params, &err);
  if (!self->encoder) {
    gst_mm_element_post_context_error (GST_ELEMENT (self), "numeric encoder", err);
    g_clear_error (&err);
    g_clear_pointer (&self->model, mm_model_unref);
    return FALSE;
  }
  self->n_features = mm_model_get_numeric_n_features (self->model);
  self->values = g_new0 (float, self->n_features);
  self->dim = gst_mm_element_publish_embedding_caps (GST_ELEMENT (self), &self->src_caps,
      self->model, MM_COMPONENT_NUMERIC, mm_model_get_numeric_modality (self->model));
  self->text_input = TRUE; /* until caps say otherwise: filesrc sends none */
  GST_OBJECT_LOCK (self);
  self->skipped = 0;
  GST_OBJECT_UNLOCK (self);
  reset_stream (self);
  return TRUE;
}

static void
gst_numeric_enc_stop (GstElement *element)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (element);
  GST_OBJECT_LOCK (self);
  gst_clear_caps (&self->src_caps);
  GST_OBJECT_UNLOCK (self);
  reset_stream (self);
  g_clear_pointer (&self->encoder, mm_numeric_encoder_free);
  g_clear_pointer (&self->model, mm_model_unref);
  g_clear_pointer (&self->values, g_free);
}

static GstStateChangeReturn
gst_numeric_enc_change_state (GstElement *element, GstStateChange transition)
{
  return gst_mm_element_change_state (element, transition, GST_ELEMENT_CLASS (parent_class),
      gst_numeric_enc_start, gst_numeric_enc_stop);
}

/* ---- output ------------------------------------------------------------- */

static gboolean
ensure_output (GstNumericEnc *self)
{
  if (!gst_pad_has_current_caps (self->srcpad)
      && !gst_mm_element_set_src_caps (GST_ELEMENT (self), self->srcpad, &self->src_caps))
    return FALSE;
  if (self->text_input && !self->segment_sent) {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    gst_pad_push_event (self->srcpad, gst_event_new_segment (&seg));
    self->segment_sent = TRUE;
  }
  return TRUE;
}

static GstFlowReturn
push_held (GstNumericEnc *self, GstClockTime end)
{
  GstBuffer *buf = self->held;
  if (!buf)
    return GST_FLOW_OK;
  self->held = NULL;
  GstClockTime pts = GST_BUFFER_PTS (buf);
  if (!GST_CLOCK_TIME_IS_VALID (end))
    end = pts + (GST_CLOCK_TIME_IS_VALID (self->last_interval) ? self->last_interval : GST_SECOND);
  GST_BUFFER_DURATION (buf) = end - pts;
  return gst_mm_element_push (GST_ELEMENT (self), self->srcpad, buf);
}

/* A bad sample: an error, or (skip-bad) a count.  @where names it.  Before
 * the error, the held sample goes out (with the interval before it, as at
 * EOS): the samples before the bad one are all delivered. */
static GstFlowReturn
bad_sample (GstNumericEnc *self, const char *where, const char *problem)
{
  GST_OBJECT_LOCK (self);
  gboolean skip = self->skip_bad;
  guint n = skip ? ++self->skipped : self->skipped;
  GST_OBJECT_UNLOCK (self);
  if (!skip) {
    push_held (self, GST_CLOCK_TIME_NONE);
    GST_ELEMENT_ERROR (self, STREAM, DECODE, ("numericenc: %s: %s", where, problem),
        ("set skip-bad=true to drop bad samples instead"));
    return GST_FLOW_ERROR;
  }
  if (n == 1)
    GST_ELEMENT_WARNING (self, STREAM, DECODE,
        ("numericenc: %s: %s (skipped; later bad samples are counted in 'skipped')", where,
            problem),
        (NULL));
  GST_DEBUG_OBJECT (self, "skipped %s: %s (%u so far)", where, problem, n);
  return GST_FLOW_OK;
}

/* Encodes self->values at @pts; holds or pushes the embedding. */
static GstFlowReturn
encode_sample (GstNumericEnc *self, GstClockTime pts, const char *where)
{
  if (!GST_CLOCK_TIME_IS_VALID (pts))
    return bad_sample (self, where, "the sample has no timestamp");
  if (GST_CLOCK_TIME_IS_VALID (self->last_pts) && pts <= self->last_pts) {
    char *msg = g_strdup_printf ("time %.6f s is not after the previous sample's %.6f s",
        (double)pts / GST_SECOND, (double)self->last_pts / GST_SECOND);
    GstFlowReturn r = bad_sample (self, where, msg);
    g_free (msg);
    return r;
  }
  GstBuffer *out = gst_mm_embedding_buffer_new (self->dim);
  GstMapInfo map;
  GError *err = NULL;
  gst_buffer_map (out, &map, GST_MAP_WRITE);
  gboolean ok = mm_numeric_encoder_encode (
      self->encoder, self->values, self->n_features, (float *)map.data, NULL, &err);
  gst_buffer_unmap (out, &map);
  if (!ok) {
    gst_buffer_unref (out);
    /* libmm's message starts with the model's path: keep what follows */
    const char *msg = strstr (err->message, "numeric: ");
    GstFlowReturn r = bad_sample (self, where, msg ? msg + 9 : err->message);
    g_clear_error (&err);
    return r;
  }
  if (!ensure_output (self)) {
    gst_buffer_unref (out);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("cannot set the output caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  GST_BUFFER_PTS (out) = pts;
  GST_OBJECT_LOCK (self);
  GstClockTime duration = self->duration;
  GST_OBJECT_UNLOCK (self);
  GstFlowReturn ret = GST_FLOW_OK;
  if (GST_CLOCK_TIME_IS_VALID (self->last_pts))
    self->last_interval = pts - self->last_pts;
  self->last_pts = pts;
  if (duration > 0) {
    GST_BUFFER_DURATION (out) = duration;
    return gst_mm_element_push (GST_ELEMENT (self), self->srcpad, out);
  }
  ret = push_held (self, pts);
  self->held = out;
  return ret;
}

/* ---- text lines --------------------------------------------------------- */

/* One CSV field or JSON number: a finite or NaN float, or FALSE. */
static gboolean
parse_value (const char *s, float *out)
{
  while (g_ascii_isspace (*s))
    s++;
  if (!*s || g_ascii_strcasecmp (s, "nan") == 0) {
    *out = NAN;
    return TRUE;
  }
  char *end;
  errno = 0;
  double v = g_ascii_strtod (s, &end);
  while (g_ascii_isspace (*end))
    end++;
  if (end == s || *end || isnan (v))
    return FALSE;
  *out = (float)v; /* an overflow gives inf: the encoder refuses it */
  return TRUE;
}

static gboolean
parse_time (double t, GstClockTime *pts)
{
  if (!isfinite (t) || t < 0 || t > 1e9)
    return FALSE;
  *pts = (GstClockTime)llround (t * GST_SECOND);
  return TRUE;
}

/* json-glib parses recursively: a line of 100,000 '[' overflows the
 * stack.  A sample line nests two levels; counting every bracket, inside
 * strings (and whatever json-glib reads as comments) too, bounds the depth
 * whatever the parser makes of the rest. */
#define MAX_JSON_BRACKETS 64

static gboolean
json_line_too_deep (const char *line)
{
  guint n = 0;
  for (const char *c = line; *c; c++)
    if ((*c == '[' || *c == '{') && ++n > MAX_JSON_BRACKETS)
      return TRUE;
  return FALSE;
}

static GstFlowReturn
handle_json_line (GstNumericEnc *self, const char *line, const char *where)
{
  if (json_line_too_deep (line))
    return bad_sample (
        self, where, "more than " G_STRINGIFY (MAX_JSON_BRACKETS) " brackets: not a sample line");
  JsonParser *parser = json_parser_new ();
  GstFlowReturn ret;
  GstClockTime pts = GST_CLOCK_TIME_NONE;
  if (!json_parser_load_from_data (parser, line, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    ret = bad_sample (self, where, "not a JSON object");
    goto out;
  }
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  JsonNode *t = json_object_get_member (o, "t");
  JsonNode *vals = json_object_get_member (o, "values");
  if (!t || json_node_get_value_type (t) == G_TYPE_STRING || !JSON_NODE_HOLDS_VALUE (t)
      || !parse_time (json_node_get_double (t), &pts)) {
    ret = bad_sample (self, where, "\"t\" must be a time in seconds (a number >= 0)");
    goto out;
  }
  if (!vals || !JSON_NODE_HOLDS_ARRAY (vals)) {
    ret = bad_sample (self, where, "\"values\" must be an array of numbers");
    goto out;
  }
  JsonArray *a = json_node_get_array (vals);
  guint n = json_array_get_length (a);
  if (n != self->n_features) {
    char *msg = g_strdup_printf ("%u values, the model takes %u", n, self->n_features);
    ret = bad_sample (self, where, msg);
    g_free (msg);
    goto out;
  }
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (JSON_NODE_HOLDS_NULL (e)) {
      self->values[i] = NAN;
    } else if (JSON_NODE_HOLDS_VALUE (e)
        && (json_node_get_value_type (e) == G_TYPE_DOUBLE
            || json_node_get_value_type (e) == G_TYPE_INT64)) {
      self->values[i] = (float)json_node_get_double (e);
    } else {
      char *msg = g_strdup_printf ("value %u is not a number", i + 1);
      ret = bad_sample (self, where, msg);
      g_free (msg);
      goto out;
    }
  }
  ret = encode_sample (self, pts, where);
out:
  g_object_unref (parser);
  return ret;
}

static GstFlowReturn
handle_line (GstNumericEnc *self, char *line)
{
  self->line_no++;
  line = g_strstrip (line);
  if (!*line || *line == '#')
    return GST_FLOW_OK;
  char where[48];
  g_snprintf (where, sizeof where, "line %" G_GUINT64_FORMAT, self->line_no);
  gboolean header_allowed = self->header_allowed;
  self->header_allowed = FALSE;
  if (!g_utf8_validate (line, -1, NULL))
    return bad_sample (self, where, "not UTF-8 text");
  if (*line == '{')
    return handle_json_line (self, line, where);

  char **fields = g_strsplit (line, ",", 0);
  guint n = g_strv_length (fields);
  GstFlowReturn ret;
  float t;
  GstClockTime pts;
  if (!parse_value (fields[0], &t) || isnan (t)) {
    ret = header_allowed ? GST_FLOW_OK
                         : bad_sample (self, where, "the first field is not a time in seconds");
    goto out;
  }
  if (!parse_time (g_ascii_strtod (fields[0], NULL), &pts)) {
    ret = bad_sample (self, where, "the time must be a number of seconds >= 0");
    goto out;
  }
  if (n - 1 != self->n_features) {
    char *msg = g_strdup_printf ("%u values, the model takes %u", n - 1, self->n_features);
    ret = bad_sample (self, where, msg);
    g_free (msg);
    goto out;
  }
  for (guint i = 1; i < n; i++) {
    if (!parse_value (fields[i], &self->values[i - 1])) {
      char *msg = g_strdup_printf ("value %u (\"%s\") is not a number", i, g_strstrip (fields[i]));
      ret = bad_sample (self, where, msg);
      g_free (msg);
      goto out;
    }
  }
  ret = encode_sample (self, pts, where);
out:
  g_strfreev (fields);
  return ret;
}

/* Handles every complete line in self->line (and the rest at @eos). */
static GstFlowReturn
drain_lines (GstNumericEnc *self, gboolean eos)
{
  GstFlowReturn ret = GST_FLOW_OK;
  gsize start = 0;
  while (ret == GST_FLOW_OK) {
    char *nl = memchr (self->line->str + start, '\n', self->line->len - start);
    if (!nl)
      break;
    *nl = '\0';
    ret = handle_line (self, self->line->str + start);
    start = nl - self->line->str + 1;
  }
  g_string_erase (self->line, 0, start);
  if (ret == GST_FLOW_OK && self->line->len > MAX_LINE_BYTES) {
    char where[48];
    g_snprintf (where, sizeof where, "line %" G_GUINT64_FORMAT, self->line_no + 1);
    g_string_truncate (self->line, 0);
    /* the rest of that line is dropped with it: an error either way */
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("numericenc: %s is longer than %d bytes", where, MAX_LINE_BYTES), (NULL));
    return GST_FLOW_ERROR;
  }
  if (ret == GST_FLOW_OK && eos && self->line->len) {
    ret = handle_line (self, self->line->str);
    g_string_truncate (self->line, 0);
  }
  return ret;
}

/* ---- pads --------------------------------------------------------------- */

static GstFlowReturn
gst_numeric_enc_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (parent);
  GstMapInfo map;
  GstFlowReturn ret;
  if (!self->encoder) {
    gst_buffer_unref (buffer);
    return GST_FLOW_FLUSHING;
  }
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }
  if (self->text_input) {
    g_string_append_len (self->line, (const char *)map.data, map.size);
    ret = drain_lines (self, FALSE);
  } else {
    char where[64];
    g_snprintf (where, sizeof where, "buffer at %" GST_TIME_FORMAT,
        GST_TIME_ARGS (GST_BUFFER_PTS (buffer)));
    if (map.size != (gsize)self->n_features * sizeof (float)) {
      char *msg = g_strdup_printf ("%" G_GSIZE_FORMAT " bytes, a sample of %u float32 is %u",
          map.size, self->n_features, (guint)(self->n_features * sizeof (float)));
      ret = bad_sample (self, where, msg);
      g_free (msg);
    } else {
      memcpy (self->values, map.data, map.size);
      ret = encode_sample (self, GST_BUFFER_PTS (buffer), where);
    }
  }
  gst_buffer_unmap (buffer, &map);
  gst_buffer_unref (buffer);
  return ret;
}

static gboolean
gst_numeric_enc_set_caps (GstNumericEnc *self, GstCaps *caps)
{
  GstStructure *s = gst_caps_get_structure (caps, 0);
  self->text_input = !gst_structure_has_name (s, FEATURES_CAPS_NAME);
  if (!self->text_input) {
    gint dim = 0;
    gst_structure_get_int (s, "dim", &dim);
    if (dim != (gint)self->n_features) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("numericenc: the input has %d values per sample, the model takes %u", dim,
              self->n_features),
          ("caps %" GST_PTR_FORMAT, caps));
      return FALSE;
    }
  }
  return gst_mm_element_set_src_caps (GST_ELEMENT (self), self->srcpad, &self->src_caps);
}

static gboolean
gst_numeric_enc_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (parent);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      gboolean ok = gst_numeric_enc_set_caps (self, caps);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_SEGMENT:
      if (self->text_input) {
        /* a byte segment from filesrc: the times are in the lines */
        gst_event_unref (event);
        return TRUE;
      }
      break;
    case GST_EVENT_EOS:
      if (self->encoder) {
        if (self->text_input)
          drain_lines (self, TRUE);
        push_held (self, GST_CLOCK_TIME_NONE);
        if (self->text_input && !self->segment_sent)
          ensure_output (self);
      }
      break;
    case GST_EVENT_FLUSH_STOP:
      reset_stream (self);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_numeric_enc_src_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstNumericEnc *self = GST_NUMERIC_ENC (parent);
  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS)
    return gst_mm_element_src_caps_query (GST_ELEMENT (self), pad, &self->src_caps, query);
  return gst_pad_query_default (pad, parent, query);
}
