/* Helpers shared by the mm elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmmelement.h"
#include "gstmmmeta.h"

void
gst_mm_install_model_property (GObjectClass *gobject_class, guint prop_id)
{
  g_object_class_install_property (gobject_class, prop_id,
      g_param_spec_string ("model", "Model", GST_MM_MODEL_PROPERTY_BLURB, NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
}

GType
gst_mm_precision_get_type (void)
{
  static gsize type;
  static const GEnumValue values[] = {
    { MM_PRECISION_FP32, "32-bit float throughout", "fp32" },
    { MM_PRECISION_BF16,
        "bfloat16 products summed in fp32 in the convolutions and linears (resnet image "
        "encoder, BERT text encoder, cnn1d audio encoder, a graph's convolutions) on CPUs with "
        "AVX512_BF16; elsewhere fp32 with one warning",
        "bf16" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstMmPrecision", values));
  return type;
}

void
gst_mm_install_precision_property (GObjectClass *gobject_class, guint prop_id)
{
  g_object_class_install_property (gobject_class, prop_id,
      g_param_spec_enum ("precision", "Precision",
          "Arithmetic of the encoder's convolutions and linears: fp32, or bf16 (about twice "
          "as fast where the CPU has AVX512_BF16, embeddings within a few per mille; "
          "fp32 with a warning on other CPUs and for components without a bf16 path: "
          "word vectors, a graph without convolutions)",
          GST_TYPE_MM_PRECISION, GST_MM_DEFAULT_PRECISION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  gst_type_mark_as_plugin_api (GST_TYPE_MM_PRECISION, 0);
}

MmPrecision
gst_mm_element_resolve_precision (GstElement *element, MmPrecision asked)
{
  static gint warned;
  if (asked != MM_PRECISION_BF16 || mm_precision_supported (MM_PRECISION_BF16))
    return asked;
  if (g_atomic_int_compare_and_exchange (&warned, 0, 1))
    GST_ELEMENT_WARNING (element, RESOURCE, SETTINGS,
        ("precision=bf16 runs as fp32: this CPU lacks AVX512_BF16 (or MM_DISABLE_BF16 is set)"),
        (NULL));
  else
    GST_INFO_OBJECT (element, "precision=bf16 runs as fp32 (no AVX512_BF16)");
  return MM_PRECISION_FP32;
}

/* After the encoder was made from @asked (already resolved for the CPU):
 * a component without a bf16 path (word vectors, a graph without convolutions)
 * runs fp32; the user who asked for bf16 is told so on the bus. */
void
gst_mm_element_check_precision (
    GstElement *element, MmPrecision asked, MmPrecision got, const gchar *component)
{
  if (asked == MM_PRECISION_BF16 && got != MM_PRECISION_BF16)
    GST_ELEMENT_WARNING (element, RESOURCE, SETTINGS,
        ("precision=bf16 runs as fp32: the model's %s component has no bf16 path (bf16 covers "
         "the resnet, BERT and cnn1d encoders and a graph's convolutions; word vectors and a "
         "graph without convolutions run fp32)",
            component),
        (NULL));
}

MmModel *
gst_mm_element_open_model (GstElement *element, const gchar *path, MmComponent component)
{
  GError *err = NULL;
  MmModel *model;
  const gchar *cname = mm_component_name (component);

  if (path == NULL || *path == '\0') {
    GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
        ("No model file set: set the 'model' property to a model file "
         "with a %s component",
            cname),
        (NULL));
    return NULL;
  }

  model = mm_model_open (path, &err);
  if (model == NULL) {
    if (err && err->code == MM_ERROR_IO)
      GST_ELEMENT_ERROR (element, RESOURCE, OPEN_READ, ("%s", err->message),
          ("mm_model_open (\"%s\") failed", path));
    else
      GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS, ("%s", err ? err->message : "invalid model"),
          ("mm_model_open (\"%s\") failed", path));
    g_clear_error (&err);
    return NULL;
  }

  if (!mm_model_has_component (model, component)) {
    GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS,
        ("%s: the model has no %s component, which %s needs", path, cname,
            GST_ELEMENT_NAME (element)),
        ("model \"%s\"", mm_model_get_name (model)));
    mm_model_unref (model);
    return NULL;
  }
  return model;
}

MmModel *
gst_mm_element_open_model_property (
    GstElement *element, gchar *const *path_field, MmComponent component)
{
  MmModel *model;
  gchar *path;

  GST_OBJECT_LOCK (element);
  path = g_strdup (*path_field);
  GST_OBJECT_UNLOCK (element);
  model = gst_mm_element_open_model (element, path, component);
  g_free (path);
  return model;
}

void
gst_mm_element_post_context_error (GstElement *element, const gchar *what, const GError *error)
{
  GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS, ("%s", error ? error->message : "libmm failed"),
      ("could not create the %s", what));
}

GstCaps *
gst_mm_embedding_caps_new (const gchar *modality, guint dim, const gchar *model_name)
{
  GstCaps *caps = gst_caps_new_simple (MM_EMBEDDING_CAPS_NAME, "modality", G_TYPE_STRING, modality,
      "dim", G_TYPE_INT, (gint)dim, NULL);

  if (model_name)
    gst_caps_set_simple (caps, "model", G_TYPE_STRING, model_name, NULL);
  return caps;
}

GstBuffer *
gst_mm_embedding_buffer_new (guint dim)
{
  return gst_buffer_new_allocate (NULL, (gsize)dim * sizeof (gfloat), NULL);
}

void
gst_mm_element_check_caps_model (
    GstElement *element, const gchar *input, GstCaps *caps, MmModel *model)
{
  const gchar *from = gst_structure_get_string (gst_caps_get_structure (caps, 0), "model");

  if (from == NULL || g_strcmp0 (from, mm_model_get_name (model)) == 0)
    return;
  GST_ELEMENT_WARNING (element, CORE, NEGOTIATION,
      ("%s: embeddings from model \"%s\", but %s runs model \"%s\" (%s); "
       "the dimensions agree, but use the same model file for every "
       "element unless these models were made to work together",
          input, from, GST_ELEMENT_NAME (element), mm_model_get_name (model),
          mm_model_get_path (model)),
      ("caps %" GST_PTR_FORMAT, caps));
}

GstFlowReturn
gst_mm_element_push (GstElement *element, GstPad *srcpad, GstBuffer *buffer)
{
  GstFlowReturn ret = gst_pad_push (srcpad, buffer);
  GstCaps *caps;
  gchar *str;

  if (ret != GST_FLOW_NOT_NEGOTIATED)
    return ret;
  caps = gst_pad_get_current_caps (srcpad);
  if (caps && gst_pad_is_linked (srcpad) && !gst_pad_peer_query_accept_caps (srcpad, caps)) {
    str = gst_caps_to_string (caps);
    GST_ELEMENT_ERROR (element, CORE, NEGOTIATION,
        ("The element after %s refuses its output %s: check that it takes "
         "this (same model, same dimension, matching capsfilter fields)",
            GST_ELEMENT_NAME (element), str),
        (NULL));
    g_free (str);
  }
  gst_clear_caps (&caps);
  return ret;
}

gboolean
gst_mm_caps_query_reply (GstQuery *query, GstCaps *caps)
{
  GstCaps *filter;

  gst_query_parse_caps (query, &filter);
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  gst_query_set_caps_result (query, caps);
  gst_caps_unref (caps);
  return TRUE;
}

GstStateChangeReturn
gst_mm_element_change_state (GstElement *element, GstStateChange transition,
    GstElementClass *parent_class, GstMmStartFunc start, GstMmStopFunc stop)
{
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !start (element))
    return GST_STATE_CHANGE_FAILURE;

  ret = parent_class->change_state (element, transition);
  if ((ret == GST_STATE_CHANGE_FAILURE && transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      || transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    stop (element);
  return ret;
}

guint
gst_mm_element_publish_embedding_caps (GstElement *element, GstCaps **caps_field, MmModel *model,
    MmComponent component, const gchar *modality)
{
  guint dim = mm_model_get_dim (model, component);
  GstCaps *caps = gst_mm_embedding_caps_new (modality, dim, mm_model_get_name (model));

  GST_OBJECT_LOCK (element);
  gst_caps_replace (caps_field, caps);
  GST_OBJECT_UNLOCK (element);
  gst_caps_unref (caps);
  return dim;
}

GstCaps *
gst_mm_caps_with_duration (GstCaps *caps, GstClockTime duration)
{
  guint i;

  caps = gst_caps_make_writable (caps);
  if (GST_CLOCK_TIME_IS_VALID (duration) && duration > 0)
    gst_caps_set_simple (caps, "duration", G_TYPE_UINT64, (guint64)duration, NULL);
  else
    for (i = 0; i < gst_caps_get_size (caps); i++)
      gst_structure_remove_field (gst_caps_get_structure (caps, i), "duration");
  return caps;
}

void
gst_mm_element_set_caps_duration (GstElement *element, GstCaps **caps_field, GstClockTime duration)
{
  GST_OBJECT_LOCK (element);
  if (*caps_field)
    *caps_field = gst_mm_caps_with_duration (*caps_field, duration);
  GST_OBJECT_UNLOCK (element);
}

GstCaps *
gst_mm_element_ref_caps (GstElement *element, GstCaps **caps_field)
{
  GstCaps *caps;

  GST_OBJECT_LOCK (element);
  caps = *caps_field ? gst_caps_ref (*caps_field) : NULL;
  GST_OBJECT_UNLOCK (element);
  return caps;
}

gboolean
gst_mm_element_set_src_caps (GstElement *element, GstPad *srcpad, GstCaps **caps_field)
{
  GstCaps *caps = gst_mm_element_ref_caps (element, caps_field);
  gboolean ret;

  if (caps == NULL)
    return FALSE;
  GST_DEBUG_OBJECT (element, "output %" GST_PTR_FORMAT, caps);
  ret = gst_pad_set_caps (srcpad, caps);
  gst_caps_unref (caps);
  return ret;
}

gboolean
gst_mm_element_src_caps_query (
    GstElement *element, GstPad *srcpad, GstCaps **caps_field, GstQuery *query)
{
  GstCaps *caps = gst_mm_element_ref_caps (element, caps_field);

  if (caps == NULL)
    caps = gst_pad_get_pad_template_caps (srcpad);
  return gst_mm_caps_query_reply (query, caps);
}

gboolean
gst_mm_element_push_preroll_gap (
    GstElement *element, GstPad *sinkpad, GstPad *srcpad, const GstSegment *segment)
{
  GstQuery *query;
  gboolean live = FALSE;

  if (!gst_pad_has_current_caps (srcpad) || segment->format != GST_FORMAT_TIME
      || !GST_CLOCK_TIME_IS_VALID (segment->start))
    return FALSE;
  query = gst_query_new_latency ();
  if (gst_pad_peer_query (sinkpad, query))
    gst_query_parse_latency (query, &live, NULL, NULL);
  gst_query_unref (query);
  if (live)
    return FALSE;
  GST_DEBUG_OBJECT (element, "empty GAP at %" GST_TIME_FORMAT " so that sinks preroll",
      GST_TIME_ARGS (segment->start));
  gst_pad_push_event (srcpad, gst_event_new_gap (segment->start, 0));
  return TRUE;
}
