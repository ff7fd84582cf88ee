/* classify: the mm elements from a C application
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Builds the file pipeline (video, audio and subtitles of an MKV through
 * imageenc, audioenc and textenc into mmfuse and mmdecode), runs it to the
 * end and prints every decision that mmdecode posts on the bus as an
 * `mm-classification` element message:
 *
 *   0:00:01.000  animals    0.957  image+audio+text
 *
 * Usage:   classify MODEL FILE.mkv [INTERVAL]
 *          (INTERVAL: video frames per decision, default 15)
 * Build:   gcc classify.c -o classify $(pkg-config --cflags --libs gstreamer-1.0)
 * Run:     GST_PLUGIN_PATH=build/plugins ./classify models/scenes.safetensors \
 *              build/sample/news.mkv
 *
 * Exit status 0 at EOS, 1 on an error (printed on stderr).
 */
#include <stdio.h>
#include <string.h>

#include <gst/gst.h>

/* "a+b+c" from a GstValueArray of strings; returns a new string. */
static gchar *
join_strings (const GValue *array, const gchar *sep)
{
  GString *s = g_string_new (NULL);
  guint i, n = gst_value_array_get_size (array);

  for (i = 0; i < n; i++) {
    const GValue *v = gst_value_array_get_value (array, i);
    if (i > 0)
      g_string_append (s, sep);
    if (G_VALUE_HOLDS_STRING (v))
      g_string_append (s, g_value_get_string (v));
  }
  return g_string_free (s, FALSE);
}

/* Prints one mm-classification message; returns FALSE if it is malformed. */
static gboolean
print_decision (const GstStructure *s)
{
  const GValue *labels = gst_structure_get_value (s, "labels");
  const GValue *scores = gst_structure_get_value (s, "scores");
  const GValue *present = gst_structure_get_value (s, "present");
  guint64 pts = GST_CLOCK_TIME_NONE;
  const gchar *label = "(none)";
  gdouble score = 0.0;
  gchar *mods;

  if (labels == NULL || scores == NULL || present == NULL || !GST_VALUE_HOLDS_ARRAY (labels)
      || !GST_VALUE_HOLDS_ARRAY (scores) || !GST_VALUE_HOLDS_ARRAY (present))
    return FALSE;
  if (!gst_structure_get_uint64 (s, "stream-time", &pts) || !GST_CLOCK_TIME_IS_VALID (pts))
    gst_structure_get_uint64 (s, "pts", &pts);
  if (gst_value_array_get_size (labels) > 0) {
    label = g_value_get_string (gst_value_array_get_value (labels, 0));
    score = g_value_get_double (gst_value_array_get_value (scores, 0));
  }
  mods = join_strings (present, "+");
  if (GST_CLOCK_TIME_IS_VALID (pts)) {
    guint64 ms = (pts + GST_MSECOND / 2) / GST_MSECOND;
    g_print ("%u:%02u:%02u.%03u", (guint)(ms / 3600000), (guint)(ms / 60000 % 60),
        (guint)(ms / 1000 % 60), (guint)(ms % 1000));
  } else {
    g_print ("?:??:??.???");
  }
  g_print ("  %-10s %.3f  %s\n", label, score, mods);
  g_free (mods);
  return TRUE;
}

int
main (int argc, char **argv)
{
  GstElement *pipeline;
  GstBus *bus;
  GError *error = NULL;
  gchar *desc, *model_q, *file_q;
  guint interval = 15;
  gboolean done = FALSE;
  int status = 0;
  guint decisions = 0;

  gst_init (&argc, &argv);
  if (argc < 3 || argc > 4) {
    g_printerr ("usage: %s MODEL FILE.mkv [INTERVAL]\n", argv[0]);
    return 1;
  }
  if (argc == 4)
    interval = (guint)g_ascii_strtoull (argv[3], NULL, 10);
  if (interval == 0)
    interval = 1;

  /* Paths are quoted for the launch syntax; deep queues because mmfuse
   * waits until every stream has moved past the time it decides about. */
  model_q = g_strescape (argv[1], NULL);
  file_q = g_strescape (argv[2], NULL);
#define Q "queue max-size-time=5000000000 max-size-bytes=0 max-size-buffers=0"
  desc = g_strdup_printf ("filesrc location=\"%s\" ! matroskademux name=d "
                          "d.video_0 ! " Q " ! decodebin ! videoconvert ! "
                          "imageenc model=\"%s\" interval=%u ! f.sink_0 "
                          "d.audio_0 ! " Q " ! decodebin ! audioconvert ! audioresample ! "
                          "audioenc model=\"%s\" ! f.sink_1 "
                          "d.subtitle_0 ! " Q " ! textenc model=\"%s\" ! f.sink_2 "
                          "mmfuse name=f model=\"%s\" max-age=0 ! mmdecode model=\"%s\" ! "
                          "fakesink sync=false",
      file_q, model_q, interval, model_q, model_q, model_q, model_q);
#undef Q
  pipeline = gst_parse_launch (desc, &error);
  g_free (desc);
  g_free (model_q);
  g_free (file_q);
  if (pipeline == NULL) {
    g_printerr ("could not build the pipeline: %s\n", error->message);
    g_clear_error (&error);
    return 1;
  }
  if (error != NULL) { /* a recoverable error, e.g. a missing element */
    g_printerr ("pipeline warning: %s\n", error->message);
    g_clear_error (&error);
  }

  bus = gst_element_get_bus (pipeline);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    g_printerr ("could not start the pipeline\n");

  /* The application's loop: element messages carry the decisions. */
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop_filtered (
        bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    const GstStructure *s;

    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_ELEMENT:
        s = gst_message_get_structure (msg);
        if (s != NULL && gst_structure_has_name (s, "mm-classification")) {
          if (print_decision (s))
            decisions++;
          else
            g_printerr ("malformed mm-classification message\n");
        }
        break;
      case GST_MESSAGE_EOS:
        done = TRUE;
        break;
      case GST_MESSAGE_ERROR: {
        gchar *dbg = NULL;
        gst_message_parse_error (msg, &error, &dbg);
        g_printerr (
            "error from %s: %s\n%s\n", GST_OBJECT_NAME (msg->src), error->message, dbg ? dbg : "");
        g_clear_error (&error);
        g_free (dbg);
        status = 1;
        done = TRUE;
        break;
      }
      default:
        break;
    }
    gst_message_unref (msg);
  }

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_printerr ("%u decisions\n", decisions);
  return status;
}
