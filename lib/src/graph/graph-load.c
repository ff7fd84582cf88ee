/* libmm graph: parse, validate and infer shapes (models/FORMAT.md, "graph").
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The graph is hostile input.  Every name is resolved against what exists
 * *before* the node (graph inputs, earlier outputs, the file's tensors), so
 * a cycle is simply a reference to a later or its own output; every count
 * and size is checked in 64 bits against the limits before anything is
 * allocated; every error names the node.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "graph-internal.h"
#include "ops.h"

static const struct
{
  const char *name;
  MmGraphInputKind kind;
} input_kinds[] = {
  { "image", MM_GRAPH_INPUT_IMAGE },
  { "logmel", MM_GRAPH_INPUT_LOGMEL },
  { "logmel_t", MM_GRAPH_INPUT_LOGMEL_T },
  { "waveform", MM_GRAPH_INPUT_WAVEFORM },
  { "token_ids", MM_GRAPH_INPUT_TOKEN_IDS },
  { "attention_mask", MM_GRAPH_INPUT_ATTENTION_MASK },
  { "token_type_ids", MM_GRAPH_INPUT_TOKEN_TYPE_IDS },
  { "features", MM_GRAPH_INPUT_FEATURES },
};

static const char *const pool_names[] = { "flatten", "channel_mean", "first_token", "masked_mean" };

/* ---- errors ------------------------------------------------------------ */

static gboolean
node_error_v (
    GError **error, MmError code, const GrGraph *g, const GrNode *n, const char *fmt, va_list ap)
{
  char *msg = g_strdup_vprintf (fmt, ap);
  if (n)
    mm_set_error (error, code, g->label, "graph node %d ('%s', %s): %s", n->index, n->name,
        n->op ? n->op->name : "?", msg);
  else
    mm_set_error (error, code, g->label, "graph: %s", msg);
  g_free (msg);
  return FALSE;
}

gboolean
gr_node_error (GError **error, const GrGraph *g, const GrNode *n, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  node_error_v (error, MM_ERROR_FORMAT, g, n, fmt, ap);
  va_end (ap);
  return FALSE;
}

gboolean
gr_node_unsupported (GError **error, const GrGraph *g, const GrNode *n, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  node_error_v (error, MM_ERROR_UNSUPPORTED, g, n, fmt, ap);
  va_end (ap);
  return FALSE;
}

/* ---- attributes -------------------------------------------------------- */

static gboolean
is_number (JsonNode *v)
{
  if (!v || !JSON_NODE_HOLDS_VALUE (v))
    return FALSE;
  GType t = json_node_get_value_type (v);
  return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

static double
number (JsonNode *v)
{
  return json_node_get_value_type (v) == G_TYPE_INT64 ? (double)json_node_get_int (v)
                                                      : json_node_get_double (v);
}

gboolean
gr_attr_has (const GrNode *n, const char *key)
{
  return n->attrs && json_object_has_member (n->attrs, key);
}

gboolean
gr_attr_float (GrGraph *g, GrNode *n, const char *key, double def, double *out, GError **error)
{
  JsonNode *v = n->attrs ? json_object_get_member (n->attrs, key) : NULL;
  if (!v) {
    *out = def;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_ARRAY (v) && json_array_get_length (json_node_get_array (v)) == 1)
    v = json_array_get_element (json_node_get_array (v), 0);
  if (!is_number (v))
    return gr_node_error (error, g, n, "attribute '%s' must be a number", key);
  *out = number (v);
  return TRUE;
}

static gboolean
int_value (GrGraph *g, GrNode *n, const char *key, JsonNode *v, gint64 min, gint64 max, gint64 *out,
    GError **error)
{
  if (!is_number (v))
    return gr_node_error (error, g, n, "attribute '%s' must hold integers", key);
  double d = number (v);
  if (!(d == floor (d)) || d < (double)min || d > (double)max)
    return gr_node_error (error, g, n,
        "attribute '%s': %g is not an integer in [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", key,
        d, min, max);
  *out = (gint64)d;
  return TRUE;
}

gboolean
gr_attr_int (GrGraph *g, GrNode *n, const char *key, gint64 def, gint64 min, gint64 max,
    gint64 *out, GError **error)
{
  JsonNode *v = n->attrs ? json_object_get_member (n->attrs, key) : NULL;
  if (!v) {
    *out = def;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_ARRAY (v) && json_array_get_length (json_node_get_array (v)) == 1)
    v = json_array_get_element (json_node_get_array (v), 0);
  return int_value (g, n, key, v, min, max, out, error);
}

gboolean
gr_attr_ints (GrGraph *g, GrNode *n, const char *key, gint64 min, gint64 max, gint64 *out, int *len,
    GError **error)
{
  JsonNode *v = n->attrs ? json_object_get_member (n->attrs, key) : NULL;
  *len = -1;
  if (!v)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (v)) {
    *len = 1;
    return int_value (g, n, key, v, min, max, out, error);
  }
  JsonArray *a = json_node_get_array (v);
  guint l = json_array_get_length (a);
  if (l > G_MAX_ATTR_LEN)
    return gr_node_error (
        error, g, n, "attribute '%s' has %u numbers (at most %d)", key, l, G_MAX_ATTR_LEN);
  for (guint i = 0; i < l; i++)
    if (!int_value (g, n, key, json_array_get_element (a, i), min, max, out + i, error))
      return FALSE;
  *len = (int)l;
  return TRUE;
}

gboolean
gr_axis (GrGraph *g, GrNode *n, gint64 axis, int rank, int *out, GError **error)
{
  if (axis < -rank || axis >= MAX (rank, 1) || (rank == 0))
    return gr_node_error (
        error, g, n, "axis %" G_GINT64_FORMAT " is outside [-%d, %d)", axis, rank, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return TRUE;
}

/* every attribute must be one the op knows, and a number or an array of
 * numbers */
static gboolean
check_attrs (GrGraph *g, GrNode *n, GError **error)
{
  if (!n->attrs)
    return TRUE;
  GList *keys = json_object_get_members (n->attrs);
  guint count = g_list_length (keys);
  gboolean ok = TRUE;
  if (count > G_MAX_ATTRS)
    ok = gr_node_error (error, g, n, "%u attributes (at most %d)", count, G_MAX_ATTRS);
  for (GList *l = keys; ok && l; l = l->next) {
    const char *k = l->data;
    gsize kl = strlen (k);
    const char *p = n->op->attrs;
    gboolean known = FALSE;
    while (p && *p) {
      const char *e = strchr (p, ',');
      gsize len = e ? (gsize)(e - p) : strlen (p);
      if (len == kl && strncmp (p, k, len) == 0)
        known = TRUE;
      p = e ? e + 1 : NULL;
    }
    if (!known) {
      ok = gr_node_unsupported (error, g, n, "attribute '%s' is not supported (supported: %s)", k,
          *n->op->attrs ? n->op->attrs : "none");
      break;
    }
    JsonNode *v = json_object_get_member (n->attrs, k);
    if (JSON_NODE_HOLDS_ARRAY (v)) {
      JsonArray *a = json_node_get_array (v);
      for (guint i = 0; ok && i < json_array_get_length (a); i++)
        if (!is_number (json_array_get_element (a, i)))
          ok = gr_node_error (error, g, n, "attribute '%s' must be an array of numbers", k);
    } else if (!is_number (v)) {
      ok = gr_node_error (error, g, n, "attribute '%s' must be a number or an array of numbers", k);
    }
  }
  g_list_free (keys);
  return ok;
}

/* ---- shapes ------------------------------------------------------------ */

gboolean
gr_shape_finish (GrGraph *g, GrNode *n, GrShape *s, GError **error)
{
  gint64 count = 1;
  if (s->rank < 0 || s->rank > G_MAX_RANK)
    return gr_node_error (error, g, n, "rank %d (at most %d)", s->rank, G_MAX_RANK);
  for (int i = 0; i < s->rank; i++) {
    if (s->d[i] < 1)
      return gr_node_error (error, g, n,
          "dimension %d is %" G_GINT64_FORMAT " (empty tensors are "
          "not supported)",
          i, s->d[i]);
    if (s->d[i] > G_MAX_ELEMENTS || count * s->d[i] > G_MAX_ELEMENTS)
      return gr_node_error (error, g, n, "a tensor of more than 2^28 elements");
    count *= s->d[i];
  }
  s->n = (gsize)count;
  return TRUE;
}

GrValue *
gr_in (GrGraph *g, const GrNode *n, int i)
{
  return i < n->n_in && n->in[i] >= 0 ? &g->values[n->in[i]] : NULL;
}

GrValue *
gr_out (GrGraph *g, const GrNode *n, int i)
{
  return &g->values[n->out[i]];
}

gboolean
gr_broadcast (
    GrGraph *g, GrNode *n, const GrShape *a, const GrShape *b, GrShape *out, GError **error)
{
  int r = MAX (a->rank, b->rank);
  out->rank = r;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->rank), ib = i - (r - b->rank);
    gint64 da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return gr_node_error (error, g, n,
          "shapes cannot be broadcast: dimension %d is %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT,
          i, da, db);
    out->d[i] = da == 1 ? db : da;
  }
  return gr_shape_finish (g, n, out, error);
}

/* ---- values ------------------------------------------------------------ */

static int
new_value (GrGraph *g, const char *name, GrValueKind kind)
{
  if (g->n_values == g->cap_values) {
    g->cap_values = g->cap_values ? 2 * g->cap_values : 64;
    g->values = g_renew (GrValue, g->values, g->cap_values);
  }
  int id = g->n_values++;
  g->values[id] =
      (GrValue){ .name = name, .kind = kind, .producer = -1, .alias = -1, .last_use = -1 };
  return id;
}

static gboolean
check_name (GrGraph *g, GrNode *n, JsonNode *e, const char **out, GError **error)
{
  if (!e || !JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING)
    return gr_node_error (error, g, n, "tensor names must be strings");
  const char *s = json_node_get_string (e);
  if (strlen (s) > G_MAX_NAME)
    return gr_node_error (error, g, n, "a tensor name longer than %d bytes", G_MAX_NAME);
  *out = s;
  return TRUE;
}

/* a weight: "<prefix><name>" in the file; a value is made once per tensor */
static int
find_weight (GrGraph *g, const char *name)
{
  char *full = g_strconcat (g->prefix, name, NULL);
  const MmTensor *t = mm_safetensors_find (g->st, full);
  g_free (full);
  if (!t || t->ndim > G_MAX_RANK || t->n_elements == 0)
    return -1;
  int id = new_value (g, name, V_WEIGHT);
  GrValue *v = &g->values[id];
  v->data = t->data;
  v->s.rank = (int)t->ndim;
  for (guint i = 0; i < t->ndim; i++)
    v->s.d[i] = t->shape[i];
  v->s.n = t->n_elements;
  g_hash_table_insert (g->by_name, (gpointer)name, GINT_TO_POINTER (id + 1));
  return id;
}

/* ---- parsing ----------------------------------------------------------- */

static gboolean
parse_shape (GrGraph *g, JsonNode *sn, GrShape *s, const char *what, GError **error)
{
  if (!sn || !JSON_NODE_HOLDS_ARRAY (sn))
    return gr_node_error (error, g, NULL, "%s: \"shape\" must be an array of integers", what);
  JsonArray *a = json_node_get_array (sn);
  guint r = json_array_get_length (a);
  if (r > G_MAX_RANK)
    return gr_node_error (error, g, NULL, "%s: rank %u (at most %d)", what, r, G_MAX_RANK);
  s->rank = (int)r;
  gint64 count = 1;
  for (guint i = 0; i < r; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64)
      return gr_node_error (error, g, NULL, "%s: \"shape\" must be an array of integers", what);
    s->d[i] = json_node_get_int (e);
    if (s->d[i] < 1 || s->d[i] > G_MAX_ELEMENTS || count * s->d[i] > G_MAX_ELEMENTS)
      return gr_node_error (error, g, NULL,
          "%s: shape entry %u is out of range (1 to 2^28 "
          "elements in all)",
          what, i);
    count *= s->d[i];
  }
  s->n = (gsize)count;
  return TRUE;
}

static gboolean
parse_inputs (GrGraph *g, JsonObject *cfg, GError **error)
{
  JsonNode *in = json_object_get_member (cfg, "inputs");
  if (!in || !JSON_NODE_HOLDS_ARRAY (in))
    return gr_node_error (error, g, NULL, "\"inputs\" must be an array of objects");
  JsonArray *a = json_node_get_array (in);
  guint n = json_array_get_length (a);
  if (n < 1 || n > G_N_ELEMENTS (g->inputs))
    return gr_node_error (
        error, g, NULL, "%u inputs (1 to %u)", n, (guint)G_N_ELEMENTS (g->inputs));
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_OBJECT (e))
      return gr_node_error (error, g, NULL, "input %u is not an object", i);
    JsonObject *o = json_node_get_object (e);
    char what[32];
    g_snprintf (what, sizeof what, "input %u", i);
    const char *name = mm_json_string (o, g->label, "name", TRUE, NULL, error);
    const char *kind = name ? mm_json_string (o, g->label, "kind", TRUE, NULL, error) : NULL;
    if (!kind)
      return FALSE;
    if (!*name || strlen (name) > G_MAX_NAME)
      return gr_node_error (error, g, NULL, "input %u: names are 1 to %d bytes", i, G_MAX_NAME);
    if (g_hash_table_contains (g->by_name, name))
      return gr_node_error (error, g, NULL, "input '%s' is given twice", name);
    int k = -1;
    for (guint j = 0; j < G_N_ELEMENTS (input_kinds); j++)
      if (g_str_equal (kind, input_kinds[j].name))
        k = (int)j;
    if (k < 0)
      return gr_node_error (error, g, NULL,
          "input '%s': unknown kind '%s' (image, logmel, logmel_t, waveform, token_ids, "
          "attention_mask, token_type_ids, features)",
          name, kind);
    for (int j = 0; j < g->n_inputs; j++)
      if (g->inputs[j].kind == input_kinds[k].kind)
        return gr_node_error (error, g, NULL, "two inputs of kind '%s'", kind);
    int id = new_value (g, name, V_INPUT);
    if (!parse_shape (g, json_object_get_member (o, "shape"), &g->values[id].s, what, error))
      return FALSE;
    g->inputs[g->n_inputs++] = (GrInput){ id, input_kinds[k].kind };
    g_hash_table_insert (g->by_name, (gpointer)name, GINT_TO_POINTER (id + 1));
  }
  return TRUE;
}

static gboolean
parse_node (GrGraph *g, GrNode *n, JsonNode *e, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (e))
    return gr_node_error (error, g, n, "not a JSON object");
  JsonObject *o = json_node_get_object (e);
  JsonNode *nm = json_object_get_member (o, "name");
  if (nm) {
    if (!check_name (g, n, nm, &n->name, error))
      return FALSE;
  }
  JsonNode *opn = json_object_get_member (o, "op");
  if (!opn || !JSON_NODE_HOLDS_VALUE (opn) || json_node_get_value_type (opn) != G_TYPE_STRING)
    return gr_node_error (error, g, n, "\"op\" must be a string");
  const char *opname = json_node_get_string (opn);
  n->op = gr_op_find (opname);
  if (!n->op) {
    char *list = gr_op_list ();
    gr_node_unsupported (
        error, g, n, "operator '%.64s' is not supported (supported: %s)", opname, list);
    g_free (list);
    return FALSE;
  }
  JsonNode *an = json_object_get_member (o, "attrs");
  if (an && !JSON_NODE_HOLDS_NULL (an)) {
    if (!JSON_NODE_HOLDS_OBJECT (an))
      return gr_node_error (error, g, n, "\"attrs\" must be an object");
    n->attrs = json_node_get_object (an);
  }
  JsonNode *ins = json_object_get_member (o, "inputs");
  JsonNode *outs = json_object_get_member (o, "outputs");
  if (!ins || !JSON_NODE_HOLDS_ARRAY (ins) || !outs || !JSON_NODE_HOLDS_ARRAY (outs))
    return gr_node_error (error, g, n, "\"inputs\" and \"outputs\" must be arrays of names");
  JsonArray *ia = json_node_get_array (ins), *oa = json_node_get_array (outs);
  guint ni = json_array_get_length (ia), no = json_array_get_length (oa);
  if (ni < n->op->min_in || ni > n->op->max_in)
    return gr_node_error (error, g, n, "%u inputs (%s takes %u to %u)", ni, n->op->name,
        n->op->min_in, n->op->max_in);
  if (no < n->op->min_out || no > n->op->max_out)
    return gr_node_error (error, g, n, "%u outputs (%s gives %u to %u)", no, n->op->name,
        n->op->min_out, n->op->max_out);
  if (!check_attrs (g, n, error))
    return FALSE;
  n->n_in = (int)ni;
  n->n_out = (int)no;
  n->in = g_new (int, ni + no);
  n->out = n->in + ni;

  for (guint i = 0; i < ni; i++) {
    const char *name;
    if (!check_name (g, n, json_array_get_element (ia, i), &name, error))
      return FALSE;
    n->in[i] = -1;
    if (!*name)
      continue;
    int id = GPOINTER_TO_INT (g_hash_table_lookup (g->by_name, name)) - 1;
    if (id < 0)
      id = find_weight (g, name);
    if (id < 0)
      return gr_node_error (error, g, n,
          "input '%s' is not a graph input, an output of an earlier node or a tensor '%s%s' "
          "in the file",
          name, g->prefix, name);
    n->in[i] = id;
  }
  for (guint i = 0; i < no; i++) {
    const char *name;
    if (!check_name (g, n, json_array_get_element (oa, i), &name, error))
      return FALSE;
    if (!*name)
      return gr_node_error (error, g, n, "output %u has an empty name", i);
    char *full = g_strconcat (g->prefix, name, NULL);
    gboolean is_weight = mm_has_tensor (g->st, full);
    g_free (full);
    if (g_hash_table_contains (g->by_name, name) || is_weight)
      return gr_node_error (
          error, g, n, "output '%s' is already a graph input, a weight or an earlier output", name);
    int id = new_value (g, name, V_ACT);
    g->values[id].producer = n->index;
    n->out[i] = id;
    g_hash_table_insert (g->by_name, (gpointer)name, GINT_TO_POINTER (id + 1));
  }
  /* required inputs: every position below min_in must be present */
  for (int i = 0; i < n->op->min_in; i++)
    if (n->in[i] < 0)
      return gr_node_error (error, g, n, "input %d is required", i);

  if (!n->op->shape (g, n, error))
    return FALSE;
  for (int i = 0; i < n->n_out; i++)
    if (!gr_shape_finish (g, n, &gr_out (g, n, i)->s, error))
      return FALSE;
  if (n->op->view) {
    GrValue *src = gr_in (g, n, 0), *dst = gr_out (g, n, 0);
    if (dst->s.n != src->s.n)
      return gr_node_error (error, g, n, "element count changes");
    dst->alias = n->in[0];
    dst->data = src->data;
  }
  if (n->scratch > G_MAX_ARENA_FLOATS)
    return gr_node_error (error, g, n, "needs %" G_GSIZE_FORMAT " MB of scratch (at most 1024)",
        (n->scratch * sizeof (float)) >> 20);
  g->macs += n->macs;
  if (g->macs > G_MAX_MACS)
    return gr_node_error (error, g, n, "the graph needs more than 2^35 multiply-adds per run");
  return TRUE;
}

static gboolean
parse_output (GrGraph *g, JsonObject *cfg, GError **error)
{
  const char *out = mm_json_string (cfg, g->label, "output", TRUE, NULL, error);
  if (!out)
    return FALSE;
  const char *pool = mm_json_string (cfg, g->label, "pool", FALSE, "flatten", error);
  if (!pool)
    return FALSE;
  int p = -1;
  for (guint i = 0; i < G_N_ELEMENTS (pool_names); i++)
    if (g_str_equal (pool, pool_names[i]))
      p = (int)i;
  if (p < 0)
    return gr_node_error (error, g, NULL,
        "\"pool\" '%s' is not one of flatten, channel_mean, first_token, masked_mean", pool);
  g->pool = (GrPool)p;
  int id = GPOINTER_TO_INT (g_hash_table_lookup (g->by_name, out)) - 1;
  if (id < 0 || g->values[id].kind == V_WEIGHT)
    return gr_node_error (error, g, NULL, "\"output\" '%s' is not a node output or an input", out);
  g->output = id;
  const GrShape *s = &g->values[id].s;
  gsize got = 0;
  switch (g->pool) {
    case POOL_FLATTEN:
      got = s->n;
      break;
    case POOL_CHANNEL_MEAN:
      if (s->rank < 2 || s->d[0] != 1)
        return gr_node_error (error, g, NULL, "pool channel_mean needs an output (1, C, ...)");
      got = (gsize)s->d[1];
      break;
    case POOL_MASKED_MEAN:
      if (mm_graph_find_input ((MmGraph *)g, MM_GRAPH_INPUT_ATTENTION_MASK) < 0)
        return gr_node_error (error, g, NULL, "pool masked_mean needs an attention_mask input");
      /* fall through */
    case POOL_FIRST_TOKEN:
      if (s->rank != 3 || s->d[0] != 1)
        return gr_node_error (error, g, NULL, "pool %s needs an output (1, L, H)", pool);
      got = (gsize)s->d[2];
      if (g->pool == POOL_MASKED_MEAN) {
        const GrValue *m =
            &g->values[g->inputs[mm_graph_find_input ((MmGraph *)g, MM_GRAPH_INPUT_ATTENTION_MASK)]
                           .value];
        if (m->s.n != (gsize)s->d[1])
          return gr_node_error (error, g, NULL,
              "pool masked_mean: the output has %" G_GINT64_FORMAT
              " rows but the attention mask %" G_GSIZE_FORMAT,
              s->d[1], m->s.n);
      }
      break;
  }
  if (got != g->dim)
    return gr_node_error (error, g, NULL,
        "output '%s' pooled by %s gives %" G_GSIZE_FORMAT " values but \"dim\" is %u", out, pool,
        got, g->dim);
  return TRUE;
}

/* What gr_plan will pack at load (gr_conv_prepare): each Conv without
 * dilation gets conv-cl's panels (a group's output channels rounded up to 8
 * or 16, so up to 8x its weights) or dwconv-cl's rows (channels rounded up
 * to 16), plus their alignment.  Counted before any is allocated. */
static guint64
gr_packed_bytes (GrGraph *g)
{
  guint64 sum = 0;
  if (mm_ops_get_reference ())
    return 0; /* planned NCHW: nothing packed */
  for (int i = 0; i < g->n_nodes; i++) {
    GrNode *n = &g->nodes[i];
    const GrParams *p = &n->p;
    sum += gr_matmul_packed_bytes (g, n);
    if (!g_str_equal (n->op->name, "Conv") || p->dl[0] != 1 || p->dl[1] != 1)
      continue;
    guint64 c = (guint64)gr_in (g, n, 0)->s.d[1], m = (guint64)gr_in (g, n, 1)->s.d[0];
    guint64 taps = (guint64)p->k[0] * (guint64)p->k[1];
    if ((guint64)p->group == c && m == c && p->group > 1) {
      guint64 c_pad = (c + 15) / 16 * 16;
      sum += (taps * c_pad + c_pad) * sizeof (float) + 63;
    } else if (gr_conv_wino_pick (g, n)) {
      sum += mm_winograd_cl_bytes (gr_conv_wino_pick (g, n), (int)c, (int)m);
    } else {
      sum += mm_conv_cl_packed_bytes ((int)c, (int)m, p->k[0], p->k[1], p->group) + 64;
    }
  }
  return sum;
}

MmGraph *
mm_graph_load (
    const MmSafetensors *st, JsonObject *cfg, const char *prefix, const char *label, GError **error)
{
  MmGraph *mg = g_new0 (MmGraph, 1);
  GrGraph *g = &mg->g;
  g->label = label ? g_strdup (label) : g_strdup ("graph");
  g->prefix = g_strdup (prefix);
  g->st = st;
  g->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  g->output = -1;

  if (!mm_json_uint (cfg, g->label, "dim", TRUE, 0, 1, 1 << 20, &g->dim, error)
      || !parse_inputs (g, cfg, error))
    goto fail;
  JsonNode *nodes = json_object_get_member (cfg, "nodes");
  if (!nodes || !JSON_NODE_HOLDS_ARRAY (nodes)) {
    gr_node_error (error, g, NULL, "\"nodes\" must be an array of objects");
    goto fail;
  }
  JsonArray *na = json_node_get_array (nodes);
  guint nn = json_array_get_length (na);
  if (nn > G_MAX_NODES) {
    gr_node_error (error, g, NULL, "%u nodes (at most %d)", nn, G_MAX_NODES);
    goto fail;
  }
  g->nodes = g_new0 (GrNode, MAX (nn, 1));
  for (guint i = 0; i < nn; i++) {
    GrNode *n = &g->nodes[i];
    n->index = (int)i;
    n->name = "";
    n->residual = -1;
    n->bias = -1;
    g->n_nodes = (int)i + 1;
    if (!parse_node (g, n, json_array_get_element (na, i), error))
      goto fail;
  }
  if (!parse_output (g, cfg, error))
    goto fail;
  /* the packed conv weights are allocated by gr_plan: checked before it */
  if (!mm_budget_check (
          g->label, "the graph's packed convolution weights", gr_packed_bytes (g), 0, error)
      || !gr_plan (g, error))
    goto fail;
  /* the process-wide budget (MM_MAX_MEMORY, MM_MAX_WORK): every context
   * allocates the activations and the largest scratch; the work is per run.
   * The fixed limits above hold whatever the environment says. */
  if (!mm_budget_check (g->label, "the graph's activations and scratch",
          (guint64)(g->arena + g->scratch) * sizeof (float), (guint64)(2.0 * g->macs), error))
    goto fail;
  g_debug ("%s: graph of %d nodes in %u steps, %.2f GMAC, %u values channel-last, activations "
           "%.2f MB (%.2f MB without reuse), scratch %.2f MB",
      g->label, g->n_nodes, g->n_steps, g->macs * 1e-9, mm_graph_n_channel_last (mg),
      g->arena * 4.0 / 1048576.0, g->total * 4.0 / 1048576.0, g->scratch * 4.0 / 1048576.0);
  return mg;

fail:
  mm_graph_free (mg);
  return NULL;
}

void
mm_graph_free (MmGraph *mg)
{
  if (!mg)
    return;
  GrGraph *g = &mg->g;
  for (int i = 0; i < g->n_nodes; i++) {
    g_free (g->nodes[i].in);
    g_free (g->nodes[i].priv);
    mm_conv_cl_clear (&g->nodes[i].ccl);
    mm_dwconv_cl_clear (&g->nodes[i].dcl);
    mm_winograd_cl_clear (&g->nodes[i].wcl);
    mm_conv_bf16_clear (&g->nodes[i].b16);
    mm_linear_packed_clear (&g->nodes[i].lin);
  }
  g_free (g->nodes);
  g_free (g->values);
  g_hash_table_destroy (g->by_name);
  g_free ((char *)g->label);
  g_free ((char *)g->prefix);
  g_free (mg);
}

guint
mm_graph_dim (const MmGraph *g)
{
  return g->g.dim;
}

guint
mm_graph_n_inputs (const MmGraph *g)
{
  return (guint)g->g.n_inputs;
}

MmGraphInputKind
mm_graph_input_kind (const MmGraph *g, guint i)
{
  return g->g.inputs[i].kind;
}

guint
mm_graph_input_shape (const MmGraph *g, guint i, gint64 *dims)
{
  const GrShape *s = &g->g.values[g->g.inputs[i].value].s;
  for (int j = 0; j < s->rank; j++)
    dims[j] = s->d[j];
  return (guint)s->rank;
}

int
mm_graph_find_input (const MmGraph *g, MmGraphInputKind kind)
{
  for (int i = 0; i < g->g.n_inputs; i++)
    if (g->g.inputs[i].kind == kind)
      return i;
  return -1;
}

gsize
mm_graph_peak_bytes (const MmGraph *g)
{
  return (g->g.arena + g->g.scratch) * sizeof (float);
}

gsize
mm_graph_total_bytes (const MmGraph *g)
{
  return g->g.total * sizeof (float);
}

guint
mm_graph_n_channel_last (const MmGraph *g)
{
  guint k = 0;
  for (int i = 0; i < g->g.n_values; i++)
    k += g->g.values[i].cl;
  return k;
}

guint
mm_graph_n_steps (const MmGraph *g)
{
  return g->g.n_steps;
}
