/* libmm graph planner: runs once at load, after shape inference.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * 1. Fusion: a Conv takes the BatchNormalization after it (folded into a
 *    per-channel scale and shift), then a residual Add, then an
 *    activation (Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid,
 *    Tanh, Gelu, or SiLU as the pair Sigmoid + Mul); MatMul takes a
 *    residual Add and an activation; the other ops with an epilogue take
 *    an activation.  A value is fused only when its one reader is the
 *    next op of the pattern and it is not the graph's output; the host
 *    step then writes the last value of the chain directly.
 * 2. Layout: a Conv that conv-cl.c or dwconv-cl.c can run (dilation 1)
 *    gets its weights packed here and writes channel-last; pools, the
 *    element-wise ops and a channel Concat keep the layout of their
 *    inputs; every other reader needs channel-first, which its producer
 *    then writes (a Conv transposes on the way out), so no conversion
 *    step is ever added.  Planned under mm_ops_set_reference (TRUE), the
 *    graph stays channel-first with im2col + sgemm convolutions.
 * 3. Buffer reuse: every value that is not a weight gets an offset in one
 *    arena, first-fit among the values alive at the step that writes it
 *    (a value lives from its producing step to its last reader; views
 *    share their input's storage), so the arena is the peak of live
 *    activations, not their sum.
 */
#include <string.h>

#include "graph-internal.h"
#include "ops.h"

typedef struct
{
  int *uses;     /* readers per value */
  int *consumer; /* the last node reading each value */
} Uses;

static void
count_uses (GrGraph *g, Uses *u)
{
  memset (u->uses, 0, sizeof (int) * g->n_values);
  for (int i = 0; i < g->n_values; i++)
    u->consumer[i] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    const GrNode *n = &g->nodes[i];
    if (n->fused_away)
      continue;
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) {
        u->uses[n->in[j]]++;
        u->consumer[n->in[j]] = i;
      }
  }
  if (g->output >= 0)
    u->uses[g->output] += 1000; /* never fused away */
}

static gboolean
is_op (const GrNode *n, const char *name)
{
  return g_str_equal (n->op->name, name);
}

/* an op whose run applies n->act to its output */
static gboolean
takes_act (const GrNode *n)
{
  static const char *const hosts[] = { "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GlobalAveragePool",
    "AveragePool", "MaxPool" };
  for (guint i = 0; i < G_N_ELEMENTS (hosts); i++)
    if (is_op (n, hosts[i]))
      return TRUE;
  return FALSE;
}

/* a pure activation node (its shape rule set n->act; one input) */
static gboolean
is_act (const GrNode *n)
{
  static const char *const acts[] = { "Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish",
    "Sigmoid", "Tanh", "Gelu" };
  for (guint i = 0; i < G_N_ELEMENTS (acts); i++)
    if (is_op (n, acts[i]))
      return n->n_in == 1;
  return FALSE;
}

/* folds the batch-norm node @bn into conv @c: priv = scale, shift (with
 * the conv's bias) */
static void
fold_bn (GrGraph *g, GrNode *c, GrNode *bn)
{
  int m = (int)g->values[c->out[0]].s.d[1];
  float *p = g_new (float, 2 * m);
  const float *bp = bn->priv;
  const float *b = c->n_in > 2 && c->in[2] >= 0 ? g->values[c->in[2]].data : NULL;
  for (int i = 0; i < m; i++) {
    p[i] = bp[i];
    p[m + i] = bp[m + i] + (b ? b[i] * bp[i] : 0.0f);
  }
  g_free (c->priv);
  c->priv = p;
}

/* Add @c adds to value @cur a weight vector of its last dimension (a
 * linear's bias: shape (N), or (1, ..., 1, N)) */
static gboolean
is_row_bias (const GrGraph *g, const GrNode *c, int cur)
{
  int other = c->in[0] == cur ? c->in[1] : c->in[0];
  const GrShape *o = &g->values[other].s, *x = &g->values[cur].s;
  if (other == cur || !g->values[other].data || o->rank < 1 || o->rank > x->rank || x->rank < 1
      || o->d[o->rank - 1] != x->d[x->rank - 1] || o->n != (gsize)o->d[o->rank - 1])
    return FALSE;
  return TRUE;
}

static void
fuse (GrGraph *g, Uses *u)
{
  for (int i = 0; i < g->n_nodes; i++) {
    GrNode *h = &g->nodes[i];
    if (h->fused_away || h->op->view || !takes_act (h) || h->n_out != 1 || h->act != ACT_NONE)
      continue;
    gboolean conv = is_op (h, "Conv"), matmul = is_op (h, "MatMul");
    gboolean bn_done = FALSE;
    for (;;) {
      count_uses (g, u);
      int cur = h->out[0];
      int ci = u->consumer[cur];
      if (ci < 0)
        break;
      GrNode *c = &g->nodes[ci];
      /* SiLU: x * sigmoid (x), x read by both */
      if (u->uses[cur] == 2 && h->act == ACT_NONE && is_op (c, "Mul")) {
        int s_in = c->in[0] == cur ? c->in[1] : c->in[0];
        const GrValue *sv = &g->values[s_in];
        if ((c->in[0] == cur) != (c->in[1] == cur) && sv->producer >= 0) {
          GrNode *s = &g->nodes[sv->producer];
          if (is_op (s, "Sigmoid") && s->in[0] == cur && u->uses[s_in] == 1) {
            h->act = ACT_SILU;
            s->fused_away = c->fused_away = TRUE;
            h->out[0] = c->out[0];
            g->values[c->out[0]].producer = i;
            continue;
          }
        }
      }
      if (u->uses[cur] != 1)
        break;
      if (conv && !bn_done && h->residual < 0 && is_op (c, "BatchNormalization")) {
        fold_bn (g, h, c);
        bn_done = TRUE;
      } else if (matmul && h->bias < 0 && h->residual < 0 && h->act == ACT_NONE && is_op (c, "Add")
          && is_row_bias (g, c, cur)) {
        h->bias = c->in[0] == cur ? c->in[1] : c->in[0];
      } else if ((conv || matmul) && h->residual < 0 && h->act == ACT_NONE && is_op (c, "Add")) {
        int other = c->in[0] == cur ? c->in[1] : c->in[0];
        const GrValue *ov = &g->values[other];
        if (other == cur || ov->s.n != g->values[cur].s.n || ov->s.rank != g->values[cur].s.rank
            || memcmp (ov->s.d, g->values[cur].s.d, sizeof (gint64) * ov->s.rank) != 0
            || ov->producer >= i)
          break;
        h->residual = other;
      } else if (h->act == ACT_NONE && is_act (c)) {
        h->act = c->act;
        h->act_a = c->act_a;
        h->act_b = c->act_b;
      } else {
        break;
      }
      c->fused_away = TRUE;
      h->out[0] = c->out[0];
      g->values[c->out[0]].producer = i;
    }
  }
}

static int
root_of (const GrGraph *g, int v)
{
  while (g->values[v].alias >= 0)
    v = g->values[v].alias;
  return v;
}

/* ---- layout ------------------------------------------------------------- */

static const GrValue *
val (const GrGraph *g, int v)
{
  return &g->values[v];
}

/* an activation (1, C, H, W) with H W > 1 that may be stored channel-last */
static gboolean
can_cl (const GrGraph *g, int v)
{
  const GrValue *x = val (g, v);
  return x->kind == V_ACT && x->alias < 0 && !x->data && x->s.rank == 4 && x->s.d[0] == 1
      && x->s.d[2] * x->s.d[3] > 1 && v != g->output;
}

static gboolean
is_unary_act (const GrNode *n)
{
  return n->op->run == gr_run_act_fn ();
}

/* how operand @v of an element-wise op over output shape @o reads in
 * channel-last: 2 = same shape, 1 = one value per channel or a scalar,
 * 0 = needs channel-first */
static int
bin_kind (const GrGraph *g, int v, const GrShape *o)
{
  const GrShape *s = &val (g, v)->s;
  if (s->n == o->n && s->rank == o->rank)
    return 2;
  if (s->n == 1)
    return 1;
  if (s->n == (gsize)o->d[1] && s->rank >= 3 && s->d[s->rank - 1] == 1 && s->d[s->rank - 2] == 1
      && s->d[s->rank - 3] == o->d[1])
    return 1;
  return 0;
}

/* the layout node @n writes, given its inputs' */
static gboolean
out_cl (const GrGraph *g, const GrNode *n)
{
  if (n->n_out != 1 || !can_cl (g, n->out[0]))
    return FALSE;
  const GrShape *o = &val (g, n->out[0])->s;
  if (is_op (n, "Conv"))
    return n->fast != 0;
  if (is_op (n, "MaxPool") || is_op (n, "AveragePool") || is_unary_act (n))
    return val (g, n->in[0])->cl;
  if (is_op (n, "Add") || is_op (n, "Sub") || is_op (n, "Mul") || is_op (n, "Div")) {
    gboolean any = FALSE;
    for (int i = 0; i < 2; i++) {
      int k = bin_kind (g, n->in[i], o);
      if (k == 0 || (k == 2 && !val (g, n->in[i])->cl))
        return FALSE;
      any |= k == 2;
    }
    return any;
  }
  if (is_op (n, "Concat") && n->p.axis == 1) {
    for (int i = 0; i < n->n_in; i++)
      if (!val (g, n->in[i])->cl)
        return FALSE;
    return TRUE;
  }
  return FALSE;
}

/* whether @n reads a channel-last input (any of them) */
static gboolean
reads_cl (const GrGraph *g, const GrNode *n)
{
  if (is_op (n, "Conv") && n->fast)
    return TRUE;
  if (is_op (n, "GlobalAveragePool") || is_op (n, "GlobalMaxPool"))
    return TRUE;
  return n->n_out == 1 && val (g, n->out[0])->cl;
}

static int
max_pad (const GrNode *n)
{
  return MAX (MAX (n->p.pb[0], n->p.pb[1]), MAX (n->p.pe[0], n->p.pe[1]));
}

/* A channel-last value written by a fast conv whose every reader is a fast
 * conv (as its input or its residual) keeps its padding stored around it,
 * so those convs read it in place instead of copying it into a padded
 * scratch.  The writer's epilogue must then be the kernel's own (its
 * activation an MmAct, its residual channel-last). */
static void
plan_borders (GrGraph *g)
{
  for (int i = 0; i < g->n_nodes; i++) {
    GrNode *h = &g->nodes[i];
    if (h->fused_away || !is_op (h, "Conv") || !h->fast)
      continue;
    int v = h->out[0];
    if (!g->values[v].cl || !gr_conv_kernel_epilogue (g, h))
      continue;
    int border = 0;
    gboolean ok = TRUE;
    for (int j = 0; ok && j < g->n_nodes; j++) {
      const GrNode *n = &g->nodes[j];
      if (n->fused_away)
        continue;
      for (int k = 0; ok && k < n->n_in; k++)
        if (n->in[k] == v) {
          ok = k == 0 && is_op (n, "Conv") && n->fast;
          if (ok)
            border = MAX (border, max_pad (n));
        }
      /* a residual is read with its border by a channel-last conv output */
      if (n->residual == v)
        ok = ok && is_op (n, "Conv") && n->fast && g->values[n->out[0]].cl;
    }
    if (ok)
      g->values[v].border = border;
  }
}

static void
plan_layout (GrGraph *g)
{
  for (int i = 0; i < g->n_nodes; i++) {
    GrNode *n = &g->nodes[i];
    if (!n->fused_away && !n->op->view && out_cl (g, n))
      g->values[n->out[0]].cl = TRUE;
  }
  /* a reader that cannot take channel-last makes its input channel-first,
   * and an op that keeps the layout then needs its own inputs so */
  gboolean changed = TRUE;
  while (changed) {
    changed = FALSE;
    for (int i = 0; i < g->n_nodes; i++) {
      GrNode *n = &g->nodes[i];
      if (n->fused_away)
        continue;
      gboolean ok = !n->op->view && reads_cl (g, n);
      for (int j = -1; j < n->n_in; j++) {
        int v = j < 0 ? n->residual : n->in[j];
        if (v < 0 || !g->values[v].cl)
          continue;
        if (!ok && !(j < 0 && is_op (n, "Conv") && n->fast)) {
          g->values[v].cl = FALSE;
          changed = TRUE;
        }
      }
      /* an op that keeps the layout with one input turned channel-first */
      if (n->n_out == 1 && g->values[n->out[0]].cl && !(is_op (n, "Conv") && n->fast)
          && !out_cl (g, n)) {
        g->values[n->out[0]].cl = FALSE;
        changed = TRUE;
      }
    }
  }
}

typedef struct
{
  gsize offset, size;
  int value;
} Block;

static gsize
round_up (gsize n)
{
  return (n + 15) & ~(gsize)15; /* 64-byte steps */
}

gboolean
gr_plan (GrGraph *g, GError **error)
{
  Uses u = { g_new (int, g->n_values), g_new (int, g->n_values) };
  fuse (g, &u);
  g_free (u.uses);
  g_free (u.consumer);
  g->reference = mm_ops_get_reference ();
  if (!g->reference) {
    for (int i = 0; i < g->n_nodes; i++) {
      GrNode *n = &g->nodes[i];
      if (!n->fused_away && is_op (n, "Conv") && !gr_conv_prepare (g, n, error))
        return FALSE;
      if (!n->fused_away && is_op (n, "MatMul"))
        gr_matmul_prepare (g, n);
    }
    plan_layout (g);
    plan_borders (g);
    for (int i = 0; i < g->n_nodes; i++) {
      GrNode *n = &g->nodes[i];
      if (!n->fused_away && is_op (n, "Conv") && n->fast)
        gr_conv_scratch (g, n);
    }
  }

  /* liveness on storage roots */
  int *last = g_new (int, g->n_values);
  for (int i = 0; i < g->n_values; i++)
    last[i] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    const GrNode *n = &g->nodes[i];
    if (n->fused_away)
      continue;
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0)
        last[root_of (g, n->in[j])] = i;
    if (n->residual >= 0)
      last[root_of (g, n->residual)] = i;
    /* a view's output is read where its readers are: handled through the
     * root as they name the view, whose root is the same */
  }
  last[root_of (g, g->output)] = G_MAXINT;
  int mask = mm_graph_find_input ((MmGraph *)g, MM_GRAPH_INPUT_ATTENTION_MASK);
  if (g->pool == POOL_MASKED_MEAN && mask >= 0)
    last[root_of (g, g->inputs[mask].value)] = G_MAXINT;

  /* first-fit: live blocks sorted by offset */
  GArray *live = g_array_new (FALSE, FALSE, sizeof (Block));
  gsize arena = 0, total = 0;
  gboolean ok = TRUE;
  for (int step = -1; step < g->n_nodes && ok; step++) {
    int n_new = 0, *news;
    int inputs[8];
    if (step < 0) {
      for (int j = 0; j < g->n_inputs; j++)
        inputs[n_new++] = g->inputs[j].value;
      news = inputs;
    } else {
      GrNode *n = &g->nodes[step];
      if (n->fused_away || n->op->view)
        continue;
      n_new = n->n_out;
      news = n->out;
    }
    for (int j = 0; j < n_new; j++) {
      GrValue *v = &g->values[news[j]];
      if (v->alias >= 0 || v->data)
        continue;
      gsize size = round_up (gr_storage (v)), at = 0;
      guint k = 0;
      for (; k < live->len; k++) {
        Block *b = &g_array_index (live, Block, k);
        if (b->offset >= at + size)
          break;
        at = MAX (at, b->offset + b->size);
      }
      v->offset = at;
      Block nb = { at, size, news[j] };
      g_array_insert_val (live, k, nb);
      arena = MAX (arena, at + size);
      total += size;
      if (arena > G_MAX_ARENA_FLOATS) {
        ok = gr_node_error (error, g, step >= 0 ? &g->nodes[step] : NULL,
            "the activations need more than 1 GiB at this step");
        break;
      }
    }
    /* free what dies here (and outputs nobody reads) */
    for (guint k = 0; k < live->len;) {
      Block *b = &g_array_index (live, Block, k);
      if (last[b->value] <= step)
        g_array_remove_index (live, k);
      else
        k++;
    }
  }
  g_array_free (live, TRUE);
  g_free (last);
  if (!ok)
    return FALSE;

  /* views take their root's storage */
  for (int i = 0; i < g->n_values; i++) {
    GrValue *v = &g->values[i];
    if (v->alias >= 0) {
      const GrValue *rv = &g->values[root_of (g, i)];
      v->data = rv->data;
      v->offset = rv->offset;
    }
  }
  g->arena = arena;
  g->total = total;
  g->scratch = 0;
  g->n_steps = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    const GrNode *n = &g->nodes[i];
    if (n->fused_away || n->op->view)
      continue;
    g->n_steps++;
    g->scratch = MAX (g->scratch, n->scratch);
  }
  return TRUE;
}
