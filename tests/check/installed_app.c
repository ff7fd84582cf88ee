/* An application built against the installed mm-gst (pkg-config mm-gst):
 * runs subtitles through the installed plugin and reads every decision's
 * MmClassificationMeta from an appsink, provenance included.  Prints one
 * line per decision and exits 0 when at least one had the text present.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   installed-app MODEL SRT
 */
#include <gst/gst.h>
#include <mm.h>
#include <gstmmmeta.h>

int
main (int argc, char **argv)
{
  GstElement *pipe, *sink;
  GstSample *sample;
  GError *err = NULL;
  gchar *desc;
  guint n = 0, with_text = 0, i;

  gst_init (&argc, &argv);
  if (argc != 3)
    return 2;
  desc = g_strdup_printf ("filesrc location=\"%s\" ! subparse ! textenc model=\"%s\" ! f.sink_0 "
                          "mmfuse name=f model=\"%s\" interval=500000000 ! mmdecode model=\"%s\" ! "
                          "appsink name=sink sync=false",
      argv[2], argv[1], argv[1], argv[1]);
  pipe = gst_parse_launch (desc, &err);
  g_free (desc);
  if (pipe == NULL) {
    g_printerr ("%s\n", err->message);
    return 1;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  /* the action signal: no need for gstreamer-app's headers */
  for (;;) {
    sample = NULL;
    g_signal_emit_by_name (sink, "try-pull-sample", (GstClockTime)(10 * GST_SECOND), &sample);
    if (sample == NULL)
      break;
    {
      GstBuffer *buf = gst_sample_get_buffer (sample);
      MmClassificationMeta *m = gst_buffer_get_mm_classification_meta (buf);

      if (m == NULL) {
        g_printerr ("no MmClassificationMeta\n");
        return 1;
      }
      n++;
      g_print ("%" GST_TIME_FORMAT " %s", GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
          m->n_top ? g_quark_to_string (m->label[0]) : "-");
      for (i = 0; i < m->n_inputs; i++) {
        g_print (
            " %s:%s", g_quark_to_string (m->modality[i]), m->present[i] ? "present" : "missing");
        if (m->present[i])
          g_print ("(pts %" GST_TIME_FORMAT " dur %" GST_TIME_FORMAT " age %" GST_TIME_FORMAT ")",
              GST_TIME_ARGS (m->pts[i]), GST_TIME_ARGS (m->duration[i]), GST_TIME_ARGS (m->age[i]));
        if (m->present[i] && g_str_equal (g_quark_to_string (m->modality[i]), "text")
            && GST_CLOCK_TIME_IS_VALID (m->pts[i]) && GST_CLOCK_TIME_IS_VALID (m->age[i]))
          with_text++;
      }
      g_print ("\n");
      gst_sample_unref (sample);
    }
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return n > 0 && with_text > 0 ? 0 : 1;
}
