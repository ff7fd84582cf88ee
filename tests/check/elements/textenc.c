/* textenc element tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Reference embeddings come from libmm's text encoder called directly on
 * the text the element should have extracted (markup stripped, etc.).
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

#define harness_new(extra) mm_harness_new ("textenc", (extra))

/* ref (DIM) = libmm's text embedding of @text. */
static void
reference (const gchar *text, gssize len, gfloat *ref)
{
  gchar *path = fixture ("tiny.safetensors");
  GError *err = NULL;
  MmModel *model = mm_model_open (path, &err);
  MmContextParams params = mm_context_default_params ();
  MmTextEncoder *enc;

  fail_unless (model != NULL, "%s", err ? err->message : "");
  enc = mm_text_encoder_new (model, &params, &err);
  fail_unless (enc != NULL);
  fail_unless (mm_text_encoder_encode (enc, text, len, ref, NULL, &err));
  mm_text_encoder_free (enc);
  mm_model_unref (model);
  g_free (path);
}

static GstBuffer *
text_buffer (const gchar *text, GstClockTime pts, GstClockTime duration)
{
  GstBuffer *buf = *text ? gst_buffer_new_memdup (text, strlen (text)) : gst_buffer_new ();

  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = duration;
  return buf;
}

#define assert_embedding(buf, ref) assert_embedding_near ((buf), (ref), DIM, 1e-6f)

GST_START_TEST (test_caps_accepted)
{
  const gchar *formats[] = { "text/x-raw, format=utf8", "text/x-raw, format=pango-markup",
    "text/plain" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstHarness *h = harness_new (NULL);
    GstCaps *caps;
    GstStructure *s;
    gint dim = 0;
    GstBuffer *out;

    gst_harness_set_src_caps_str (h, formats[i]);
    fail_unless_equals_int (gst_harness_push (h, text_buffer ("news", 0, GST_SECOND)), GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless (out != NULL);
    gst_buffer_unref (out);

    caps = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (caps != NULL);
    s = gst_caps_get_structure (caps, 0);
    fail_unless (gst_structure_has_name (s, MM_EMBEDDING_CAPS_NAME));
    fail_unless_equals_string (gst_structure_get_string (s, "modality"), "text");
    fail_unless (gst_structure_get_int (s, "dim", &dim));
    fail_unless_equals_int (dim, DIM);
    fail_unless (gst_structure_get_string (s, "model") != NULL);
    gst_caps_unref (caps);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_caps_refused)
{
  const gchar *refused[] = { "text/x-raw, format=utf16",
    "video/x-raw, format=RGB, width=4, height=4, framerate=1/1", "application/x-subtitle" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (refused); i++) {
    GstHarness *h = harness_new (NULL);
    GstCaps *caps = gst_caps_from_string (refused[i]);
    GstPad *sinkpad = gst_element_get_static_pad (h->element, "sink");

    fail_unless (!gst_pad_query_accept_caps (sinkpad, caps), "%s accepted", refused[i]);
    gst_object_unref (sinkpad);
    gst_caps_unref (caps);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* Downstream that wants another dimension gets a not-negotiated error. */
/* textenc allocates its own output: an allocation query for text is
 * answered here (not proxied downstream, where it has no meaning). */
GST_START_TEST (test_allocation_not_proxied)
{
  GstHarness *h = harness_new (NULL);
  GstPad *sinkpad = gst_element_get_static_pad (h->element, "sink");
  GstCaps *caps = gst_caps_from_string ("text/x-raw, format=utf8");
  GstQuery *query;

  gst_harness_set_src_caps (h, gst_caps_ref (caps));
  gst_harness_set_propose_allocator (h, NULL, NULL);
  gst_harness_add_propose_allocation_meta (h, GST_PARENT_BUFFER_META_API_TYPE, NULL);
  query = gst_query_new_allocation (caps, FALSE);
  gst_pad_query (sinkpad, query);
  fail_unless_equals_int (gst_query_get_n_allocation_metas (query), 0);
  gst_query_unref (query);
  gst_caps_unref (caps);
  gst_object_unref (sinkpad);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_downstream_mismatch)
{
  gchar *path = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf ("textenc model=\"%s\" ! capsfilter "
                                 "caps=\"" MM_EMBEDDING_CAPS_NAME ",dim=(int)16\"",
      path);
  GstHarness *h = gst_harness_new_parse (desc);
  GstBus *bus = gst_bus_new ();
  GstBuffer *buf;

  gst_element_set_bus (h->element, bus);
  buf = text_buffer ("news", 0, GST_SECOND);
  gst_harness_set_src_caps_str (h, "text/plain");
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_NOT_NEGOTIATED);
  /* the error says what was refused, not just "not negotiated" */
  assert_bus_message (bus, GST_MESSAGE_ERROR, "refuses its output", "dim=(int)8", NULL);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_free (desc);
  g_free (path);
}

GST_END_TEST;

/* pocketsphinx sends no caps event: text without caps from an upstream
 * that never sent any is taken as text/plain (no markup stripping), and the
 * output caps are set with the first buffer. */
GST_START_TEST (test_no_caps_is_plain)
{
  GstHarness *h = harness_new (NULL);
  GstSegment segment;
  GstCaps *caps;
  gfloat ref[DIM];
  GstBuffer *out;

  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  fail_if (gst_pad_has_current_caps (h->srcpad));
  fail_unless_equals_int (
      gst_harness_push (h, text_buffer ("<i>song</i>", 3 * GST_SECOND, GST_SECOND)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 3 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), GST_SECOND);
  reference ("<i>song</i>", -1, ref); /* plain: tags are text */
  assert_embedding (out, ref);
  gst_buffer_unref (out);

  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (caps != NULL);
  fail_unless (gst_structure_has_name (gst_caps_get_structure (caps, 0), MM_EMBEDDING_CAPS_NAME));
  fail_unless_equals_string (
      gst_structure_get_string (gst_caps_get_structure (caps, 0), "modality"), "text");
  gst_caps_unref (caps);

  /* the next one too */
  fail_unless_equals_int (
      gst_harness_push (h, text_buffer ("news", 5 * GST_SECOND, GST_SECOND)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  reference ("news", -1, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The same through a real pipeline: an appsrc without caps (like
 * pocketsphinx) into textenc. */
GST_START_TEST (test_no_caps_pipeline)
{
  gchar *model = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf ("appsrc name=src format=time ! "
                                 "textenc model=\"%s\" ! appsink name=sink sync=false",
      model);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *src, *sink;
  GstSample *sample = NULL;
  GstFlowReturn ret;
  GstBuffer *buf;
  GstMessage *msg;
  GstBus *bus;
  gfloat ref[DIM];

  fail_unless (pipe != NULL);
  src = gst_bin_get_by_name (GST_BIN (pipe), "src");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  bus = gst_element_get_bus (pipe);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  buf = text_buffer ("weather report", GST_SECOND, GST_SECOND);
  g_signal_emit_by_name (src, "push-buffer", buf, &ret); /* refs it */
  gst_buffer_unref (buf);
  fail_unless_equals_int (ret, GST_FLOW_OK);
  g_signal_emit_by_name (src, "end-of-stream", &ret);
  g_signal_emit_by_name (sink, "pull-sample", &sample);
  fail_unless (sample != NULL, "no embedding");
  reference ("weather report", -1, ref);
  assert_embedding (gst_sample_get_buffer (sample), ref);
  gst_sample_unref (sample);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (model);
}

GST_END_TEST;

GST_START_TEST (test_timestamps_and_values)
{
  GstHarness *h = harness_new (NULL);
  gfloat ref[DIM];
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_push (h, text_buffer ("The weather report", 7 * GST_SECOND, 1500 * GST_MSECOND));
  gst_harness_push (h, text_buffer ("a guitar song", 9 * GST_SECOND, 2 * GST_SECOND));

  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 7 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 1500 * GST_MSECOND);
  reference ("The weather report", -1, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);

  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 9 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 2 * GST_SECOND);
  reference ("a guitar song", -1, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* pango-markup: tags dropped and entities decoded; utf8 keeps them. */
GST_START_TEST (test_markup_stripped)
{
  const gchar *markup = "<span foreground=\"music\"><i>car</i></span> &amp; engine&#33;";
  GstHarness *h = harness_new (NULL);
  gfloat ref[DIM], literal[DIM];
  GstBuffer *out;
  GstMapInfo map;

  gst_harness_set_src_caps_str (h, "text/x-raw, format=pango-markup");
  gst_harness_push (h, text_buffer (markup, 0, GST_SECOND));
  out = gst_harness_pull (h);
  reference ("car & engine!", -1, ref);
  assert_embedding (out, ref);
  /* and the markup made a difference: read literally it says "music" */
  reference (markup, -1, literal);
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_if (memcmp (map.data, literal, sizeof (literal)) == 0);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);

  h = harness_new (NULL);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_push (h, text_buffer (markup, 0, GST_SECOND));
  out = gst_harness_pull (h);
  assert_embedding (out, literal);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* No PTS: running time at arrival (harness test clock, base time 0);
 * no duration: default-duration. */
GST_START_TEST (test_untimestamped)
{
  GstHarness *h = harness_new ("default-duration=2000000000");
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, "text/plain");
  fail_unless (gst_harness_set_time (h, 5 * GST_SECOND));
  gst_harness_push (h, text_buffer ("she said", GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE));
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 5 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 2 * GST_SECOND);
  gst_buffer_unref (out);

  /* PTS given, duration not */
  gst_harness_push (h, text_buffer ("she said", 8 * GST_SECOND, GST_CLOCK_TIME_NONE));
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 8 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 2 * GST_SECOND);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Not PLAYING (no running time): the end of the previous cue. */
GST_START_TEST (test_untimestamped_paused)
{
  GstHarness *h = harness_new (NULL);
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, "text/plain");
  gst_harness_push (h, text_buffer ("news", 4 * GST_SECOND, GST_SECOND));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_int (
      gst_element_set_state (h->element, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  gst_harness_push (h, text_buffer ("news", GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE));
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 5 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 3 * GST_SECOND);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Empty and blank cues give a GAP event for their interval, no buffer. */
GST_START_TEST (test_blank_cues)
{
  const gchar *blanks[] = { "", "   \n\t ", "\xc2\xa0\xe2\x80\x83", "<i> </i>" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (blanks); i++) {
    GstHarness *h = harness_new (NULL);
    GstEvent *gap;
    GstClockTime ts, dur;

    gst_harness_set_src_caps_str (h, "text/x-raw, format=pango-markup");
    fail_unless_equals_int (
        gst_harness_push (h, text_buffer (blanks[i], 3 * GST_SECOND, GST_SECOND)), GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_buffers_received (h), 0);
    gap = pull_event_of_type (h, GST_EVENT_GAP);
    fail_unless (gap != NULL, "no GAP for blank cue %u", i);
    gst_event_parse_gap (gap, &ts, &dur);
    fail_unless_equals_uint64 (ts, 3 * GST_SECOND);
    fail_unless_equals_uint64 (dur, GST_SECOND);
    gst_event_unref (gap);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_gap_forwarded)
{
  GstHarness *h = harness_new (NULL);
  GstEvent *gap;
  GstClockTime ts, dur;

  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  fail_unless (gst_harness_push_event (h, gst_event_new_gap (2 * GST_SECOND, 500 * GST_MSECOND)));
  gap = pull_event_of_type (h, GST_EVENT_GAP);
  fail_unless (gap != NULL);
  gst_event_parse_gap (gap, &ts, &dur);
  fail_unless_equals_uint64 (ts, 2 * GST_SECOND);
  fail_unless_equals_uint64 (dur, 500 * GST_MSECOND);
  gst_event_unref (gap);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Invalid UTF-8 becomes U+FFFD, which is no word: same as the valid part. */
GST_START_TEST (test_invalid_utf8)
{
  GstHarness *h = harness_new (NULL);
  gfloat ref[DIM];
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_push (h, text_buffer ("\xff\xfe traffic \xc3 noise \xed\xa0\x80", 0, GST_SECOND));
  out = gst_harness_pull (h);
  reference ("traffic noise", -1, ref);
  assert_embedding (out, ref);
  gst_buffer_unref (out);

  /* text after an embedded NUL is ignored */
  {
    static const gchar with_nul[] = "music\0car car car";
    GstBuffer *buf = gst_buffer_new_memdup (with_nul, sizeof (with_nul));

    GST_BUFFER_PTS (buf) = GST_SECOND;
    gst_harness_push (h, buf);
    out = gst_harness_pull (h);
    reference ("music", -1, ref);
    assert_embedding (out, ref);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A 10 MB cue (and a 10 MB markup cue) is truncated, not a crash. */
GST_START_TEST (test_gigantic_cue)
{
  const gsize size = 10 * 1024 * 1024;
  const gchar *formats[] = { "text/x-raw, format=utf8", "text/x-raw, format=pango-markup" };
  guint f;

  for (f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstHarness *h = harness_new (NULL);
    gchar *text = g_malloc (size + 1);
    GstBuffer *buf, *out;
    GstMapInfo map;
    gsize i;
    gint64 t0;

    for (i = 0; i < size; i++)
      text[i] = "music <b>"[i % 9];
    text[size] = '\0';
    buf = gst_buffer_new_wrapped (text, size);
    GST_BUFFER_PTS (buf) = 0;
    GST_BUFFER_DURATION (buf) = GST_SECOND;

    gst_harness_set_src_caps_str (h, formats[f]);
    t0 = g_get_monotonic_time ();
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
    out = gst_harness_pull (h);
    GST_INFO (
        "10 MB cue (%s) took %" G_GINT64_FORMAT " us", formats[f], g_get_monotonic_time () - t0);
    fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
    fail_unless_equals_int (map.size, DIM * sizeof (gfloat));
    for (i = 0; i < DIM; i++)
      fail_unless (isfinite (((gfloat *)map.data)[i]));
    gst_buffer_unmap (out, &map);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* After a flush the element keeps working and timestamps restart. */
GST_START_TEST (test_flush)
{
  GstHarness *h = harness_new (NULL);
  GstBuffer *out;
  GstSegment segment;
  GstEvent *ev;

  gst_harness_set_src_caps_str (h, "text/plain");
  gst_harness_push (h, text_buffer ("news", 10 * GST_SECOND, GST_SECOND));
  gst_buffer_unref (gst_harness_pull (h));

  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  ev = pull_event_of_type (h, GST_EVENT_FLUSH_STOP);
  fail_unless (ev != NULL);
  gst_event_unref (ev);

  gst_harness_push (h, text_buffer ("song", GST_SECOND, GST_SECOND));
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), GST_SECOND);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_eos)
{
  GstHarness *h = harness_new (NULL);
  GstEvent *ev;

  gst_harness_set_src_caps_str (h, "text/plain");
  gst_harness_push (h, text_buffer ("news", 0, GST_SECOND));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (h), 1);
  ev = pull_event_of_type (h, GST_EVENT_EOS);
  fail_unless (ev != NULL);
  gst_event_unref (ev);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("textenc", NULL);
  guint64 dur;
  gchar *model;

  g_object_get (e, "default-duration", &dur, "model", &model, NULL);
  fail_unless_equals_uint64 (dur, 3 * GST_SECOND);
  fail_unless (model == NULL);
  g_object_get (e, "max-duration", &dur, NULL);
  fail_unless_equals_uint64 (dur, 10 * GST_SECOND);
  g_object_set (e, "default-duration", (guint64)GST_SECOND, "model", "x", NULL);
  g_object_get (e, "default-duration", &dur, "model", &model, NULL);
  fail_unless_equals_uint64 (dur, GST_SECOND);
  fail_unless_equals_string (model, "x");
  g_free (model);
  gst_object_unref (e);
}

GST_END_TEST;

/* max-duration: an inverted cue (subparse gives an end before the start a
 * duration of ~2^64 ns) or a too long one is cut to it, and it is the
 * nominal duration in the output caps; overlapping cues both go out, the
 * newer one unchanged (it supersedes the older one downstream). */
GST_START_TEST (test_max_duration)
{
  static const struct
  {
    const gchar *extra;
    GstClockTime pts, duration, expect;
  } cases[] = {
    { NULL, 5 * GST_SECOND, G_MAXUINT64 - 4 * GST_SECOND, 10 * GST_SECOND }, /* inverted */
    { NULL, 5 * GST_SECOND, 3600 * GST_SECOND, 10 * GST_SECOND },
    { NULL, 5 * GST_SECOND, 10 * GST_SECOND, 10 * GST_SECOND },
    { NULL, 5 * GST_SECOND, 2 * GST_SECOND, 2 * GST_SECOND },
    { "max-duration=1500000000", 5 * GST_SECOND, 2 * GST_SECOND, 1500 * GST_MSECOND },
    { "max-duration=1500000000", 5 * GST_SECOND, GST_CLOCK_TIME_NONE, 1500 * GST_MSECOND },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstHarness *h = harness_new (cases[i].extra);
    GstBuffer *out;
    GstCaps *caps;
    guint64 max = 0, caps_duration = 0;

    gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
    fail_unless_equals_int (
        gst_harness_push (h, text_buffer ("news", cases[i].pts, cases[i].duration)), GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), cases[i].pts);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), cases[i].expect);
    gst_buffer_unref (out);

    {
      GstElement *e = gst_harness_find_element (h, "textenc");
      g_object_get (e, "max-duration", &max, NULL);
      gst_object_unref (e);
    }
    caps = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (
        gst_structure_get_uint64 (gst_caps_get_structure (caps, 0), "duration", &caps_duration));
    fail_unless_equals_uint64 (caps_duration, max);
    gst_caps_unref (caps);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* An inverted cue, then a normal one; then overlapping cues: every cue
 * goes out once, in order, the normal and the newer ones unchanged. */
GST_START_TEST (test_inverted_then_overlapping)
{
  GstHarness *h = harness_new (NULL);
  static const struct
  {
    GstClockTime pts, duration, expect;
  } cues[] = {
    { 1 * GST_SECOND, G_MAXUINT64 - 500 * GST_MSECOND, 10 * GST_SECOND }, /* 1 s -> 0.5 s */
    { 3 * GST_SECOND, 2 * GST_SECOND, 2 * GST_SECOND },
    { 20 * GST_SECOND, 4 * GST_SECOND, 4 * GST_SECOND },
    { 21 * GST_SECOND, 2 * GST_SECOND, 2 * GST_SECOND }, /* overlaps the one at 20 s */
    { 22 * GST_SECOND, 5 * GST_SECOND, 5 * GST_SECOND },
  };
  guint i;

  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  for (i = 0; i < G_N_ELEMENTS (cues); i++)
    fail_unless_equals_int (
        gst_harness_push (h, text_buffer ("news", cues[i].pts, cues[i].duration)), GST_FLOW_OK);
  for (i = 0; i < G_N_ELEMENTS (cues); i++) {
    GstBuffer *out = gst_harness_pull (h);

    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), cues[i].pts);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), cues[i].expect);
    gst_buffer_unref (out);
  }
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_model_errors)
{
  check_model_errors ("textenc", "text");
  check_model_error ("textenc", "tiny-notext.safetensors", "no text component");
}

GST_END_TEST;

/* A real pipeline from the build-tree plugin: filesrc ! subparse ! textenc.
 * Cue 2 is empty after markup removal (a GAP), cue 3 has markup. */
GST_START_TEST (test_pipeline_srt)
{
  static const gchar srt[] = "1\n00:00:01,000 --> 00:00:02,500\nThe weather report\n\n"
                             "2\n00:00:03,000 --> 00:00:04,000\n<i> </i>\n\n"
                             "3\n00:00:05,000 --> 00:00:07,000\n<b>guitar</b> &amp; song\n\n";
  gchar *dir = g_dir_make_tmp ("textenc-XXXXXX", NULL);
  gchar *srt_path = g_build_filename (dir, "cues.srt", NULL);
  gchar *model = fixture ("tiny.safetensors");
  gchar *desc;
  GstElement *pipe, *sink;
  GstBus *bus;
  GstMessage *msg;
  GstSample *sample;
  static const GstClockTime pts[] = { GST_SECOND, 5 * GST_SECOND };
  static const GstClockTime dur[] = { 1500 * GST_MSECOND, 2 * GST_SECOND };
  static const gchar *texts[] = { "The weather report", "guitar & song" };
  guint n = 0;

  fail_unless (g_file_set_contents (srt_path, srt, -1, NULL));
  desc = g_strdup_printf ("filesrc location=\"%s\" ! subparse ! "
                          "textenc model=\"%s\" ! appsink name=sink sync=false",
      srt_path, model);
  pipe = gst_parse_launch (desc, NULL);
  fail_unless (pipe != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  bus = gst_element_get_bus (pipe);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  while (TRUE) {
    GstBuffer *buf;
    gfloat ref[DIM];

    sample = NULL;
    g_signal_emit_by_name (sink, "pull-sample", &sample);
    if (sample == NULL)
      break;
    fail_unless (n < 2);
    buf = gst_sample_get_buffer (sample);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), pts[n]);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), dur[n]);
    reference (texts[n], -1, ref);
    assert_embedding (buf, ref);
    gst_sample_unref (sample);
    n++;
  }
  fail_unless_equals_int (n, 2);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (msg != NULL);
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_unlink (srt_path);
  g_rmdir (dir);
  g_free (desc);
  g_free (model);
  g_free (srt_path);
  g_free (dir);
}

GST_END_TEST;

static Suite *
textenc_suite (void)
{
  Suite *s = suite_create ("textenc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_caps_accepted);
  tcase_add_test (tc, test_caps_refused);
  tcase_add_test (tc, test_downstream_mismatch);
  tcase_add_test (tc, test_allocation_not_proxied);
  tcase_add_test (tc, test_no_caps_is_plain);
  tcase_add_test (tc, test_no_caps_pipeline);
  tcase_add_test (tc, test_timestamps_and_values);
  tcase_add_test (tc, test_markup_stripped);
  tcase_add_test (tc, test_untimestamped);
  tcase_add_test (tc, test_untimestamped_paused);
  tcase_add_test (tc, test_blank_cues);
  tcase_add_test (tc, test_gap_forwarded);
  tcase_add_test (tc, test_invalid_utf8);
  tcase_add_test (tc, test_gigantic_cue);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_eos);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_max_duration);
  tcase_add_test (tc, test_inverted_then_overlapping);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_pipeline_srt);
  return s;
}

GST_CHECK_MAIN (textenc);
