/* imageenc: video frames to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-imageenc
 * @title: imageenc
 *
 * Turns video frames into embeddings with the model's image encoder.  Any
 * frame size is accepted: libmm resizes (bilinear) and normalises each
 * frame as the model file says.  Each output buffer holds one float32
 * vector.
 *
 * Video is taken as decoders give it: I420, NV12 and YUY2 as well as the
 * packed RGB formats, so no videoconvert is needed in front.  A YUV frame
 * is converted to RGB only at the pixels the resize reads, and only for
 * the frames that are encoded, with the matrix (BT.601, BT.709, BT.2020)
 * and range (limited or full) of the caps' colorimetry.  Each pixel takes
 * the chroma sample that covers it (no chroma interpolation).  Against
 * `videoconvert chroma-mode=none dither=none ! video/x-raw,format=RGB`
 * the RGB before normalisation differs by at most 5.6 levels in limited
 * range and 2.8 in full range (videoconvert's 8-bit fixed-point matrix
 * truncates; libmm's is float), asserted by the yuv-videoconvert test.
 * videoconvert's defaults interpolate NV12/YUY2 chroma linearly, so at
 * chroma edges they differ from this by much more (up to 155 levels on
 * per-pixel noise), which is a difference of filter, not an error.
 *
 * With #GstImageEnc:interval N, one frame in N is encoded: the first frame,
 * then every Nth.  The embedding keeps the encoded frame's PTS and its
 * duration covers the N frames it stands for (N times the frame duration,
 * taken from the buffer or else the caps' framerate).  The count restarts
 * after a flush and at a DISCONT buffer, so the first frame after a seek or
 * a discontinuity is always encoded.
 *
 * Caps: when the input caps have a framerate (not 0/1), the output caps
 * carry `duration=(guint64)` the nominal duration of one embedding in ns
 * (`interval` frames of 1/framerate), for consumers of embeddings whose
 * buffer durations were lost on the way (e.g. over RTP); mmfuse falls back
 * to it.  Changing `interval` while playing renegotiates them.
 *
 * Lateness: QoS is enabled by default (the #GstBaseTransform:qos property).
 * The sink's QoS events tell the element the earliest running time that can
 * still be shown; a frame whose running time is already earlier than that
 * is dropped before it is encoded (and a QoS message is posted), so under
 * load in a live pipeline the encoder skips frames instead of falling
 * further behind.  Frames dropped this way do not count towards the
 * interval.  No latency is added to the latency query.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=30 ! videoconvert ! \
 *     imageenc model=tests/fixtures/tiny.safetensors interval=5 ! fakesink dump=true
 * ]| Six embeddings, each covering five frames.
 * |[
 * gst-launch-1.0 v4l2src ! videoconvert ! imageenc model=scenes.safetensors ! f.sink_0 \
 *     mmfuse name=f model=scenes.safetensors ! mmdecode model=scenes.safetensors ! fakesink
 * ]| Classifies a live camera.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/video/video.h>
#include <mm.h>

#include "gstimageenc.h"
#include "gstmmelement.h"
#include "gstmmmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_image_enc_debug);
#define GST_CAT_DEFAULT gst_image_enc_debug

#define IMAGE_FORMATS                                                                              \
  "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, "                                         \
  "ABGR, GRAY8, I420, NV12, YUY2 }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (IMAGE_FORMATS)));

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (MM_EMBEDDING_CAPS_NAME ", modality = (string) image, "
                                                "dim = (int) [ 1, 65536 ]"));

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_INTERVAL,
  PROP_PRECISION,
};

#define DEFAULT_INTERVAL 1

struct _GstImageEnc
{
  GstBaseTransform parent;

  /* properties: object lock */
  gchar *model_path;
  guint interval;
  MmPrecision precision;
  GstCaps *src_caps; /* fixed output caps while a model is loaded */

  /* set in start, cleared in stop; used by the streaming thread between */
  MmModel *model;
  MmImageEncoder *encoder;
  guint dim;

  /* streaming thread (stream lock) */
  GstVideoInfo info;
  MmPixelFormat pixel_format;
  MmYuvMatrix yuv_matrix;
  gboolean yuv_full_range;
  guint skip; /* frames to skip before the next encode */
};

#define gst_image_enc_parent_class parent_class
G_DEFINE_TYPE (GstImageEnc, gst_image_enc, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (imageenc, "imageenc", GST_RANK_NONE, GST_TYPE_IMAGE_ENC);

static void gst_image_enc_finalize (GObject *object);
static void
gst_image_enc_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void
gst_image_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static gboolean gst_image_enc_start (GstBaseTransform *trans);
static gboolean gst_image_enc_stop (GstBaseTransform *trans);
static GstCaps *gst_image_enc_transform_caps (
    GstBaseTransform *trans, GstPadDirection direction, GstCaps *caps, GstCaps *filter);
static gboolean gst_image_enc_set_caps (GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps);
static gboolean gst_image_enc_transform_size (GstBaseTransform *trans, GstPadDirection direction,
    GstCaps *caps, gsize size, GstCaps *othercaps, gsize *othersize);
static gboolean gst_image_enc_sink_event (GstBaseTransform *trans, GstEvent *event);
static GstFlowReturn
gst_image_enc_transform (GstBaseTransform *trans, GstBuffer *inbuf, GstBuffer *outbuf);

static void
gst_image_enc_class_init (GstImageEncClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->finalize = gst_image_enc_finalize;
  gobject_class->set_property = gst_image_enc_set_property;
  gobject_class->get_property = gst_image_enc_get_property;

  gst_mm_install_model_property (gobject_class, PROP_MODEL);
  gst_mm_install_precision_property (gobject_class, PROP_PRECISION);
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Encode one frame in this many; the embedding's duration covers "
          "them all",
          1, G_MAXINT, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Image embedding encoder",
      "Filter/Analyzer/Video", "Turns video frames into embeddings with a libmm model",
      "mm-gst developers");
  /* shown by gst-inspect-1.0 */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 videotestsrc num-buffers=30 ! videoconvert ! imageenc "
      "model=tests/fixtures/tiny.safetensors interval=5 ! fakesink dump=true");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_image_enc_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_image_enc_stop);
  trans_class->transform_caps = GST_DEBUG_FUNCPTR (gst_image_enc_transform_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_image_enc_set_caps);
  trans_class->transform_size = GST_DEBUG_FUNCPTR (gst_image_enc_transform_size);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_image_enc_sink_event);
  trans_class->transform = GST_DEBUG_FUNCPTR (gst_image_enc_transform);
  trans_class->passthrough_on_same_caps = FALSE;

  GST_DEBUG_CATEGORY_INIT (gst_image_enc_debug, "imageenc", 0, "image embedding encoder");
}

static void
gst_image_enc_init (GstImageEnc *self)
{
  self->interval = DEFAULT_INTERVAL;
  gst_video_info_init (&self->info);
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_image_enc_finalize (GObject *object)
{
  GstImageEnc *self = GST_IMAGE_ENC (object);

  g_free (self->model_path);
  gst_clear_caps (&self->src_caps);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_image_enc_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstImageEnc *self = GST_IMAGE_ENC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint (value);
      break;
    case PROP_PRECISION:
      self->precision = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
  /* the output caps' duration covers `interval` frames */
  if (prop_id == PROP_INTERVAL)
    gst_base_transform_reconfigure_src (GST_BASE_TRANSFORM (self));
}

static void
gst_image_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstImageEnc *self = GST_IMAGE_ENC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->interval);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, self->precision);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* The libmm pixel layout of a GStreamer video format; FALSE if none. */
static gboolean
pixel_format_from_video (GstVideoFormat format, MmPixelFormat *out)
{
  static const struct
  {
    GstVideoFormat video;
    MmPixelFormat mm;
  } table[] = {
    { GST_VIDEO_FORMAT_RGB, MM_PIXEL_RGB },
    { GST_VIDEO_FORMAT_BGR, MM_PIXEL_BGR },
    { GST_VIDEO_FORMAT_RGBx, MM_PIXEL_RGBx },
    { GST_VIDEO_FORMAT_BGRx, MM_PIXEL_BGRx },
    { GST_VIDEO_FORMAT_xRGB, MM_PIXEL_xRGB },
    { GST_VIDEO_FORMAT_xBGR, MM_PIXEL_xBGR },
    { GST_VIDEO_FORMAT_RGBA, MM_PIXEL_RGBA },
    { GST_VIDEO_FORMAT_BGRA, MM_PIXEL_BGRA },
    { GST_VIDEO_FORMAT_ARGB, MM_PIXEL_ARGB },
    { GST_VIDEO_FORMAT_ABGR, MM_PIXEL_ABGR },
    { GST_VIDEO_FORMAT_GRAY8, MM_PIXEL_GRAY8 },
    { GST_VIDEO_FORMAT_I420, MM_PIXEL_I420 },
    { GST_VIDEO_FORMAT_NV12, MM_PIXEL_NV12 },
    { GST_VIDEO_FORMAT_YUY2, MM_PIXEL_YUY2 },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (table); i++) {
    if (table[i].video == format) {
      *out = table[i].mm;
      return TRUE;
    }
  }
  return FALSE;
}

/* The YUV matrix of @colorimetry.  FCC and SMPTE 240M are close to BT.601
 * and BT.709; anything unknown is BT.601, videoconvert's own default. */
static MmYuvMatrix
yuv_matrix_from_colorimetry (const GstVideoColorimetry *colorimetry)
{
  switch (colorimetry->matrix) {
    case GST_VIDEO_COLOR_MATRIX_BT709:
    case GST_VIDEO_COLOR_MATRIX_SMPTE240M:
      return MM_YUV_BT709;
    case GST_VIDEO_COLOR_MATRIX_BT2020:
      return MM_YUV_BT2020;
    default:
      return MM_YUV_BT601;
  }
}

/* Duration an embedding covers: @interval frames of @frame_duration (from
 * the buffer, or else 1/framerate of @info); NONE if neither is known. */
static GstClockTime
covered_duration (GstClockTime frame_duration, const GstVideoInfo *info, guint interval)
{
  if (GST_CLOCK_TIME_IS_VALID (frame_duration))
    return frame_duration * interval;
  if (info->fps_n > 0 && info->fps_d > 0)
    return gst_util_uint64_scale ((guint64)interval * GST_SECOND, info->fps_d, info->fps_n);
  return GST_CLOCK_TIME_NONE;
}

/* The nominal duration of one embedding from video @caps: `interval`
 * frames of 1/framerate; NONE without a framerate (0/1: variable). */
static GstClockTime
caps_duration (GstImageEnc *self, GstCaps *caps)
{
  gint fps_n = 0, fps_d = 0;
  guint interval;

  if (!gst_structure_get_fraction (gst_caps_get_structure (caps, 0), "framerate", &fps_n, &fps_d)
      || fps_n <= 0 || fps_d <= 0)
    return GST_CLOCK_TIME_NONE;
  GST_OBJECT_LOCK (self);
  interval = self->interval;
  GST_OBJECT_UNLOCK (self);
  return gst_util_uint64_scale ((guint64)interval * GST_SECOND, fps_d, fps_n);
}

/* Virtual methods */

static gboolean
gst_image_enc_start (GstBaseTransform *trans)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);
  MmContextParams params = mm_context_default_params ();
  GError *err = NULL;

  self->model = gst_mm_element_open_model_property (
      GST_ELEMENT (self), &self->model_path, MM_COMPONENT_IMAGE);
  if (self->model == NULL)
    return FALSE;
  GST_OBJECT_LOCK (self);
  params.precision = self->precision;
  GST_OBJECT_UNLOCK (self);
  params.precision = gst_mm_element_resolve_precision (GST_ELEMENT (self), params.precision);

  self->encoder = mm_image_encoder_new (self->model, &params, &err);
  if (self->encoder == NULL) {
    gst_mm_element_post_context_error (GST_ELEMENT (self), "image encoder", err);
    g_clear_error (&err);
    g_clear_pointer (&self->model, mm_model_unref);
    return FALSE;
  }
  gst_mm_element_check_precision (GST_ELEMENT (self), params.precision,
      mm_image_encoder_get_precision (self->encoder), "image");
  self->skip = 0;
  self->dim = gst_mm_element_publish_embedding_caps (
      GST_ELEMENT (self), &self->src_caps, self->model, MM_COMPONENT_IMAGE, "image");
  GST_INFO_OBJECT (self, "model %s, image dim %u", mm_model_get_name (self->model), self->dim);
  return TRUE;
}

static gboolean
gst_image_enc_stop (GstBaseTransform *trans)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);

  GST_OBJECT_LOCK (self);
  gst_clear_caps (&self->src_caps);
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->encoder, mm_image_encoder_free);
  g_clear_pointer (&self->model, mm_model_unref);
  self->dim = 0;
  return TRUE;
}

static GstCaps *
gst_image_enc_transform_caps (
    GstBaseTransform *trans, GstPadDirection direction, GstCaps *caps, GstCaps *filter)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);
  GstCaps *result = NULL;

  if (direction == GST_PAD_SINK) {
    result = gst_mm_element_ref_caps (GST_ELEMENT (self), &self->src_caps);
    if (result == NULL)
      result = gst_static_pad_template_get_caps (&src_template);
    else if (gst_caps_is_fixed (caps))
      result = gst_mm_caps_with_duration (result, caps_duration (self, caps));
  } else {
    result = gst_static_pad_template_get_caps (&sink_template);
  }

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, result, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (result);
    result = tmp;
  }
  GST_DEBUG_OBJECT (self, "%s %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "sink" : "src", caps, result);
  return result;
}

static gboolean
gst_image_enc_set_caps (GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);

  if (!gst_video_info_from_caps (&self->info, incaps)
      || !pixel_format_from_video (GST_VIDEO_INFO_FORMAT (&self->info), &self->pixel_format)) {
    GST_ERROR_OBJECT (self, "unusable caps %" GST_PTR_FORMAT, incaps);
    return FALSE;
  }
  self->yuv_matrix = yuv_matrix_from_colorimetry (&self->info.colorimetry);
  self->yuv_full_range = self->info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  if (GST_VIDEO_INFO_IS_YUV (&self->info))
    GST_INFO_OBJECT (self, "%s: YUV matrix %d, %s range", GST_VIDEO_INFO_NAME (&self->info),
        self->yuv_matrix, self->yuv_full_range ? "full" : "limited");
  self->skip = 0;
  return TRUE;
}

static gboolean
gst_image_enc_transform_size (GstBaseTransform *trans, GstPadDirection direction, GstCaps *caps,
    gsize size, GstCaps *othercaps, gsize *othersize)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);

  if (direction != GST_PAD_SINK || self->dim == 0)
    return FALSE;
  *othersize = (gsize)self->dim * sizeof (gfloat);
  return TRUE;
}

static gboolean
gst_image_enc_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP)
    self->skip = 0;
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstFlowReturn
gst_image_enc_transform (GstBaseTransform *trans, GstBuffer *inbuf, GstBuffer *outbuf)
{
  GstImageEnc *self = GST_IMAGE_ENC (trans);
  GstVideoFrame frame;
  GstMapInfo out;
  MmImage image = { 0 };
  GError *err = NULL;
  gboolean ok;
  guint interval, i;

  GST_OBJECT_LOCK (self);
  interval = self->interval;
  GST_OBJECT_UNLOCK (self);

  if (GST_BUFFER_IS_DISCONT (inbuf))
    self->skip = 0;
  if (self->skip > 0) {
    self->skip--;
    GST_LOG_OBJECT (
        self, "skipping frame at %" GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (inbuf)));
    return GST_BASE_TRANSFORM_FLOW_DROPPED;
  }
  self->skip = interval - 1;

  if (!gst_video_frame_map (&frame, &self->info, inbuf, GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Video buffer of %" G_GSIZE_FORMAT " bytes, but its caps (%s "
         "%dx%d) need %" G_GSIZE_FORMAT " bytes per frame",
            gst_buffer_get_size (inbuf), GST_VIDEO_INFO_NAME (&self->info),
            GST_VIDEO_INFO_WIDTH (&self->info), GST_VIDEO_INFO_HEIGHT (&self->info),
            GST_VIDEO_INFO_SIZE (&self->info)),
        ("cannot map the video frame"));
    return GST_FLOW_ERROR;
  }
  if (!gst_buffer_map (outbuf, &out, GST_MAP_WRITE)) {
    gst_video_frame_unmap (&frame);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map the output buffer"));
    return GST_FLOW_ERROR;
  }
  image.format = self->pixel_format;
  image.width = GST_VIDEO_FRAME_WIDTH (&frame);
  image.height = GST_VIDEO_FRAME_HEIGHT (&frame);
  for (i = 0; i < GST_VIDEO_FRAME_N_PLANES (&frame) && i < G_N_ELEMENTS (image.planes); i++) {
    image.planes[i] = GST_VIDEO_FRAME_PLANE_DATA (&frame, i);
    image.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, i);
  }
  image.matrix = self->yuv_matrix;
  image.full_range = self->yuv_full_range;
  ok = mm_image_encoder_encode_image (self->encoder, &image, (float *)out.data, &err);
  gst_buffer_unmap (outbuf, &out);
  gst_video_frame_unmap (&frame);

  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("%s", err->message),
        ("image encoder failed on a %dx%d frame", GST_VIDEO_INFO_WIDTH (&self->info),
            GST_VIDEO_INFO_HEIGHT (&self->info)));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }

  GST_BUFFER_PTS (outbuf) = GST_BUFFER_PTS (inbuf);
  GST_BUFFER_DTS (outbuf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (outbuf) =
      covered_duration (GST_BUFFER_DURATION (inbuf), &self->info, interval);
  return GST_FLOW_OK;
}
