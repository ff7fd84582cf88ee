/* libmm graph executor internals shared by graph-load.c, graph-plan.c,
 * graph-run.c and graph-ops.c.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Values are the named tensors: graph inputs, weights (const float * into
 * the mapping) and node outputs.  Every non-weight value lives in one
 * arena at an offset chosen by the planner from liveness; view ops
 * (Reshape, Flatten, ...) share their input's storage.  Each op is one
 * GrOp entry (graph-ops.c): its shape rule, run at load, parses and checks
 * the attributes, sets the output shapes and the scratch and work the
 * step needs; its run function only computes.
 */
#ifndef MM_GRAPH_INTERNAL_H
#define MM_GRAPH_INTERNAL_H

#include "conv-bf16.h"
#include "conv-cl.h"
#include "dwconv-cl.h"
#include "graph.h"
#include "linear-packed.h"
#include "winograd.h"

G_BEGIN_DECLS

#define G_MAX_RANK 6
#define G_MAX_NODES 8192
#define G_MAX_IO 64
#define G_MAX_ATTRS 16
#define G_MAX_ATTR_LEN 64
#define G_MAX_NAME 256
#define G_MAX_ELEMENTS ((gint64)1 << 28)
#define G_MAX_ARENA_FLOATS ((gsize)1 << 28) /* 1 GiB */
#define G_MAX_MACS ((double)((gint64)1 << 35))

typedef struct
{
  int rank;
  gint64 d[G_MAX_RANK];
  gsize n; /* elements */
} GrShape;

typedef enum
{
  V_INPUT,
  V_WEIGHT,
  V_ACT,
} GrValueKind;

typedef struct
{
  const char *name; /* into the JSON tree or the tensor table */
  GrValueKind kind;
  GrShape s;
  const float *data; /* weights (and views of weights) */
  int producer;      /* node index, -1 for inputs and weights */
  int alias;         /* value whose storage this one is (a view), or -1 */
  int last_use;      /* last node that reads it (planning) */
  gsize offset;      /* arena offset in floats (storage roots) */
  gboolean cl;       /* channel-last: (1, C, H, W) stored as (H, W, C) */
  int border;        /* channel-last between fast convs: zero positions stored
                        around (H + 2 border, W + 2 border, C) for the readers'
                        padding; the data pointer is the padded block's start */
} GrValue;

/* element-wise epilogue fused into a producing step */
typedef enum
{
  ACT_NONE,
  ACT_RELU,
  ACT_CLIP,
  ACT_LEAKY,
  ACT_HARDSWISH,
  ACT_HARDSIGMOID,
  ACT_SIGMOID,
  ACT_SILU,
  ACT_GELU,
  ACT_TANH,
} GrAct;

typedef struct _GrGraph GrGraph;
typedef struct _GrNode GrNode;
typedef struct _GrRun GrRun;

typedef struct
{
  const char *name;
  guint8 min_in, max_in, min_out, max_out;
  const char *attrs; /* allowed attribute names, comma-separated */
  gboolean view;     /* output aliases input 0 (same data, new shape) */
  gboolean (*shape) (GrGraph *g, GrNode *n, GError **error);
  void (*run) (const GrRun *r, const GrNode *n);
} GrOp;

/* parameters the shape rules fill for the run functions */
typedef struct
{
  int axis, keepdims, group, ceil_mode, count_include_pad, trans_a, trans_b, ints;
  int sp;                                     /* spatial dims of a conv / pool: 1 or 2 */
  int k[2], s[2], pb[2], pe[2], dl[2];        /* per spatial dim (H, W; 1-D uses [1]) */
  int perm[G_MAX_RANK], reduce[G_MAX_RANK];   /* Transpose; Reduce* (1 = reduced) */
  gint64 start[G_MAX_RANK], step[G_MAX_RANK]; /* Slice */
  float alpha, beta, eps, lo, hi;
  gint64 index; /* Gather's "indices" attribute (scalar or 1-D: see idx) */
} GrParams;

struct _GrNode
{
  const char *name; /* "" when the file gives none */
  int index;        /* position in "nodes" */
  const GrOp *op;
  int n_in, n_out;
  int *in, *out; /* value ids, -1 = absent optional input */
  JsonObject *attrs;
  GrParams p;
  gpointer priv; /* op-owned (packed weights, tables), freed with g_free */
  gsize scratch; /* floats of scratch the run needs */
  double macs;
  /* fusion (graph-plan.c) */
  gboolean fused_away; /* done by an earlier step */
  GrAct act;
  float act_a, act_b;
  int residual; /* value added before act, or -1 */
  int bias;     /* MatMul: a weight vector (N) added to every row first, or -1 */
  /* fast Conv (graph-plan.c): channel-last, weights packed at load */
  int fast; /* 0 = im2col + sgemm (NCHW), 1 = conv-cl, 2 = dwconv-cl */
  int wino; /* fast 1 through channel-last Winograd F(wino, 3) (wcl), not ccl */
  MmConvCl ccl;
  MmDwConvCl dcl;
  MmWinogradCl wcl;
  /* bf16 contexts (mm_graph_prepare_bf16): a fast conv of groups 1 in bf16
   * (conv-bf16.c, direct, Winograd or not), packed at the first one */
  MmConvBf16 b16;
  /* MatMul by a weight matrix (gr_matmul_prepare): B^T packed for the
   * linear kernel (blas.c), and in bf16 for bf16 contexts */
  MmLinearPacked lin;
};

typedef struct
{
  int value;
  MmGraphInputKind kind;
} GrInput;

typedef enum
{
  POOL_FLATTEN,
  POOL_CHANNEL_MEAN,
  POOL_FIRST_TOKEN,
  POOL_MASKED_MEAN,
} GrPool;

struct _GrGraph
{
  const char *label;
  const char *prefix;
  const MmSafetensors *st;
  GrValue *values;
  int n_values, cap_values;
  GHashTable *by_name; /* name -> value id + 1 */
  GrNode *nodes;
  int n_nodes;
  GrInput inputs[8];
  int n_inputs;
  int output;
  GrPool pool;
  guint dim;
  gsize arena, scratch, total;
  gboolean reference; /* planned under mm_ops_set_reference (TRUE): NCHW only */
  double macs;
  guint n_steps;
  /* bf16 (mm_graph_prepare_bf16, under its lock): the convs are packed; how
   * many; the bf16 scratch a context needs (elements) */
  gboolean bf16_ready;
  int n_bf16;
  gsize bf16_scratch;
};

struct _MmGraph
{
  GrGraph g;
};

struct _GrRun
{
  const GrGraph *g;
  float *arena;
  float *scratch;
  guint16 *bf16; /* a bf16 context: the convs' rounded inputs; NULL = fp32 */
};

/* ---- graph-load.c ---- */
gboolean gr_node_error (GError **error, const GrGraph *g, const GrNode *n, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);
gboolean gr_node_unsupported (
    GError **error, const GrGraph *g, const GrNode *n, const char *fmt, ...) G_GNUC_PRINTF (4, 5);
/* attributes: FALSE + error when present but malformed or out of range */
gboolean gr_attr_int (GrGraph *g, GrNode *n, const char *key, gint64 def, gint64 min, gint64 max,
    gint64 *out, GError **error);
gboolean
gr_attr_float (GrGraph *g, GrNode *n, const char *key, double def, double *out, GError **error);
/* an array (or a single number, as a 1-element array); *len = -1 when absent */
gboolean gr_attr_ints (GrGraph *g, GrNode *n, const char *key, gint64 min, gint64 max, gint64 *out,
    int *len, GError **error);
gboolean gr_attr_has (const GrNode *n, const char *key);
/* an axis in [-rank, rank) made non-negative */
gboolean gr_axis (GrGraph *g, GrNode *n, gint64 axis, int rank, int *out, GError **error);
/* sets s->n; FALSE + error when a dimension is < 1 or the count > 2^28 */
gboolean gr_shape_finish (GrGraph *g, GrNode *n, GrShape *s, GError **error);
GrValue *gr_in (GrGraph *g, const GrNode *n, int i); /* NULL when absent */
GrValue *gr_out (GrGraph *g, const GrNode *n, int i);
/* numpy broadcast of two shapes into *out */
gboolean gr_broadcast (
    GrGraph *g, GrNode *n, const GrShape *a, const GrShape *b, GrShape *out, GError **error);

/* ---- graph-ops.c ---- */
const GrOp *gr_op_find (const char *name);
char *gr_op_list (void);
/* the epilogue of a fused step, over n values */
void gr_apply_act (float *x, gsize n, GrAct act, float a, float b);

/* fast convs: packs the weights when conv-cl.c / dwconv-cl.c can run
 * the node (sets n->fast), then, once the layouts are known, its scratch */
gboolean gr_conv_prepare (GrGraph *g, GrNode *n, GError **error);
/* bf16 weights of a fast conv of groups 1 (FALSE + error when memory is
 * short); *scratch grows to the bf16 elements its run reads.  A conv
 * without a bf16 form leaves n->b16 empty and returns TRUE. */
gboolean gr_conv_prepare_bf16 (GrGraph *g, GrNode *n, gsize *scratch, GError **error);
gsize gr_conv_bf16_bytes (GrGraph *g, const GrNode *n);
/* A MatMul whose B is one weight matrix (K, N): B^T packed into n->lin (a
 * refusal, e.g. memory short, leaves it on sgemm); its packed bytes, 0 when
 * it would not be packed */
void gr_matmul_prepare (GrGraph *g, GrNode *n);
gsize gr_matmul_packed_bytes (GrGraph *g, const GrNode *n);
/* the Winograd tile size gr_conv_prepare will choose for a Conv (0 = none) */
int gr_conv_wino_pick (GrGraph *g, const GrNode *n);
void gr_conv_scratch (GrGraph *g, GrNode *n);
/* whether the conv's whole epilogue runs in the kernel (MmAct, no
 * channel-first residual) */
gboolean gr_conv_kernel_epilogue (const GrGraph *g, const GrNode *n);
/* floats a value takes in the arena (with its border) */
static inline gsize
gr_storage (const GrValue *v)
{
  if (!v->border)
    return v->s.n;
  return (gsize)(v->s.d[2] + 2 * v->border) * (gsize)(v->s.d[3] + 2 * v->border) * (gsize)v->s.d[1];
}
/* the run function of the plain activation ops (Relu, Clip, ...) */
gpointer gr_run_act_fn (void);

/* ---- graph-plan.c ---- */
gboolean gr_plan (GrGraph *g, GError **error);

/* ---- graph-run.c ---- */
/* a value's floats: a weight (or a view of one) in the mapping, anything
 * else in the arena (views share their root's offset, set by the planner) */
static inline float *
gr_data (const GrRun *r, int v)
{
  const GrValue *val = &r->g->values[v];
  return val->data ? (float *)val->data : r->arena + val->offset;
}

G_END_DECLS
#endif
