/* mmfuse: timestamp-synchronised fusion of embedding streams
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-mmfuse
 * @title: mmfuse
 * @see_also: textenc, imageenc, audioenc, mmdecode
 *
 * mmfuse takes any number of embedding streams (one per request pad
 * `sink_%u`, caps `application/x-mm-embedding, modality=..., dim=...`),
 * pairs them by time and runs the fusion component of the model (libmm's
 * mm_fusion_run()).  Each output buffer is one fused vector with caps
 * `application/x-mm-embedding, modality=fused, dim=<fusion dim>,
 * model=<name>` and a #MmFusionMeta saying, for every fusion input, its
 * modality, whether it was present and the PTS of the embedding used.
 *
 * ## Inputs
 * Each pad feeds the first fusion input of its modality that no other pad
 * feeds (the modality comes from the caps, or from the pad's `modality`
 * property when set, e.g. for an appsrc feeding "sensor" values).  Caps whose
 * modality the model lacks, or whose `dim` differs from the model's input
 * dimension, are refused with a CORE/NEGOTIATION error naming the pad, the
 * modality and the expected dimension; buffers on such a pad then fail with
 * not-negotiated.  Caps naming another model (their `model` field) than
 * mmfuse's, with the right dimension, are accepted with a CORE/NEGOTIATION
 * warning.  Pads can be requested and released in any state; a
 * released pad's input is missing from then on and free for a new pad.
 * mmfuse is a #GstChildProxy of its sink pads, so pad properties can be
 * set from a launch line, e.g. `mmfuse name=f sink_2::max-age=0`.
 *
 * ## Cadence
 * - `drive-pad` set: every buffer of that pad produces one output with the
 *   buffer's PTS and duration (and its embedding as that modality's input).
 *   While the name matches no sink pad (a typo, a pad not requested yet or
 *   released) the cadence is the default one below, and a RESOURCE/SETTINGS
 *   warning naming the existing pads is posted once.  drive-pad may change
 *   while playing; drive buffers that start before the last output are
 *   skipped, and one that starts inside it gives an output from where the
 *   last one ended, so outputs never go back in time or decide a time twice.
 * - else `interval` > 0: outputs every `interval` ns of running time, from the
 *   output segment's start (see the aggregator's `start-time-selection`).
 * - else the first image pad drives; without one, a 500 ms interval.
 * In a live pipeline a drive pad that has not delivered anything by its
 * first deadline is treated as absent (interval cadence) until it does; its
 * first output then starts where the last interval ended.
 *
 * ## Pairing
 * For an output interval [t, t+d), every other pad contributes the
 * embedding whose validity interval [pts, pts+duration) covers t (with
 * overlapping windows, the earliest-starting one still covering t; but on
 * a sparse pad a newer cue supersedes an older one from its start: the
 * older one is not used again, however long it says it lasts, so a cue
 * whose end came before its start or that overlaps the next one cannot
 * mask later cues), or else
 * the newest one that started before t if its end lies at most `max-age` ns
 * before t (the pad's own `max-age` when set, else the element's).
 * A GAP event after an embedding (e.g. textenc's blank cue) ends that: from
 * the later of the gap's start and the embedding's end until the pad's next
 * buffer, the pad contributes nothing, whatever `max-age` says.
 * Otherwise the modality is missing and goes into the fusion as a NULL input
 * (the presence mask): stale data is never reused silently.  Only the newest
 * embedding of each pad is kept (copied).
 *
 * ## Durations lost in transport
 * Some transports drop buffer durations (`rtpgstpay ! rtpgstdepay` keeps
 * the PTS and the caps only).  An embedding's duration is the buffer's;
 * else the caps' `duration` field (guint64 ns: the encoders put their
 * nominal one there, audioenc its window, imageenc the frame interval);
 * else it ends where the pad's next buffer or GAP starts.  Such an open
 * embedding makes its pad unsettled past its start until that next buffer
 * (a drive buffer is held back, off the queue, until then), EOS, or in a
 * live pipeline the deadline: so it costs no latency beyond the next
 * buffer's arrival, and never more than the deadline (t + the answered
 * latency), at which a still-open one counts as lasting as long as that
 * pad's previous one did (as at EOS).  On a sparse pad (text) the caps'
 * `duration` is only a bound (textenc: its max-duration): a cue of unknown
 * end lasts until the next cue or GAP, at most that long; with no bound it
 * ends where it starts for live deadlines (max-age then applies) and at EOS
 * lasts to the end.  Over RTP a cue's real end is lost, so a cue may then
 * count past it (tests/pipelines/test_transport.py).
 *
 * ## Sparse streams and settling
 * An output for time t is produced only when every non-driving pad is
 * "settled" past t: its next buffer starts after t, a GAP event covers t,
 * the embedding it gives covers t, the pad is EOS, or, in a live pipeline,
 * the aggregator's deadline for t (t + latency) has passed.  This is what
 * keeps mmfuse from pairing the wrong moments while never stalling dense pads
 * on a silent sparse one: a subtitle pad whose next cue is ten minutes away
 * (or which sends GAP events) lets video flow, and in a live pipeline a
 * silent pad costs at most the configured latency.  The rule: in a live
 * pipeline, a pad with neither data nor a GAP covering t by t's deadline
 * (t + the answered latency: the slowest input's, e.g. audioenc's window,
 * plus `latency`) is settled, and contributes its last embedding while
 * max-age allows, else nothing.  Pads whose caps say
 * modality=text are marked sparse automatically (read-only `sparse` pad
 * property): sparse pads do not keep the stream alive in interval cadence.
 * Pads that never delivered data are ignored in live pipelines
 * (`ignore-inactive-pads`).
 *
 * ## Latency and buffering
 * The latency query is answered by #GstAggregator: the largest upstream
 * latency plus the `latency` property, which also bounds how much jitter
 * between inputs mmfuse absorbs before a live deadline expires.  A branch
 * whose upstream can hold data back for less than that (its maximum
 * latency, e.g. a caption appsrc behind a default 1 s queue next to a 2 s
 * audio window) would make the base class give up its deadlines and wait
 * for data forever; mmfuse keeps its deadlines, answers the real maximum,
 * and posts a CORE/CLOCK warning once naming the pad, the latency and
 * that branch's maximum (tests/pipelines: live-silent-captions).  Outside
 * live pipelines mmfuse, like any aggregator, runs when every pad has data
 * (or a GAP, or EOS).  When one demuxer thread feeds all branches, the
 * other branches must be able to run ahead by the largest encoder window
 * (audioenc's first embedding needs its whole window): mmfuse therefore
 * asks each branch for its lookahead (the latency query, answered by the
 * encoders even when not live) and, unless the application set `latency`,
 * sets `latency` to 1.5 times the largest (at most 30 s), which outside
 * live pipelines only lets each pad queue that much (embeddings are
 * small); it is undone when mmfuse stops, or when a live branch appears.
 * DESIGN.md's launch line then runs, and survives seeks, with plain
 * `queue`s (tests/pipelines: design-line, design-line-seeks); branches that
 * wait for mmfuse's own output (textoverlay fed by mmdecode) still need
 * queues of a few seconds.  An application that sets `latency` itself,
 * even to 0, keeps its value.
 *
 * ## Provenance
 * #MmFusionMeta has one entry per fusion input, in the model's order: its
 * modality, whether it was present, and the PTS of the embedding used,
 * expressed on the output's timeline (the input PTS when input and output
 * segments agree, as in a plain pipeline), or GST_CLOCK_TIME_NONE.
 *
 * ## Lifecycle
 * A flushing seek resets all pairing state; the next output is stamped on
 * the new segment.  EOS on one pad makes its modality missing from then on
 * (its last embedding still counts while it covers t, max-age no longer
 * extends it).  EOS on the drive pad, or (interval cadence) on every
 * non-sparse pad once their data is fused (outputs up to the end of the
 * last non-sparse embedding), ends the stream without waiting for sparse
 * pads: in a live pipeline the queued drive buffers are fused as their
 * deadlines pass, then EOS is pushed at once.  Buffers without a PTS, or
 * outside the segment, are dropped.
 *
 * Segments and rate: pairing works in running time, so a non-zero segment
 * start and seeks are handled.  In interval cadence the outputs stop at the
 * output segment's stop (a seek with a stop position ends the stream
 * there, the last output's duration clipped to it); with a drive pad the
 * drive pad's own segment (upstream clipping) decides, and drive buffers
 * outside the output segment produce nothing.  Positive rates other than 1
 * work (intervals are in running time, so rate 2 gives outputs every
 * `interval` of running time, i.e. every 2 * `interval` of stream time);
 * seeks with a negative rate (reverse playback) are refused.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=news.mkv ! matroskademux name=d \
 *   d.video_0 ! queue ! decodebin ! videoconvert ! imageenc model=scenes.safetensors ! f.sink_0 \
 *   d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! audioenc model=scenes.safetensors ! f.sink_1 \
 *   d.subtitle_0 ! queue ! textenc model=scenes.safetensors ! f.sink_2 \
 *   mmfuse name=f model=scenes.safetensors ! mmdecode model=scenes.safetensors ! fakesink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>
#include <gst/base/gstqueuearray.h>
#include <mm.h>

#include "gstmmfuse.h"
#include "gstmmelement.h"
#include "gstmmmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_mm_fuse_debug);
#define GST_CAT_DEFAULT gst_mm_fuse_debug

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink_%u", GST_PAD_SINK,
    GST_PAD_REQUEST, GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", dim = (int) [ 1, 65536 ]"));

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", modality = (string) fused, "
                                                "dim = (int) [ 1, 65536 ]"));

/* ---------------------------------------------------------------------- */
/* Pad                                                                     */

enum
{
  PROP_PAD_0,
  PROP_PAD_MODALITY,
  PROP_PAD_MAX_AGE,
  PROP_PAD_SPARSE,
  PROP_PAD_INPUT,
};

#define DEFAULT_PAD_MAX_AGE (-1)

struct _GstMmFusePad
{
  GstAggregatorPad parent;

  /* properties, pad object lock */
  gchar *modality_override; /* NULL: modality from the caps */
  gint64 max_age;           /* -1: the element's */

  /* written by the aggregator thread under the pad object lock; the
   * aggregator thread reads them without it */
  gchar *modality; /* effective modality, NULL before caps */
  guint dim;
  gint input; /* fusion input fed, -1 if none */
  gboolean sparse;
  gboolean refused;           /* caps were refused: not negotiated */
  GstClockTime caps_duration; /* the caps' nominal `duration` of an
                               * embedding, NONE when absent */

  /* stream state, aggregator thread only */
  gfloat *last; /* newest embedding (dim floats) */
  gboolean has_last;
  GstClockTime last_start; /* its validity interval, running time */
  GstClockTime last_end;   /* NONE when it had no duration */
  GstClockTime gap_from;   /* a GAP after it: no data from here on (until
                            * the next buffer), or NONE */
  gboolean last_open;      /* its duration is unknown (neither the buffer
                            * nor the caps had one): it ends where the
                            * pad's next buffer or GAP starts */
  GstClockTime spacing;    /* the last duration learned that way, the
                            * estimate for an open one at EOS/deadline
                            * (dense pads only), or NONE */
  GstBuffer *held;         /* drive pad: a buffer of unknown duration,
                            * taken off the queue until the next one's PTS
                            * (or EOS, or the deadline) ends it */
  gint pending_reset;      /* atomic: set on flush, applied by the
                                 * aggregator thread */
  gboolean flushed;        /* flushed since the last output or reset of
                            * the output clock (aggregator thread) */

  /* pad object lock: the PTS of every data buffer that entered the pad
   * (queued_probe(), streaming thread) and is not consumed yet, oldest
   * first, so that a cue sees a newer one queued (or waiting for room)
   * behind it: the base class only shows the head of the queue */
  GstQueueArray *queued_pts;

  /* pad object lock: the maximum latency this pad's upstream answered in
   * the last latency query (how long it can hold data back), NONE when
   * unbounded or not answered; see latency_probe() */
  GstClockTime upstream_max;
};

G_DEFINE_TYPE (GstMmFusePad, gst_mm_fuse_pad, GST_TYPE_AGGREGATOR_PAD);

static void
gst_mm_fuse_pad_reset_stream (GstMmFusePad *pad)
{
  pad->has_last = FALSE;
  pad->last_start = GST_CLOCK_TIME_NONE;
  pad->last_end = GST_CLOCK_TIME_NONE;
  pad->gap_from = GST_CLOCK_TIME_NONE;
  pad->last_open = FALSE;
  pad->spacing = GST_CLOCK_TIME_NONE;
  gst_clear_buffer (&pad->held);
  pad->flushed = FALSE;
}

static GstFlowReturn
gst_mm_fuse_pad_flush (GstAggregatorPad *apad, GstAggregator *agg)
{
  g_atomic_int_set (&GST_MM_FUSE_PAD (apad)->pending_reset, 1);
  return GST_FLOW_OK;
}

static void
gst_mm_fuse_pad_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMmFusePad *pad = GST_MM_FUSE_PAD (object);

  GST_OBJECT_LOCK (pad);
  switch (prop_id) {
    case PROP_PAD_MODALITY:
      g_free (pad->modality_override);
      pad->modality_override = g_value_dup_string (value);
      if (pad->modality_override && !*pad->modality_override)
        g_clear_pointer (&pad->modality_override, g_free);
      break;
    case PROP_PAD_MAX_AGE:
      pad->max_age = g_value_get_int64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (pad);
}

static void
gst_mm_fuse_pad_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMmFusePad *pad = GST_MM_FUSE_PAD (object);

  GST_OBJECT_LOCK (pad);
  switch (prop_id) {
    case PROP_PAD_MODALITY:
      g_value_set_string (value, pad->modality_override ? pad->modality_override : pad->modality);
      break;
    case PROP_PAD_MAX_AGE:
      g_value_set_int64 (value, pad->max_age);
      break;
    case PROP_PAD_SPARSE:
      g_value_set_boolean (value, pad->sparse);
      break;
    case PROP_PAD_INPUT:
      g_value_set_int (value, pad->input);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (pad);
}

static void
gst_mm_fuse_pad_finalize (GObject *object)
{
  GstMmFusePad *pad = GST_MM_FUSE_PAD (object);

  g_free (pad->modality_override);
  g_free (pad->modality);
  g_free (pad->last);
  gst_clear_buffer (&pad->held);
  gst_queue_array_free (pad->queued_pts);

  G_OBJECT_CLASS (gst_mm_fuse_pad_parent_class)->finalize (object);
}

static void
gst_mm_fuse_pad_class_init (GstMmFusePadClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstAggregatorPadClass *apad_class = GST_AGGREGATOR_PAD_CLASS (klass);

  gobject_class->set_property = gst_mm_fuse_pad_set_property;
  gobject_class->get_property = gst_mm_fuse_pad_get_property;
  gobject_class->finalize = gst_mm_fuse_pad_finalize;
  apad_class->flush = GST_DEBUG_FUNCPTR (gst_mm_fuse_pad_flush);

  g_object_class_install_property (gobject_class, PROP_PAD_MODALITY,
      g_param_spec_string ("modality", "Modality",
          "Fusion input modality this pad feeds (e.g. \"sensor\"); "
          "NULL = the caps' modality.  Read when caps arrive",
          NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PAD_MAX_AGE,
      g_param_spec_int64 ("max-age", "Maximum age",
          "How long (ns) after its end this pad's last embedding may still "
          "be used; -1 = the element's max-age",
          -1, G_MAXINT64, DEFAULT_PAD_MAX_AGE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PAD_SPARSE,
      g_param_spec_boolean ("sparse", "Sparse",
          "Whether the stream is sparse (set from caps: modality=text)", FALSE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_PAD_INPUT,
      g_param_spec_int ("input", "Fusion input",
          "Index of the fusion input this pad feeds, -1 before caps", -1, MM_MAX_INPUTS, -1,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

static void
gst_mm_fuse_pad_init (GstMmFusePad *pad)
{
  pad->max_age = DEFAULT_PAD_MAX_AGE;
  pad->input = -1;
  pad->upstream_max = GST_CLOCK_TIME_NONE;
  pad->caps_duration = GST_CLOCK_TIME_NONE;
  pad->queued_pts = gst_queue_array_new_for_struct (sizeof (GstClockTime), 8);
  gst_mm_fuse_pad_reset_stream (pad);
  /* Accept-caps only checks the template: wrong dims reach the CAPS event,
   * which refuses them with a message naming the problem. */
  GST_PAD_SET_ACCEPT_TEMPLATE (pad);
}

/* ---------------------------------------------------------------------- */
/* Element                                                                 */

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_DRIVE_PAD,
  PROP_INTERVAL,
  PROP_MAX_AGE,
};

#define DEFAULT_DRIVE_PAD NULL
#define DEFAULT_INTERVAL 0
#define DEFAULT_MAX_AGE GST_SECOND
#define FALLBACK_INTERVAL (500 * GST_MSECOND)

struct _GstMmFuse
{
  GstAggregator parent;

  /* properties, object lock */
  gchar *model_path;
  gchar *drive_pad;
  guint64 interval;
  guint64 max_age;

  /* set in start(), cleared in stop(); pointers under the object lock, used
   * by the aggregator thread (fusion, inputs) without it */
  MmModel *model;
  MmFusion *fusion;
  guint n_inputs;
  guint fused_dim;
  const gfloat **inputs; /* n_inputs: scratch for mm_fusion_run */

  /* aggregator thread only */
  gchar *warned_drive_pad;   /* drive-pad name last warned about */
  gchar *warned_latency;     /* object lock: the branch buffering last warned
                              * about (pad, max, latency) */
  GstClockTime last_out_t;   /* running time of the last output, or NONE */
  GstClockTime last_out_end; /* running time where it ended, or NONE */

  /* object lock: the live latency (upstream + ours) of the last latency
   * query answered, NONE if not live or none yet */
  GstClockTime live_latency;
  /* object lock: the base class's "latency" as mmfuse set it for a
   * non-live pipeline's lookahead (see update_lookahead), 0 = not set */
  GstClockTime auto_latency;
  gboolean setting_latency; /* mmfuse itself is setting "latency" */
  gboolean app_latency;     /* the application set "latency" (even to 0) */
};

#define gst_mm_fuse_parent_class parent_class
static void gst_mm_fuse_child_proxy_init (gpointer g_iface, gpointer iface_data);
G_DEFINE_TYPE_WITH_CODE (GstMmFuse, gst_mm_fuse, GST_TYPE_AGGREGATOR,
    G_IMPLEMENT_INTERFACE (GST_TYPE_CHILD_PROXY, gst_mm_fuse_child_proxy_init));
GST_ELEMENT_REGISTER_DEFINE (mmfuse, "mmfuse", GST_RANK_NONE, GST_TYPE_MM_FUSE);

static void
gst_mm_fuse_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void
gst_mm_fuse_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static void gst_mm_fuse_finalize (GObject *object);
static void gst_mm_fuse_latency_notify (GObject *object, GParamSpec *pspec, gpointer user_data);
static gboolean gst_mm_fuse_start (GstAggregator *agg);
static gboolean gst_mm_fuse_stop (GstAggregator *agg);
static GstFlowReturn gst_mm_fuse_flush (GstAggregator *agg);
static GstFlowReturn gst_mm_fuse_aggregate (GstAggregator *agg, gboolean timeout);
static GstClockTime gst_mm_fuse_get_next_time (GstAggregator *agg);
static gboolean
gst_mm_fuse_sink_event (GstAggregator *agg, GstAggregatorPad *apad, GstEvent *event);
static gboolean gst_mm_fuse_src_event (GstAggregator *agg, GstEvent *event);
static gboolean gst_mm_fuse_src_query (GstAggregator *agg, GstQuery *query);
static gboolean
gst_mm_fuse_sink_query (GstAggregator *agg, GstAggregatorPad *apad, GstQuery *query);
static GstFlowReturn
gst_mm_fuse_update_src_caps (GstAggregator *agg, GstCaps *downstream, GstCaps **ret);
static GstPad *gst_mm_fuse_request_new_pad (
    GstElement *element, GstPadTemplate *templ, const gchar *name, const GstCaps *caps);
static void gst_mm_fuse_release_pad (GstElement *element, GstPad *pad);

static void
gst_mm_fuse_class_init (GstMmFuseClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstAggregatorClass *agg_class = GST_AGGREGATOR_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_mm_fuse_debug, "mmfuse", 0, "multimodal embedding fusion");

  gobject_class->set_property = gst_mm_fuse_set_property;
  gobject_class->get_property = gst_mm_fuse_get_property;
  gobject_class->finalize = gst_mm_fuse_finalize;

  gst_mm_install_model_property (gobject_class, PROP_MODEL);
  g_object_class_install_property (gobject_class, PROP_DRIVE_PAD,
      g_param_spec_string ("drive-pad", "Drive pad",
          "Name of the sink pad whose buffers drive the output cadence "
          "(NULL, or a name matching no pad: interval if set, else the first "
          "image pad, else 500 ms)",
          DEFAULT_DRIVE_PAD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint64 ("interval", "Interval",
          "Fixed output period in ns of running time when no drive pad is "
          "set (0: the first image pad drives, else 500 ms)",
          0, G_MAXUINT64, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_AGE,
      g_param_spec_uint64 ("max-age", "Maximum age",
          "How long (ns) after its end an embedding may still be paired "
          "when no newer one covers the output time",
          0, G_MAXUINT64, DEFAULT_MAX_AGE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template_with_gtype (
      element_class, &sink_template, GST_TYPE_MM_FUSE_PAD);
  gst_element_class_add_static_pad_template_with_gtype (
      element_class, &src_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_set_static_metadata (element_class, "Multimodal embedding fusion",
      "Filter/Combiner/Analyzer",
      "Pairs video, audio, text and other embedding streams by timestamp "
      "(sparse text streams never stall the others; missing modalities "
      "become a presence mask) and fuses them with a libmm model",
      "mm-gst developers");
  /* shown by gst-inspect-1.0 */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 -m filesrc location=cues.srt ! subparse ! textenc "
      "model=tests/fixtures/tiny.safetensors ! f.sink_0 videotestsrc num-buffers=60 ! videoconvert "
      "! imageenc model=tests/fixtures/tiny.safetensors ! f.sink_1 mmfuse name=f "
      "model=tests/fixtures/tiny.safetensors ! mmdecode model=tests/fixtures/tiny.safetensors ! "
      "fakesink");

  element_class->request_new_pad = GST_DEBUG_FUNCPTR (gst_mm_fuse_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_mm_fuse_release_pad);

  agg_class->start = GST_DEBUG_FUNCPTR (gst_mm_fuse_start);
  agg_class->stop = GST_DEBUG_FUNCPTR (gst_mm_fuse_stop);
  agg_class->flush = GST_DEBUG_FUNCPTR (gst_mm_fuse_flush);
  agg_class->aggregate = GST_DEBUG_FUNCPTR (gst_mm_fuse_aggregate);
  agg_class->get_next_time = GST_DEBUG_FUNCPTR (gst_mm_fuse_get_next_time);
  agg_class->sink_event = GST_DEBUG_FUNCPTR (gst_mm_fuse_sink_event);
  agg_class->sink_query = GST_DEBUG_FUNCPTR (gst_mm_fuse_sink_query);
  agg_class->src_event = GST_DEBUG_FUNCPTR (gst_mm_fuse_src_event);
  agg_class->src_query = GST_DEBUG_FUNCPTR (gst_mm_fuse_src_query);
  agg_class->update_src_caps = GST_DEBUG_FUNCPTR (gst_mm_fuse_update_src_caps);

  gst_type_mark_as_plugin_api (GST_TYPE_MM_FUSE_PAD, 0);
}

/* GstChildProxy: the sink pads are the children, so that pad properties
 * can be set by name, e.g. `mmfuse name=f f::sink_2::max-age=0` or
 * `mmfuse sink_2::max-age=0` in gst-launch-1.0 (as for compositor and
 * audiomixer). */
static GObject *
gst_mm_fuse_child_proxy_get_child_by_index (GstChildProxy *proxy, guint index)
{
  GstElement *element = GST_ELEMENT_CAST (proxy);
  GObject *obj;

  GST_OBJECT_LOCK (element);
  obj = g_list_nth_data (element->sinkpads, index);
  if (obj)
    gst_object_ref (obj);
  GST_OBJECT_UNLOCK (element);
  return obj;
}

static guint
gst_mm_fuse_child_proxy_get_children_count (GstChildProxy *proxy)
{
  GstElement *element = GST_ELEMENT_CAST (proxy);
  guint count;

  GST_OBJECT_LOCK (element);
  count = element->numsinkpads;
  GST_OBJECT_UNLOCK (element);
  return count;
}

static void
gst_mm_fuse_child_proxy_init (gpointer g_iface, gpointer iface_data)
{
  GstChildProxyInterface *iface = g_iface;

  iface->get_child_by_index = gst_mm_fuse_child_proxy_get_child_by_index;
  iface->get_children_count = gst_mm_fuse_child_proxy_get_children_count;
}

/* The latency answer of one sink pad's upstream, seen after the peer
 * answered.  GstAggregator folds the answers of its pads (the largest
 * minimum, the smallest maximum) and, when a minimum exceeds a maximum,
 * fails the query, after which it has no latency and never times out:
 * a live caption source behind a default queue (it can hold 1 s) next to
 * audioenc (a 2 s window) stopped every output.  mmfuse's deadlines are
 * what settles a silent pad, so it never lets one branch's buffering
 * disable them: the maximum is remembered per pad (upstream_max) and
 * answered as unbounded to the base class; gst_mm_fuse_src_query() then
 * compares the real maximum with the latency and warns when a branch
 * cannot hold data that long. */
static GstPadProbeReturn
latency_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);
  GstMmFusePad *fpad = GST_MM_FUSE_PAD (pad);
  GstClockTime min, max;
  gboolean live;

  if (query == NULL || GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_PAD_PROBE_OK;
  gst_query_parse_latency (query, &live, &min, &max);
  GST_OBJECT_LOCK (fpad);
  fpad->upstream_max = live ? max : GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (fpad);
  if (GST_CLOCK_TIME_IS_VALID (max) && gst_query_is_writable (query))
    gst_query_set_latency (query, live, min, GST_CLOCK_TIME_NONE);
  return GST_PAD_PROBE_OK;
}

static gboolean
is_gap_buffer (GstBuffer *buf)
{
  return GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_GAP) && gst_buffer_get_size (buf) == 0;
}

static gboolean
note_queued (GstBuffer **buf, guint idx, gpointer user_data)
{
  GstMmFusePad *pad = user_data;
  GstClockTime pts = GST_BUFFER_PTS (*buf);

  if (!is_gap_buffer (*buf))
    gst_queue_array_push_tail_struct (pad->queued_pts, &pts);
  return TRUE;
}

/* Streaming thread, before the base class queues a buffer: notes its PTS
 * in queued_pts (see newer_cue_queued()); a flush empties the list. */
static GstPadProbeReturn
queued_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstMmFusePad *fpad = GST_MM_FUSE_PAD (pad);

  GST_OBJECT_LOCK (fpad);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

    note_queued (&buf, 0, fpad);
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    gst_buffer_list_foreach (GST_PAD_PROBE_INFO_BUFFER_LIST (info), note_queued, fpad);
  } else if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_FLUSH_STOP) {
    gst_queue_array_clear (fpad->queued_pts);
  }
  GST_OBJECT_UNLOCK (fpad);
  return GST_PAD_PROBE_OK;
}

static GstPad *
gst_mm_fuse_request_new_pad (
    GstElement *element, GstPadTemplate *templ, const gchar *name, const GstCaps *caps)
{
  GstPad *pad;

  pad = GST_ELEMENT_CLASS (parent_class)->request_new_pad (element, templ, name, caps);
  if (pad) {
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM | GST_PAD_PROBE_TYPE_PULL,
        latency_probe, NULL, NULL);
    gst_pad_add_probe (pad,
        GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST | GST_PAD_PROBE_TYPE_EVENT_FLUSH,
        queued_probe, NULL, NULL);
    gst_child_proxy_child_added (GST_CHILD_PROXY (element), G_OBJECT (pad), GST_OBJECT_NAME (pad));
  }
  return pad;
}

static void
gst_mm_fuse_release_pad (GstElement *element, GstPad *pad)
{
  gchar *name = gst_pad_get_name (pad);

  gst_object_ref (pad);
  GST_ELEMENT_CLASS (parent_class)->release_pad (element, pad);
  gst_child_proxy_child_removed (GST_CHILD_PROXY (element), G_OBJECT (pad), name);
  gst_object_unref (pad);
  g_free (name);
}

static void
gst_mm_fuse_init (GstMmFuse *self)
{
  self->drive_pad = g_strdup (DEFAULT_DRIVE_PAD);
  self->interval = DEFAULT_INTERVAL;
  self->max_age = DEFAULT_MAX_AGE;
  self->last_out_t = GST_CLOCK_TIME_NONE;
  self->last_out_end = GST_CLOCK_TIME_NONE;
  self->live_latency = GST_CLOCK_TIME_NONE;
  /* A pad that never delivered anything must not hold back a live stream. */
  gst_aggregator_set_ignore_inactive_pads (GST_AGGREGATOR (self), TRUE);
  g_signal_connect (self, "notify::latency", G_CALLBACK (gst_mm_fuse_latency_notify), NULL);
}

static void
gst_mm_fuse_finalize (GObject *object)
{
  GstMmFuse *self = GST_MM_FUSE (object);

  g_free (self->model_path);
  g_free (self->drive_pad);
  g_free (self->warned_drive_pad);
  g_free (self->warned_latency);
  /* stop() normally released these */
  g_clear_pointer (&self->fusion, mm_fusion_free);
  g_clear_pointer (&self->model, mm_model_unref);
  g_clear_pointer (&self->inputs, g_free);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_mm_fuse_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMmFuse *self = GST_MM_FUSE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_DRIVE_PAD:
      g_free (self->drive_pad);
      self->drive_pad = g_value_dup_string (value);
      if (self->drive_pad && !*self->drive_pad)
        g_clear_pointer (&self->drive_pad, g_free);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint64 (value);
      break;
    case PROP_MAX_AGE:
      self->max_age = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mm_fuse_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMmFuse *self = GST_MM_FUSE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_DRIVE_PAD:
      g_value_set_string (value, self->drive_pad);
      break;
    case PROP_INTERVAL:
      g_value_set_uint64 (value, self->interval);
      break;
    case PROP_MAX_AGE:
      g_value_set_uint64 (value, self->max_age);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---------------------------------------------------------------------- */
/* Start / stop / flush                                                    */

static gboolean
gst_mm_fuse_start (GstAggregator *agg)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  MmContextParams params = mm_context_default_params ();
  GError *err = NULL;
  MmModel *model;
  MmFusion *fusion;
  guint n_inputs;

  model = gst_mm_element_open_model_property (
      GST_ELEMENT (self), &self->model_path, MM_COMPONENT_FUSION);
  if (model == NULL)
    return FALSE;

  n_inputs = mm_model_get_fusion_n_inputs (model);
  if (n_inputs > MM_MAX_INPUTS) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("%s: the fusion has %u inputs, mmfuse supports at most %u", mm_model_get_path (model),
            n_inputs, MM_MAX_INPUTS),
        (NULL));
    mm_model_unref (model);
    return FALSE;
  }

  fusion = mm_fusion_new (model, &params, &err);
  if (fusion == NULL) {
    gst_mm_element_post_context_error (GST_ELEMENT (self), "fusion", err);
    g_clear_error (&err);
    mm_model_unref (model);
    return FALSE;
  }

  GST_OBJECT_LOCK (self);
  self->model = model;
  self->fusion = fusion;
  self->n_inputs = n_inputs;
  self->fused_dim = mm_model_get_dim (model, MM_COMPONENT_FUSION);
  self->inputs = g_new0 (const gfloat *, MAX (n_inputs, 1));
  self->last_out_t = GST_CLOCK_TIME_NONE;
  self->last_out_end = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);

  GST_INFO_OBJECT (self, "model %s: %u fusion inputs, fused dim %u", mm_model_get_name (model),
      n_inputs, self->fused_dim);
  return TRUE;
}

static void
gst_mm_fuse_forget_pad_mapping (GstMmFusePad *pad)
{
  GST_OBJECT_LOCK (pad);
  pad->input = -1;
  pad->refused = FALSE;
  /* (the base class emptied the queues: a next run starts afresh) */
  gst_queue_array_clear (pad->queued_pts);
  GST_OBJECT_UNLOCK (pad);
  gst_mm_fuse_pad_reset_stream (pad);
}

static gboolean
gst_mm_fuse_stop (GstAggregator *agg)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  MmModel *model;
  MmFusion *fusion;
  const gfloat **inputs;
  GList *l;

  GST_OBJECT_LOCK (self);
  model = g_steal_pointer (&self->model);
  fusion = g_steal_pointer (&self->fusion);
  inputs = g_steal_pointer (&self->inputs);
  self->n_inputs = 0;
  /* the srcpad task is stopped: no aggregator thread to race with */
  for (l = GST_ELEMENT (self)->sinkpads; l; l = l->next)
    gst_mm_fuse_forget_pad_mapping (GST_MM_FUSE_PAD (l->data));
  GST_OBJECT_UNLOCK (self);

  g_clear_pointer (&fusion, mm_fusion_free);
  g_clear_pointer (&model, mm_model_unref);
  g_free (inputs);

  /* a lookahead mmfuse set for this run must not carry over (the next run
   * may be live); the application's own setting stays */
  {
    GstClockTime current = 0, mine;

    g_object_get (self, "latency", &current, NULL);
    GST_OBJECT_LOCK (self);
    mine = self->auto_latency;
    self->auto_latency = 0;
    if (mine != 0 && current == mine && !self->app_latency)
      self->setting_latency = TRUE;
    else
      mine = 0;
    GST_OBJECT_UNLOCK (self);
    if (mine != 0) {
      g_object_set (self, "latency", (GstClockTime)0, NULL);
      GST_OBJECT_LOCK (self);
      self->setting_latency = FALSE;
      GST_OBJECT_UNLOCK (self);
    }
  }
  g_clear_pointer (&self->warned_drive_pad, g_free);
  return TRUE;
}

/* Forgets the last output: the next one may have any time (a new segment
 * after a flush).  Aggregator thread. */
static void
reset_output_clock (GstMmFuse *self)
{
  GST_OBJECT_LOCK (self);
  GST_AGGREGATOR_PAD (GST_AGGREGATOR (self)->srcpad)->segment.position = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  self->last_out_t = GST_CLOCK_TIME_NONE;
  self->last_out_end = GST_CLOCK_TIME_NONE;
}

static GstFlowReturn
gst_mm_fuse_flush (GstAggregator *agg)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  GList *l;

  GST_OBJECT_LOCK (self);
  for (l = GST_ELEMENT (self)->sinkpads; l; l = l->next)
    g_atomic_int_set (&GST_MM_FUSE_PAD (l->data)->pending_reset, 1);
  GST_OBJECT_UNLOCK (self);
  /* -1: the next interval output starts at the (new) segment start */
  reset_output_clock (self);
  return GST_FLOW_OK;
}

/* ---------------------------------------------------------------------- */
/* Caps                                                                    */

/* Index of the first fusion input of @modality fed by no pad but @pad (the
 * one @pad already feeds wins), or -1.  Aggregator thread. */
static gint
gst_mm_fuse_find_free_input (GstMmFuse *self, GstMmFusePad *pad, const gchar *modality)
{
  guint32 used = 0;
  GList *l;
  guint i;

  GST_OBJECT_LOCK (self);
  for (l = GST_ELEMENT (self)->sinkpads; l; l = l->next) {
    GstMmFusePad *other = l->data;
    if (other != pad && other->input >= 0)
      used |= 1u << other->input;
  }
  GST_OBJECT_UNLOCK (self);

  if (pad->input >= 0 && (guint)pad->input < self->n_inputs && !(used & (1u << pad->input))
      && g_strcmp0 (mm_model_get_fusion_input_modality (self->model, pad->input), modality) == 0)
    return pad->input;

  for (i = 0; i < self->n_inputs; i++) {
    if (!(used & (1u << i))
        && g_strcmp0 (mm_model_get_fusion_input_modality (self->model, i), modality) == 0)
      return i;
  }
  return -1;
}

/* "image (dim 8), audio (dim 8), text (dim 8)" */
static gchar *
gst_mm_fuse_describe_inputs (GstMmFuse *self)
{
  GString *s = g_string_new (NULL);
  guint i;

  for (i = 0; i < self->n_inputs; i++)
    g_string_append_printf (s, "%s%s (dim %u)", i ? ", " : "",
        mm_model_get_fusion_input_modality (self->model, i),
        mm_model_get_fusion_input_dim (self->model, i));
  return g_string_free (s, FALSE);
}

static void
gst_mm_fuse_pad_refuse (GstMmFusePad *pad)
{
  GST_OBJECT_LOCK (pad);
  pad->input = -1;
  pad->refused = TRUE;
  GST_OBJECT_UNLOCK (pad);
}

/* Maps @pad to a fusion input from @caps.  Aggregator thread (serialized
 * CAPS event).  On mismatch posts a CORE/NEGOTIATION error. */
static gboolean
gst_mm_fuse_pad_set_caps (GstMmFuse *self, GstMmFusePad *pad, GstCaps *caps)
{
  const GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *name = GST_PAD_NAME (pad);
  gchar *modality;
  gint dim = 0;
  gint input;
  guint expected;

  GST_OBJECT_LOCK (pad);
  modality = g_strdup (
      pad->modality_override ? pad->modality_override : gst_structure_get_string (s, "modality"));
  GST_OBJECT_UNLOCK (pad);

  if (self->model == NULL) {
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION, ("Pad %s: caps before the model was loaded", name), (NULL));
    goto refuse;
  }

  if (modality == NULL) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Pad %s: caps %" GST_PTR_FORMAT " have no modality and the pad's "
         "'modality' property is not set",
            name, caps),
        (NULL));
    goto refuse;
  }
  if (!gst_structure_get_int (s, "dim", &dim) || dim <= 0) {
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION, ("Pad %s: %s caps without a valid dim", name, modality), (NULL));
    goto refuse;
  }

  input = gst_mm_fuse_find_free_input (self, pad, modality);
  if (input < 0) {
    gchar *inputs = gst_mm_fuse_describe_inputs (self);

    if (mm_model_find_fusion_input (self->model, modality) < 0)
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Pad %s: modality '%s' is not an input of model '%s' (its fusion "
           "inputs: %s)",
              name, modality, mm_model_get_name (self->model), inputs),
          (NULL));
    else
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Pad %s: every '%s' input of model '%s' is already fed by another "
           "pad (its fusion inputs: %s)",
              name, modality, mm_model_get_name (self->model), inputs),
          (NULL));
    g_free (inputs);
    goto refuse;
  }

  expected = mm_model_get_fusion_input_dim (self->model, input);
  if ((guint)dim != expected) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Pad %s: %s embeddings have dimension %d, but model '%s' expects "
         "dimension %u for its %s input",
            name, modality, dim, mm_model_get_name (self->model), expected, modality),
        ("caps %" GST_PTR_FORMAT, caps));
    goto refuse;
  }

  {
    gchar *what = g_strdup_printf ("Pad %s", name);

    gst_mm_element_check_caps_model (GST_ELEMENT (self), what, caps, self->model);
    g_free (what);
  }

  if (pad->dim != (guint)dim || pad->last == NULL) {
    g_free (pad->last);
    pad->last = g_new0 (gfloat, dim);
    gst_mm_fuse_pad_reset_stream (pad);
  }

  /* the nominal duration of one embedding (an audio window, a frame
   * interval), for buffers that lost theirs in a transport; 0 = none */
  {
    guint64 duration = 0;
    gint64 signed_duration = 0;

    if (!gst_structure_get_uint64 (s, "duration", &duration)) {
      if (gst_structure_get_int64 (s, "duration", &signed_duration) && signed_duration > 0)
        duration = signed_duration;
      else
        duration = 0;
    }
    if (duration == 0 || duration > G_MAXINT64)
      duration = GST_CLOCK_TIME_NONE;
    pad->caps_duration = duration;
  }

  GST_OBJECT_LOCK (pad);
  g_free (pad->modality);
  pad->modality = modality;
  pad->dim = dim;
  pad->input = input;
  pad->sparse = g_str_equal (modality, "text");
  pad->refused = FALSE;
  GST_OBJECT_UNLOCK (pad);

  GST_INFO_OBJECT (pad,
      "feeds fusion input %d (%s, dim %d, nominal duration %" GST_TIME_FORMAT ")%s", input,
      modality, dim, GST_TIME_ARGS (pad->caps_duration), pad->sparse ? ", sparse" : "");
  return TRUE;

refuse:
  g_free (modality);
  gst_mm_fuse_pad_refuse (pad);
  return FALSE;
}

/* What the model accepts on @pad: one structure per fusion input (any
 * modality when the pad's 'modality' property overrides the caps). */
static GstCaps *
gst_mm_fuse_pad_model_caps (GstMmFuse *self, GstMmFusePad *pad)
{
  GstCaps *caps = NULL;
  MmModel *model;
  gchar *override;
  guint i, n;

  GST_OBJECT_LOCK (self);
  model = self->model ? mm_model_ref (self->model) : NULL;
  GST_OBJECT_UNLOCK (self);
  if (model == NULL)
    return NULL;

  GST_OBJECT_LOCK (pad);
  override = g_strdup (pad->modality_override);
  GST_OBJECT_UNLOCK (pad);

  caps = gst_caps_new_empty ();
  n = mm_model_get_fusion_n_inputs (model);
  for (i = 0; i < n; i++) {
    const gchar *modality = mm_model_get_fusion_input_modality (model, i);
    GstStructure *s;

    if (override && !g_str_equal (override, modality))
      continue;
    s = gst_structure_new (MM_EMBEDDING_CAPS_NAME, "dim", G_TYPE_INT,
        (gint)mm_model_get_fusion_input_dim (model, i), NULL);
    if (!override)
      gst_structure_set (s, "modality", G_TYPE_STRING, modality, NULL);
    caps = gst_caps_merge_structure (caps, s);
  }
  g_free (override);
  mm_model_unref (model);
  return caps;
}

static gboolean
gst_mm_fuse_sink_query (GstAggregator *agg, GstAggregatorPad *apad, GstQuery *query)
{
  GstMmFuse *self = GST_MM_FUSE (agg);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    GstCaps *caps;

    caps = gst_mm_fuse_pad_model_caps (self, GST_MM_FUSE_PAD (apad));
    if (caps == NULL)
      caps = gst_pad_get_pad_template_caps (GST_PAD (apad));
    return gst_mm_caps_query_reply (query, caps);
  }

  return GST_AGGREGATOR_CLASS (parent_class)->sink_query (agg, apad, query);
}

/* Outside live pipelines GstAggregator lets a sink pad queue one buffer
 * unless its "latency" is set.  When one demuxer thread feeds every branch
 * (DESIGN.md's launch line with default queues), mmfuse waits at t = 0 for
 * the audio encoder's first window, which needs two seconds of audio; the
 * image branch blocks at mmfuse meanwhile, its 1 s queue fills, the
 * demuxer blocks on it and the audio never comes: a stall.  Each branch
 * answers its lookahead in the latency query even when not live (audioenc:
 * its window), so mmfuse lets every pad queue 1.5 times the largest
 * lookahead (at most 30 s) by setting the base class's "latency", which
 * outside live pipelines only sizes these queues (embeddings are small).
 * When an upstream is live, deadlines handle waiting: mmfuse sets nothing,
 * or takes back what it set before the live branch appeared.  A "latency"
 * the application set, even 0, is never touched. */
#define MAX_LOOKAHEAD (20 * GST_SECOND)

static void
gst_mm_fuse_update_lookahead (GstMmFuse *self)
{
  GstClockTime need = 0, current = 0;
  gboolean live = FALSE;
  GPtrArray *pads = g_ptr_array_new_with_free_func (gst_object_unref);
  GList *l;
  guint i;

  GST_OBJECT_LOCK (self);
  for (l = GST_ELEMENT (self)->sinkpads; l; l = l->next)
    g_ptr_array_add (pads, gst_object_ref (l->data));
  GST_OBJECT_UNLOCK (self);
  for (i = 0; i < pads->len; i++) {
    GstQuery *query = gst_query_new_latency ();

    if (gst_pad_peer_query (GST_PAD (g_ptr_array_index (pads, i)), query)) {
      gboolean pad_live;
      GstClockTime min;

      gst_query_parse_latency (query, &pad_live, &min, NULL);
      live |= pad_live;
      if (GST_CLOCK_TIME_IS_VALID (min))
        need = MAX (need, min);
    }
    gst_query_unref (query);
  }
  g_ptr_array_unref (pads);
  /* the next window's hop and the demuxer's interleaving on top; at most
   * MAX_LOOKAHEAD, whatever an upstream answers */
  need = MIN (need, MAX_LOOKAHEAD);
  need += need / 2;

  g_object_get (self, "latency", &current, NULL);
  GST_OBJECT_LOCK (self);
  if (self->app_latency || (!live && need <= current) || (live && self->auto_latency == 0)) {
    GST_OBJECT_UNLOCK (self);
    return; /* the application's setting, enough already, or live and unset */
  }
  if (live) /* a live branch linked after a non-live one: deadlines apply */
    need = 0;
  self->auto_latency = need;
  self->setting_latency = TRUE;
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self, "%s: each pad may queue %" GST_TIME_FORMAT " (inputs' lookahead)",
      live ? "live" : "not live", GST_TIME_ARGS (need));
  g_object_set (self, "latency", need, NULL);
  GST_OBJECT_LOCK (self);
  self->setting_latency = FALSE;
  GST_OBJECT_UNLOCK (self);
}

/* "latency" set by anyone but mmfuse: the application's choice, kept */
static void
gst_mm_fuse_latency_notify (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  GstMmFuse *self = GST_MM_FUSE (object);

  GST_OBJECT_LOCK (self);
  if (!self->setting_latency)
    self->app_latency = TRUE;
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_mm_fuse_sink_event (GstAggregator *agg, GstAggregatorPad *apad, GstEvent *event)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  GstMmFusePad *pad = GST_MM_FUSE_PAD (apad);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gboolean ok;

      gst_event_parse_caps (event, &caps);
      ok = gst_mm_fuse_pad_set_caps (self, pad, caps);
      gst_event_unref (event);
      if (ok)
        gst_mm_fuse_update_lookahead (self);
      /* src caps do not depend on input caps: nothing to forward */
      return ok;
    }
    case GST_EVENT_GAP:
      /* The base class turns GAP into an empty GAP-flagged buffer queued in
       * order with the pad's data, which also wakes aggregate() in non-live
       * pipelines; settle_pad() takes it from there. */
      GST_LOG_OBJECT (pad, "GAP %" GST_PTR_FORMAT, event);
      /* A GAP before any time segment has no time to settle (and the base
       * class would clip it against the undefined segment: a critical).
       * rtpgstpay forwards the encoders' preroll GAP at once but holds the
       * segment back until its first buffer. */
      if (apad->segment.format != GST_FORMAT_TIME) {
        GST_DEBUG_OBJECT (pad, "dropping a GAP before the segment");
        gst_event_unref (event);
        return TRUE;
      }
      break;
    default:
      break;
  }

  return GST_AGGREGATOR_CLASS (parent_class)->sink_event (agg, apad, event);
}

/* Reverse playback is refused: pairing assumes time flows forward (a
 * covering embedding starts at or before t, the newest one is the latest). */
static gboolean
gst_mm_fuse_src_event (GstAggregator *agg, GstEvent *event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_SEEK) {
    gdouble rate;

    gst_event_parse_seek (event, &rate, NULL, NULL, NULL, NULL, NULL, NULL);
    if (rate < 0.0) {
      GST_WARNING_OBJECT (agg,
          "refusing a seek with rate %g: mmfuse only "
          "supports forward playback",
          rate);
      gst_event_unref (event);
      return FALSE;
    }
  }
  return GST_AGGREGATOR_CLASS (parent_class)->src_event (agg, event);
}

/* After a live latency query answered @latency: warns, once per pad and
 * value, when a branch can hold data back for less time than that (its
 * upstream's maximum latency, e.g. a queue's max-size-time), and answers
 * the real maximum.  mmfuse still times out at every deadline (see
 * latency_probe()), so nothing stalls; data on that branch may wait
 * upstream, and a live source there may be held back. */
static void
gst_mm_fuse_check_branch_buffering (GstMmFuse *self, GstQuery *query, GstClockTime latency)
{
  GstClockTime max = GST_CLOCK_TIME_NONE, our = 0;
  gchar *short_pad = NULL, *warn_key = NULL;
  GList *l;

  GST_OBJECT_LOCK (self);
  for (l = GST_ELEMENT (self)->sinkpads; l; l = l->next) {
    GstMmFusePad *pad = l->data;
    GstClockTime pad_max;

    GST_OBJECT_LOCK (pad);
    pad_max = pad->upstream_max;
    GST_OBJECT_UNLOCK (pad);
    if (GST_CLOCK_TIME_IS_VALID (pad_max) && (!GST_CLOCK_TIME_IS_VALID (max) || pad_max < max)) {
      max = pad_max;
      g_free (short_pad);
      short_pad = g_strdup (GST_PAD_NAME (pad));
    }
  }
  GST_OBJECT_UNLOCK (self);
  if (!GST_CLOCK_TIME_IS_VALID (max))
    return;

  g_object_get (self, "latency", &our, NULL);
  gst_query_set_latency (query, TRUE, latency, max + our);
  if (max + our >= latency) {
    g_free (short_pad);
    return;
  }
  warn_key =
      g_strdup_printf ("%s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, short_pad, max, latency);
  GST_OBJECT_LOCK (self);
  if (g_strcmp0 (warn_key, self->warned_latency) == 0) {
    GST_OBJECT_UNLOCK (self);
    g_free (warn_key);
    g_free (short_pad);
    return;
  }
  g_free (self->warned_latency);
  self->warned_latency = warn_key;
  GST_OBJECT_UNLOCK (self);
  GST_ELEMENT_WARNING (self, CORE, CLOCK,
      ("mmfuse: the live latency is %.3f s (the slowest input's %.3f s, e.g. an encoder window, "
       "plus latency=%.3f s), but the branch into %s can hold data back for only %.3f s "
       "(its maximum latency, e.g. a queue's max-size-time). mmfuse does not stall: it "
       "decides at every deadline and counts a pad without data by then as missing, but "
       "data on that branch may wait upstream. Give that branch's queue max-size-time >= "
       "%.3f s.",
          (gdouble)latency / GST_SECOND, (gdouble)(latency - our) / GST_SECOND,
          (gdouble)our / GST_SECOND, short_pad, (gdouble)max / GST_SECOND,
          (gdouble)latency / GST_SECOND),
      ("pad %s: upstream max latency %" GST_TIME_FORMAT " < min %" GST_TIME_FORMAT, short_pad,
          GST_TIME_ARGS (max), GST_TIME_ARGS (latency)));
  g_free (short_pad);
}

/* Remembers the latency the base class answers (its deadlines are t + that
 * latency) for deadline_now(), which cannot ask the base class. */
static gboolean
gst_mm_fuse_src_query (GstAggregator *agg, GstQuery *query)
{
  gboolean ret = GST_AGGREGATOR_CLASS (parent_class)->src_query (agg, query);

  if (ret && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GstClockTime min;
    gboolean live;

    gst_query_parse_latency (query, &live, &min, NULL);
    GST_OBJECT_LOCK (agg);
    GST_MM_FUSE (agg)->live_latency = live ? min : GST_CLOCK_TIME_NONE;
    GST_OBJECT_UNLOCK (agg);
    if (live)
      gst_mm_fuse_check_branch_buffering (GST_MM_FUSE (agg), query, min);
  }
  return ret;
}

static GstFlowReturn
gst_mm_fuse_update_src_caps (GstAggregator *agg, GstCaps *downstream, GstCaps **ret)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  GstCaps *caps;

  GST_OBJECT_LOCK (self);
  if (self->model == NULL) {
    GST_OBJECT_UNLOCK (self);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  caps = gst_mm_embedding_caps_new ("fused", self->fused_dim, mm_model_get_name (self->model));
  GST_OBJECT_UNLOCK (self);

  if (!gst_caps_can_intersect (downstream, caps)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept the fused embeddings %" GST_PTR_FORMAT, caps),
        ("downstream caps %" GST_PTR_FORMAT, downstream));
    gst_caps_unref (caps);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  *ret = caps;
  return GST_FLOW_OK;
}

/* ---------------------------------------------------------------------- */
/* Pairing                                                                 */

typedef struct
{
  GPtrArray *pads; /* GstMmFusePad refs, in request order */
  gchar *drive_name;
  guint64 interval;
  guint64 max_age;
  GstSegment srcseg;
} Snapshot;

/* Pads and settings, copied under the object lock. */
static void
snapshot_take (GstMmFuse *self, Snapshot *snap)
{
  GList *l;

  snap->pads = g_ptr_array_new_with_free_func (gst_object_unref);
  GST_OBJECT_LOCK (self);
  for (l = GST_ELEMENT (self)->sinkpads; l; l = l->next)
    g_ptr_array_add (snap->pads, gst_object_ref (l->data));
  snap->drive_name = g_strdup (self->drive_pad);
  snap->interval = self->interval;
  snap->max_age = self->max_age;
  snap->srcseg = GST_AGGREGATOR_PAD (GST_AGGREGATOR (self)->srcpad)->segment;
  GST_OBJECT_UNLOCK (self);
}

static void
snapshot_clear (Snapshot *snap)
{
  g_ptr_array_unref (snap->pads);
  g_free (snap->drive_name);
}

/* The sink pad named @name, or NULL. */
static GstMmFusePad *
snapshot_find_pad (const Snapshot *snap, const gchar *name)
{
  guint i;

  for (i = 0; name && i < snap->pads->len; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap->pads, i);

    if (g_str_equal (GST_PAD_NAME (pad), name))
      return pad;
  }
  return NULL;
}

/* gst_aggregator_pad_is_inactive() asserts that the pad has a parent; a pad
 * in a snapshot may have been released meanwhile (it then is inactive). */
static gboolean
pad_is_inactive (GstMmFusePad *pad)
{
  GstObject *parent = gst_object_get_parent (GST_OBJECT (pad));
  gboolean inactive;

  if (parent == NULL)
    return TRUE;
  inactive = gst_aggregator_pad_is_inactive (GST_AGGREGATOR_PAD (pad));
  gst_object_unref (parent);
  return inactive;
}

/* The pad whose buffers set the cadence, or NULL for a fixed interval: the
 * drive-pad if it names a pad, else (no drive-pad, or a name that matches
 * no pad) the first image pad unless an interval is set. */
static GstMmFusePad *
choose_drive (const Snapshot *snap)
{
  GstMmFusePad *drive = snapshot_find_pad (snap, snap->drive_name);
  guint i;

  for (i = 0; i < snap->pads->len && !drive && snap->interval == 0; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap->pads, i);

    if (pad->modality && g_str_equal (pad->modality, "image"))
      drive = pad;
  }
  /* live, and nothing by the first deadline: do not wait for it forever */
  if (drive && pad_is_inactive (drive))
    drive = NULL;
  return drive;
}

static guint64
snapshot_interval (const Snapshot *snap)
{
  return snap->interval ? snap->interval : FALLBACK_INTERVAL;
}

/* Output position (src segment) and running time of the next interval:
 * the src segment's position, but never before @not_before (running time
 * where the last output ended, NONE before the first output): the base
 * class moves the position back to the segment start when the first
 * buffer arrives after a live output made on timeout (its start time
 * selection: MIN (0, position)), and outputs must never repeat a time or
 * go back in time. */
static void
interval_start (const Snapshot *snap, GstClockTime not_before, GstClockTime *pos, GstClockTime *run)
{
  const GstSegment *seg = &snap->srcseg;
  GstClockTime later;

  if (GST_CLOCK_TIME_IS_VALID (seg->position) && seg->position >= seg->start)
    *pos = seg->position;
  else
    *pos = seg->start;
  *run = gst_segment_to_running_time (seg, GST_FORMAT_TIME, *pos);
  if (!GST_CLOCK_TIME_IS_VALID (not_before)
      || (GST_CLOCK_TIME_IS_VALID (*run) && *run >= not_before))
    return;
  later = gst_segment_position_from_running_time (seg, GST_FORMAT_TIME, not_before);
  if (GST_CLOCK_TIME_IS_VALID (later)) {
    *pos = later;
    *run = not_before;
  }
}

/* Applies a flush of @pad; TRUE if there was one. */
static gboolean
apply_pending_reset (GstMmFusePad *pad)
{
  if (!g_atomic_int_compare_and_exchange (&pad->pending_reset, 1, 0))
    return FALSE;
  gst_mm_fuse_pad_reset_stream (pad);
  return TRUE;
}

/* Running time where the part of @buf inside @pad's segment starts, NONE
 * when it has no PTS or lies outside; with @end, where it ends (NONE
 * without a duration).  A buffer that began before the segment starts at
 * the segment's start: after an accurate seek into a subtitle cue, the cue
 * still covers the first outputs (dropping it left mmfuse waiting for the
 * next cue while the demuxer waited for the full video queue). */
/* The duration of the embedding in @buf: the buffer's, else the nominal one
 * of the pad's caps, else NONE (the pad's next PTS will tell). */
static GstClockTime
buffer_duration (GstMmFusePad *pad, GstBuffer *buf)
{
  if (GST_BUFFER_DURATION_IS_VALID (buf))
    return GST_BUFFER_DURATION (buf);
  if (is_gap_buffer (buf) || pad->sparse)
    return GST_CLOCK_TIME_NONE; /* a cue's caps duration is only a bound */
  return pad->caps_duration;
}

static GstClockTime
buffer_running_span (GstMmFusePad *pad, GstBuffer *buf, GstClockTime *end)
{
  GstSegment *seg = &GST_AGGREGATOR_PAD (pad)->segment;
  GstClockTime pts = GST_BUFFER_PTS (buf), stop = GST_CLOCK_TIME_NONE;
  GstClockTime duration = buffer_duration (pad, buf);
  guint64 cstart, cstop;

  if (end)
    *end = GST_CLOCK_TIME_NONE;
  /* (a GAP can come before the segment: rtpgstpay delays the segment) */
  if (!GST_BUFFER_PTS_IS_VALID (buf) || seg->format != GST_FORMAT_TIME)
    return GST_CLOCK_TIME_NONE;
  if (GST_CLOCK_TIME_IS_VALID (duration))
    stop = pts + duration;
  if (!gst_segment_clip (seg, GST_FORMAT_TIME, pts, stop, &cstart, &cstop))
    return GST_CLOCK_TIME_NONE;
  if (end && GST_CLOCK_TIME_IS_VALID (stop))
    *end = gst_segment_to_running_time (seg, GST_FORMAT_TIME, cstop);
  return gst_segment_to_running_time (seg, GST_FORMAT_TIME, cstart);
}

static GstClockTime
buffer_running_start (GstMmFusePad *pad, GstBuffer *buf)
{
  return buffer_running_span (pad, buf, NULL);
}

/* Copies the embedding of @buf (starting at running time @start). */
static gboolean
take_embedding (GstMmFuse *self, GstMmFusePad *pad, GstBuffer *buf, GstClockTime start)
{
  GstClockTime end, duration;
  gsize size = gst_buffer_get_size (buf);

  if (size != pad->dim * sizeof (gfloat)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Pad %s: embedding buffer of %" G_GSIZE_FORMAT " bytes, expected "
         "%u floats (%s, dim %u)",
            GST_PAD_NAME (pad), size, pad->dim, pad->modality, pad->dim),
        (NULL));
    return FALSE;
  }
  gst_buffer_extract (buf, 0, pad->last, size);
  pad->has_last = TRUE;
  pad->last_start = start;
  buffer_running_span (pad, buf, &end);
  duration = buffer_duration (pad, buf);
  /* (an end the segment cannot map: as long as its duration) */
  if (!GST_CLOCK_TIME_IS_VALID (end) && GST_CLOCK_TIME_IS_VALID (duration))
    end = start + duration;
  pad->last_end = end;
  /* no duration anywhere: the next buffer or GAP on the pad ends it */
  pad->last_open = !GST_CLOCK_TIME_IS_VALID (duration);
  pad->gap_from = GST_CLOCK_TIME_NONE;
  return TRUE;
}

/* A GAP [@start, @end) on @pad: upstream says there is no data there, so
 * the last embedding must not be extended into it by max-age.  From the
 * later of the gap's start and the embedding's end on, the pad contributes
 * nothing until its next buffer. */
static void
note_gap (GstMmFusePad *pad, GstClockTime start, GstClockTime end)
{
  GstClockTime data_end;

  if (!pad->has_last || GST_CLOCK_TIME_IS_VALID (pad->gap_from))
    return;
  data_end = GST_CLOCK_TIME_IS_VALID (pad->last_end) ? pad->last_end : pad->last_start;
  if (end > data_end || start >= data_end)
    pad->gap_from = MAX (start, data_end);
}

/* Drops the head of @pad's queue, @head (peeked), and forgets its PTS. */
static void
pad_drop_head (GstMmFusePad *pad, GstBuffer *head)
{
  if (gst_aggregator_pad_drop_buffer (GST_AGGREGATOR_PAD (pad)) && !is_gap_buffer (head)) {
    GST_OBJECT_LOCK (pad);
    if (gst_queue_array_get_length (pad->queued_pts) > 0)
      gst_queue_array_pop_head_struct (pad->queued_pts);
    GST_OBJECT_UNLOCK (pad);
  }
}

/* Whether a cue newer than the head of @pad's queue, starting at or before
 * running time @t, has entered the pad: it then supersedes the head from
 * its start, however long the head says it lasts (a cue whose end came
 * before its start, or an overlapping one). */
static gboolean
newer_cue_queued (GstMmFusePad *pad, GstClockTime t)
{
  const GstSegment *seg = &GST_AGGREGATOR_PAD (pad)->segment;
  gboolean newer = FALSE;
  guint i, n;

  if (seg->format != GST_FORMAT_TIME)
    return FALSE;
  GST_OBJECT_LOCK (pad);
  n = gst_queue_array_get_length (pad->queued_pts);
  for (i = 1; i < n && !newer; i++) {
    GstClockTime *pts = gst_queue_array_peek_nth_struct (pad->queued_pts, i);
    GstClockTime run = GST_CLOCK_TIME_IS_VALID (*pts)
        ? gst_segment_to_running_time (seg, GST_FORMAT_TIME, MAX (*pts, seg->start))
        : GST_CLOCK_TIME_NONE;

    newer = GST_CLOCK_TIME_IS_VALID (run) && run <= t;
  }
  GST_OBJECT_UNLOCK (pad);
  return newer;
}

/* The pad's next buffer or GAP starts at running time @start: the last
 * embedding, if its duration was unknown, ends there. */
static void
close_open_embedding (GstMmFusePad *pad, GstClockTime start)
{
  if (!pad->has_last || !pad->last_open)
    return;
  pad->last_open = FALSE;
  pad->last_end = MAX (start, pad->last_start);
  /* a cue lasts at most the caps' duration (textenc: its max-duration) */
  if (pad->sparse && GST_CLOCK_TIME_IS_VALID (pad->caps_duration))
    pad->last_end = MIN (pad->last_end, pad->last_start + pad->caps_duration);
  if (!pad->sparse && pad->last_end > pad->last_start)
    pad->spacing = pad->last_end - pad->last_start;
  GST_LOG_OBJECT (pad, "embedding at %" GST_TIME_FORMAT " ends at the next PTS, %" GST_TIME_FORMAT,
      GST_TIME_ARGS (pad->last_start), GST_TIME_ARGS (pad->last_end));
}

/* Takes the buffers of @pad starting at or before running time @t, up to
 * the first that covers @t (which stays queued), keeping a copy of the
 * last one taken, and says whether the pad is settled past @t: a later
 * buffer or a GAP covering @t is queued, the embedding taken covers @t, EOS,
 * inactive, or timeout.  Overlapping windows: the earliest one still
 * covering @t is used, as the aggregator only shows the head of a pad's
 * queue; waiting for a newer covering one would need a window more of
 * look-ahead on dense pads, more than a demuxer pipeline's queues hold. */
static GstFlowReturn
settle_pad (GstMmFuse *self, GstMmFusePad *pad, GstClockTime t, gboolean timeout, gboolean *settled)
{
  GstAggregatorPad *apad = GST_AGGREGATOR_PAD (pad);
  GstClockTime head = GST_CLOCK_TIME_NONE;
  gboolean covered = FALSE;
  GstBuffer *buf;

  /* a drive buffer held for its end while this pad drove (drive-pad
   * changed since): an embedding of unknown end like any other */
  if (pad->held) {
    GstBuffer *held = g_steal_pointer (&pad->held);
    gboolean ok =
        pad->input < 0 || take_embedding (self, pad, held, buffer_running_start (pad, held));

    gst_buffer_unref (held);
    if (!ok)
      return GST_FLOW_ERROR;
  }

  while ((buf = gst_aggregator_pad_peek_buffer (apad)) != NULL) {
    GstClockTime span_end;
    GstClockTime start = buffer_running_span (pad, buf, &span_end);

    if (GST_CLOCK_TIME_IS_VALID (start))
      close_open_embedding (pad, start);
    if (GST_CLOCK_TIME_IS_VALID (start) && start > t) {
      head = start;
      gst_buffer_unref (buf);
      break;
    }

    if (!GST_CLOCK_TIME_IS_VALID (start)) {
      GST_DEBUG_OBJECT (pad,
          "dropping buffer without PTS or outside the "
          "segment: %" GST_PTR_FORMAT,
          buf);
    } else if (is_gap_buffer (buf)) {
      GstClockTime end = GST_CLOCK_TIME_IS_VALID (span_end) ? span_end : start;

      note_gap (pad, start, end);
      /* A gap covering t stays queued until t passes its end: the pad then
       * still "has data" for the base class, which otherwise would wait
       * for this pad (or its deadline) before calling aggregate(). */
      if (end > t) {
        head = end;
        gst_buffer_unref (buf);
        break;
      }
    } else if (pad->input < 0) {
      gst_buffer_unref (buf);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Pad %s: data before accepted caps", GST_PAD_NAME (pad)),
          (pad->refused ? "caps were refused" : "no caps"));
      return GST_FLOW_NOT_NEGOTIATED;
    } else if (!take_embedding (self, pad, buf, start)) {
      gst_buffer_unref (buf);
      return GST_FLOW_ERROR;
    } else if (GST_CLOCK_TIME_IS_VALID (pad->last_end) && t < pad->last_end
        && !(pad->sparse && newer_cue_queued (pad, t))) {
      /* It covers t: keep it queued (taken again next time) until t passes
       * its end, so that the pad still has data for the base class.  A cue
       * with a newer cue behind it that starts by t is superseded: taken
       * off, the newer one comes next (or is about to be queued). */
      covered = TRUE;
      gst_buffer_unref (buf);
      break;
    }
    pad_drop_head (pad, buf);
    gst_buffer_unref (buf);
  }

  *settled = GST_CLOCK_TIME_IS_VALID (head) || timeout || gst_aggregator_pad_is_eos (apad)
      || covered || pad_is_inactive (pad)
      || (pad->has_last && pad->last_start == t && !pad->last_open);
  return GST_FLOW_OK;
}

/* Where the last embedding of @pad ends: its end, or for one without a
 * duration, its start.  One still open when the pad is settled without the
 * next PTS (EOS, a live deadline): a dense pad's is taken to last as long
 * as its previous one did, a sparse one's (a cue) as long as the caps'
 * duration (textenc: its max-duration) or else to end where it starts,
 * max-age then applying. */
static GstClockTime
pad_data_end (GstMmFusePad *pad)
{
  if (pad->last_open && !pad->sparse && GST_CLOCK_TIME_IS_VALID (pad->spacing))
    return pad->last_start + pad->spacing;
  if (pad->last_open && pad->sparse && GST_CLOCK_TIME_IS_VALID (pad->caps_duration))
    return pad->last_start + pad->caps_duration;
  return GST_CLOCK_TIME_IS_VALID (pad->last_end) ? pad->last_end : pad->last_start;
}

/* The embedding @pad contributes at running time @t, or NULL (missing). */
static const gfloat *
pad_contribution (GstMmFusePad *pad, GstClockTime t, guint64 element_max_age)
{
  GstClockTime end;
  guint64 max_age;
  gint64 pad_max_age;

  if (!pad->has_last || pad->input < 0 || pad->last_start > t)
    return NULL;
  if (pad->last_open && t == pad->last_start)
    return pad->last;
  end = pad_data_end (pad);
  if (t < end)
    return pad->last; /* covers t */
  if (gst_aggregator_pad_is_eos (GST_AGGREGATOR_PAD (pad))) {
    /* missing from EOS on; but a cue of unknown end ends at the next
     * buffer, GAP or EOS on its pad: at EOS, the end of the stream */
    return pad->last_open && pad->sparse ? pad->last : NULL;
  }
  if (GST_CLOCK_TIME_IS_VALID (pad->gap_from) && t >= pad->gap_from)
    return NULL; /* a GAP said there is nothing here */

  GST_OBJECT_LOCK (pad);
  pad_max_age = pad->max_age;
  GST_OBJECT_UNLOCK (pad);
  max_age = pad_max_age >= 0 ? (guint64)pad_max_age : element_max_age;

  if (t - end <= max_age)
    return pad->last;
  return NULL;
}

/* Interval cadence: the stream is over when every non-sparse pad (every pad
 * if all are sparse) is EOS and drained, and @t is past the end of the data
 * those pads delivered: a sparse pad (text) does not keep the stream alive,
 * even when its last cue (e.g. a transcript flushed at EOS) lasts longer. */
static gboolean
interval_stream_done (GstMmFuse *self, const Snapshot *snap, GstClockTime t)
{
  GstClockTime data_end = GST_CLOCK_TIME_NONE;
  gboolean any_dense = FALSE;
  guint i;

  if (snap->pads->len == 0)
    return FALSE;
  for (i = 0; i < snap->pads->len; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap->pads, i);
    if (!pad->sparse)
      any_dense = TRUE;
  }
  for (i = 0; i < snap->pads->len; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap->pads, i);
    GstClockTime end;

    if ((pad->sparse && any_dense))
      continue;
    if (!gst_aggregator_pad_is_eos (GST_AGGREGATOR_PAD (pad)))
      return FALSE;
    if (!pad->has_last)
      continue;
    end = pad_data_end (pad);
    if (!GST_CLOCK_TIME_IS_VALID (data_end) || end > data_end)
      data_end = end;
  }
  return !GST_CLOCK_TIME_IS_VALID (data_end) || t >= data_end;
}

/* Posts a warning, once per name, when drive-pad names no sink pad (a typo,
 * or a pad not requested yet or released): the default cadence is used
 * meanwhile.  Aggregator thread. */
static void
gst_mm_fuse_check_drive_name (GstMmFuse *self, const Snapshot *snap)
{
  GString *names;
  guint i;

  if (snap->drive_name == NULL || snapshot_find_pad (snap, snap->drive_name)) {
    g_clear_pointer (&self->warned_drive_pad, g_free);
    return;
  }
  if (g_strcmp0 (self->warned_drive_pad, snap->drive_name) == 0)
    return;
  g_free (self->warned_drive_pad);
  self->warned_drive_pad = g_strdup (snap->drive_name);

  names = g_string_new (NULL);
  for (i = 0; i < snap->pads->len; i++)
    g_string_append_printf (
        names, "%s%s", i ? ", " : "", GST_PAD_NAME (g_ptr_array_index (snap->pads, i)));
  GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
      ("drive-pad \"%s\" names no sink pad of %s (its sink pads: %s); using "
       "the default cadence (interval, else the first image pad, else "
       "500 ms) until it exists",
          snap->drive_name, GST_ELEMENT_NAME (self), names->len ? names->str : "none"),
      (NULL));
  g_string_free (names, TRUE);
}

/* The running time t whose live deadline (t + latency) is about now: the
 * current running time minus the latency of the last latency query (the
 * upstream latency plus the `latency` property; gst_aggregator_get_latency()
 * cannot be called here, the base class calls get_next_time() with its lock
 * held), or minus the `latency` property before any query; 0 without a
 * clock. */
static GstClockTime
deadline_now (GstAggregator *agg)
{
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (agg));
  GstClockTime now, base, next = 0;
  guint64 latency = 0;

  if (clock == NULL)
    return 0;
  now = gst_clock_get_time (clock);
  base = gst_element_get_base_time (GST_ELEMENT (agg));
  gst_object_unref (clock);
  GST_OBJECT_LOCK (agg);
  latency = GST_MM_FUSE (agg)->live_latency;
  GST_OBJECT_UNLOCK (agg);
  if (!GST_CLOCK_TIME_IS_VALID (latency))
    g_object_get (agg, "latency", &latency, NULL);
  if (GST_CLOCK_TIME_IS_VALID (now) && now > base && now - base > latency)
    next = now - base - latency;
  return next;
}

/* A drive buffer @buf (at running time @t, output position @out_pts) whose
 * duration neither the buffer nor the caps give (a transport dropped it):
 * it is held (taken off the pad's queue, so that the next one shows) until
 * the next buffer or GAP on the pad, whose start ends it.  At EOS, or at
 * the live deadline for @t (@timeout) without a next buffer, it lasts as
 * long as the previous one did (NONE before any).  Without either, waits
 * for data (NEED_DATA). */
static GstFlowReturn
drive_duration_from_next (GstMmFuse *self, GstMmFusePad *drive, GstBuffer *buf, GstClockTime t,
    GstClockTime out_pts, gboolean timeout, const Snapshot *snap, GstClockTime *out_dur)
{
  GstAggregatorPad *dpad = GST_AGGREGATOR_PAD (drive);
  GstBuffer *next;

  if (drive->held == NULL) {
    drive->held = gst_buffer_ref (buf);
    pad_drop_head (drive, buf);
  }
  *out_dur = GST_CLOCK_TIME_NONE;
  next = gst_aggregator_pad_peek_buffer (dpad);
  if (next) {
    GstClockTime nstart = buffer_running_start (drive, next);
    GstClockTime npos = GST_CLOCK_TIME_IS_VALID (nstart)
        ? gst_segment_position_from_running_time (&snap->srcseg, GST_FORMAT_TIME, nstart)
        : GST_CLOCK_TIME_NONE;

    gst_buffer_unref (next);
    if (GST_CLOCK_TIME_IS_VALID (npos) && npos > out_pts) {
      *out_dur = npos - out_pts;
      if (nstart > t)
        drive->spacing = nstart - t;
    }
    return GST_FLOW_OK;
  }
  if (!timeout && !gst_aggregator_pad_is_eos (dpad))
    return GST_AGGREGATOR_FLOW_NEED_DATA;
  *out_dur = drive->spacing;
  return GST_FLOW_OK;
}

static GstClockTime
gst_mm_fuse_get_next_time (GstAggregator *agg)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  GstClockTime next = GST_CLOCK_TIME_NONE, pos;
  GstMmFusePad *drive;
  Snapshot snap;

  snapshot_take (self, &snap);
  drive = choose_drive (&snap);
  if (drive) {
    GstBuffer *buf = drive->held ? gst_buffer_ref (drive->held)
                                 : gst_aggregator_pad_peek_buffer (GST_AGGREGATOR_PAD (drive));

    /* no drive buffer: wait for data, not for the clock; but once the
     * drive pad is EOS (and drained) the stream ends now, without waiting
     * for a sparse pad's next cue: a deadline of now makes the base
     * class call aggregate() (on timeout) right away */
    if (buf) {
      next = buffer_running_start (drive, buf);
      gst_buffer_unref (buf);
    } else if (gst_aggregator_pad_is_eos (GST_AGGREGATOR_PAD (drive))) {
      next = deadline_now (agg);
    }
  } else {
    interval_start (&snap, self->last_out_end, &pos, &next);
  }
  snapshot_clear (&snap);
  return next;
}

static GstFlowReturn
gst_mm_fuse_aggregate (GstAggregator *agg, gboolean timeout)
{
  GstMmFuse *self = GST_MM_FUSE (agg);
  GstFlowReturn ret = GST_FLOW_OK;
  GstMmFusePad *drive;
  GstBuffer *drive_buf = NULL, *out = NULL;
  GstMapInfo out_map;
  gboolean out_mapped = FALSE;
  GstClockTime t, out_pts, out_dur, drive_t = GST_CLOCK_TIME_NONE, drive_pts = GST_CLOCK_TIME_NONE,
                                    drive_dur = GST_CLOCK_TIME_NONE;
  gboolean all_settled = TRUE, drive_reset = FALSE;
  guint n_reset = 0;
  MmFusionMeta *meta;
  GError *err = NULL;
  Snapshot snap;
  guint i;

  snapshot_take (self, &snap);
  gst_mm_fuse_check_drive_name (self, &snap);
  drive = choose_drive (&snap);

  /* flushes: a flush of the drive pad, or of every pad, also comes from
   * upstream without a seek through mmfuse (so without flush()); its new
   * segment may start before the last output */
  for (i = 0; i < snap.pads->len; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap.pads, i);

    if (apply_pending_reset (pad)) {
      pad->flushed = TRUE;
      drive_reset |= pad == drive;
    }
    n_reset += pad->flushed;
  }
  /* every pad flushed since the last output, maybe over several calls
   * (upstream flushing each source on its own); flushes with outputs
   * between them are separate events, not one restart */
  if (drive_reset || (n_reset > 0 && n_reset == snap.pads->len)) {
    GST_DEBUG_OBJECT (self, "flushed: the next output may start anywhere");
    reset_output_clock (self);
    snap.srcseg.position = GST_CLOCK_TIME_NONE;
    for (i = 0; i < snap.pads->len; i++)
      ((GstMmFusePad *)g_ptr_array_index (snap.pads, i))->flushed = FALSE;
  }

  /* 1. the output interval [t, t + out_dur) */
  if (drive) {
    GstAggregatorPad *dpad = GST_AGGREGATOR_PAD (drive);

    for (;;) {
      drive_buf =
          drive->held ? gst_buffer_ref (drive->held) : gst_aggregator_pad_peek_buffer (dpad);
      if (drive_buf == NULL) {
        ret = gst_aggregator_pad_is_eos (dpad) ? GST_FLOW_EOS : GST_AGGREGATOR_FLOW_NEED_DATA;
        goto done;
      }
      t = buffer_running_start (drive, drive_buf);
      out_pts = GST_CLOCK_TIME_IS_VALID (t)
          ? gst_segment_position_from_running_time (&snap.srcseg, GST_FORMAT_TIME, t)
          : GST_CLOCK_TIME_NONE;
      if (!is_gap_buffer (drive_buf) && GST_CLOCK_TIME_IS_VALID (out_pts)
          && !(GST_CLOCK_TIME_IS_VALID (self->last_out_t) && t < self->last_out_t))
        break;
      /* a GAP on the drive pad: no outputs for it; and outputs never go
       * back in time (drive-pad changed to a pad with older data queued) */
      GST_DEBUG_OBJECT (drive, "skipping %" GST_PTR_FORMAT, drive_buf);
      if (drive->held)
        gst_clear_buffer (&drive->held);
      else
        pad_drop_head (drive, drive_buf);
      gst_clear_buffer (&drive_buf);
    }
    if (drive->input < 0) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Pad %s: data before accepted caps", GST_PAD_NAME (drive)),
          (drive->refused ? "caps were refused" : "no caps"));
      ret = GST_FLOW_NOT_NEGOTIATED;
      goto done;
    }
    out_dur = buffer_duration (drive, drive_buf);
    if (!GST_CLOCK_TIME_IS_VALID (out_dur)) {
      ret = drive_duration_from_next (self, drive, drive_buf, t, out_pts, timeout, &snap, &out_dur);
      if (ret != GST_FLOW_OK)
        goto done;
    }
    drive_t = t;
    drive_pts = out_pts;
    drive_dur = out_dur;
    /* a drive buffer that starts inside the last output: the interval
     * cadence decided while this pad had delivered nothing (live, its first
     * buffer after the first deadline), or drive-pad changed.  Its output
     * starts where the last one ended, so no time is decided twice; one
     * that ends there too is dropped */
    if (GST_CLOCK_TIME_IS_VALID (self->last_out_end) && t < self->last_out_end
        && GST_CLOCK_TIME_IS_VALID (out_dur)) {
      GstClockTime cut = self->last_out_end - t;

      if (out_dur <= cut) {
        GST_DEBUG_OBJECT (drive, "dropping %" GST_PTR_FORMAT ": decided already", drive_buf);
        if (drive->held)
          gst_clear_buffer (&drive->held);
        else
          pad_drop_head (drive, drive_buf);
        ret = GST_AGGREGATOR_FLOW_NEED_DATA;
        goto done;
      }
      GST_DEBUG_OBJECT (
          drive, "output starts %" GST_TIME_FORMAT " late: decided already", GST_TIME_ARGS (cut));
      t += cut;
      out_pts += cut;
      out_dur -= cut;
    }
  } else {
    interval_start (&snap, self->last_out_end, &out_pts, &t);
    out_dur = snapshot_interval (&snap);
    if (!GST_CLOCK_TIME_IS_VALID (t)
        || (GST_CLOCK_TIME_IS_VALID (self->last_out_t) && t <= self->last_out_t)) {
      /* no time after the last output in this segment */
      ret = GST_AGGREGATOR_FLOW_NEED_DATA;
      goto done;
    }
    if (interval_stream_done (self, &snap, t)
        || (GST_CLOCK_TIME_IS_VALID (snap.srcseg.stop) && out_pts >= snap.srcseg.stop)) {
      ret = GST_FLOW_EOS;
      goto done;
    }
    /* the last interval ends at the segment's stop */
    if (GST_CLOCK_TIME_IS_VALID (snap.srcseg.stop))
      out_dur = MIN (out_dur, snap.srcseg.stop - out_pts);
  }

  /* 2. take what every other pad has up to t; all must be settled past t */
  for (i = 0; i < snap.pads->len; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap.pads, i);
    gboolean settled;

    if (pad == drive)
      continue;
    ret = settle_pad (self, pad, t, timeout, &settled);
    if (ret != GST_FLOW_OK)
      goto done;
    if (!settled) {
      GST_LOG_OBJECT (pad, "not settled past %" GST_TIME_FORMAT, GST_TIME_ARGS (t));
      all_settled = FALSE;
    }
  }
  if (!all_settled) {
    ret = GST_AGGREGATOR_FLOW_NEED_DATA;
    goto done;
  }

  /* 3. pair and fuse */
  out = gst_mm_embedding_buffer_new (self->fused_dim);
  meta = gst_buffer_add_mm_fusion_meta (out, self->n_inputs);
  for (i = 0; i < self->n_inputs; i++) {
    self->inputs[i] = NULL;
    meta->modality[i] = g_quark_from_string (mm_model_get_fusion_input_modality (self->model, i));
    meta->present[i] = FALSE;
    meta->pts[i] = GST_CLOCK_TIME_NONE;
  }
  if (drive) {
    /* also kept as the pad's last embedding, should the cadence switch to
     * an interval (drive pad released, renamed or inactive) */
    if (!take_embedding (self, drive, drive_buf, drive_t)) {
      ret = GST_FLOW_ERROR;
      goto done;
    }
    if (GST_CLOCK_TIME_IS_VALID (out_dur)) {
      drive->last_open = FALSE;
      drive->last_end = drive_t + drive_dur;
    }
    self->inputs[drive->input] = drive->last;
    meta->present[drive->input] = TRUE;
    meta->pts[drive->input] = drive_pts;
    meta->duration[drive->input] = drive_dur;
  }
  for (i = 0; i < snap.pads->len; i++) {
    GstMmFusePad *pad = g_ptr_array_index (snap.pads, i);
    const gfloat *z;

    if (pad == drive || pad->input < 0)
      continue;
    z = pad_contribution (pad, t, snap.max_age);
    if (z == NULL)
      continue;
    self->inputs[pad->input] = z;
    meta->present[pad->input] = TRUE;
    meta->pts[pad->input] =
        gst_segment_position_from_running_time (&snap.srcseg, GST_FORMAT_TIME, pad->last_start);
    if (pad_data_end (pad) > pad->last_start) /* (an open one: its estimate) */
      meta->duration[pad->input] = pad_data_end (pad) - pad->last_start;
  }

  out_mapped = gst_buffer_map (out, &out_map, GST_MAP_WRITE);
  if (!mm_fusion_run (self->fusion, self->inputs, (gfloat *)out_map.data, &err)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("%s", err->message),
        ("mm_fusion_run failed at %" GST_TIME_FORMAT, GST_TIME_ARGS (t)));
    g_clear_error (&err);
    ret = GST_FLOW_ERROR;
    goto done;
  }
  gst_buffer_unmap (out, &out_map);
  out_mapped = FALSE;
  if (drive && drive->held)
    gst_clear_buffer (&drive->held); /* the queue's head is the next one */
  else if (drive)
    pad_drop_head (drive, drive_buf);

  GST_BUFFER_PTS (out) = out_pts;
  GST_BUFFER_DURATION (out) = out_dur;
  /* flushes before this output and flushes after it are not one restart */
  for (i = 0; i < snap.pads->len; i++)
    ((GstMmFusePad *)g_ptr_array_index (snap.pads, i))->flushed = FALSE;
  self->last_out_t = t;
  self->last_out_end = GST_CLOCK_TIME_IS_VALID (out_dur)
      ? gst_segment_to_running_time (&snap.srcseg, GST_FORMAT_TIME, out_pts + out_dur)
      : GST_CLOCK_TIME_NONE;
  /* (a zero duration, or an end the segment cannot map: just after t) */
  if (!GST_CLOCK_TIME_IS_VALID (self->last_out_end) || self->last_out_end <= t)
    self->last_out_end = t + 1;

  GST_OBJECT_LOCK (self);
  GST_AGGREGATOR_PAD (agg->srcpad)->segment.position =
      GST_CLOCK_TIME_IS_VALID (out_dur) ? out_pts + out_dur : out_pts;
  GST_OBJECT_UNLOCK (self);

  GST_LOG_OBJECT (self, "output %" GST_TIME_FORMAT " (+%" GST_TIME_FORMAT ")%s",
      GST_TIME_ARGS (out_pts), GST_TIME_ARGS (out_dur), timeout ? " on timeout" : "");
  gst_aggregator_selected_samples (agg, out_pts, GST_CLOCK_TIME_NONE, out_dur, NULL);
  ret = gst_aggregator_finish_buffer (agg, g_steal_pointer (&out));

done:
  if (out) {
    if (out_mapped)
      gst_buffer_unmap (out, &out_map);
    gst_buffer_unref (out);
  }
  if (drive_buf)
    gst_buffer_unref (drive_buf);
  snapshot_clear (&snap);
  return ret;
}
