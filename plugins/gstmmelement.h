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

#define GST_TYPE_MM_PRECISION (gst_mm_precision_get_type ())
GType gst_mm_precision_get_type (void);

#define GST_MM_DEFAULT_PRECISION MM_PRECISION_FP32

/* Installs the common "precision" enum property (GstMmPrecision: "fp32"
 * default, "bf16"; changeable in NULL and READY only) as @prop_id. */
void gst_mm_install_precision_property (GObjectClass *gobject_class, guint prop_id);

/* The precision to give libmm for @asked: bf16 where the CPU runs it, else
 * fp32, the first element of the process to fall back posting one
 * GST_ELEMENT_WARNING (the others log at INFO).  Call from start. */
MmPrecision gst_mm_element_resolve_precision (GstElement *element, MmPrecision asked);
void gst_mm_element_check_precision (
    GstElement *element, MmPrecision asked, MmPrecision got, const gchar *component);

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

/* For an encoder that may output nothing for a while after a segment
 * (audioenc's first window, textenc's first cue): pushes an empty GAP
 * event (duration 0) at @segment's start on @srcpad so that the sinks
 * downstream can preroll, unless upstream of @sinkpad is live (live
 * pipelines do not preroll, and an aggregator downstream would count the
 * GAP as data from a pad it otherwise ignores until its first buffer).
 * Does nothing before @srcpad has caps or without a TIME segment start.
 * Returns TRUE when the GAP was pushed.  Streaming thread. */
gboolean gst_mm_element_push_preroll_gap (
    GstElement *element, GstPad *sinkpad, GstPad *srcpad, const GstSegment *segment);

/* A new buffer of @dim float32 values (uninitialised). */
GstBuffer *gst_mm_embedding_buffer_new (guint dim);

/* The encoders keep their fixed output caps in a GstCaps * field guarded
 * by the object lock (NULL while no model is loaded); these helpers take
 * @caps_field, the address of that field. */

/* Sets *@caps_field, under @element's object lock, to the embedding caps
 * of @model's @component: modality @modality, the component's dimension
 * and the model's name.  Returns that dimension.  Call at the end of
 * start, once the model is loaded. */
guint gst_mm_element_publish_embedding_caps (GstElement *element, GstCaps **caps_field,
    MmModel *model, MmComponent component, const gchar *modality);

/* Sets, under @element's object lock, the optional `duration` field
 * (guint64 ns) of *@caps_field: the nominal duration of one embedding,
 * which a consumer uses for a buffer whose duration was lost on the way
 * (e.g. over RTP).  GST_CLOCK_TIME_NONE or 0 removes the field.  Call
 * after gst_mm_element_publish_embedding_caps(). */
void
gst_mm_element_set_caps_duration (GstElement *element, GstCaps **caps_field, GstClockTime duration);

/* @caps (consumed) with its `duration` field set to @duration, or removed
 * when @duration is GST_CLOCK_TIME_NONE or 0. */
GstCaps *gst_mm_caps_with_duration (GstCaps *caps, GstClockTime duration);

/* A new reference to *@caps_field, taken under @element's object lock, or
 * NULL when it is unset. */
GstCaps *gst_mm_element_ref_caps (GstElement *element, GstCaps **caps_field);

/* gst_pad_set_caps (@srcpad, *@caps_field), the caps read under the
 * object lock.  FALSE when no caps are set (no model) or the pad refuses
 * them. */
gboolean gst_mm_element_set_src_caps (GstElement *element, GstPad *srcpad, GstCaps **caps_field);

/* Answers a caps @query on @srcpad with *@caps_field, or @srcpad's
 * template caps when it is unset, intersected with the query's filter.
 * Returns TRUE (the query is answered). */
gboolean gst_mm_element_src_caps_query (
    GstElement *element, GstPad *srcpad, GstCaps **caps_field, GstQuery *query);

G_END_DECLS
#endif
