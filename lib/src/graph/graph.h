/* libmm: the graph component -- a DAG of ONNX-style operators planned once
 * at model load (models/FORMAT.md, "any component: graph").
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the encoders and the head see: MmGraph is the immutable, planned
 * network (shapes, fused steps, packed weights, the activation arena's
 * layout); MmGraphCtx is one user's arena.  The caller fills each input
 * buffer (mm_graph_ctx_input) from its own preprocessing and runs; a run
 * never allocates.
 */
#ifndef MM_GRAPH_H
#define MM_GRAPH_H

#include "mm-private.h"

G_BEGIN_DECLS

typedef enum
{
  MM_GRAPH_INPUT_IMAGE,
  MM_GRAPH_INPUT_LOGMEL,
  MM_GRAPH_INPUT_LOGMEL_T,
  MM_GRAPH_INPUT_WAVEFORM,
  MM_GRAPH_INPUT_TOKEN_IDS,
  MM_GRAPH_INPUT_ATTENTION_MASK,
  MM_GRAPH_INPUT_TOKEN_TYPE_IDS,
  MM_GRAPH_INPUT_FEATURES,
} MmGraphInputKind;

typedef struct _MmGraph MmGraph;
typedef struct _MmGraphCtx MmGraphCtx;

/* Parses, validates, infers shapes and plans the graph of a component
 * whose tensors are named "<prefix><name>" (prefix "image." etc.).  Reads
 * the keys "dim", "inputs", "output", "pool", "nodes" of @cfg (which must
 * outlive the graph: names point into it).  NULL + error naming the node
 * on any problem. */
MmGraph *mm_graph_load (const MmSafetensors *st, JsonObject *cfg, const char *prefix,
    const char *label, GError **error);
void mm_graph_free (MmGraph *g);

guint mm_graph_dim (const MmGraph *g);
guint mm_graph_n_inputs (const MmGraph *g);
MmGraphInputKind mm_graph_input_kind (const MmGraph *g, guint i);
/* the input's static shape: rank, dimensions */
guint mm_graph_input_shape (const MmGraph *g, guint i, gint64 *dims);
/* index of the first input of @kind, or -1 */
int mm_graph_find_input (const MmGraph *g, MmGraphInputKind kind);
/* bytes of the activation arena (every intermediate tensor, after buffer
 * reuse) plus the largest scratch a step needs */
gsize mm_graph_peak_bytes (const MmGraph *g);
/* bytes the arena would take without reuse (each tensor its own buffer) */
gsize mm_graph_total_bytes (const MmGraph *g);
guint mm_graph_n_steps (const MmGraph *g);        /* after fusion */
guint mm_graph_n_channel_last (const MmGraph *g); /* values stored (H, W, C) */

/* Packs the bf16 weights of the graph's convolutions of groups 1 once, for
 * every context (thread-safe; the first bf16 context does it).  FALSE +
 * error when they are over the memory budget or memory is short.  Only
 * where mm_cpu_has_bf16 () says so. */
gboolean mm_graph_prepare_bf16 (const MmGraph *g, GError **error);

/* A context: activations and scratch.  @bf16: its convolutions of groups 1
 * run in bf16 (conv-bf16.c, products summed in fp32; the caller checked
 * the CPU); depthwise convs, Gemm/MatMul and the rest stay fp32.  A graph
 * without such a conv gives an fp32 context (mm_graph_ctx_is_bf16). */
MmGraphCtx *mm_graph_ctx_new (const MmGraph *g, const char *label, gboolean bf16, GError **error);
gboolean mm_graph_ctx_is_bf16 (const MmGraphCtx *c);
void mm_graph_ctx_free (MmGraphCtx *c);
/* where input @i is written before mm_graph_ctx_run (its shape's element
 * count of floats) */
float *mm_graph_ctx_input (MmGraphCtx *c, guint i);
/* runs the graph; out receives mm_graph_dim floats, pooled as the
 * component says */
void mm_graph_ctx_run (MmGraphCtx *c, float *out);

G_END_DECLS
#endif
