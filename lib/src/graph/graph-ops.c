/* libmm graph operators: one shape rule and one run function per operator,
 * listed in one table at the end (models/FORMAT.md has the contract).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A shape rule runs once at load: it checks the inputs and attributes,
 * stores what the run needs in n->p (or n->priv), sets the output shapes
 * and the scratch and multiply-adds of the step.  A run function only
 * computes, on channel-first (ONNX) layouts, batch 1; the heavy ones (Conv,
 * Gemm, MatMul) go through mm_sgemm.  Adding an operator: two functions
 * and a line in the table.
 */
#include <math.h>
#include <string.h>

#include "clones.h"
#include "graph-internal.h"
#include "ops.h"

/* the element-wise loops over channel-last values, vectorised with a
 * clone per ISA as in ops.c */
#if defined(__GNUC__) && !defined(__clang__)
#define GR_VECTORIZE                                                                               \
  __attribute__ ((optimize ("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#define GR_INLINE __attribute__ ((always_inline)) inline
#else
#define GR_VECTORIZE
#define GR_INLINE inline
#endif
#define GR_SIMD GR_VECTORIZE MM_TARGET_CLONES

#define IN(i) gr_data (r, n->in[i])
#define OUT(i) gr_data (r, n->out[i])
#define SHAPE_IN(i) (&r->g->values[n->in[i]].s)
#define SHAPE_OUT(i) (&r->g->values[n->out[i]].s)
#define VAL(v) (&r->g->values[v])

static gboolean
need_weight (GrGraph *g, GrNode *n, int i, const char *what, GError **error)
{
  GrValue *v = gr_in (g, n, i);
  if (!v || !v->data)
    return gr_node_unsupported (error, g, n, "%s (input %d) must be a weight of the file", what, i);
  return TRUE;
}

static void
copy_shape (GrShape *dst, const GrShape *src)
{
  *dst = *src;
}

static gsize
prod (const GrShape *s, int from, int to)
{
  gsize p = 1;
  for (int i = from; i < to; i++)
    p *= (gsize)s->d[i];
  return p;
}

/* ---- broadcasting ------------------------------------------------------ */

/* the output's dimensions and each input's strides (0 where broadcast),
 * with runs of dimensions merged where every operand is contiguous */
typedef struct
{
  int rank;
  gint64 d[G_MAX_RANK];
  gint64 st[3][G_MAX_RANK];
} Bcast;

static void
bcast_setup (Bcast *b, const GrShape *out, const GrShape *const *in, int k)
{
  int r = out->rank;
  gint64 st[3][G_MAX_RANK];
  for (int j = 0; j < k; j++) {
    gint64 s = 1;
    for (int i = r - 1; i >= 0; i--) {
      int ii = i - (r - in[j]->rank);
      gint64 d = ii >= 0 ? in[j]->d[ii] : 1;
      st[j][i] = d == 1 ? 0 : s;
      s *= d;
    }
  }
  /* merge dimension i into i + 1 when every operand steps through both as one */
  int m = 0;
  for (int i = 0; i < r; i++) {
    if (out->d[i] == 1)
      continue;
    gboolean merge = m > 0;
    for (int j = 0; merge && j < k; j++)
      merge = b->st[j][m - 1] == st[j][i] * out->d[i];
    if (merge) {
      b->d[m - 1] *= out->d[i];
      for (int j = 0; j < k; j++)
        b->st[j][m - 1] = st[j][i];
      continue;
    }
    b->d[m] = out->d[i];
    for (int j = 0; j < k; j++)
      b->st[j][m] = st[j][i];
    m++;
  }
  if (m == 0) {
    b->d[0] = 1;
    for (int j = 0; j < k; j++)
      b->st[j][0] = 0;
    m = 1;
  }
  b->rank = m;
}

typedef enum
{
  BIN_ADD,
  BIN_SUB,
  BIN_MUL,
  BIN_DIV,
  BIN_WHERE,
  BIN_COPY,
} BinOp;

static GR_INLINE GR_VECTORIZE void
bin_row (float *y, const float *a, gint64 sa, const float *b, gint64 sb, const float *c, gint64 sc,
    gint64 len, BinOp op)
{
  switch (op) {
    case BIN_ADD:
      if (sa == 1 && sb == 1)
        for (gint64 i = 0; i < len; i++)
          y[i] = a[i] + b[i];
      else if (sa == 1 && sb == 0)
        for (gint64 i = 0; i < len; i++)
          y[i] = a[i] + b[0];
      else
        for (gint64 i = 0; i < len; i++)
          y[i] = a[i * sa] + b[i * sb];
      break;
    case BIN_SUB:
      for (gint64 i = 0; i < len; i++)
        y[i] = a[i * sa] - b[i * sb];
      break;
    case BIN_MUL:
      if (sa == 1 && sb == 1)
        for (gint64 i = 0; i < len; i++)
          y[i] = a[i] * b[i];
      else if (sa == 1 && sb == 0)
        for (gint64 i = 0; i < len; i++)
          y[i] = a[i] * b[0];
      else
        for (gint64 i = 0; i < len; i++)
          y[i] = a[i * sa] * b[i * sb];
      break;
    case BIN_DIV:
      for (gint64 i = 0; i < len; i++)
        y[i] = a[i * sa] / b[i * sb];
      break;
    case BIN_WHERE:
      for (gint64 i = 0; i < len; i++)
        y[i] = a[i * sa] != 0.0f ? b[i * sb] : c[i * sc];
      break;
    case BIN_COPY:
      for (gint64 i = 0; i < len; i++)
        y[i] = a[i * sa];
      break;
  }
}

/* y = op (inputs) over the broadcast shape of y */
static void
bcast_run (
    float *y, const GrShape *ys, const float *const *x, const GrShape *const *xs, int k, BinOp op)
{
  Bcast b;
  bcast_setup (&b, ys, xs, k);
  int r = b.rank;
  gint64 len = b.d[r - 1], idx[G_MAX_RANK] = { 0 };
  gint64 off[3] = { 0, 0, 0 };
  gsize rows = 1;
  for (int i = 0; i < r - 1; i++)
    rows *= (gsize)b.d[i];
  for (gsize row = 0; row < rows; row++) {
    bin_row (y + row * len, x[0] + off[0], b.st[0][r - 1], k > 1 ? x[1] + off[1] : NULL,
        k > 1 ? b.st[1][r - 1] : 0, k > 2 ? x[2] + off[2] : NULL, k > 2 ? b.st[2][r - 1] : 0, len,
        op);
    for (int i = r - 2; i >= 0; i--) {
      idx[i]++;
      for (int j = 0; j < k; j++)
        off[j] += b.st[j][i];
      if (idx[i] < b.d[i])
        break;
      for (int j = 0; j < k; j++)
        off[j] -= b.st[j][i] * b.d[i];
      idx[i] = 0;
    }
  }
}

/* ---- element-wise, binary and ternary ----------------------------------- */

static gboolean
shape_binary (GrGraph *g, GrNode *n, GError **error)
{
  GrShape *o = &gr_out (g, n, 0)->s;
  if (!gr_broadcast (g, n, &gr_in (g, n, 0)->s, &gr_in (g, n, 1)->s, o, error))
    return FALSE;
  n->macs = (double)o->n;
  return TRUE;
}

/* y (q, c) channel-last = a op b, each operand channel-last of y's shape,
 * one value per channel, or one value (the planner checked which) */
static GR_SIMD void
binary_cl (
    float *y, const GrShape *ys, const float *a, gsize na, const float *b, gsize nb, BinOp op)
{
  gsize c = (gsize)ys->d[1], q_n = ys->n / c;
  if (na == ys->n && nb == ys->n) {
    bin_row (y, a, 1, b, 1, NULL, 0, (gint64)ys->n, op);
    return;
  }
  for (gsize q = 0; q < q_n; q++) {
    const float *aq = na == ys->n ? a + q * c : a, *bq = nb == ys->n ? b + q * c : b;
    bin_row (y + q * c, aq, na == 1 ? 0 : 1, bq, nb == 1 ? 0 : 1, NULL, 0, (gint64)c, op);
  }
}

static void
run_binary (const GrRun *r, const GrNode *n, BinOp op)
{
  const float *x[2] = { IN (0), IN (1) };
  const GrShape *xs[2] = { SHAPE_IN (0), SHAPE_IN (1) };
  float *y = OUT (0);
  if (VAL (n->out[0])->cl)
    binary_cl (y, SHAPE_OUT (0), x[0], xs[0]->n, x[1], xs[1]->n, op);
  else
    bcast_run (y, SHAPE_OUT (0), x, xs, 2, op);
  if (n->act != ACT_NONE)
    gr_apply_act (y, SHAPE_OUT (0)->n, n->act, n->act_a, n->act_b);
}

static void
run_add (const GrRun *r, const GrNode *n)
{
  run_binary (r, n, BIN_ADD);
}

static void
run_sub (const GrRun *r, const GrNode *n)
{
  run_binary (r, n, BIN_SUB);
}

static void
run_mul (const GrRun *r, const GrNode *n)
{
  run_binary (r, n, BIN_MUL);
}

static void
run_div (const GrRun *r, const GrNode *n)
{
  run_binary (r, n, BIN_DIV);
}

static gboolean
shape_where (GrGraph *g, GrNode *n, GError **error)
{
  GrShape t;
  GrShape *o = &gr_out (g, n, 0)->s;
  if (!gr_broadcast (g, n, &gr_in (g, n, 0)->s, &gr_in (g, n, 1)->s, &t, error)
      || !gr_broadcast (g, n, &t, &gr_in (g, n, 2)->s, o, error))
    return FALSE;
  n->macs = (double)o->n;
  return TRUE;
}

static void
run_where (const GrRun *r, const GrNode *n)
{
  const float *x[3] = { IN (0), IN (1), IN (2) };
  const GrShape *xs[3] = { SHAPE_IN (0), SHAPE_IN (1), SHAPE_IN (2) };
  bcast_run (OUT (0), SHAPE_OUT (0), x, xs, 3, BIN_WHERE);
}

/* ---- element-wise, unary ------------------------------------------------ */

static gboolean
shape_unary (GrGraph *g, GrNode *n, GError **error)
{
  copy_shape (&gr_out (g, n, 0)->s, &gr_in (g, n, 0)->s);
  n->macs = (double)gr_in (g, n, 0)->s.n;
  return TRUE;
}

/* y = x, then the node's activation in place */
static void
run_act (const GrRun *r, const GrNode *n)
{
  const float *x = IN (0);
  float *y = OUT (0);
  gsize len = SHAPE_OUT (0)->n;
  if (y != x)
    memcpy (y, x, len * sizeof (float));
  gr_apply_act (y, len, n->act, n->act_a, n->act_b);
}

static gboolean
shape_relu (GrGraph *g, GrNode *n, GError **error)
{
  n->act = ACT_RELU;
  return shape_unary (g, n, error);
}

static gboolean
shape_sigmoid (GrGraph *g, GrNode *n, GError **error)
{
  n->act = ACT_SIGMOID;
  return shape_unary (g, n, error);
}

static gboolean
shape_tanh (GrGraph *g, GrNode *n, GError **error)
{
  n->act = ACT_TANH;
  return shape_unary (g, n, error);
}

static gboolean
shape_hardswish (GrGraph *g, GrNode *n, GError **error)
{
  n->act = ACT_HARDSWISH;
  return shape_unary (g, n, error);
}

static gboolean
shape_leakyrelu (GrGraph *g, GrNode *n, GError **error)
{
  double a;
  if (!gr_attr_float (g, n, "alpha", 0.01, &a, error))
    return FALSE;
  n->act = ACT_LEAKY;
  n->act_a = (float)a;
  return shape_unary (g, n, error);
}

static gboolean
shape_clip (GrGraph *g, GrNode *n, GError **error)
{
  double lo, hi;
  if (!gr_attr_float (g, n, "min", -INFINITY, &lo, error)
      || !gr_attr_float (g, n, "max", INFINITY, &hi, error))
    return FALSE;
  if (n->n_in > 1)
    return gr_node_unsupported (error, g, n, "min/max as inputs: give them as attributes");
  n->act = ACT_CLIP;
  n->act_a = (float)lo;
  n->act_b = (float)hi;
  return shape_unary (g, n, error);
}

static gboolean
shape_hardsigmoid (GrGraph *g, GrNode *n, GError **error)
{
  double a, b;
  if (!gr_attr_float (g, n, "alpha", 0.2, &a, error)
      || !gr_attr_float (g, n, "beta", 0.5, &b, error))
    return FALSE;
  n->act = ACT_HARDSIGMOID;
  n->act_a = (float)a;
  n->act_b = (float)b;
  return shape_unary (g, n, error);
}

static gboolean
shape_gelu (GrGraph *g, GrNode *n, GError **error)
{
  gint64 approx;
  if (!gr_attr_int (g, n, "approximate", 0, 0, 1, &approx, error))
    return FALSE;
  n->act = ACT_GELU;
  n->act_a = (float)approx;
  return shape_unary (g, n, error);
}

/* the plain math functions: y = f (x), IEEE results */
#define UNARY_OP(fname, expr)                                                                      \
  static void fname (const GrRun *r, const GrNode *n)                                              \
  {                                                                                                \
    const float *x = IN (0);                                                                       \
    float *y = OUT (0);                                                                            \
    gsize len = SHAPE_OUT (0)->n;                                                                  \
    for (gsize i = 0; i < len; i++) {                                                              \
      float v = x[i];                                                                              \
      y[i] = (expr);                                                                               \
    }                                                                                              \
  }

UNARY_OP (run_erf, erff (v))
UNARY_OP (run_exp, expf (v))
UNARY_OP (run_sqrt, sqrtf (v))
UNARY_OP (run_reciprocal, 1.0f / v)
UNARY_OP (run_neg, -v)
UNARY_OP (run_abs, fabsf (v))
UNARY_OP (run_log, logf (v))

static gboolean
shape_pow (GrGraph *g, GrNode *n, GError **error)
{
  if (!need_weight (g, n, 1, "the exponent", error))
    return FALSE;
  if (gr_in (g, n, 1)->s.n != 1)
    return gr_node_unsupported (error, g, n, "the exponent must be one number");
  return shape_unary (g, n, error);
}

static void
run_pow (const GrRun *r, const GrNode *n)
{
  const float *x = IN (0);
  float *y = OUT (0), e = IN (1)[0];
  gsize len = SHAPE_OUT (0)->n;
  if (e == 2.0f)
    for (gsize i = 0; i < len; i++)
      y[i] = x[i] * x[i];
  else
    for (gsize i = 0; i < len; i++)
      y[i] = powf (x[i], e);
}

static gboolean
shape_cast (GrGraph *g, GrNode *n, GError **error)
{
  gint64 to;
  if (!gr_attr_int (g, n, "to", 1, 0, 1000, &to, error))
    return FALSE;
  if (to == 1 || to == 10 || to == 11 || to == 16)
    n->p.ints = 0;
  else if ((to >= 2 && to <= 7) || to == 12 || to == 13)
    n->p.ints = 1;
  else if (to == 9)
    n->p.ints = 2;
  else
    return gr_node_unsupported (error, g, n,
        "Cast to type %" G_GINT64_FORMAT " (strings, "
        "complex) is not supported",
        to);
  return shape_unary (g, n, error);
}

static void
run_cast (const GrRun *r, const GrNode *n)
{
  const float *x = IN (0);
  float *y = OUT (0);
  gsize len = SHAPE_OUT (0)->n;
  for (gsize i = 0; i < len; i++)
    y[i] = n->p.ints == 0 ? x[i] : n->p.ints == 1 ? truncf (x[i]) : (x[i] != 0.0f ? 1.0f : 0.0f);
}

/* ---- views (the planner makes the output share the input's storage) ---- */

static void
run_view (const GrRun *r, const GrNode *n)
{
  (void)r;
  (void)n;
}

static gboolean
shape_identity (GrGraph *g, GrNode *n, GError **error)
{
  double ratio;
  if (!gr_attr_float (g, n, "ratio", 0.5, &ratio, error))
    return FALSE;
  copy_shape (&gr_out (g, n, 0)->s, &gr_in (g, n, 0)->s);
  return TRUE;
}

static gboolean
shape_reshape (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 sh[G_MAX_ATTR_LEN];
  int len;
  if (!gr_attr_ints (g, n, "shape", -1, G_MAX_ELEMENTS, sh, &len, error))
    return FALSE;
  if (len < 0)
    return gr_node_error (error, g, n, "attribute 'shape' is required");
  if (len > G_MAX_RANK)
    return gr_node_error (error, g, n, "rank %d (at most %d)", len, G_MAX_RANK);
  int infer = -1;
  gint64 known = 1;
  o->rank = len;
  for (int i = 0; i < len; i++) {
    if (sh[i] == 0) {
      if (i >= x->rank)
        return gr_node_error (
            error, g, n, "shape entry %d is 0 but the input has rank %d", i, x->rank);
      sh[i] = x->d[i];
    }
    if (sh[i] == -1) {
      if (infer >= 0)
        return gr_node_error (error, g, n, "two -1 entries in 'shape'");
      infer = i;
      continue;
    }
    known *= sh[i];
    if (known > G_MAX_ELEMENTS)
      return gr_node_error (error, g, n, "'shape' has more than 2^28 elements");
    o->d[i] = sh[i];
  }
  if (infer >= 0) {
    if ((gint64)x->n % known != 0)
      return gr_node_error (error, g, n,
          "cannot infer the -1 entry: %" G_GSIZE_FORMAT " elements into parts of %" G_GINT64_FORMAT,
          x->n, known);
    o->d[infer] = (gint64)x->n / known;
    known *= o->d[infer];
  }
  if (known != (gint64)x->n)
    return gr_node_error (error, g, n,
        "'shape' has %" G_GINT64_FORMAT " elements, the input %" G_GSIZE_FORMAT, known, x->n);
  return TRUE;
}

static gboolean
shape_flatten (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  gint64 axis;
  if (!gr_attr_int (g, n, "axis", 1, -x->rank, x->rank, &axis, error))
    return FALSE;
  if (axis < 0)
    axis += x->rank;
  GrShape *o = &gr_out (g, n, 0)->s;
  o->rank = 2;
  o->d[0] = (gint64)prod (x, 0, (int)axis);
  o->d[1] = (gint64)prod (x, (int)axis, x->rank);
  return TRUE;
}

static gboolean
shape_squeeze (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 axes[G_MAX_ATTR_LEN];
  int len, drop[G_MAX_RANK] = { 0 };
  if (!gr_attr_ints (g, n, "axes", -G_MAX_RANK, G_MAX_RANK, axes, &len, error))
    return FALSE;
  if (len < 0) {
    for (int i = 0; i < x->rank; i++)
      drop[i] = x->d[i] == 1;
  } else {
    for (int i = 0; i < len; i++) {
      int a;
      if (!gr_axis (g, n, axes[i], x->rank, &a, error))
        return FALSE;
      if (x->d[a] != 1)
        return gr_node_error (
            error, g, n, "axis %d has size %" G_GINT64_FORMAT ", not 1", a, x->d[a]);
      drop[a] = 1;
    }
  }
  o->rank = 0;
  for (int i = 0; i < x->rank; i++)
    if (!drop[i])
      o->d[o->rank++] = x->d[i];
  return TRUE;
}

static gboolean
shape_unsqueeze (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 axes[G_MAX_ATTR_LEN];
  int len, add[G_MAX_RANK] = { 0 };
  if (!gr_attr_ints (g, n, "axes", -2 * G_MAX_RANK, 2 * G_MAX_RANK, axes, &len, error))
    return FALSE;
  if (len < 1)
    return gr_node_error (error, g, n, "attribute 'axes' is required");
  int r = x->rank + len;
  if (r > G_MAX_RANK)
    return gr_node_error (error, g, n, "rank %d (at most %d)", r, G_MAX_RANK);
  for (int i = 0; i < len; i++) {
    int a;
    if (!gr_axis (g, n, axes[i], r, &a, error))
      return FALSE;
    if (add[a])
      return gr_node_error (error, g, n, "axis %d is repeated", a);
    add[a] = 1;
  }
  o->rank = r;
  for (int i = 0, j = 0; i < r; i++)
    o->d[i] = add[i] ? 1 : x->d[j++];
  return TRUE;
}

/* ---- data movement ------------------------------------------------------ */

static gboolean
shape_transpose (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 perm[G_MAX_ATTR_LEN];
  int len, seen[G_MAX_RANK] = { 0 };
  if (!gr_attr_ints (g, n, "perm", 0, G_MAX_RANK - 1, perm, &len, error))
    return FALSE;
  if (len < 0) {
    len = x->rank;
    for (int i = 0; i < len; i++)
      perm[i] = len - 1 - i;
  }
  if (len != x->rank)
    return gr_node_error (error, g, n, "'perm' has %d entries for rank %d", len, x->rank);
  o->rank = len;
  for (int i = 0; i < len; i++) {
    if (perm[i] >= len || seen[perm[i]])
      return gr_node_error (error, g, n, "'perm' is not a permutation");
    seen[perm[i]] = 1;
    n->p.perm[i] = (int)perm[i];
    o->d[i] = x->d[perm[i]];
  }
  n->macs = (double)x->n;
  return TRUE;
}

/* y = x read through per-axis strides starting at @base: the walk shared
 * by Transpose and Slice */
static void
strided_copy (float *y, const float *x, const GrShape *ys, const gint64 *st, gint64 base)
{
  int r = ys->rank;
  if (r == 0) {
    y[0] = x[base];
    return;
  }
  gint64 idx[G_MAX_RANK] = { 0 }, off = base, len = ys->d[r - 1], s = st[r - 1];
  gsize rows = ys->n / (gsize)len;
  for (gsize row = 0; row < rows; row++) {
    float *yr = y + row * len;
    if (s == 1)
      memcpy (yr, x + off, (gsize)len * sizeof (float));
    else
      for (gint64 i = 0; i < len; i++)
        yr[i] = x[off + i * s];
    for (int i = r - 2; i >= 0; i--) {
      idx[i]++;
      off += st[i];
      if (idx[i] < ys->d[i])
        break;
      off -= st[i] * ys->d[i];
      idx[i] = 0;
    }
  }
}

static void
run_transpose (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  gint64 xst[G_MAX_RANK], st[G_MAX_RANK], s = 1;
  for (int i = xs->rank - 1; i >= 0; i--) {
    xst[i] = s;
    s *= xs->d[i];
  }
  for (int i = 0; i < xs->rank; i++)
    st[i] = xst[n->p.perm[i]];
  strided_copy (OUT (0), IN (0), SHAPE_OUT (0), st, 0);
}

static gboolean
shape_slice (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  const gint64 big = (gint64)1 << 62;
  gint64 starts[G_MAX_ATTR_LEN], ends[G_MAX_ATTR_LEN], axes[G_MAX_ATTR_LEN], steps[G_MAX_ATTR_LEN];
  int ls, le, la, lt, done[G_MAX_RANK] = { 0 };
  if (!gr_attr_ints (g, n, "starts", -big, big, starts, &ls, error)
      || !gr_attr_ints (g, n, "ends", -big, big, ends, &le, error)
      || !gr_attr_ints (g, n, "axes", -G_MAX_RANK, G_MAX_RANK, axes, &la, error)
      || !gr_attr_ints (g, n, "steps", -big, big, steps, &lt, error))
    return FALSE;
  if (ls < 0 || le != ls || (la >= 0 && la != ls) || (lt >= 0 && lt != ls) || ls > x->rank)
    return gr_node_error (error, g, n,
        "'starts' and 'ends' (and 'axes', 'steps' when given) need one entry per sliced axis");
  copy_shape (o, x);
  for (int i = 0; i < x->rank; i++) {
    n->p.start[i] = 0;
    n->p.step[i] = 1;
  }
  for (int i = 0; i < ls; i++) {
    int a;
    if (!gr_axis (g, n, la >= 0 ? axes[i] : i, x->rank, &a, error))
      return FALSE;
    if (done[a])
      return gr_node_error (error, g, n, "axis %d is sliced twice", a);
    done[a] = 1;
    gint64 d = x->d[a], st = lt >= 0 ? steps[i] : 1, s = starts[i], e = ends[i];
    if (st == 0)
      return gr_node_error (error, g, n, "a step of 0");
    if (s < 0)
      s += d;
    if (e < 0)
      e += d;
    gint64 count;
    if (st > 0) {
      s = CLAMP (s, 0, d);
      e = CLAMP (e, 0, d);
      count = e > s ? (e - s + st - 1) / st : 0;
    } else {
      s = CLAMP (s, -1, d - 1);
      e = CLAMP (e, -1, d - 1);
      count = s > e ? (s - e + (-st) - 1) / (-st) : 0;
    }
    if (count < 1)
      return gr_node_unsupported (error, g, n, "the slice of axis %d is empty", a);
    o->d[a] = count;
    n->p.start[a] = s;
    n->p.step[a] = st;
  }
  n->macs = (double)prod (o, 0, o->rank);
  return TRUE;
}

static void
run_slice (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  gint64 st[G_MAX_RANK], s = 1, base = 0;
  for (int i = xs->rank - 1; i >= 0; i--) {
    st[i] = s * n->p.step[i];
    base += n->p.start[i] * s;
    s *= xs->d[i];
  }
  strided_copy (OUT (0), IN (0), SHAPE_OUT (0), st, base);
}

static gboolean
shape_concat (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x0 = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 axis;
  int a;
  if (!gr_attr_has (n, "axis"))
    return gr_node_error (error, g, n, "attribute 'axis' is required");
  if (!gr_attr_int (g, n, "axis", 0, -G_MAX_RANK, G_MAX_RANK, &axis, error)
      || !gr_axis (g, n, axis, x0->rank, &a, error))
    return FALSE;
  copy_shape (o, x0);
  o->d[a] = 0;
  for (int i = 0; i < n->n_in; i++) {
    const GrValue *v = gr_in (g, n, i);
    if (!v)
      return gr_node_error (error, g, n, "input %d is empty", i);
    if (v->s.rank != x0->rank)
      return gr_node_error (
          error, g, n, "input %d has rank %d, input 0 rank %d", i, v->s.rank, x0->rank);
    for (int j = 0; j < x0->rank; j++)
      if (j != a && v->s.d[j] != x0->d[j])
        return gr_node_error (error, g, n, "input %d differs from input 0 in dimension %d", i, j);
    o->d[a] += v->s.d[a];
  }
  n->p.axis = a;
  n->macs = (double)prod (o, 0, o->rank);
  return TRUE;
}

static void
run_concat (const GrRun *r, const GrNode *n)
{
  const GrShape *ys = SHAPE_OUT (0);
  if (VAL (n->out[0])->cl) {
    /* channel-last along C: each position takes each input's channels */
    gsize c = (gsize)ys->d[1], q_n = ys->n / c, at = 0;
    float *y = OUT (0);
    for (int i = 0; i < n->n_in; i++) {
      const float *x = IN (i);
      gsize ci = (gsize)SHAPE_IN (i)->d[1];
      for (gsize q = 0; q < q_n; q++)
        memcpy (y + q * c + at, x + q * ci, ci * sizeof (float));
      at += ci;
    }
    return;
  }
  int a = n->p.axis;
  gsize outer = prod (ys, 0, a), inner = prod (ys, a + 1, ys->rank);
  gsize row = (gsize)ys->d[a] * inner, at = 0;
  float *y = OUT (0);
  for (int i = 0; i < n->n_in; i++) {
    const float *x = IN (i);
    gsize len = (gsize)SHAPE_IN (i)->d[a] * inner;
    for (gsize o = 0; o < outer; o++)
      memcpy (y + o * row + at, x + o * len, len * sizeof (float));
    at += len;
  }
}

static gboolean
shape_split (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  gint64 axis, split[G_MAX_ATTR_LEN];
  int a, len;
  if (!gr_attr_int (g, n, "axis", 0, -G_MAX_RANK, G_MAX_RANK, &axis, error)
      || !gr_axis (g, n, axis, x->rank, &a, error)
      || !gr_attr_ints (g, n, "split", 1, G_MAX_ELEMENTS, split, &len, error))
    return FALSE;
  if (len < 0) {
    if (x->d[a] % n->n_out != 0)
      return gr_node_error (error, g, n,
          "axis %d of size %" G_GINT64_FORMAT " does not split into %d equal parts", a, x->d[a],
          n->n_out);
    for (int i = 0; i < n->n_out; i++)
      split[i] = x->d[a] / n->n_out;
  } else if (len != n->n_out) {
    return gr_node_error (error, g, n, "'split' has %d entries for %d outputs", len, n->n_out);
  }
  gint64 sum = 0;
  for (int i = 0; i < n->n_out; i++) {
    GrShape *o = &gr_out (g, n, i)->s;
    copy_shape (o, x);
    o->d[a] = split[i];
    sum += split[i];
  }
  if (sum != x->d[a])
    return gr_node_error (error, g, n,
        "'split' sums to %" G_GINT64_FORMAT ", axis %d has %" G_GINT64_FORMAT, sum, a, x->d[a]);
  n->p.axis = a;
  n->macs = (double)x->n;
  return TRUE;
}

static void
run_split (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  int a = n->p.axis;
  gsize outer = prod (xs, 0, a), inner = prod (xs, a + 1, xs->rank);
  gsize row = (gsize)xs->d[a] * inner, at = 0;
  const float *x = IN (0);
  for (int i = 0; i < n->n_out; i++) {
    float *y = OUT (i);
    gsize len = (gsize)SHAPE_OUT (i)->d[a] * inner;
    for (gsize o = 0; o < outer; o++)
      memcpy (y + o * len, x + o * row + at, len * sizeof (float));
    at += len;
  }
}

/* Pad (constant mode): p.start = the leading pads, p.step[0] = the value */
static gboolean
shape_pad (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 pads[G_MAX_ATTR_LEN];
  int len;
  double value;
  if (!gr_attr_ints (g, n, "pads", 0, 1 << 20, pads, &len, error)
      || !gr_attr_float (g, n, "value", 0.0, &value, error))
    return FALSE;
  if (len != 2 * x->rank)
    return gr_node_error (error, g, n, "'pads' needs %d entries (begin..., end...)", 2 * x->rank);
  o->rank = x->rank;
  for (int i = 0; i < x->rank; i++) {
    o->d[i] = x->d[i] + pads[i] + pads[x->rank + i];
    n->p.start[i] = pads[i];
  }
  n->p.alpha = (float)value;
  if (!gr_shape_finish (g, n, o, error))
    return FALSE;
  n->macs = (double)o->n;
  return TRUE;
}

static void
run_pad (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0), *ys = SHAPE_OUT (0);
  const float *x = IN (0);
  float *y = OUT (0);
  for (gsize i = 0; i < ys->n; i++)
    y[i] = n->p.alpha;
  if (xs->rank == 0) {
    y[0] = x[0];
    return;
  }
  int rk = xs->rank;
  gint64 yst[G_MAX_RANK], s = 1, base = 0, idx[G_MAX_RANK] = { 0 }, off = 0;
  for (int i = rk - 1; i >= 0; i--) {
    yst[i] = s;
    base += n->p.start[i] * s;
    s *= ys->d[i];
  }
  gint64 len = xs->d[rk - 1];
  gsize rows = xs->n / (gsize)len;
  for (gsize row = 0; row < rows; row++) {
    memcpy (y + base + off, x + row * len, (gsize)len * sizeof (float));
    for (int i = rk - 2; i >= 0; i--) {
      idx[i]++;
      off += yst[i];
      if (idx[i] < xs->d[i])
        break;
      off -= yst[i] * xs->d[i];
      idx[i] = 0;
    }
  }
}

/* Gather's "indices" attribute: priv = the indices as floats */
static gboolean
shape_gather (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 axis;
  int a;
  if (!gr_attr_int (g, n, "axis", 0, -G_MAX_RANK, G_MAX_RANK, &axis, error)
      || !gr_axis (g, n, axis, x->rank, &a, error))
    return FALSE;
  GrShape is;
  if (gr_attr_has (n, "indices")) {
    if (n->n_in > 1)
      return gr_node_error (error, g, n, "both an indices input and an 'indices' attribute");
    gint64 idx[G_MAX_ATTR_LEN];
    int len;
    if (!gr_attr_ints (g, n, "indices", -x->d[a], x->d[a] - 1, idx, &len, error))
      return FALSE;
    JsonNode *v = json_object_get_member (n->attrs, "indices");
    is.rank = JSON_NODE_HOLDS_ARRAY (v) ? 1 : 0;
    is.d[0] = len;
    is.n = (gsize)len;
    if (len < 1)
      return gr_node_error (error, g, n, "'indices' is empty");
    float *f = g_new (float, len);
    for (int i = 0; i < len; i++)
      f[i] = (float)idx[i];
    n->priv = f;
  } else {
    if (n->n_in < 2 || n->in[1] < 0)
      return gr_node_error (error, g, n, "needs an indices input or an 'indices' attribute");
    is = gr_in (g, n, 1)->s;
  }
  if (x->rank - 1 + is.rank > G_MAX_RANK)
    return gr_node_error (error, g, n, "output rank above %d", G_MAX_RANK);
  o->rank = 0;
  for (int i = 0; i < a; i++)
    o->d[o->rank++] = x->d[i];
  for (int i = 0; i < is.rank; i++)
    o->d[o->rank++] = is.d[i];
  for (int i = a + 1; i < x->rank; i++)
    o->d[o->rank++] = x->d[i];
  n->p.axis = a;
  n->p.ints = (int)is.n;
  n->macs = (double)prod (o, 0, o->rank);
  return TRUE;
}

static void
run_gather (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  int a = n->p.axis;
  const float *x = IN (0), *idx = n->priv ? (const float *)n->priv : IN (1);
  float *y = OUT (0);
  gsize outer = prod (xs, 0, a), inner = prod (xs, a + 1, xs->rank), m = (gsize)n->p.ints;
  gint64 d = xs->d[a];
  for (gsize o = 0; o < outer; o++)
    for (gsize j = 0; j < m; j++) {
      float f = idx[j];
      float *yr = y + (o * m + j) * inner;
      /* a runtime index is checked: non-integers and out-of-range read zeros */
      if (!(f == floorf (f)) || !(f >= -(float)d) || !(f < (float)d)) {
        memset (yr, 0, inner * sizeof (float));
        continue;
      }
      gint64 i = (gint64)f;
      if (i < 0)
        i += d;
      memcpy (yr, x + (o * (gsize)d + (gsize)i) * inner, inner * sizeof (float));
    }
}

/* ---- reductions --------------------------------------------------------- */

static gboolean
shape_reduce (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 axes[G_MAX_ATTR_LEN], keep;
  int len;
  if (!gr_attr_ints (g, n, "axes", -G_MAX_RANK, G_MAX_RANK, axes, &len, error)
      || !gr_attr_int (g, n, "keepdims", 1, 0, 1, &keep, error))
    return FALSE;
  for (int i = 0; i < G_MAX_RANK; i++)
    n->p.reduce[i] = len <= 0 && i < x->rank;
  for (int i = 0; i < len; i++) {
    int a;
    if (!gr_axis (g, n, axes[i], x->rank, &a, error))
      return FALSE;
    n->p.reduce[a] = 1;
  }
  n->p.keepdims = (int)keep;
  o->rank = 0;
  for (int i = 0; i < x->rank; i++)
    if (!n->p.reduce[i])
      o->d[o->rank++] = x->d[i];
    else if (keep)
      o->d[o->rank++] = 1;
  n->macs = (double)x->n;
  return TRUE;
}

typedef enum
{
  RED_SUM,
  RED_MEAN,
  RED_MAX,
} RedOp;

/* y = reduce of x over the flagged axes: x is walked once in order, each
 * element added (or max'ed) into its output cell */
static void
run_reduce (const GrRun *r, const GrNode *n, RedOp op)
{
  const GrShape *xs = SHAPE_IN (0);
  const float *x = IN (0);
  float *y = OUT (0);
  gsize ny = SHAPE_OUT (0)->n;
  gint64 yst[G_MAX_RANK], s = 1;
  for (int i = xs->rank - 1; i >= 0; i--) {
    yst[i] = n->p.reduce[i] ? 0 : s;
    s *= n->p.reduce[i] ? 1 : xs->d[i];
  }
  for (gsize i = 0; i < ny; i++)
    y[i] = op == RED_MAX ? -INFINITY : 0.0f;
  if (xs->rank == 0) {
    y[0] = x[0];
    return;
  }
  int rk = xs->rank;
  gint64 idx[G_MAX_RANK] = { 0 }, off = 0, len = xs->d[rk - 1], ls = yst[rk - 1];
  gsize rows = xs->n / (gsize)len;
  for (gsize row = 0; row < rows; row++) {
    const float *xr = x + row * len;
    float *yr = y + off;
    if (op == RED_MAX)
      for (gint64 i = 0; i < len; i++)
        yr[i * ls] = xr[i] > yr[i * ls] || isnan (xr[i]) ? xr[i] : yr[i * ls];
    else
      for (gint64 i = 0; i < len; i++)
        yr[i * ls] += xr[i];
    for (int i = rk - 2; i >= 0; i--) {
      idx[i]++;
      off += yst[i];
      if (idx[i] < xs->d[i])
        break;
      off -= yst[i] * xs->d[i];
      idx[i] = 0;
    }
  }
  if (op == RED_MEAN) {
    float inv = (float)ny / (float)xs->n;
    for (gsize i = 0; i < ny; i++)
      y[i] *= inv;
  }
}

static void
run_reducemean (const GrRun *r, const GrNode *n)
{
  run_reduce (r, n, RED_MEAN);
}

static void
run_reducesum (const GrRun *r, const GrNode *n)
{
  run_reduce (r, n, RED_SUM);
}

static void
run_reducemax (const GrRun *r, const GrNode *n)
{
  run_reduce (r, n, RED_MAX);
}

static gboolean
shape_global_pool (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  if (x->rank < 3 || x->d[0] != 1)
    return gr_node_error (error, g, n, "needs an input (1, C, ...) of rank 3 or more");
  copy_shape (o, x);
  for (int i = 2; i < x->rank; i++)
    o->d[i] = 1;
  n->macs = (double)x->n;
  return TRUE;
}

/* y (c) = mean / max over the positions of a channel-last x (n, c) */
static GR_SIMD void
global_pool_cl (float *y, const float *x, gsize c, gsize n, gboolean is_max)
{
  for (gsize ch = 0; ch < c; ch++)
    y[ch] = is_max ? -INFINITY : 0.0f;
  for (gsize q = 0; q < n; q++) {
    const float *xv = x + q * c;
    if (is_max)
      for (gsize ch = 0; ch < c; ch++)
        y[ch] = xv[ch] > y[ch] || isnan (xv[ch]) ? xv[ch] : y[ch];
    else
      for (gsize ch = 0; ch < c; ch++)
        y[ch] += xv[ch];
  }
  if (!is_max)
    for (gsize ch = 0; ch < c; ch++)
      y[ch] /= (float)n;
}

static void
run_globalaveragepool (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  if (VAL (n->in[0])->cl)
    global_pool_cl (OUT (0), IN (0), (gsize)xs->d[1], prod (xs, 2, xs->rank), FALSE);
  else
    mm_global_avgpool (OUT (0), IN (0), (int)xs->d[1], (int)prod (xs, 2, xs->rank));
  if (n->act != ACT_NONE)
    gr_apply_act (OUT (0), (gsize)xs->d[1], n->act, n->act_a, n->act_b);
}

static void
run_globalmaxpool (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  if (VAL (n->in[0])->cl)
    global_pool_cl (OUT (0), IN (0), (gsize)xs->d[1], prod (xs, 2, xs->rank), TRUE);
  else
    mm_global_maxpool (OUT (0), IN (0), (int)xs->d[1], (int)prod (xs, 2, xs->rank));
}

static gboolean
shape_softmax (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  gint64 axis;
  if (!gr_attr_int (g, n, "axis", -1, -G_MAX_RANK, G_MAX_RANK, &axis, error)
      || !gr_axis (g, n, axis, x->rank, &n->p.axis, error))
    return FALSE;
  if (x->d[n->p.axis] > G_MAXINT / 2)
    return gr_node_unsupported (
        error, g, n, "softmax over %" G_GINT64_FORMAT " values", x->d[n->p.axis]);
  copy_shape (&gr_out (g, n, 0)->s, x);
  n->macs = 4.0 * (double)x->n;
  return TRUE;
}

static void
run_softmax (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  int a = n->p.axis;
  gsize outer = prod (xs, 0, a), inner = prod (xs, a + 1, xs->rank), d = (gsize)xs->d[a];
  const float *x = IN (0);
  float *y = OUT (0);
  if (y != x)
    memcpy (y, x, xs->n * sizeof (float));
  if (inner == 1) {
    mm_softmax (y, (int)outer, (int)d);
    return;
  }
  for (gsize o = 0; o < outer; o++)
    for (gsize i = 0; i < inner; i++) {
      float *p = y + o * d * inner + i, m = -INFINITY;
      double sum = 0.0;
      for (gsize j = 0; j < d; j++)
        m = MAX (m, p[j * inner]);
      for (gsize j = 0; j < d; j++)
        sum += p[j * inner] = expf (p[j * inner] - m);
      float inv = (float)(1.0 / sum);
      for (gsize j = 0; j < d; j++)
        p[j * inner] *= inv;
    }
}

/* ---- normalisation ------------------------------------------------------ */

/* priv = scale (C) then shift (C) */
static gboolean
shape_batchnorm (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  double eps, momentum;
  gint64 training;
  if (!gr_attr_float (g, n, "epsilon", 1e-5, &eps, error)
      || !gr_attr_float (g, n, "momentum", 0.9, &momentum, error)
      || !gr_attr_int (g, n, "training_mode", 0, 0, 0, &training, error))
    return FALSE;
  if (x->rank < 2 || x->d[0] != 1)
    return gr_node_error (error, g, n, "needs an input (1, C, ...)");
  gint64 c = x->d[1];
  for (int i = 1; i < 5; i++) {
    if (!need_weight (g, n, i, "a batch-norm parameter", error))
      return FALSE;
    if (gr_in (g, n, i)->s.n != (gsize)c)
      return gr_node_error (error, g, n,
          "input %d has %" G_GSIZE_FORMAT " values for %" G_GINT64_FORMAT " channels", i,
          gr_in (g, n, i)->s.n, c);
  }
  const float *var = gr_in (g, n, 4)->data;
  for (gint64 i = 0; i < c; i++)
    if (!(var[i] >= 0.0f))
      return gr_node_error (error, g, n, "variance %" G_GINT64_FORMAT " is negative or NaN", i);
  float *p = g_new (float, 2 * c);
  mm_batchnorm_fold (p, p + c, gr_in (g, n, 1)->data, gr_in (g, n, 2)->data, gr_in (g, n, 3)->data,
      var, (int)c, (float)eps);
  n->priv = p;
  copy_shape (&gr_out (g, n, 0)->s, x);
  n->macs = (double)x->n;
  return TRUE;
}

static void
run_batchnorm (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  int c = (int)xs->d[1];
  gsize inner = prod (xs, 2, xs->rank);
  const float *x = IN (0), *p = n->priv;
  float *y = OUT (0);
  if (y != x)
    memcpy (y, x, xs->n * sizeof (float));
  mm_channel_affine (y, c, (int)inner, p, p + c);
  if (n->act != ACT_NONE)
    gr_apply_act (y, xs->n, n->act, n->act_a, n->act_b);
}

static gboolean
shape_instancenorm (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  double eps;
  if (!gr_attr_float (g, n, "epsilon", 1e-5, &eps, error))
    return FALSE;
  if (x->rank < 3 || x->d[0] != 1)
    return gr_node_error (error, g, n, "needs an input (1, C, ...) of rank 3 or more");
  for (int i = 1; i < 3; i++) {
    if (!need_weight (g, n, i, "scale and bias", error))
      return FALSE;
    if (gr_in (g, n, i)->s.n != (gsize)x->d[1])
      return gr_node_error (error, g, n, "input %d does not have one value per channel", i);
  }
  if (prod (x, 2, x->rank) > G_MAXINT)
    return gr_node_unsupported (error, g, n, "planes above 2^31 elements");
  n->p.eps = (float)eps;
  copy_shape (&gr_out (g, n, 0)->s, x);
  n->macs = 3.0 * (double)x->n;
  return TRUE;
}

static void
run_instancenorm (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  gsize inner = prod (xs, 2, xs->rank);
  const float *x = IN (0), *scale = IN (1), *bias = IN (2);
  float *y = OUT (0);
  for (gint64 c = 0; c < xs->d[1]; c++)
    mm_layernorm (y + c * inner, x + c * inner, 1, (int)inner, NULL, NULL, n->p.eps);
  mm_channel_affine (y, (int)xs->d[1], (int)inner, scale, bias);
  if (n->act != ACT_NONE)
    gr_apply_act (y, xs->n, n->act, n->act_a, n->act_b);
}

/* priv = scale then bias, each broadcast to the normalised block */
static gboolean
shape_layernorm (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  gint64 axis, stash;
  double eps;
  int a;
  if (!gr_attr_int (g, n, "axis", -1, -G_MAX_RANK, G_MAX_RANK, &axis, error)
      || !gr_axis (g, n, axis, x->rank, &a, error)
      || !gr_attr_float (g, n, "epsilon", 1e-5, &eps, error)
      || !gr_attr_int (g, n, "stash_type", 1, -1000, 1000, &stash, error))
    return FALSE;
  GrShape block = { .rank = x->rank - a };
  for (int i = a; i < x->rank; i++)
    block.d[i - a] = x->d[i];
  block.n = prod (x, a, x->rank);
  if (block.n > G_MAXINT)
    return gr_node_unsupported (error, g, n, "rows above 2^31 elements");
  float *p = g_new0 (float, 2 * block.n);
  n->priv = p;
  for (int i = 1; i < 3; i++) {
    const GrValue *v = gr_in (g, n, i);
    float *dst = p + (i - 1) * block.n;
    if (!v) {
      continue; /* bias absent: zeros */
    }
    if (!need_weight (g, n, i, i == 1 ? "Scale" : "B", error))
      return FALSE;
    GrShape t;
    if (!gr_broadcast (g, n, &block, &v->s, &t, error))
      return FALSE;
    if (t.rank != block.rank || t.n != block.n)
      return gr_node_error (error, g, n, "input %d does not broadcast to the normalised axes", i);
    const float *src[1] = { v->data };
    const GrShape *ss[1] = { &v->s };
    bcast_run (dst, &block, src, ss, 1, BIN_COPY);
  }
  n->p.axis = a;
  n->p.eps = (float)eps;
  copy_shape (&gr_out (g, n, 0)->s, x);
  n->macs = 4.0 * (double)x->n;
  return TRUE;
}

static void
run_layernorm (const GrRun *r, const GrNode *n)
{
  const GrShape *xs = SHAPE_IN (0);
  gsize inner = prod (xs, n->p.axis, xs->rank);
  const float *p = n->priv;
  mm_layernorm (OUT (0), IN (0), (int)(xs->n / inner), (int)inner, p, p + inner, n->p.eps);
  if (n->act != ACT_NONE)
    gr_apply_act (OUT (0), xs->n, n->act, n->act_a, n->act_b);
}

/* ---- convolution and pooling --------------------------------------------- */

/* spatial attributes of a conv or pool on x (1, C, [H,] W): 1-D uses
 * index 1 of the per-dimension arrays, index 0 is then the unit H */
static gboolean
spatial_attrs (GrGraph *g, GrNode *n, const GrShape *x, const gint64 *kernel, gboolean pool,
    GrShape *o, GError **error)
{
  int sp = x->rank - 2, len;
  gint64 v[G_MAX_ATTR_LEN];
  GrParams *p = &n->p;
  p->sp = sp;
  for (int i = 0; i < 2; i++) {
    p->k[i] = 1;
    p->s[i] = 1;
    p->pb[i] = p->pe[i] = 0;
    p->dl[i] = 1;
  }
  int off = 2 - sp;
  for (int i = 0; i < sp; i++) {
    if (kernel[i] < 1 || kernel[i] > 1024)
      return gr_node_error (error, g, n, "kernel size %" G_GINT64_FORMAT " (1 to 1024)", kernel[i]);
    p->k[off + i] = (int)kernel[i];
  }
  if (!gr_attr_ints (g, n, "strides", 1, 1024, v, &len, error))
    return FALSE;
  if (len >= 0 && len != sp)
    return gr_node_error (error, g, n, "'strides' needs %d entries", sp);
  for (int i = 0; i < len; i++)
    p->s[off + i] = (int)v[i];
  if (!gr_attr_ints (g, n, "pads", 0, 1024, v, &len, error))
    return FALSE;
  if (len >= 0 && len != 2 * sp)
    return gr_node_error (error, g, n, "'pads' needs %d entries", 2 * sp);
  for (int i = 0; i < len / 2; i++) {
    p->pb[off + i] = (int)v[i];
    p->pe[off + i] = (int)v[sp + i];
  }
  if (!gr_attr_ints (g, n, "dilations", 1, 1024, v, &len, error))
    return FALSE;
  if (len >= 0 && len != sp)
    return gr_node_error (error, g, n, "'dilations' needs %d entries", sp);
  for (int i = 0; i < len; i++) {
    if (pool && v[i] != 1)
      return gr_node_unsupported (error, g, n, "pooling dilations other than 1");
    p->dl[off + i] = (int)v[i];
  }
  gint64 ceil_mode = 0;
  if (pool && !gr_attr_int (g, n, "ceil_mode", 0, 0, 1, &ceil_mode, error))
    return FALSE;
  p->ceil_mode = (int)ceil_mode;
  o->rank = x->rank;
  o->d[0] = 1;
  for (int i = 0; i < sp; i++) {
    int j = off + i;
    gint64 in = x->d[2 + i], span = in + p->pb[j] + p->pe[j] - (gint64)p->dl[j] * (p->k[j] - 1) - 1;
    if (span < 0)
      return gr_node_error (error, g, n,
          "the kernel (%d, dilation %d) is larger than the padded input (%" G_GINT64_FORMAT ")",
          p->k[j], p->dl[j], in + p->pb[j] + p->pe[j]);
    gint64 out = span / p->s[j] + 1;
    if (ceil_mode) {
      out = (span + p->s[j] - 1) / p->s[j] + 1;
      /* as PyTorch: the last window must start inside the input or its left padding */
      if ((out - 1) * p->s[j] >= in + p->pb[j])
        out--;
    }
    if (p->pb[j] >= p->k[j] || p->pe[j] >= p->k[j]) {
      if (pool)
        return gr_node_unsupported (error, g, n, "padding as large as the pooling window");
    }
    o->d[2 + i] = out;
  }
  return TRUE;
}

/* priv: nothing; the conv runs im2col + mm_sgemm per group, or a direct
 * loop for depthwise convs */
static gboolean
shape_conv (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  if (!need_weight (g, n, 1, "the kernel W", error))
    return FALSE;
  const GrShape *w = &gr_in (g, n, 1)->s;
  if ((x->rank != 3 && x->rank != 4) || x->d[0] != 1)
    return gr_node_unsupported (error, g, n,
        "only 1-D and 2-D convolutions of batch 1 (input "
        "rank %d)",
        x->rank);
  if (w->rank != x->rank)
    return gr_node_error (error, g, n, "W has rank %d, X rank %d", w->rank, x->rank);
  gint64 group, ks[G_MAX_ATTR_LEN];
  int len;
  if (!gr_attr_int (g, n, "group", 1, 1, 65536, &group, error)
      || !gr_attr_ints (g, n, "kernel_shape", 1, 1024, ks, &len, error))
    return FALSE;
  int sp = x->rank - 2;
  if (len >= 0) {
    if (len != sp)
      return gr_node_error (error, g, n, "'kernel_shape' needs %d entries", sp);
    for (int i = 0; i < sp; i++)
      if (ks[i] != w->d[2 + i])
        return gr_node_error (error, g, n, "'kernel_shape' differs from W's shape");
  }
  gint64 c = x->d[1], m = w->d[0];
  if (c % group || m % group || w->d[1] * group != c)
    return gr_node_error (error, g, n,
        "W (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", ...) does not fit %" G_GINT64_FORMAT
        " input channels in %" G_GINT64_FORMAT " groups",
        m, w->d[1], c, group);
  if (n->n_in > 2 && n->in[2] >= 0) {
    if (!need_weight (g, n, 2, "the bias B", error))
      return FALSE;
    if (gr_in (g, n, 2)->s.n != (gsize)m)
      return gr_node_error (error, g, n, "B does not have one value per output channel");
  }
  if (!spatial_attrs (g, n, x, w->d + 2, FALSE, o, error))
    return FALSE;
  o->d[1] = m;
  n->p.group = (int)group;
  if (!gr_shape_finish (g, n, o, error))
    return FALSE;
  gsize kk = (gsize)n->p.k[0] * n->p.k[1], cg = (gsize)(c / group), hw = o->n / (gsize)m;
  gboolean direct = n->p.k[0] == 1 && n->p.k[1] == 1 && n->p.s[0] == 1 && n->p.s[1] == 1
      && !n->p.pb[0] && !n->p.pb[1] && !n->p.pe[0] && !n->p.pe[1];
  gboolean depthwise = cg == 1 && group > 1;
  if (!direct && !depthwise)
    n->scratch = cg * kk * hw;
  n->macs = (double)o->n * (double)(cg * kk);
  if (x->n > G_MAXINT || n->scratch > G_MAXINT || cg * kk > G_MAXINT)
    return gr_node_unsupported (error, g, n, "a convolution this large");
  return TRUE;
}

/* col (cg kh kw, ho wo) = the receptive fields of x (cg, h, w) */
static void
im2col (float *col, const float *x, int cg, int h, int w, int ho, int wo, const GrParams *p)
{
  for (int c = 0; c < cg; c++)
    for (int i = 0; i < p->k[0]; i++)
      for (int j = 0; j < p->k[1]; j++) {
        float *row = col + ((gsize)(c * p->k[0] + i) * p->k[1] + j) * ho * wo;
        const float *xc = x + (gsize)c * h * w;
        for (int oy = 0; oy < ho; oy++) {
          int iy = oy * p->s[0] - p->pb[0] + i * p->dl[0];
          float *r = row + (gsize)oy * wo;
          if (iy < 0 || iy >= h) {
            memset (r, 0, wo * sizeof (float));
            continue;
          }
          const float *xr = xc + (gsize)iy * w;
          int ix0 = -p->pb[1] + j * p->dl[1];
          if (p->s[1] == 1 && ix0 >= 0 && ix0 + wo <= w) {
            memcpy (r, xr + ix0, wo * sizeof (float));
            continue;
          }
          for (int ox = 0; ox < wo; ox++) {
            int ix = ix0 + ox * p->s[1];
            r[ox] = ix >= 0 && ix < w ? xr[ix] : 0.0f;
          }
        }
      }
}

/* y (m, ho, wo) with one input channel per group: direct loops */
static void
conv_depthwise (float *y, const float *x, const float *wt, int c, int h, int w, int m, int ho,
    int wo, const GrParams *p)
{
  int mult = m / c, kh = p->k[0], kw = p->k[1];
  for (int oc = 0; oc < m; oc++) {
    const float *xc = x + (gsize)(oc / mult) * h * w, *k = wt + (gsize)oc * kh * kw;
    float *yc = y + (gsize)oc * ho * wo;
    for (int oy = 0; oy < ho; oy++)
      for (int ox = 0; ox < wo; ox++) {
        float acc = 0.0f;
        int iy0 = oy * p->s[0] - p->pb[0], ix0 = ox * p->s[1] - p->pb[1];
        for (int i = 0; i < kh; i++) {
          int iy = iy0 + i * p->dl[0];
          if (iy < 0 || iy >= h)
            continue;
          const float *xr = xc + (gsize)iy * w;
          for (int j = 0; j < kw; j++) {
            int ix = ix0 + j * p->dl[1];
            if (ix >= 0 && ix < w)
              acc += k[i * kw + j] * xr[ix];
          }
        }
        yc[(gsize)oy * wo + ox] = acc;
      }
  }
}

/* ---- the channel-last conv (conv-cl.c, dwconv-cl.c) ---- */

gboolean
gr_conv_prepare (GrGraph *g, GrNode *n, GError **error)
{
  const GrParams *p = &n->p;
  const GrShape *xs = &gr_in (g, n, 0)->s, *ws = &gr_in (g, n, 1)->s;
  (void)error;
  if (p->dl[0] != 1 || p->dl[1] != 1)
    return TRUE; /* im2col */
  int c = (int)xs->d[1], m = (int)ws->d[0], grp = p->group;
  const float *w = gr_in (g, n, 1)->data, *b = gr_in (g, n, 2) ? gr_in (g, n, 2)->data : NULL;
  const float *scale = n->priv, *shift = n->priv ? (const float *)n->priv + m : b;
  char what[400];
  g_snprintf (what, sizeof what, "%s: graph node %d ('%s', Conv)", g->label, n->index, n->name);
  /* a conv the kernels refuse (absurd packed sizes) stays on im2col */
  int wm = gr_conv_wino_pick (g, n);
  if (wm && mm_winograd_cl_init (&n->wcl, wm, w, scale, shift, c, m, what, NULL)) {
    n->fast = 1;
    n->wino = wm;
  } else if (grp == c && m == c && grp > 1)
    n->fast = mm_dwconv_cl_init (&n->dcl, w, scale, shift, c, p->k[0], p->k[1], what, NULL) ? 2 : 0;
  else
    n->fast =
        mm_conv_cl_init (&n->ccl, w, scale, shift, c, m, p->k[0], p->k[1], grp, what, NULL) ? 1 : 0;
  return TRUE;
}

static const float *matmul_weight (GrGraph *g, const GrNode *n, int *k, int *nn);
static float *matmul_transposed (const float *b, int k, int nn);

/* A fast conv of groups 1 has a bf16 form (mm_graph_prepare_bf16). */
static gboolean
conv_has_bf16 (const GrNode *n)
{
  return g_str_equal (n->op->name, "Conv") && n->fast == 1 && n->p.group == 1;
}

gsize
gr_conv_bf16_bytes (GrGraph *g, const GrNode *n)
{
  if (n->lin.packed)
    return mm_conv_bf16_packed_bytes (n->lin.d_in, n->lin.d_out, 1, 1);
  if (!conv_has_bf16 (n))
    return 0;
  return mm_conv_bf16_packed_bytes (
      (int)gr_in (g, n, 0)->s.d[1], (int)gr_in (g, n, 1)->s.d[0], n->p.k[0], n->p.k[1]);
}

gboolean
gr_conv_prepare_bf16 (GrGraph *g, GrNode *n, gsize *scratch, GError **error)
{
  if (n->lin.packed) { /* a MatMul by a weight matrix: a 1x1 conv over its rows */
    int k, nn;
    const float *b = matmul_weight (g, n, &k, &nn);
    float *w = matmul_transposed (b, k, nn);
    char what[400];
    g_snprintf (
        what, sizeof what, "%s: graph node %d ('%s', MatMul, bf16)", g->label, n->index, n->name);
    mm_conv_bf16_clear (&n->b16);
    const float *bias = n->bias >= 0 ? g->values[n->bias].data : NULL;
    gboolean ok = w && mm_conv_bf16_init (&n->b16, w, NULL, bias, k, nn, 1, 1, what, error);
    if (!w)
      mm_format_error (
          error, g->label, "graph: cannot allocate the bf16 weights of node %d", n->index);
    g_free (w);
    if (ok)
      *scratch = MAX (*scratch, (gsize)(gr_out (g, n, 0)->s.n / nn) * n->b16.c_pad);
    return ok;
  }
  if (!conv_has_bf16 (n))
    return TRUE;
  const GrParams *p = &n->p;
  const GrShape *ys = &gr_out (g, n, 0)->s;
  int c = (int)gr_in (g, n, 0)->s.d[1], m = (int)gr_in (g, n, 1)->s.d[0];
  const float *w = gr_in (g, n, 1)->data, *b = gr_in (g, n, 2) ? gr_in (g, n, 2)->data : NULL;
  const float *scale = n->priv, *shift = n->priv ? (const float *)n->priv + m : b;
  char what[400];
  g_snprintf (
      what, sizeof what, "%s: graph node %d ('%s', Conv, bf16)", g->label, n->index, n->name);
  mm_conv_bf16_clear (&n->b16); /* from an earlier attempt that ran out of memory */
  if (!mm_conv_bf16_init (&n->b16, w, scale, shift, c, m, p->k[0], p->k[1], what, error))
    return FALSE;
  /* the input positions the run reads, each rounded to c_pad bf16 */
  gsize ho = p->sp == 2 ? (gsize)ys->d[2] : 1, wo = (gsize)ys->d[ys->rank - 1];
  gsize rows = (ho - 1) * (gsize)p->s[0] + (gsize)p->k[0];
  gsize cols = (wo - 1) * (gsize)p->s[1] + (gsize)p->k[1];
  *scratch = MAX (*scratch, rows * cols * (gsize)n->b16.c_pad);
  return TRUE;
}

int
gr_conv_wino_pick (GrGraph *g, const GrNode *n)
{
  const GrParams *p = &n->p;
  const GrShape *xs = &gr_in (g, n, 0)->s, *ws = &gr_in (g, n, 1)->s;
  if (p->sp != 2 || p->group != 1 || p->k[0] != 3 || p->k[1] != 3 || p->s[0] != 1 || p->s[1] != 1
      || p->dl[0] != 1 || p->dl[1] != 1 || p->pb[0] != 1 || p->pb[1] != 1 || p->pe[0] != 1
      || p->pe[1] != 1 || xs->rank != 4 || xs->d[0] != 1)
    return 0;
  int m = mm_winograd_cl_pick ((int)xs->d[1], (int)ws->d[0], (int)xs->d[2], (int)xs->d[3]);
  /* MM_GRAPH_WINOGRAD (diagnostics, for side-by-side timing): 0 = never,
   * 2 or 4 = that tile size wherever the kernel serves the shape */
  const char *e = g_getenv ("MM_GRAPH_WINOGRAD");
  if (e && (g_str_equal (e, "0") || g_str_equal (e, "2") || g_str_equal (e, "4")))
    m = e[0] == '0' || xs->d[1] % 16 || ws->d[0] % 16 ? 0 : e[0] - '0';
  return m;
}

/* scratch: the zero-padded channel-last input (unless the input is
 * channel-last and the conv has no padding), and the channel-last output
 * when the output is channel-first */
void
gr_conv_scratch (GrGraph *g, GrNode *n)
{
  const GrParams *p = &n->p;
  const GrValue *x = gr_in (g, n, 0), *y = gr_out (g, n, 0);
  gboolean pads = p->pb[0] || p->pb[1] || p->pe[0] || p->pe[1];
  gsize h = p->sp == 2 ? (gsize)x->s.d[2] : 1, w = (gsize)x->s.d[x->s.rank - 1];
  n->scratch = 0;
  if (!x->cl || (pads && x->border < MAX (MAX (p->pb[0], p->pb[1]), MAX (p->pe[0], p->pe[1]))))
    n->scratch += (h + p->pb[0] + p->pe[0]) * (w + p->pb[1] + p->pe[1]) * (gsize)x->s.d[1];
  if (!y->cl)
    n->scratch += y->s.n;
  if (n->wino)
    n->scratch += mm_winograd_cl_scratch_size (&n->wcl, (int)h, (int)w);
}

static gboolean
mm_act_of (const GrNode *n, MmAct *act)
{
  *act = (MmAct){ MM_ACT_NONE, 0.0f, 0.0f };
  switch (n->act) {
    case ACT_NONE:
      return TRUE;
    case ACT_RELU:
      act->kind = MM_ACT_RELU;
      return TRUE;
    case ACT_CLIP:
      *act = (MmAct){ MM_ACT_CLIP, n->act_a, n->act_b };
      return TRUE;
    case ACT_SILU:
      act->kind = MM_ACT_SILU;
      return TRUE;
    case ACT_HARDSWISH:
      act->kind = MM_ACT_HARDSWISH;
      return TRUE;
    case ACT_SIGMOID:
      act->kind = MM_ACT_SIGMOID;
      return TRUE;
    case ACT_GELU:
      act->kind = MM_ACT_GELU;
      return n->act_a == 0.0f;
    default:
      return FALSE;
  }
}

gboolean
gr_conv_kernel_epilogue (const GrGraph *g, const GrNode *n)
{
  MmAct act;
  return mm_act_of (n, &act) && (n->residual < 0 || g->values[n->residual].cl);
}

/* zero the border of a channel-last value stored with one */
static void
zero_border (float *base, int h, int w, int c, int b)
{
  gsize row = (gsize)(w + 2 * b) * c, side = (gsize)b * c;
  memset (base, 0, (gsize)b * row * sizeof (float));
  memset (base + (gsize)(b + h) * row, 0, (gsize)b * row * sizeof (float));
  for (int y = 0; y < h; y++) {
    float *r0 = base + (gsize)(b + y) * row;
    memset (r0, 0, side * sizeof (float));
    memset (r0 + row - side, 0, side * sizeof (float));
  }
}

static void
conv_fast (const GrRun *r, const GrNode *n)
{
  const GrParams *p = &n->p;
  const GrValue *xv = VAL (n->in[0]), *yv = VAL (n->out[0]);
  const GrShape *xs = &xv->s, *ys = &yv->s;
  int c = (int)xs->d[1], m = (int)ys->d[1];
  int h = p->sp == 2 ? (int)xs->d[2] : 1, w = (int)xs->d[xs->rank - 1];
  int ho = p->sp == 2 ? (int)ys->d[2] : 1, wo = (int)ys->d[ys->rank - 1];
  gsize hw = (gsize)ho * wo;
  const float *x = IN (0), *xp = x;
  float *scr = r->scratch, *y = OUT (0);
  gsize x_row = (gsize)w * c;
  int need = MAX (MAX (p->pb[0], p->pb[1]), MAX (p->pe[0], p->pe[1]));
  if (xv->cl && xv->border >= need) {
    /* read in place: the window's top-left inside the stored border */
    int b = xv->border;
    x_row = (gsize)(w + 2 * b) * c;
    xp = x + (gsize)(b - p->pb[0]) * x_row + (gsize)(b - p->pb[1]) * c;
  } else if (!xv->cl || need) {
    /* the input channel-last inside a zero border of the conv's padding */
    int wp = w + p->pb[1] + p->pe[1];
    x_row = (gsize)wp * c;
    float *buf = scr;
    scr += (gsize)(h + p->pb[0] + p->pe[0]) * x_row;
    memset (buf, 0, (gsize)p->pb[0] * x_row * sizeof (float));
    memset (buf + (gsize)(p->pb[0] + h) * x_row, 0, (gsize)p->pe[0] * x_row * sizeof (float));
    for (int i = 0; i < h; i++) {
      float *row = buf + (gsize)(p->pb[0] + i) * x_row;
      memset (row, 0, (gsize)p->pb[1] * c * sizeof (float));
      memset (row + (gsize)(p->pb[1] + w) * c, 0, (gsize)p->pe[1] * c * sizeof (float));
      float *dst = row + (gsize)p->pb[1] * c;
      if (xv->cl) {
        memcpy (dst, x + (gsize)i * w * c, (gsize)w * c * sizeof (float));
      } else {
        for (int ch = 0; ch < c; ch++) {
          const float *src = x + ((gsize)ch * h + i) * w;
          for (int q = 0; q < w; q++)
            dst[(gsize)q * c + ch] = src[q];
        }
      }
    }
    xp = buf;
  }
  MmAct act;
  gboolean act_ok = mm_act_of (n, &act);
  const float *res = n->residual >= 0 ? gr_data (r, n->residual) : NULL;
  gboolean res_cl = res && VAL (n->residual)->cl;
  gboolean direct = yv->cl && (!res || res_cl);
  gboolean kernel_act = act_ok && direct;
  float *t = yv->cl ? y : scr;
  const float *id = direct ? res : NULL;
  gsize y_row = (gsize)wo * m, id_row = (gsize)wo * m;
  if (yv->border) /* the planner gave a border only to a kernel-only epilogue */
    t += (gsize)yv->border * ((y_row = (gsize)(wo + 2 * yv->border) * m) + m);
  if (id && VAL (n->residual)->border) {
    int b = VAL (n->residual)->border;
    id_row = (gsize)(wo + 2 * b) * m;
    id += (gsize)b * (id_row + m);
  }
  if (r->bf16 && n->b16.packed)
    mm_conv_bf16_run (&n->b16, t, y_row, xp, x_row, ho, wo, p->s[0], p->s[1], id, id_row,
        kernel_act ? &act : NULL, r->bf16);
  else if (n->wino)
    mm_winograd_cl_run (&n->wcl, t, y_row, xp, x_row, ho, wo, id, id_row, kernel_act ? &act : NULL,
        yv->cl ? scr : scr + ys->n);
  else if (n->fast == 2)
    mm_dwconv_cl_run (&n->dcl, t, y_row, xp, x_row, ho, wo, p->s[0], p->s[1], id, id_row,
        kernel_act ? &act : NULL);
  else
    mm_conv_cl_run_act (&n->ccl, t, y_row, xp, x_row, ho, wo, p->s[0], p->s[1], id, id_row,
        kernel_act ? &act : NULL);
  if (yv->border) {
    zero_border (y, ho, wo, m, yv->border);
    return;
  }
  if (yv->cl) {
    if (res && !res_cl)
      for (gsize q = 0; q < hw; q++)
        for (int oc = 0; oc < m; oc++)
          y[q * m + oc] += res[(gsize)oc * hw + q];
  } else {
    /* y (m, hw) = t (hw, m) transposed [+ the residual, in its layout] */
    for (int oc = 0; oc < m; oc++) {
      float *yc = y + (gsize)oc * hw;
      for (gsize q = 0; q < hw; q++)
        yc[q] = t[q * m + oc];
      if (res && res_cl)
        for (gsize q = 0; q < hw; q++)
          yc[q] += res[q * m + oc];
      else if (res)
        for (gsize q = 0; q < hw; q++)
          yc[q] += res[(gsize)oc * hw + q];
    }
  }
  if (n->act != ACT_NONE && !kernel_act)
    gr_apply_act (y, ys->n, n->act, n->act_a, n->act_b);
}

static void
run_conv (const GrRun *r, const GrNode *n)
{
  if (n->fast) {
    conv_fast (r, n);
    return;
  }
  const GrShape *xs = SHAPE_IN (0), *ys = SHAPE_OUT (0);
  const GrParams *p = &n->p;
  int c = (int)xs->d[1], m = (int)ys->d[1], grp = p->group;
  int h = p->sp == 2 ? (int)xs->d[2] : 1, w = (int)xs->d[xs->rank - 1];
  int ho = p->sp == 2 ? (int)ys->d[2] : 1, wo = (int)ys->d[ys->rank - 1];
  const float *x = IN (0), *wt = IN (1), *b = n->n_in > 2 && n->in[2] >= 0 ? IN (2) : NULL;
  float *y = OUT (0);
  int cg = c / grp, mg = m / grp, k = cg * p->k[0] * p->k[1];
  gsize hw = (gsize)ho * wo;
  if (cg == 1 && grp > 1) {
    conv_depthwise (y, x, wt, c, h, w, m, ho, wo, p);
  } else {
    for (int gi = 0; gi < grp; gi++) {
      const float *xg = x + (gsize)gi * cg * h * w, *col = xg;
      if (n->scratch) {
        im2col (r->scratch, xg, cg, h, w, ho, wo, p);
        col = r->scratch;
      }
      mm_sgemm (FALSE, FALSE, mg, (int)hw, k, 1.0f, wt + (gsize)gi * mg * k, k, col, (int)hw, 0.0f,
          y + (gsize)gi * mg * hw, (int)hw);
    }
  }
  /* epilogue: bias (with a folded batch-norm: priv = scale, shift),
   * residual, activation */
  const float *scale = n->priv, *shift = n->priv ? (const float *)n->priv + m : b;
  const float *res = n->residual >= 0 ? gr_data (r, n->residual) : NULL;
  for (int oc = 0; oc < m; oc++) {
    float *yc = y + (gsize)oc * hw;
    float a = scale ? scale[oc] : 1.0f, s = shift ? shift[oc] : 0.0f;
    if (res) {
      const float *rc = res + (gsize)oc * hw;
      for (gsize i = 0; i < hw; i++)
        yc[i] = yc[i] * a + s + rc[i];
    } else if (scale || shift) {
      for (gsize i = 0; i < hw; i++)
        yc[i] = yc[i] * a + s;
    }
  }
  if (n->act != ACT_NONE)
    gr_apply_act (y, ys->n, n->act, n->act_a, n->act_b);
}

static gboolean
shape_pool (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *x = &gr_in (g, n, 0)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 ks[G_MAX_ATTR_LEN], cip = 0;
  int len;
  if ((x->rank != 3 && x->rank != 4) || x->d[0] != 1)
    return gr_node_unsupported (error, g, n, "only 1-D and 2-D pooling of batch 1");
  if (!gr_attr_ints (g, n, "kernel_shape", 1, 1024, ks, &len, error))
    return FALSE;
  if (len != x->rank - 2)
    return gr_node_error (error, g, n, "'kernel_shape' needs %d entries", x->rank - 2);
  if (!gr_attr_int (g, n, "count_include_pad", 0, 0, 1, &cip, error))
    return FALSE;
  n->p.count_include_pad = (int)cip;
  if (!spatial_attrs (g, n, x, ks, TRUE, o, error))
    return FALSE;
  o->d[1] = x->d[1];
  if (x->n > G_MAXINT)
    return gr_node_unsupported (error, g, n, "pooling this large");
  n->macs = (double)x->n * n->p.k[0] * n->p.k[1] / MAX (n->p.s[0] * n->p.s[1], 1);
  return TRUE;
}

/* channel-last pooling: the same windows, a vector of channels at a time */
static GR_SIMD void
run_pool_cl (const GrRun *r, const GrNode *n, gboolean is_max)
{
  const GrShape *xs = SHAPE_IN (0), *ys = SHAPE_OUT (0);
  const GrParams *p = &n->p;
  int c = (int)xs->d[1], h = (int)xs->d[2], w = (int)xs->d[3];
  int ho = (int)ys->d[2], wo = (int)ys->d[3];
  const float *x = IN (0);
  float *y = OUT (0);
  int pad = p->pb[0];
  if (is_max && p->k[0] == p->k[1] && p->s[0] == p->s[1] && p->pb[1] == pad && p->pe[0] == pad
      && p->pe[1] == pad && ho == (h + 2 * pad - p->k[0]) / p->s[0] + 1
      && wo == (w + 2 * pad - p->k[1]) / p->s[1] + 1) {
    /* the square, symmetric case (ResNet's stem) has its own kernel */
    mm_maxpool2d_cl (y, (gsize)wo * c, x, c, h, w, p->k[0], p->s[0], pad);
    if (n->act != ACT_NONE)
      gr_apply_act (y, ys->n, n->act, n->act_a, n->act_b);
    return;
  }
  for (int oy = 0; oy < ho; oy++) {
    int y0 = oy * p->s[0] - p->pb[0], y1 = MIN (y0 + p->k[0], h + p->pe[0]);
    int ya = MAX (y0, 0), yb = MIN (y1, h);
    for (int ox = 0; ox < wo; ox++) {
      int x0 = ox * p->s[1] - p->pb[1], x1 = MIN (x0 + p->k[1], w + p->pe[1]);
      int xa = MAX (x0, 0), xb = MIN (x1, w);
      float *yv = y + ((gsize)oy * wo + ox) * c;
      for (int ch = 0; ch < c; ch++)
        yv[ch] = is_max ? -INFINITY : 0.0f;
      for (int iy = ya; iy < yb; iy++)
        for (int ix = xa; ix < xb; ix++) {
          const float *xv = x + ((gsize)iy * w + ix) * c;
          if (is_max)
            for (int ch = 0; ch < c; ch++)
              yv[ch] = xv[ch] > yv[ch] ? xv[ch] : yv[ch];
          else
            for (int ch = 0; ch < c; ch++)
              yv[ch] += xv[ch];
        }
      if (!is_max) {
        int cnt = p->count_include_pad ? (y1 - y0) * (x1 - x0) : (yb - ya) * (xb - xa);
        float inv = cnt > 0 ? 1.0f / (float)cnt : 0.0f;
        for (int ch = 0; ch < c; ch++)
          yv[ch] *= inv;
      }
    }
  }
  if (n->act != ACT_NONE)
    gr_apply_act (y, ys->n, n->act, n->act_a, n->act_b);
}

static void
run_pool (const GrRun *r, const GrNode *n, gboolean is_max)
{
  if (VAL (n->in[0])->cl) {
    run_pool_cl (r, n, is_max);
    return;
  }
  const GrShape *xs = SHAPE_IN (0), *ys = SHAPE_OUT (0);
  const GrParams *p = &n->p;
  int c = (int)xs->d[1];
  int h = p->sp == 2 ? (int)xs->d[2] : 1, w = (int)xs->d[xs->rank - 1];
  int ho = p->sp == 2 ? (int)ys->d[2] : 1, wo = (int)ys->d[ys->rank - 1];
  const float *x = IN (0);
  float *y = OUT (0);
  for (int ch = 0; ch < c; ch++) {
    const float *xc = x + (gsize)ch * h * w;
    float *yc = y + (gsize)ch * ho * wo;
    for (int oy = 0; oy < ho; oy++) {
      int y0 = oy * p->s[0] - p->pb[0], y1 = MIN (y0 + p->k[0], h + p->pe[0]);
      int ny = y1 - y0;
      int ya = MAX (y0, 0), yb = MIN (y1, h);
      for (int ox = 0; ox < wo; ox++) {
        int x0 = ox * p->s[1] - p->pb[1], x1 = MIN (x0 + p->k[1], w + p->pe[1]);
        int nx = x1 - x0;
        int xa = MAX (x0, 0), xb = MIN (x1, w);
        float acc = is_max ? -INFINITY : 0.0f;
        for (int iy = ya; iy < yb; iy++)
          for (int ix = xa; ix < xb; ix++) {
            float v = xc[(gsize)iy * w + ix];
            acc = is_max ? (v > acc || isnan (v) ? v : acc) : acc + v;
          }
        if (!is_max) {
          int cnt = p->count_include_pad ? ny * nx : (yb - ya) * (xb - xa);
          acc = cnt > 0 ? acc / (float)cnt : 0.0f;
        }
        yc[(gsize)oy * wo + ox] = acc;
      }
    }
  }
  if (n->act != ACT_NONE)
    gr_apply_act (y, ys->n, n->act, n->act_a, n->act_b);
}

static void
run_maxpool (const GrRun *r, const GrNode *n)
{
  run_pool (r, n, TRUE);
}

static void
run_averagepool (const GrRun *r, const GrNode *n)
{
  run_pool (r, n, FALSE);
}

/* ---- matrix products ------------------------------------------------------ */

static gboolean
shape_gemm (GrGraph *g, GrNode *n, GError **error)
{
  const GrShape *a = &gr_in (g, n, 0)->s, *b = &gr_in (g, n, 1)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  gint64 ta, tb;
  double alpha, beta;
  if (!gr_attr_int (g, n, "transA", 0, 0, 1, &ta, error)
      || !gr_attr_int (g, n, "transB", 0, 0, 1, &tb, error)
      || !gr_attr_float (g, n, "alpha", 1.0, &alpha, error)
      || !gr_attr_float (g, n, "beta", 1.0, &beta, error))
    return FALSE;
  if (a->rank != 2 || b->rank != 2)
    return gr_node_error (error, g, n, "A and B must have rank 2");
  gint64 m = ta ? a->d[1] : a->d[0], k = ta ? a->d[0] : a->d[1];
  gint64 kb = tb ? b->d[1] : b->d[0], nn = tb ? b->d[0] : b->d[1];
  if (k != kb)
    return gr_node_error (
        error, g, n, "inner dimensions differ: %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT, k, kb);
  o->rank = 2;
  o->d[0] = m;
  o->d[1] = nn;
  if (!gr_shape_finish (g, n, o, error))
    return FALSE;
  const GrValue *c = gr_in (g, n, 2);
  if (c) {
    GrShape t;
    if (!gr_broadcast (g, n, o, &c->s, &t, error))
      return FALSE;
    if (t.rank != 2 || t.n != o->n)
      return gr_node_error (error, g, n, "C does not broadcast to (M, N)");
  }
  if (m > G_MAXINT || k > G_MAXINT || nn > G_MAXINT)
    return gr_node_unsupported (error, g, n, "a product this large");
  n->p.trans_a = (int)ta;
  n->p.trans_b = (int)tb;
  n->p.alpha = (float)alpha;
  n->p.beta = (float)beta;
  n->macs = (double)m * (double)k * (double)nn;
  return TRUE;
}

/* y (n) = beta y + alpha W (n, k) x (k): one row of A against B^T, the
 * classifier of a CNN, is a stream over W that a dot product per row
 * reads at memory speed (sgemm takes it as a general product) */
static GR_SIMD void
gemv_rows (float *y, const float *w, const float *x, int nn, int k, float alpha, float beta)
{
  for (int j = 0; j < nn; j++) {
    const float *wj = w + (gsize)j * k;
    float acc[16] = { 0 };
    int i = 0;
    for (; i + 16 <= k; i += 16)
      for (int l = 0; l < 16; l++)
        acc[l] += wj[i + l] * x[i + l];
    float sum = 0.0f;
    for (; i < k; i++)
      sum += wj[i] * x[i];
    for (int l = 0; l < 16; l++)
      sum += acc[l];
    y[j] = alpha * sum + (beta != 0.0f ? beta * y[j] : 0.0f);
  }
}

static void
run_gemm (const GrRun *r, const GrNode *n)
{
  const GrShape *as = SHAPE_IN (0), *ys = SHAPE_OUT (0);
  int m = (int)ys->d[0], nn = (int)ys->d[1], k = (int)(n->p.trans_a ? as->d[0] : as->d[1]);
  float *y = OUT (0), beta = 0.0f;
  if (n->n_in > 2 && n->in[2] >= 0 && n->p.beta != 0.0f) {
    const float *c[1] = { IN (2) };
    const GrShape *cs[1] = { SHAPE_IN (2) };
    bcast_run (y, ys, c, cs, 1, BIN_COPY);
    beta = n->p.beta;
  }
  if (m == 1 && n->p.trans_b && !mm_ops_get_reference ())
    gemv_rows (y, IN (1), IN (0), nn, k, n->p.alpha, beta);
  else
    mm_sgemm (n->p.trans_a, n->p.trans_b, m, nn, k, n->p.alpha, IN (0), (int)SHAPE_IN (0)->d[1],
        IN (1), (int)SHAPE_IN (1)->d[1], beta, y, nn);
  if (n->act != ACT_NONE)
    gr_apply_act (y, ys->n, n->act, n->act_a, n->act_b);
}

/* B (K, N) when it is one weight matrix that A's rows all multiply (the
 * linears of an imported transformer), else NULL */
static const float *
matmul_weight (GrGraph *g, const GrNode *n, int *k, int *nn)
{
  const GrValue *b = gr_in (g, n, 1);
  if (!g_str_equal (n->op->name, "MatMul") || !n->p.ints || !b->data || b->s.rank < 2)
    return NULL;
  *k = (int)b->s.d[b->s.rank - 2];
  *nn = (int)b->s.d[b->s.rank - 1];
  return b->data;
}

/* W (N, K) = B^T for the packers, or NULL when memory is short */
static float *
matmul_transposed (const float *b, int k, int nn)
{
  float *w = g_try_new (float, (gsize)k *nn);
  for (gsize o = 0; w && o < (gsize)nn; o++)
    for (gsize i = 0; i < (gsize)k; i++)
      w[o * k + i] = b[i * nn + o];
  return w;
}

gsize
gr_matmul_packed_bytes (GrGraph *g, const GrNode *n)
{
  int k, nn;
  return matmul_weight (g, n, &k, &nn) ? mm_linear_packed_bytes (k, nn) : 0;
}

void
gr_matmul_prepare (GrGraph *g, GrNode *n)
{
  int k, nn;
  const float *b = matmul_weight (g, n, &k, &nn);
  float *w = b ? matmul_transposed (b, k, nn) : NULL;
  const float *bias = n->bias >= 0 ? g->values[n->bias].data : NULL;
  if (w)
    mm_linear_packed_init (&n->lin, w, bias, k, nn, "MatMul", NULL);
  g_free (w);
}

/* numpy matmul: A (..., M, K) B (..., K, N); p.ints = 1 when A's batch
 * dimensions can be folded into M (B has none) */
static gboolean
shape_matmul (GrGraph *g, GrNode *n, GError **error)
{
  GrShape a = gr_in (g, n, 0)->s, b = gr_in (g, n, 1)->s;
  GrShape *o = &gr_out (g, n, 0)->s;
  if (a.rank < 1 || b.rank < 1)
    return gr_node_error (error, g, n, "operands of rank 0");
  gboolean a1 = a.rank == 1, b1 = b.rank == 1;
  if (a1) {
    a.rank = 2;
    a.d[1] = a.d[0];
    a.d[0] = 1;
  }
  if (b1) {
    b.rank = 2;
    b.d[1] = 1;
  }
  gint64 m = a.d[a.rank - 2], k = a.d[a.rank - 1], kb = b.d[b.rank - 2], nn = b.d[b.rank - 1];
  if (k != kb)
    return gr_node_error (
        error, g, n, "inner dimensions differ: %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT, k, kb);
  GrShape ab = { .rank = a.rank - 2 }, bb = { .rank = b.rank - 2 }, ob;
  for (int i = 0; i < ab.rank; i++)
    ab.d[i] = a.d[i];
  for (int i = 0; i < bb.rank; i++)
    bb.d[i] = b.d[i];
  if (!gr_broadcast (g, n, &ab, &bb, &ob, error))
    return FALSE;
  o->rank = 0;
  for (int i = 0; i < ob.rank; i++)
    o->d[o->rank++] = ob.d[i];
  if (!a1)
    o->d[o->rank++] = m;
  if (!b1)
    o->d[o->rank++] = nn;
  if (o->rank > G_MAX_RANK)
    return gr_node_error (error, g, n, "output rank above %d", G_MAX_RANK);
  if (!gr_shape_finish (g, n, o, error))
    return FALSE;
  if (m > G_MAXINT || k > G_MAXINT || nn > G_MAXINT || (double)ob.n * m > G_MAXINT)
    return gr_node_unsupported (error, g, n, "a product this large");
  n->p.ints = bb.rank == 0 || bb.n == 1;
  n->macs = (double)ob.n * (double)m * (double)k * (double)nn;
  return TRUE;
}

static void
run_matmul (const GrRun *r, const GrNode *n)
{
  GrShape a = *SHAPE_IN (0), b = *SHAPE_IN (1);
  if (a.rank == 1) {
    a.rank = 2;
    a.d[1] = a.d[0];
    a.d[0] = 1;
  }
  if (b.rank == 1) {
    b.rank = 2;
    b.d[1] = 1;
  }
  int m = (int)a.d[a.rank - 2], k = (int)a.d[a.rank - 1], nn = (int)b.d[b.rank - 1];
  const float *x = IN (0), *w = IN (1);
  float *y = OUT (0);
  gsize batch = SHAPE_OUT (0)->n / ((gsize)m * nn);
  if (n->lin.packed) {
    /* B a weight matrix, packed at load with the fused bias: the kernel
     * BERT's linears use, residual and activation in its epilogue unless
     * the residual shares y's storage */
    const float *res = n->residual >= 0 ? gr_data (r, n->residual) : NULL;
    MmAct act;
    gboolean in_kernel = (!res || res != y) && mm_act_of (n, &act);
    int rows = (int)(batch * m);
    if (r->bf16 && n->b16.packed)
      mm_linear_bf16_run (
          &n->b16, y, x, rows, in_kernel ? res : NULL, in_kernel ? &act : NULL, r->bf16);
    else
      mm_linear_packed_run (&n->lin, y, x, rows, in_kernel ? res : NULL, in_kernel ? &act : NULL);
    if (!in_kernel) {
      if (res)
        mm_add (y, res, SHAPE_OUT (0)->n);
      if (n->act != ACT_NONE)
        gr_apply_act (y, SHAPE_OUT (0)->n, n->act, n->act_a, n->act_b);
    }
    return;
  } else if (n->p.ints) {
    /* B is one matrix: every row of A in one product */
    mm_sgemm (FALSE, FALSE, (int)(batch * m), nn, k, 1.0f, x, k, w, nn, 0.0f, y, nn);
  } else {
    /* batch offsets through broadcasting of the batch dimensions */
    GrShape ab = { .rank = a.rank - 2 }, bb = { .rank = b.rank - 2 }, ob;
    for (int i = 0; i < ab.rank; i++)
      ab.d[i] = a.d[i];
    for (int i = 0; i < bb.rank; i++)
      bb.d[i] = b.d[i];
    int r0 = MAX (ab.rank, bb.rank);
    ob.rank = r0;
    gint64 sa[G_MAX_RANK], sb[G_MAX_RANK], s1 = (gint64)m * k, s2 = (gint64)k * nn;
    for (int i = r0 - 1; i >= 0; i--) {
      int ia = i - (r0 - ab.rank), ib = i - (r0 - bb.rank);
      gint64 da = ia >= 0 ? ab.d[ia] : 1, db = ib >= 0 ? bb.d[ib] : 1;
      ob.d[i] = MAX (da, db);
      sa[i] = da == 1 ? 0 : s1;
      sb[i] = db == 1 ? 0 : s2;
      s1 *= da;
      s2 *= db;
    }
    gint64 idx[G_MAX_RANK] = { 0 }, oa = 0, obb = 0;
    for (gsize bi = 0; bi < batch; bi++) {
      mm_sgemm (
          FALSE, FALSE, m, nn, k, 1.0f, x + oa, k, w + obb, nn, 0.0f, y + bi * (gsize)m * nn, nn);
      for (int i = r0 - 1; i >= 0; i--) {
        idx[i]++;
        oa += sa[i];
        obb += sb[i];
        if (idx[i] < ob.d[i])
          break;
        oa -= sa[i] * ob.d[i];
        obb -= sb[i] * ob.d[i];
        idx[i] = 0;
      }
    }
  }
  if (n->bias >= 0) /* a fused bias Add (graph-plan.c) */
    for (gsize q = 0; q < SHAPE_OUT (0)->n; q += (gsize)nn)
      mm_add (y + q, gr_data (r, n->bias), (gsize)nn);
  if (n->residual >= 0)
    mm_add (y, gr_data (r, n->residual), SHAPE_OUT (0)->n);
  if (n->act != ACT_NONE)
    gr_apply_act (y, SHAPE_OUT (0)->n, n->act, n->act_a, n->act_b);
}

/* ---- activations shared with fused epilogues ------------------------------ */

void
gr_apply_act (float *x, gsize len, GrAct act, float a, float b)
{
  switch (act) {
    case ACT_NONE:
      break;
    case ACT_RELU:
      mm_relu (x, len);
      break;
    case ACT_SIGMOID:
      mm_sigmoid (x, len);
      break;
    case ACT_SILU:
      mm_silu (x, len);
      break;
    case ACT_TANH:
      mm_tanh (x, len);
      break;
    case ACT_GELU:
      if (a == 0.0f) {
        mm_gelu (x, len);
      } else {
        for (gsize i = 0; i < len; i++) {
          float v = x[i];
          x[i] = 0.5f * v * (1.0f + tanhf (0.7978845608f * (v + 0.044715f * v * v * v)));
        }
      }
      break;
    case ACT_CLIP:
      for (gsize i = 0; i < len; i++)
        x[i] = x[i] < a ? a : x[i] > b ? b : x[i];
      break;
    case ACT_LEAKY:
      for (gsize i = 0; i < len; i++)
        x[i] = x[i] >= 0.0f ? x[i] : a * x[i];
      break;
    case ACT_HARDSIGMOID:
      for (gsize i = 0; i < len; i++) {
        float v = a * x[i] + b;
        x[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
      }
      break;
    case ACT_HARDSWISH:
      for (gsize i = 0; i < len; i++) {
        float v = x[i] / 6.0f + 0.5f;
        x[i] *= v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
      }
      break;
  }
}

gpointer
gr_run_act_fn (void)
{
  return (gpointer)run_act;
}

/* ---- the table ------------------------------------------------------------ */

#define SPATIAL "kernel_shape,strides,pads,dilations"

static const GrOp ops[] = {
  /* name, inputs min..max, outputs min..max, attributes, view, shape, run */
  { "Abs", 1, 1, 1, 1, "", FALSE, shape_unary, run_abs },
  { "Add", 2, 2, 1, 1, "", FALSE, shape_binary, run_add },
  { "AveragePool", 1, 1, 1, 1, SPATIAL ",ceil_mode,count_include_pad", FALSE, shape_pool,
      run_averagepool },
  { "BatchNormalization", 5, 5, 1, 1, "epsilon,momentum,training_mode", FALSE, shape_batchnorm,
      run_batchnorm },
  { "Cast", 1, 1, 1, 1, "to", FALSE, shape_cast, run_cast },
  { "Clip", 1, 3, 1, 1, "min,max", FALSE, shape_clip, run_act },
  { "Concat", 1, G_MAX_IO, 1, 1, "axis", FALSE, shape_concat, run_concat },
  { "Conv", 2, 3, 1, 1, SPATIAL ",group", FALSE, shape_conv, run_conv },
  { "Div", 2, 2, 1, 1, "", FALSE, shape_binary, run_div },
  { "Dropout", 1, 1, 1, 1, "ratio", TRUE, shape_identity, run_view },
  { "Erf", 1, 1, 1, 1, "", FALSE, shape_unary, run_erf },
  { "Exp", 1, 1, 1, 1, "", FALSE, shape_unary, run_exp },
  { "Flatten", 1, 1, 1, 1, "axis", TRUE, shape_flatten, run_view },
  { "Gather", 1, 2, 1, 1, "axis,indices", FALSE, shape_gather, run_gather },
  { "Gelu", 1, 1, 1, 1, "approximate", FALSE, shape_gelu, run_act },
  { "Gemm", 2, 3, 1, 1, "alpha,beta,transA,transB", FALSE, shape_gemm, run_gemm },
  { "GlobalAveragePool", 1, 1, 1, 1, "", FALSE, shape_global_pool, run_globalaveragepool },
  { "GlobalMaxPool", 1, 1, 1, 1, "", FALSE, shape_global_pool, run_globalmaxpool },
  { "HardSigmoid", 1, 1, 1, 1, "alpha,beta", FALSE, shape_hardsigmoid, run_act },
  { "HardSwish", 1, 1, 1, 1, "", FALSE, shape_hardswish, run_act },
  { "Identity", 1, 1, 1, 1, "", TRUE, shape_identity, run_view },
  { "InstanceNormalization", 3, 3, 1, 1, "epsilon", FALSE, shape_instancenorm, run_instancenorm },
  { "LayerNormalization", 2, 3, 1, 1, "axis,epsilon,stash_type", FALSE, shape_layernorm,
      run_layernorm },
  { "LeakyRelu", 1, 1, 1, 1, "alpha", FALSE, shape_leakyrelu, run_act },
  { "Log", 1, 1, 1, 1, "", FALSE, shape_unary, run_log },
  { "MatMul", 2, 2, 1, 1, "", FALSE, shape_matmul, run_matmul },
  { "MaxPool", 1, 1, 1, 1, SPATIAL ",ceil_mode", FALSE, shape_pool, run_maxpool },
  { "Mul", 2, 2, 1, 1, "", FALSE, shape_binary, run_mul },
  { "Neg", 1, 1, 1, 1, "", FALSE, shape_unary, run_neg },
  { "Pad", 1, 1, 1, 1, "pads,value", FALSE, shape_pad, run_pad },
  { "Pow", 2, 2, 1, 1, "", FALSE, shape_pow, run_pow },
  { "Reciprocal", 1, 1, 1, 1, "", FALSE, shape_unary, run_reciprocal },
  { "ReduceMax", 1, 1, 1, 1, "axes,keepdims", FALSE, shape_reduce, run_reducemax },
  { "ReduceMean", 1, 1, 1, 1, "axes,keepdims", FALSE, shape_reduce, run_reducemean },
  { "ReduceSum", 1, 1, 1, 1, "axes,keepdims", FALSE, shape_reduce, run_reducesum },
  { "Relu", 1, 1, 1, 1, "", FALSE, shape_relu, run_act },
  { "Reshape", 1, 1, 1, 1, "shape", TRUE, shape_reshape, run_view },
  { "Sigmoid", 1, 1, 1, 1, "", FALSE, shape_sigmoid, run_act },
  { "Slice", 1, 1, 1, 1, "starts,ends,axes,steps", FALSE, shape_slice, run_slice },
  { "Softmax", 1, 1, 1, 1, "axis", FALSE, shape_softmax, run_softmax },
  { "Split", 1, 1, 1, G_MAX_IO, "axis,split", FALSE, shape_split, run_split },
  { "Sqrt", 1, 1, 1, 1, "", FALSE, shape_unary, run_sqrt },
  { "Squeeze", 1, 1, 1, 1, "axes", TRUE, shape_squeeze, run_view },
  { "Sub", 2, 2, 1, 1, "", FALSE, shape_binary, run_sub },
  { "Tanh", 1, 1, 1, 1, "", FALSE, shape_tanh, run_act },
  { "Transpose", 1, 1, 1, 1, "perm", FALSE, shape_transpose, run_transpose },
  { "Unsqueeze", 1, 1, 1, 1, "axes", TRUE, shape_unsqueeze, run_view },
  { "Where", 3, 3, 1, 1, "", FALSE, shape_where, run_where },
};

const GrOp *
gr_op_find (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    if (g_str_equal (ops[i].name, name))
      return &ops[i];
  return NULL;
}

char *
gr_op_list (void)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", ops[i].name);
  return g_string_free (s, FALSE);
}
