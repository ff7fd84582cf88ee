/* libmm: Winograd convolution F(m x m, 3 x 3) for 3x3, stride 1, pad 1,
 * groups 1 (the convs of a ResNet's basic blocks).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * m = 2 (4x4 tiles, 16 products for 4 outputs) or m = 4 (6x6 tiles, 36 for
 * 16).  Weights are transformed once, at model load; a call transforms the
 * input tiles, does one GEMM (mm_sgemm) per tile position and transforms
 * the products back into the output.  Nothing here allocates.
 *
 * Non-finite inputs: the transforms mix a tile's inputs, so one Inf in an
 * activation makes its whole output tile NaN (where a direct conv gives Inf
 * at the pixels it reaches), and a ReLU after it then gives 0 there, as
 * libmm's ReLU maps NaN to 0.  A network whose activations overflow gives
 * no meaningful output on either path.
 */
#ifndef MM_WINOGRAD_H
#define MM_WINOGRAD_H

#include <glib.h>

#include "conv-cl.h" /* MmAct */

G_BEGIN_DECLS

/* The tile size that measured fastest against im2col + GEMM for this
 * shape on Zen 4 (AVX-512 OpenBLAS), or 0 where im2col + GEMM wins (few
 * channels, or a small plane, whose few tiles make the per-position GEMMs
 * too narrow and the 2-4x larger weights dominate). */
int mm_winograd_pick (int c_in, int c_out, int h, int w);

/* Floats of the transformed weights U ((m+2)^2, c_out, c_in). */
gsize mm_winograd_weights_size (int m, int c_in, int c_out);
/* u = G w G^T per (oc, ic), times scale[oc] when scale is not NULL (a
 * folded batch-norm);  w (c_out, c_in, 3, 3). */
void mm_winograd_weights (float *u, int m, const float *w, const float *scale, int c_in, int c_out);

/* Floats of scratch mm_winograd_conv3x3 needs for this shape. */
gsize mm_winograd_scratch_size (int m, int c_in, int c_out, int h, int w);

/* y (c_out, h, w) = [relu] (conv3x3 pad 1 (x (c_in, h, w)) + shift[oc]
 * [+ identity (c_out, h, w)]), with the weights u from mm_winograd_weights;
 * shift and identity may be NULL.  y must not alias x or identity. */
void mm_winograd_conv3x3 (float *y, const float *x, const float *u, int m, int c_in, int h, int w,
    int c_out, const float *shift, const float *identity, gboolean relu, float *scratch);

/* ---- channel-last (the graph executor's layout) --------------------
 *
 * The same F(m x m, 3 x 3) over channel-last activations, as conv-cl.c
 * reads and writes them, with conv-cl's epilogue (shift, residual, any
 * MmAct).  A chunk of T output tiles at a time: the input transform
 * (vectors across 16 input channels) fills V (a^2, T, c_in); then for each
 * panel of 32 output channels, a^2 register-tiled GEMMs
 *   M_p (T, 32) = V_p (T, c_in) U_p (c_in, 32)
 * (tiles x 32 channels in vector registers, as conv-cl's kernel) and the
 * output transform with the epilogue, straight into y.  Groups 1, c_in
 * and c_out multiples of 16.  Nothing here allocates after init. */
typedef struct
{
  int m; /* output tile side: 2 or 4 */
  int c_in, c_out;
  float *u;     /* (panels of 32 output channels (the last may be 16), (m+2)^2, c_in, width):
                   panel j0 of position p at u + (j0 (m+2)^2 + p width) c_in, so that a run
                   reads it once, in order; 64-byte aligned */
  float *shift; /* (c_out) */
  gpointer mem; /* what was allocated for u */
} MmWinogradCl;

/* The tile size measured faster than conv-cl's direct kernel for a 3x3
 * stride-1 pad-1 conv of this shape on an h x w plane (one thread, Zen 5
 * AVX-512), 0 where the direct kernel wins or the shape is not served
 * (c_in or c_out not a multiple of 16). */
int mm_winograd_cl_pick (int c_in, int c_out, int h, int w);

/* Bytes mm_winograd_cl_init allocates for this shape. */
guint64 mm_winograd_cl_bytes (int m, int c_in, int c_out);

/* Transforms w (c_out, c_in, 3, 3) times scale[o] (NULL = 1), shift (NULL =
 * 0).  FALSE with an MM_ERROR_FORMAT error naming @what when the shape is
 * not served or memory is short; @wc is then cleared. */
gboolean mm_winograd_cl_init (MmWinogradCl *wc, int m, const float *w, const float *scale,
    const float *shift, int c_in, int c_out, const char *what, GError **error);
void mm_winograd_cl_clear (MmWinogradCl *wc);

/* Floats of scratch mm_winograd_cl_run needs on an h x w plane. */
gsize mm_winograd_cl_scratch_size (const MmWinogradCl *wc, int h, int w);

/* y[r][q] (c_out) = act (shift + conv3x3 pad 1 (x) [+ identity[r][q]]) for
 * r < h, q < w.  x points at the top-left of the padded input, position
 * (-1, -1): position (r, q) of x is at x + (r + 1) x_row + (q + 1) c_in,
 * and the border rows -1 and h, columns -1 and w must be zero (only they
 * are read outside the plane).  y at y + r y_row + q c_out, identity at
 * identity + r id_row + q c_out (NULL = none); act NULL = none.  y must
 * not overlap x or identity, nor scratch (aligned to 64 bytes or not). */
void mm_winograd_cl_run (const MmWinogradCl *wc, float *y, gsize y_row, const float *x, gsize x_row,
    int h, int w, const float *identity, gsize id_row, const MmAct *act, float *scratch);

G_END_DECLS
#endif
