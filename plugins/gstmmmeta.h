/* Metadata shared by the mm elements and applications.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Caps of an embedding stream (one buffer = one float32 vector of `dim`
 * native-endian floats):
 *
 *   application/x-mm-embedding, modality=(string){text,image,audio,fused,<any>},
 *       dim=(int)[1,65536], model=(string)NAME
 *
 * MmFusionMeta (on mmfuse's output): provenance of a fused vector -- for
 * each fusion input, its modality, whether it was present, and the PTS of the
 * embedding used.
 *
 * MmClassificationMeta (on mmdecode's output): the decision -- top labels and
 * scores, plus the presence mask copied from MmFusionMeta.
 */
#ifndef GST_MM_META_H
#define GST_MM_META_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define MM_EMBEDDING_CAPS_NAME "application/x-mm-embedding"
#define MM_MAX_INPUTS 16
#define MM_MAX_TOP 16

/* ---- MmFusionMeta ---- */
typedef struct
{
  GstMeta meta;
  guint n_inputs;
  GQuark modality[MM_MAX_INPUTS]; /* "image", "audio", "text", ... */
  gboolean present[MM_MAX_INPUTS];
  GstClockTime pts[MM_MAX_INPUTS]; /* GST_CLOCK_TIME_NONE when missing */
} MmFusionMeta;

GType mm_fusion_meta_api_get_type (void);
const GstMetaInfo *mm_fusion_meta_get_info (void);
#define MM_FUSION_META_API_TYPE (mm_fusion_meta_api_get_type ())
#define gst_buffer_get_mm_fusion_meta(b)                                                           \
  ((MmFusionMeta *)gst_buffer_get_meta ((b), MM_FUSION_META_API_TYPE))
MmFusionMeta *gst_buffer_add_mm_fusion_meta (GstBuffer *buffer, guint n_inputs);

/* ---- MmClassificationMeta ---- */
typedef struct
{
  GstMeta meta;
  guint n_top;              /* <= MM_MAX_TOP */
  GQuark label[MM_MAX_TOP]; /* best first */
  gfloat score[MM_MAX_TOP];
  guint n_inputs; /* presence, copied from MmFusionMeta */
  GQuark modality[MM_MAX_INPUTS];
  gboolean present[MM_MAX_INPUTS];
} MmClassificationMeta;

GType mm_classification_meta_api_get_type (void);
const GstMetaInfo *mm_classification_meta_get_info (void);
#define MM_CLASSIFICATION_META_API_TYPE (mm_classification_meta_api_get_type ())
#define gst_buffer_get_mm_classification_meta(b)                                                   \
  ((MmClassificationMeta *)gst_buffer_get_meta ((b), MM_CLASSIFICATION_META_API_TYPE))
MmClassificationMeta *gst_buffer_add_mm_classification_meta (GstBuffer *buffer);

G_END_DECLS
#endif
