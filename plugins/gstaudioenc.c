/* audioenc: audio windows to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-audioenc
 * @title: audioenc
 *
 * Cuts raw audio into windows of #GstAudioEnc:window nanoseconds every
 * #GstAudioEnc:hop nanoseconds (both default to the model's values) and
 * turns each window into one embedding with the model's audio encoder
 * (log-mel front end and network).  Stereo is downmixed to mono by
 * averaging the channels.  The sample rate must be the model's: put
 * audioresample in front; the sink pad's caps are restricted to that rate
 * once the model is loaded, and caps with another rate fail with a
 * negotiation error naming both rates.  When upstream can only offer
 * another rate, format (S16LE or F32LE), channel count (1 or 2) or layout,
 * negotiation would fail upstream with a bare not-negotiated "Internal data
 * stream error"; audioenc posts a CORE/NEGOTIATION error first, naming what
 * was offered, what the model needs and the element to put in front
 * (audioresample, audioconvert).  When upstream could offer other values
 * (a query that may be speculative) it is a warning.
 *
 * Time: an embedding's PTS is the PTS of its first sample, counted from the
 * PTS of the buffer that started the current run of contiguous samples,
 * and its duration is the window.  A buffer flagged DISCONT, or whose PTS
 * differs from the expected one by more than 40 ms (a gap or an overlap;
 * the same default tolerance as audiobasesink's alignment-threshold),
 * starts a new run: the samples collected so far are dropped, never padded
 * or stitched to the new ones, so no window spans a discontinuity.  A flush
 * does the same.  A GAP event (upstream has no samples for a while) ends
 * the run like EOS does: the uncovered samples are encoded as one final,
 * shorter window (see below), the GAP is forwarded, and the next buffer
 * starts a new run at its own PTS, however short the gap was.
 *
 * At EOS, if some samples arrived that no window has covered yet, the
 * samples from the next hop position to the end are encoded as one final,
 * shorter window (PTS of its first sample, duration of the samples it has),
 * provided libmm accepts them, i.e. they hold at least one FFT frame (n_fft
 * samples); otherwise they are dropped.
 *
 * Preroll: the first embedding needs a whole window of samples; behind one
 * demuxer with a default 1 s queue on the other branches, a sink after
 * audioenc would never preroll.  After a segment, until its first window
 * or GAP, audioenc sends an empty GAP event (duration 0) at the segment's
 * start so that sinks preroll; it covers no time, so it says nothing about
 * the windows to come.  Not when upstream is live (no preroll there).
 *
 * Non-finite input: NaN or infinite F32LE samples are counted; a window
 * that holds any is not encoded (it would look like full-scale sound) but
 * reported missing with a GAP event for its interval, and one
 * STREAM/FORMAT warning per stream names the count so far.
 *
 * Caps: the output caps carry `duration=(guint64)` the window in ns, the
 * nominal duration of one embedding, for consumers of embeddings whose
 * buffer durations were lost on the way (e.g. over RTP); mmfuse falls back
 * to it.
 *
 * Latency: the element holds a whole window before it can output, so it
 * adds the window length to the minimum and maximum latency that upstream
 * reports.  The window comes from the model or the `window` property; a
 * query answered before the model is loaded (READY->PAUSED) reads it from
 * the model file, since a downstream live aggregator (mmfuse) reaches
 * PAUSED, and queries the latency, before this element does.  Whenever
 * loading the model changes the latency answered, a LATENCY message is
 * posted so that the pipeline recomputes its latency.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 audiotestsrc num-buffers=100 ! audioconvert ! audioresample ! \
 *     audioenc model=tests/fixtures/tiny.safetensors ! fakesink dump=true
 * ]| One embedding per model window (1 s for the tiny model) every hop.
 * |[
 * gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! \
 *     audioenc model=scenes.safetensors window=2000000000 hop=500000000 ! f.sink_1 \
 *     mmfuse name=f model=scenes.safetensors ! mmdecode model=scenes.safetensors ! fakesink
 * ]| Two-second windows every half second from a microphone.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <string.h>

#include <gst/audio/audio.h>
#include <gst/base/gstadapter.h>
#include <mm.h>

#include "gstaudioenc.h"
#include "gstmmelement.h"
#include "gstmmmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_audio_enc_debug);
#define GST_CAT_DEFAULT gst_audio_enc_debug

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS ("audio/x-raw, format = (string) { S16LE, F32LE }, "
                         "rate = (int) [ 1, MAX ], channels = (int) [ 1, 2 ], "
                         "layout = (string) interleaved"));

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", modality = (string) audio, "
                                                "dim = (int) [ 1, 65536 ]"));

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_WINDOW,
  PROP_HOP,
  PROP_PRECISION,
};

#define DEFAULT_WINDOW 0
#define DEFAULT_HOP 0
/* Largest window or hop accepted: one minute. */
#define MAX_WINDOW_NS (60 * GST_SECOND)
/* A PTS this far from the expected one starts a new run of samples. */
#define ALIGNMENT_THRESHOLD (40 * GST_MSECOND)

struct _GstAudioEnc
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties and negotiation results: object lock */
  gchar *model_path;
  guint64 window_ns; /* 0 = model default */
  guint64 hop_ns;    /* 0 = model default */
  MmPrecision precision;
  GstCaps *src_caps;    /* fixed output caps while a model is loaded */
  guint model_rate;     /* 0 while no model is loaded */
  GstClockTime latency; /* window length while a model is loaded */
  gchar *refused_offer; /* last offer refused on the bus, NULL if none */

  /* set in READY->PAUSED, cleared in PAUSED->READY after the pads are
   * deactivated; used by the streaming thread in between */
  MmModel *model;
  MmAudioEncoder *encoder;
  guint dim;
  guint rate;
  guint window;    /* samples */
  guint hop;       /* samples */
  gfloat *samples; /* window mono samples */

  /* streaming thread (stream lock) */
  GstAudioInfo info;
  gboolean negotiated;
  GstSegment segment;
  GstAdapter *adapter;
  GstClockTime base_pts; /* PTS of the first sample of this run */
  guint64 consumed;      /* samples of this run flushed from the adapter */
  guint64 to_skip;       /* samples still to drop when hop > window */
  guint64 covered;       /* samples of this run inside an emitted window */
  guint64 nonfinite;     /* NaN/infinite input values since start */
  gboolean nonfinite_warned;
  gboolean announced; /* an embedding or a GAP went out since start or
                          * the last flush */
};

#define gst_audio_enc_parent_class parent_class
G_DEFINE_TYPE (GstAudioEnc, gst_audio_enc, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (audioenc, "audioenc", GST_RANK_NONE, GST_TYPE_AUDIO_ENC);

static void gst_audio_enc_finalize (GObject *object);
static void
gst_audio_enc_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void
gst_audio_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn
gst_audio_enc_change_state (GstElement *element, GstStateChange transition);
static gboolean gst_audio_enc_sink_event (GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean gst_audio_enc_sink_query (GstPad *pad, GstObject *parent, GstQuery *query);
static gboolean gst_audio_enc_src_query (GstPad *pad, GstObject *parent, GstQuery *query);
static GstFlowReturn gst_audio_enc_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer);

static void
gst_audio_enc_class_init (GstAudioEncClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->finalize = gst_audio_enc_finalize;
  gobject_class->set_property = gst_audio_enc_set_property;
  gobject_class->get_property = gst_audio_enc_get_property;

  gst_mm_install_model_property (gobject_class, PROP_MODEL);
  gst_mm_install_precision_property (gobject_class, PROP_PRECISION);
  g_object_class_install_property (gobject_class, PROP_WINDOW,
      g_param_spec_uint64 ("window", "Window",
          "Length of the audio window each embedding describes, in ns "
          "(rounded to whole samples; 0 = the model's window)",
          0, MAX_WINDOW_NS, DEFAULT_WINDOW,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_HOP,
      g_param_spec_uint64 ("hop", "Hop",
          "Time between the starts of consecutive windows, in ns (rounded "
          "to whole samples; 0 = the model's hop)",
          0, MAX_WINDOW_NS, DEFAULT_HOP,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Audio embedding encoder",
      "Filter/Analyzer/Audio", "Turns windows of raw audio into embeddings with a libmm model",
      "mm-gst developers");
  /* shown by gst-inspect-1.0 */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 audiotestsrc num-buffers=100 ! audioconvert ! audioresample ! audioenc "
      "model=tests/fixtures/tiny.safetensors ! fakesink dump=true");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_audio_enc_change_state);

  GST_DEBUG_CATEGORY_INIT (gst_audio_enc_debug, "audioenc", 0, "audio embedding encoder");
}

static void
gst_audio_enc_init (GstAudioEnc *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_audio_enc_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_audio_enc_sink_event));
  gst_pad_set_query_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_audio_enc_sink_query));
  /* accept any template rate, so that set_caps can say why a rate is wrong */
  GST_PAD_SET_ACCEPT_TEMPLATE (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_audio_enc_src_query));
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->window_ns = DEFAULT_WINDOW;
  self->hop_ns = DEFAULT_HOP;
  self->adapter = gst_adapter_new ();
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  gst_audio_info_init (&self->info);
  self->base_pts = GST_CLOCK_TIME_NONE;
}

static void
gst_audio_enc_finalize (GObject *object)
{
  GstAudioEnc *self = GST_AUDIO_ENC (object);

  g_free (self->model_path);
  g_free (self->refused_offer);
  gst_clear_caps (&self->src_caps);
  g_object_unref (self->adapter);
  g_free (self->samples);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_audio_enc_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstAudioEnc *self = GST_AUDIO_ENC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_WINDOW:
      self->window_ns = g_value_get_uint64 (value);
      break;
    case PROP_HOP:
      self->hop_ns = g_value_get_uint64 (value);
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
gst_audio_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstAudioEnc *self = GST_AUDIO_ENC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_WINDOW:
      g_value_set_uint64 (value, self->window_ns);
      break;
    case PROP_HOP:
      g_value_set_uint64 (value, self->hop_ns);
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

/* Samples in @ns at @rate, rounded to nearest, at least 1; @fallback if
 * @ns is 0. */
static guint
samples_from_ns (guint64 ns, guint rate, guint fallback)
{
  guint64 n;

  if (ns == 0)
    return fallback;
  n = gst_util_uint64_scale_round (ns, rate, GST_SECOND);
  return (guint)CLAMP (n, 1, G_MAXINT);
}

/* out (n) = mean over the @channels interleaved channels of @in (n,
 * channels), as floats in [-1, 1]. @in may be unaligned. */
static void
downmix (const guint8 *in, GstAudioFormat format, guint channels, gsize n, gfloat *out)
{
  gsize i;
  guint c;

  for (i = 0; i < n; i++) {
    gfloat sum = 0.0f;

    for (c = 0; c < channels; c++) {
      if (format == GST_AUDIO_FORMAT_S16LE)
        sum += (gint16)GST_READ_UINT16_LE (in) / 32768.0f;
      else
        sum += GST_READ_FLOAT_LE (in);
      in += format == GST_AUDIO_FORMAT_S16LE ? 2 : 4;
    }
    out[i] = sum / channels;
  }
}

/* Number of NaN or infinite values among the @n float32 (little-endian)
 * values at @in (may be unaligned). */
static guint64
count_nonfinite (const guint8 *in, gsize n)
{
  guint64 count = 0;
  gsize i;

  for (i = 0; i < n; i++)
    count += !isfinite (GST_READ_FLOAT_LE (in + 4 * i));
  return count;
}

/* TRUE if every one of the @n values at @x is finite. */
static gboolean
all_finite (const gfloat *x, gsize n)
{
  gsize i;

  for (i = 0; i < n; i++)
    if (!isfinite (x[i]))
      return FALSE;
  return TRUE;
}

/* The latency answered before the model is loaded (READY): the window
 * length in ns, from the model file at the `model` property (its window
 * samples and rate, or the `window` property), 0 if it cannot be read.
 * A downstream live aggregator queries the latency as soon as it reaches
 * PAUSED, which happens before this upstream element does; answering 0
 * then would make it give up on the first windows. */
static GstClockTime
gst_audio_enc_latency_before_start (GstAudioEnc *self)
{
  GstClockTime latency = 0;
  guint64 window_ns;
  MmModel *model;
  gchar *path;
  guint rate;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->model_path);
  window_ns = self->window_ns;
  GST_OBJECT_UNLOCK (self);
  if (path == NULL)
    return 0;

  model = mm_model_open (path, NULL);
  if (model && mm_model_has_component (model, MM_COMPONENT_AUDIO)
      && (rate = mm_model_get_audio_rate (model)) > 0)
    latency = gst_util_uint64_scale (
        samples_from_ns (window_ns, rate, mm_model_get_audio_window (model)), GST_SECOND, rate);
  g_clear_pointer (&model, mm_model_unref);
  g_free (path);
  return latency;
}

/* Virtual methods */

static gboolean
gst_audio_enc_start (GstElement *element)
{
  GstAudioEnc *self = GST_AUDIO_ENC (element);
  MmContextParams params = mm_context_default_params ();
  GError *err = NULL;
  guint64 window_ns, hop_ns;
  GstClockTime old_latency;

  GST_OBJECT_LOCK (self);
  window_ns = self->window_ns;
  hop_ns = self->hop_ns;
  params.precision = self->precision;
  GST_OBJECT_UNLOCK (self);
  params.precision = gst_mm_element_resolve_precision (GST_ELEMENT (self), params.precision);

  self->model = gst_mm_element_open_model_property (
      GST_ELEMENT (self), &self->model_path, MM_COMPONENT_AUDIO);
  if (self->model == NULL)
    return FALSE;

  self->rate = mm_model_get_audio_rate (self->model);
  self->window = samples_from_ns (window_ns, self->rate, mm_model_get_audio_window (self->model));
  self->hop = samples_from_ns (hop_ns, self->rate, mm_model_get_audio_hop (self->model));
  params.max_audio_samples = self->window;
  self->encoder = mm_audio_encoder_new (self->model, &params, &err);
  if (self->encoder == NULL) {
    gst_mm_element_post_context_error (GST_ELEMENT (self), "audio encoder", err);
    g_clear_error (&err);
    g_clear_pointer (&self->model, mm_model_unref);
    return FALSE;
  }
  gst_mm_element_check_precision (GST_ELEMENT (self), params.precision,
      mm_audio_encoder_get_precision (self->encoder), "audio");
  self->samples = g_new (gfloat, self->window);

  self->dim = gst_mm_element_publish_embedding_caps (
      GST_ELEMENT (self), &self->src_caps, self->model, MM_COMPONENT_AUDIO, "audio");
  /* each embedding describes one window (the last one at EOS or a GAP may
   * be shorter: its buffer says so) */
  gst_mm_element_set_caps_duration (GST_ELEMENT (self), &self->src_caps,
      gst_util_uint64_scale (self->window, GST_SECOND, self->rate));
  GST_OBJECT_LOCK (self);
  self->model_rate = self->rate;
  old_latency = self->latency;
  self->latency = gst_util_uint64_scale (self->window, GST_SECOND, self->rate);
  GST_OBJECT_UNLOCK (self);
  /* the latency we answer changed (0 without a model): let the pipeline
   * query it again, so that a live mmfuse waits long enough for windows */
  if (self->latency != old_latency)
    gst_element_post_message (element, gst_message_new_latency (GST_OBJECT (self)));

  self->negotiated = FALSE;
  self->announced = FALSE;
  self->nonfinite = 0;
  self->nonfinite_warned = FALSE;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  GST_INFO_OBJECT (self, "model %s, audio dim %u, %u Hz, window %u, hop %u",
      mm_model_get_name (self->model), self->dim, self->rate, self->window, self->hop);
  return TRUE;
}

/* Starts a new run of contiguous samples at @pts, dropping what was
 * collected. */
static void
gst_audio_enc_reset (GstAudioEnc *self, GstClockTime pts)
{
  GST_DEBUG_OBJECT (self, "new run at %" GST_TIME_FORMAT, GST_TIME_ARGS (pts));
  gst_adapter_clear (self->adapter);
  self->base_pts = pts;
  self->consumed = 0;
  self->to_skip = 0;
  self->covered = 0;
}

static void
gst_audio_enc_stop (GstElement *element)
{
  GstAudioEnc *self = GST_AUDIO_ENC (element);
  GST_OBJECT_LOCK (self);
  gst_clear_caps (&self->src_caps);
  self->model_rate = 0;
  self->latency = 0;
  g_clear_pointer (&self->refused_offer, g_free);
  GST_OBJECT_UNLOCK (self);
  gst_audio_enc_reset (self, GST_CLOCK_TIME_NONE);
  g_clear_pointer (&self->encoder, mm_audio_encoder_free);
  g_clear_pointer (&self->model, mm_model_unref);
  g_clear_pointer (&self->samples, g_free);
  self->dim = 0;
}

static GstStateChangeReturn
gst_audio_enc_change_state (GstElement *element, GstStateChange transition)
{
  return gst_mm_element_change_state (element, transition, GST_ELEMENT_CLASS (parent_class),
      gst_audio_enc_start, gst_audio_enc_stop);
}

static gboolean
gst_audio_enc_set_caps (GstAudioEnc *self, GstCaps *caps)
{
  GstAudioInfo info;

  if (!gst_audio_info_from_caps (&info, caps)) {
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION, (NULL), ("invalid audio caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  if (self->model == NULL)
    return FALSE;
  if ((guint)GST_AUDIO_INFO_RATE (&info) != self->rate) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Audio at %d Hz, but model \"%s\" needs %u Hz: put audioresample "
         "before audioenc",
            GST_AUDIO_INFO_RATE (&info), mm_model_get_name (self->model), self->rate),
        ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  if (self->negotiated && !gst_audio_info_is_equal (&info, &self->info))
    gst_audio_enc_reset (self, GST_CLOCK_TIME_NONE);
  self->info = info;
  self->negotiated = TRUE;
  return gst_mm_element_set_src_caps (GST_ELEMENT (self), self->srcpad, &self->src_caps);
}

/* Time of sample @n of the current run. */
static GstClockTime
gst_audio_enc_sample_time (GstAudioEnc *self, guint64 n)
{
  if (!GST_CLOCK_TIME_IS_VALID (self->base_pts))
    return GST_CLOCK_TIME_NONE;
  return self->base_pts + gst_util_uint64_scale (n, GST_SECOND, self->rate);
}

/* A window [@start, @end) of @n samples holding NaN or infinite values:
 * not encoded (the encoder would see full-scale noise) but reported
 * missing with a GAP event for its interval; one warning per stream. */
static GstFlowReturn
gst_audio_enc_gap_window (GstAudioEnc *self, GstClockTime start, GstClockTime end, guint n)
{
  GstClockTime duration = GST_CLOCK_TIME_IS_VALID (start)
      ? end - start
      : gst_util_uint64_scale (n, GST_SECOND, self->rate);

  GST_DEBUG_OBJECT (self,
      "window of %u samples at %" GST_TIME_FORMAT " holds non-finite values: GAP instead", n,
      GST_TIME_ARGS (start));
  if (!self->nonfinite_warned) {
    self->nonfinite_warned = TRUE;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT,
        ("%" G_GUINT64_FORMAT " NaN or infinite audio samples so far (the first window "
         "holding them starts at %" GST_TIME_FORMAT "): windows that hold any are not "
         "encoded but reported missing (GAP events); this warning is posted once",
            self->nonfinite, GST_TIME_ARGS (start)),
        ("window of %u samples", n));
  }
  self->covered = self->consumed + n;
  self->announced = TRUE;
  if (GST_CLOCK_TIME_IS_VALID (start))
    gst_pad_push_event (self->srcpad, gst_event_new_gap (start, duration));
  return GST_FLOW_OK;
}

/* Encodes the first @n samples of the adapter as one window and pushes
 * it.  A window libmm refuses as too short is dropped when @may_drop. */
static GstFlowReturn
gst_audio_enc_encode_window (GstAudioEnc *self, guint n, gboolean may_drop)
{
  guint bpf = GST_AUDIO_INFO_BPF (&self->info);
  GstClockTime start, end;
  GstBuffer *outbuf;
  GstMapInfo out;
  GError *err = NULL;
  const guint8 *data;
  gboolean ok;

  data = gst_adapter_map (self->adapter, (gsize)n * bpf);
  downmix (data, GST_AUDIO_INFO_FORMAT (&self->info), GST_AUDIO_INFO_CHANNELS (&self->info), n,
      self->samples);
  gst_adapter_unmap (self->adapter);
  /* a final window may hold a single sample: print only those it has */
  GST_TRACE_OBJECT (self, "first samples %f %f %f (of %u)", self->samples[0],
      n > 1 ? self->samples[1] : 0.0f, n > 2 ? self->samples[2] : 0.0f, n);

  start = gst_audio_enc_sample_time (self, self->consumed);
  end = gst_audio_enc_sample_time (self, self->consumed + n);
  /* any NaN or infinite channel value makes its downmixed sample one */
  if (!all_finite (self->samples, n))
    return gst_audio_enc_gap_window (self, start, end, n);

  outbuf = gst_mm_embedding_buffer_new (self->dim);
  gst_buffer_map (outbuf, &out, GST_MAP_WRITE);
  ok = mm_audio_encoder_encode (self->encoder, self->samples, n, (float *)out.data, &err);
  gst_buffer_unmap (outbuf, &out);
  if (!ok) {
    gst_buffer_unref (outbuf);
    if (may_drop && g_error_matches (err, MM_ERROR, MM_ERROR_INPUT)) {
      GST_DEBUG_OBJECT (self, "dropping %u final samples: %s", n, err->message);
      g_clear_error (&err);
      return GST_FLOW_OK;
    }
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("%s", err->message),
        ("audio encoder failed on a %u-sample window", n));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }

  GST_BUFFER_PTS (outbuf) = start;
  GST_BUFFER_DURATION (outbuf) = GST_CLOCK_TIME_IS_VALID (start)
      ? end - start
      : gst_util_uint64_scale (n, GST_SECOND, self->rate);
  if (self->consumed == 0)
    GST_BUFFER_FLAG_SET (outbuf, GST_BUFFER_FLAG_DISCONT);
  self->covered = self->consumed + n;
  GST_LOG_OBJECT (self, "window of %u samples at %" GST_TIME_FORMAT, n, GST_TIME_ARGS (start));
  self->announced = TRUE;
  return gst_mm_element_push (GST_ELEMENT (self), self->srcpad, outbuf);
}

/* Drops up to @n samples from the front of the adapter; returns how many. */
static guint64
gst_audio_enc_skip (GstAudioEnc *self, guint64 n)
{
  guint bpf = GST_AUDIO_INFO_BPF (&self->info);
  guint64 avail = gst_adapter_available (self->adapter) / bpf;
  guint64 k = MIN (n, avail);

  gst_adapter_flush (self->adapter, k * bpf);
  self->consumed += k;
  return k;
}

/* Emits every full window the adapter holds. */
static GstFlowReturn
gst_audio_enc_process (GstAudioEnc *self)
{
  guint bpf = GST_AUDIO_INFO_BPF (&self->info);
  GstFlowReturn ret = GST_FLOW_OK;

  self->to_skip -= gst_audio_enc_skip (self, self->to_skip);
  while (ret == GST_FLOW_OK && self->to_skip == 0
      && gst_adapter_available (self->adapter) >= (gsize)self->window * bpf) {
    ret = gst_audio_enc_encode_window (self, self->window, FALSE);
    self->to_skip = self->hop;
    self->to_skip -= gst_audio_enc_skip (self, self->to_skip);
  }
  return ret;
}

/* At EOS or a GAP: the samples no window covered yet, as one shorter
 * window. */
static GstFlowReturn
gst_audio_enc_drain (GstAudioEnc *self)
{
  guint bpf;
  guint64 avail;

  if (!self->negotiated || self->encoder == NULL)
    return GST_FLOW_OK;
  bpf = GST_AUDIO_INFO_BPF (&self->info);
  avail = gst_adapter_available (self->adapter) / bpf;
  if (avail == 0 || self->consumed + avail <= self->covered)
    return GST_FLOW_OK;
  return gst_audio_enc_encode_window (self, (guint)MIN (avail, self->window), TRUE);
}

static gboolean
gst_audio_enc_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstAudioEnc *self = GST_AUDIO_ENC (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gboolean ret;

      gst_event_parse_caps (event, &caps);
      ret = gst_audio_enc_set_caps (self, caps);
      gst_event_unref (event);
      return ret;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &self->segment);
      if (!gst_pad_event_default (pad, parent, event))
        return FALSE;
      /* the first embedding needs a whole window of samples: let the sinks
       * preroll before it (gstmmelement.h) */
      if (!self->announced)
        self->announced = gst_mm_element_push_preroll_gap (
            GST_ELEMENT (self), self->sinkpad, self->srcpad, &self->segment);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      gst_audio_enc_reset (self, GST_CLOCK_TIME_NONE);
      gst_segment_init (&self->segment, GST_FORMAT_TIME);
      self->announced = FALSE;
      break;
    case GST_EVENT_GAP:
      /* no samples for a while: the run ends here, like at EOS; the next
       * buffer starts a new run at its own PTS, however short the gap */
      GST_DEBUG_OBJECT (self, "gap: draining and starting a new run");
      gst_audio_enc_drain (self);
      gst_audio_enc_reset (self, GST_CLOCK_TIME_NONE);
      self->announced = TRUE;
      break;
    case GST_EVENT_EOS:
      gst_audio_enc_drain (self);
      if (self->nonfinite > 0)
        GST_INFO_OBJECT (
            self, "%" G_GUINT64_FORMAT " NaN or infinite samples in all", self->nonfinite);
      gst_audio_enc_reset (self, GST_CLOCK_TIME_NONE);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

/* What audioenc needs in each field of its input caps, and the element
 * that converts it. */
static const struct
{
  const gchar *field;
  const gchar *before, *after; /* around the offered value */
  const gchar *converter;
} offer_fields[] = {
  { "rate", "at ", " Hz", "audioresample" },
  { "format", "in format ", "", "audioconvert" },
  { "channels", "with ", " channels", "audioconvert" },
  { "layout", "with layout ", "", "audioconvert" },
};

/* Upstream offers @filter in a caps query, and none of it fits @accepted
 * (the template at the model's rate @rate): negotiation is about to fail
 * with a bare not-negotiated error from upstream ("Internal data stream
 * error"), which does not say why.  Post a message that names what was
 * offered, what the model needs and the converter to add, once per
 * offer.  It is an error when upstream can offer nothing else in the
 * refused fields (their values are fixed: a decoder's output, a capsfilter,
 * audioconvert passing an 8 kHz rate through), a warning otherwise (a caps
 * query with a wider offer may be speculative). */
static void
gst_audio_enc_check_offer (GstAudioEnc *self, GstCaps *filter, GstCaps *accepted, guint rate)
{
  GstCaps *raw_audio = gst_caps_new_empty_simple ("audio/x-raw");
  GstCaps *raw = gst_caps_intersect (filter, raw_audio);
  const GstStructure *need = gst_caps_get_structure (accepted, 0);
  GString *offered = NULL, *needed = NULL, *converters = NULL;
  gboolean fixed = TRUE, post = FALSE;
  gchar *model = NULL, *text;
  guint f, i;

  gst_caps_unref (raw_audio);
  if (gst_caps_is_empty (raw) || gst_caps_can_intersect (raw, accepted))
    goto done;

  offered = g_string_new (NULL);
  needed = g_string_new (NULL);
  converters = g_string_new (NULL);
  for (f = 0; f < G_N_ELEMENTS (offer_fields); f++) {
    const gchar *name = offer_fields[f].field;
    GstCaps *only = gst_caps_new_empty_simple ("audio/x-raw");
    const GValue *v;
    gchar *str;

    gst_caps_set_value (only, name, gst_structure_get_value (need, name));
    if (gst_caps_can_intersect (raw, only)) {
      gst_caps_unref (only);
      continue;
    }
    gst_caps_unref (only);
    for (i = 0; i < gst_caps_get_size (raw); i++) {
      v = gst_structure_get_value (gst_caps_get_structure (raw, i), name);
      fixed = fixed && v != NULL && gst_value_is_fixed (v);
    }
    v = gst_structure_get_value (gst_caps_get_structure (raw, 0), name);
    str = v ? gst_value_serialize (v) : g_strdup ("?");
    g_string_append_printf (offered, "%s%s%s%s", offered->len ? ", " : "", offer_fields[f].before,
        str, offer_fields[f].after);
    g_free (str);
    if (f == 0)
      g_string_append_printf (needed, "%s%u Hz", needed->len ? ", " : "", rate);
    else if (f == 1)
      g_string_append_printf (needed, "%sformat S16LE or F32LE", needed->len ? ", " : "");
    else if (f == 2)
      g_string_append_printf (needed, "%s1 or 2 channels", needed->len ? ", " : "");
    else
      g_string_append_printf (needed, "%sinterleaved samples", needed->len ? ", " : "");
    if (strstr (converters->str, offer_fields[f].converter) == NULL)
      g_string_append_printf (
          converters, "%s%s", converters->len ? " and " : "", offer_fields[f].converter);
  }
  if (offered->len == 0) {
    /* no single field is to blame, only their combination */
    fixed = FALSE;
    g_string_assign (offered, "as offered");
    g_string_assign (needed, "other caps");
    g_string_assign (converters, "audioconvert and audioresample");
  }

  GST_OBJECT_LOCK (self);
  model = g_strdup (self->model_path);
  text = g_strdup_printf ("%s|%s|%d", offered->str, needed->str, fixed);
  if (g_strcmp0 (text, self->refused_offer) != 0) {
    g_free (self->refused_offer);
    self->refused_offer = text;
    post = TRUE;
  } else {
    g_free (text);
  }
  GST_OBJECT_UNLOCK (self);

  if (post && fixed)
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Audio offered %s, but model %s needs %s: put %s before audioenc", offered->str, model,
            needed->str, converters->str),
        ("upstream offers %" GST_PTR_FORMAT ", audioenc takes %" GST_PTR_FORMAT, filter, accepted));
  else if (post)
    GST_ELEMENT_WARNING (self, CORE, NEGOTIATION,
        ("Audio offered %s, but model %s needs %s: put %s before audioenc", offered->str, model,
            needed->str, converters->str),
        ("upstream offers %" GST_PTR_FORMAT ", audioenc takes %" GST_PTR_FORMAT, filter, accepted));

done:
  g_free (model);
  if (offered) {
    g_string_free (offered, TRUE);
    g_string_free (needed, TRUE);
    g_string_free (converters, TRUE);
  }
  gst_caps_unref (raw);
}

static gboolean
gst_audio_enc_sink_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstAudioEnc *self = GST_AUDIO_ENC (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    GstCaps *filter, *caps;
    guint rate;

    gst_query_parse_caps (query, &filter);
    GST_OBJECT_LOCK (self);
    rate = self->model_rate;
    GST_OBJECT_UNLOCK (self);
    caps = gst_pad_get_pad_template_caps (pad);
    if (rate > 0) {
      caps = gst_caps_make_writable (caps);
      gst_caps_set_simple (caps, "rate", G_TYPE_INT, (gint)rate, NULL);
      if (filter)
        gst_audio_enc_check_offer (self, filter, caps, rate);
    }
    return gst_mm_caps_query_reply (query, caps);
  }
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_audio_enc_src_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstAudioEnc *self = GST_AUDIO_ENC (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:
      return gst_mm_element_src_caps_query (GST_ELEMENT (self), pad, &self->src_caps, query);
    case GST_QUERY_LATENCY: {
      gboolean live;
      GstClockTime min, max, latency;
      gboolean loaded;

      if (!gst_pad_peer_query (self->sinkpad, query))
        return FALSE;
      gst_query_parse_latency (query, &live, &min, &max);
      GST_OBJECT_LOCK (self);
      latency = self->latency;
      loaded = self->model_rate != 0;
      GST_OBJECT_UNLOCK (self);
      if (!loaded)
        latency = gst_audio_enc_latency_before_start (self);
      min += latency;
      if (GST_CLOCK_TIME_IS_VALID (max))
        max += latency;
      GST_DEBUG_OBJECT (self, "latency: live %d, min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT,
          live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
      gst_query_set_latency (query, live, min, max);
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

static GstFlowReturn
gst_audio_enc_chain (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  GstAudioEnc *self = GST_AUDIO_ENC (parent);
  GstClockTime pts = GST_BUFFER_PTS (buffer);
  guint bpf;
  gsize size;
  gboolean restart;

  if (!self->negotiated || self->encoder == NULL) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("audio buffer before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  bpf = GST_AUDIO_INFO_BPF (&self->info);
  size = gst_buffer_get_size (buffer);
  if (size % bpf != 0) {
    GST_WARNING_OBJECT (self,
        "buffer of %" G_GSIZE_FORMAT " bytes is not "
        "whole frames of %u bytes; dropping the partial frame",
        size, bpf);
    buffer = gst_buffer_make_writable (buffer);
    gst_buffer_resize (buffer, 0, size - size % bpf);
  }

  restart = GST_BUFFER_IS_DISCONT (buffer) || !GST_CLOCK_TIME_IS_VALID (self->base_pts);
  if (!restart && GST_CLOCK_TIME_IS_VALID (pts)) {
    guint64 have = self->consumed + gst_adapter_available (self->adapter) / bpf;
    GstClockTime expected = gst_audio_enc_sample_time (self, have);
    GstClockTimeDiff diff = GST_CLOCK_DIFF (expected, pts);

    if (ABS (diff) > (GstClockTimeDiff)ALIGNMENT_THRESHOLD) {
      GST_DEBUG_OBJECT (self,
          "timestamp %" GST_TIME_FORMAT ", expected %" GST_TIME_FORMAT ": starting a new run",
          GST_TIME_ARGS (pts), GST_TIME_ARGS (expected));
      restart = TRUE;
    }
  }
  if (restart) {
    if (!GST_CLOCK_TIME_IS_VALID (pts))
      pts = self->segment.format == GST_FORMAT_TIME ? self->segment.start : 0;
    gst_audio_enc_reset (self, pts);
  }

  if (GST_AUDIO_INFO_FORMAT (&self->info) == GST_AUDIO_FORMAT_F32LE) {
    GstMapInfo map;

    if (gst_buffer_map (buffer, &map, GST_MAP_READ)) {
      self->nonfinite += count_nonfinite (map.data, map.size / 4);
      gst_buffer_unmap (buffer, &map);
    }
  }
  gst_adapter_push (self->adapter, buffer);
  return gst_audio_enc_process (self);
}
