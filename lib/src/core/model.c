/* libmm: model files -- open once per process, validate everything, share.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "mm-private.h"
#include "ops.h"
#include "conv-bf16.h"

/* Open models by canonical path.  The table holds no reference: a model
 * removes itself when its count drops to zero.  Reference counts change only
 * under this lock, so open() can never revive a model being freed.  A
 * pthread mutex and condition rather than GMutex/GCond: GLib's are futexes
 * ThreadSanitizer cannot see, so it reported every access under them. */
static pthread_mutex_t models_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *models_by_path;
static GHashTable *models_loading; /* keys of files being parsed, no lock held */
static pthread_cond_t models_loaded = PTHREAD_COND_INITIALIZER; /* a load finished */

static const char *const component_names[MM_N_COMPONENTS] = { "text", "image", "audio", "fusion",
  "head", "numeric" };

const char *
mm_component_name (MmComponent component)
{
  return (guint)component < MM_N_COMPONENTS ? component_names[component] : NULL;
}

/* The architectures each component supports (models/FORMAT.md). */
static const char *const component_types[MM_N_COMPONENTS][4] = {
  [MM_COMPONENT_TEXT] = { "wordvec", "bert", "graph", NULL },
  [MM_COMPONENT_IMAGE] = { "resnet", "graph", NULL },
  [MM_COMPONENT_AUDIO] = { "cnn1d", "graph", NULL },
  [MM_COMPONENT_FUSION] = { "concat", "attention", NULL },
  [MM_COMPONENT_HEAD] = { "mlp", "graph", NULL },
  [MM_COMPONENT_NUMERIC] = { "mlp", NULL },
};

static gboolean
check_component_type (MmComponent c, const char *type, const char *label, GError **error)
{
  for (int i = 0; component_types[c][i]; i++)
    if (g_str_equal (type, component_types[c][i]))
      return TRUE;
  char *known = g_strjoinv (", ", (char **)component_types[c]);
  mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
      "component '%s': type '%s' is not supported (supported: %s)", component_names[c], type,
      known);
  g_free (known);
  return FALSE;
}

static void
model_free (MmModel *m)
{
  if (m->text)
    mm_text_weights_free (m->text);
  if (m->image)
    mm_image_weights_free (m->image);
  if (m->audio)
    mm_audio_weights_free (m->audio);
  if (m->fusion)
    mm_fusion_weights_free (m->fusion);
  if (m->head)
    mm_head_weights_free (m->head);
  if (m->numeric)
    mm_numeric_weights_free (m->numeric);
  if (m->parser)
    g_object_unref (m->parser);
  mm_safetensors_free (m->st);
  g_free (m->path);
  g_free (m->key);
  g_free (m->name);
  g_free (m);
}

static gboolean
load_component (MmModel *m, MmComponent c, JsonObject *cfg, const char *file_label, GError **error)
{
  char *label = g_strdup_printf ("%s: component '%s'", file_label, component_names[c]);
  gboolean ok = TRUE;
  switch (c) {
    case MM_COMPONENT_TEXT:
      ok = (m->text = mm_text_weights_load (m->st, cfg, label, error)) != NULL;
      if (ok)
        m->dim[c] = mm_text_weights_dim (m->text);
      break;
    case MM_COMPONENT_IMAGE:
      ok = (m->image = mm_image_weights_load (m->st, cfg, label, error)) != NULL;
      if (ok)
        m->dim[c] = mm_image_weights_dim (m->image);
      break;
    case MM_COMPONENT_AUDIO:
      ok = (m->audio = mm_audio_weights_load (m->st, cfg, label, error)) != NULL;
      if (ok)
        m->dim[c] = mm_audio_weights_dim (m->audio);
      break;
    case MM_COMPONENT_FUSION:
      ok = (m->fusion = mm_fusion_weights_load (m->st, cfg, label, error)) != NULL;
      if (ok)
        m->dim[c] = mm_fusion_weights_dim (m->fusion);
      break;
    case MM_COMPONENT_HEAD:
      ok = (m->head = mm_head_weights_load (m->st, cfg, label, error)) != NULL;
      if (ok)
        m->dim[c] = mm_head_weights_dim (m->head);
      break;
    case MM_COMPONENT_NUMERIC:
      ok = (m->numeric = mm_numeric_weights_load (m->st, cfg, label, error)) != NULL;
      if (ok)
        m->dim[c] = mm_numeric_weights_dim (m->numeric);
      break;
    default:
      g_assert_not_reached ();
  }
  g_free (label);
  return ok;
}

/* Components must agree with each other: a fusion input of modality "text"
 * has the text encoder's dim, and the head reads the fusion's output. */
static gboolean
check_consistency (MmModel *m, const char *label, GError **error)
{
  if (m->fusion) {
    for (guint i = 0; i < mm_fusion_weights_n_inputs (m->fusion); i++) {
      const char *mod = mm_fusion_weights_input_modality (m->fusion, i);
      guint dim = mm_fusion_weights_input_dim (m->fusion, i);
      for (MmComponent c = MM_COMPONENT_TEXT; c <= MM_COMPONENT_AUDIO; c++) {
        if (g_str_equal (mod, component_names[c]) && m->dim[c] && m->dim[c] != dim) {
          mm_format_error (error, label,
              "fusion input %u (%s) has dim %u but the %s "
              "encoder outputs %u",
              i, mod, dim, mod, m->dim[c]);
          return FALSE;
        }
      }
      /* the numeric encoder feeds the input named by its "modality" */
      if (m->numeric && g_str_equal (mod, mm_numeric_weights_modality (m->numeric))
          && m->dim[MM_COMPONENT_NUMERIC] != dim) {
        mm_format_error (error, label,
            "fusion input %u (%s) has dim %u but the numeric encoder outputs %u", i, mod, dim,
            m->dim[MM_COMPONENT_NUMERIC]);
        return FALSE;
      }
    }
  }
  if (m->fusion && m->head) {
    guint d_in = mm_head_weights_n_inputs (m->head);
    if (d_in != m->dim[MM_COMPONENT_FUSION]) {
      mm_format_error (error, label, "the head takes %u inputs but the fusion outputs %u", d_in,
          m->dim[MM_COMPONENT_FUSION]);
      return FALSE;
    }
  }
  return TRUE;
}

static MmModel *model_new (MmSafetensors *st, const char *label, GError **error);

MmModel *
mm_model_new_from_safetensors (MmSafetensors *st, const char *label, GError **error)
{
  mm_budget_load_begin ();
  MmModel *m = model_new (st, label, error);
  mm_budget_load_end ();
  return m;
}

static MmModel *
model_new (MmSafetensors *st, const char *label, GError **error)
{
  MmModel *m = g_new0 (MmModel, 1);
  m->refcount = 1;
  m->st = st;
  const char *doc = mm_safetensors_metadata (st, "mm");
  if (!doc) {
    mm_format_error (error, label,
        "no __metadata__ \"mm\" entry: not a libmm model "
        "(see models/FORMAT.md)");
    goto fail;
  }
  guint64 tree_bytes = 0;
  if (!mm_json_check_depth (doc, strlen (doc), label, "__metadata__ \"mm\"", &tree_bytes, error)
      || !mm_budget_check (label, "parsing __metadata__ \"mm\"", tree_bytes, 0, error))
    goto fail;
  m->parser = json_parser_new_immutable ();
  GError *jerr = NULL;
  if (!json_parser_load_from_data (m->parser, doc, -1, &jerr)) {
    mm_format_error (error, label, "__metadata__ \"mm\" is not valid JSON: %s", jerr->message);
    g_error_free (jerr);
    goto fail;
  }
  JsonNode *root = json_parser_get_root (m->parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    mm_format_error (error, label, "__metadata__ \"mm\" is not a JSON object");
    goto fail;
  }
  JsonObject *o = json_node_get_object (root);
  guint version;
  if (!mm_json_uint (o, label, "version", TRUE, 1, 0, G_MAXINT, &version, error))
    goto fail;
  if (version != 1) {
    mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
        "format version %u is not supported "
        "(this libmm reads version 1)",
        version);
    goto fail;
  }
  const char *name = mm_json_string (o, label, "name", FALSE, NULL, error);
  if (!name && json_object_has_member (o, "name"))
    goto fail;
  m->name = name ? g_strdup (name) : g_path_get_basename (label);

  JsonNode *comps = json_object_get_member (o, "components");
  if (!comps || !JSON_NODE_HOLDS_OBJECT (comps)) {
    mm_format_error (error, label, "\"components\" must be a JSON object");
    goto fail;
  }
  JsonObject *co = json_node_get_object (comps);
  GList *keys = json_object_get_members (co);
  for (GList *l = keys; l; l = l->next) {
    gboolean known = FALSE;
    for (int c = 0; c < MM_N_COMPONENTS; c++)
      known |= g_str_equal (l->data, component_names[c]);
    if (!known) {
      mm_format_error (error, label,
          "unknown component '%s' (known: text, image, audio, "
          "fusion, head, numeric)",
          (const char *)l->data);
      g_list_free (keys);
      goto fail;
    }
  }
  g_list_free (keys);
  for (MmComponent c = 0; c < MM_N_COMPONENTS; c++) {
    JsonNode *cn = json_object_get_member (co, component_names[c]);
    if (!cn)
      continue;
    if (!JSON_NODE_HOLDS_OBJECT (cn)) {
      mm_format_error (error, label, "component '%s' is not a JSON object", component_names[c]);
      goto fail;
    }
    JsonObject *cfg = json_node_get_object (cn);
    char *clabel = g_strdup_printf ("%s: component '%s'", label, component_names[c]);
    m->component_type[c] = mm_json_string (cfg, clabel, "type", TRUE, NULL, error);
    g_free (clabel);
    if (!m->component_type[c] || !check_component_type (c, m->component_type[c], label, error)
        || !load_component (m, c, cfg, label, error))
      goto fail;
  }
  if (!check_consistency (m, label, error))
    goto fail;
  return m;

fail:
  m->st = NULL; /* the caller keeps ownership on failure */
  model_free (m);
  return NULL;
}

MmModel *
mm_model_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  char *canonical = realpath (path, NULL);
  if (!canonical) {
    mm_set_error (error, MM_ERROR_IO, path, "cannot open model file: %s", g_strerror (errno));
    return NULL;
  }
  /* The table is keyed by the file's identity too: a model file replaced on
   * disk (new inode, size or mtime) is loaded anew, not served stale. */
  struct stat sb;
  if (stat (canonical, &sb) != 0) {
    mm_set_error (error, MM_ERROR_IO, path, "cannot open model file: %s", g_strerror (errno));
    free (canonical);
    return NULL;
  }
  /* A FIFO would block the open (and the element's state change) forever. */
  if (!S_ISREG (sb.st_mode)) {
    mm_set_error (error, MM_ERROR_IO, path,
        "cannot open model file: not a regular file (a FIFO, device or directory cannot be "
        "a model)");
    free (canonical);
    return NULL;
  }
  char *key = g_strdup_printf ("%s\n%ju:%ju:%jd:%jd.%09ld", canonical, (uintmax_t)sb.st_dev,
      (uintmax_t)sb.st_ino, (intmax_t)sb.st_size, (intmax_t)sb.st_mtim.tv_sec,
      (long)sb.st_mtim.tv_nsec);
  char *real_path = g_strdup (canonical);
  free (canonical);

  /* The file is parsed outside the lock, so that opening one model never
   * waits for another being parsed; a second open of a path being loaded
   * waits for that load (and loads it itself if that one failed). */
  pthread_mutex_lock (&models_lock);
  if (!models_by_path) {
    models_by_path = g_hash_table_new (g_str_hash, g_str_equal);
    models_loading = g_hash_table_new (g_str_hash, g_str_equal);
  }
  MmModel *m;
  while (!(m = g_hash_table_lookup (models_by_path, key))
      && g_hash_table_contains (models_loading, key))
    pthread_cond_wait (&models_loaded, &models_lock);
  if (m) {
    m->refcount++;
    pthread_mutex_unlock (&models_lock);
    g_free (key);
    g_free (real_path);
    return m;
  }
  g_hash_table_add (models_loading, key);
  pthread_mutex_unlock (&models_lock);

  mm_budget_load_begin (); /* the file's parts are held to the budget together */
  MmSafetensors *st = mm_safetensors_open (real_path, error);
  if (st) {
    m = mm_model_new_from_safetensors (st, real_path, error);
    if (!m)
      mm_safetensors_free (st);
  }
  mm_budget_load_end ();

  pthread_mutex_lock (&models_lock);
  g_hash_table_remove (models_loading, key);
  if (m) {
    m->path = real_path;
    m->key = key;
    g_hash_table_insert (models_by_path, m->key, m);
  }
  pthread_cond_broadcast (&models_loaded);
  pthread_mutex_unlock (&models_lock);
  if (!m) {
    g_free (key);
    g_free (real_path);
  }
  if (m)
    mm_blas_init ();
  return m;
}

MmModel *
mm_model_ref (MmModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  pthread_mutex_lock (&models_lock);
  model->refcount++;
  pthread_mutex_unlock (&models_lock);
  return model;
}

void
mm_model_unref (MmModel *model)
{
  if (!model)
    return;
  pthread_mutex_lock (&models_lock);
  gboolean last = --model->refcount == 0;
  if (last && model->key && models_by_path)
    g_hash_table_remove (models_by_path, model->key);
  pthread_mutex_unlock (&models_lock);
  if (last)
    model_free (model);
}

const char *
mm_model_get_path (const MmModel *model)
{
  return model->path;
}

const char *
mm_model_get_name (const MmModel *model)
{
  return model->name;
}

gboolean
mm_model_has_component (const MmModel *model, MmComponent component)
{
  return (guint)component < MM_N_COMPONENTS && model->component_type[component] != NULL;
}

const char *
mm_model_get_component_type (const MmModel *model, MmComponent component)
{
  return (guint)component < MM_N_COMPONENTS ? model->component_type[component] : NULL;
}

guint
mm_model_get_dim (const MmModel *model, MmComponent component)
{
  return (guint)component < MM_N_COMPONENTS ? model->dim[component] : 0;
}

gboolean
mm_model_get_image_size (const MmModel *model, guint *width, guint *height)
{
  if (!model->image)
    return FALSE;
  mm_image_weights_size (model->image, width, height);
  return TRUE;
}

guint
mm_model_get_audio_rate (const MmModel *model)
{
  guint rate = 0, window, hop;
  if (model->audio)
    mm_audio_weights_params (model->audio, &rate, &window, &hop);
  return rate;
}

guint
mm_model_get_audio_window (const MmModel *model)
{
  guint rate, window = 0, hop;
  if (model->audio)
    mm_audio_weights_params (model->audio, &rate, &window, &hop);
  return window;
}

guint
mm_model_get_audio_hop (const MmModel *model)
{
  guint rate, window, hop = 0;
  if (model->audio)
    mm_audio_weights_params (model->audio, &rate, &window, &hop);
  return hop;
}

guint
mm_model_get_fusion_n_inputs (const MmModel *model)
{
  return model->fusion ? mm_fusion_weights_n_inputs (model->fusion) : 0;
}

const char *
mm_model_get_fusion_input_modality (const MmModel *model, guint i)
{
  if (i >= mm_model_get_fusion_n_inputs (model))
    return NULL;
  return mm_fusion_weights_input_modality (model->fusion, i);
}

guint
mm_model_get_fusion_input_dim (const MmModel *model, guint i)
{
  if (i >= mm_model_get_fusion_n_inputs (model))
    return 0;
  return mm_fusion_weights_input_dim (model->fusion, i);
}

gint
mm_model_find_fusion_input (const MmModel *model, const char *modality)
{
  for (guint i = 0; i < mm_model_get_fusion_n_inputs (model); i++)
    if (g_strcmp0 (mm_fusion_weights_input_modality (model->fusion, i), modality) == 0)
      return (gint)i;
  return -1;
}

guint
mm_model_get_numeric_n_features (const MmModel *model)
{
  return model->numeric ? mm_numeric_weights_n_features (model->numeric) : 0;
}

const char *
mm_model_get_numeric_modality (const MmModel *model)
{
  return model->numeric ? mm_numeric_weights_modality (model->numeric) : NULL;
}

const char *
mm_model_get_numeric_feature_name (const MmModel *model, guint i)
{
  return model->numeric ? mm_numeric_weights_feature_name (model->numeric, i) : NULL;
}

MmHeadKind
mm_model_get_head_kind (const MmModel *model)
{
  return model->head ? mm_head_weights_kind (model->head) : MM_HEAD_REGRESSION;
}

guint
mm_model_get_n_outputs (const MmModel *model)
{
  return model->dim[MM_COMPONENT_HEAD];
}

const char *
mm_model_get_label (const MmModel *model, guint i)
{
  if (!model->head || i >= model->dim[MM_COMPONENT_HEAD])
    return NULL;
  return mm_head_weights_label (model->head, i);
}

MmContextParams
mm_context_default_params (void)
{
  MmContextParams p = {
    .n_threads = 0,
    .max_text_bytes = 64 * 1024,
    .max_audio_samples = 0,
    .precision = MM_PRECISION_FP32,
  };
  return p;
}

gboolean
mm_precision_supported (MmPrecision precision)
{
  return precision == MM_PRECISION_FP32 || (precision == MM_PRECISION_BF16 && mm_cpu_has_bf16 ());
}

MmPrecision
mm_precision_resolve (const MmContextParams *params)
{
  if (!params || params->precision != MM_PRECISION_BF16)
    return MM_PRECISION_FP32;
  if (mm_cpu_has_bf16 ())
    return MM_PRECISION_BF16;
  static gsize warned;
  if (g_once_init_enter (&warned)) {
    g_warning ("libmm: bf16 precision asked, but this CPU lacks AVX512_BF16 (or "
               "MM_DISABLE_BF16 is set): running fp32");
    g_once_init_leave (&warned, 1);
  }
  return MM_PRECISION_FP32;
}
