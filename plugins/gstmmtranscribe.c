/* mmtranscribe: speech to transcripts timed by the speech they come from
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-mmtranscribe
 * @title: mmtranscribe
 *
 * Transcribes speech with pocketsphinx (libpocketsphinx 5prealpha, Debian's
 * `libpocketsphinx-dev`) and outputs one `text/x-raw, format=utf8` buffer per
 * utterance, whose PTS and duration are the utterance's interval in the
 * audio's own timestamps: from the start of its first word to the end of its last, as the
 * decoder's word segments give them (10 ms frames).  textenc embeds it as
 * is, so mmfuse pairs the words with the audio of the same moment.
 *
 * Segmentation: the audio is cut into utterances on silence, in 10 ms
 * frames: a frame is speech when its level (RMS, dBFS) is above
 * #GstMmTranscribe:threshold and at least 10 dB above the noise floor (the
 * quietest recent level: it follows a quieter frame at once and rises by
 * 1 dB per second of louder audio); an utterance ends after #GstMmTranscribe:min-silence of non-speech,
 * or when it reaches #GstMmTranscribe:max-utterance.  Each utterance is
 * decoded whole (with 100 ms of audio either side) when it ends: on a file
 * the element runs as fast as the decoder can, with no clock.  Between
 * utterances, GAP events tell downstream that time advanced without words
 * (the silence, or an utterance in which nothing was recognised).
 *
 * Each utterance is also posted on the bus as an element message
 * `mm-transcript` with fields `text` (string), `pts` and `duration`
 * (guint64, ns, as the buffer's).
 *
 * Latency: an utterance's text leaves after its end plus min-silence, with
 * the PTS of its start.  In a live pipeline the element answers the latency
 * query with min-silence + max-utterance (the longest such delay).
 *
 * Models: #GstMmTranscribe:hmm (acoustic model directory),
 * #GstMmTranscribe:dict (pronunciation dictionary) and #GstMmTranscribe:lm
 * (language model), by default the US English models of the
 * `pocketsphinx-en-us` package.  A missing or unreadable model is an error on
 * the bus when going to PAUSED.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=talk.wav ! wavparse ! audioconvert ! audioresample ! \
 *     audio/x-raw,format=S16LE,channels=1,rate=16000 ! mmtranscribe ! \
 *     textenc model=scenes.safetensors ! fakesink
 * ]| See pipelines/speech-transcript.sh for the audio and transcript fused.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <pocketsphinx.h>
#include <err.h>

#include "gstmmtranscribe.h"

GST_DEBUG_CATEGORY_STATIC (gst_mm_transcribe_debug);
#define GST_CAT_DEFAULT gst_mm_transcribe_debug

#define RATE 16000
#define FRAME 160     /* 10 ms: the decoder's frame and the segmenter's */
#define PAD_FRAMES 10 /* audio decoded either side of an utterance */
#define MODEL_DIR "/usr/share/pocketsphinx/model/en-us/"

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS ("audio/x-raw, format=S16LE, rate=16000, channels=1, layout=interleaved"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("text/x-raw, format=utf8"));

enum
{
  PROP_0,
  PROP_HMM,
  PROP_DICT,
  PROP_LM,
  PROP_THRESHOLD,
  PROP_MIN_SILENCE,
  PROP_MAX_UTTERANCE,
};

#define DEFAULT_HMM MODEL_DIR "en-us"
#define DEFAULT_DICT MODEL_DIR "cmudict-en-us.dict"
#define DEFAULT_LM MODEL_DIR "en-us.lm.bin"
#define DEFAULT_THRESHOLD -50.0
#define FLOOR_MARGIN_DB 10.0
#define FLOOR_RISE_DB 0.01 /* per 10 ms frame */
#define DEFAULT_MIN_SILENCE (300 * GST_MSECOND)
#define DEFAULT_MAX_UTTERANCE (10 * GST_SECOND)

struct _GstMmTranscribe
{
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties: object lock; read at start or per buffer */
  char *hmm, *dict, *lm;
  double threshold;
  GstClockTime min_silence, max_utterance;

  /* streaming thread only (created at READY->PAUSED) */
  ps_decoder_t *ps;
  GstSegment segment;
  gboolean caps_sent;
  GstClockTime origin; /* timestamp of sample 0 of `audio` */
  gint16 *audio;       /* samples since `origin`, trimmed as utterances end */
  gsize n_audio, cap_audio;
  gsize frame_pos;         /* samples of `audio` already classified */
  gssize speech_start;     /* first speech sample of the open utterance, or -1 */
  gsize last_speech;       /* end of its last speech frame */
  double floor_db;         /* noise floor, dBFS; NAN before the first frame */
  GstClockTime sent_until; /* time covered by buffers and GAPs */
  guint n_utterances;
};

#define gst_mm_transcribe_parent_class parent_class
G_DEFINE_TYPE (GstMmTranscribe, gst_mm_transcribe, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (mmtranscribe, "mmtranscribe", GST_RANK_NONE,
    GST_TYPE_MM_TRANSCRIBE,
    GST_DEBUG_CATEGORY_INIT (gst_mm_transcribe_debug, "mmtranscribe", 0, "speech transcripts"));

static void
gst_mm_transcribe_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec);
static void
gst_mm_transcribe_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec);
static void gst_mm_transcribe_finalize (GObject *object);
static GstStateChangeReturn
gst_mm_transcribe_change_state (GstElement *element, GstStateChange transition);
static GstFlowReturn gst_mm_transcribe_chain (GstPad *pad, GstObject *parent, GstBuffer *buf);
static gboolean gst_mm_transcribe_sink_event (GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean gst_mm_transcribe_src_query (GstPad *pad, GstObject *parent, GstQuery *query);

static void
gst_mm_transcribe_class_init (GstMmTranscribeClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_mm_transcribe_set_property;
  gobject_class->get_property = gst_mm_transcribe_get_property;
  gobject_class->finalize = gst_mm_transcribe_finalize;

  g_object_class_install_property (gobject_class, PROP_HMM,
      g_param_spec_string ("hmm", "Acoustic model", "Directory of the pocketsphinx acoustic model",
          DEFAULT_HMM, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_DICT,
      g_param_spec_string ("dict", "Dictionary", "Pronunciation dictionary file", DEFAULT_DICT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_LM,
      g_param_spec_string ("lm", "Language model", "N-gram language model file (ARPA or binary)",
          DEFAULT_LM, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Speech threshold",
          "Level (dBFS, RMS over 10 ms) above which audio counts as speech", -120.0, 0.0,
          DEFAULT_THRESHOLD, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_MIN_SILENCE,
      g_param_spec_uint64 ("min-silence", "Minimum silence", "Silence (ns) that ends an utterance",
          10 * GST_MSECOND, 10 * GST_SECOND, DEFAULT_MIN_SILENCE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_MAX_UTTERANCE,
      g_param_spec_uint64 ("max-utterance", "Maximum utterance",
          "Longest utterance (ns); longer speech is cut", GST_SECOND, 120 * GST_SECOND,
          DEFAULT_MAX_UTTERANCE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Timed speech transcription",
      "Filter/Analyzer/Audio/Text",
      "Transcribes speech with pocketsphinx into one text buffer per utterance, timed by the "
      "utterance",
      "mm-gst");
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_mm_transcribe_change_state);
}

static void
gst_mm_transcribe_init (GstMmTranscribe *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_mm_transcribe_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_mm_transcribe_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_mm_transcribe_src_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->hmm = g_strdup (DEFAULT_HMM);
  self->dict = g_strdup (DEFAULT_DICT);
  self->lm = g_strdup (DEFAULT_LM);
  self->threshold = DEFAULT_THRESHOLD;
  self->min_silence = DEFAULT_MIN_SILENCE;
  self->max_utterance = DEFAULT_MAX_UTTERANCE;
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
}

static void
gst_mm_transcribe_finalize (GObject *object)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (object);
  g_free (self->hmm);
  g_free (self->dict);
  g_free (self->lm);
  g_free (self->audio);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_mm_transcribe_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (object);
  GST_OBJECT_LOCK (self);
  switch (id) {
    case PROP_HMM:
      g_free (self->hmm);
      self->hmm = g_value_dup_string (value);
      break;
    case PROP_DICT:
      g_free (self->dict);
      self->dict = g_value_dup_string (value);
      break;
    case PROP_LM:
      g_free (self->lm);
      self->lm = g_value_dup_string (value);
      break;
    case PROP_THRESHOLD:
      self->threshold = g_value_get_double (value);
      break;
    case PROP_MIN_SILENCE:
      self->min_silence = g_value_get_uint64 (value);
      break;
    case PROP_MAX_UTTERANCE:
      self->max_utterance = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mm_transcribe_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (object);
  GST_OBJECT_LOCK (self);
  switch (id) {
    case PROP_HMM:
      g_value_set_string (value, self->hmm);
      break;
    case PROP_DICT:
      g_value_set_string (value, self->dict);
      break;
    case PROP_LM:
      g_value_set_string (value, self->lm);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, self->threshold);
      break;
    case PROP_MIN_SILENCE:
      g_value_set_uint64 (value, self->min_silence);
      break;
    case PROP_MAX_UTTERANCE:
      g_value_set_uint64 (value, self->max_utterance);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- decoder ------------------------------------------------------------ */

static gboolean
start_decoder (GstMmTranscribe *self)
{
  GST_OBJECT_LOCK (self);
  char *hmm = g_strdup (self->hmm), *dict = g_strdup (self->dict), *lm = g_strdup (self->lm);
  GST_OBJECT_UNLOCK (self);
  gboolean ok = FALSE;
  /* pocketsphinx's own errors go to its log; check the paths first so that
   * the application gets a message naming the missing file */
  const struct
  {
    const char *what, *path;
    GFileTest test;
  } files[] = {
    { "acoustic model directory (hmm)", hmm, G_FILE_TEST_IS_DIR },
    { "dictionary (dict)", dict, G_FILE_TEST_IS_REGULAR },
    { "language model (lm)", lm, G_FILE_TEST_IS_REGULAR },
  };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    if (!files[i].path || !g_file_test (files[i].path, files[i].test)) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("pocketsphinx %s '%s' not found (install pocketsphinx-en-us or set the property)",
              files[i].what, files[i].path ? files[i].path : "(none)"),
          (NULL));
      goto out;
    }
  }
  if (!g_getenv ("MM_TRANSCRIBE_LOG"))
    err_set_logfp (NULL); /* pocketsphinx logs pages per utterance to stderr */
  cmd_ln_t *config = cmd_ln_init (NULL, ps_args (), TRUE, "-hmm", hmm, "-dict", dict, "-lm", lm,
      "-samprate", "16000", "-frate", "100", "-remove_silence", "no", NULL);
  if (config)
    self->ps = ps_init (config);
  if (config)
    cmd_ln_free_r (config); /* the decoder keeps its own reference */
  if (!self->ps) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("pocketsphinx cannot load its models (hmm '%s', dict '%s', lm '%s')", hmm, dict, lm),
        ("set MM_TRANSCRIBE_LOG=1 to see pocketsphinx's log"));
    goto out;
  }
  ok = TRUE;
out:
  g_free (hmm);
  g_free (dict);
  g_free (lm);
  return ok;
}

static void
reset_stream (GstMmTranscribe *self)
{
  self->n_audio = 0;
  self->frame_pos = 0;
  self->speech_start = -1;
  self->last_speech = 0;
  self->floor_db = NAN;
  self->origin = GST_CLOCK_TIME_NONE;
  self->sent_until = GST_CLOCK_TIME_NONE;
}

static GstStateChangeReturn
gst_mm_transcribe_change_state (GstElement *element, GstStateChange transition)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    if (!start_decoder (self))
      return GST_STATE_CHANGE_FAILURE;
    reset_stream (self);
    self->caps_sent = FALSE;
    self->n_utterances = 0;
    gst_segment_init (&self->segment, GST_FORMAT_TIME);
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    if (self->ps)
      ps_free (self->ps);
    self->ps = NULL;
    g_clear_pointer (&self->audio, g_free);
    self->cap_audio = 0;
    reset_stream (self);
  }
  return ret;
}

/* ---- streaming ---------------------------------------------------------- */

static GstClockTime
sample_time (GstMmTranscribe *self, gsize sample)
{
  return self->origin + gst_util_uint64_scale_int (sample, GST_SECOND, RATE);
}

static GstFlowReturn
push_text (GstMmTranscribe *self, const char *text, GstClockTime pts, GstClockTime duration)
{
  if (!self->caps_sent) {
    gst_pad_push_event (
        self->srcpad, gst_event_new_caps (gst_caps_from_string ("text/x-raw, format=utf8")));
    self->caps_sent = TRUE;
  }
  GstBuffer *out = gst_buffer_new_memdup (text, strlen (text));
  GST_BUFFER_PTS (out) = pts;
  GST_BUFFER_DURATION (out) = duration;
  GST_DEBUG_OBJECT (self, "utterance %" GST_TIME_FORMAT " + %" GST_TIME_FORMAT ": %s",
      GST_TIME_ARGS (pts), GST_TIME_ARGS (duration), text);
  self->sent_until = pts + duration;
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("mm-transcript", "text", G_TYPE_STRING, text, "pts", G_TYPE_UINT64,
              pts, "duration", G_TYPE_UINT64, duration, NULL)));
  return gst_pad_push (self->srcpad, out);
}

/* Tells downstream that nothing was said up to @until. */
static void
push_gap (GstMmTranscribe *self, GstClockTime until)
{
  if (!GST_CLOCK_TIME_IS_VALID (until))
    return;
  if (!GST_CLOCK_TIME_IS_VALID (self->sent_until))
    self->sent_until = self->origin;
  if (until <= self->sent_until || until - self->sent_until < 100 * GST_MSECOND)
    return;
  if (!self->caps_sent) {
    gst_pad_push_event (
        self->srcpad, gst_event_new_caps (gst_caps_from_string ("text/x-raw, format=utf8")));
    self->caps_sent = TRUE;
  }
  gst_pad_push_event (self->srcpad, gst_event_new_gap (self->sent_until, until - self->sent_until));
  self->sent_until = until;
}

/* Decodes audio[begin, end) as one utterance and pushes its words, timed by
 * the decoder's word segments; then drops the audio before @end. */
static GstFlowReturn
finish_utterance (GstMmTranscribe *self, gsize begin, gsize end)
{
  GstFlowReturn ret = GST_FLOW_OK;
  gsize from = begin > PAD_FRAMES * FRAME ? begin - PAD_FRAMES * FRAME : 0;
  gsize to = MIN (self->n_audio, end + PAD_FRAMES * FRAME);
  GString *text = g_string_new (NULL);
  int first = -1, last = -1;

  if (ps_start_utt (self->ps) == 0) {
    ps_process_raw (self->ps, self->audio + from, to - from, FALSE, TRUE);
    ps_end_utt (self->ps);
    for (ps_seg_t *seg = ps_seg_iter (self->ps); seg; seg = ps_seg_next (seg)) {
      const char *word = ps_seg_word (seg);
      int sf, ef;
      ps_seg_frames (seg, &sf, &ef);
      /* fillers: <s>, </s>, <sil>, [NOISE], ++GARBAGE++ */
      if (!word || word[0] == '<' || word[0] == '[' || word[0] == '+')
        continue;
      char *clean = g_strdup (word);
      char *alt = strchr (clean, '(');
      if (alt) /* "read(2)": the second pronunciation */
        *alt = '\0';
      if (text->len)
        g_string_append_c (text, ' ');
      g_string_append (text, clean);
      g_free (clean);
      if (first < 0)
        first = sf;
      last = ef;
    }
  }
  if (first >= 0) {
    GstClockTime start = sample_time (self, from + (gsize)first * FRAME);
    GstClockTime stop = sample_time (self, from + (gsize)(last + 1) * FRAME);
    if (GST_CLOCK_TIME_IS_VALID (self->sent_until) && start < self->sent_until)
      start = self->sent_until;
    push_gap (self, start);
    self->n_utterances++;
    ret = push_text (self, text->str, start, stop > start ? stop - start : GST_MSECOND);
  } else {
    GST_DEBUG_OBJECT (self, "nothing recognised in %" G_GSIZE_FORMAT " samples", end - begin);
  }
  g_string_free (text, TRUE);

  /* keep PAD_FRAMES of context before the next utterance */
  gsize keep_from = end > PAD_FRAMES * FRAME ? end - PAD_FRAMES * FRAME : 0;
  keep_from = MIN (keep_from, self->frame_pos);
  memmove (self->audio, self->audio + keep_from, (self->n_audio - keep_from) * sizeof (gint16));
  self->n_audio -= keep_from;
  self->frame_pos -= keep_from;
  self->origin = sample_time (self, keep_from);
  self->speech_start = -1;
  self->last_speech = 0;
  return ret;
}

/* Classifies the new whole frames; ends utterances on silence or length. */
static GstFlowReturn
segment_frames (GstMmTranscribe *self, gboolean at_eos)
{
  GST_OBJECT_LOCK (self);
  double threshold_db = self->threshold;
  gsize min_silence = gst_util_uint64_scale (self->min_silence, RATE, GST_SECOND);
  gsize max_utt = gst_util_uint64_scale (self->max_utterance, RATE, GST_SECOND);
  GST_OBJECT_UNLOCK (self);
  GstFlowReturn ret = GST_FLOW_OK;

  while (ret == GST_FLOW_OK && self->frame_pos + FRAME <= self->n_audio) {
    const gint16 *f = self->audio + self->frame_pos;
    double energy = 0;
    for (int i = 0; i < FRAME; i++)
      energy += (double)f[i] * f[i];
    double level_db = 10.0 * log10 (energy / FRAME / (32768.0 * 32768.0) + 1e-12);
    if (isnan (self->floor_db) || level_db < self->floor_db)
      self->floor_db = level_db;
    else
      self->floor_db += FLOOR_RISE_DB;
    gboolean speech = level_db > threshold_db && level_db > self->floor_db + FLOOR_MARGIN_DB;
    self->frame_pos += FRAME;
    if (speech) {
      if (self->speech_start < 0)
        self->speech_start = self->frame_pos - FRAME;
      self->last_speech = self->frame_pos;
    }
    if (self->speech_start >= 0
        && (self->frame_pos - self->last_speech >= min_silence
            || self->frame_pos - (gsize)self->speech_start >= max_utt))
      ret = finish_utterance (self, self->speech_start, self->last_speech);
  }
  if (ret == GST_FLOW_OK && at_eos && self->speech_start >= 0)
    ret = finish_utterance (self, self->speech_start, self->last_speech);
  if (ret != GST_FLOW_OK)
    return ret;

  if (self->speech_start < 0) {
    /* no open utterance: everything but the kept context is silence */
    gsize keep_from =
        self->frame_pos > PAD_FRAMES * FRAME ? self->frame_pos - PAD_FRAMES * FRAME : 0;
    push_gap (self, sample_time (self, at_eos ? self->n_audio : self->frame_pos));
    memmove (self->audio, self->audio + keep_from, (self->n_audio - keep_from) * sizeof (gint16));
    self->n_audio -= keep_from;
    self->frame_pos -= keep_from;
    self->origin = sample_time (self, keep_from);
  }
  return ret;
}

static GstFlowReturn
gst_mm_transcribe_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (parent);
  GstMapInfo map;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("cannot map an audio buffer"), (NULL));
    return GST_FLOW_ERROR;
  }
  gsize n = map.size / sizeof (gint16);
  GstClockTime pts = GST_BUFFER_PTS (buf);
  if (!GST_CLOCK_TIME_IS_VALID (self->origin)) {
    self->origin = GST_CLOCK_TIME_IS_VALID (pts) ? pts : 0;
  } else if (GST_BUFFER_IS_DISCONT (buf) && GST_CLOCK_TIME_IS_VALID (pts)
      && self->speech_start < 0) {
    /* resync on a discontinuity while no utterance is open */
    GstClockTime expected = sample_time (self, self->n_audio);
    if (pts > expected + 20 * GST_MSECOND || pts + 20 * GST_MSECOND < expected) {
      self->n_audio = self->frame_pos = 0;
      self->origin = pts;
    }
  }
  if (self->n_audio + n > self->cap_audio) {
    self->cap_audio = MAX (self->n_audio + n, self->cap_audio * 2);
    self->audio = g_renew (gint16, self->audio, self->cap_audio);
  }
  memcpy (self->audio + self->n_audio, map.data, n * sizeof (gint16));
  self->n_audio += n;
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  return segment_frames (self, FALSE);
}

static gboolean
gst_mm_transcribe_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (parent);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:
      gst_event_unref (event);
      if (!self->caps_sent) {
        /* the event takes its own reference to the caps */
        GstCaps *caps = gst_caps_from_string ("text/x-raw, format=utf8");
        gboolean pushed = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
        gst_caps_unref (caps);
        self->caps_sent = TRUE;
        return pushed;
      }
      return TRUE;
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &self->segment);
      if (self->segment.format != GST_FORMAT_TIME) {
        gst_event_unref (event);
        GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("mmtranscribe needs a TIME segment"), (NULL));
        return FALSE;
      }
      break;
    case GST_EVENT_EOS:
      if (self->ps && self->n_audio)
        segment_frames (self, TRUE);
      break;
    case GST_EVENT_FLUSH_STOP:
      reset_stream (self);
      break;
    case GST_EVENT_GAP:
      /* silence upstream: ends an open utterance like silence does */
      if (self->ps && self->speech_start >= 0)
        finish_utterance (self, self->speech_start, self->last_speech);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_mm_transcribe_src_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstMmTranscribe *self = GST_MM_TRANSCRIBE (parent);
  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query (self->sinkpad, query))
      return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency (query, &live, &min, &max);
    GST_OBJECT_LOCK (self);
    GstClockTime ours = self->min_silence + self->max_utterance;
    GST_OBJECT_UNLOCK (self);
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += ours;
    gst_query_set_latency (query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}
