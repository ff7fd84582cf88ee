/* Helpers shared by the mm elements: the "model" property, model loading
 * with errors posted on the bus, and embedding caps.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_MM_ELEMENT_H
#define GST_MM_ELEMENT_H

#include <gst/gst.h>
#include <mm.h>

G_BEGIN_DECLS

#define GST_MM_MODEL_PROPERTY_BLURB                                                                \
  "Path of the model file (safetensors with libmm metadata, see "                                  \
  "models/FORMAT.md); loaded when going from READY to PAUSED"

/* Installs the common "model" string property (default NULL, readable,
 * writable, changeable in NULL and READY only) as @prop_id. */
void gst_mm_install_model_property (GObjectClass *gobject_class, guint prop_id);

/* Opens the model at @path (may be NULL: no model set) for @element, which
 * needs @component.  On failure posts GST_ELEMENT_ERROR on the bus with
 * libmm's message as the user text and returns NULL.  Returns a new
 * reference otherwise.  Call from a state change, never under the object
 * lock (it reads the file). */
MmModel *gst_mm_element_open_model (GstElement *element, const gchar *path, MmComponent component);

/* As gst_mm_element_open_model(), with the path read from *@path_field
 * (the element's "model" property field) under the object lock. */
MmModel *gst_mm_element_open_model_property (
    GstElement *element, gchar *const *path_field, MmComponent component);

/* Posts GST_ELEMENT_ERROR (RESOURCE, SETTINGS) for a libmm context that
 * could not be created (@what names it, e.g. "text encoder"). */
void
gst_mm_element_post_context_error (GstElement *element, const gchar *what, const GError *error);

/* application/x-mm-embedding, modality=@modality, dim=@dim, model=@model_name
 * (fixed caps; @model_name may be NULL to leave the field out). */
GstCaps *gst_mm_embedding_caps_new (const gchar *modality, guint dim, const gchar *model_name);

/* Embedding @caps from @input (e.g. "pad sink_0") that name a model
 * other than @model: posts a CORE/NEGOTIATION warning naming both (the
 * dimensions agree, but the vectors may not mean what @model expects).
 * Caps without a model field (e.g. from an appsrc) are fine. */
void gst_mm_element_check_caps_model (
    GstElement *element, const gchar *input, GstCaps *caps, MmModel *model);

/* gst_pad_push (@srcpad, @buffer); when that fails with not-negotiated
 * because the next element refuses @srcpad's caps, posts a CORE/NEGOTIATION
 * error saying so (with the caps) -- otherwise only upstream's generic
 * "not-negotiated" would reach the application.  A refusal further
 * downstream is left to the element that refused. */
GstFlowReturn gst_mm_element_push (GstElement *element, GstPad *srcpad, GstBuffer *buffer);

/* Answers the caps @query with @caps (consumed) intersected with the
 * query's filter, if any.  Returns TRUE (the query is answered). */
gboolean gst_mm_caps_query_reply (GstQuery *query, GstCaps *caps);

/* Loads/frees an element's libmm state; see gst_mm_element_change_state. */
typedef gboolean (*GstMmStartFunc) (GstElement *element);
typedef void (*GstMmStopFunc) (GstElement *element);

/* change_state for the plain GstElement subclasses: @start (which posts its
 * own error) before READY->PAUSED, the parent's change_state, then @stop
 * after PAUSED->READY (pads deactivated) or when READY->PAUSED failed. */
GstStateChangeReturn gst_mm_element_change_state (GstElement *element, GstStateChange transition,
    GstElementClass *parent_class, GstMmStartFunc start, GstMmStopFunc stop);

/* A new buffer of @dim float32 values (uninitialised). */
GstBuffer *gst_mm_embedding_buffer_new (guint dim);

G_END_DECLS
#endif
