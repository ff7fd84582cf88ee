/* libmm graph: a context's arena and the run loop, which only dispatches.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include "graph-internal.h"
#include "mm-private.h"
#include "ops.h"

struct _MmGraphCtx
{
  GrRun r;
  gpointer mem;  /* arena + scratch, one 64-byte aligned block */
  double *times; /* MM_GRAPH_PROFILE set: seconds per node, printed at free (the slowest
                  * 25 with GFLOP/s of multiply-adds; MM_GRAPH_PROFILE_ALL: every node) */
  gboolean min;  /* MM_GRAPH_PROFILE=min: each node's fastest run instead of the mean
                  * (on a shared machine the minimum is what preemption does not inflate) */
  guint runs;
};

/* guards the one-time bf16 packing of any graph (mm_graph_prepare_bf16) */
static GMutex bf16_lock;

gboolean
mm_graph_prepare_bf16 (const MmGraph *mg, GError **error)
{
  GrGraph *g = (GrGraph *)&mg->g; /* shared by contexts: packed once, under the lock */
  gboolean ok = TRUE;
  g_mutex_lock (&bf16_lock);
  if (!g->bf16_ready && !mm_ops_get_reference ()) {
    guint64 bytes = 0;
    for (int i = 0; i < g->n_nodes; i++)
      bytes += gr_conv_bf16_bytes (g, &g->nodes[i]);
    ok = mm_budget_check (g->label, "the graph's bf16 convolution weights", bytes, 0, error);
    gsize scratch = 0;
    int n = 0;
    for (int i = 0; ok && i < g->n_nodes; i++) {
      ok = gr_conv_prepare_bf16 (g, &g->nodes[i], &scratch, error);
      n += ok && g->nodes[i].b16.packed != NULL;
    }
    if (ok) {
      g->n_bf16 = n;
      g->bf16_scratch = scratch;
      g->bf16_ready = TRUE;
    }
  }
  g_mutex_unlock (&bf16_lock);
  return ok;
}

MmGraphCtx *
mm_graph_ctx_new (const MmGraph *mg, const char *label, gboolean bf16, GError **error)
{
  const GrGraph *g = &mg->g;
  if (bf16 && !mm_graph_prepare_bf16 (mg, error))
    return NULL;
  /* no conv with a bf16 form (or the reference ops): the context runs fp32 */
  bf16 = bf16 && g->n_bf16 > 0;
  MmGraphCtx *c = g_new0 (MmGraphCtx, 1);
  gsize floats = g->arena + g->scratch + 16;
  gsize halves = bf16 ? g->bf16_scratch + 32 : 0;
  c->mem = g_try_malloc0 (floats * sizeof (float) + halves * sizeof (guint16));
  if (!c->mem) {
    mm_format_error (error, label, "graph: cannot allocate %" G_GSIZE_FORMAT " MB of activations",
        (floats * sizeof (float) + halves * sizeof (guint16)) >> 20);
    g_free (c);
    return NULL;
  }
  float *base = (float *)(((guintptr)c->mem + 63) & ~(guintptr)63);
  c->r.g = g;
  c->r.arena = base;
  c->r.scratch = base + g->arena;
  if (bf16) /* after the floats (a multiple of 16: 64-byte aligned) */
    c->r.bf16 = (guint16 *)(base + ((g->arena + g->scratch + 15) & ~(gsize)15));
  if (g_getenv ("MM_GRAPH_PROFILE")) {
    c->times = g_new0 (double, MAX (g->n_nodes, 1));
    c->min = g_str_equal (g_getenv ("MM_GRAPH_PROFILE"), "min");
  }
  return c;
}

gboolean
mm_graph_ctx_is_bf16 (const MmGraphCtx *c)
{
  return c && c->r.bf16 != NULL;
}

void
mm_graph_ctx_free (MmGraphCtx *c)
{
  if (!c)
    return;
  if (c->times && c->runs) {
    /* the steps, slowest first */
    const GrGraph *g = c->r.g;
    double total = 0.0;
    guint runs = c->min ? 1 : c->runs; /* the minima are per run already */
    for (int i = 0; i < g->n_nodes; i++)
      total += c->times[i];
    g_printerr ("graph profile: %.3f ms per run over %u runs%s\n", total * 1e3 / runs, c->runs,
        c->min ? " (sum of each step's fastest run)" : "");
    for (int k = 0; k < (g_getenv ("MM_GRAPH_PROFILE_ALL") ? g->n_nodes : 25); k++) {
      int best = -1;
      for (int i = 0; i < g->n_nodes; i++)
        if (c->times[i] > 0.0 && (best < 0 || c->times[i] > c->times[best]))
          best = i;
      if (best < 0)
        break;
      const GrNode *n = &g->nodes[best];
      const GrShape *ys = &g->values[n->out[0]].s;
      g_printerr (
          "  %7.3f ms %6.1f GF/s %5.1f%%  %-14s fast %d%s act %d res %d  %s  out (%" G_GINT64_FORMAT
          ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ") cl %d\n",
          c->times[best] * 1e3 / runs, 2e-9 * n->macs * runs / c->times[best],
          100.0 * c->times[best] / total, n->op->name, n->fast,
          n->wino == 4 ? " F4" : (n->wino == 2 ? " F2" : ""), n->act, n->residual >= 0, n->name,
          ys->rank > 1 ? ys->d[1] : 0, ys->rank > 2 ? ys->d[2] : 0, ys->rank > 3 ? ys->d[3] : 0,
          g->values[n->out[0]].cl);
      c->times[best] = 0.0;
    }
  }
  g_free (c->times);
  g_free (c->mem);
  g_free (c);
}

float *
mm_graph_ctx_input (MmGraphCtx *c, guint i)
{
  return gr_data (&c->r, c->r.g->inputs[i].value);
}

/* out (dim) = the output tensor pooled as the component says */
static void
pool_output (const GrRun *r, float *out)
{
  const GrGraph *g = r->g;
  const GrShape *s = &g->values[g->output].s;
  const float *y = gr_data (r, g->output);
  switch (g->pool) {
    case POOL_FLATTEN:
      memcpy (out, y, s->n * sizeof (float));
      break;
    case POOL_CHANNEL_MEAN: {
      gsize c = (gsize)s->d[1], inner = s->n / c;
      for (gsize i = 0; i < c; i++) {
        double acc = 0.0;
        for (gsize j = 0; j < inner; j++)
          acc += y[i * inner + j];
        out[i] = (float)(acc / (double)inner);
      }
      break;
    }
    case POOL_FIRST_TOKEN:
      memcpy (out, y, (gsize)s->d[2] * sizeof (float));
      break;
    case POOL_MASKED_MEAN: {
      int mi = mm_graph_find_input ((const MmGraph *)g, MM_GRAPH_INPUT_ATTENTION_MASK);
      const float *mask = gr_data (r, g->inputs[mi].value);
      gsize l = (gsize)s->d[1], h = (gsize)s->d[2], count = 0;
      memset (out, 0, h * sizeof (float));
      for (gsize t = 0; t < l; t++) {
        if (mask[t] == 0.0f)
          continue;
        count++;
        for (gsize j = 0; j < h; j++)
          out[j] += y[t * h + j];
      }
      for (gsize j = 0; count && j < h; j++)
        out[j] /= (float)count;
      break;
    }
  }
}

void
mm_graph_ctx_run (MmGraphCtx *c, float *out)
{
  const GrGraph *g = c->r.g;
  for (int i = 0; i < g->n_nodes; i++) {
    const GrNode *n = &g->nodes[i];
    if (n->fused_away || n->op->view)
      continue;
    if (c->times) {
      gint64 t0 = g_get_monotonic_time ();
      n->op->run (&c->r, n);
      double t = (g_get_monotonic_time () - t0) * 1e-6;
      if (!c->min)
        c->times[i] += t;
      else if (c->runs == 0 || t < c->times[i])
        c->times[i] = MAX (t, 1e-9);
    } else {
      n->op->run (&c->r, n);
    }
  }
  if (c->times)
    c->runs++;
  pool_output (&c->r, out);
}
