/* libmm: log-mel spectrogram.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * out (n_mels, n_frames) = ln (F^T |STFT (x)|^2 + log_offset), the same
 * numbers as
 *   torch.stft (x, n_fft, hop_length, win_length,
 *               window=torch.hann_window (win_length), center=False)
 *   torchaudio.functional.melscale_fbanks (n_fft // 2 + 1, f_min, f_max,
 *               n_mels, sample_rate, norm=None, mel_scale="htk")
 * (periodic Hann window of win_length, centred in n_fft with zeros, as
 * torch.stft pads it; no centring of the signal).
 *
 * Fast path (the default): frames are processed MM_LOGMEL_LANES at a time
 * with every value a vector holding the same bin of that many consecutive
 * frames: a mixed-radix (2, 3, 4, 5) Stockham FFT of n_fft / 2 complex
 * points (the real FFT's half-length transform), the real-FFT split and the
 * power spectrum, the mel projection over only the bins each triangular
 * filter touches, and a vectorised ln.  Measured at n_fft 400, 201 frames:
 * kissfft one frame at a time took ~0.23 ms, the dense mel GEMM (201 x 64
 * per frame though each filter touches a few bins) ~0.1 ms, logf ~0.02 ms.
 * Sizes whose n_fft / 2 has a prime factor above 5 take the power spectrum
 * from the DFT-as-GEMM below, then the same mel and ln.
 *
 * Reference path (mm_ops_set_reference (TRUE), for tests): kissfft's real
 * FFT (Debian's libkissfft-dev, BSD-3; FFTW would make libmm GPL), or for
 * other sizes a real DFT as one matrix product per block of frames: frames
 * (b, win) x basis (win, 2 n_freq) with basis[n][k] = w[n] cos (2 pi k n /
 * N) and -w[n] sin (...), by mm_sgemm; then the dense mel projection by
 * mm_sgemm and logf.  Frames are processed in blocks of at most
 * MM_LOGMEL_BLOCK so the scratch does not grow with max_samples.
 *
 * Threads: an MmLogMel holds scratch, so one per thread.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <kiss_fftr.h>

#include "clones.h"
#include "ops.h"
#include "preprocess.h"

#define MM_LOGMEL_BLOCK 256
#define MM_LOGMEL_LANES 16      /* frames per vector (one AVX-512 register) */
#define MM_LOGMEL_MAX_STAGES 16 /* radix-2..5 stages of n_fft / 2 <= 2048 */

/* The fast path's loops are vector code; like ops.c, x86-64 builds carry
 * AVX-512 and AVX2 clones of them that the loader picks for the CPU. */
#define LM_CLONES MM_TARGET_CLONES
#if defined(__GNUC__)
#define LM_INLINE static inline __attribute__ ((always_inline))
#else
#define LM_INLINE static inline
#endif

struct _MmLogMel
{
  MmMelParams p;
  guint n_freq;  /* n_fft / 2 + 1 */
  guint win_off; /* zeros before the window inside n_fft */
  gsize max_samples;
  guint block; /* frames per block, reference path */
  /* reference path */
  kiss_fftr_cfg fft;     /* real FFT of n_fft, or NULL: DFT by GEMM */
  float *window;         /* (win_length) periodic Hann, FFT path */
  float *fft_in;         /* (n_fft) windowed frame, zero padded, FFT path */
  kiss_fft_cpx *fft_out; /* (n_freq), FFT path */
  float *basis;          /* (win_length, 2 n_freq): windowed cos | -sin, GEMM path */
  float *fbank_t;        /* (n_mels, n_freq): melscale_fbanks transposed */
  float *frames;         /* (block, win_length) scratch */
  float *spec;           /* (block, 2 n_freq) scratch */
  float *power;          /* (block, n_freq) scratch */
  /* fast path; n_stages 0: the power spectrum comes from power_gemm */
  guint n_stages;
  guint radix[MM_LOGMEL_MAX_STAGES];
  float *twiddle;  /* per stage with ns points done: (ns, radix - 1) complex */
  float *split;    /* (n_freq, 2): cos, -sin (2 pi k / n_fft), the real-FFT split */
  float *win_full; /* (n_fft) the window where it sits in n_fft, zeros around */
  gint32 *win_in;  /* (n_fft) -1 inside the window, 0 around: samples around it
                    * are not read at all (0 * NaN would be NaN), as on the
                    * reference path */
  float *lanes;    /* 4 (n_fft / 2, LANES): re, im of two Stockham buffers; aligned */
  float *lane_pow; /* (n_freq, LANES) aligned */
  guint *mel_k0;   /* (n_mels) first bin of filter j */
  guint *mel_len;  /* (n_mels) bins it touches */
  gsize *mel_off;  /* (n_mels) its first weight in mel_w */
  float *mel_w;    /* the filters' non-zero weights, times power_scale */
};

static double
hz_to_mel_htk (double f)
{
  return 2595.0 * log10 (1.0 + f / 700.0);
}

static double
mel_to_hz_htk (double m)
{
  return 700.0 * (pow (10.0, m / 2595.0) - 1.0);
}

/* fb_t (n_mels, n_freq): torchaudio's _create_triangular_filterbank with
 * all_freqs = linspace (0, sample_rate // 2, n_freq) and HTK mel points. */
static void
mel_filterbank (float *fb_t, const MmMelParams *p, guint n_freq)
{
  guint n_pts = p->n_mels + 2;
  double m_min = hz_to_mel_htk (p->f_min), m_max = hz_to_mel_htk (p->f_max);
  double f_pts[MM_LOGMEL_MAX_MELS + 2];
  for (guint i = 0; i < n_pts; i++)
    f_pts[i] = mel_to_hz_htk (m_min + (m_max - m_min) * i / (n_pts - 1));
  double nyquist = (double)(p->sample_rate / 2); /* integer division, as torchaudio */
  for (guint j = 0; j < p->n_mels; j++) {
    double lo = f_pts[j], mid = f_pts[j + 1], hi = f_pts[j + 2];
    for (guint k = 0; k < n_freq; k++) {
      double f = nyquist * k / (n_freq - 1);
      double down = (f - lo) / (mid - lo), up = (hi - f) / (hi - mid);
      double w = MIN (down, up);
      fb_t[(gsize)j * n_freq + k] = (float)MAX (w, 0.0);
    }
  }
}

/* basis (win, 2 n_freq): periodic Hann w[n] = 0.5 - 0.5 cos (2 pi n / win)
 * times cos / -sin (2 pi k (n + win_off) / n_fft). */
static void
dft_basis (float *basis, guint n_fft, guint win, guint win_off, guint n_freq)
{
  for (guint n = 0; n < win; n++) {
    double w = 0.5 - 0.5 * cos (2.0 * G_PI * n / win);
    guint64 pos = n + win_off;
    for (guint k = 0; k < n_freq; k++) {
      double angle = 2.0 * G_PI * (double)((k * pos) % n_fft) / n_fft;
      basis[(gsize)n * 2 * n_freq + k] = (float)(w * cos (angle));
      basis[(gsize)n * 2 * n_freq + n_freq + k] = (float)(-w * sin (angle));
    }
  }
}

/* kissfft's real FFT of n runs a complex FFT of n / 2; radices 2, 3, 4 and 5
 * use no scratch, larger prime factors allocate on every call. */
static gboolean
fft_size_ok (guint n_fft)
{
  if (n_fft % 2)
    return FALSE;
  guint m = n_fft / 2;
  static const guint radices[] = { 2, 3, 5 };
  for (guint i = 0; i < G_N_ELEMENTS (radices); i++)
    while (m % radices[i] == 0)
      m /= radices[i];
  return m == 1;
}

static gboolean
check_params (const MmMelParams *p, gsize max_samples, GError **error)
{
  const char *problem = NULL;
  if (p->sample_rate == 0 || p->sample_rate > 1000000)
    problem = "sample_rate must be in 1..1000000";
  else if (p->n_fft < 4 || p->n_fft > MM_LOGMEL_MAX_FFT)
    problem = "n_fft must be in 4.." G_STRINGIFY (MM_LOGMEL_MAX_FFT);
  else if (p->win_length == 0 || p->win_length > p->n_fft)
    problem = "win_length must be in 1..n_fft";
  else if (p->hop_length == 0 || p->hop_length > (1u << 24))
    problem = "hop_length must be in 1..16777216";
  else if (p->n_mels == 0 || p->n_mels > MM_LOGMEL_MAX_MELS)
    problem = "n_mels must be in 1.." G_STRINGIFY (MM_LOGMEL_MAX_MELS);
  else if (!isfinite (p->f_min) || !isfinite (p->f_max) || p->f_min < 0.0 || p->f_max <= p->f_min)
    problem = "need 0 <= f_min < f_max";
  else if (!isfinite (p->log_offset) || p->log_offset <= 0.0)
    problem = "log_offset must be > 0";
  else if (max_samples < p->n_fft)
    problem = "max_samples is shorter than one frame (n_fft)";
  else if ((max_samples - p->n_fft) / p->hop_length + 1 > G_MAXINT / MM_LOGMEL_MAX_MELS)
    problem = "max_samples is too large";
  if (problem) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "log-mel: %s (sample_rate %u, n_fft %u, win_length %u, hop_length %u, n_mels %u, "
        "f_min %g, f_max %g, log_offset %g, max_samples %" G_GSIZE_FORMAT ")",
        problem, p->sample_rate, p->n_fft, p->win_length, p->hop_length, p->n_mels, p->f_min,
        p->f_max, p->log_offset, max_samples);
    return FALSE;
  }
  return TRUE;
}

/* ---- fast path: set-up ------------------------------------------------- */

/* Stockham stages for a complex FFT of m points: radix 4 while it divides,
 * then 2, 3, 5.  FALSE when m has another prime factor. */
static gboolean
plan_stages (MmLogMel *lm, guint m)
{
  static const guint radices[] = { 4, 2, 3, 5 };
  lm->n_stages = 0;
  for (guint i = 0; i < G_N_ELEMENTS (radices); i++)
    while (m % radices[i] == 0 && lm->n_stages < MM_LOGMEL_MAX_STAGES) {
      lm->radix[lm->n_stages++] = radices[i];
      m /= radices[i];
    }
  if (m != 1)
    lm->n_stages = 0;
  return lm->n_stages > 0;
}

/* twiddle: stage s combines radix[s] transforms of ns points (the product
 * of the earlier radices); for k < ns, r in 1..radix-1:
 * exp (-2 pi i r k / (ns radix)) */
static void
fill_twiddles (MmLogMel *lm)
{
  float *tw = lm->twiddle;
  guint ns = 1;
  for (guint s = 0; s < lm->n_stages; s++) {
    guint r_n = lm->radix[s];
    for (guint k = 0; k < ns; k++)
      for (guint r = 1; r < r_n; r++) {
        double a = -2.0 * G_PI * (double)(r * k) / (double)(ns * r_n);
        *tw++ = (float)cos (a);
        *tw++ = (float)sin (a);
      }
    ns *= r_n;
  }
}

static gsize
twiddle_floats (const MmLogMel *lm)
{
  gsize n = 0, ns = 1;
  for (guint s = 0; s < lm->n_stages; s++) {
    n += 2 * ns * (lm->radix[s] - 1);
    ns *= lm->radix[s];
  }
  return n;
}

/* The non-zero run of every filter of fbank_t (n_mels, nf), weights times
 * @scale (the fast FFT's power comes out 4x too large). */
static gboolean
sparse_filters (MmLogMel *lm, float scale)
{
  guint n_mels = lm->p.n_mels, nf = lm->n_freq;
  gsize total = 0;
  lm->mel_k0 = g_try_new (guint, n_mels);
  lm->mel_len = g_try_new (guint, n_mels);
  lm->mel_off = g_try_new (gsize, n_mels);
  if (!lm->mel_k0 || !lm->mel_len || !lm->mel_off)
    return FALSE;
  for (guint j = 0; j < n_mels; j++) {
    const float *f = lm->fbank_t + (gsize)j * nf;
    guint k0 = 0, k1 = nf;
    while (k0 < nf && f[k0] == 0.0f)
      k0++;
    while (k1 > k0 && f[k1 - 1] == 0.0f)
      k1--;
    lm->mel_k0[j] = k0;
    lm->mel_len[j] = k1 - k0;
    lm->mel_off[j] = total;
    total += k1 - k0;
  }
  lm->mel_w = g_try_new (float, MAX (total, 1));
  if (!lm->mel_w)
    return FALSE;
  for (guint j = 0; j < n_mels; j++)
    for (guint i = 0; i < lm->mel_len[j]; i++)
      lm->mel_w[lm->mel_off[j] + i] = lm->fbank_t[(gsize)j * nf + lm->mel_k0[j] + i] * scale;
  return TRUE;
}

/* Tables and lane scratch of the fast path; FALSE when out of memory. */
static gboolean
fast_init (MmLogMel *lm)
{
  const MmMelParams *p = &lm->p;
  guint m = p->n_fft / 2, nf = lm->n_freq;
  gsize lane_bytes = MM_LOGMEL_LANES * sizeof (float);

  lm->lane_pow = g_aligned_alloc0 (nf, lane_bytes, 64);
  if (!lm->lane_pow)
    return FALSE;
  if (!fft_size_ok (p->n_fft) || !plan_stages (lm, m))
    return sparse_filters (lm, 1.0f);

  lm->twiddle = g_try_new (float, MAX (twiddle_floats (lm), 1));
  lm->split = g_try_new (float, 2 * (gsize)nf);
  lm->win_full = g_try_new0 (float, p->n_fft);
  lm->win_in = g_try_new0 (gint32, p->n_fft);
  lm->lanes = g_aligned_alloc0 (4 * (gsize)m, lane_bytes, 64);
  if (!lm->twiddle || !lm->split || !lm->win_full || !lm->win_in || !lm->lanes)
    return FALSE;
  fill_twiddles (lm);
  for (guint k = 0; k < nf; k++) {
    double a = 2.0 * G_PI * k / p->n_fft;
    lm->split[2 * k] = (float)cos (a);
    lm->split[2 * k + 1] = (float)-sin (a);
  }
  for (guint n = 0; n < p->win_length; n++) {
    lm->win_full[lm->win_off + n] = (float)(0.5 - 0.5 * cos (2.0 * G_PI * n / p->win_length));
    lm->win_in[lm->win_off + n] = -1;
  }
  return sparse_filters (lm, 0.25f);
}

void
mm_logmel_free (MmLogMel *lm)
{
  if (!lm)
    return;
  if (lm->fft)
    kiss_fftr_free (lm->fft);
  g_free (lm->window);
  g_free (lm->fft_in);
  g_free (lm->fft_out);
  g_free (lm->basis);
  g_free (lm->fbank_t);
  g_free (lm->frames);
  g_free (lm->spec);
  g_free (lm->power);
  g_free (lm->twiddle);
  g_free (lm->split);
  g_free (lm->win_full);
  g_free (lm->win_in);
  g_aligned_free (lm->lanes);
  g_aligned_free (lm->lane_pow);
  g_free (lm->mel_k0);
  g_free (lm->mel_len);
  g_free (lm->mel_off);
  g_free (lm->mel_w);
  g_free (lm);
}

MmLogMel *
mm_logmel_new (const MmMelParams *p, gsize max_samples, GError **error)
{
  if (!p) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT, "log-mel: no parameters");
    return NULL;
  }
  if (!check_params (p, max_samples, error))
    return NULL;
  mm_blas_init ();

  MmLogMel *lm = g_new0 (MmLogMel, 1);
  lm->p = *p;
  lm->n_freq = p->n_fft / 2 + 1;
  lm->win_off = (p->n_fft - p->win_length) / 2;
  lm->max_samples = max_samples;
  gsize max_frames = (max_samples - p->n_fft) / p->hop_length + 1;
  lm->block = (guint)MIN (max_frames, MM_LOGMEL_BLOCK);

  gsize nf = lm->n_freq;
  gboolean use_fft = fft_size_ok (p->n_fft);
  if (use_fft) {
    lm->fft = kiss_fftr_alloc ((int)p->n_fft, 0, NULL, NULL);
    lm->window = g_try_new (float, p->win_length);
    lm->fft_in = g_try_new0 (float, p->n_fft);
    lm->fft_out = g_try_new (kiss_fft_cpx, nf);
  } else {
    lm->basis = g_try_new (float, (gsize)p->win_length * 2 * nf);
    lm->frames = g_try_new (float, (gsize)lm->block * p->win_length);
    lm->spec = g_try_new (float, (gsize)lm->block * 2 * nf);
  }
  lm->fbank_t = g_try_new (float, (gsize)p->n_mels *nf);
  lm->power = g_try_new (float, (gsize)lm->block *nf);
  gboolean have_dft = use_fft ? (lm->fft && lm->window && lm->fft_in && lm->fft_out)
                              : (lm->basis && lm->frames && lm->spec);
  if (!have_dft || !lm->fbank_t || !lm->power) {
    gsize floats = (gsize)p->win_length * 2 * nf + (gsize)p->n_mels * nf
        + (gsize)lm->block * (p->win_length + 3 * nf);
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "log-mel: cannot allocate %" G_GSIZE_FORMAT " MB of scratch for n_fft %u, n_mels %u",
        (floats * sizeof (float)) >> 20, p->n_fft, p->n_mels);
    mm_logmel_free (lm);
    return NULL;
  }
  if (use_fft) {
    for (guint n = 0; n < p->win_length; n++)
      lm->window[n] = (float)(0.5 - 0.5 * cos (2.0 * G_PI * n / p->win_length));
  } else {
    dft_basis (lm->basis, p->n_fft, p->win_length, lm->win_off, lm->n_freq);
  }
  mel_filterbank (lm->fbank_t, p, lm->n_freq);
  if (!fast_init (lm)) {
    g_set_error (error, MM_ERROR, MM_ERROR_FORMAT,
        "log-mel: cannot allocate the FFT tables and scratch for n_fft %u, n_mels %u", p->n_fft,
        p->n_mels);
    mm_logmel_free (lm);
    return NULL;
  }
  return lm;
}

guint
mm_logmel_n_frames (const MmLogMel *lm, gsize n_samples)
{
  if (!lm || n_samples < lm->p.n_fft)
    return 0;
  return (guint)((n_samples - lm->p.n_fft) / lm->p.hop_length + 1);
}

/* power (b, nf) = |FFT (window * frame)|^2 for frames t0 .. t0 + b */
static void
power_fft (MmLogMel *lm, const float *samples, guint t0, guint b)
{
  guint win = lm->p.win_length, nf = lm->n_freq, hop = lm->p.hop_length;
  float *in = lm->fft_in + lm->win_off; /* the rest of fft_in stays zero */
  for (guint i = 0; i < b; i++) {
    const float *x = samples + (gsize)(t0 + i) * hop + lm->win_off;
    for (guint n = 0; n < win; n++)
      in[n] = x[n] * lm->window[n];
    kiss_fftr (lm->fft, lm->fft_in, lm->fft_out);
    float *pw = lm->power + (gsize)i * nf;
    for (guint k = 0; k < nf; k++)
      pw[k] = lm->fft_out[k].r * lm->fft_out[k].r + lm->fft_out[k].i * lm->fft_out[k].i;
  }
}

/* the same by one GEMM against the windowed DFT basis (any n_fft) */
static void
power_gemm (MmLogMel *lm, const float *samples, guint t0, guint b)
{
  guint win = lm->p.win_length, nf = lm->n_freq, hop = lm->p.hop_length;
  /* frames (b, win): the non-zero part of each windowed frame */
  for (guint i = 0; i < b; i++)
    memcpy (lm->frames + (gsize)i * win, samples + (gsize)(t0 + i) * hop + lm->win_off,
        win * sizeof (float));
  /* spec (b, 2 nf) = frames (b, win) basis (win, 2 nf) */
  mm_sgemm (FALSE, FALSE, b, 2 * nf, win, 1.0f, lm->frames, win, lm->basis, 2 * nf, 0.0f, lm->spec,
      2 * nf);
  /* power (b, nf) = re^2 + im^2 */
  for (guint i = 0; i < b; i++) {
    const float *re = lm->spec + (gsize)i * 2 * nf, *im = re + nf;
    float *pw = lm->power + (gsize)i * nf;
    for (guint k = 0; k < nf; k++)
      pw[k] = re[k] * re[k] + im[k] * im[k];
  }
}

/* the reference path: kissfft or DFT-by-GEMM, dense mel GEMM, logf */
static void
compute_reference (MmLogMel *lm, float *out, const float *samples, guint n_frames)
{
  guint nf = lm->n_freq;
  for (guint t0 = 0; t0 < n_frames; t0 += lm->block) {
    guint b = MIN (lm->block, n_frames - t0);
    if (lm->fft)
      power_fft (lm, samples, t0, b);
    else
      power_gemm (lm, samples, t0, b);
    /* out[:, t0:t0+b] (n_mels, b) = fbank_t (n_mels, nf) power^T (nf, b) */
    mm_sgemm (FALSE, TRUE, lm->p.n_mels, b, nf, 1.0f, lm->fbank_t, nf, lm->power, nf, 0.0f,
        out + t0, n_frames);
  }

  float offset = (float)lm->p.log_offset;
  gsize n_out = (gsize)lm->p.n_mels * n_frames;
  for (gsize i = 0; i < n_out; i++)
    out[i] = logf (out[i] + offset);
}

/* ---- fast path: run ---------------------------------------------------- */

typedef float LaneVec __attribute__ ((vector_size (MM_LOGMEL_LANES * sizeof (float))));
typedef gint32 LaneInt __attribute__ ((vector_size (MM_LOGMEL_LANES * sizeof (float))));

#define LV(ptr, i) (*(LaneVec *)((ptr) + (gsize)(i)*MM_LOGMEL_LANES))

/* (re, im) *= (c, s) */
LM_INLINE void
cmul (LaneVec *re, LaneVec *im, float c, float s)
{
  LaneVec r = *re * c - *im * s;
  *im = *re * s + *im * c;
  *re = r;
}

/* In-place forward DFT of R points, R in 2, 3, 4, 5 (e^-2 pi i / R). */
LM_INLINE void
butterfly (LaneVec *re, LaneVec *im, guint r_n)
{
  if (r_n == 2) {
    LaneVec tr = re[0] - re[1], ti = im[0] - im[1];
    re[0] += re[1];
    im[0] += im[1];
    re[1] = tr;
    im[1] = ti;
  } else if (r_n == 4) {
    LaneVec ar = re[0] + re[2], ai = im[0] + im[2], br = re[0] - re[2], bi = im[0] - im[2];
    LaneVec cr = re[1] + re[3], ci = im[1] + im[3], dr = re[1] - re[3], di = im[1] - im[3];
    re[0] = ar + cr;
    im[0] = ai + ci;
    re[2] = ar - cr;
    im[2] = ai - ci;
    /* y1 = b - i d, y3 = b + i d */
    re[1] = br + di;
    im[1] = bi - dr;
    re[3] = br - di;
    im[3] = bi + dr;
  } else if (r_n == 3) {
    const float s = 0.86602540378443864676f; /* sin (2 pi / 3) */
    LaneVec tr = re[1] + re[2], ti = im[1] + im[2], dr = re[1] - re[2], di = im[1] - im[2];
    LaneVec mr = re[0] - 0.5f * tr, mi = im[0] - 0.5f * ti;
    re[0] += tr;
    im[0] += ti;
    /* y1 = m - i s d, y2 = m + i s d */
    re[1] = mr + s * di;
    im[1] = mi - s * dr;
    re[2] = mr - s * di;
    im[2] = mi + s * dr;
  } else { /* 5 */
    const float c1 = 0.30901699437494742410f, c2 = -0.80901699437494742410f;
    const float s1 = 0.95105651629515357212f, s2 = 0.58778525229247312917f;
    LaneVec a1r = re[1] + re[4], a1i = im[1] + im[4], b1r = re[1] - re[4], b1i = im[1] - im[4];
    LaneVec a2r = re[2] + re[3], a2i = im[2] + im[3], b2r = re[2] - re[3], b2i = im[2] - im[3];
    LaneVec m1r = re[0] + c1 * a1r + c2 * a2r, m1i = im[0] + c1 * a1i + c2 * a2i;
    LaneVec m2r = re[0] + c2 * a1r + c1 * a2r, m2i = im[0] + c2 * a1i + c1 * a2i;
    LaneVec n1r = s1 * b1r + s2 * b2r, n1i = s1 * b1i + s2 * b2i;
    LaneVec n2r = s2 * b1r - s1 * b2r, n2i = s2 * b1i - s1 * b2i;
    re[0] += a1r + a2r;
    im[0] += a1i + a2i;
    /* y1 = m1 - i n1, y4 = m1 + i n1, y2 = m2 - i n2, y3 = m2 + i n2 */
    re[1] = m1r + n1i;
    im[1] = m1i - n1r;
    re[4] = m1r - n1i;
    im[4] = m1i + n1r;
    re[2] = m2r + n2i;
    im[2] = m2i - n2r;
    re[3] = m2r - n2i;
    im[3] = m2i + n2r;
  }
}

/* One Stockham stage of an m-point FFT: the (m / ns / R) transforms of ns
 * points in (sr, si) become transforms of R ns points in (dr, di). */
LM_INLINE void
stockham_stage (float *dr, float *di, const float *sr, const float *si, guint m, guint ns,
    const float *tw, const guint r_n)
{
  guint stride = m / r_n;
  for (guint j0 = 0; j0 < stride; j0 += ns)
    for (guint k = 0; k < ns; k++) {
      LaneVec vr[5], vi[5];
#pragma GCC unroll 5
      for (guint r = 0; r < r_n; r++) {
        vr[r] = LV (sr, j0 + k + r * stride);
        vi[r] = LV (si, j0 + k + r * stride);
      }
      if (ns > 1)
#pragma GCC unroll 5
        for (guint r = 1; r < r_n; r++)
          cmul (
              &vr[r], &vi[r], tw[2 * (k * (r_n - 1) + r - 1)], tw[2 * (k * (r_n - 1) + r - 1) + 1]);
      butterfly (vr, vi, r_n);
      guint o = j0 * r_n + k;
#pragma GCC unroll 5
      for (guint r = 0; r < r_n; r++) {
        LV (dr, o + r * ns) = vr[r];
        LV (di, o + r * ns) = vi[r];
      }
    }
}

/* rows (16 vectors of 16 floats) transposed in place: four rounds, round h
 * swapping bit h of the row and the column index (the off-diagonal h x h
 * blocks); one two-source shuffle per row and round */
#define T16_LO_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define T16_HI_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define T16_LO_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define T16_HI_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define T16_LO_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define T16_HI_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define T16_LO_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define T16_HI_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define T16_ROUND(h)                                                                               \
  _Pragma ("GCC unroll 16") for (guint i = 0; i < 16; i++) if (!(i & (h)))                         \
  {                                                                                                \
    LaneVec a = rows[i], b = rows[i + (h)];                                                        \
    rows[i] = __builtin_shufflevector (a, b, T16_LO_##h);                                          \
    rows[i + (h)] = __builtin_shufflevector (a, b, T16_HI_##h);                                    \
  }

LM_INLINE void
transpose16 (LaneVec *rows)
{
  T16_ROUND (1);
  T16_ROUND (2);
  T16_ROUND (4);
  T16_ROUND (8);
}

/* lane_pow (nf, LANES) = 4 |FFT (window * frame)|^2 of frames t0 .. t0 + b
 * (lanes past b: zero frames), via z[n] = x[2n] + i x[2n + 1]. */
static LM_CLONES void
fft_power_lanes (MmLogMel *lm, const float *samples, guint t0, guint b)
{
  const guint L = MM_LOGMEL_LANES;
  guint m = lm->p.n_fft / 2, nf = lm->n_freq, hop = lm->p.hop_length;
  float *buf[2][2] = { { lm->lanes, lm->lanes + (gsize)m * L },
    { lm->lanes + 2 * (gsize)m * L, lm->lanes + 3 * (gsize)m * L } };
  const float *w = lm->win_full;

  /* pack: z (m, LANES), 16 samples of 16 frames at a time by a transpose */
  guint n16 = lm->p.n_fft / 16 * 16;
  for (guint m0 = 0; m0 < n16; m0 += 16) {
    LaneVec rows[MM_LOGMEL_LANES], wv;
    LaneInt in;
    memcpy (&wv, w + m0, sizeof wv);
    memcpy (&in, lm->win_in + m0, sizeof in);
    for (guint l = 0; l < L; l++) {
      if (l < b) {
        memcpy (&rows[l], samples + (gsize)(t0 + l) * hop + m0, sizeof rows[l]);
        rows[l] = (LaneVec)((LaneInt)(rows[l] * wv) & in);
      } else {
        rows[l] = (LaneVec){ 0 };
      }
    }
    transpose16 (rows);
    for (guint q = 0; q < 16; q += 2) {
      LV (buf[0][0], m0 / 2 + q / 2) = rows[q];
      LV (buf[0][1], m0 / 2 + q / 2) = rows[q + 1];
    }
  }
  for (guint l = 0; l < L; l++) { /* the last n_fft % 16 samples */
    float *zr = buf[0][0] + l, *zi = buf[0][1] + l;
    const float *x = samples + (gsize)(t0 + l) * hop;
    for (guint n = n16 / 2; n < m; n++) {
      zr[(gsize)n * L] = l < b && lm->win_in[2 * n] ? x[2 * n] * w[2 * n] : 0.0f;
      zi[(gsize)n * L] = l < b && lm->win_in[2 * n + 1] ? x[2 * n + 1] * w[2 * n + 1] : 0.0f;
    }
  }

  const float *tw = lm->twiddle;
  guint ns = 1, cur = 0;
  for (guint s = 0; s < lm->n_stages; s++) {
    guint r_n = lm->radix[s];
    float *dr = buf[!cur][0], *di = buf[!cur][1];
    const float *sr = buf[cur][0], *si = buf[cur][1];
    switch (r_n) {
      case 2:
        stockham_stage (dr, di, sr, si, m, ns, tw, 2);
        break;
      case 3:
        stockham_stage (dr, di, sr, si, m, ns, tw, 3);
        break;
      case 4:
        stockham_stage (dr, di, sr, si, m, ns, tw, 4);
        break;
      default:
        stockham_stage (dr, di, sr, si, m, ns, tw, 5);
        break;
    }
    tw += 2 * ns * (r_n - 1);
    ns *= r_n;
    cur = !cur;
  }

  /* split: 2 X[k] = (Z[k] + conj Z[m-k]) + e^(-2 pi i k / n_fft) (Z[k] - conj Z[m-k]) / i */
  const float *zr = buf[cur][0], *zi = buf[cur][1];
  for (guint k = 0; k < nf; k++) {
    guint a = k % m, c = (m - k) % m;
    LaneVec ar = LV (zr, a), ai = LV (zi, a), br = LV (zr, c), bi = -LV (zi, c);
    LaneVec er = ar + br, ei = ai + bi, dr = ar - br, di = ai - bi;
    float co = lm->split[2 * k], si = lm->split[2 * k + 1];
    LaneVec xr = er + co * di + si * dr, xi = ei - co * dr + si * di;
    LV (lm->lane_pow, k) = xr * xr + xi * xi;
  }
}

/* ln x for normal positive x (Cephes logf: x = 2^e m, m in [sqrt 1/2,
 * sqrt 2), ln (m) by a degree-9 polynomial in m - 1; ~1 ulp) */
LM_INLINE void
lane_log (LaneVec *out, LaneVec x)
{
  LaneInt xi = (LaneInt)x;
  LaneInt e = ((xi >> 23) & 0xff) - 127;
  LaneVec mant = (LaneVec)((xi & 0x007fffff) | 0x3f800000); /* [1, 2) */
  LaneInt big = mant > 1.41421356237309504880f;             /* -1 where true */
  LaneVec half = mant * 0.5f;
  mant = (LaneVec)(((LaneInt)half & big) | ((LaneInt)mant & ~big));
  e -= big;
  LaneVec f = mant - 1.0f, z = f * f;
  LaneVec y = 7.0376836292e-2f * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  LaneVec fe = __builtin_convertvector(e, LaneVec);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  *out = f + y + 0.693359375f * fe;
}

/* out[j, t0 + l] for the sums outside lane_log's range (subnormal, infinite
 * or NaN): libm's logf */
static void
mel_log_fixup (const MmLogMel *lm, float *out, guint n_frames, guint t0, guint b)
{
  const guint L = MM_LOGMEL_LANES;
  float offset = (float)lm->p.log_offset;
  for (guint j = 0; j < lm->p.n_mels; j++) {
    const float *wj = lm->mel_w + lm->mel_off[j];
    const float *pw = lm->lane_pow + (gsize)lm->mel_k0[j] * L;
    for (guint l = 0; l < b; l++) {
      float acc = 0.0f;
      for (guint i = 0; i < lm->mel_len[j]; i++)
        acc += wj[i] * pw[(gsize)i * L + l];
      acc += offset;
      if (!(acc >= FLT_MIN && acc <= FLT_MAX))
        out[(gsize)j * n_frames + t0 + l] = logf (acc);
    }
  }
}

/* out[j, t0 + l] (n_mels, n_frames) = ln (mel_w lane_pow + offset), l < b */
static LM_CLONES void
mel_log_lanes (const MmLogMel *lm, float *out, guint n_frames, guint t0, guint b)
{
  const guint L = MM_LOGMEL_LANES;
  float offset = (float)lm->p.log_offset;
  LaneInt bad = { 0 };
  for (guint j = 0; j < lm->p.n_mels; j++) {
    const float *wj = lm->mel_w + lm->mel_off[j];
    const float *pw = lm->lane_pow + (gsize)lm->mel_k0[j] * L;
    LaneVec acc = { 0 };
    for (guint i = 0; i < lm->mel_len[j]; i++)
      acc += wj[i] * LV (pw, i);
    acc += offset;
    LaneVec y;
    lane_log (&y, acc);
    bad |= ~((acc >= FLT_MIN) & (acc <= FLT_MAX));
    float *o = out + (gsize)j * n_frames + t0;
    if (b == L)
      memcpy (o, &y, sizeof y);
    else
      for (guint l = 0; l < b; l++)
        o[l] = y[l];
  }
  gint32 any_bad = 0;
  for (guint l = 0; l < b; l++)
    any_bad |= bad[l];
  if (any_bad)
    mel_log_fixup (lm, out, n_frames, t0, b);
}

/* lane_pow (nf, LANES) from power (b, nf), zeros past b */
static void
power_to_lanes (MmLogMel *lm, guint b)
{
  const guint L = MM_LOGMEL_LANES;
  guint nf = lm->n_freq;
  for (guint k = 0; k < nf; k++)
    for (guint l = 0; l < L; l++)
      lm->lane_pow[(gsize)k * L + l] = l < b ? lm->power[(gsize)l * nf + k] : 0.0f;
}

guint
mm_logmel_compute (MmLogMel *lm, float *out, const float *samples, gsize n_samples, GError **error)
{
  if (!lm || !out || !samples) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "log-mel: NULL %s",
        !lm        ? "context"
            : !out ? "output"
                   : "samples");
    return 0;
  }
  if (n_samples < lm->p.n_fft || n_samples > lm->max_samples) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
        "log-mel: %" G_GSIZE_FORMAT " samples, need %u..%" G_GSIZE_FORMAT, n_samples, lm->p.n_fft,
        lm->max_samples);
    return 0;
  }
  guint n_frames = mm_logmel_n_frames (lm, n_samples);
  if (mm_ops_get_reference ()) {
    compute_reference (lm, out, samples, n_frames);
    return n_frames;
  }
  for (guint t0 = 0; t0 < n_frames; t0 += MM_LOGMEL_LANES) {
    guint b = MIN (MM_LOGMEL_LANES, n_frames - t0);
    if (lm->n_stages) {
      fft_power_lanes (lm, samples, t0, b);
    } else {
      power_gemm (lm, samples, t0, b);
      power_to_lanes (lm, b);
    }
    mel_log_lanes (lm, out, n_frames, t0, b);
  }
  return n_frames;
}
