/* results.h - image-level parameters computed by the master */
#ifndef LSS_RESULTS_H
#define LSS_RESULTS_H

#include "fit.h"

#define RES_HIST_BINS 18 /* 1-um bins over [LSS_D_MIN, LSS_D_MAX) */
#define RES_LARGE_D 8.0  /* um: "enlarged nucleus" threshold */

typedef struct {
    uint32_t pixels, fitted;
    double mean_d, median_d, sd_d, mean_m, median_m, frac_large, mean_rms;
    uint32_t hist[RES_HIST_BINS];
    uint64_t checksum;
} res_summary;

/* FNV-1a-64 over (db, entry, residual, amplitude) of every pixel in order */
uint64_t res_checksum(const px_result *r, uint32_t n);

/* compute the summary; returns -1 on allocation failure */
int res_summarize(const px_result *r, uint32_t n, uint32_t n_bins, res_summary *s);

/* write OUT/image-K.result (text); -1 + reason on failure */
int res_write(const char *out_dir, uint32_t k, uint32_t width, uint32_t height,
              uint32_t n_bins, const px_result *r, const res_summary *s,
              char *why, size_t wl);

#endif
