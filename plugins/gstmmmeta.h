/* Metadata shared by the mm elements and applications.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Caps of an embedding stream (one buffer = one float32 vector of `dim`
 * native-endian floats):
 *
 *   application/x-mm-embedding, modality=(string){text,image,audio,fused,<any>},
 *       dim=(int)[1,65536], model=(string)NAME
 *
 * Embeddings are native-endian IEEE-754 float32.  GDP over TCP or SRT
 * carries the bytes as they are, which is safe between hosts of the same
 * byte order: every platform Debian builds this for that matters here
 * (amd64, arm64, ppc64el, riscv64) is little-endian.  A big-endian host
 * (s390x) would need to swap the floats; nothing here does that (README,
 * "Pipelines across processes").
 *
 * MmFusionMeta (on mmfuse's output): provenance of a fused vector -- for
 * each fusion input, its modality, whether it was present, and the PTS and
 * duration of the embedding used (the frame, the audio window, the cue).
 *
 * MmClassificationMeta (on mmdecode's output): the decision -- top labels and
 * scores, the head's whole output vector, and the provenance of every
 * fusion input with the age of its embedding at the decision.
 *
 * For applications: after `meson install`, `pkg-config --cflags --libs
 * mm-gst` gives this header and the library that defines the functions
 * below; the plugin and the application share the same meta types (each copy
 * registers them only if no other did).  From Python (or any binding that
 * cannot read a C struct), read the GstCustomMeta named
 * MM_CLASSIFICATION_STRUCTURE_META ("MmClassificationStructureMeta") that
 * mmdecode also attaches: its GstStructure has exactly the fields of the
 * `mm-classification` bus message.
 *
 * Usage (C):
 *
 *   MmClassificationMeta *m = gst_buffer_get_mm_classification_meta (buf);
 *   for (i = 0; m && i < m->n_inputs; i++)
 *     g_print ("%s %s pts %" GST_TIME_FORMAT " age %" GST_TIME_FORMAT "\n",
 *         g_quark_to_string (m->modality[i]), m->present[i] ? "present" : "missing",
 *         GST_TIME_ARGS (m->pts[i]), GST_TIME_ARGS (m->age[i]));
 *
 * All fields are plain data owned by the buffer; read them while holding a
 * reference to it.  Not thread-safe for writing (writable buffers only).
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
  GstClockTime pts[MM_MAX_INPUTS];      /* GST_CLOCK_TIME_NONE when missing */
  GstClockTime duration[MM_MAX_INPUTS]; /* NONE when missing or unknown */
} MmFusionMeta;

GType mm_fusion_meta_api_get_type (void);
const GstMetaInfo *mm_fusion_meta_get_info (void);
#define MM_FUSION_META_API_TYPE (mm_fusion_meta_api_get_type ())
#define gst_buffer_get_mm_fusion_meta(b)                                                           \
  ((MmFusionMeta *)gst_buffer_get_meta ((b), MM_FUSION_META_API_TYPE))
MmFusionMeta *gst_buffer_add_mm_fusion_meta (GstBuffer *buffer, guint n_inputs);

/* ---- MmClassificationMeta ---- */
typedef enum
{
  MM_CLASSIFICATION_SOFTMAX = 0,    /* exclusive classes: label/score best first */
  MM_CLASSIFICATION_SIGMOID = 1,    /* tags: every one above the threshold, best first */
  MM_CLASSIFICATION_REGRESSION = 2, /* values: every output in the model's order */
} MmClassificationKind;

typedef struct
{
  GstMeta meta;
  MmClassificationKind kind;
  guint n_top;              /* <= MM_MAX_TOP */
  GQuark label[MM_MAX_TOP]; /* best first; regression: the model's order */
  gfloat score[MM_MAX_TOP]; /* regression: raw values */
  guint n_outputs;          /* the head's whole output vector (after smoothing) */
  gfloat *outputs;          /* n_outputs values, owned by the meta */
  guint n_inputs;           /* provenance, one entry per fusion input */
  GQuark modality[MM_MAX_INPUTS];
  gboolean present[MM_MAX_INPUTS];
  GstClockTime pts[MM_MAX_INPUTS];      /* of the embedding used; NONE when missing */
  GstClockTime duration[MM_MAX_INPUTS]; /* NONE when missing or unknown */
  GstClockTime age[MM_MAX_INPUTS];      /* decision PTS - end of the embedding
                                         * (0 when it covers the decision; NONE
                                         * when missing or unknown) */
} MmClassificationMeta;

GType mm_classification_meta_api_get_type (void);
const GstMetaInfo *mm_classification_meta_get_info (void);
#define MM_CLASSIFICATION_META_API_TYPE (mm_classification_meta_api_get_type ())
#define gst_buffer_get_mm_classification_meta(b)                                                   \
  ((MmClassificationMeta *)gst_buffer_get_meta ((b), MM_CLASSIFICATION_META_API_TYPE))
MmClassificationMeta *gst_buffer_add_mm_classification_meta (GstBuffer *buffer);
/* Copies @n values into meta->outputs (replacing any). */
void
mm_classification_meta_set_outputs (MmClassificationMeta *meta, const gfloat *outputs, guint n);

/* ---- the same decision as a GstStructure, for language bindings ---- */
#define MM_CLASSIFICATION_STRUCTURE_META "MmClassificationStructureMeta"
/* Registers the custom meta (idempotent); returns its info. */
const GstMetaInfo *mm_classification_structure_meta_get_info (void);
/* The `mm-classification` structure attached to @buffer, or NULL. */
const GstStructure *gst_buffer_get_mm_classification_structure (GstBuffer *buffer);

G_END_DECLS
#endif
