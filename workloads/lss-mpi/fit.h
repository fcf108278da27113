/* fit.h - per-pixel linear least-squares fit of database spectra:
 *   y(b) ~ a * s_e(b) + sum_k c_k P_k(t_b),  t_b in [-1,1], P_k Legendre,
 * for every entry e of a database; keep the entry with least residual. */
#ifndef LSS_FIT_H
#define LSS_FIT_H

#include "common.h"

#define FIT_MAX_POLY 4
#define FIT_MAX_COEF (FIT_MAX_POLY + 2)
#define FIT_TRI(n) ((n) * ((n) + 1) / 2)

/* result for one pixel; sent as raw bytes between ranks (same binary) */
typedef struct {
    int32_t db;        /* 1-based database index, 0 = no acceptable fit */
    int32_t entry;     /* entry index within that database, -1 = none */
    double residual;   /* residual sum of squares */
    float amplitude;   /* fitted scale of the model spectrum */
    float d, m;        /* parameters of the best entry */
    int32_t pad;
} px_result;

typedef struct {
    const lss_db *db;
    unsigned ncoef;  /* 1 + (poly + 1) */
    unsigned poly;
    double *basis;   /* [poly+1][n_bins] Legendre polynomials */
    double *chol;    /* [n_entries][FIT_TRI(ncoef)] Cholesky factor of X'X */
    unsigned char *usable; /* [n_entries] X'X positive definite */
} fit_db;

typedef struct {
    float *yt;      /* [n_bins][block] pixel block, bins-major */
    double *acc;    /* [block] */
    double *pr;     /* [block][poly+1] P_k . y */
    double *yy;     /* [block] y . y */
    uint32_t cap, n_bins;
    unsigned poly;
} fit_scratch;

/* Precompute basis and per-entry normal-equation factors. -1 + reason on error. */
int fit_prepare(fit_db *f, const lss_db *db, unsigned poly, char *why, size_t wl);
void fit_free(fit_db *f);

int fit_scratch_init(fit_scratch *s, uint32_t cap, uint32_t n_bins, unsigned poly);
void fit_scratch_free(fit_scratch *s);

/* Fit pixels [pix0, pix0+npix) of img against every entry of f; out[i] gets
 * the best entry of this database for pixel pix0+i.  npix <= s->cap. */
void fit_block(const fit_db *f, const lss_image *img, uint32_t pix0, uint32_t npix,
               fit_scratch *s, px_result *out);

/* true if candidate c is better than current best b (ties: lower db, entry) */
int fit_better(const px_result *c, const px_result *b);

#endif
