/* libmm: channel-last convolution (1-D and 2-D) over weights packed once.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Activations are channel-last: position (row, col) of x holds c_in
 * consecutive floats, with the zero padding stored around the input, so
 * the kernel never tests bounds and needs no im2col.  Weights are packed at
 * model load (a folded batch-norm scale multiplied in) into 32-column
 * panels; a register tile of output positions x 32 output channels is
 * accumulated over the whole reduction and leaves through an epilogue that
 * adds the shift, an optional residual and an optional ReLU.  Used by the
 * audio encoder (1-D, groups) and the image encoder (2-D); nothing here
 * allocates after mm_conv_cl_init.
 */
#ifndef MM_CONV_CL_H
#define MM_CONV_CL_H

#include <glib.h>

G_BEGIN_DECLS

/* Activation applied last in the epilogues of the channel-last kernels
 * (after the shift and the residual), as the graph executor fuses it. */
typedef enum
{
  MM_ACT_NONE = 0,
  MM_ACT_RELU,      /* max (x, 0) */
  MM_ACT_CLIP,      /* min (max (x, lo), hi): ReLU6 is lo 0, hi 6 */
  MM_ACT_SILU,      /* x sigmoid (x) (Swish) */
  MM_ACT_HARDSWISH, /* x min (max (x + 3, 0), 6) / 6 */
  MM_ACT_SIGMOID,   /* 1 / (1 + e^-x) */
  MM_ACT_GELU,      /* exact: 0.5 x (1 + erf (x / sqrt 2)) */
} MmActKind;

typedef struct
{
  MmActKind kind;
  float lo, hi; /* MM_ACT_CLIP only; either may be -/+INFINITY */
} MmAct;

/* x (n) = act (x), in place; act NULL = none.  Fast path (polynomial
 * exp/erf, ~2e-7 relative) or, with mm_ops_set_reference (TRUE), libm in
 * double.  Exactly what the conv epilogues below compute. */
void mm_act_apply (const MmAct *act, float *x, gsize n);

/* Memory and work per group are rounded up to 8 output channels when a
 * group has at most 8 (RegNet's group width 8), else to 16: a depthwise
 * conv (one output channel per group) packs 8x its weights and multiplies
 * 8x the FLOPs it needs, and group widths 12 or 24 pay 16 and 32.  Correct;
 * depthwise convs belong in dwconv-cl.h.  A file that would need too much
 * memory fails to load with a GError. */
typedef struct
{
  int c_in, c_out, kh, kw, groups;
  int og_pad;    /* output channels per group, rounded up to 8 (at most 8) or 16 */
  float *packed; /* (groups, panels, kh, kw, c_in / groups, 32 or 16), 64-byte aligned */
  float *shift;  /* (groups, og_pad) */
  gpointer mem;  /* what was allocated for packed */
} MmConvCl;

/* Packs w (c_out, c_in / groups, kh, kw) times scale[o] (NULL = 1) and
 * shift (NULL = 0).  FALSE with an error naming @what when the shape is
 * invalid or memory is short; @c is then cleared. */
gboolean mm_conv_cl_init (MmConvCl *c, const float *w, const float *scale, const float *shift,
    int c_in, int c_out, int kh, int kw, int groups, const char *what, GError **error);
void mm_conv_cl_clear (MmConvCl *c);

/* y[ho][wo] (c_out) = [relu] (shift + sum over i < kh, j < kw of
 *   W[i][j] . x[ho sh + i][wo sw + j] (c_in) [+ identity[ho][wo] (c_out)])
 * for ho < h_out, wo < w_out.  Position (r, q) of x is at x + r x_row +
 * q c_in (x points at the top-left of the padded input); of y at y + r
 * y_row + q c_out, of identity at identity + r id_row + q c_out.  identity
 * may be NULL; y must not overlap x or identity.  A 1-D conv is h_out =
 * kh = 1 (the row strides are then unused). */
void mm_conv_cl_run (const MmConvCl *c, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, gboolean relu);

/* mm_conv_cl_run with any activation: y = act (shift + conv [+ identity]);
 * act NULL = none.  Same packed weights; MM_ACT_NONE/MM_ACT_RELU run
 * exactly as mm_conv_cl_run with relu FALSE/TRUE. */
void mm_conv_cl_run_act (const MmConvCl *c, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act);

/* y[ho][wo] (c) = max over the k x k window of x (h, w, c), channel-last,
 * padding ignored (as PyTorch's -inf padding); rows of y are y_row floats
 * apart, of x w c. */
void mm_maxpool2d_cl (
    float *y, gsize y_row, const float *x, int c, int h, int w, int k, int stride, int pad);

G_END_DECLS
#endif
