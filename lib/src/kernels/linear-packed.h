/* libmm: linears over weights packed once, for few rows (blas.c).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * y (n, d_out) = act (x (n, d_in) W^T + b [+ residual]) with W packed at
 * load into panels of 32 output columns (d_in x 32 floats each).  The
 * kernel keeps 8 rows x 32 columns in registers over the whole reduction
 * and prefetches the next panel while the first row tile runs over the
 * current one: a transformer layer's weights (3 MB for BERT-4) come from
 * L3 at every call, and their first pass was where the time went.
 */
#ifndef MM_LINEAR_PACKED_H
#define MM_LINEAR_PACKED_H

#include <glib.h>

#include "conv-cl.h" /* MmAct */

G_BEGIN_DECLS

typedef struct
{
  int d_in, d_out, panels;
  float *packed; /* (panels, d_in, 32), 64-byte aligned */
  float *bias;   /* (panels * 32), zero padded */
} MmLinearPacked;

/* Packs w (d_out, d_in) and b (d_out, NULL = 0).  FALSE with a GError
 * naming @what when memory is short; @l is then cleared. */
gboolean mm_linear_packed_init (MmLinearPacked *l, const float *w, const float *b, int d_in,
    int d_out, const char *what, GError **error);
void mm_linear_packed_clear (MmLinearPacked *l);
gsize mm_linear_packed_bytes (int d_in, int d_out);

/* y (n, d_out) = act (x (n, d_in) W^T + b [+ residual (n, d_out)]); rows
 * of x, y and residual are contiguous; act NULL, or any MmAct kind (the
 * polynomials of act-vec.h).  y must not overlap x or residual.  Never
 * allocates. */
void mm_linear_packed_run (const MmLinearPacked *l, float *y, const float *x, int n,
    const float *residual, const MmAct *act);

G_END_DECLS
#endif
