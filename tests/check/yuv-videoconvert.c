/* libmm's YUV to RGB path against videoconvert
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The same YUV frame (videotestsrc patterns, odd and even sizes, BT.601 /
 * BT.709, limited / full range) goes through
 *   - libmm's YUV path (mm_image_preprocess_image at the frame's own size,
 *     mean 0 and std 1: the converted RGB before normalisation, times 255,
 *     with the planes copied to padded, non-default strides), and
 *   - videoconvert ! video/x-raw,format=RGB,
 * and the difference is measured per channel in 8-bit levels (LSB).
 *
 * Usage: yuv-videoconvert [--table] [--videoconvert "PROPS"] [--no-check]
 *   --table         prints each case's max |diff| and mean diff per channel
 *   --videoconvert  videoconvert's properties (default: the reference below)
 *   --no-check      only measure (for other videoconvert settings)
 *
 * The reference is `videoconvert chroma-mode=none dither=none`: each pixel
 * takes the chroma sample that covers it (as libmm does), with no dither.
 * videoconvert's default (chroma-mode=full, chroma-resampler=linear)
 * interpolates chroma between samples instead; libmm does not, so at
 * chroma edges the two differ by up to the chroma step times the matrix
 * gain.  That bound is measured and reported, not asserted (it depends on
 * the picture, not on the conversion).  With its defaults, videoconvert
 * takes a nearest-chroma fast path for I420 (same numbers as the
 * reference) but up-samples NV12 and YUY2 linearly: up to 155 levels on
 * the snow pattern (one random chroma per 2 pixels).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "preprocess.h"

/* The bounds asserted against the reference, in levels per channel:
 * measured 5.62 (limited range) and 2.83 (full range), GStreamer 1.22.
 * videoconvert's matrix is 8-bit fixed point with truncation (its results
 * sit 1.3-1.8 levels below the exact matrix on average, limited range,
 * whose 255/219 gain amplifies its rounding); libmm's is float, not
 * rounded.  A wrong plane, stride, U/V order or matrix gives tens of levels. */
#define MAX_LSB_LIMITED 6.0
#define MAX_LSB_FULL 3.0

typedef struct
{
  double max_abs[3], sum[3];
  gsize n;
} Stat;

static GstSample *
pull (GstElement *pipe, const char *name)
{
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), name);
  GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 10 * GST_SECOND);
  gst_object_unref (sink);
  return s;
}

static MmPixelFormat
mm_format (GstVideoFormat f)
{
  switch (f) {
    case GST_VIDEO_FORMAT_I420:
      return MM_PIXEL_I420;
    case GST_VIDEO_FORMAT_NV12:
      return MM_PIXEL_NV12;
    default:
      return MM_PIXEL_YUY2;
  }
}

/* One frame: returns FALSE (with a message) if the pipeline failed. */
static gboolean
run_case (const char *pattern, const char *format, int w, int h, const char *colorimetry,
    const char *vc_props, Stat *st)
{
  gchar *desc = g_strdup_printf (
      "videotestsrc pattern=%s num-buffers=1 ! video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1,colorimetry=%s ! tee name=t ! queue ! appsink name=yuv sync=false "
      "t. ! queue ! videoconvert %s ! video/x-raw,format=RGB ! appsink name=rgb sync=false",
      pattern, format, w, h, colorimetry, vc_props);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  GstSample *ys = NULL, *rs = NULL;
  gboolean ok = FALSE;

  if (!pipe) {
    g_printerr ("%s: %s\n", desc, err->message);
    g_clear_error (&err);
    g_free (desc);
    return FALSE;
  }
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  ys = pull (pipe, "yuv");
  rs = pull (pipe, "rgb");
  if (!ys || !rs) {
    g_printerr ("%s: no frame\n", desc);
    goto out;
  }

  GstVideoInfo yi, ri;
  GstVideoFrame yf, rf;
  gst_video_info_from_caps (&yi, gst_sample_get_caps (ys));
  gst_video_info_from_caps (&ri, gst_sample_get_caps (rs));
  gst_video_frame_map (&yf, &yi, gst_sample_get_buffer (ys), GST_MAP_READ);
  gst_video_frame_map (&rf, &ri, gst_sample_get_buffer (rs), GST_MAP_READ);

  /* The planes copied with 7 more bytes per row than GStreamer's strides
   * (garbage in the padding): libmm must follow each plane's stride. */
  MmImage im = { 0 };
  guint8 *copies[3] = { NULL };
  im.format = mm_format (GST_VIDEO_INFO_FORMAT (&yi));
  im.width = w;
  im.height = h;
  im.matrix = yi.colorimetry.matrix == GST_VIDEO_COLOR_MATRIX_BT709 ? MM_YUV_BT709 : MM_YUV_BT601;
  im.full_range = yi.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (&yf); p++) {
    gsize stride = GST_VIDEO_FRAME_PLANE_STRIDE (&yf, p);
    guint rows = GST_VIDEO_FRAME_COMP_HEIGHT (&yf, p == 0 ? 0 : p + (im.format == MM_PIXEL_NV12));
    if (im.format == MM_PIXEL_YUY2)
      rows = h;
    gsize nstride = stride + 7;
    copies[p] = g_malloc ((gsize)rows * nstride);
    memset (copies[p], 0xa5, (gsize)rows * nstride);
    for (guint r = 0; r < rows; r++)
      memcpy (copies[p] + r * nstride,
          (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA (&yf, p) + r * stride, stride);
    im.planes[p] = copies[p];
    im.strides[p] = nstride;
  }

  const float mean[3] = { 0, 0, 0 }, std[3] = { 1, 1, 1 };
  float *out = g_new (float, (gsize)3 * w * h);
  if (!mm_image_preprocess_image (out, w, h, mean, std, &im, &err)) {
    g_printerr ("libmm: %s\n", err->message);
    g_clear_error (&err);
  } else {
    const guint8 *rgb = GST_VIDEO_FRAME_PLANE_DATA (&rf, 0);
    gsize rstride = GST_VIDEO_FRAME_PLANE_STRIDE (&rf, 0);
    memset (st, 0, sizeof (*st));
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++) {
          double mine = out[(gsize)c * w * h + (gsize)y * w + x] * 255.0;
          double d = mine - rgb[y * rstride + 3 * x + c];
          st->sum[c] += d;
          if (fabs (d) > st->max_abs[c])
            st->max_abs[c] = fabs (d);
        }
    st->n = (gsize)w * h;
    ok = TRUE;
  }
  g_free (out);
  for (int p = 0; p < 3; p++)
    g_free (copies[p]);
  gst_video_frame_unmap (&yf);
  gst_video_frame_unmap (&rf);
out:
  if (ys)
    gst_sample_unref (ys);
  if (rs)
    gst_sample_unref (rs);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  g_free (desc);
  return ok;
}

int
main (int argc, char **argv)
{
  gboolean table = FALSE, check = TRUE;
  const char *vc = "chroma-mode=none dither=none";
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--table"))
      table = TRUE;
    else if (!strcmp (argv[i], "--no-check"))
      check = FALSE;
    else if (!strcmp (argv[i], "--videoconvert") && i + 1 < argc)
      vc = argv[++i];
  }
  gst_init (NULL, NULL);

  static const char *formats[] = { "I420", "NV12", "YUY2" };
  static const struct
  {
    const char *caps, *name;
  } colours[] = {
    { "bt601", "BT.601 limited" },
    { "bt709", "BT.709 limited" },
    { "1:4:0:0", "BT.601 full" },
    { "1:3:0:0", "BT.709 full" },
  };
  static const char *patterns[] = { "smpte", "snow", "gamut", "colors", "pinwheel", "ball" };
  static const int sizes[][2] = { { 32, 16 }, { 13, 7 }, { 17, 10 }, { 1, 1 }, { 64, 48 } };
  int failures = 0, cases = 0;

  printf ("# libmm YUV path - videoconvert %s ! video/x-raw,format=RGB, in levels\n", vc);
  printf ("# %-5s %-15s  max|d| R G B        mean d R G B\n", "fmt", "colorimetry");
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    for (guint c = 0; c < G_N_ELEMENTS (colours); c++) {
      double worst[3] = { 0 }, sum[3] = { 0 };
      gsize n = 0;
      for (guint p = 0; p < G_N_ELEMENTS (patterns); p++)
        for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
          Stat st;
          cases++;
          if (!run_case (
                  patterns[p], formats[f], sizes[z][0], sizes[z][1], colours[c].caps, vc, &st)) {
            failures++;
            continue;
          }
          if (table)
            printf ("#   %s %s %s %dx%d: max %.2f %.2f %.2f mean %+.2f %+.2f %+.2f\n", formats[f],
                colours[c].caps, patterns[p], sizes[z][0], sizes[z][1], st.max_abs[0],
                st.max_abs[1], st.max_abs[2], st.sum[0] / st.n, st.sum[1] / st.n, st.sum[2] / st.n);
          for (int k = 0; k < 3; k++) {
            worst[k] = MAX (worst[k], st.max_abs[k]);
            sum[k] += st.sum[k];
          }
          n += st.n;
        }
      printf ("# %-5s %-15s  %5.2f %5.2f %5.2f   %+5.2f %+5.2f %+5.2f\n", formats[f],
          colours[c].name, worst[0], worst[1], worst[2], sum[0] / n, sum[1] / n, sum[2] / n);
      double bound = strstr (colours[c].name, "full") ? MAX_LSB_FULL : MAX_LSB_LIMITED;
      if (check && (worst[0] > bound || worst[1] > bound || worst[2] > bound)) {
        printf ("# FAIL: %s %s differs by more than %.0f levels from videoconvert\n", formats[f],
            colours[c].name, bound);
        failures++;
      }
    }
  printf ("# %d cases, %d failures\n", cases, failures);
  return failures ? 1 : 0;
}
