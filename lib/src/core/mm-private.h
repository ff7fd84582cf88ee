/* libmm internals shared by the loader and the component files.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each architecture lives in one file (text-encoder.c for wordvec, text-bert.c,
 * image-encoder.c, audio-encoder.c, fusion.c, head.c) with three parts, as in
 * llama2.c: a config + weights struct bound once at model load (weights are
 * const float * into the mapped file), a context with scratch memory
 * allocated once, and a forward pass that never allocates.
 */
#ifndef MM_PRIVATE_H
#define MM_PRIVATE_H

#include <json-glib/json-glib.h>
#include "mm.h"

G_BEGIN_DECLS

/* ---- safetensors (safetensors.c) ---- */
typedef struct _MmSafetensors MmSafetensors;

typedef struct
{
  const char *name;
  guint ndim;
  gint64 shape[8];
  gsize n_elements;
  const float *data; /* F32 view: into the mapping, or an owned
                                 * converted copy for F16/BF16/unaligned */
} MmTensor;

/* Maps and validates the file (header, dtypes, offsets, overlaps);
 * mm_safetensors_metadata (st, "mm") then gives the architecture document. */
MmSafetensors *mm_safetensors_open (const char *path, GError **error);
MmSafetensors *mm_safetensors_open_bytes (const char *label, const guint8 *bytes, gsize len,
    GError **error); /* for fuzzing and tests; bytes must outlive it */
void mm_safetensors_free (MmSafetensors *st);
const char *mm_safetensors_metadata (const MmSafetensors *st, const char *key);
const MmTensor *mm_safetensors_find (const MmSafetensors *st, const char *name);
guint mm_safetensors_n_tensors (const MmSafetensors *st);

/* ---- model (model.c) ---- */
typedef struct _MmTextWeights MmTextWeights;
typedef struct _MmImageWeights MmImageWeights;
typedef struct _MmAudioWeights MmAudioWeights;
typedef struct _MmFusionWeights MmFusionWeights;
typedef struct _MmHeadWeights MmHeadWeights;
typedef struct _MmNumericWeights MmNumericWeights;

struct _MmModel
{
  gint refcount; /* atomic; the open-model table holds no ref */
  char *path;    /* canonical path */
  char *key;     /* key in the open-model table: path + file identity */
  char *name;
  MmSafetensors *st;
  JsonParser *parser;                          /* owns the "mm" document */
  const char *component_type[MM_N_COMPONENTS]; /* into parser's tree */
  guint dim[MM_N_COMPONENTS];
  MmTextWeights *text;
  MmImageWeights *image;
  MmAudioWeights *audio;
  MmFusionWeights *fusion;
  MmHeadWeights *head;
  MmNumericWeights *numeric;
};

/* Parses the "mm" document of @st and binds every component.  Used by
 * mm_model_open() and by the fuzz target (no file, no sharing). */
MmModel *mm_model_new_from_safetensors (MmSafetensors *st, const char *label, GError **error);

/* Binding: looks up "<prefix><name>" and checks its shape.  A dim of -1 in
 * @shape accepts any size.  Errors name the tensor, expected and actual
 * shapes. */
const float *mm_bind (const MmSafetensors *st, const char *label, const char *name, guint ndim,
    const gint64 *shape, GError **error);
/* Expands to mm_bind's (ndim, shape) arguments:
 *   mm_bind (st, label, "fc.weight", MM_SHAPE (d_out, d_in), error) */
#define MM_SHAPE(...)                                                                              \
  (guint) (sizeof ((const gint64[]){ __VA_ARGS__ }) / sizeof (gint64)),                            \
      ((const gint64[]){ __VA_ARGS__ })
/* errors of a context name the model file (or its name when built from bytes) */
#define MM_MODEL_LABEL(m) ((m)->path ? (m)->path : (m)->name)
gboolean mm_has_tensor (const MmSafetensors *st, const char *name);

/* JSON helpers: each fails with a message naming @label and @key. */
gboolean mm_json_uint (JsonObject *o, const char *label, const char *key, gboolean required,
    guint def, guint min, guint max, guint *out, GError **error);
gboolean mm_json_double (JsonObject *o, const char *label, const char *key, gboolean required,
    double def, double *out, GError **error);
gboolean mm_json_bool (
    JsonObject *o, const char *label, const char *key, gboolean def, gboolean *out, GError **error);
const char *mm_json_string (JsonObject *o, const char *label, const char *key, gboolean required,
    const char *def, GError **error);
/* Array of strings; returns a NULL-terminated vector whose strings point into
 * the JSON tree (free only the vector with g_free), or NULL + error. */
const char **mm_json_string_array (JsonObject *o, const char *label, const char *key, guint min_len,
    guint max_len, guint *n_out, GError **error);
gboolean mm_json_float_array (
    JsonObject *o, const char *label, const char *key, guint len, float *out, GError **error);

/* json-glib's parser recurses once per nesting level: a hostile header of
 * 100,000 '[' would overflow the stack.  Every JSON text from a file is
 * checked with this first: it must be strict RFC 8259 JSON (no comments, no
 * single quotes, standard escapes, paired surrogate escapes), nested at most
 * MM_JSON_MAX_DEPTH levels (no libmm document nests more than a handful).
 * Iterative; fails with MM_ERROR_FORMAT naming @label, @what and the byte.
 * On success *@tree_bytes (may be NULL) is an upper bound of the memory
 * json-glib will take for the tree, for the caller's budget check. */
#define MM_JSON_MAX_DEPTH 64
gboolean mm_json_check_depth (const char *text, gsize len, const char *label, const char *what,
    guint64 *tree_bytes, GError **error);

/* Resource budget (json-util.c).  Before a model or a context allocates,
 * its cost is checked against limits that a hostile file cannot raise: bytes
 * of memory (scratch, packed or converted weights) and floating-point
 * operations per item (a frame, an audio window, a cue).  The defaults hold
 * every supported bundled model many times over; MM_MAX_MEMORY and
 * MM_MAX_WORK (a number with an optional K/M/G/T suffix, binary) raise them.
 * mm_budget_check fails with MM_ERROR_UNSUPPORTED naming @label (the file),
 * @what, the figure and the limit.  Thread-safe. */
#define MM_DEFAULT_MAX_MEMORY (G_GUINT64_CONSTANT (1) << 30)    /* 1 GiB */
#define MM_DEFAULT_MAX_WORK (G_GUINT64_CONSTANT (200000000000)) /* 200 GFLOP per item */
guint64 mm_budget_max_memory (void);
guint64 mm_budget_max_work (void);
gboolean
mm_budget_check (const char *label, const char *what, guint64 bytes, guint64 flops, GError **error);
/* While a model loads (between begin and end, on this thread; nestable),
 * the memory of each check that passes is added up, and the sum must stay
 * within the limit too: a model's parts live together.  Work is per item
 * and per component, not summed.  mm_budget_release () takes back memory
 * freed before the load ends (json-glib's tree of the header). */
void mm_budget_load_begin (void);
void mm_budget_load_end (void);
void mm_budget_release (guint64 bytes);
/* The largest work per item (FLOPs) that a check passed in the last load on
 * this thread (since its outer mm_budget_load_begin; kept after the end):
 * the fuzz target runs encoders only on models this cheap. */
guint64 mm_budget_load_work (void);

/* What a conv packed by mm_conv_cl_init (conv-cl.c) costs, for the budget
 * before packing: bytes of packed weights (a group's output channels
 * rounded up to 8 or 16, as conv-cl.c packs them), and the FLOPs of running
 * it on @positions output positions (the padded channels are computed too). */
static inline guint64
mm_conv_cl_packed_bytes (int c_in, int c_out, int kh, int kw, int groups)
{
  guint64 og = (guint64)c_out / groups, og_pad = og <= 8 ? 8 : (og + 15) / 16 * 16;
  return (guint64)groups * og_pad * kh * kw * ((guint64)c_in / groups) * sizeof (float);
}

static inline guint64
mm_conv_cl_flops (int c_in, int c_out, int kh, int kw, int groups, guint64 positions)
{
  return 2 * positions * (mm_conv_cl_packed_bytes (c_in, c_out, kh, kw, groups) / sizeof (float));
}

/* ---- components: load (at model open) / free / dim ---- */
#define MM_DECLARE_COMPONENT(Type, prefix)                                                         \
  Type *prefix##_load (                                                                            \
      const MmSafetensors *st, JsonObject *cfg, const char *label, GError **error);                \
  void prefix##_free (Type *w);                                                                    \
  guint prefix##_dim (const Type *w);

MM_DECLARE_COMPONENT (MmTextWeights, mm_text_weights)
MM_DECLARE_COMPONENT (MmImageWeights, mm_image_weights)
MM_DECLARE_COMPONENT (MmAudioWeights, mm_audio_weights)
MM_DECLARE_COMPONENT (MmFusionWeights, mm_fusion_weights)
MM_DECLARE_COMPONENT (MmHeadWeights, mm_head_weights)
MM_DECLARE_COMPONENT (MmNumericWeights, mm_numeric_weights)

/* Accessors the public getters in model.c forward to. */
void mm_image_weights_size (const MmImageWeights *w, guint *width, guint *height);
void mm_audio_weights_params (const MmAudioWeights *w, guint *rate, guint *window, guint *hop);
guint mm_fusion_weights_n_inputs (const MmFusionWeights *w);
const char *mm_fusion_weights_input_modality (const MmFusionWeights *w, guint i);
guint mm_fusion_weights_input_dim (const MmFusionWeights *w, guint i);
MmHeadKind mm_head_weights_kind (const MmHeadWeights *w);
const char *mm_head_weights_label (const MmHeadWeights *w, guint i);
guint mm_head_weights_n_inputs (const MmHeadWeights *w);
guint mm_numeric_weights_n_features (const MmNumericWeights *w);
const char *mm_numeric_weights_modality (const MmNumericWeights *w);
const char *mm_numeric_weights_feature_name (const MmNumericWeights *w, guint i);

/* Utility: g_set_error with MM_ERROR_FORMAT and "label: message". */
#define mm_format_error(error, label, ...) mm_set_error (error, MM_ERROR_FORMAT, label, __VA_ARGS__)
void mm_set_error (GError **error, MmError code, const char *label, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);

/* The precision a context created with @params runs: BF16 only when asked
 * and mm_cpu_has_bf16 (); otherwise FP32, with one g_warning per process
 * when BF16 was asked (model.c) */
MmPrecision mm_precision_resolve (const MmContextParams *params);

G_END_DECLS
#endif
