/* libmm -- multimodal inference core
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libmm loads one self-describing model file (safetensors with the
 * architecture as JSON in __metadata__, see models/FORMAT.md) and runs its
 * components: text, image, audio and numeric encoders, a fusion and a head.
 * It depends on GLib, json-glib, kissfft and OpenBLAS, never on GStreamer.
 *
 * Usage:
 *
 *   GError *err = NULL;
 *   MmModel *model = mm_model_open ("scenes.safetensors", &err);
 *   if (!model) { g_printerr ("%s\n", err->message); ... }
 *
 *   MmContextParams params = mm_context_default_params ();
 *   MmTextEncoder *enc = mm_text_encoder_new (model, &params, &err);
 *   float *z = g_new (float, mm_model_get_dim (model, MM_COMPONENT_TEXT));
 *   mm_text_encoder_encode (enc, "a dog barks", -1, z, NULL, &err);
 *
 *   const float *inputs[3] = { z_image, NULL, z };   (NULL = modality missing)
 *   MmFusion *fusion = mm_fusion_new (model, &params, &err);
 *   mm_fusion_run (fusion, inputs, fused, &err);
 *   MmHead *head = mm_head_new (model, &params, &err);
 *   mm_head_run (head, fused, scores, &err);
 *
 *   mm_text_encoder_free (enc); ... mm_model_unref (model);
 *
 * Ownership and threads:
 * - An MmModel is immutable after mm_model_open() and may be shared by any
 *   number of threads. Opening the same path twice in a process returns the
 *   same mapping with its reference count raised; mm_model_open() and
 *   mm_model_unref() are thread-safe.
 * - A context (MmTextEncoder, MmImageEncoder, MmAudioEncoder,
 *   MmNumericEncoder, MmFusion, MmHead) owns its scratch memory, allocated once in *_new(); its run
 *   functions never allocate. A context is used by one thread at a time;
 *   different contexts on one model may run concurrently.
 * - Every function that can fail returns FALSE/NULL and fills a GError in
 *   the MM_ERROR domain; the library never aborts on bad input.
 * - Output buffers are caller-owned and must hold the number of floats that
 *   mm_model_get_dim() (or mm_model_get_n_outputs()) gives.
 */
#ifndef MM_H
#define MM_H

#include <glib.h>

G_BEGIN_DECLS

#define MM_ERROR (mm_error_quark ())
GQuark mm_error_quark (void);

typedef enum
{
  MM_ERROR_IO,                /* file cannot be opened or mapped */
  MM_ERROR_FORMAT,            /* file bytes or metadata are invalid */
  MM_ERROR_UNSUPPORTED,       /* valid file, but an architecture or dtype libmm lacks */
  MM_ERROR_MISSING_COMPONENT, /* the model has no such component */
  MM_ERROR_INPUT,             /* a run function got unusable input */
} MmError;

typedef enum
{
  MM_COMPONENT_TEXT,
  MM_COMPONENT_IMAGE,
  MM_COMPONENT_AUDIO,
  MM_COMPONENT_FUSION,
  MM_COMPONENT_HEAD,
  MM_COMPONENT_NUMERIC, /* measurements (sensor values) -> embedding */
  MM_N_COMPONENTS
} MmComponent;

/* "text", "image", "audio", "fusion", "head", "numeric"; NULL when out of
 * range. */
const char *mm_component_name (MmComponent component);

/* --------------------------------------------------------------------- */
/* Model                                                                  */

typedef struct _MmModel MmModel;

/* Opens (or returns the already open, shared) model at @path.
 * Everything is validated here: header, offsets, dtypes, JSON metadata, and
 * every tensor each component needs, with its shape.  Returns a new
 * reference, or NULL with @error set (the message names the file and the
 * problem).  Thread-safe. */
MmModel *mm_model_open (const char *path, GError **error);
MmModel *mm_model_ref (MmModel *model);
void mm_model_unref (MmModel *model); /* thread-safe; NULL is ignored */

const char *mm_model_get_path (const MmModel *model);
/* "name" from the metadata, or the file's basename. */
const char *mm_model_get_name (const MmModel *model);
gboolean mm_model_has_component (const MmModel *model, MmComponent component);
/* Architecture type string of a component ("wordvec", "bert", "resnet",
 * "cnn1d", "concat", "attention", "mlp"), NULL if absent.  The numeric
 * component's type is "mlp". */
const char *mm_model_get_component_type (const MmModel *model, MmComponent component);
/* Any of the text, image and audio encoders and the head may also be of
 * type "graph": a network of ONNX-style operators (models/FORMAT.md, what
 * models/onnx2mm.py writes), planned once at mm_model_open() and run by the
 * same contexts and functions as the fixed architectures, so applications
 * and elements use it unchanged.  Its input comes from the same
 * preprocessing (image resize and normalisation, log-mel or the raw
 * waveform, WordPiece ids with mask and types); a graph that the loader
 * cannot plan, or whose file is inconsistent, fails in mm_model_open(). */

/* Output size of a component: embedding dimension for the encoders, fused
 * dimension for the fusion, number of outputs for the head; 0 if absent. */
guint mm_model_get_dim (const MmModel *model, MmComponent component);

/* Image encoder input size (the encoder resizes any frame to it). */
gboolean mm_model_get_image_size (const MmModel *model, guint *width, guint *height);

/* Audio encoder: sample rate, default window and hop, in samples. */
guint mm_model_get_audio_rate (const MmModel *model);
guint mm_model_get_audio_window (const MmModel *model);
guint mm_model_get_audio_hop (const MmModel *model);

/* Fusion inputs, in the order mm_fusion_run() takes them.  The modality is
 * a free string ("text", "image", "audio", or e.g. "sensor" for a generic
 * numeric input fed by an application). */
guint mm_model_get_fusion_n_inputs (const MmModel *model);
const char *mm_model_get_fusion_input_modality (const MmModel *model, guint i);
guint mm_model_get_fusion_input_dim (const MmModel *model, guint i);
/* Index of the first fusion input of @modality, or -1. */
gint mm_model_find_fusion_input (const MmModel *model, const char *modality);

/* Numeric encoder: number of values per sample it takes, the fusion input
 * modality it feeds ("sensor" unless the file says otherwise), and the
 * optional name of value @i (NULL when the file names none); 0/NULL when the
 * model has no numeric component. */
guint mm_model_get_numeric_n_features (const MmModel *model);
const char *mm_model_get_numeric_modality (const MmModel *model);
const char *mm_model_get_numeric_feature_name (const MmModel *model, guint i);

typedef enum
{
  MM_HEAD_SOFTMAX,    /* exclusive classes, scores sum to 1 */
  MM_HEAD_SIGMOID,    /* independent tags, each in [0,1] */
  MM_HEAD_REGRESSION, /* raw values */
} MmHeadKind;

MmHeadKind mm_model_get_head_kind (const MmModel *model);
/* Number of head outputs (= labels). */
guint mm_model_get_n_outputs (const MmModel *model);
/* Label of output @i (never NULL for i < n_outputs). */
const char *mm_model_get_label (const MmModel *model, guint i);

/* --------------------------------------------------------------------- */
/* Contexts                                                               */

typedef enum
{
  MM_PRECISION_FP32 = 0,
  MM_PRECISION_BF16,
} MmPrecision;

typedef struct
{
  /* BLAS threads used by this process (OpenBLAS's setting is global).
   * 0 = leave as is; libmm sets 1 at start unless MM_THREADS says
   * otherwise, so each streaming thread runs its own single-threaded
   * encoder. */
  int n_threads;
  /* Longest text accepted, in bytes; longer text is truncated at a UTF-8
   * boundary (documented, not an error).  */
  gsize max_text_bytes;
  /* Longest audio accepted by mm_audio_encoder_encode(), in samples; 0 =
   * four times the model's window.  Scratch memory is sized from it. */
  guint max_audio_samples;
  /* Arithmetic of the encoders' convolutions and linears (resnet image
   * encoder, BERT text encoder, cnn1d audio encoder without groups, a graph
   * component's convolutions without groups and MatMuls by a weight matrix;
   * a wordvec text encoder and the rest of a graph run fp32):
   * MM_PRECISION_FP32 (default) or
   * MM_PRECISION_BF16, where weights and activations are rounded to bf16
   * and products summed in fp32 (AVX512_BF16).  BF16 on a CPU without
   * those instructions (or with MM_DISABLE_BF16=1 in the environment) runs
   * fp32, with one g_warning per process; the *_get_precision() functions
   * say which one a context runs.  Fusion and head always run fp32. */
  MmPrecision precision;
} MmContextParams;

MmContextParams mm_context_default_params (void);

/* TRUE when @precision runs as asked on this CPU (FP32 always; BF16 with
 * AVX512_BF16 and MM_DISABLE_BF16 unset or "0").  Thread-safe. */
gboolean mm_precision_supported (MmPrecision precision);

/* Text. Invalid UTF-8 sequences are replaced by U+FFFD before tokenising
 * (never an error).  Text with no token the model knows gives a zero
 * vector (wordvec) or the [CLS]/[SEP]-only encoding (bert); @n_tokens (may
 * be NULL) receives the number of content tokens used. */
typedef struct _MmTextEncoder MmTextEncoder;
MmTextEncoder *mm_text_encoder_new (MmModel *model, const MmContextParams *params, GError **error);
gboolean mm_text_encoder_encode (MmTextEncoder *enc, const char *text, gssize len, float *embedding,
    guint *n_tokens, GError **error);
void mm_text_encoder_free (MmTextEncoder *enc);
/* The precision @enc runs (MmContextParams.precision after the fallback) */
MmPrecision mm_text_encoder_get_precision (const MmTextEncoder *enc);

/* A subtitle cue's text as textenc gives it to the text encoder.
 * mm_cue_length: the bytes before the first NUL of @text (a text buffer
 * may carry its C terminator; @text may be NULL when @len is 0).
 * mm_markup_strip: out = @text (@len bytes) with pango markup removed:
 * everything from '<' to the next '>' (or the end) is dropped; the
 * entities &amp; &lt; &gt; &quot; &apos; &nbsp; and &#N; / &#xN; (a valid
 * Unicode scalar other than 0) are decoded; any other '&' is kept
 * literally.  Never fails, and out->len <= @len.  Invalid UTF-8 passes
 * through (the encoders repair it).
 * mm_text_is_blank: TRUE when @text has nothing but white space (ASCII,
 * or valid UTF-8 that GLib calls space); invalid UTF-8 is not blank. */
gsize mm_cue_length (const char *text, gsize len);
void mm_markup_strip (const char *text, gsize len, GString *out);
gboolean mm_text_is_blank (const char *text, gsize len);

/* Images: packed 8-bit pixels, any size; resized (bilinear) and normalised
 * as the model says. */
typedef enum
{
  MM_PIXEL_RGB,
  MM_PIXEL_BGR,
  MM_PIXEL_RGBx,
  MM_PIXEL_BGRx,
  MM_PIXEL_xRGB,
  MM_PIXEL_xBGR,
  MM_PIXEL_RGBA,
  MM_PIXEL_BGRA,
  MM_PIXEL_ARGB,
  MM_PIXEL_ABGR,
  MM_PIXEL_GRAY8,
  /* YUV as decoders give it, 8 bits, through mm_image_encoder_encode_image()
   * only.  Chroma is taken from the nearest sample (as videoconvert does). */
  MM_PIXEL_I420, /* planes Y, U, V; chroma halved both ways (ceil) */
  MM_PIXEL_NV12, /* planes Y and interleaved U V; chroma halved both ways */
  MM_PIXEL_YUY2, /* one plane of Y0 U Y1 V macro-pixels */
} MmPixelFormat;

/* YUV to RGB matrix (Kr, Kb of each standard). */
typedef enum
{
  MM_YUV_BT601,
  MM_YUV_BT709,
  MM_YUV_BT2020,
} MmYuvMatrix;

/* One frame in any MmPixelFormat: @planes and @strides (bytes) as the
 * format has them (packed formats use plane 0 only).  @matrix and
 * @full_range apply to YUV: limited range is Y 16-235, U/V 16-240. */
typedef struct
{
  MmPixelFormat format;
  guint width, height;
  const guint8 *planes[3];
  gsize strides[3];
  MmYuvMatrix matrix;
  gboolean full_range;
} MmImage;

typedef struct _MmImageEncoder MmImageEncoder;
MmImageEncoder *
mm_image_encoder_new (MmModel *model, const MmContextParams *params, GError **error);
/* Fails (MM_ERROR_INPUT) on width/height 0 or above 16384, or a stride
 * shorter than a row. */
gboolean mm_image_encoder_encode (MmImageEncoder *enc, MmPixelFormat format, const guint8 *pixels,
    guint width, guint height, gsize stride, float *embedding, GError **error);
/* Any MmPixelFormat, YUV included.  YUV is converted to RGB (the image's
 * matrix and range, in float) only at the taps the resize reads, so a
 * frame costs the network's input size, not the frame's.  Fails
 * (MM_ERROR_INPUT) on sizes as above, a missing plane or a short stride. */
gboolean mm_image_encoder_encode_image (
    MmImageEncoder *enc, const MmImage *image, float *embedding, GError **error);
void mm_image_encoder_free (MmImageEncoder *enc);
/* The precision @enc runs (MmContextParams.precision after the fallback) */
MmPrecision mm_image_encoder_get_precision (const MmImageEncoder *enc);

/* Audio: mono float samples in [-1,1] at mm_model_get_audio_rate().  Any
 * length from one FFT frame up to max_audio_samples.  A "graph" audio
 * encoder runs on exactly one window (mm_model_get_audio_window()): 1 to
 * window samples, zero-padded at the end; more is MM_ERROR_INPUT. */
typedef struct _MmAudioEncoder MmAudioEncoder;
MmAudioEncoder *
mm_audio_encoder_new (MmModel *model, const MmContextParams *params, GError **error);
gboolean mm_audio_encoder_encode (
    MmAudioEncoder *enc, const float *samples, gsize n_samples, float *embedding, GError **error);
void mm_audio_encoder_free (MmAudioEncoder *enc);
/* The precision @enc runs (MmContextParams.precision after the fallback) */
MmPrecision mm_audio_encoder_get_precision (const MmAudioEncoder *enc);

/* Numeric: one sample of mm_model_get_numeric_n_features() values (sensor
 * readings, lab values...), each normalised by the file's per-feature mean
 * and std, then an MLP to mm_model_get_dim (model, MM_COMPONENT_NUMERIC).
 * A NaN is a missing value, handled as the file's "nan" says: replaced by
 * the feature's mean ("mean") or by 0 ("zero"), or refused ("error": FALSE
 * with MM_ERROR_INPUT).  @n_missing (may be NULL) receives the number of
 * NaNs replaced.  A wrong @n_features or an infinite value is MM_ERROR_INPUT;
 * on any error @embedding is left untouched. */
typedef struct _MmNumericEncoder MmNumericEncoder;
MmNumericEncoder *
mm_numeric_encoder_new (MmModel *model, const MmContextParams *params, GError **error);
gboolean mm_numeric_encoder_encode (MmNumericEncoder *enc, const float *features, gsize n_features,
    float *embedding, guint *n_missing, GError **error);
void mm_numeric_encoder_free (MmNumericEncoder *enc);

/* Fusion: @inputs has mm_model_get_fusion_n_inputs() entries, each a
 * vector of that input's dim, or NULL when the modality is missing (the
 * presence mask).  All missing is allowed. */
typedef struct _MmFusion MmFusion;
MmFusion *mm_fusion_new (MmModel *model, const MmContextParams *params, GError **error);
gboolean mm_fusion_run (MmFusion *fusion, const float *const *inputs, float *fused, GError **error);
void mm_fusion_free (MmFusion *fusion);

/* Head: @scores receives mm_model_get_n_outputs() values after the head's
 * activation (probabilities, tag probabilities or raw values). */
typedef struct _MmHead MmHead;
MmHead *mm_head_new (MmModel *model, const MmContextParams *params, GError **error);
gboolean mm_head_run (MmHead *head, const float *fused, float *scores, GError **error);
void mm_head_free (MmHead *head);

/* --------------------------------------------------------------------- */
/* BLAS                                                                   */

/* Name of the OpenBLAS core kernel in use (e.g. "Prescott", "SkylakeX",
 * "Cooperlake"), or "reference" when libmm runs its plain C path. */
const char *mm_blas_core_name (void);

G_END_DECLS
#endif /* MM_H */
