/* imageenc element tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Reference embeddings come from libmm's image encoder called directly on
 * the same pixels (with GStreamer's row stride).
 */
#include <string.h>
#include <math.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <gst/video/video.h>
#include <mm.h>

#include "gstmmmeta.h"
#include "mmcheck.h"

#define DIM 8
#define FRAME (40 * GST_MSECOND)

#define harness_new(extra) mm_harness_new ("imageenc", (extra))

/* A frame of @info with a deterministic pattern depending on @seed. */
static GstBuffer *
frame_new (const GstVideoInfo *info, guint seed, GstClockTime pts, GstClockTime duration)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, info->size, NULL);
  GstMapInfo map;
  gsize i;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (i = 0; i < map.size; i++)
    map.data[i] = (guint8)((i * 7 + seed * 31 + (i / 13) * 5) & 0xff);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = duration;
  return buf;
}

/* ref (DIM) = libmm's embedding of @buf laid out as @info. */
static void
reference (const GstVideoInfo *info, MmPixelFormat format, GstBuffer *buf, gfloat *ref)
{
  gchar *path = fixture ("tiny.safetensors");
  GError *err = NULL;
  MmModel *model = mm_model_open (path, &err);
  MmContextParams params = mm_context_default_params ();
  MmImageEncoder *enc;
  GstMapInfo map;

  fail_unless (model != NULL);
  enc = mm_image_encoder_new (model, &params, &err);
  fail_unless (enc != NULL);
  gst_buffer_map (buf, &map, GST_MAP_READ);
  fail_unless (mm_image_encoder_encode (enc, format, map.data, GST_VIDEO_INFO_WIDTH (info),
                   GST_VIDEO_INFO_HEIGHT (info), GST_VIDEO_INFO_PLANE_STRIDE (info, 0), ref, &err),
      "%s", err ? err->message : "");
  gst_buffer_unmap (buf, &map);
  mm_image_encoder_free (enc);
  mm_model_unref (model);
  g_free (path);
}

#define assert_embedding(buf, ref) assert_embedding_near ((buf), (ref), DIM, 1e-6f)

static const struct
{
  const gchar *name;
  MmPixelFormat mm;
} formats[] = {
  { "RGB", MM_PIXEL_RGB },
  { "BGR", MM_PIXEL_BGR },
  { "RGBx", MM_PIXEL_RGBx },
  { "BGRx", MM_PIXEL_BGRx },
  { "xRGB", MM_PIXEL_xRGB },
  { "xBGR", MM_PIXEL_xBGR },
  { "RGBA", MM_PIXEL_RGBA },
  { "BGRA", MM_PIXEL_BGRA },
  { "ARGB", MM_PIXEL_ARGB },
  { "ABGR", MM_PIXEL_ABGR },
  { "GRAY8", MM_PIXEL_GRAY8 },
};

/* Sets caps formats[@format] @width x @height at @fps/1 on @h, pushes a
 * frame (pattern @seed, @pts, @duration) and checks that the output is
 * libmm's embedding of it, at @pts, lasting @expect_duration. */
static void
push_and_check_frame (GstHarness *h, guint format, guint width, guint height, guint fps, guint seed,
    GstClockTime pts, GstClockTime duration, GstClockTime expect_duration)
{
  gchar *caps = g_strdup_printf ("video/x-raw, format=%s, width=%u, "
                                 "height=%u, framerate=%u/1",
      formats[format].name, width, height, fps);
  GstCaps *c = gst_caps_from_string (caps);
  GstVideoInfo info;
  GstBuffer *in, *out;
  gfloat ref[DIM];

  fail_unless (gst_video_info_from_caps (&info, c));
  gst_harness_set_src_caps (h, c);
  in = frame_new (&info, seed, pts, duration);
  reference (&info, formats[format].mm, in, ref);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  assert_embedding (out, ref);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), pts);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), expect_duration);
  gst_buffer_unref (out);
  g_free (caps);
}

/* Every format, at odd sizes (padded strides), gives libmm's embedding. */
GST_START_TEST (test_formats_and_values)
{
  static const guint sizes[][2] = { { 37, 23 }, { 16, 16 }, { 1, 1 }, { 201, 3 } };
  guint f, z;

  for (f = 0; f < G_N_ELEMENTS (formats); f++) {
    for (z = 0; z < G_N_ELEMENTS (sizes); z++) {
      GstHarness *h = harness_new (NULL);

      push_and_check_frame (h, f, sizes[z][0], sizes[z][1], 25, f + z, 0, FRAME, FRAME);
      gst_harness_teardown (h);
    }
  }
}

GST_END_TEST;

/* YUV as decoders give it: the element hands libmm the frame's planes with
 * the matrix and range of the caps' colorimetry. */
GST_START_TEST (test_yuv_formats)
{
  static const struct
  {
    const gchar *colorimetry;
    MmYuvMatrix matrix;
    gboolean full_range;
  } colours[] = {
    { "bt601", MM_YUV_BT601, FALSE },
    { "bt709", MM_YUV_BT709, FALSE },
    { "bt2020", MM_YUV_BT2020, FALSE },
    { "1:4:0:0", MM_YUV_BT601, TRUE }, /* full range BT.601 (JPEG) */
    { "1:3:0:0", MM_YUV_BT709, TRUE },
  };
  static const struct
  {
    const gchar *name;
    MmPixelFormat mm;
  } yuv[] = { { "I420", MM_PIXEL_I420 }, { "NV12", MM_PIXEL_NV12 }, { "YUY2", MM_PIXEL_YUY2 } };
  static const guint sizes[][2] = { { 37, 23 }, { 16, 16 }, { 1, 1 }, { 202, 3 } };
  gchar *path = fixture ("tiny.safetensors");
  MmModel *model = mm_model_open (path, NULL);
  MmContextParams params = mm_context_default_params ();
  MmImageEncoder *enc = mm_image_encoder_new (model, &params, NULL);
  guint f, c, z, p;

  fail_unless (enc != NULL);
  for (f = 0; f < G_N_ELEMENTS (yuv); f++)
    for (c = 0; c < G_N_ELEMENTS (colours); c++)
      for (z = 0; z < G_N_ELEMENTS (sizes); z++) {
        gchar *caps = g_strdup_printf ("video/x-raw, format=%s, width=%u, height=%u, "
                                       "framerate=25/1, colorimetry=%s",
            yuv[f].name, sizes[z][0], sizes[z][1], colours[c].colorimetry);
        GstHarness *h = harness_new (NULL);
        GstVideoInfo info;
        GstVideoFrame frame;
        GstBuffer *in, *out;
        MmImage image = { yuv[f].mm, sizes[z][0], sizes[z][1] };
        gfloat ref[DIM], other[DIM];
        GstCaps *gcaps = gst_caps_from_string (caps);

        fail_unless (gst_video_info_from_caps (&info, gcaps), "%s", caps);
        fail_unless (GST_VIDEO_INFO_COLORIMETRY (&info).matrix != GST_VIDEO_COLOR_MATRIX_UNKNOWN);
        gst_harness_set_src_caps (h, gcaps);
        in = frame_new (&info, f * 7 + c + z, 0, FRAME);
        fail_unless (gst_video_frame_map (&frame, &info, in, GST_MAP_READ));
        for (p = 0; p < GST_VIDEO_FRAME_N_PLANES (&frame); p++) {
          image.planes[p] = GST_VIDEO_FRAME_PLANE_DATA (&frame, p);
          image.strides[p] = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, p);
        }
        image.matrix = colours[c].matrix;
        image.full_range = colours[c].full_range;
        fail_unless (mm_image_encoder_encode_image (enc, &image, ref, NULL));
        /* the colorimetry matters: another matrix or range gives another embedding */
        image.full_range = !image.full_range;
        fail_unless (mm_image_encoder_encode_image (enc, &image, other, NULL));
        fail_unless (memcmp (ref, other, sizeof ref) != 0);
        gst_video_frame_unmap (&frame);

        fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
        out = gst_harness_pull (h);
        assert_embedding (out, ref);
        gst_buffer_unref (out);
        gst_harness_teardown (h);
        g_free (caps);
      }
  mm_image_encoder_free (enc);
  mm_model_unref (model);
  g_free (path);
}

GST_END_TEST;

/* Caps change mid-stream (format, size, framerate): each frame is encoded
 * with the caps in force, and a frame without a duration gets the current
 * framerate's. */
GST_START_TEST (test_renegotiation)
{
  static const struct
  {
    guint format; /* index into formats[] */
    guint width, height, fps;
  } steps[] = { { 0, 37, 23, 25 }, { 10, 16, 16, 25 }, { 3, 201, 3, 10 }, { 0, 37, 23, 50 } };
  GstHarness *h = harness_new (NULL);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (steps); i++)
    push_and_check_frame (h, steps[i].format, steps[i].width, steps[i].height, steps[i].fps, i,
        i * GST_SECOND, GST_CLOCK_TIME_NONE, GST_SECOND / steps[i].fps);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A buffer shorter than its caps say is a clear stream error on the bus,
 * not a crash or an out-of-bounds read. */
GST_START_TEST (test_short_buffer)
{
  GstHarness *h = harness_new (NULL);
  GstBus *bus = gst_bus_new ();
  GstBuffer *in = gst_buffer_new_allocate (NULL, 100, NULL);

  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw, format=RGB, width=64, "
      "height=48, framerate=25/1");
  gst_buffer_memset (in, 0, 0x55, 100);
  GST_BUFFER_PTS (in) = 0;
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_ERROR);
  assert_bus_message (bus, GST_MESSAGE_ERROR, "100 bytes", "9216", NULL);
  fail_unless (gst_harness_try_pull (h) == NULL);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_output_caps)
{
  GstHarness *h = harness_new (NULL);
  GstCaps *caps;
  GstStructure *s;
  gint dim = 0;
  GstVideoInfo info;

  gst_harness_set_src_caps_str (h,
      "video/x-raw, format=RGB, width=8, "
      "height=8, framerate=25/1");
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 8, 8);
  gst_harness_push (h, frame_new (&info, 0, 0, FRAME));
  gst_buffer_unref (gst_harness_pull (h));
  caps = gst_pad_get_current_caps (h->sinkpad);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (s, MM_EMBEDDING_CAPS_NAME));
  fail_unless_equals_string (gst_structure_get_string (s, "modality"), "image");
  fail_unless (gst_structure_get_int (s, "dim", &dim));
  fail_unless_equals_int (dim, DIM);
  fail_unless (gst_structure_get_string (s, "model") != NULL);
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_caps_refused)
{
  const gchar *refused[] = {
    "video/x-raw, format=Y444, width=8, height=8, framerate=25/1",
    "video/x-raw, format=P010_10LE, width=8, height=8, framerate=25/1",
    "video/x-raw, format=RGB16, width=8, height=8, framerate=25/1",
    "audio/x-raw, format=S16LE, rate=16000, channels=1",
  };
  GstHarness *h = harness_new (NULL);
  GstPad *sinkpad = gst_element_get_static_pad (h->element, "sink");
  guint i;

  for (i = 0; i < G_N_ELEMENTS (refused); i++) {
    GstCaps *caps = gst_caps_from_string (refused[i]);

    fail_unless (!gst_pad_query_accept_caps (sinkpad, caps), "%s accepted", refused[i]);
    gst_caps_unref (caps);
  }
  gst_object_unref (sinkpad);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_downstream_mismatch)
{
  gchar *path = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf ("imageenc model=\"%s\" ! capsfilter "
                                 "caps=\"" MM_EMBEDDING_CAPS_NAME ",dim=(int)16\"",
      path);
  GstHarness *h = gst_harness_new_parse (desc);
  GstVideoInfo info;

  gst_harness_set_src_caps_str (h,
      "video/x-raw, format=RGB, width=8, "
      "height=8, framerate=25/1");
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 8, 8);
  fail_unless_equals_int (
      gst_harness_push (h, frame_new (&info, 0, 0, FRAME)), GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown (h);
  g_free (desc);
  g_free (path);
}

GST_END_TEST;

/* Pushes @n frames at 25 fps from frame @first; frames in @discont get the
 * DISCONT flag. */
static void
push_frames (GstHarness *h, const GstVideoInfo *info, guint first, guint n, gint discont,
    gboolean with_duration)
{
  guint i;

  for (i = first; i < first + n; i++) {
    GstBuffer *buf = frame_new (info, i, i * FRAME, with_duration ? FRAME : GST_CLOCK_TIME_NONE);

    if ((gint)i == discont)
      GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  }
}

static void
expect_outputs (GstHarness *h, const guint *frames, guint n, GstClockTime duration)
{
  guint i;

  fail_unless_equals_int (gst_harness_buffers_in_queue (h), n);
  for (i = 0; i < n; i++) {
    GstBuffer *out = gst_harness_pull (h);

    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), frames[i] * FRAME);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), duration);
    gst_buffer_unref (out);
  }
}

/* The output caps' duration of src caps (0 when absent). */
static guint64
output_caps_duration (GstHarness *h)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  guint64 duration = 0;

  fail_unless (caps != NULL);
  gst_structure_get_uint64 (gst_caps_get_structure (caps, 0), "duration", &duration);
  gst_caps_unref (caps);
  return duration;
}

/* The nominal duration of one embedding in the output caps: interval
 * frames of 1/framerate, renegotiated when interval changes while
 * playing; left out with a variable framerate (0/1). */
GST_START_TEST (test_caps_duration)
{
  GstHarness *h = harness_new (NULL);
  GstElement *enc = gst_harness_find_element (h, "imageenc");
  GstVideoInfo info;
  guint i;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 8, 8);
  gst_harness_set_src_caps_str (h, "video/x-raw, format=RGB, width=8, height=8, framerate=25/1");
  gst_harness_push (h, frame_new (&info, 0, 0, FRAME));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_uint64 (output_caps_duration (h), FRAME);

  g_object_set (enc, "interval", 5, NULL);
  for (i = 1; i < 6; i++)
    gst_harness_push (h, frame_new (&info, i, i * FRAME, FRAME));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_uint64 (output_caps_duration (h), 5 * FRAME);

  gst_harness_set_src_caps_str (h, "video/x-raw, format=RGB, width=8, height=8, framerate=0/1");
  gst_harness_push (h, frame_new (&info, 9, 10 * FRAME, FRAME));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_uint64 (output_caps_duration (h), 0);
  gst_object_unref (enc);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_interval)
{
  static const struct
  {
    guint interval;
    guint n_frames;
    gint discont;
    gboolean with_duration;
    guint n_out;
    guint out[8];
  } cases[] = {
    { 1, 4, -1, TRUE, 4, { 0, 1, 2, 3 } },
    { 3, 7, -1, TRUE, 3, { 0, 3, 6 } },
    { 3, 7, -1, FALSE, 3, { 0, 3, 6 } }, /* duration from the framerate */
    { 4, 10, 2, TRUE, 3, { 0, 2, 6 } },  /* DISCONT restarts the count */
    { 10, 5, -1, TRUE, 1, { 0 } },
  };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    gchar *extra = g_strdup_printf ("interval=%u", cases[c].interval);
    GstHarness *h = harness_new (extra);
    GstVideoInfo info;

    gst_harness_set_src_caps_str (h,
        "video/x-raw, format=BGRx, width=20, "
        "height=10, framerate=25/1");
    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_BGRx, 20, 10);
    push_frames (h, &info, 0, cases[c].n_frames, cases[c].discont, cases[c].with_duration);
    expect_outputs (h, cases[c].out, cases[c].n_out, cases[c].interval * FRAME);
    gst_harness_teardown (h);
    g_free (extra);
  }
}

GST_END_TEST;

/* A flush restarts the count: the first frame after it is encoded. */
GST_START_TEST (test_flush)
{
  GstHarness *h = harness_new ("interval=5");
  GstVideoInfo info;
  GstSegment segment;
  static const guint first[] = { 0 }, after[] = { 2, 7 };

  gst_harness_set_src_caps_str (h,
      "video/x-raw, format=RGB, width=8, "
      "height=8, framerate=25/1");
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 8, 8);
  push_frames (h, &info, 0, 2, -1, TRUE);
  expect_outputs (h, first, 1, 5 * FRAME);

  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  push_frames (h, &info, 2, 6, -1, TRUE);
  expect_outputs (h, after, 2, 5 * FRAME);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A QoS event saying we are late makes the element drop late frames
 * (unless qos=false). */
GST_START_TEST (test_qos)
{
  gboolean qos;

  for (qos = FALSE; qos <= TRUE; qos++) {
    GstHarness *h = harness_new (qos ? "qos=true" : "qos=false");
    GstVideoInfo info;
    GstBuffer *out;

    gst_harness_set_src_caps_str (h,
        "video/x-raw, format=RGB, width=8, "
        "height=8, framerate=25/1");
    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 8, 8);
    push_frames (h, &info, 0, 1, -1, TRUE);
    gst_buffer_unref (gst_harness_pull (h));

    /* frame 0 was shown 0.5 s late: frames up to at least 0.5 s (running
     * time) can no longer be shown in time */
    fail_unless (gst_harness_push_upstream_event (
        h, gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW, 0.5, GST_SECOND / 2, 0)));
    push_frames (h, &info, 1, 40, -1, TRUE); /* 40 ms .. 1.6 s */
    if (qos) {
      guint n = 0, late = 0, recent = 0;

      while ((out = gst_harness_try_pull (h)) != NULL) {
        n++;
        late += GST_BUFFER_PTS (out) <= GST_SECOND / 2;
        recent += GST_BUFFER_PTS (out) >= 1100 * GST_MSECOND;
        gst_buffer_unref (out);
      }
      GST_INFO ("qos: %u of 40 frames encoded", n);
      fail_unless_equals_int (late, 0);
      fail_unless_equals_int (recent, 13); /* frames 28..40 */
      fail_unless (n < 40);
    } else {
      fail_unless_equals_int (gst_harness_buffers_in_queue (h), 40);
    }
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_eos)
{
  GstHarness *h = harness_new (NULL);
  GstVideoInfo info;
  GstEvent *ev;
  gboolean seen = FALSE;

  gst_harness_set_src_caps_str (h,
      "video/x-raw, format=GRAY8, width=9, "
      "height=5, framerate=25/1");
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, 9, 5);
  push_frames (h, &info, 0, 2, -1, TRUE);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  while ((ev = gst_harness_try_pull_event (h)) != NULL) {
    seen |= GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
  }
  fail_unless (seen);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("imageenc", NULL);
  GParamSpecUInt *pspec =
      (GParamSpecUInt *)g_object_class_find_property (G_OBJECT_GET_CLASS (e), "interval");
  guint interval;
  gboolean qos;

  g_object_get (e, "interval", &interval, "qos", &qos, NULL);
  fail_unless_equals_int (interval, 1);
  fail_unless (qos);
  fail_unless_equals_int (pspec->minimum, 1);
  g_object_set (e, "interval", 7, NULL);
  g_object_get (e, "interval", &interval, NULL);
  fail_unless_equals_int (interval, 7);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_model_errors)
{
  check_model_errors ("imageenc", "image");
}

GST_END_TEST;

/* precision: fp32 by default; "bf16" reaches libmm (the embedding is
 * libmm's bf16 one where the CPU runs bf16, its fp32 one elsewhere) */
GST_START_TEST (test_precision)
{
  GstElement *e = gst_element_factory_make ("imageenc", NULL);
  gint precision;

  g_object_get (e, "precision", &precision, NULL);
  fail_unless_equals_int (precision, MM_PRECISION_FP32);
  gst_util_set_object_arg (G_OBJECT (e), "precision", "bf16");
  g_object_get (e, "precision", &precision, NULL);
  fail_unless_equals_int (precision, MM_PRECISION_BF16);
  gst_object_unref (e);

  gboolean bf16 = mm_precision_supported (MM_PRECISION_BF16);
  GstHarness *h = harness_new ("precision=bf16");
  GstCaps *c = gst_caps_from_string ("video/x-raw, format=RGB, width=37, height=23, "
                                     "framerate=25/1");
  GstVideoInfo info;
  fail_unless (gst_video_info_from_caps (&info, c));
  gst_harness_set_src_caps (h, c);
  GstBuffer *in = frame_new (&info, 3, 0, FRAME);
  gchar *path = fixture ("tiny.safetensors");
  MmModel *model = mm_model_open (path, NULL);
  MmContextParams params = mm_context_default_params ();
  gfloat ref[2][DIM];
  GstMapInfo map;
  gst_buffer_map (in, &map, GST_MAP_READ);
  for (int i = 0; i < 2; i++) {
    params.precision = i == 1 && bf16 ? MM_PRECISION_BF16 : MM_PRECISION_FP32;
    MmImageEncoder *enc = mm_image_encoder_new (model, &params, NULL);
    fail_unless (enc != NULL);
    fail_unless (mm_image_encoder_encode (
        enc, MM_PIXEL_RGB, map.data, 37, 23, GST_VIDEO_INFO_PLANE_STRIDE (&info, 0), ref[i], NULL));
    mm_image_encoder_free (enc);
  }
  gst_buffer_unmap (in, &map);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull (h);
  assert_embedding (out, ref[1]);
  if (bf16) {
    /* and it is not the fp32 one */
    gfloat d = 0.0f;
    for (int k = 0; k < DIM; k++)
      d = MAX (d, fabsf (ref[0][k] - ref[1][k]));
    fail_unless (d > 1e-5f, "bf16 and fp32 embeddings equal (%g)", d);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  mm_model_unref (model);
  g_free (path);
}

GST_END_TEST;

/* precision=bf16 where the component has no bf16 path (word vectors) runs
 * fp32 and says so on the bus, once, when the element starts; the resnet
 * family and a graph with convolutions run bf16 without that warning */
GST_START_TEST (test_precision_no_bf16_path)
{
  if (!mm_precision_supported (MM_PRECISION_BF16)) {
    GST_INFO ("skipped: this CPU runs bf16 as fp32 anyway (no AVX512_BF16)");
    return;
  }
  static const struct
  {
    const gchar *factory, *model, *component;
    guint warnings;
  } cases[] = {
    { "imageenc", "graph/image-net.safetensors", "image", 0 },
    { "imageenc", "tiny.safetensors", "image", 0 },
    { "textenc", "tiny.safetensors", "text", 1 }, /* wordvec */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    gchar *path = fixture (cases[i].model);
    gchar *desc =
        g_strdup_printf ("%s precision=bf16 model=\"%s\" ! fakesink", cases[i].factory, path);
    GstElement *pipe = gst_parse_launch (desc, NULL);
    fail_unless (pipe != NULL);
    GstBus *bus = gst_element_get_bus (pipe);
    gchar *expect =
        g_strdup_printf ("precision=bf16 runs as fp32: the model's %s component has no bf16 path",
            cases[i].component);
    /* (the encoder starts in READY -> PAUSED, posting its warning then) */
    fail_if (gst_element_set_state (pipe, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
    guint warned = 0;
    GstMessage *msg;
    while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING | GST_MESSAGE_ERROR))) {
      GError *err = NULL;
      fail_unless (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING, "%s", desc);
      gst_message_parse_warning (msg, &err, NULL);
      warned += strstr (err->message, expect) != NULL;
      g_error_free (err);
      gst_message_unref (msg);
    }
    fail_unless_equals_int (warned, cases[i].warnings);
    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (bus);
    gst_object_unref (pipe);
    g_free (expect);
    g_free (desc);
    g_free (path);
  }
}

GST_END_TEST;

/* A real pipeline from the build-tree plugin: 30 frames at 30 fps, one in 4
 * encoded: frames 0, 4, ..., 28 -> 8 embeddings covering 4 frames each. */
GST_START_TEST (test_pipeline)
{
  gchar *model = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=30 ! "
                                 "video/x-raw,width=64,height=48,framerate=30/1 ! videoconvert ! "
                                 "imageenc model=\"%s\" interval=4 ! appsink name=sink sync=false",
      model);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  GstSample *sample;
  guint n = 0;

  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  while (TRUE) {
    GstBuffer *buf;

    sample = NULL;
    g_signal_emit_by_name (sink, "pull-sample", &sample);
    if (sample == NULL)
      break;
    buf = gst_sample_get_buffer (sample);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), gst_util_uint64_scale (4 * n, GST_SECOND, 30));
    /* videotestsrc's frame durations alternate by a nanosecond */
    fail_unless (
        ABS ((gint64)GST_BUFFER_DURATION (buf) - (gint64)gst_util_uint64_scale (4, GST_SECOND, 30))
        <= 4);
    fail_unless_equals_int (gst_buffer_get_size (buf), DIM * sizeof (gfloat));
    gst_sample_unref (sample);
    n++;
  }
  fail_unless_equals_int (n, 8);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (msg != NULL);
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (model);
}

GST_END_TEST;

static Suite *
imageenc_suite (void)
{
  Suite *s = suite_create ("imageenc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_formats_and_values);
  tcase_add_test (tc, test_yuv_formats);
  tcase_add_test (tc, test_output_caps);
  tcase_add_test (tc, test_renegotiation);
  tcase_add_test (tc, test_short_buffer);
  tcase_add_test (tc, test_caps_refused);
  tcase_add_test (tc, test_downstream_mismatch);
  tcase_add_test (tc, test_interval);
  tcase_add_test (tc, test_caps_duration);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_qos);
  tcase_add_test (tc, test_eos);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_precision);
  tcase_add_test (tc, test_precision_no_bf16_path);
  tcase_add_test (tc, test_pipeline);
  return s;
}

GST_CHECK_MAIN (imageenc);
