/* textenc: text cues to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-textenc
 * @title: textenc
 *
 * Turns each text buffer (a subtitle cue, a caption, a transcript
 * utterance) into one embedding with the model's text encoder.  The output
 * buffer holds one float32 vector and has the cue's PTS and duration.
 *
 * Input is `text/x-raw` in `utf8` or `pango-markup` (tags are removed and
 * entities decoded before encoding; this is done here rather than with
 * pango_parse_markup() so that the plugin does not depend on Pango and so
 * that the malformed markup found in real subtitle files still gives
 * text), or the `text/plain` that pocketsphinx emits.  pocketsphinx sends
 * no caps event at all: text buffers arriving while upstream has never sent
 * caps are taken as `text/plain` (UTF-8), the output caps being set when
 * the first segment, GAP or buffer arrives.
 *
 * Time:
 * - A buffer without a PTS (pocketsphinx's utterances) is stamped with the
 *   running time at which it arrives, converted back to the segment's time,
 *   when the element is PLAYING with a clock: for a recogniser that is the
 *   end of the utterance it heard.  Without a clock (not PLAYING, or no
 *   pipeline clock) it is stamped with the end of the previous cue, or the
 *   segment start for the first one.  A non-TIME segment from upstream is
 *   replaced by a TIME segment starting at 0.
 * - A buffer without a duration gets #GstTextEnc:default-duration.
 * - A cue lasts at most #GstTextEnc:max-duration (10 s by default): a
 *   longer one, or one whose end comes before its start (subparse then
 *   gives it a duration of about 2^64 ns, which would keep it "present"
 *   until EOS and mask every later cue), is cut to it, with a debug
 *   message.  A cue that starts before the previous one ends is sent
 *   unchanged (debug message): the previous one has already gone out, and
 *   cutting it would mean holding every cue until the next one arrives,
 *   which would stall sparse text; a consumer lets the newer cue supersede
 *   the older one (mmfuse does).
 * - The output caps carry `duration=(guint64)` max-duration: for text a
 *   bound, not the length of every cue, for consumers of embeddings whose
 *   buffer durations were lost on the way (e.g. over RTP).
 * - After a segment, until the first cue or GAP, an empty GAP event
 *   (duration 0) at the segment's start lets the sinks downstream preroll
 *   when upstream is not live (the first cue may be minutes away).
 *
 * Hostile text: invalid UTF-8 is replaced by U+FFFD (by libmm), text after
 * an embedded NUL byte is ignored, and cues longer than libmm's
 * max_text_bytes are truncated at a UTF-8 boundary.  An empty or
 * whitespace-only cue (after markup removal) produces no embedding: a GAP
 * event for the cue's interval is sent instead, so that downstream (mmfuse)
 * knows time advanced without text.  GAP events from upstream are forwarded.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=movie.srt ! subparse ! \
 *     textenc model=tests/fixtures/tiny.safetensors ! fakesink dump=true
 * ]| One embedding per subtitle cue.
 * |[
 * gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! pocketsphinx ! \
 *     textenc model=scenes.safetensors ! f.sink_2 \
 *     mmfuse name=f model=scenes.safetensors ! mmdecode model=scenes.safetensors ! fakesink
 * ]| Embeds the utterances a speech recogniser transcribes.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <mm.h>

#include "gsttextenc.h"
#include "gstmmelement.h"
#include "gstmmmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_text_enc_debug);
#define GST_CAT_DEFAULT gst_text_enc_debug

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS ("text/x-raw, format = (string) { utf8, pango-markup }; "
                         "text/plain"));

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", modality = (string) text, "
                                                "dim = (int) [ 1, 65536 ]"));

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_DEFAULT_DURATION,
  PROP_MAX_DURATION,
  PROP_PRECISION,
};

#define DEFAULT_DEFAULT_DURATION (3 * GST_SECOND)
#define DEFAULT_MAX_DURATION (10 * GST_SECOND)
/* Scratch kept between cues up to this size; larger is freed after use. */
#define KEEP_SCRATCH_BYTES (64 * 1024)

struct _GstTextEnc
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties: object lock */
  gchar *model_path;
  GstClockTime default_duration;
  GstClockTime max_duration;
  MmPrecision precision;
  GstCaps *src_caps; /* fixed output caps while a model is loaded */

  /* set in READY->PAUSED, cleared in PAUSED->READY after the pads are
   * deactivated; used by the streaming thread in between */
  MmModel *model;
  MmTextEncoder *encoder;
  guint dim;

  /* streaming thread (stream lock) */
  gboolean markup; /* sink caps are pango-markup */
  GstSegment segment;
  GstClockTime last_stop; /* end of the last cue, or NONE */
  GstClockTime cue_start; /* start of the last cue sent, or NONE */
  GstClockTime cue_end;   /* end of the last cue sent, or NONE */
  gboolean announced;     /* an embedding or a GAP went out since start or
                           * the last flush */
  GString *scratch;       /* markup-stripped text */
};

#define gst_text_enc_parent_class parent_class
G_DEFINE_TYPE (GstTextEnc, gst_text_enc, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (textenc, "textenc", GST_RANK_NONE, GST_TYPE_TEXT_ENC);

static void gst_text_enc_finalize (GObject *object);
static void
gst_text_enc_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void
gst_text_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn
gst_text_enc_change_state (GstElement *element, GstStateChange transition);
static gboolean gst_text_enc_sink_event (GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean gst_text_enc_src_query (GstPad *pad, GstObject *parent, GstQuery *query);
static GstFlowReturn gst_text_enc_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer);

static void
gst_text_enc_class_init (GstTextEncClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->finalize = gst_text_enc_finalize;
  gobject_class->set_property = gst_text_enc_set_property;
  gobject_class->get_property = gst_text_enc_get_property;

  gst_mm_install_model_property (gobject_class, PROP_MODEL);
  gst_mm_install_precision_property (gobject_class, PROP_PRECISION);
  g_object_class_install_property (gobject_class, PROP_DEFAULT_DURATION,
      g_param_spec_uint64 ("default-duration", "Default duration",
          "Duration (ns) given to a text buffer that has none, e.g. an "
          "utterance from pocketsphinx",
          1, G_MAXUINT64, DEFAULT_DEFAULT_DURATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_DURATION,
      g_param_spec_uint64 ("max-duration", "Maximum duration",
          "Longest duration (ns) a cue's embedding may have: a longer cue, or "
          "one whose end comes before its start (subparse then gives it a "
          "duration of millions of hours), is cut to this.  Also the "
          "nominal duration in the output caps",
          1, G_MAXUINT64, DEFAULT_MAX_DURATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Text embedding encoder",
      "Filter/Analyzer/Text",
      "Turns text cues (subtitles, captions, transcripts) into embeddings "
      "with a libmm model",
      "mm-gst developers");
  /* shown by gst-inspect-1.0 */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 filesrc location=movie.srt ! subparse ! textenc "
      "model=tests/fixtures/tiny.safetensors ! fakesink dump=true");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_text_enc_change_state);

  GST_DEBUG_CATEGORY_INIT (gst_text_enc_debug, "textenc", 0, "text embedding encoder");
}

static void
gst_text_enc_init (GstTextEnc *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_text_enc_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_text_enc_sink_event));
  /* No PROXY_ALLOCATION: the output is embeddings allocated here, so an
   * allocation query for text must not travel downstream (mmfuse would
   * queue it, serialized, behind the other pads' data). */
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_text_enc_src_query));
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->default_duration = DEFAULT_DEFAULT_DURATION;
  self->max_duration = DEFAULT_MAX_DURATION;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  self->last_stop = GST_CLOCK_TIME_NONE;
  self->scratch = g_string_new (NULL);
}

static void
gst_text_enc_finalize (GObject *object)
{
  GstTextEnc *self = GST_TEXT_ENC (object);

  g_free (self->model_path);
  gst_clear_caps (&self->src_caps);
  g_string_free (self->scratch, TRUE);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_text_enc_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstTextEnc *self = GST_TEXT_ENC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_DEFAULT_DURATION:
      self->default_duration = g_value_get_uint64 (value);
      break;
    case PROP_MAX_DURATION:
      self->max_duration = g_value_get_uint64 (value);
      break;
    case PROP_PRECISION:
      self->precision = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_text_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstTextEnc *self = GST_TEXT_ENC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_DEFAULT_DURATION:
      g_value_set_uint64 (value, self->default_duration);
      break;
    case PROP_MAX_DURATION:
      g_value_set_uint64 (value, self->max_duration);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, self->precision);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Pure helpers */

/* Virtual methods */

static gboolean
gst_text_enc_start (GstElement *element)
{
  GstTextEnc *self = GST_TEXT_ENC (element);
  MmContextParams params = mm_context_default_params ();
  GError *err = NULL;
  GstClockTime max_duration;

  self->model =
      gst_mm_element_open_model_property (GST_ELEMENT (self), &self->model_path, MM_COMPONENT_TEXT);
  if (self->model == NULL)
    return FALSE;
  GST_OBJECT_LOCK (self);
  params.precision = self->precision;
  GST_OBJECT_UNLOCK (self);
  params.precision = gst_mm_element_resolve_precision (GST_ELEMENT (self), params.precision);

  self->encoder = mm_text_encoder_new (self->model, &params, &err);
  if (self->encoder == NULL) {
    gst_mm_element_post_context_error (GST_ELEMENT (self), "text encoder", err);
    g_clear_error (&err);
    g_clear_pointer (&self->model, mm_model_unref);
    return FALSE;
  }
  gst_mm_element_check_precision (
      GST_ELEMENT (self), params.precision, mm_text_encoder_get_precision (self->encoder), "text");
  self->dim = gst_mm_element_publish_embedding_caps (
      GST_ELEMENT (self), &self->src_caps, self->model, MM_COMPONENT_TEXT, "text");
  GST_OBJECT_LOCK (self);
  max_duration = self->max_duration;
  GST_OBJECT_UNLOCK (self);
  /* a cue has no nominal duration: the longest one it may have */
  gst_mm_element_set_caps_duration (GST_ELEMENT (self), &self->src_caps, max_duration);
  self->cue_start = self->cue_end = GST_CLOCK_TIME_NONE;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  self->last_stop = GST_CLOCK_TIME_NONE;
  self->announced = FALSE;
  self->markup = FALSE;
  GST_INFO_OBJECT (self, "model %s, text dim %u", mm_model_get_name (self->model), self->dim);
  return TRUE;
}

static void
gst_text_enc_stop (GstElement *element)
{
  GstTextEnc *self = GST_TEXT_ENC (element);
  GST_OBJECT_LOCK (self);
  gst_clear_caps (&self->src_caps);
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->encoder, mm_text_encoder_free);
  g_clear_pointer (&self->model, mm_model_unref);
  self->dim = 0;
}

static GstStateChangeReturn
gst_text_enc_change_state (GstElement *element, GstStateChange transition)
{
  return gst_mm_element_change_state (
      element, transition, GST_ELEMENT_CLASS (parent_class), gst_text_enc_start, gst_text_enc_stop);
}

/* The time of a buffer that has no PTS, see the element documentation. */
static GstClockTime
gst_text_enc_arrival_time (GstTextEnc *self)
{
  GstClockTime rt = GST_CLOCK_TIME_NONE;
  GstClockTime pos;
  gboolean playing;

  GST_OBJECT_LOCK (self);
  playing = GST_STATE (self) == GST_STATE_PLAYING;
  GST_OBJECT_UNLOCK (self);
  if (playing)
    rt = gst_element_get_current_running_time (GST_ELEMENT (self));
  if (GST_CLOCK_TIME_IS_VALID (rt)) {
    pos = gst_segment_position_from_running_time (&self->segment, GST_FORMAT_TIME, rt);
    if (GST_CLOCK_TIME_IS_VALID (pos))
      return pos;
  }
  if (GST_CLOCK_TIME_IS_VALID (self->last_stop))
    return self->last_stop;
  return self->segment.start;
}

static gboolean
gst_text_enc_set_caps (GstTextEnc *self, GstCaps *caps)
{
  GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *format = gst_structure_get_string (s, "format");

  self->markup =
      gst_structure_has_name (s, "text/x-raw") && g_strcmp0 (format, "pango-markup") == 0;
  GST_DEBUG_OBJECT (self, "input %" GST_PTR_FORMAT, caps);
  return gst_mm_element_set_src_caps (GST_ELEMENT (self), self->srcpad, &self->src_caps);
}

/* pocketsphinx sends no caps event at all: when upstream never sent caps,
 * its text is taken as text/plain (UTF-8) and the output caps are set
 * before the first segment, gap or buffer goes out (sticky order). */
static void
gst_text_enc_assume_plain (GstTextEnc *self)
{
  GstCaps *plain;

  if (self->encoder == NULL || gst_pad_has_current_caps (self->sinkpad)
      || gst_pad_has_current_caps (self->srcpad))
    return;
  GST_DEBUG_OBJECT (self, "upstream sent no caps: assuming text/plain");
  plain = gst_caps_new_empty_simple ("text/plain");
  gst_text_enc_set_caps (self, plain);
  gst_caps_unref (plain);
}

static gboolean
gst_text_enc_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstTextEnc *self = GST_TEXT_ENC (parent);

  if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT || GST_EVENT_TYPE (event) == GST_EVENT_GAP)
    gst_text_enc_assume_plain (self);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gboolean ret;

      gst_event_parse_caps (event, &caps);
      ret = gst_text_enc_set_caps (self, caps);
      gst_event_unref (event);
      return ret;
    }
    case GST_EVENT_SEGMENT: {
      gst_event_copy_segment (event, &self->segment);
      if (self->segment.format != GST_FORMAT_TIME) {
        GST_DEBUG_OBJECT (self, "non-TIME segment, using a TIME segment");
        gst_segment_init (&self->segment, GST_FORMAT_TIME);
        gst_event_unref (event);
        event = gst_event_new_segment (&self->segment);
      }
      self->last_stop = GST_CLOCK_TIME_NONE;
      self->cue_start = self->cue_end = GST_CLOCK_TIME_NONE;
      if (!gst_pad_event_default (pad, parent, event))
        return FALSE;
      /* the first cue may be minutes away: let the sinks preroll before
       * it (gstmmelement.h) */
      if (!self->announced)
        self->announced = gst_mm_element_push_preroll_gap (
            GST_ELEMENT (self), self->sinkpad, self->srcpad, &self->segment);
      return TRUE;
    }
    case GST_EVENT_FLUSH_STOP:
      gst_segment_init (&self->segment, GST_FORMAT_TIME);
      self->last_stop = GST_CLOCK_TIME_NONE;
      self->cue_start = self->cue_end = GST_CLOCK_TIME_NONE;
      self->announced = FALSE;
      break;
    case GST_EVENT_GAP: {
      GstClockTime ts, dur;

      gst_event_parse_gap (event, &ts, &dur);
      if (GST_CLOCK_TIME_IS_VALID (ts))
        self->last_stop = GST_CLOCK_TIME_IS_VALID (dur) ? ts + dur : ts;
      self->announced = TRUE;
      break;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_text_enc_src_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstTextEnc *self = GST_TEXT_ENC (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS)
    return gst_mm_element_src_caps_query (GST_ELEMENT (self), pad, &self->src_caps, query);
  return gst_pad_query_default (pad, parent, query);
}

static GstFlowReturn
gst_text_enc_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  GstTextEnc *self = GST_TEXT_ENC (parent);
  GstClockTime pts, duration, default_duration, max_duration;
  GstMapInfo in, out;
  const gchar *text;
  gsize len;
  GstBuffer *outbuf;
  GError *err = NULL;
  gboolean ok;
  guint n_tokens = 0;

  gst_text_enc_assume_plain (self);
  if (self->encoder == NULL || !gst_pad_has_current_caps (self->srcpad)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("text buffer before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  GST_OBJECT_LOCK (self);
  default_duration = self->default_duration;
  max_duration = self->max_duration;
  GST_OBJECT_UNLOCK (self);

  pts = GST_BUFFER_PTS (buffer);
  if (!GST_CLOCK_TIME_IS_VALID (pts))
    pts = gst_text_enc_arrival_time (self);
  duration = GST_BUFFER_DURATION (buffer);
  if (!GST_CLOCK_TIME_IS_VALID (duration))
    duration = default_duration;
  if (duration > max_duration) {
    /* subparse turns an end before the start into ~2^64 ns */
    GST_DEBUG_OBJECT (self,
        "cue at %" GST_TIME_FORMAT " lasts %" GST_TIME_FORMAT
        " (an end before its start, or too long): cut to max-duration %" GST_TIME_FORMAT,
        GST_TIME_ARGS (pts), GST_TIME_ARGS (duration), GST_TIME_ARGS (max_duration));
    duration = max_duration;
  }
  /* saturate: a huge default-duration must not wrap around */
  if (duration >= GST_CLOCK_TIME_NONE - pts)
    duration = GST_CLOCK_TIME_NONE - 1 - pts;
  self->last_stop = pts + duration;

  if (!gst_buffer_map (buffer, &in, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }
  text = (const gchar *)in.data;
  len = in.size;
  len = mm_cue_length (text, len);
  if (self->markup) {
    mm_markup_strip (text, len, self->scratch);
    text = self->scratch->str;
    len = self->scratch->len;
  }

  if (mm_text_is_blank (text, len)) {
    GST_LOG_OBJECT (self, "blank cue at %" GST_TIME_FORMAT ", sending GAP", GST_TIME_ARGS (pts));
    gst_buffer_unmap (buffer, &in);
    gst_buffer_unref (buffer);
    self->announced = TRUE;
    gst_pad_push_event (self->srcpad, gst_event_new_gap (pts, duration));
    return GST_FLOW_OK;
  }

  outbuf = gst_mm_embedding_buffer_new (self->dim);
  gst_buffer_map (outbuf, &out, GST_MAP_WRITE);
  ok = mm_text_encoder_encode (self->encoder, text, len, (float *)out.data, &n_tokens, &err);
  gst_buffer_unmap (outbuf, &out);
  gst_buffer_unmap (buffer, &in);
  if (self->scratch->allocated_len > KEEP_SCRATCH_BYTES) {
    g_string_free (self->scratch, TRUE);
    self->scratch = g_string_new (NULL);
  }

  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("%s", err->message),
        ("text encoder failed on a %" G_GSIZE_FORMAT "-byte cue", len));
    g_clear_error (&err);
    gst_buffer_unref (buffer);
    gst_buffer_unref (outbuf);
    return GST_FLOW_ERROR;
  }
  GST_LOG_OBJECT (self, "cue at %" GST_TIME_FORMAT ": %u tokens", GST_TIME_ARGS (pts), n_tokens);

  if (GST_CLOCK_TIME_IS_VALID (self->cue_end) && pts < self->cue_end)
    /* already sent: the older cue cannot be cut here without holding every
     * cue until the next one (which may be minutes away) */
    GST_DEBUG_OBJECT (self,
        "cue at %" GST_TIME_FORMAT " overlaps the previous one (%" GST_TIME_FORMAT
        " to %" GST_TIME_FORMAT "): it supersedes it from its start",
        GST_TIME_ARGS (pts), GST_TIME_ARGS (self->cue_start), GST_TIME_ARGS (self->cue_end));
  self->cue_start = pts;
  self->cue_end = pts + duration;

  GST_BUFFER_PTS (outbuf) = pts;
  GST_BUFFER_DURATION (outbuf) = duration;
  if (GST_BUFFER_IS_DISCONT (buffer))
    GST_BUFFER_FLAG_SET (outbuf, GST_BUFFER_FLAG_DISCONT);
  gst_buffer_unref (buffer);

  self->announced = TRUE;
  return gst_mm_element_push (GST_ELEMENT (self), self->srcpad, outbuf);
}
