/* Metadata shared by the mm elements and applications.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Both metas describe the buffer's timeline position, not its bytes, so
 * every transform (copy, resize, convert, ...) keeps them unchanged.
 *
 * This file is compiled into a small static library that is linked both
 * into the plugin and into programs that read the metas (tests,
 * applications).  Each copy looks up the GTypes by name before registering
 * them, so whichever copy runs first registers them and the others reuse
 * the same types: gst_buffer_get_mm_*_meta() works in either.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstmmmeta.h"

#define FUSION_API_NAME "MmFusionMetaAPI"
#define FUSION_IMPL_NAME "MmFusionMeta"
#define CLASSIFICATION_API_NAME "MmClassificationMetaAPI"
#define CLASSIFICATION_IMPL_NAME "MmClassificationMeta"

/* Registers the API type @name unless another copy of this file did. */
static GType
register_api (const gchar *name)
{
  static const gchar *tags[] = { NULL };
  GType type = g_type_from_name (name);

  if (type == 0)
    type = gst_meta_api_type_register (name, tags);
  return type;
}

/* ---- MmFusionMeta ---- */

GType
mm_fusion_meta_api_get_type (void)
{
  static GType type = 0;

  if (g_once_init_enter (&type)) {
    GType t = register_api (FUSION_API_NAME);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
mm_fusion_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  MmFusionMeta *fmeta = (MmFusionMeta *)meta;
  guint i;

  fmeta->n_inputs = 0;
  for (i = 0; i < MM_MAX_INPUTS; i++) {
    fmeta->modality[i] = 0;
    fmeta->present[i] = FALSE;
    fmeta->pts[i] = GST_CLOCK_TIME_NONE;
    fmeta->duration[i] = GST_CLOCK_TIME_NONE;
  }
  return TRUE;
}

static gboolean
mm_fusion_meta_transform (
    GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type, gpointer data)
{
  MmFusionMeta *src = (MmFusionMeta *)meta;
  MmFusionMeta *dst = gst_buffer_add_mm_fusion_meta (dest, src->n_inputs);

  if (dst == NULL)
    return FALSE;
  memcpy (dst->modality, src->modality, sizeof (src->modality));
  memcpy (dst->present, src->present, sizeof (src->present));
  memcpy (dst->pts, src->pts, sizeof (src->pts));
  memcpy (dst->duration, src->duration, sizeof (src->duration));
  return TRUE;
}

const GstMetaInfo *
mm_fusion_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **)&info)) {
    const GstMetaInfo *i = gst_meta_get_info (FUSION_IMPL_NAME);

    if (i == NULL)
      i = gst_meta_register (MM_FUSION_META_API_TYPE, FUSION_IMPL_NAME, sizeof (MmFusionMeta),
          mm_fusion_meta_init, NULL, mm_fusion_meta_transform);
    g_once_init_leave ((GstMetaInfo **)&info, (GstMetaInfo *)i);
  }
  return info;
}

/* Adds an MmFusionMeta for @n_inputs fusion inputs (clamped to
 * MM_MAX_INPUTS), every input marked missing.  Returns the meta, owned by
 * @buffer, or NULL if @buffer is not writable. */
MmFusionMeta *
gst_buffer_add_mm_fusion_meta (GstBuffer *buffer, guint n_inputs)
{
  MmFusionMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);

  meta = (MmFusionMeta *)gst_buffer_add_meta (buffer, mm_fusion_meta_get_info (), NULL);
  if (meta)
    meta->n_inputs = MIN (n_inputs, MM_MAX_INPUTS);
  return meta;
}

/* ---- MmClassificationMeta ---- */

GType
mm_classification_meta_api_get_type (void)
{
  static GType type = 0;

  if (g_once_init_enter (&type)) {
    GType t = register_api (CLASSIFICATION_API_NAME);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
mm_classification_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  MmClassificationMeta *cmeta = (MmClassificationMeta *)meta;
  guint i;

  cmeta->kind = MM_CLASSIFICATION_SOFTMAX;
  cmeta->n_top = 0;
  memset (cmeta->label, 0, sizeof (cmeta->label));
  memset (cmeta->score, 0, sizeof (cmeta->score));
  cmeta->n_outputs = 0;
  cmeta->outputs = NULL;
  cmeta->n_inputs = 0;
  memset (cmeta->modality, 0, sizeof (cmeta->modality));
  memset (cmeta->present, 0, sizeof (cmeta->present));
  for (i = 0; i < MM_MAX_INPUTS; i++)
    cmeta->pts[i] = cmeta->duration[i] = cmeta->age[i] = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static void
mm_classification_meta_free (GstMeta *meta, GstBuffer *buffer)
{
  MmClassificationMeta *cmeta = (MmClassificationMeta *)meta;

  g_clear_pointer (&cmeta->outputs, g_free);
  cmeta->n_outputs = 0;
}

void
mm_classification_meta_set_outputs (MmClassificationMeta *meta, const gfloat *outputs, guint n)
{
  g_return_if_fail (meta != NULL);
  g_free (meta->outputs);
  meta->outputs = n ? g_memdup2 (outputs, (gsize)n * sizeof (gfloat)) : NULL;
  meta->n_outputs = n;
}

static gboolean
mm_classification_meta_transform (
    GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type, gpointer data)
{
  MmClassificationMeta *src = (MmClassificationMeta *)meta;
  MmClassificationMeta *dst = gst_buffer_add_mm_classification_meta (dest);

  if (dst == NULL)
    return FALSE;
  dst->kind = src->kind;
  dst->n_top = src->n_top;
  memcpy (dst->label, src->label, sizeof (src->label));
  memcpy (dst->score, src->score, sizeof (src->score));
  mm_classification_meta_set_outputs (dst, src->outputs, src->n_outputs);
  dst->n_inputs = src->n_inputs;
  memcpy (dst->modality, src->modality, sizeof (src->modality));
  memcpy (dst->present, src->present, sizeof (src->present));
  memcpy (dst->pts, src->pts, sizeof (src->pts));
  memcpy (dst->duration, src->duration, sizeof (src->duration));
  memcpy (dst->age, src->age, sizeof (src->age));
  return TRUE;
}

const GstMetaInfo *
mm_classification_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **)&info)) {
    const GstMetaInfo *i = gst_meta_get_info (CLASSIFICATION_IMPL_NAME);

    if (i == NULL)
      i = gst_meta_register (MM_CLASSIFICATION_META_API_TYPE, CLASSIFICATION_IMPL_NAME,
          sizeof (MmClassificationMeta), mm_classification_meta_init, mm_classification_meta_free,
          mm_classification_meta_transform);
    g_once_init_leave ((GstMetaInfo **)&info, (GstMetaInfo *)i);
  }
  return info;
}

/* Adds an empty MmClassificationMeta (no labels, no inputs).  Returns the
 * meta, owned by @buffer, or NULL if @buffer is not writable. */
MmClassificationMeta *
gst_buffer_add_mm_classification_meta (GstBuffer *buffer)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);

  return (MmClassificationMeta *)gst_buffer_add_meta (
      buffer, mm_classification_meta_get_info (), NULL);
}

/* ---- the decision as a GstStructure (GstCustomMeta) ---- */

static gboolean
copy_into (GQuark field, const GValue *value, gpointer user_data)
{
  gst_structure_id_set_value ((GstStructure *)user_data, field, value);
  return TRUE;
}

/* Copies go with the structure (GStreamer 1.22 copies nothing by default). */
static gboolean
mm_classification_structure_transform (GstBuffer *dest, GstCustomMeta *meta, GstBuffer *buffer,
    GQuark type, gpointer data, gpointer user_data)
{
  GstCustomMeta *copy;

  if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;
  copy = gst_buffer_add_custom_meta (dest, MM_CLASSIFICATION_STRUCTURE_META);
  if (copy == NULL)
    return FALSE;
  gst_structure_foreach (
      gst_custom_meta_get_structure (meta), copy_into, gst_custom_meta_get_structure (copy));
  return TRUE;
}

const GstMetaInfo *
mm_classification_structure_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **)&info)) {
    static const gchar *tags[] = { NULL };
    const GstMetaInfo *i = gst_meta_get_info (MM_CLASSIFICATION_STRUCTURE_META);

    if (i == NULL)
      i = gst_meta_register_custom (MM_CLASSIFICATION_STRUCTURE_META, tags,
          mm_classification_structure_transform, NULL, NULL);
    g_once_init_leave ((GstMetaInfo **)&info, (GstMetaInfo *)i);
  }
  return info;
}

const GstStructure *
gst_buffer_get_mm_classification_structure (GstBuffer *buffer)
{
  GstCustomMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  mm_classification_structure_meta_get_info ();
  meta = gst_buffer_get_custom_meta (buffer, MM_CLASSIFICATION_STRUCTURE_META);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}
