/* libmm: fused multi-head self-attention (online softmax over key tiles).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * For every head, the scores of a block of query rows against one tile of
 * keys are computed, turned into probabilities with a running maximum and
 * sum (the "online softmax" of flash attention) and multiplied into the
 * output rows at once, so no n x n score matrix exists: the scratch is the
 * head's keys transposed, its values padded to whole vectors and one
 * (rows x tile) block.  Used by the BERT encoder for every length.
 */
#ifndef MM_ATTENTION_H
#define MM_ATTENTION_H

#include <glib.h>

G_BEGIN_DECLS

/* Floats of scratch mm_attention_fused needs for n tokens and head size dh. */
gsize mm_attention_fused_scratch (int n, int dh);

/* Per head h (columns h dh .. (h + 1) dh, dh = d / heads), for n tokens
 * with no mask:
 *   y_h (n, dh) = softmax (q_h k_h^T / sqrt (dh)) v_h
 * Rows of q, k and v are @ld floats apart (they may be the three parts of
 * one (n, 3 d) projection), rows of y @ldy.  With mm_ops_set_reference
 * (TRUE): the textbook loops in double, one score row at a time.  Never
 * allocates. */
void mm_attention_fused (float *y, gsize ldy, const float *q, const float *k, const float *v,
    gsize ld, int n, int d, int heads, float *scratch);

G_END_DECLS
#endif
