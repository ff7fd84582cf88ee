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

G_END_DECLS
#endif
