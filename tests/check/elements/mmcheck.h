/* Helpers shared by the mm element tests (GstCheck).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything is static inline so that each test program uses what it needs.
 * Fixtures live in $MM_FIXTURES (set by tests/check/meson.build).
 */
#ifndef MM_CHECK_H
#define MM_CHECK_H

#include <math.h>
#include <string.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>

/* Path of fixture @name (free with g_free). */
static inline gchar *
fixture (const gchar *name)
{
  const gchar *dir = g_getenv ("MM_FIXTURES");

  fail_unless (dir != NULL, "MM_FIXTURES not set");
  return g_build_filename (dir, name, NULL);
}

/* A harness around "@factory model=<tiny fixture> @extra". */
static inline GstHarness *
mm_harness_new (const gchar *factory, const gchar *extra)
{
  gchar *path = fixture ("tiny.safetensors");
  gchar *desc = g_strdup_printf ("%s model=\"%s\" %s", factory, path, extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (desc);

  g_free (desc);
  g_free (path);
  return h;
}

/* @buf holds @dim floats, each within @tol * (1 + |ref|) of @ref. */
static inline void
assert_embedding_near (GstBuffer *buf, const gfloat *ref, guint dim, gfloat tol)
{
  GstMapInfo map;
  const gfloat *z;
  guint i;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  fail_unless_equals_int (map.size, dim * sizeof (gfloat));
  z = (const gfloat *)map.data;
  for (i = 0; i < dim; i++)
    fail_unless (fabsf (z[i] - ref[i]) <= tol * (1.0f + fabsf (ref[i])), "dim %u: %g vs %g", i,
        z[i], ref[i]);
  gst_buffer_unmap (buf, &map);
}

/* The next event of @type that reached the harness' sink, dropping the
 * others before it; NULL if there is none. */
static inline GstEvent *
pull_event_of_type (GstHarness *h, GstEventType type)
{
  GstEvent *ev;

  while ((ev = gst_harness_try_pull_event (h)) != NULL) {
    if (GST_EVENT_TYPE (ev) == type)
      return ev;
    gst_event_unref (ev);
  }
  return NULL;
}

/* Pops the first message of @type (ERROR or WARNING) from @bus and checks
 * that its text contains each of the NULL-terminated strings after @type. */
static inline void
assert_bus_message (GstBus *bus, GstMessageType type, ...)
{
  GstMessage *msg = gst_bus_pop_filtered (bus, type);
  GError *err = NULL;
  const gchar *expect;
  va_list args;

  fail_unless (msg != NULL, "no %s message on the bus", gst_message_type_get_name (type));
  if (type == GST_MESSAGE_ERROR)
    gst_message_parse_error (msg, &err, NULL);
  else
    gst_message_parse_warning (msg, &err, NULL);
  va_start (args, type);
  while ((expect = va_arg (args, const gchar *)) != NULL)
    fail_unless (strstr (err->message, expect) != NULL, "'%s' not in '%s'", expect, err->message);
  va_end (args);
  g_error_free (err);
  gst_message_unref (msg);
}

/* Writes a valid model with only a concat fusion (no tensors) into a new
 * temporary directory; returns its path (free with remove_model ()). */
static inline gchar *
write_fusion_only_model (void)
{
  static const gchar json[] = "{\"__metadata__\":{\"mm\":\"{\\\"version\\\":1,"
                              "\\\"name\\\":\\\"fusion-only\\\",\\\"components\\\":{\\\"fusion\\\":"
                              "{\\\"type\\\":\\\"concat\\\",\\\"inputs\\\":[{\\\"modality\\\":"
                              "\\\"text\\\",\\\"dim\\\":4}],\\\"dim\\\":4}}}\"}}";
  gchar *dir = g_dir_make_tmp ("mm-model-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "fusion-only.safetensors", NULL);
  guint8 *bytes = g_malloc (8 + sizeof (json) - 1);
  guint64 n = sizeof (json) - 1;

  GST_WRITE_UINT64_LE (bytes, n);
  memcpy (bytes + 8, json, n);
  fail_unless (g_file_set_contents (path, (const gchar *)bytes, 8 + n, NULL));
  g_free (bytes);
  g_free (dir);
  return path;
}

/* Deletes a model written by write_fusion_only_model () and frees @path. */
static inline void
remove_model (gchar *path)
{
  gchar *dir = g_path_get_dirname (path);

  g_unlink (path);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

/* A @factory element given @model_file (absolute, a fixture name, or NULL
 * for none) in a pipeline fails READY->PAUSED with an error whose text
 * contains @expect. */
static inline void
check_model_error (const gchar *factory, const gchar *model_file, const gchar *expect)
{
  GstElement *pipe = gst_pipeline_new (NULL);
  GstElement *e = gst_element_factory_make (factory, NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  gchar *path = model_file
      ? (g_path_is_absolute (model_file) ? g_strdup (model_file) : fixture (model_file))
      : NULL;

  fail_unless (e != NULL, "no element %s", factory);
  if (path)
    g_object_set (e, "model", path, NULL);
  gst_bin_add (GST_BIN (pipe), e);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  assert_bus_message (bus, GST_MESSAGE_ERROR, expect, NULL);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (path);
}

/* The model-error cases every element shares: no model, a missing file, a
 * corrupt file, and a valid model without @component ("text", ...). */
static inline void
check_model_errors (const gchar *factory, const gchar *component)
{
  gchar *path = write_fusion_only_model ();
  gchar *expect = g_strdup_printf ("no %s component", component);

  check_model_error (factory, NULL, "model");
  check_model_error (factory, "does-not-exist.safetensors", "does-not-exist");
  check_model_error (factory, "corrupt.safetensors", "corrupt.safetensors");
  if (strcmp (component, "fusion") != 0)
    check_model_error (factory, path, expect);
  g_free (expect);
  remove_model (path);
}

#endif
