/* libmm: safetensors reader that trusts nothing.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Layout: u64 LE header length N, N bytes of JSON, then the data section.
 * Every number in the header is checked against the bytes actually there
 * before anything points into the mapping.  F32 tensors are used in place
 * (the file is mapped read-only, never copied) when 4-byte aligned; F16,
 * BF16 and misaligned F32 are converted once into owned memory, bounded by
 * the file size.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "mm-private.h"

#define MAX_HEADER_BYTES (100u * 1024 * 1024)
#define MAX_DIMS 8

struct _MmSafetensors
{
  char *label;
  GMappedFile *mapped; /* NULL for open_bytes */
  const guint8 *bytes;
  gsize len;
  GHashTable *tensors;  /* name -> MmTensor*, names owned by ->names */
  GPtrArray *owned;     /* converted tensor data and names */
  GHashTable *metadata; /* string -> string */
};

typedef struct
{
  MmTensor t;
  guint64 begin, end;
  guint dsize; /* bytes per element: 4 (F32) or 2 (F16, BF16) */
  gboolean bf16;
} Entry;

static float
half_to_float (guint16 h)
{
  guint32 sign = (guint32)(h & 0x8000) << 16;
  guint32 exp = (h >> 10) & 0x1f;
  guint32 mant = h & 0x3ff;
  guint32 bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: renormalise */
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        exp--;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

static gboolean
json_node_is_int (JsonNode *n)
{
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64;
}

static int
compare_entries (gconstpointer a, gconstpointer b)
{
  const Entry *ea = *(Entry *const *)a, *eb = *(Entry *const *)b;
  if (ea->begin != eb->begin)
    return ea->begin < eb->begin ? -1 : 1;
  return ea->end < eb->end ? -1 : (ea->end > eb->end);
}

static gboolean
parse_tensor (
    MmSafetensors *st, const char *name, JsonNode *node, guint64 data_len, Entry *e, GError **error)
{
  const char *L = st->label;
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    mm_format_error (error, L, "tensor '%s': entry is not a JSON object", name);
    return FALSE;
  }
  JsonObject *o = json_node_get_object (node);
  JsonNode *dt = json_object_get_member (o, "dtype");
  JsonNode *sh = json_object_get_member (o, "shape");
  JsonNode *off = json_object_get_member (o, "data_offsets");
  if (!dt || !JSON_NODE_HOLDS_VALUE (dt) || json_node_get_value_type (dt) != G_TYPE_STRING) {
    mm_format_error (error, L, "tensor '%s': missing or non-string dtype", name);
    return FALSE;
  }
  const char *dtype = json_node_get_string (dt);
  guint dsize;
  if (g_str_equal (dtype, "F32"))
    dsize = 4;
  else if (g_str_equal (dtype, "F16") || g_str_equal (dtype, "BF16"))
    dsize = 2;
  else {
    mm_set_error (error, MM_ERROR_UNSUPPORTED, L,
        "tensor '%s': dtype '%s' is not supported (F32, F16, BF16 are)", name, dtype);
    return FALSE;
  }
  if (!sh || !JSON_NODE_HOLDS_ARRAY (sh)) {
    mm_format_error (error, L, "tensor '%s': missing shape array", name);
    return FALSE;
  }
  JsonArray *sa = json_node_get_array (sh);
  guint nd = json_array_get_length (sa);
  if (nd > MAX_DIMS) {
    mm_format_error (error, L, "tensor '%s': %u dimensions (at most %d)", name, nd, MAX_DIMS);
    return FALSE;
  }
  guint64 count = 1;
  for (guint i = 0; i < nd; i++) {
    JsonNode *d = json_array_get_element (sa, i);
    if (!json_node_is_int (d) || json_node_get_int (d) < 0) {
      mm_format_error (
          error, L, "tensor '%s': dimension %u is not a non-negative integer", name, i);
      return FALSE;
    }
    gint64 v = json_node_get_int (d);
    if (v != 0 && count > G_MAXUINT64 / (guint64)v / dsize) {
      mm_format_error (error, L, "tensor '%s': element count overflows", name);
      return FALSE;
    }
    count *= (guint64)v;
    e->t.shape[i] = v;
  }
  if (!off || !JSON_NODE_HOLDS_ARRAY (off)
      || json_array_get_length (json_node_get_array (off)) != 2) {
    mm_format_error (error, L, "tensor '%s': data_offsets must be [begin, end]", name);
    return FALSE;
  }
  JsonArray *oa = json_node_get_array (off);
  JsonNode *b = json_array_get_element (oa, 0), *en = json_array_get_element (oa, 1);
  if (!json_node_is_int (b) || !json_node_is_int (en) || json_node_get_int (b) < 0
      || json_node_get_int (en) < json_node_get_int (b)) {
    mm_format_error (error, L, "tensor '%s': data_offsets are not 0 <= begin <= end", name);
    return FALSE;
  }
  e->begin = (guint64)json_node_get_int (b);
  e->end = (guint64)json_node_get_int (en);
  if (e->end > data_len) {
    mm_format_error (error, L,
        "tensor '%s': data [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
        ") lies past the end of the file's %" G_GUINT64_FORMAT " data bytes",
        name, e->begin, e->end, data_len);
    return FALSE;
  }
  if (e->end - e->begin != count * dsize) {
    mm_format_error (error, L,
        "tensor '%s': %" G_GUINT64_FORMAT " bytes for %" G_GUINT64_FORMAT " elements of %s", name,
        e->end - e->begin, count, dtype);
    return FALSE;
  }
  e->t.ndim = nd;
  e->t.n_elements = count;
  e->t.name = name;
  e->dsize = dsize;
  e->bf16 = g_str_equal (dtype, "BF16");
  return TRUE;
}

static const float *
tensor_data (MmSafetensors *st, const guint8 *src, guint dsize, gsize count, gboolean bf16)
{
  if (dsize == 4 && ((gsize)src % G_ALIGNOF (float)) == 0)
    return (const float *)src;
  float *dst = g_try_new (float, count ? count : 1);
  if (!dst)
    return NULL;
  g_ptr_array_add (st->owned, dst);
  for (gsize i = 0; i < count; i++) {
    if (dsize == 4) {
      memcpy (&dst[i], src + 4 * i, 4);
    } else {
      guint16 h = (guint16)(src[2 * i] | (src[2 * i + 1] << 8));
      if (bf16) {
        guint32 bits = (guint32)h << 16;
        memcpy (&dst[i], &bits, 4);
      } else {
        dst[i] = half_to_float (h);
      }
    }
  }
  return dst;
}

static gboolean
parse_metadata (MmSafetensors *st, JsonNode *node, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    mm_format_error (error, st->label, "__metadata__ is not a JSON object");
    return FALSE;
  }
  JsonObject *o = json_node_get_object (node);
  GList *members = json_object_get_members (o);
  for (GList *l = members; l; l = l->next) {
    JsonNode *v = json_object_get_member (o, l->data);
    if (JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING)
      g_hash_table_insert (st->metadata, g_strdup (l->data), g_strdup (json_node_get_string (v)));
  }
  g_list_free (members);
  return TRUE;
}

static gboolean
parse (MmSafetensors *st, GError **error)
{
  const char *L = st->label;
  if (st->len < 8) {
    mm_format_error (error, L,
        "file is %" G_GSIZE_FORMAT " bytes, too short for a "
        "safetensors header",
        st->len);
    return FALSE;
  }
  guint64 n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | st->bytes[i];
  if (n < 2 || n > st->len - 8 || n > MAX_HEADER_BYTES) {
    mm_format_error (error, L,
        "header length %" G_GUINT64_FORMAT " is impossible for a "
        "file of %" G_GSIZE_FORMAT " bytes (at most %u MB allowed)",
        n, st->len, MAX_HEADER_BYTES >> 20);
    return FALSE;
  }
  const char *header = (const char *)st->bytes + 8;
  if (!g_utf8_validate (header, (gssize)n, NULL)) {
    mm_format_error (error, L, "header is not valid UTF-8");
    return FALSE;
  }
  /* before json-glib builds its tree: a 100 MB header of empty tensors
   * would otherwise take gigabytes */
  guint64 tree_bytes = 0;
  if (!mm_json_check_depth (header, n, L, "header", &tree_bytes, error)
      || !mm_budget_check (L, "parsing the header", tree_bytes, 0, error))
    return FALSE;
  JsonParser *parser = json_parser_new_immutable ();
  GError *jerr = NULL;
  gboolean ok = json_parser_load_from_data (parser, header, (gssize)n, &jerr);
  if (!ok) {
    mm_format_error (error, L, "header is not valid JSON: %s", jerr->message);
    g_error_free (jerr);
    g_object_unref (parser);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    mm_format_error (error, L, "header is not a JSON object");
    g_object_unref (parser);
    return FALSE;
  }
  JsonObject *obj = json_node_get_object (root);
  guint64 data_len = st->len - 8 - n;
  const guint8 *data = st->bytes + 8 + n;
  GList *members = json_object_get_members (obj);
  GPtrArray *entries = g_ptr_array_new_with_free_func (g_free);
  for (GList *l = members; l && ok; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (obj, name);
    if (g_str_equal (name, "__metadata__")) {
      ok = parse_metadata (st, node, error);
      continue;
    }
    Entry *e = g_new0 (Entry, 1);
    char *owned_name = g_strdup (name);
    g_ptr_array_add (st->owned, owned_name);
    g_ptr_array_add (entries, e);
    ok = parse_tensor (st, owned_name, node, data_len, e, error);
  }
  g_list_free (members);

  if (ok) {
    /* Sorted by begin, every non-empty tensor must start at or after the
     * furthest end seen so far (not just its neighbour's: an empty tensor
     * between two overlapping ones must not hide them). */
    g_ptr_array_sort (entries, compare_entries);
    const Entry *furthest = NULL;
    for (guint i = 0; i < entries->len && ok; i++) {
      Entry *cur = entries->pdata[i];
      if (cur->begin == cur->end)
        continue;
      if (furthest && cur->begin < furthest->end) {
        mm_format_error (error, L, "tensors '%s' and '%s' overlap in the data section",
            furthest->t.name, cur->t.name);
        ok = FALSE;
      }
      if (!furthest || cur->end > furthest->end)
        furthest = cur;
    }
  }
  /* F16, BF16 and misaligned F32 tensors become owned floats */
  guint64 convert_bytes = 0;
  for (guint i = 0; ok && i < entries->len; i++) {
    const Entry *e = entries->pdata[i];
    if (e->dsize != 4 || ((gsize)(data + e->begin) % G_ALIGNOF (float)) != 0)
      convert_bytes += (guint64)e->t.n_elements * sizeof (float);
  }
  if (ok)
    ok = mm_budget_check (L, "converting F16/BF16 tensors to float", convert_bytes, 0, error);
  for (guint i = 0; ok && i < entries->len; i++) {
    Entry *e = entries->pdata[i];
    e->t.data = tensor_data (st, data + e->begin, e->dsize, e->t.n_elements, e->bf16);
    if (!e->t.data) {
      mm_format_error (error, L, "cannot allocate %" G_GSIZE_FORMAT " MB to convert tensor '%s'",
          (e->t.n_elements * sizeof (float)) >> 20, e->t.name);
      ok = FALSE;
      break;
    }
    MmTensor *t = g_new (MmTensor, 1);
    *t = e->t;
    g_ptr_array_add (st->owned, t);
    g_hash_table_insert (st->tensors, (gpointer)t->name, t);
  }
  g_ptr_array_unref (entries);
  g_object_unref (parser);
  mm_budget_release (tree_bytes); /* json-glib's tree is gone */
  return ok;
}

static MmSafetensors *
st_new (const char *label)
{
  MmSafetensors *st = g_new0 (MmSafetensors, 1);
  st->label = g_strdup (label);
  st->tensors = g_hash_table_new (g_str_hash, g_str_equal);
  st->owned = g_ptr_array_new_with_free_func (g_free);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return st;
}

MmSafetensors *
mm_safetensors_open_bytes (const char *label, const guint8 *bytes, gsize len, GError **error)
{
  MmSafetensors *st = st_new (label);
  st->bytes = bytes;
  st->len = len;
  if (!parse (st, error)) {
    mm_safetensors_free (st);
    return NULL;
  }
  return st;
}

MmSafetensors *
mm_safetensors_open (const char *path, GError **error)
{
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
   * writer forever; the file type is then checked on what was opened. */
  int fd = g_open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    mm_set_error (error, MM_ERROR_IO, path, "cannot open model file: %s", g_strerror (e));
    return NULL;
  }
  struct stat sb;
  if (fstat (fd, &sb) != 0 || !S_ISREG (sb.st_mode)) {
    mm_set_error (error, MM_ERROR_IO, path,
        "cannot open model file: not a regular file (a FIFO, device or directory cannot be "
        "a model)");
    close (fd);
    return NULL;
  }
  GError *ferr = NULL;
  GMappedFile *mf = g_mapped_file_new_from_fd (fd, FALSE, &ferr);
  close (fd); /* the mapping keeps what it needs */
  if (!mf) {
    mm_set_error (error, MM_ERROR_IO, path, "cannot open model file: %s", ferr->message);
    g_error_free (ferr);
    return NULL;
  }
  MmSafetensors *st = st_new (path);
  st->mapped = mf;
  st->bytes = (const guint8 *)g_mapped_file_get_contents (mf);
  st->len = g_mapped_file_get_length (mf);
  if (!st->bytes)
    st->len = 0;
  if (!parse (st, error)) {
    mm_safetensors_free (st);
    return NULL;
  }
  return st;
}

void
mm_safetensors_free (MmSafetensors *st)
{
  if (!st)
    return;
  g_hash_table_unref (st->tensors);
  g_hash_table_unref (st->metadata);
  g_ptr_array_unref (st->owned);
  if (st->mapped)
    g_mapped_file_unref (st->mapped);
  g_free (st->label);
  g_free (st);
}

const char *
mm_safetensors_metadata (const MmSafetensors *st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

const MmTensor *
mm_safetensors_find (const MmSafetensors *st, const char *name)
{
  return g_hash_table_lookup (st->tensors, name);
}

guint
mm_safetensors_n_tensors (const MmSafetensors *st)
{
  return g_hash_table_size (st->tensors);
}

gboolean
mm_has_tensor (const MmSafetensors *st, const char *name)
{
  return mm_safetensors_find (st, name) != NULL;
}

static char *
shape_string (guint ndim, const gint64 *shape)
{
  GString *s = g_string_new ("(");
  for (guint i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      g_string_append (s, "*");
    else
      g_string_append_printf (s, "%" G_GINT64_FORMAT, shape[i]);
    if (i + 1 < ndim)
      g_string_append (s, ", ");
  }
  g_string_append (s, ")");
  return g_string_free (s, FALSE);
}

const float *
mm_bind (const MmSafetensors *st, const char *label, const char *name, guint ndim,
    const gint64 *shape, GError **error)
{
  const MmTensor *t = mm_safetensors_find (st, name);
  if (!t) {
    mm_format_error (error, label, "tensor '%s' is missing", name);
    return NULL;
  }
  gboolean match = t->ndim == ndim;
  for (guint i = 0; match && i < ndim; i++)
    match = shape[i] < 0 || shape[i] == t->shape[i];
  if (!match) {
    char *want = shape_string (ndim, shape), *got = shape_string (t->ndim, t->shape);
    mm_format_error (error, label, "tensor '%s' has shape %s, expected %s", name, got, want);
    g_free (want);
    g_free (got);
    return NULL;
  }
  return t->data;
}
