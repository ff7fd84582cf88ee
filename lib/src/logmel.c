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
 * The STFT uses kissfft's real FFT (Debian's libkissfft-dev, BSD-3; FFTW
 * would make libmm GPL) when n_fft / 2 has no prime factor above 5, which
 * kissfft handles without allocating per call (the models use 400).  Other
 * sizes fall back to a real DFT as one matrix product per block of frames:
 * frames (b, win) x basis (win, 2 n_freq) with basis[n][k] = w[n] cos (2 pi
 * k n / N) and -w[n] sin (...), by mm_sgemm.  The DFT-as-GEMM was the only
 * path at first; measured, it took ~70 % of the audio encoder's time (0.64
 * MFLOP per frame at n_fft 400), which the FFT removes.
 * The mel projection is an mm_sgemm.  Frames are processed in blocks of at
 * most MM_LOGMEL_BLOCK so the scratch does not grow with max_samples.
 *
 * Threads: an MmLogMel holds scratch, so one per thread.
 */
#include <math.h>
#include <string.h>

#include <kiss_fftr.h>

#include "ops.h"
#include "preprocess.h"

#define MM_LOGMEL_BLOCK 256

struct _MmLogMel
{
  MmMelParams p;
  guint n_freq;  /* n_fft / 2 + 1 */
  guint win_off; /* zeros before the window inside n_fft */
  gsize max_samples;
  guint block;           /* frames per block */
  kiss_fftr_cfg fft;     /* real FFT of n_fft, or NULL: DFT by GEMM */
  float *window;         /* (win_length) periodic Hann, FFT path */
  float *fft_in;         /* (n_fft) windowed frame, zero padded, FFT path */
  kiss_fft_cpx *fft_out; /* (n_freq), FFT path */
  float *basis;          /* (win_length, 2 n_freq): windowed cos | -sin, GEMM path */
  float *fbank_t;        /* (n_mels, n_freq): melscale_fbanks transposed */
  float *frames;         /* (block, win_length) scratch */
  float *spec;           /* (block, 2 n_freq) scratch */
  float *power;          /* (block, n_freq) scratch */
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
  return n_frames;
}
