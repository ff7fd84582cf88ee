/* audioenc element tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The tiny fixture model runs at 16 kHz with a 16000-sample window, an
 * 8000-sample hop and n_fft 400.  Reference embeddings come from libmm's
 * audio encoder called directly on the samples each window should hold.
 */
#include <string.h>
#include <math.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <mm.h>

#include "gstmmmeta.h"
#include "mmcheck.h"

#define DIM 8
#define RATE 16000
#define MS GST_MSECOND

static GstHarness *
harness_new (const gchar *extra, const gchar *caps)
{
  GstHarness *h = mm_harness_new ("audioenc", extra);

  if (caps)
    gst_harness_set_src_caps_str (h, caps);
  return h;
}

#define MONO_S16                                                                                   \
  "audio/x-raw, format=S16LE, rate=16000, channels=1, "                                            \
  "layout=interleaved"

/* Sample @i of the test signal (mono, or channel @c).  Phases are reduced
 * in integers so that the value does not depend on float rounding of large
 * arguments (the compiler may evaluate inlined copies differently). */
static gfloat
signal_at (guint64 i, guint c)
{
  guint64 p1 = (i * (440 + 220 * c)) % RATE;
  guint64 p2 = (i * 3000) % RATE;

  return 0.5f * (gfloat)sin (2.0 * G_PI * p1 / RATE) + 0.1f * (gfloat)sin (2.0 * G_PI * p2 / RATE);
}

/* S16LE buffer of samples [@first, @first + @n) of the signal. */
static GstBuffer *
s16_buffer (guint64 first, guint n, guint channels, GstClockTime pts)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, n * 2 * channels, NULL);
  GstMapInfo map;
  guint i, c;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (i = 0; i < n; i++)
    for (c = 0; c < channels; c++)
      GST_WRITE_UINT16_LE (map.data + 2 * (i * channels + c),
          (guint16)(gint16)lrintf (signal_at (first + i, c) * 32767.0f));
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (n, GST_SECOND, RATE);
  return buf;
}

static GstBuffer *
f32_buffer (guint64 first, guint n, guint channels, GstClockTime pts)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, n * 4 * channels, NULL);
  GstMapInfo map;
  guint i, c;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (i = 0; i < n; i++)
    for (c = 0; c < channels; c++)
      GST_WRITE_FLOAT_LE (map.data + 4 * (i * channels + c), signal_at (first + i, c));
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (n, GST_SECOND, RATE);
  return buf;
}

/* Pushes samples [@first, @first + @n) in buffers of @chunk, timestamped
 * from @pts0 (the time of sample @first). */
static void
push_s16 (GstHarness *h, guint64 first, guint n, guint chunk, GstClockTime pts0)
{
  guint done = 0;

  while (done < n) {
    guint k = MIN (chunk, n - done);
    GstClockTime pts = pts0 + gst_util_uint64_scale (done, GST_SECOND, RATE);

    fail_unless_equals_int (
        gst_harness_push (h, s16_buffer (first + done, k, 1, pts)), GST_FLOW_OK);
    done += k;
  }
}

/* ref (DIM) = libmm's embedding of samples [first, first + n) of the
 * signal, mono, quantised like @s16 (else float), @channels averaged. */
static void
reference (guint64 first, guint n, guint channels, gboolean s16, gfloat *ref)
{
  gchar *path = fixture ("tiny.safetensors");
  GError *err = NULL;
  MmModel *model = mm_model_open (path, &err);
  MmContextParams params = mm_context_default_params ();
  MmAudioEncoder *enc;
  gfloat *x = g_new (gfloat, n);
  guint i, c;

  fail_unless (model != NULL);
  params.max_audio_samples = MAX (n, 16000);
  enc = mm_audio_encoder_new (model, &params, &err);
  fail_unless (enc != NULL);
  for (i = 0; i < n; i++) {
    gfloat sum = 0.0f;
    for (c = 0; c < channels; c++) {
      gfloat v = signal_at (first + i, c);
      if (s16)
        v = (gint16)lrintf (v * 32767.0f) / 32768.0f;
      sum += v;
    }
    x[i] = sum / channels;
  }
  fail_unless (mm_audio_encoder_encode (enc, x, n, ref, &err), "%s", err ? err->message : "");
  mm_audio_encoder_free (enc);
  mm_model_unref (model);
  g_free (x);
  g_free (path);
}

#define assert_embedding(buf, ref) assert_embedding_near ((buf), (ref), DIM, 1e-5f)

/* Pulls one buffer and checks its interval. */
static GstBuffer *
pull_window (GstHarness *h, GstClockTime pts, GstClockTime duration)
{
  GstBuffer *out = gst_harness_pull (h);

  fail_unless (out != NULL);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), pts);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), duration);
  return out;
}

/* Each accepted format: one window of libmm's embedding of the downmix. */
GST_START_TEST (test_formats_and_values)
{
  static const struct
  {
    const gchar *format;
    guint channels;
  } cases[] = { { "S16LE", 1 }, { "S16LE", 2 }, { "F32LE", 1 }, { "F32LE", 2 } };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    gchar *caps = g_strdup_printf ("audio/x-raw, format=%s, rate=16000, "
                                   "channels=%u, layout=interleaved",
        cases[c].format, cases[c].channels);
    GstHarness *h = harness_new (NULL, caps);
    gboolean s16 = g_str_equal (cases[c].format, "S16LE");
    gfloat ref[DIM];
    GstBuffer *out;
    GstCaps *outcaps;
    GstStructure *s;
    gint dim;
    guint i;

    for (i = 0; i < 10; i++) {
      GstClockTime pts = i * 100 * MS;
      GstBuffer *buf = s16 ? s16_buffer (i * 1600, 1600, cases[c].channels, pts)
                           : f32_buffer (i * 1600, 1600, cases[c].channels, pts);
      fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
    }
    out = pull_window (h, 0, GST_SECOND);
    reference (0, RATE, cases[c].channels, s16, ref);
    assert_embedding (out, ref);
    gst_buffer_unref (out);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

    outcaps = gst_pad_get_current_caps (h->sinkpad);
    s = gst_caps_get_structure (outcaps, 0);
    fail_unless_equals_string (gst_structure_get_string (s, "modality"), "audio");
    fail_unless (gst_structure_get_int (s, "dim", &dim));
    fail_unless_equals_int (dim, DIM);
    gst_caps_unref (outcaps);
    gst_harness_teardown (h);
    g_free (caps);
  }
}

GST_END_TEST;

GST_START_TEST (test_caps_refused)
{
  const gchar *refused[] = {
    "audio/x-raw, format=S32LE, rate=16000, channels=1, layout=interleaved",
    "audio/x-raw, format=S16BE, rate=16000, channels=1, layout=interleaved",
    "audio/x-raw, format=S16LE, rate=16000, channels=6, layout=interleaved",
    "audio/x-raw, format=F32LE, rate=16000, channels=2, "
    "layout=non-interleaved",
  };
  GstHarness *h = harness_new (NULL, NULL);
  GstPad *sinkpad = gst_element_get_static_pad (h->element, "sink");
  GstCaps *caps;
  GstStructure *s;
  gint rate = 0;
  guint i;

  for (i = 0; i < G_N_ELEMENTS (refused); i++) {
    caps = gst_caps_from_string (refused[i]);
    fail_unless (!gst_pad_query_accept_caps (sinkpad, caps), "%s accepted", refused[i]);
    gst_caps_unref (caps);
  }

  /* once the model is loaded, the caps query names its rate */
  caps = gst_pad_query_caps (sinkpad, NULL);
  fail_unless_equals_int (gst_caps_get_size (caps), 1);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_get_int (s, "rate", &rate));
  fail_unless_equals_int (rate, RATE);
  gst_caps_unref (caps);

  gst_object_unref (sinkpad);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Caps at another rate pushed anyway fail with an error naming both
 * rates (a caps query would already have offered only the model's). */
GST_START_TEST (test_rate_mismatch_error)
{
  GstHarness *h = harness_new (NULL, NULL);
  GstBus *bus = gst_bus_new ();
  GstCaps *caps = gst_caps_from_string ("audio/x-raw, format=S16LE, "
                                        "rate=44100, channels=1, layout=interleaved");
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_bus (h->element, bus);
  /* sticky: stored even though audioenc refuses it */
  gst_harness_set_src_caps (h, caps);
  fail_unless_equals_int (gst_harness_push (h, s16_buffer (0, 100, 1, 0)), GST_FLOW_NOT_NEGOTIATED);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  GST_INFO ("%s", err->message);
  fail_unless (strstr (err->message, "44100") != NULL, "%s", err->message);
  fail_unless (strstr (err->message, "16000") != NULL, "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A source that can only produce caps audioenc refuses would fail
 * upstream with a bare not-negotiated "Internal data stream error";
 * audioenc posts, first and once, a CORE/NEGOTIATION error naming what was
 * offered, what the model needs and the element to put in front. */
static void
check_offer_error (const gchar *offer, const gchar *const *expect)
{
  gchar *path = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf (
      "audiotestsrc num-buffers=2 ! %s ! audioenc name=enc model=\"%s\" ! fakesink", offer, path);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  GError *err = NULL;
  guint i, n_from_enc = 0, n_errors = 0;
  gboolean first = TRUE;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  while ((msg = gst_bus_timed_pop_filtered (
              bus, 2 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))
      != NULL) {
    n_errors += GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR;
    if (g_strcmp0 (GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), "enc") != 0) {
      fail_if (first, "%s: the first message is not audioenc's", offer);
      gst_message_unref (msg);
      continue;
    }
    first = FALSE;
    fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_ERROR);
    gst_message_parse_error (msg, &err, NULL);
    GST_INFO ("%s: %s", offer, err->message);
    fail_unless (g_error_matches (err, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION));
    for (i = 0; expect[i]; i++)
      fail_unless (strstr (err->message, expect[i]) != NULL, "%s: no '%s' in: %s", offer, expect[i],
          err->message);
    g_clear_error (&err);
    gst_message_unref (msg);
    n_from_enc++;
  }
  fail_unless_equals_int (n_from_enc, 1);
  fail_unless (n_errors >= 1);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (path);
}

GST_START_TEST (test_offer_errors)
{
  static const gchar *const rate[] = { "8000 Hz", "16000 Hz", "audioresample", NULL };
  static const gchar *const format[] = { "S32LE", "S16LE or F32LE", "audioconvert", NULL };
  static const gchar *const channels[] = { "6 channels", "1 or 2 channels", "audioconvert", NULL };
  static const gchar *const both[] = { "8000 Hz", "6 channels", "audioresample and audioconvert",
    NULL };

  check_offer_error ("audio/x-raw,rate=8000", rate);
  /* (linking a capsfilter with a format or channels audioenc never takes
   * fails already when the pipeline is built; audioresample passes them) */
  check_offer_error ("audio/x-raw,format=S32LE ! audioresample", format);
  check_offer_error ("audio/x-raw,channels=6 ! audioresample", channels);
  check_offer_error (
      "audio/x-raw,rate=8000,channels=6 ! audioresample ! audio/x-raw,rate=8000", both);
}

GST_END_TEST;

/* audiotestsrc ! audioresample ! audioenc runs to EOS: 2 s = 3 windows. */
GST_START_TEST (test_pipeline)
{
  gchar *path = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf ("audiotestsrc num-buffers=20 "
                                 "samplesperbuffer=4410 ! audio/x-raw,rate=44100,channels=2 ! "
                                 "audioconvert ! audioresample ! audioenc model=\"%s\" ! "
                                 "appsink name=sink sync=false",
      path);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  guint n = 0;
  GstSample *sample;
  GstBuffer *buf;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  while (TRUE) {
    sample = NULL;
    g_signal_emit_by_name (sink, "pull-sample", &sample);
    if (sample == NULL)
      break;
    buf = gst_sample_get_buffer (sample);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), n * GST_SECOND / 2);
    n++;
    gst_sample_unref (sample);
  }
  msg = gst_bus_timed_pop_filtered (
      bus, 10 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_WARNING | GST_MESSAGE_EOS);
  fail_unless (msg != NULL);
  /* audioresample offers every rate: no rate warning either */
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  /* windows at 0, 0.5, 1.0; at EOS the last 0.5 s is the tail of the
   * window at 1.0 s, already covered: no extra window */
  fail_unless_equals_int (n, 3);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (path);
}

GST_END_TEST;

/* window/hop arithmetic, table-driven (times in ms, data from @base). */
GST_START_TEST (test_window_hop)
{
  static const struct
  {
    guint window_ms, hop_ms; /* 0 = model default (1000, 500) */
    guint data_ms;
    guint chunk; /* samples per buffer */
    GstClockTime base;
    guint n_out;
    guint window_out_ms;
    guint hop_out_ms;
  } cases[] = {
    { 0, 0, 2000, 1600, 0, 3, 1000, 500 },
    { 0, 0, 2000, 16000, 10 * GST_SECOND, 3, 1000, 500 },
    { 500, 250, 2000, 123, 0, 7, 500, 250 },
    { 250, 500, 2000, 1000, 0, 4, 250, 500 }, /* hop > window */
    { 1000, 1000, 3000, 7, GST_SECOND, 3, 1000, 1000 },
    { 100, 25, 200, 320, 0, 5, 100, 25 },
  };
  guint c, i;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    gchar *extra = g_strdup_printf ("window=%" G_GUINT64_FORMAT " hop=%" G_GUINT64_FORMAT,
        (guint64)cases[c].window_ms * MS, (guint64)cases[c].hop_ms * MS);
    GstHarness *h = harness_new (extra, MONO_S16);

    push_s16 (h, 0, cases[c].data_ms * RATE / 1000, cases[c].chunk, cases[c].base);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), cases[c].n_out);
    for (i = 0; i < cases[c].n_out; i++) {
      GstClockTime pts = cases[c].base + i * cases[c].hop_out_ms * MS;
      GstBuffer *out = pull_window (h, pts, cases[c].window_out_ms * MS);
      gfloat ref[DIM];

      reference ((guint64)i * cases[c].hop_out_ms * RATE / 1000,
          cases[c].window_out_ms * RATE / 1000, 1, TRUE, ref);
      assert_embedding (out, ref);
      gst_buffer_unref (out);
    }
    gst_harness_teardown (h);
    g_free (extra);
  }
}

GST_END_TEST;

/* A DISCONT buffer or a timestamp gap drops the partial window. */
GST_START_TEST (test_discont_resets)
{
  gint mode;

  for (mode = 0; mode < 3; mode++) {
    GstHarness *h = harness_new (NULL, MONO_S16);
    GstBuffer *buf;
    GstBuffer *out;
    gfloat ref[DIM];

    /* 0.75 s, not enough for a window */
    push_s16 (h, 0, 12000, 4000, 0);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

    if (mode == 0) {
      /* DISCONT with a contiguous timestamp */
      buf = s16_buffer (100000, 16000, 1, 750 * MS);
      GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
    } else if (mode == 1) {
      /* a 5 s gap, no flag */
      buf = s16_buffer (100000, 16000, 1, 5750 * MS);
    } else {
      /* an overlap: the timestamp goes back 0.5 s */
      buf = s16_buffer (100000, 16000, 1, 250 * MS);
    }
    GstClockTime pts = GST_BUFFER_PTS (buf);
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
    out = pull_window (h, pts, GST_SECOND);
    /* made only of the new samples */
    reference (100000, 16000, 1, TRUE, ref);
    assert_embedding (out, ref);
    fail_unless (GST_BUFFER_IS_DISCONT (out));
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* A GAP event ends the run, even one shorter than the 40 ms alignment
 * threshold: the samples before it are drained like at EOS, the GAP is
 * forwarded, and the windows after it start at the post-gap PTS, made only
 * of post-gap samples; no window spans the gap. */
GST_START_TEST (test_gap_resets)
{
  GstHarness *h = harness_new (NULL, MONO_S16);
  GstClockTime gap_start = 1300 * MS, gap_end = 1320 * MS;
  GstBuffer *out;
  GstEvent *ev;
  gfloat ref[DIM];

  /* 1.3 s: the window at 0 */
  push_s16 (h, 0, 20800, 1600, 0);
  out = pull_window (h, 0, GST_SECOND);
  gst_buffer_unref (out);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

  /* 20 ms without samples: the tail from the hop at 0.5 s is drained */
  fail_unless (gst_harness_push_event (h, gst_event_new_gap (gap_start, gap_end - gap_start)));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
  out = pull_window (h, 500 * MS, 800 * MS);
  reference (8000, 12800, 1, TRUE, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);
  ev = pull_event_of_type (h, GST_EVENT_GAP);
  fail_unless (ev != NULL, "GAP not forwarded");
  gst_event_unref (ev);

  /* 1.5 s after the gap, contiguous with it: windows at 1.32 s and 1.82 s */
  push_s16 (h, 100000, 24000, 1600, gap_end);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
  out = pull_window (h, gap_end, GST_SECOND);
  reference (100000, 16000, 1, TRUE, ref);
  assert_embedding (out, ref);
  fail_unless (GST_BUFFER_IS_DISCONT (out));
  gst_buffer_unref (out);
  out = pull_window (h, gap_end + 500 * MS, GST_SECOND);
  reference (108000, 16000, 1, TRUE, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Timestamp jitter below 40 ms does not break the run. */
GST_START_TEST (test_jitter_tolerated)
{
  GstHarness *h = harness_new (NULL, MONO_S16);
  guint i;
  GstBuffer *out;

  for (i = 0; i < 10; i++) {
    GstClockTime pts = i * 100 * MS + (i % 2 ? 3 * MS : 0);
    gst_harness_push (h, s16_buffer (i * 1600, 1600, 1, pts));
  }
  out = pull_window (h, 0, GST_SECOND);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_eos)
{
  static const struct
  {
    guint64 window_ns, hop_ns;
    guint samples;
    guint n_out;
    GstClockTime last_pts, last_duration;
  } cases[] = {
    /* 1.3 s: window at 0, then the uncovered tail from 0.5 s (0.8 s) */
    { 0, 0, 20800, 2, 500 * MS, 800 * MS },
    /* exactly 1 s: the remainder is covered by the first window */
    { 0, 0, 16000, 1, 0, GST_SECOND },
    /* 0.51 s with 0.5 s windows: 160 samples < n_fft are dropped */
    { 500 * MS, 500 * MS, 8160, 1, 0, 500 * MS },
    /* 0.3 s only: a shorter first window */
    { 0, 0, 4800, 1, 0, 300 * MS },
  };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    gchar *extra = g_strdup_printf (
        "window=%" G_GUINT64_FORMAT " hop=%" G_GUINT64_FORMAT, cases[c].window_ns, cases[c].hop_ns);
    GstHarness *h = harness_new (extra, MONO_S16);
    GstBuffer *out = NULL;
    GstEvent *ev;
    gboolean eos = FALSE;

    push_s16 (h, 0, cases[c].samples, 1600, 0);
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), cases[c].n_out);
    while (gst_harness_buffers_in_queue (h) > 0) {
      if (out)
        gst_buffer_unref (out);
      out = gst_harness_pull (h);
    }
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), cases[c].last_pts);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), cases[c].last_duration);
    gst_buffer_unref (out);
    while ((ev = gst_harness_try_pull_event (h)) != NULL) {
      eos |= GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
      gst_event_unref (ev);
    }
    fail_unless (eos);
    gst_harness_teardown (h);
    g_free (extra);
  }
}

GST_END_TEST;

/* After a flush, old samples are gone. */
GST_START_TEST (test_flush)
{
  GstHarness *h = harness_new (NULL, MONO_S16);
  GstSegment segment;
  GstBuffer *out;
  gfloat ref[DIM];

  push_s16 (h, 0, 12000, 4000, 0);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  /* contiguous timestamps, yet a new run */
  push_s16 (h, 50000, 16000, 4000, 750 * MS);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
  out = pull_window (h, 750 * MS, GST_SECOND);
  reference (50000, 16000, 1, TRUE, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_latency)
{
  static const struct
  {
    guint64 window_ns;
    GstClockTime expect;
  } cases[] = { { 0, GST_SECOND }, { 250 * MS, 250 * MS } };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    gchar *extra = g_strdup_printf ("window=%" G_GUINT64_FORMAT, cases[c].window_ns);
    GstHarness *h = harness_new (extra, MONO_S16);
    GstQuery *q = gst_query_new_latency ();
    gboolean live;
    GstClockTime min, max;

    gst_harness_set_upstream_latency (h, 20 * MS);
    fail_unless (gst_pad_peer_query (h->sinkpad, q));
    gst_query_parse_latency (q, &live, &min, &max);
    fail_unless_equals_uint64 (min, 20 * MS + cases[c].expect);
    gst_query_unref (q);
    gst_harness_teardown (h);
    g_free (extra);
  }
}

GST_END_TEST;

/* Loading the model sets the latency answered (the window): a LATENCY
 * message from audioenc tells the pipeline to query it again, so that a
 * live mmfuse downstream waits long enough for the windows. */
GST_START_TEST (test_latency_message)
{
  static const guint64 windows[] = { 0, 250 * MS };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (windows); c++) {
    GstElement *pipe = gst_pipeline_new (NULL);
    GstElement *src = gst_element_factory_make ("fakesrc", NULL);
    GstElement *enc = gst_element_factory_make ("audioenc", NULL);
    GstElement *sink = gst_element_factory_make ("fakesink", NULL);
    gchar *path = fixture ("tiny.safetensors");
    GstBus *bus = gst_element_get_bus (pipe);
    GstMessage *msg;
    GstQuery *q;
    GstClockTime min;

    g_object_set (enc, "model", path, "window", windows[c], NULL);
    gst_bin_add_many (GST_BIN (pipe), src, enc, sink, NULL);
    fail_unless (gst_element_link_many (src, enc, sink, NULL));
    /* PAUSED: READY->PAUSED loads the model; fakesrc sends nothing yet */
    g_object_set (src, "num-buffers", 0, NULL);
    gst_element_set_state (enc, GST_STATE_PAUSED);
    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
    fail_unless (msg != NULL, "no LATENCY message after loading the model");
    fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (enc));
    gst_message_unref (msg);
    fail_unless (
        gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY) == NULL, "more than one LATENCY message");

    q = gst_query_new_latency ();
    fail_unless (gst_pad_peer_query (sink->sinkpads->data, q));
    gst_query_parse_latency (q, NULL, &min, NULL);
    fail_unless_equals_uint64 (min, windows[c] ? windows[c] : GST_SECOND);
    gst_query_unref (q);

    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (bus);
    gst_object_unref (pipe);
    g_free (path);
  }
}

GST_END_TEST;

/* Before the model is loaded (READY): a live mmfuse downstream reaches
 * PAUSED, and queries the latency, before audioenc does; the window is
 * then read from the model file.  No model file: no window to add. */
GST_START_TEST (test_latency_before_start)
{
  static const struct
  {
    const gchar *model;
    guint64 window_ns;
    GstClockTime expect;
  } cases[] = {
    { "tiny.safetensors", 0, GST_SECOND },
    { "tiny.safetensors", 250 * MS, 250 * MS },
    { "no-such-model.safetensors", 0, 0 },
  };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstElement *pipe = gst_pipeline_new (NULL);
    GstElement *src = gst_element_factory_make ("fakesrc", NULL);
    GstElement *enc = gst_element_factory_make ("audioenc", NULL);
    GstElement *sink = gst_element_factory_make ("fakesink", NULL);
    gchar *path = fixture (cases[c].model);
    GstQuery *q;
    GstClockTime min, max;
    gboolean live;

    g_object_set (enc, "model", path, "window", cases[c].window_ns, NULL);
    gst_bin_add_many (GST_BIN (pipe), src, enc, sink, NULL);
    fail_unless (gst_element_link_many (src, enc, sink, NULL));
    fail_unless_equals_int (
        gst_element_set_state (pipe, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);

    q = gst_query_new_latency ();
    fail_unless (gst_pad_peer_query (sink->sinkpads->data, q));
    gst_query_parse_latency (q, &live, &min, &max);
    fail_unless_equals_uint64 (min, cases[c].expect);
    gst_query_unref (q);

    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (pipe);
    g_free (path);
  }
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("audioenc", NULL);
  guint64 window, hop;

  g_object_get (e, "window", &window, "hop", &hop, NULL);
  fail_unless_equals_uint64 (window, 0);
  fail_unless_equals_uint64 (hop, 0);
  g_object_set (e, "window", (guint64)GST_SECOND, "hop", (guint64)MS, NULL);
  g_object_get (e, "window", &window, "hop", &hop, NULL);
  fail_unless_equals_uint64 (window, GST_SECOND);
  fail_unless_equals_uint64 (hop, MS);
  gst_object_unref (e);
}

GST_END_TEST;

/* NaN and infinite samples: the windows holding any are not encoded but
 * GAP events for their interval; the others are encoded as usual; one
 * warning for the stream, naming the count. */
GST_START_TEST (test_nonfinite)
{
  GstHarness *h = harness_new (NULL,
      "audio/x-raw, format=F32LE, rate=16000, channels=2, "
      "layout=interleaved");
  GstBus *bus = gst_bus_new ();
  GstClockTime expect_gaps[] = { 500 * MS, 1000 * MS, 3000 * MS, 3500 * MS };
  GstBuffer *buf, *out;
  GstMapInfo map;
  GstEvent *ev;
  GstMessage *msg;
  GError *err = NULL;
  gfloat ref[DIM];
  guint i, n_gaps = 0;

  gst_element_set_bus (h->element, bus);
  /* 4.5 s in 0.5 s buffers; a NaN at 1.25 s (left channel), +inf and -inf
   * at 1.2500625 s, a NaN at 3.7 s (right channel) */
  for (i = 0; i < 9; i++) {
    buf = f32_buffer (i * 8000, 8000, 2, i * 500 * MS);
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    if (i == 2) {
      GST_WRITE_FLOAT_LE (map.data + 4 * (2 * 4000), NAN);
      GST_WRITE_FLOAT_LE (map.data + 4 * (2 * 4001), INFINITY);
      GST_WRITE_FLOAT_LE (map.data + 4 * (2 * 4001 + 1), -INFINITY);
    }
    if (i == 7)
      GST_WRITE_FLOAT_LE (map.data + 4 * (2 * 3200 + 1), NAN);
    gst_buffer_unmap (buf, &map);
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  }
  /* windows at 0, 1.5, 2.0 and 2.5 s are clean; 0.5, 1.0 (1.25 s) and
   * 3.0, 3.5 (3.7 s) are not */
  out = pull_window (h, 0, GST_SECOND);
  reference (0, RATE, 2, FALSE, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);
  for (i = 0; i < 3; i++) {
    out = pull_window (h, (1500 + 500 * i) * MS, GST_SECOND);
    reference ((3 + i) * 8000, RATE, 2, FALSE, ref);
    assert_embedding (out, ref);
    gst_buffer_unref (out);
  }
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  while ((ev = pull_event_of_type (h, GST_EVENT_GAP)) != NULL) {
    GstClockTime ts, dur;

    gst_event_parse_gap (ev, &ts, &dur);
    gst_event_unref (ev);
    if (dur == 0)
      continue; /* an empty preroll GAP, if upstream is not live */
    fail_unless (
        n_gaps < G_N_ELEMENTS (expect_gaps), "extra GAP at %" GST_TIME_FORMAT, GST_TIME_ARGS (ts));
    fail_unless_equals_uint64 (ts, expect_gaps[n_gaps]);
    fail_unless_equals_uint64 (dur, GST_SECOND);
    n_gaps++;
  }
  fail_unless_equals_int (n_gaps, G_N_ELEMENTS (expect_gaps));

  /* one warning, counting the three values seen by then */
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning");
  gst_message_parse_warning (msg, &err, NULL);
  GST_INFO ("%s", err->message);
  fail_unless (strstr (err->message, "3 NaN or infinite") != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (msg);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING) == NULL, "a second warning");
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_model_errors)
{
  check_model_errors ("audioenc", "audio");
}

GST_END_TEST;

static Suite *
audioenc_suite (void)
{
  Suite *s = suite_create ("audioenc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_formats_and_values);
  tcase_add_test (tc, test_caps_refused);
  tcase_add_test (tc, test_rate_mismatch_error);
  tcase_add_test (tc, test_offer_errors);
  tcase_add_test (tc, test_nonfinite);
  tcase_add_test (tc, test_pipeline);
  tcase_add_test (tc, test_window_hop);
  tcase_add_test (tc, test_discont_resets);
  tcase_add_test (tc, test_gap_resets);
  tcase_add_test (tc, test_jitter_tolerated);
  tcase_add_test (tc, test_eos);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_latency_message);
  tcase_add_test (tc, test_latency_before_start);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_model_errors);
  return s;
}

GST_CHECK_MAIN (audioenc);
