/* libmm: bf16 channel-last convolution and linears, fp32 accumulation.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The bf16 counterpart of conv-cl.h for CPUs with AVX512_BF16: weights
 * are rounded to bf16 once (at the first context that asks for bf16) into
 * 32-column panels whose rows hold pairs of reduction steps, as vdpbf16ps
 * takes them; activations stay fp32 between layers and are rounded to bf16
 * by each conv just before it reads them (into the caller's scratch).  Sums,
 * the shift, the residual and the activation are fp32.  Groups are not
 * supported (the resnet family and BERT need none).  Everything here runs
 * only where mm_cpu_has_bf16 () says so; callers keep the fp32 path.
 */
#ifndef MM_CONV_BF16_H
#define MM_CONV_BF16_H

#include <glib.h>

#include "conv-cl.h" /* MmAct */

G_BEGIN_DECLS

/* TRUE when the CPU has AVX-512 (F, BW, VL) and AVX512_BF16 (CPUID leaf 7
 * subleaf 1, EAX bit 5) and the environment variable MM_DISABLE_BF16 is not
 * set to something other than "0" (tests use it to take the fallback on a
 * CPU that has the instructions).  Thread-safe. */
gboolean mm_cpu_has_bf16 (void);

typedef struct
{
  int c_in, c_out, kh, kw;
  int c_pad;       /* c_in rounded up to even: a bf16 pair never spans two taps */
  int panels;      /* output channels in panels of 32, the last one zero padded */
  guint16 *packed; /* (panels, kh kw c_pad / 2, 32, 2) bf16, 64-byte aligned */
  float *shift;    /* (panels 32), zero padded */
  gpointer mem;    /* what was allocated for packed */
} MmConvBf16;

/* Packs w (c_out, c_in, kh, kw) times scale[o] (NULL = 1), rounded to
 * bf16 (nearest even), and shift (NULL = 0).  FALSE with an error naming
 * @what when the shape is invalid or memory is short; @c is then cleared. */
gboolean mm_conv_bf16_init (MmConvBf16 *c, const float *w, const float *scale, const float *shift,
    int c_in, int c_out, int kh, int kw, const char *what, GError **error);
void mm_conv_bf16_clear (MmConvBf16 *c);
gsize mm_conv_bf16_packed_bytes (int c_in, int c_out, int kh, int kw);

/* As mm_conv_cl_run_act (groups 1): y[ho][wo] (c_out) = act (shift + sum
 * over i < kh, j < kw of W[i][j] . x[ho sh + i][wo sw + j] (c_in) [+
 * identity[ho][wo] (c_out)]), positions and row strides as there (x at the
 * top-left of the padded input).  The input positions the convolution
 * reads, ((h_out - 1) sh + kh) x ((w_out - 1) sw + kw) of them, are rounded
 * to bf16 first into @scratch, which holds that many times c_pad values
 * (at most twice the floats of the input, so a caller may size it as two
 * bf16 per float of its largest activation).  identity may be NULL; act
 * NULL = none.  Never allocates. */
void mm_conv_bf16_run (const MmConvBf16 *c, float *y, gsize y_row, const float *x, gsize x_row,
    int h_out, int w_out, int sh, int sw, const float *identity, gsize id_row, const MmAct *act,
    guint16 *scratch);

/* y (n, d_out) = act (x (n, d_in) W^T + b [+ residual (n, d_out)]) on a
 * 1x1 MmConvBf16 (init with c_in = d_in, c_out = d_out, kh = kw = 1,
 * shift = b).  Rows are contiguous; @scratch holds n c_pad bf16. */
void mm_linear_bf16_run (const MmConvBf16 *c, float *y, const float *x, int n,
    const float *residual, const MmAct *act, guint16 *scratch);

/* bf16 (nearest even, NaN kept quiet) of f, and back */
guint16 mm_bf16_from_float (float f);
float mm_bf16_to_float (guint16 h);

G_END_DECLS
#endif
