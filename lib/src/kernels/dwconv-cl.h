/* libmm: channel-last depthwise convolution (1-D and 2-D).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A depthwise conv (groups = channels, one input and one output channel
 * per group: MobileNet, EfficientNet, ConvNeXt) has too little work per
 * group for conv-cl's 16-channel panels, which would multiply its
 * weights and FLOPs 16x.  Here the vectors run across channels instead:
 * each tap is one multiply-add of 16 channels of x by 16 per-channel
 * weights, over the kernel window, for a tile of output positions.
 * Activations are channel-last with the zero padding stored around the
 * input, as for mm_conv_cl_run.  Weights are packed once at model load
 * (a folded batch-norm scale multiplied in); nothing here allocates after
 * mm_dwconv_cl_init.  With mm_ops_set_reference (TRUE) runs are plain C
 * loops with double accumulators.
 *
 *   MmDwConvCl dw;
 *   if (!mm_dwconv_cl_init (&dw, w, bn_scale, bn_shift, c, 3, 3, "block3.dw", &err))
 *     return FALSE;
 *   MmAct relu6 = { MM_ACT_CLIP, 0.0f, 6.0f };
 *   mm_dwconv_cl_run (&dw, y, y_row, x_padded, x_row, h_out, w_out, 2, 2, NULL, 0, &relu6);
 *   mm_dwconv_cl_clear (&dw);
 *
 * A run only reads its MmDwConvCl: one may serve any number of threads.
 */
#ifndef MM_DWCONV_CL_H
#define MM_DWCONV_CL_H

#include <glib.h>

#include "conv-cl.h" /* MmAct */

G_BEGIN_DECLS

typedef struct
{
  int c, kh, kw;
  int c_pad;    /* c rounded up to 16 */
  float *w;     /* (kh, kw, c_pad), scale multiplied in, zero past c, 64-byte aligned */
  float *shift; /* (c_pad), zero past c */
  gpointer mem; /* what was allocated for w and shift */
} MmDwConvCl;

/* Packs w (c, 1, kh, kw) (PyTorch's depthwise layout: groups = c_in =
 * c_out = c) times scale[ch] (NULL = 1), and shift (NULL = 0).  Any
 * kh, kw >= 1 (a 1-D conv: kh = 1).  FALSE with an MM_ERROR_FORMAT error
 * naming @what when the shape is invalid or the weights would be absurdly
 * large; @d is then cleared (mm_dwconv_cl_clear is still safe). */
gboolean mm_dwconv_cl_init (MmDwConvCl *d, const float *w, const float *scale, const float *shift,
    int c, int kh, int kw, const char *what, GError **error);
void mm_dwconv_cl_clear (MmDwConvCl *d);

/* y[ho][wo][ch] = act (shift[ch] + sum over i < kh, j < kw of
 *   W[ch][i][j] x[ho sh + i][wo sw + j][ch] [+ identity[ho][wo][ch]])
 * for ho < h_out, wo < w_out, ch < c; any strides sh, sw >= 1.
 * Position (r, q) of x is at x + r x_row + q c (x points at the top-left
 * of the padded input, so the caller stores pad zeros around it); of y at
 * y + r y_row + q c; of identity at identity + r id_row + q c.  identity
 * may be NULL, act NULL = none.  y must not overlap x or identity.
 * A 1-D conv is h_out = kh = 1 (the row strides are then unused). */
void mm_dwconv_cl_run (const MmDwConvCl *d, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act);

G_END_DECLS
#endif
