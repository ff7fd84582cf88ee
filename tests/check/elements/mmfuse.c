/* mmfuse element tests: GstHarness, one harness per request pad.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The fixture model tests/fixtures/tiny.safetensors has a concat fusion of
 * image (dim 8), audio (dim 8) and text (dim 8) with the presence mask
 * appended (dim 27), so the fused vector shows which embedding fed each
 * slice.  Every test embedding is filled with 1 + its PTS in ms: output
 * slice i of 8 floats equals 1 + pts_ms of the embedding used, or 0 when the
 * modality is missing, and floats 24..26 are the mask.
 *
 * The harnesses make the aggregator live on a GstTestClock that only moves
 * when a test moves it, so live deadlines expire exactly when a test says
 * so; the element's latency is 10 s unless a test needs otherwise, which
 * lets each pad queue enough data to push whole streams from one thread.
 */
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/check/gsttestclock.h>

#include "gstmmmeta.h"
#include "mmcheck.h"

#define DIM 8
#define N_INPUTS 3
#define FUSED_DIM (N_INPUTS * DIM + N_INPUTS)
#define MS GST_MSECOND
#define MISSING (-1)
/* expected provenance in ms (MISSING stays MISSING) as ns */
#define AT(ms) ((ms) == MISSING ? MISSING : (gint64)(ms) * (gint64)MS)

enum
{
  IMAGE,
  AUDIO,
  TEXT
};

static const gchar *modality_names[N_INPUTS] = { "image", "audio", "text" };

static gchar *
caps_string (const gchar *modality, gint dim)
{
  return g_strdup_printf ("application/x-mm-embedding, modality=%s, dim=%d, "
                          "model=tiny",
      modality, dim);
}

/* One embedding of @dim floats all equal to 1 + pts in ms. */
static GstBuffer *
embedding_dim (GstClockTime pts, GstClockTime duration, guint dim)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, dim * sizeof (gfloat), NULL);
  GstMapInfo map;
  guint i;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (i = 0; i < dim; i++)
    ((gfloat *)map.data)[i] = 1.0f + (gfloat)(pts / MS);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = duration;
  return buf;
}

static GstBuffer *
embedding (GstClockTime pts, GstClockTime duration)
{
  return embedding_dim (pts, duration, DIM);
}

static GstClockTime
frame_pts (guint k)
{
  return gst_util_uint64_scale (k, GST_SECOND, 30);
}

static GstClockTime
frame_duration (guint k)
{
  return frame_pts (k + 1) - frame_pts (k);
}

/* ---- fixture: an mmfuse with harnesses on its pads ---- */

typedef struct
{
  GstElement *fuse;
  GstBus *bus;
  GstHarness *h;     /* sink_0 and src */
  GstHarness *in[4]; /* in[0] == h */
  guint n_in;
} Fuse;

static GstElement *
fuse_element_new (void)
{
  GstElement *fuse = gst_element_factory_make ("mmfuse", NULL);
  gchar *model = fixture ("tiny.safetensors");

  fail_unless (fuse != NULL, "mmfuse not found");
  g_object_set (fuse, "model", model, "latency", (guint64)10 * GST_SECOND, NULL);
  g_free (model);
  return fuse;
}

/* Requests sink_N for each of @modalities (NULL-terminated) and sets its
 * caps; the first pad's harness also owns the src pad.  Properties may be
 * set on @fuse before (pass it in) or the pads after. */
static void
fuse_setup (Fuse *f, GstElement *fuse, const gchar *const *modalities)
{
  guint i;

  memset (f, 0, sizeof (*f));
  f->fuse = fuse ? fuse : fuse_element_new ();
  f->bus = gst_bus_new ();
  gst_element_set_bus (f->fuse, f->bus);
  for (i = 0; modalities[i]; i++) {
    gchar *pad = g_strdup_printf ("sink_%u", i);
    gchar *caps = caps_string (modalities[i], DIM);

    f->in[i] = gst_harness_new_with_element (f->fuse, pad, i ? NULL : "src");
    gst_harness_set_src_caps_str (f->in[i], caps);
    g_free (caps);
    g_free (pad);
  }
  f->n_in = i;
  f->h = f->in[0];
  gst_object_unref (f->fuse); /* the harnesses hold it */
}

static void
fuse_teardown (Fuse *f)
{
  gint i;

  for (i = f->n_in - 1; i >= 0; i--)
    if (f->in[i])
      gst_harness_teardown (f->in[i]);
  gst_bus_set_flushing (f->bus, TRUE);
  gst_object_unref (f->bus);
}

static void
push (GstHarness *h, GstBuffer *buf)
{
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
}

static void
push_event (GstHarness *h, GstEvent *event)
{
  fail_unless (gst_harness_push_event (h, event));
}

static GstPad *
fuse_pad (Fuse *f, guint i)
{
  gchar *name = g_strdup_printf ("sink_%u", i);
  GstPad *pad = gst_element_get_static_pad (f->fuse, name);

  g_free (name);
  fail_unless (pad != NULL);
  return pad;
}

static void
wait_for_eos (GstHarness *h)
{
  GstEvent *event;

  while ((event = gst_harness_pull_event (h)) != NULL) {
    gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    gst_event_unref (event);
    if (eos)
      return;
  }
  fail ("no EOS on the output");
}

/* Checks @out against the expected provenance: the PTS (ns) of the
 * embedding used for image, audio and text, or MISSING. */
static void
check_fused (GstBuffer *out, GstClockTime pts, GstClockTime duration, gint64 image, gint64 audio,
    gint64 text)
{
  const gint64 expected[N_INPUTS] = { image, audio, text };
  MmFusionMeta *meta;
  GstMapInfo map;
  const gfloat *z;
  guint i, j;

  fail_unless (out != NULL, "no output");
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), pts);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), duration);

  meta = gst_buffer_get_mm_fusion_meta (out);
  fail_unless (meta != NULL, "no MmFusionMeta");
  fail_unless_equals_int (meta->n_inputs, N_INPUTS);

  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  fail_unless_equals_int (map.size, FUSED_DIM * sizeof (gfloat));
  z = (const gfloat *)map.data;
  for (i = 0; i < N_INPUTS; i++) {
    gboolean present = expected[i] != MISSING;

    fail_unless_equals_string (g_quark_to_string (meta->modality[i]), modality_names[i]);
    fail_unless (meta->present[i] == present,
        "output %" GST_TIME_FORMAT ": %s present=%d, expected %d", GST_TIME_ARGS (pts),
        modality_names[i], meta->present[i], present);
    fail_unless_equals_uint64 (
        meta->pts[i], present ? (GstClockTime)expected[i] : GST_CLOCK_TIME_NONE);
    for (j = 0; j < DIM; j++)
      fail_unless (z[i * DIM + j] == (present ? 1.0f + (gfloat)(expected[i] / MS) : 0.0f),
          "output %" GST_TIME_FORMAT ": %s slice[%u] = %f, expected "
          "embedding of %" G_GINT64_FORMAT " ns",
          GST_TIME_ARGS (pts), modality_names[i], j, z[i * DIM + j], expected[i]);
    fail_unless_equals_float (z[N_INPUTS * DIM + i], present ? 1.0f : 0.0f);
  }
  gst_buffer_unmap (out, &map);
}

static void
pull_and_check (
    GstHarness *h, GstClockTime pts, GstClockTime duration, gint64 image, gint64 audio, gint64 text)
{
  GstBuffer *out = gst_harness_pull (h);

  check_fused (out, pts, duration, image, audio, text);
  gst_buffer_unref (out);
}

/* ---- tests ---- */

/* 30 fps video (driving) + 1 s audio windows + three subtitle cues at
 * irregular times, text max-age 300 ms, against a hand-written table. */
GST_START_TEST (test_multirate_pairing_table)
{
  static const gchar *const modalities[] = { "image", "audio", "text", NULL };
  static const struct
  {
    guint first, last; /* video frames (30 fps) */
    gint64 audio_ms, text_ms;
  } table[] = {
    { 0, 5, 0, MISSING },      /* cue A starts at 200 ms */
    { 6, 29, 0, 200 },         /* A [200, 900) covers, then is < 300 ms old */
    { 30, 36, 1000, 200 },     /* frame 36 = 1.2 s: A exactly 300 ms old */
    { 37, 43, 1000, MISSING }, /* A too old, B not yet (1.45 s) */
    { 44, 59, 1000, 1450 },    /* B [1450, 2050) */
    { 60, 70, 2000, 1450 },    /* B held until 2.35 s */
    { 71, 77, 2000, MISSING }, { 78, 80, 2000, 2600 }, /* C [2600, 2700) */
    { 81, 89, 2000, MISSING }, /* a GAP from 2.7 s: C is not held by max-age */
  };
  GstPad *text_pad;
  Fuse f;
  guint row, k, n_out = 0;

  fuse_setup (&f, NULL, modalities);
  text_pad = fuse_pad (&f, TEXT);
  g_object_set (text_pad, "max-age", (gint64)300 * MS, NULL);

  for (k = 0; k < 3; k++)
    push (f.in[AUDIO], embedding (k * GST_SECOND, GST_SECOND));
  push_event (f.in[AUDIO], gst_event_new_eos ());
  push (f.in[TEXT], embedding (200 * MS, 700 * MS));
  push (f.in[TEXT], embedding (1450 * MS, 600 * MS));
  push (f.in[TEXT], embedding (2600 * MS, 100 * MS));
  /* no cue until 3.1 s: lets the last frames through */
  push_event (f.in[TEXT], gst_event_new_gap (2700 * MS, 400 * MS));

  for (row = 0; row < G_N_ELEMENTS (table); row++) {
    for (k = table[row].first; k <= table[row].last; k++) {
      push (f.in[IMAGE], embedding (frame_pts (k), frame_duration (k)));
      pull_and_check (f.h, frame_pts (k), frame_duration (k), (gint64)frame_pts (k),
          AT (table[row].audio_ms), AT (table[row].text_ms));
      n_out++;
    }
  }
  fail_unless_equals_int (n_out, 90);

  {
    gboolean sparse_text, sparse_audio;
    GstPad *audio_pad = fuse_pad (&f, AUDIO);

    g_object_get (text_pad, "sparse", &sparse_text, NULL);
    g_object_get (audio_pad, "sparse", &sparse_audio, NULL);
    fail_unless (sparse_text, "text pad not marked sparse");
    fail_if (sparse_audio, "audio pad marked sparse");
    gst_object_unref (audio_pad);
  }

  push_event (f.in[IMAGE], gst_event_new_eos ());
  wait_for_eos (f.h);
  fail_unless (gst_harness_try_pull (f.h) == NULL);

  gst_object_unref (text_pad);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Video that runs ahead of the audio waits for it: an output for t is
 * made only once the audio pad is settled past t. */
GST_START_TEST (test_waits_for_other_pads)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  Fuse f;
  guint k;

  fuse_setup (&f, NULL, modalities);
  for (k = 0; k < 45; k++)
    push (f.h, embedding (frame_pts (k), frame_duration (k)));
  g_usleep (100 * 1000);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "output before the audio pad said anything");

  /* [0, 1 s) settles the frames it covers, not the one at 1.0 s */
  push (f.in[1], embedding (0, GST_SECOND));
  for (k = 0; k < 30; k++)
    pull_and_check (f.h, frame_pts (k), frame_duration (k), (gint64)frame_pts (k), 0, MISSING);
  g_usleep (50 * 1000);
  fail_unless (
      gst_harness_try_pull (f.h) == NULL, "paired frame 30 before knowing the audio at 1 s");

  push (f.in[1], embedding (GST_SECOND, GST_SECOND));
  for (k = 30; k < 45; k++)
    pull_and_check (
        f.h, frame_pts (k), frame_duration (k), (gint64)frame_pts (k), AT (1000), MISSING);
  fuse_teardown (&f);
}

GST_END_TEST;

/* A subtitle gap of 10 minutes of stream time: 18000 frames are fused
 * while the next cue waits at 600 s, in bounded wall time. */
GST_START_TEST (test_sparse_gap_does_not_stall)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  const guint n_frames = 600 * 30;
  gint64 t0, elapsed;
  Fuse f;
  guint k;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding (0, GST_SECOND));
  push (f.in[1], embedding (600 * GST_SECOND, GST_SECOND));

  t0 = g_get_monotonic_time ();
  for (k = 0; k < n_frames; k++) {
    GstBuffer *out;
    gint64 text;

    push (f.h, embedding (frame_pts (k), frame_duration (k)));
    out = gst_harness_pull (f.h);
    /* cue [0, 1 s) then max-age 1 s: present up to 2.0 s */
    text = frame_pts (k) <= 2 * GST_SECOND ? 0 : MISSING;
    check_fused (out, frame_pts (k), frame_duration (k), (gint64)frame_pts (k), MISSING, text);
    gst_buffer_unref (out);
  }
  elapsed = g_get_monotonic_time () - t0;
  GST_INFO ("%u frames across a 10 min subtitle gap in %.2f s", n_frames, elapsed / 1e6);
  fail_unless (elapsed < 60 * G_USEC_PER_SEC, "took %.1f s", elapsed / 1e6);

  /* the cue at 600 s is still there for the frame at 600 s */
  push (f.h, embedding (600 * GST_SECOND, frame_duration (0)));
  pull_and_check (f.h, 600 * GST_SECOND, frame_duration (0), AT (600000), MISSING, AT (600000));

  fuse_teardown (&f);
}

GST_END_TEST;

/* The same 10 minute subtitle gap told only by GAP events (one per second,
 * as a demuxer sends them; no later cue queued): no stall, bounded wall
 * time, and the text is missing from the first GAP on. */
GST_START_TEST (test_sparse_gap_events_do_not_stall)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  gint64 t0, elapsed;
  guint s, k = 0;
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding (0, GST_SECOND));

  t0 = g_get_monotonic_time ();
  for (s = 0; s < 600; s++) {
    if (s > 0)
      push_event (f.in[1], gst_event_new_gap (s * GST_SECOND, GST_SECOND));
    for (; frame_pts (k) < (s + 1) * GST_SECOND; k++) {
      push (f.h, embedding (frame_pts (k), frame_duration (k)));
      pull_and_check (f.h, frame_pts (k), frame_duration (k), (gint64)frame_pts (k), MISSING,
          s == 0 ? 0 : MISSING);
    }
  }
  elapsed = g_get_monotonic_time () - t0;
  GST_INFO ("%u frames across 600 GAP events in %.2f s", k, elapsed / 1e6);
  fail_unless_equals_int (k, 600 * 30);
  fail_unless (elapsed < 60 * G_USEC_PER_SEC, "took %.1f s", elapsed / 1e6);

  /* a cue after the gap is used */
  push (f.in[1], embedding (600 * GST_SECOND, GST_SECOND));
  push (f.h, embedding (600 * GST_SECOND, frame_duration (0)));
  pull_and_check (f.h, 600 * GST_SECOND, frame_duration (0), AT (600000), MISSING, AT (600000));

  fuse_teardown (&f);
}

GST_END_TEST;

/* Live: a silent text pad holds an output only until its deadline
 * (t + latency on the pipeline clock, which the test clock reaches only when
 * cranked); data arriving before it is used. */
GST_START_TEST (test_live_deadline)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  GstElement *fuse = fuse_element_new ();
  Fuse f;

  g_object_set (fuse, "latency", (guint64)100 * MS, NULL);
  fuse_setup (&f, fuse, modalities);

  push (f.in[1], embedding (0, GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, MISSING, 0);

  /* the text pad says nothing about 2.5 s: wait for the deadline */
  push (f.h, embedding (2500 * MS, 33 * MS));
  g_usleep (100 * 1000);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "did not wait");
  gst_harness_crank_single_clock_wait (f.h);
  fail_unless_equals_uint64 (gst_clock_get_time (GST_ELEMENT_CLOCK (f.fuse)), 2600 * MS);
  pull_and_check (f.h, 2500 * MS, 33 * MS, AT (2500), MISSING, MISSING);

  /* a cue that arrives before the deadline is paired, without waiting
   * for the deadline as it covers the frame */
  push (f.h, embedding (3000 * MS, 33 * MS));
  g_usleep (50 * 1000);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "did not wait");
  push (f.in[1], embedding (2900 * MS, 500 * MS));
  pull_and_check (f.h, 3000 * MS, 33 * MS, AT (3000), MISSING, AT (2900));
  fail_unless_equals_uint64 (gst_clock_get_time (GST_ELEMENT_CLOCK (f.fuse)), 2600 * MS);

  fuse_teardown (&f);
}

GST_END_TEST;

/* Live: a pad that never delivers anything costs one deadline, after which
 * it is inactive and ignored. */
GST_START_TEST (test_live_inactive_pad)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  GstElement *fuse = fuse_element_new ();
  guint k;
  Fuse f;

  g_object_set (fuse, "latency", (guint64)100 * MS, NULL);
  fuse_setup (&f, fuse, modalities);

  push (f.h, embedding (0, 33 * MS));
  g_usleep (50 * 1000);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "did not wait");
  gst_harness_crank_single_clock_wait (f.h);
  pull_and_check (f.h, 0, 33 * MS, 0, MISSING, MISSING);

  /* no more deadlines to wait for: the clock stays where it is */
  for (k = 1; k < 10; k++) {
    push (f.h, embedding (k * 33 * MS, 33 * MS));
    pull_and_check (f.h, k * 33 * MS, 33 * MS, AT ((gint64)k * 33), MISSING, MISSING);
  }
  fail_unless_equals_uint64 (gst_clock_get_time (GST_ELEMENT_CLOCK (f.fuse)), 100 * MS);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Only an image pad: audio and text are missing (zeros, mask 0). */
GST_START_TEST (test_missing_modalities)
{
  static const gchar *const modalities[] = { "image", NULL };
  Fuse f;
  guint k;

  fuse_setup (&f, NULL, modalities);
  for (k = 0; k < 3; k++) {
    push (f.h, embedding (frame_pts (k), frame_duration (k)));
    pull_and_check (
        f.h, frame_pts (k), frame_duration (k), (gint64)frame_pts (k), MISSING, MISSING);
  }
  push_event (f.h, gst_event_new_eos ());
  wait_for_eos (f.h);
  fuse_teardown (&f);
}

GST_END_TEST;

/* max-age: an audio window [0, 500 ms) stays usable max-age after its end. */
GST_START_TEST (test_max_age)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  static const struct
  {
    guint64 max_age_ms;
    gint64 expected[4]; /* audio at frames 400, 800, 1000, 1200 ms */
  } cases[] = {
    { 0, { 0, MISSING, MISSING, MISSING } },
    { 300, { 0, 0, MISSING, MISSING } },
    { 500, { 0, 0, 0, MISSING } },
    { 1000, { 0, 0, 0, 0 } },
  };
  static const gint64 frames_ms[4] = { 400, 800, 1000, 1200 };
  guint c, k;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstElement *fuse = fuse_element_new ();
    Fuse f;

    g_object_set (fuse, "max-age", cases[c].max_age_ms * MS, NULL);
    fuse_setup (&f, fuse, modalities);
    push (f.in[1], embedding (0, 500 * MS));
    /* settles the audio pad up to 10 s (a GAP would end the window's
     * validity at 500 ms, see test_gap_ends_stale_text) */
    push (f.in[1], embedding (10 * GST_SECOND, 500 * MS));
    for (k = 0; k < 4; k++) {
      push (f.h, embedding (frames_ms[k] * MS, 33 * MS));
      pull_and_check (
          f.h, frames_ms[k] * MS, 33 * MS, AT (frames_ms[k]), AT (cases[c].expected[k]), MISSING);
    }
    fuse_teardown (&f);
  }
}

GST_END_TEST;

/* A GAP after a cue (textenc turns a blank cue into one) says the text is
 * absent from the gap's start: the cue is not extended by max-age (1 s by
 * default) into it; a cue after the gap is used again. */
GST_START_TEST (test_gap_ends_stale_text)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding (0, 2 * GST_SECOND));
  push_event (f.in[1], gst_event_new_gap (2 * GST_SECOND, GST_SECOND));
  push (f.in[1], embedding (3 * GST_SECOND, GST_SECOND));

  push (f.h, embedding (1500 * MS, 33 * MS));
  pull_and_check (f.h, 1500 * MS, 33 * MS, AT (1500), MISSING, 0);
  push (f.h, embedding (2500 * MS, 33 * MS));
  pull_and_check (f.h, 2500 * MS, 33 * MS, AT (2500), MISSING, MISSING);
  push (f.h, embedding (3200 * MS, 33 * MS));
  pull_and_check (f.h, 3200 * MS, 33 * MS, AT (3200), MISSING, AT (3000));
  /* the cue after the gap ends without a GAP: max-age applies again */
  push (f.in[1], embedding (10 * GST_SECOND, GST_SECOND));
  push (f.h, embedding (4500 * MS, 33 * MS));
  pull_and_check (f.h, 4500 * MS, 33 * MS, AT (4500), MISSING, AT (3000));

  fuse_teardown (&f);
}

GST_END_TEST;

/* EOS on audio: its modality is missing once its last window has ended,
 * even within max-age; EOS on the drive pad ends the stream. */
GST_START_TEST (test_eos_on_one_pad)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding (0, GST_SECOND));
  push_event (f.in[1], gst_event_new_eos ());

  push (f.h, embedding (500 * MS, 33 * MS));
  pull_and_check (f.h, 500 * MS, 33 * MS, AT (500), 0, MISSING);
  push (f.h, embedding (1200 * MS, 33 * MS));
  pull_and_check (f.h, 1200 * MS, 33 * MS, AT (1200), MISSING, MISSING);

  push_event (f.h, gst_event_new_eos ());
  wait_for_eos (f.h);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Polls for EOS on the output for at most @timeout_ms of wall time (no
 * test-clock cranking): fails if it does not come. */
static void
expect_eos_within (GstHarness *h, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + timeout_ms * 1000;
  GstEvent *event;

  while (g_get_monotonic_time () < end) {
    while ((event = gst_harness_try_pull_event (h)) != NULL) {
      gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;

      gst_event_unref (event);
      if (eos)
        return;
    }
    g_usleep (5 * 1000);
  }
  fail ("no EOS within %u ms", timeout_ms);
}

/* Live: EOS on the drive pad ends the stream at once, even while a sparse
 * pad has said nothing about the time after its last cue (a caption pad
 * waiting for a cue far away): the queued drive buffers are fused, then
 * EOS, without waiting for the text pad's data or deadline. */
GST_START_TEST (test_drive_eos_sparse_waiting)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  GstElement *fuse = fuse_element_new ();
  GstBuffer *out;
  Fuse f;

  g_object_set (fuse, "latency", (guint64)100 * MS, NULL);
  fuse_setup (&f, fuse, modalities);

  push (f.in[1], embedding (0, 500 * MS));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, MISSING, 0);
  /* the cue is over, nothing queued on the text pad: 600 ms waits for its
   * deadline */
  push (f.h, embedding (600 * MS, 33 * MS));
  g_usleep (50 * 1000);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "did not wait");
  gst_harness_crank_single_clock_wait (f.h);
  out = gst_harness_pull (f.h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 600 * MS);
  gst_buffer_unref (out);

  /* the text pad still has nothing (no data, no EOS); the drive pad's EOS
   * gives a deadline of now (the test clock still needs a crank to
   * release it, a real clock does not wait), not one at the text pad's
   * next data */
  push_event (f.h, gst_event_new_eos ());
  fail_unless (gst_test_clock_timed_wait_for_multiple_pending_ids (
                   GST_TEST_CLOCK (GST_ELEMENT_CLOCK (f.fuse)), 1, 5000, NULL),
      "waiting for the text pad, not for a deadline");
  gst_harness_crank_single_clock_wait (f.h);
  fail_unless_equals_uint64 (gst_clock_get_time (GST_ELEMENT_CLOCK (f.fuse)), 700 * MS);
  expect_eos_within (f.h, 5000);
  fail_unless (gst_harness_try_pull (f.h) == NULL);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Live, with 200 ms of upstream latency: after the drive pad's EOS the
 * stream ends at once (a clock wait for now), not one upstream latency
 * later. */
GST_START_TEST (test_drive_eos_upstream_latency)
{
  static const gchar *const modalities[] = { "image", "text", NULL };
  GstElement *fuse = fuse_element_new ();
  GstClockTime now;
  GstClockID id = NULL;
  Fuse f;

  g_object_set (fuse, "latency", (guint64)100 * MS, NULL);
  fuse_setup (&f, fuse, modalities);
  gst_harness_set_upstream_latency (f.in[0], 200 * MS);
  gst_harness_set_upstream_latency (f.in[1], 200 * MS);
  fail_unless_equals_uint64 (gst_harness_query_latency (f.h), 300 * MS);

  push (f.in[1], embedding (0, 500 * MS));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, MISSING, 0);

  /* the cue is over, nothing queued on the text pad: 600 ms waits for its
   * deadline, 600 ms + 300 ms of latency */
  push (f.h, embedding (600 * MS, 33 * MS));
  gst_harness_crank_single_clock_wait (f.h);
  pull_and_check (f.h, 600 * MS, 33 * MS, AT (600), MISSING, 0);
  fail_unless_equals_uint64 (gst_clock_get_time (GST_ELEMENT_CLOCK (f.fuse)), 900 * MS);

  now = gst_clock_get_time (GST_ELEMENT_CLOCK (f.fuse));
  push_event (f.h, gst_event_new_eos ());
  fail_unless (gst_test_clock_timed_wait_for_multiple_pending_ids (
                   GST_TEST_CLOCK (GST_ELEMENT_CLOCK (f.fuse)), 1, 5000, NULL),
      "no deadline after the drive pad's EOS");
  fail_unless (
      gst_test_clock_peek_next_pending_id (GST_TEST_CLOCK (GST_ELEMENT_CLOCK (f.fuse)), &id));
  fail_unless (gst_clock_id_get_time (id) <= now,
      "EOS waits until %" GST_TIME_FORMAT " on a clock at %" GST_TIME_FORMAT,
      GST_TIME_ARGS (gst_clock_id_get_time (id)), GST_TIME_ARGS (now));
  gst_clock_id_unref (id);
  gst_harness_crank_single_clock_wait (f.h);
  expect_eos_within (f.h, 5000);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Interval cadence: a sparse pad does not keep the stream alive.  Once the
 * audio is EOS, outputs stop at the end of its last window although the
 * last transcript (flushed by the recogniser at EOS) lasts longer; every
 * output PTS is distinct. */
GST_START_TEST (test_sparse_does_not_keep_alive)
{
  static const gchar *const modalities[] = { "audio", "text", NULL };
  static const struct
  {
    guint64 t_ms;
    gint64 audio_ms, text_ms;
  } expected[] = {
    { 0, 0, MISSING },
    { 500, 0, MISSING },
    { 1000, 1000, MISSING },
    { 1500, 1000, 1500 },
  };
  GstClockTime last = GST_CLOCK_TIME_NONE;
  Fuse f;
  guint i;

  fuse_setup (&f, NULL, modalities);
  push (f.in[0], embedding (0, GST_SECOND));
  push (f.in[0], embedding (GST_SECOND, GST_SECOND));
  push_event (f.in[0], gst_event_new_eos ());
  push (f.in[1], embedding (1500 * MS, 3500 * MS)); /* until 5 s */
  push_event (f.in[1], gst_event_new_eos ());

  for (i = 0; i < G_N_ELEMENTS (expected); i++) {
    GstBuffer *out = gst_harness_pull (f.h);
    MmFusionMeta *meta;

    fail_unless (out != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), expected[i].t_ms * MS);
    fail_if (GST_CLOCK_TIME_IS_VALID (last) && GST_BUFFER_PTS (out) <= last,
        "two outputs at %" GST_TIME_FORMAT, GST_TIME_ARGS (last));
    last = GST_BUFFER_PTS (out);
    meta = gst_buffer_get_mm_fusion_meta (out);
    fail_unless (meta != NULL);
    fail_unless_equals_uint64 (meta->pts[AUDIO], (GstClockTime)expected[i].audio_ms * MS);
    fail_unless (meta->present[TEXT] == (expected[i].text_ms != MISSING));
    gst_buffer_unref (out);
  }
  wait_for_eos (f.h);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "an output after the audio ended");
  fuse_teardown (&f);
}

GST_END_TEST;

/* GstChildProxy: pad properties set by name from a launch line (the pads
 * are requested by the links, after the properties are parsed) and through
 * the GstChildProxy API. */
GST_START_TEST (test_child_proxy)
{
  gchar *model = fixture ("tiny.safetensors");
  gchar *desc =
      g_strdup_printf ("mmfuse name=f model=\"%s\" "
                       "sink_1::max-age=123 sink_0::modality=sensor ! fakesink "
                       "fakesrc num-buffers=0 ! f.sink_0 fakesrc num-buffers=0 ! f.sink_1",
          model);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  GstElement *fuse;
  GstPad *pad;
  GObject *child;
  gint64 max_age = 0;
  gchar *modality = NULL;

  fail_unless (pipe != NULL, "%s", err ? err->message : "?");
  fail_unless (err == NULL, "%s", err ? err->message : "");
  fuse = gst_bin_get_by_name (GST_BIN (pipe), "f");
  fail_unless (GST_IS_CHILD_PROXY (fuse));
  fail_unless_equals_int (gst_child_proxy_get_children_count (GST_CHILD_PROXY (fuse)), 2);

  pad = gst_element_get_static_pad (fuse, "sink_1");
  g_object_get (pad, "max-age", &max_age, NULL);
  fail_unless_equals_int64 (max_age, 123);
  gst_object_unref (pad);
  pad = gst_element_get_static_pad (fuse, "sink_0");
  g_object_get (pad, "modality", &modality, NULL);
  fail_unless_equals_string (modality, "sensor");
  g_free (modality);
  gst_object_unref (pad);

  gst_child_proxy_set (GST_CHILD_PROXY (fuse), "sink_0::max-age", (gint64)7, NULL);
  gst_child_proxy_get (GST_CHILD_PROXY (fuse), "sink_0::max-age", &max_age, NULL);
  fail_unless_equals_int64 (max_age, 7);
  child = gst_child_proxy_get_child_by_name (GST_CHILD_PROXY (fuse), "sink_1");
  fail_unless (GST_IS_PAD (child));
  g_object_unref (child);
  fail_unless (gst_child_proxy_get_child_by_name (GST_CHILD_PROXY (fuse), "sink_9") == NULL);

  /* released pads leave the children */
  pad = gst_element_get_static_pad (fuse, "sink_1");
  gst_element_release_request_pad (fuse, pad);
  gst_object_unref (pad);
  fail_unless_equals_int (gst_child_proxy_get_children_count (GST_CHILD_PROXY (fuse)), 1);

  gst_object_unref (fuse);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (model);
}

GST_END_TEST;

/* Interval cadence (no image pad: the 500 ms default), ending when every
 * pad is EOS and their data has been fused. */
GST_START_TEST (test_interval_cadence)
{
  static const gchar *const modalities[] = { "audio", "text", NULL };
  static const struct
  {
    guint64 t_ms;
    gint64 audio_ms, text_ms;
  } expected[] = {
    { 0, 0, MISSING }, /* cue starts at 200 ms */
    { 500, 0, 200 },
    { 1000, 1000, MISSING }, /* text EOS: no max-age after its cue */
    { 1500, 1000, MISSING },
  };
  GstPad *pad;
  Fuse f;
  guint i;

  fuse_setup (&f, NULL, modalities);
  push (f.in[0], embedding (0, GST_SECOND));
  push (f.in[0], embedding (GST_SECOND, GST_SECOND));
  push_event (f.in[0], gst_event_new_eos ());
  push (f.in[1], embedding (200 * MS, 700 * MS));
  push_event (f.in[1], gst_event_new_eos ());

  for (i = 0; i < G_N_ELEMENTS (expected); i++) {
    GstBuffer *out = gst_harness_pull (f.h);
    MmFusionMeta *meta;

    fail_unless (out != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), expected[i].t_ms * MS);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 500 * MS);
    meta = gst_buffer_get_mm_fusion_meta (out);
    fail_unless (meta != NULL);
    fail_if (meta->present[IMAGE]);
    fail_unless_equals_uint64 (meta->pts[AUDIO], (GstClockTime)expected[i].audio_ms * MS);
    fail_unless (meta->present[TEXT] == (expected[i].text_ms != MISSING));
    if (expected[i].text_ms != MISSING)
      fail_unless_equals_uint64 (meta->pts[TEXT], (GstClockTime)expected[i].text_ms * MS);
    gst_buffer_unref (out);
  }
  wait_for_eos (f.h);
  fail_unless (gst_harness_try_pull (f.h) == NULL);

  pad = fuse_pad (&f, 0);
  {
    gint input;
    g_object_get (pad, "input", &input, NULL);
    fail_unless_equals_int (input, AUDIO);
  }
  gst_object_unref (pad);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Live interval cadence, nothing by the first deadline: an empty output
 * at 0 on timeout.  The first buffer to arrive afterwards makes the base
 * class set its output position back to the segment start (0); the next
 * output must still be the next interval (500 ms), never 0 again, and it
 * pairs the audio that arrived. */
GST_START_TEST (test_interval_no_repeat_after_timeout)
{
  static const gchar *const modalities[] = { "audio", "text", NULL };
  GstElement *fuse = fuse_element_new ();
  GstClockTime last = GST_CLOCK_TIME_NONE;
  GstBuffer *out;
  Fuse f;

  g_object_set (fuse, "latency", (guint64)100 * MS, "interval", (guint64)500 * MS, NULL);
  fuse_setup (&f, fuse, modalities);

  g_usleep (50 * 1000);
  fail_unless (gst_harness_try_pull (f.h) == NULL, "did not wait");
  gst_harness_crank_single_clock_wait (f.h);
  pull_and_check (f.h, 0, 500 * MS, MISSING, MISSING, MISSING);

  push (f.h, embedding (0, GST_SECOND));
  pull_and_check (f.h, 500 * MS, 500 * MS, MISSING, 0, MISSING);
  last = 500 * MS;

  /* text first: audio's EOS ends the stream (its data ends at 1 s) */
  push_event (f.in[1], gst_event_new_eos ());
  push_event (f.h, gst_event_new_eos ());
  wait_for_eos (f.h);
  /* whatever came before EOS still moves forward */
  while ((out = gst_harness_try_pull (f.h)) != NULL) {
    fail_unless (GST_BUFFER_PTS (out) > last,
        "output at %" GST_TIME_FORMAT " after one at %" GST_TIME_FORMAT,
        GST_TIME_ARGS (GST_BUFFER_PTS (out)), GST_TIME_ARGS (last));
    last = GST_BUFFER_PTS (out);
    gst_buffer_unref (out);
  }
  fuse_teardown (&f);
}

GST_END_TEST;

/* Cadence chosen by the properties: 'drive-pad' names the audio pad, or
 * 'interval' overrides the image pad. */
GST_START_TEST (test_cadence_properties)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  static const struct
  {
    const gchar *drive_pad;
    guint64 interval_ms;
    guint n_out;
    gint64 t_ms[4], dur_ms; /* outputs; image frame = the one at t */
    gint64 audio_ms[4];
  } cases[] = {
    { "sink_1", 0, 2, { 0, 1000 }, 1000, { 0, 1000 } },
    { NULL, 500, 4, { 0, 500, 1000, 1500 }, 500, { 0, 0, 1000, 1000 } },
  };
  guint c, i, k;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstElement *fuse = fuse_element_new ();
    Fuse f;

    g_object_set (
        fuse, "drive-pad", cases[c].drive_pad, "interval", cases[c].interval_ms * MS, NULL);
    fuse_setup (&f, fuse, modalities);
    /* video first: once the audio drive pad is EOS and drained, the
     * aggregator is EOS and refuses (GST_FLOW_EOS) what comes later */
    for (k = 0; k < 60; k++)
      push (f.h, embedding (frame_pts (k), frame_duration (k)));
    push_event (f.h, gst_event_new_eos ());
    push (f.in[1], embedding (0, GST_SECOND));
    push (f.in[1], embedding (GST_SECOND, GST_SECOND));
    push_event (f.in[1], gst_event_new_eos ());

    for (i = 0; i < cases[c].n_out; i++)
      pull_and_check (f.h, cases[c].t_ms[i] * MS, cases[c].dur_ms * MS, AT (cases[c].t_ms[i]),
          AT (cases[c].audio_ms[i]), MISSING);
    wait_for_eos (f.h);
    fail_unless (gst_harness_try_pull (f.h) == NULL, "case %u", c);
    fuse_teardown (&f);
  }
}

GST_END_TEST;

static void
flush_and_segment (GstHarness *h, guint32 seqnum, GstClockTime start)
{
  GstEvent *event;
  GstSegment segment;

  event = gst_event_new_flush_start ();
  gst_event_set_seqnum (event, seqnum);
  push_event (h, event);
  event = gst_event_new_flush_stop (TRUE);
  gst_event_set_seqnum (event, seqnum);
  push_event (h, event);
  gst_segment_init (&segment, GST_FORMAT_TIME);
  segment.start = segment.time = segment.position = start;
  event = gst_event_new_segment (&segment);
  gst_event_set_seqnum (event, seqnum);
  push_event (h, event);
}

/* A flushing seek to 10 s: nothing from before it is paired afterwards and
 * outputs are stamped on the new segment. */
GST_START_TEST (test_flushing_seek)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  GstEvent *seek;
  guint32 seqnum;
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding (0, 2 * GST_SECOND));
  push (f.in[1], embedding (2 * GST_SECOND, 2 * GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, 0, MISSING);
  push (f.h, embedding (500 * MS, 33 * MS));
  pull_and_check (f.h, 500 * MS, 33 * MS, AT (500), 0, MISSING);

  seek = gst_event_new_seek (1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET,
      10 * GST_SECOND, GST_SEEK_TYPE_NONE, -1);
  seqnum = gst_event_get_seqnum (seek);
  fail_unless (gst_harness_push_upstream_event (f.h, seek));
  flush_and_segment (f.in[0], seqnum, 10 * GST_SECOND);
  flush_and_segment (f.in[1], seqnum, 10 * GST_SECOND);

  /* running time 0 again: the old window [0, 2 s) must not come back */
  push_event (f.in[1], gst_event_new_gap (10 * GST_SECOND, GST_SECOND));
  push (f.h, embedding (10 * GST_SECOND, 33 * MS));
  pull_and_check (f.h, 10 * GST_SECOND, 33 * MS, AT (10000), MISSING, MISSING);

  push (f.in[1], embedding (11 * GST_SECOND, GST_SECOND));
  push (f.in[1], embedding (12 * GST_SECOND, GST_SECOND));
  push (f.h, embedding (11200 * MS, 33 * MS));
  pull_and_check (f.h, 11200 * MS, 33 * MS, AT (11200), AT (11000), MISSING);

  fuse_teardown (&f);
}

GST_END_TEST;

/* A flush from upstream on the drive pad only (no seek through mmfuse):
 * the output clock restarts with it, so frames of the new segment earlier
 * than the last output are fused, not skipped as "back in time". */
GST_START_TEST (test_drive_pad_flush)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding (0, 10 * GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, 0, MISSING);
  push (f.h, embedding (1000 * MS, 33 * MS));
  pull_and_check (f.h, 1000 * MS, 33 * MS, AT (1000), 0, MISSING);

  flush_and_segment (f.h, gst_util_seqnum_next (), 0);
  push (f.h, embedding (200 * MS, 33 * MS));
  pull_and_check (f.h, 200 * MS, 33 * MS, AT (200), 0, MISSING);
  push (f.h, embedding (400 * MS, 33 * MS));
  pull_and_check (f.h, 400 * MS, 33 * MS, AT (400), 0, MISSING);

  fuse_teardown (&f);
}

GST_END_TEST;

/* Interval cadence: upstream flushes each pad separately (no seek through
 * mmfuse), so the flushes reach the aggregator in different aggregate()
 * calls.  Once every pad has flushed, the output clock restarts: the new
 * segment's outputs from 0 are fused, not skipped as "back in time". */
GST_START_TEST (test_interval_flush_per_pad)
{
  static const gchar *const modalities[] = { "audio", "text", NULL };
  GstBuffer *out;
  Fuse f;
  guint i;

  fuse_setup (&f, NULL, modalities);
  for (i = 0; i < 3; i++)
    push (f.in[0], embedding (i * GST_SECOND, GST_SECOND));
  push (f.in[1], embedding (0, 3 * GST_SECOND));
  for (i = 0; i < 6; i++)
    pull_and_check (f.h, i * 500 * MS, 500 * MS, MISSING, AT ((gint)(i / 2 * 1000)), 0);

  /* the audio source is flushed and restarts at 0; the text source is not
   * yet: data on both pads, so the aggregator runs with the audio flush
   * alone (whatever it outputs meanwhile is drained) */
  flush_and_segment (f.in[0], gst_util_seqnum_next (), 0);
  push (f.in[0], embedding (0, GST_SECOND));
  push (f.in[1], embedding (3 * GST_SECOND, GST_SECOND));
  g_usleep (300 * 1000);
  while ((out = gst_harness_try_pull (f.h)))
    gst_buffer_unref (out);
  /* then the text source: every pad has flushed, the output clock restarts */
  flush_and_segment (f.in[1], gst_util_seqnum_next (), 0);
  push (f.in[1], embedding (0, 2 * GST_SECOND));
  push (f.in[0], embedding (GST_SECOND, GST_SECOND));
  push_event (f.in[0], gst_event_new_eos ());
  push_event (f.in[1], gst_event_new_eos ());
  for (i = 0; i < 4; i++) {
    out = gst_harness_pull (f.h);
    fail_unless (out != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), i * 500 * MS);
    gst_buffer_unref (out);
  }
  fuse_teardown (&f);
}

GST_END_TEST;

/* The opposite case: two single-pad flushes far apart, with outputs in
 * between and the running time continuing (nothing goes back): they are
 * separate events, and the output clock must not restart (which would
 * repeat 0..7.5 s). */
GST_START_TEST (test_interval_flushes_apart)
{
  static const gchar *const modalities[] = { "audio", "text", NULL };
  GstClockTime last = 0;
  GstBuffer *out;
  gint n = 0;
  Fuse f;
  guint i;

  fuse_setup (&f, NULL, modalities);
  for (i = 0; i < 4; i++)
    push (f.in[0], embedding (i * GST_SECOND, GST_SECOND));
  push (f.in[1], embedding (0, 4 * GST_SECOND));
  for (i = 0; i < 8; i++)
    pull_and_check (f.h, i * 500 * MS, 500 * MS, MISSING, AT ((gint)(i / 2 * 1000)), 0);

  flush_and_segment (f.in[0], gst_util_seqnum_next (), 0); /* audio alone */
  for (i = 4; i < 8; i++)
    push (f.in[0], embedding (i * GST_SECOND, GST_SECOND));
  push (f.in[1], embedding (4 * GST_SECOND, 4 * GST_SECOND));
  for (i = 8; i < 16; i++)
    pull_and_check (f.h, i * 500 * MS, 500 * MS, MISSING, AT ((gint)(i / 2 * 1000)), AT (4000));

  flush_and_segment (f.in[1], gst_util_seqnum_next (), 0); /* text alone, later */
  for (i = 8; i < 12; i++)
    push (f.in[0], embedding (i * GST_SECOND, GST_SECOND));
  push (f.in[1], embedding (8 * GST_SECOND, 4 * GST_SECOND));
  push_event (f.in[0], gst_event_new_eos ());
  push_event (f.in[1], gst_event_new_eos ());
  wait_for_eos (f.h);
  while ((out = gst_harness_try_pull (f.h))) {
    fail_unless (GST_BUFFER_PTS (out) >= 8 * GST_SECOND && GST_BUFFER_PTS (out) >= last,
        "output at %" GST_TIME_FORMAT " after %" GST_TIME_FORMAT,
        GST_TIME_ARGS (GST_BUFFER_PTS (out)), GST_TIME_ARGS (last));
    last = GST_BUFFER_PTS (out);
    n++;
    gst_buffer_unref (out);
  }
  fail_unless_equals_int (n, 8); /* 8 .. 11.5 s */
  fuse_teardown (&f);
}

GST_END_TEST;

/* Releasing the text pad while playing: outputs continue with text missing;
 * a new pad takes the freed input. */
GST_START_TEST (test_pad_release_while_playing)
{
  static const gchar *const modalities[] = { "image", "audio", "text", NULL };
  GstHarness *h3;
  GstPad *pad;
  gint input;
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[AUDIO], embedding (0, 10 * GST_SECOND));
  push (f.in[AUDIO], embedding (10 * GST_SECOND, 10 * GST_SECOND));
  push (f.in[TEXT], embedding (0, 3 * GST_SECOND));
  push (f.in[TEXT], embedding (5 * GST_SECOND, GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, 0, 0);
  push (f.h, embedding (500 * MS, 33 * MS));
  pull_and_check (f.h, 500 * MS, 33 * MS, AT (500), 0, 0);

  gst_harness_teardown (f.in[TEXT]);
  f.in[TEXT] = NULL;
  pad = gst_element_get_static_pad (f.fuse, "sink_2");
  fail_unless (pad == NULL, "sink_2 not released");

  push (f.h, embedding (1000 * MS, 33 * MS));
  pull_and_check (f.h, 1000 * MS, 33 * MS, AT (1000), 0, MISSING);

  h3 = gst_harness_new_with_element (f.fuse, "sink_3", NULL);
  {
    gchar *caps = caps_string ("text", DIM);
    gst_harness_set_src_caps_str (h3, caps);
    g_free (caps);
  }
  push (h3, embedding (1400 * MS, 500 * MS));
  push (h3, embedding (3000 * MS, 500 * MS));
  push (f.h, embedding (1500 * MS, 33 * MS));
  pull_and_check (f.h, 1500 * MS, 33 * MS, AT (1500), 0, AT (1400));

  pad = gst_element_get_static_pad (f.fuse, "sink_3");
  g_object_get (pad, "input", &input, NULL);
  fail_unless_equals_int (input, TEXT);
  gst_object_unref (pad);

  gst_harness_teardown (h3);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Caps the model cannot take: not-negotiated, with a message naming the
 * pad, the modality and what the model expects. */
GST_START_TEST (test_mismatched_caps)
{
  static const struct
  {
    const gchar *modality;
    gint dim;
    const gchar *needles[4];
  } cases[] = {
    { "image", 5, { "sink_0", "image", "dimension 5", "dimension 8" } },
    { "smell", 8, { "sink_0", "smell", "not an input", "image (dim 8)" } },
  };
  guint c, i;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstElement *fuse = fuse_element_new ();
    GstBus *bus = gst_bus_new ();
    GstHarness *h;
    GstMessage *msg;
    GError *err = NULL;
    gchar *caps, *debug = NULL;
    GstFlowReturn flow = GST_FLOW_OK;
    gint tries;

    gst_element_set_bus (fuse, bus);
    h = gst_harness_new_with_element (fuse, "sink_0", "src");
    gst_object_unref (fuse);
    caps = caps_string (cases[c].modality, cases[c].dim);
    gst_harness_set_src_caps_str (h, caps);
    g_free (caps);

    for (tries = 0; tries < 200 && flow == GST_FLOW_OK; tries++) {
      flow = gst_harness_push (h, embedding_dim (tries * 33 * MS, 33 * MS, cases[c].dim));
      if (flow == GST_FLOW_OK)
        g_usleep (10 * 1000);
    }
    fail_unless_equals_int (flow, GST_FLOW_NOT_NEGOTIATED);
    fail_unless (gst_harness_try_pull (h) == NULL);

    msg = gst_bus_timed_pop_filtered (bus, 5 * GST_SECOND, GST_MESSAGE_ERROR);
    fail_unless (msg != NULL, "no error message");
    gst_message_parse_error (msg, &err, &debug);
    GST_INFO ("error: %s", err->message);
    fail_unless (
        g_error_matches (err, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION), "%s", err->message);
    for (i = 0; i < G_N_ELEMENTS (cases[c].needles); i++)
      fail_unless (strstr (err->message, cases[c].needles[i]) != NULL, "'%s' not in '%s'",
          cases[c].needles[i], err->message);
    g_clear_error (&err);
    g_free (debug);
    gst_message_unref (msg);

    gst_harness_teardown (h);
    gst_bus_set_flushing (bus, TRUE);
    gst_object_unref (bus);
  }
}

GST_END_TEST;

/* The pad's 'modality' property overrides the caps (an application feeding
 * "sensor" embeddings into the model's audio input), and its caps query
 * offers what the model accepts. */
GST_START_TEST (test_modality_override)
{
  static const gchar *const modalities[] = { "image", NULL };
  GstHarness *h1;
  GstPad *pad;
  GstCaps *caps, *expected;
  gint input;
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  h1 = gst_harness_new_with_element (f.fuse, "sink_1", NULL);
  pad = fuse_pad (&f, 1);

  caps = gst_pad_query_caps (pad, NULL);
  expected =
      gst_caps_from_string ("application/x-mm-embedding, "
                            "modality=image, dim=8; application/x-mm-embedding, modality=audio, "
                            "dim=8; application/x-mm-embedding, modality=text, dim=8");
  fail_unless (gst_caps_is_equal (caps, expected), "%" GST_PTR_FORMAT, caps);
  gst_caps_unref (caps);
  gst_caps_unref (expected);

  g_object_set (pad, "modality", "audio", NULL);
  caps = gst_pad_query_caps (pad, NULL);
  expected = gst_caps_from_string ("application/x-mm-embedding, dim=8");
  fail_unless (gst_caps_is_equal (caps, expected), "%" GST_PTR_FORMAT, caps);
  gst_caps_unref (caps);
  gst_caps_unref (expected);

  gst_harness_set_src_caps_str (h1, "application/x-mm-embedding, modality=sensor, dim=8");
  push (h1, embedding (0, GST_SECOND));
  push (h1, embedding (GST_SECOND, GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, 0, MISSING);
  g_object_get (pad, "input", &input, NULL);
  fail_unless_equals_int (input, AUDIO);

  gst_object_unref (pad);
  gst_harness_teardown (h1);
  fuse_teardown (&f);
}

GST_END_TEST;

/* A buffer that is not dim floats is a STREAM/FORMAT error naming the pad. */
GST_START_TEST (test_wrong_buffer_size)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  GstMessage *msg;
  GError *err = NULL;
  GstFlowReturn flow = GST_FLOW_OK;
  gint tries;
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  push (f.in[1], embedding_dim (0, GST_SECOND, 5));
  for (tries = 0; tries < 200 && flow == GST_FLOW_OK; tries++) {
    flow = gst_harness_push (f.h, embedding (tries * 33 * MS, 33 * MS));
    if (flow == GST_FLOW_OK)
      g_usleep (10 * 1000);
  }
  fail_unless_equals_int (flow, GST_FLOW_ERROR);
  msg = gst_bus_timed_pop_filtered (f.bus, 5 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (
      g_error_matches (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT), "%s", err->message);
  fail_unless (strstr (err->message, "sink_1") != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (msg);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Caps naming another model, with the right dimension: accepted with a
 * warning naming both models; caps naming mmfuse's model: no warning. */
GST_START_TEST (test_other_model_warning)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  Fuse f;

  fuse_setup (&f, NULL, modalities);
  gst_harness_set_src_caps_str (f.in[1],
      "application/x-mm-embedding, "
      "modality=audio, dim=8, model=other");
  push (f.in[1], embedding (0, 2 * GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, 0, MISSING);
  assert_bus_message (f.bus, GST_MESSAGE_WARNING, "sink_1", "\"other\"", "\"tiny\"", NULL);
  fail_unless (gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING) == NULL);
  fuse_teardown (&f);
}

GST_END_TEST;

/* drive-pad naming no sink pad: a warning naming the pads (once), and the
 * default cadence (the first image pad drives) meanwhile. */
GST_START_TEST (test_drive_pad_unknown)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  GstElement *fuse = fuse_element_new ();
  GstMessage *msg;
  Fuse f;

  g_object_set (fuse, "drive-pad", "sink_7", NULL);
  fuse_setup (&f, fuse, modalities);
  push (f.in[1], embedding (0, 2 * GST_SECOND));
  push (f.h, embedding (0, 33 * MS));
  pull_and_check (f.h, 0, 33 * MS, 0, 0, MISSING);
  push (f.h, embedding (500 * MS, 33 * MS));
  pull_and_check (f.h, 500 * MS, 33 * MS, AT (500), 0, MISSING);
  assert_bus_message (f.bus, GST_MESSAGE_WARNING, "\"sink_7\"", "sink_0, sink_1", NULL);
  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING);
  fail_unless (msg == NULL, "warned twice");

  /* a name that exists drives, without a warning; its queued window
   * [0, 2 s) is older than the last output and skipped: outputs never go
   * back in time */
  g_object_set (f.fuse, "drive-pad", "sink_1", NULL);
  push (f.in[1], embedding (2 * GST_SECOND, GST_SECOND));
  push (f.h, embedding (2 * GST_SECOND, 33 * MS));
  pull_and_check (f.h, 2 * GST_SECOND, GST_SECOND, AT (2000), AT (2000), MISSING);
  fail_unless (gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING) == NULL);
  fuse_teardown (&f);
}

GST_END_TEST;

/* A drive buffer that starts inside the last output (drive-pad changed;
 * or, live, the drive pad's first buffer came after the first deadline and
 * the interval cadence decided meanwhile): its output starts where the last
 * one ended, so no time is decided twice; one that ends there too is
 * dropped.  Its own PTS stays in the metadata. */
GST_START_TEST (test_drive_overlap_clipped)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  Fuse f;

  fuse_setup (&f, fuse_element_new (), modalities);
  push (f.in[1], embedding (0, GST_SECOND));
  push (f.h, embedding (0, 400 * MS));
  pull_and_check (f.h, 0, 400 * MS, 0, 0, MISSING);

  /* the audio window [0, 1 s) is still queued (it covered the output);
   * driving, it gives [400, 1000) ms */
  g_object_set (f.fuse, "drive-pad", "sink_1", NULL);
  push (f.h, embedding (400 * MS, 800 * MS));
  pull_and_check (f.h, 400 * MS, 600 * MS, AT (400), 0, MISSING);
  /* [500, 1000) ms: decided already, dropped; the next one is on time */
  push (f.in[1], embedding (500 * MS, 500 * MS));
  push (f.in[1], embedding (1000 * MS, 500 * MS));
  pull_and_check (f.h, 1000 * MS, 500 * MS, AT (400), AT (1000), MISSING);
  fuse_teardown (&f);
}

GST_END_TEST;

/* Interval cadence ends at the stop of a seek segment (last output clipped
 * to it); reverse playback is refused. */
GST_START_TEST (test_segment_stop_and_rate)
{
  static const gchar *const modalities[] = { "audio", "text", NULL };
  GstElement *fuse = fuse_element_new ();
  GstSegment segment;
  GstEvent *seek, *event;
  guint32 seqnum;
  guint i;
  Fuse f;

  g_object_set (fuse, "interval", (guint64)500 * MS, NULL);
  fuse_setup (&f, fuse, modalities);

  fail_if (gst_harness_push_upstream_event (f.h,
      gst_event_new_seek (-1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET, 0,
          GST_SEEK_TYPE_SET, 2 * GST_SECOND)));

  seek = gst_event_new_seek (1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET, 0,
      GST_SEEK_TYPE_SET, 1200 * MS);
  seqnum = gst_event_get_seqnum (seek);
  fail_unless (gst_harness_push_upstream_event (f.h, seek));
  for (i = 0; i < 2; i++) {
    flush_and_segment (f.in[i], seqnum, 0);
    gst_segment_init (&segment, GST_FORMAT_TIME);
    segment.stop = 1200 * MS;
    event = gst_event_new_segment (&segment);
    gst_event_set_seqnum (event, seqnum);
    push_event (f.in[i], event);
  }
  for (i = 0; i < 3; i++)
    push (f.in[0], embedding (i * GST_SECOND, GST_SECOND));
  push_event (f.in[0], gst_event_new_eos ());
  push_event (f.in[1], gst_event_new_eos ());

  pull_and_check (f.h, 0, 500 * MS, MISSING, 0, MISSING);
  pull_and_check (f.h, 500 * MS, 500 * MS, MISSING, 0, MISSING);
  pull_and_check (f.h, 1000 * MS, 200 * MS, MISSING, AT (1000), MISSING);
  wait_for_eos (f.h);
  fail_unless (gst_harness_try_pull (f.h) == NULL);
  fuse_teardown (&f);
}

GST_END_TEST;

/* A missing, corrupt or absent model fails to reach PAUSED with the libmm
 * error on the bus. */
GST_START_TEST (test_bad_model)
{
  check_model_errors ("mmfuse", "fusion");
}

GST_END_TEST;

/* Latency query: the largest upstream latency plus the latency property. */
GST_START_TEST (test_latency_query)
{
  static const gchar *const modalities[] = { "image", "audio", NULL };
  GstElement *fuse = fuse_element_new ();
  Fuse f;

  g_object_set (fuse, "latency", (guint64)50 * MS, NULL);
  fuse_setup (&f, fuse, modalities);
  gst_harness_set_upstream_latency (f.in[1], 200 * MS);
  gst_harness_set_upstream_latency (f.in[0], 20 * MS);
  fail_unless_equals_uint64 (gst_harness_query_latency (f.h), 250 * MS);
  fuse_teardown (&f);
}

GST_END_TEST;

/* ---- whole pipelines (gst_parse_launch) ---- */

static const gchar srt_text[] = "1\n00:00:00,500 --> 00:00:01,200\nhello dog\n\n"
                                "2\n00:00:03,300 --> 00:00:03,900\na cat\n\n";

typedef struct
{
  gint decisions;             /* buffers at the sink (atomic) */
  gint fused;                 /* fused buffers (atomic) */
  gint with_text, with_audio; /* fused buffers with text / audio present */
  GstClockTime last_pts;      /* last fused PTS, must increase */
  gboolean pts_ok;
} Counts;

static void
on_handoff (GstElement *sink, GstBuffer *buf, GstPad *pad, Counts *c)
{
  g_atomic_int_inc (&c->decisions);
}

static GstPadProbeReturn
on_fused (GstPad *pad, GstPadProbeInfo *info, Counts *c)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  MmFusionMeta *meta = gst_buffer_get_mm_fusion_meta (buf);

  g_atomic_int_inc (&c->fused);
  if (meta && meta->present[TEXT])
    g_atomic_int_inc (&c->with_text);
  if (meta && meta->present[AUDIO])
    g_atomic_int_inc (&c->with_audio);
  if (GST_CLOCK_TIME_IS_VALID (c->last_pts) && GST_BUFFER_PTS (buf) <= c->last_pts)
    c->pts_ok = FALSE;
  c->last_pts = GST_BUFFER_PTS (buf);
  return GST_PAD_PROBE_OK;
}

/* Parses @desc (with MODEL and SRT substituted), hooks the counters on
 * "f" (mmfuse) and "sink". */
static GstElement *
pipeline_new (const gchar *desc, const gchar *srt, Counts *c)
{
  gchar *model = fixture ("tiny.safetensors");
  gchar *d1, *d2;
  GstElement *pipeline, *f, *sink;
  GError *err = NULL;
  GstPad *src;
  gchar **parts;

  parts = g_strsplit (desc, "MODEL", -1);
  d1 = g_strjoinv (model, parts);
  g_strfreev (parts);
  parts = g_strsplit (d1, "SRT", -1);
  d2 = g_strjoinv (srt ? srt : "", parts);
  g_strfreev (parts);
  pipeline = gst_parse_launch (d2, &err);
  fail_unless (pipeline != NULL, "%s: %s", d2, err ? err->message : "?");
  g_clear_error (&err);
  g_free (d1);
  g_free (d2);
  g_free (model);

  memset (c, 0, sizeof (*c));
  c->last_pts = GST_CLOCK_TIME_NONE;
  c->pts_ok = TRUE;
  f = gst_bin_get_by_name (GST_BIN (pipeline), "f");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  fail_unless (f && sink);
  src = gst_element_get_static_pad (f, "src");
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, (GstPadProbeCallback)on_fused, c, NULL);
  gst_object_unref (src);
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), c);
  gst_object_unref (f);
  gst_object_unref (sink);
  return pipeline;
}

/* Waits for EOS (TRUE) or an error / @timeout_s (fails). */
static void
run_to_eos (GstElement *pipeline, guint timeout_s)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  msg =
      gst_bus_timed_pop_filtered (bus, timeout_s * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no EOS within %u s (stalled)", timeout_s);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("error from %s: %s (%s)", GST_OBJECT_NAME (msg->src), err->message, dbg);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
}

static gchar *
write_srt (void)
{
  gchar *path = NULL;
  gint fd = g_file_open_tmp ("mmfuse-XXXXXX.srt", &path, NULL);

  fail_unless (fd >= 0);
  close (fd);
  fail_unless (g_file_set_contents (path, srt_text, -1, NULL));
  return path;
}

#define VIDEO_3S                                                                                   \
  "videotestsrc num-buffers=90 ! "                                                                 \
  "video/x-raw,framerate=30/1,width=64,height=48 ! videoconvert ! "                                \
  "imageenc model=MODEL ! f.sink_0 "
#define AUDIO_3S                                                                                   \
  "audiotestsrc num-buffers=100 samplesperbuffer=480 ! "                                           \
  "audio/x-raw,rate=16000 ! audioconvert ! audioresample ! "                                       \
  "audioenc model=MODEL ! f.sink_1 "
#define TEXT_SRT                                                                                   \
  "filesrc location=SRT ! subparse ! textenc model=MODEL ! "                                       \
  "f.sink_2 "
#define FUSE_DECODE                                                                                \
  "mmfuse name=f model=MODEL ! mmdecode model=MODEL ! "                                            \
  "fakesink name=sink "

/* Files: video, audio and SRT subtitles through subparse reach EOS with
 * one decision per video frame. */
GST_START_TEST (test_pipeline_file)
{
  gchar *srt = write_srt ();
  GstElement *pipeline;
  Counts c;

  pipeline = pipeline_new (VIDEO_3S AUDIO_3S TEXT_SRT FUSE_DECODE, srt, &c);
  run_to_eos (pipeline, 60);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  GST_INFO (
      "decisions %d fused %d text %d audio %d", c.decisions, c.fused, c.with_text, c.with_audio);
  fail_unless_equals_int (c.fused, 90);
  fail_unless_equals_int (c.decisions, 90);
  /* cue 1 [0.5, 1.2] + 1 s max-age covers frames 15..66 */
  fail_unless (c.with_text >= 50 && c.with_text <= 60, "%d", c.with_text);
  fail_unless (c.with_audio > 60, "%d", c.with_audio);
  fail_unless (c.pts_ok, "fused PTS not increasing");
  gst_object_unref (pipeline);
  g_unlink (srt);
  g_free (srt);
}

GST_END_TEST;

/* Live: live video and audio plus subtitles; outputs flow, the reported
 * latency is bounded. */
GST_START_TEST (test_pipeline_live)
{
  gchar *srt = write_srt ();
  GstElement *pipeline;
  GstQuery *q;
  gboolean live;
  GstClockTime min, max;
  Counts c;
  gint n0, n1;

  pipeline =
      pipeline_new ("videotestsrc is-live=true ! "
                    "video/x-raw,framerate=30/1,width=64,height=48 ! videoconvert ! "
                    "imageenc model=MODEL ! f.sink_0 "
                    "audiotestsrc is-live=true samplesperbuffer=480 ! audio/x-raw,rate=16000 ! "
                    "audioconvert ! audioresample ! audioenc model=MODEL ! f.sink_1 " TEXT_SRT
                    "mmfuse name=f model=MODEL latency=200000000 ! "
                    "mmdecode model=MODEL ! fakesink name=sink sync=true",
          srt, &c);
  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  g_usleep (2500 * 1000);
  n0 = g_atomic_int_get (&c.decisions);
  g_usleep (1000 * 1000);
  n1 = g_atomic_int_get (&c.decisions);

  q = gst_query_new_latency ();
  fail_unless (gst_element_query (pipeline, q));
  gst_query_parse_latency (q, &live, &min, &max);
  gst_query_unref (q);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  GST_INFO (
      "live %d latency %" GST_TIME_FORMAT " decisions %d -> %d", live, GST_TIME_ARGS (min), n0, n1);
  fail_unless (live);
  fail_unless (min <= 2 * GST_SECOND, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS (min));
  fail_unless (n0 > 10, "only %d decisions in 2.5 s", n0);
  /* ~30 per second once running */
  fail_unless (n1 - n0 >= 15 && n1 - n0 <= 45, "%d decisions in 1 s", n1 - n0);
  fail_unless (c.pts_ok, "fused PTS not increasing");
  gst_object_unref (pipeline);
  g_unlink (srt);
  g_free (srt);
}

GST_END_TEST;

static gchar *
write_mkv (const gchar *srt)
{
  gchar *path = NULL, *desc;
  gint fd = g_file_open_tmp ("mmfuse-XXXXXX.mkv", &path, NULL);
  GstElement *mux;
  GError *err = NULL;
  GstBus *bus;
  GstMessage *msg;

  fail_unless (fd >= 0);
  close (fd);
  desc = g_strdup_printf ("videotestsrc num-buffers=150 ! "
                          "video/x-raw,width=64,height=48,framerate=30/1,format=I420 ! queue ! "
                          "matroskamux name=m ! filesink location=%s "
                          "audiotestsrc num-buffers=50 samplesperbuffer=1600 ! "
                          "audio/x-raw,format=S16LE,rate=16000,channels=1 ! queue ! m.audio_0 "
                          "filesrc location=%s ! subparse ! text/x-raw,format=utf8 ! queue ! "
                          "m.subtitle_0",
      path, srt);
  mux = gst_parse_launch (desc, &err);
  fail_unless (mux != NULL, "%s", err ? err->message : "?");
  g_free (desc);
  gst_element_set_state (mux, GST_STATE_PLAYING);
  bus = gst_element_get_bus (mux);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (mux, GST_STATE_NULL);
  gst_object_unref (mux);
  return path;
}

/* One demuxer thread feeds all three branches, and mmfuse needs data on
 * every pad: each queue must hold more than the audio encoder's window plus
 * hop (1.5 s here), which the 1 s default does not after a seek. */
#define Q3S "queue max-size-time=3000000000 max-size-bytes=0 max-size-buffers=0"
#define MKV_PIPELINE                                                                               \
  "filesrc location=SRT ! matroskademux name=d "                                                   \
  "d.video_0 ! " Q3S " ! videoconvert ! imageenc model=MODEL ! f.sink_0 "                          \
  "d.audio_0 ! " Q3S " ! audioconvert ! audioresample ! "                                          \
  "audioenc model=MODEL ! f.sink_1 "                                                               \
  "d.subtitle_0 ! " Q3S " ! textenc model=MODEL ! f.sink_2 " FUSE_DECODE

/* DESIGN.md's launch line: default queues (1 s), one demuxer thread for
 * all three branches.  mmfuse must let its pads queue the audio encoder's
 * lookahead itself, or the image branch fills its queue while mmfuse waits
 * for the first audio window, and the pipeline stalls. */
#define MKV_PIPELINE_DEFAULT_QUEUES                                                                \
  "filesrc location=SRT ! matroskademux name=d "                                                   \
  "d.video_0 ! queue ! videoconvert ! imageenc model=MODEL ! f.sink_0 "                            \
  "d.audio_0 ! queue ! audioconvert ! audioresample ! audioenc model=MODEL ! f.sink_1 "            \
  "d.subtitle_0 ! queue ! textenc model=MODEL ! f.sink_2 " FUSE_DECODE

GST_START_TEST (test_pipeline_mkv_default_queues)
{
  gchar *srt = write_srt ();
  gchar *mkv = write_mkv (srt);
  GstElement *pipeline, *fuse;
  GstClockTime latency;
  Counts c;

  pipeline = pipeline_new (MKV_PIPELINE_DEFAULT_QUEUES, mkv, &c);
  run_to_eos (pipeline, 30);
  fail_unless_equals_int (c.decisions, 150);
  fail_unless (c.pts_ok, "fused PTS not increasing");
  /* the lookahead mmfuse set for this run is undone when it stops */
  fuse = gst_bin_get_by_name (GST_BIN (pipeline), "f");
  g_object_get (fuse, "latency", &latency, NULL);
  fail_unless (latency > 0);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  g_object_get (fuse, "latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, 0);
  /* an application's own setting, even 0, is kept */
  g_object_set (fuse, "latency", (GstClockTime)0, NULL);
  fail_if (gst_element_set_state (pipeline, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
  gst_element_get_state (pipeline, NULL, NULL, 10 * GST_SECOND);
  g_object_get (fuse, "latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, 0);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (fuse);
  gst_object_unref (pipeline);
  g_unlink (mkv);
  g_unlink (srt);
  g_free (mkv);
  g_free (srt);
}

GST_END_TEST;

/* What the upstream of a pad answers to the latency query (a probe on the
 * harness's src pad stands in for a branch). */
typedef struct
{
  gboolean live;
  GstClockTime min;
} LatencyAnswer;

static GstPadProbeReturn
answer_latency (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);
  LatencyAnswer *a = user_data;

  if (GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_PAD_PROBE_OK;
  gst_query_set_latency (query, a->live, a->min, GST_CLOCK_TIME_NONE);
  return GST_PAD_PROBE_HANDLED;
}

static gboolean
wait_for_latency (GstElement *fuse, GstClockTime want)
{
  GstClockTime latency = GST_CLOCK_TIME_NONE;
  gint i;

  for (i = 0; i < 200; i++) {
    g_object_get (fuse, "latency", &latency, NULL);
    if (latency == want)
      return TRUE;
    g_usleep (10 * 1000);
  }
  GST_ERROR ("latency %" GST_TIME_FORMAT ", want %" GST_TIME_FORMAT, GST_TIME_ARGS (latency),
      GST_TIME_ARGS (want));
  return FALSE;
}

/* The non-live lookahead: a non-live branch answering 2 s lets every pad
 * queue 3 s; a live branch that gets its caps later undoes it (live
 * deadlines apply, and the lookahead would only add 3 s of latency). */
GST_START_TEST (test_lookahead_live_branch_later)
{
  LatencyAnswer audio = { FALSE, 2 * GST_SECOND }, text = { FALSE, 0 };
  GstElement *fuse = gst_element_factory_make ("mmfuse", NULL);
  gchar *model = fixture ("tiny.safetensors"), *caps;
  GstHarness *h0, *h1;

  g_object_set (fuse, "model", model, NULL); /* latency left to mmfuse */
  h0 = gst_harness_new_with_element (fuse, "sink_0", "src");
  h1 = gst_harness_new_with_element (fuse, "sink_1", NULL);
  gst_pad_add_probe (h0->srcpad, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM, answer_latency, &audio, NULL);
  gst_pad_add_probe (h1->srcpad, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM, answer_latency, &text, NULL);

  caps = caps_string ("audio", DIM);
  gst_harness_set_src_caps_str (h0, caps);
  g_free (caps);
  fail_unless (wait_for_latency (fuse, 3 * GST_SECOND));

  text.live = TRUE;
  caps = caps_string ("text", DIM);
  gst_harness_set_src_caps_str (h1, caps);
  g_free (caps);
  fail_unless (wait_for_latency (fuse, 0));

  gst_harness_teardown (h1);
  gst_harness_teardown (h0);
  gst_object_unref (fuse);
  g_free (model);
}

GST_END_TEST;

/* MKV with a subtitle track through matroskademux (one streaming thread
 * for all three, pango-markup subtitles): no stall, one decision per frame. */
GST_START_TEST (test_pipeline_mkv)
{
  gchar *srt = write_srt ();
  gchar *mkv = write_mkv (srt);
  GstElement *pipeline;
  Counts c;

  pipeline = pipeline_new (MKV_PIPELINE, mkv, &c);
  run_to_eos (pipeline, 60);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  GST_INFO (
      "decisions %d fused %d text %d audio %d", c.decisions, c.fused, c.with_text, c.with_audio);
  fail_unless_equals_int (c.fused, 150);
  fail_unless_equals_int (c.decisions, 150);
  /* the cues cover frames 15..35 and 99..116 (39 frames); matroskademux's
   * GAP events on the subtitle track may end the max-age hold after them */
  fail_unless (c.with_text >= 39 && c.with_text <= 39 + 2 * 30, "%d", c.with_text);
  fail_unless (c.with_audio > 100, "%d", c.with_audio);
  fail_unless (c.pts_ok, "fused PTS not increasing");
  gst_object_unref (pipeline);
  g_unlink (mkv);
  g_unlink (srt);
  g_free (mkv);
  g_free (srt);
}

GST_END_TEST;

/* 200 flushing seeks on the MKV pipeline: each completes (no deadlock),
 * then the stream still plays to EOS. */
GST_START_TEST (test_pipeline_repeated_seeks)
{
  gchar *srt = write_srt ();
  gchar *mkv = write_mkv (srt);
  GstElement *pipeline;
  GRand *rand = g_rand_new_with_seed (42);
  Counts c;
  guint i;

  pipeline = pipeline_new (MKV_PIPELINE, mkv, &c);
  fail_if (gst_element_set_state (pipeline, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
  fail_unless_equals_int (
      gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  for (i = 0; i < 200; i++) {
    gint64 pos = g_rand_int_range (rand, 0, 4000) * GST_MSECOND;

    fail_unless (gst_element_seek_simple (
                     pipeline, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE, pos),
        "seek %u", i);
    fail_unless_equals_int (
        gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
    if (i % 20 == 19) {
      /* let it play a little between some of them */
      gst_element_set_state (pipeline, GST_STATE_PLAYING);
      g_usleep (5 * 1000);
      gst_element_set_state (pipeline, GST_STATE_PAUSED);
      fail_unless_equals_int (
          gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
    }
  }
  /* the short bursts of (unsynchronised) playing may have reached EOS */
  {
    GstBus *bus = gst_element_get_bus (pipeline);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
    gst_object_unref (bus);
  }
  fail_unless (gst_element_seek_simple (
      pipeline, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE, 4 * GST_SECOND));
  fail_unless_equals_int (
      gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  g_atomic_int_set (&c.fused, 0);
  c.last_pts = GST_CLOCK_TIME_NONE;
  c.pts_ok = TRUE;
  run_to_eos (pipeline, 60);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  GST_INFO ("after the seeks: %d fused", c.fused);
  /* 4 s .. 5 s at 30 fps */
  fail_unless (c.fused >= 29 && c.fused <= 31, "%d", c.fused);
  fail_unless (c.pts_ok, "fused PTS not increasing after the seek");
  gst_object_unref (pipeline);
  g_rand_free (rand);
  g_unlink (mkv);
  g_unlink (srt);
  g_free (mkv);
  g_free (srt);
}

GST_END_TEST;

static Suite *
mmfuse_suite (void)
{
  Suite *s = suite_create ("mmfuse");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_multirate_pairing_table);
  tcase_add_test (tc, test_waits_for_other_pads);
  tcase_add_test (tc, test_sparse_gap_does_not_stall);
  tcase_add_test (tc, test_sparse_gap_events_do_not_stall);
  tcase_add_test (tc, test_live_deadline);
  tcase_add_test (tc, test_drive_eos_sparse_waiting);
  tcase_add_test (tc, test_drive_eos_upstream_latency);
  tcase_add_test (tc, test_child_proxy);
  tcase_add_test (tc, test_sparse_does_not_keep_alive);
  tcase_add_test (tc, test_live_inactive_pad);
  tcase_add_test (tc, test_missing_modalities);
  tcase_add_test (tc, test_max_age);
  tcase_add_test (tc, test_gap_ends_stale_text);
  tcase_add_test (tc, test_eos_on_one_pad);
  tcase_add_test (tc, test_interval_cadence);
  tcase_add_test (tc, test_interval_no_repeat_after_timeout);
  tcase_add_test (tc, test_cadence_properties);
  tcase_add_test (tc, test_flushing_seek);
  tcase_add_test (tc, test_drive_pad_flush);
  tcase_add_test (tc, test_interval_flush_per_pad);
  tcase_add_test (tc, test_interval_flushes_apart);
  tcase_add_test (tc, test_lookahead_live_branch_later);
  tcase_add_test (tc, test_pad_release_while_playing);
  tcase_add_test (tc, test_mismatched_caps);
  tcase_add_test (tc, test_modality_override);
  tcase_add_test (tc, test_wrong_buffer_size);
  tcase_add_test (tc, test_bad_model);
  tcase_add_test (tc, test_drive_pad_unknown);
  tcase_add_test (tc, test_drive_overlap_clipped);
  tcase_add_test (tc, test_other_model_warning);
  tcase_add_test (tc, test_segment_stop_and_rate);
  tcase_add_test (tc, test_latency_query);

  tc = tcase_create ("pipelines");
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_pipeline_file);
  tcase_add_test (tc, test_pipeline_live);
  tcase_add_test (tc, test_pipeline_mkv);
  tcase_add_test (tc, test_pipeline_mkv_default_queues);
  tcase_add_test (tc, test_pipeline_repeated_seeks);
  return s;
}

GST_CHECK_MAIN (mmfuse);
