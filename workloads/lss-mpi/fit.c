/* fit.c - least-squares fitting kernel (see fit.h) */
#include "fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cholesky of the symmetric n x n matrix a (full, row-major) into packed
 * lower-triangular l (row i holds l[i][0..i]); diagonal stored as 1/l_ii.
 * Returns 0 if positive definite (with a relative pivot threshold). */
static int cholesky(const double *a, unsigned n, double *l)
{
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j <= i; j++) {
            double sum = a[i * n + j];
            for (unsigned k = 0; k < j; k++)
                sum -= l[FIT_TRI(i) + k] * l[FIT_TRI(j) + k];
            if (i == j) {
                if (!(sum > 1e-10 * fabs(a[i * n + i])) || !(sum > 0.0)) return -1;
                l[FIT_TRI(i) + i] = 1.0 / sqrt(sum);
            } else {
                l[FIT_TRI(i) + j] = sum * l[FIT_TRI(j) + j];
            }
        }
    }
    return 0;
}

int fit_prepare(fit_db *f, const lss_db *db, unsigned poly, char *why, size_t wl)
{
    memset(f, 0, sizeof *f);
    if (poly > FIT_MAX_POLY) {
        snprintf(why, wl, "polynomial degree %u > %u", poly, FIT_MAX_POLY);
        return -1;
    }
    const uint32_t nb = db->n_bins, ne = db->n_entries;
    const unsigned np = poly + 1, nc = poly + 2, tri = FIT_TRI(nc);
    f->db = db;
    f->poly = poly;
    f->ncoef = nc;
    f->basis = malloc(sizeof(double) * np * nb);
    f->chol = malloc(sizeof(double) * tri * (size_t)ne);
    f->usable = malloc(ne);
    if (!f->basis || !f->chol || !f->usable) {
        snprintf(why, wl, "out of memory preparing %u entries", ne);
        fit_free(f);
        return -1;
    }
    for (uint32_t b = 0; b < nb; b++) {
        double t = 2.0 * b / (nb - 1) - 1.0, p0 = 1.0, p1 = t;
        f->basis[b] = 1.0;
        if (np > 1) f->basis[nb + b] = t;
        for (unsigned k = 2; k < np; k++) {
            double p2 = ((2.0 * k - 1.0) * t * p1 - (k - 1.0) * p0) / k;
            f->basis[(size_t)k * nb + b] = p2;
            p0 = p1;
            p1 = p2;
        }
    }
    double a[FIT_MAX_COEF * FIT_MAX_COEF];
    for (unsigned j = 0; j < np; j++)
        for (unsigned k = 0; k < np; k++) {
            double sum = 0.0;
            for (uint32_t b = 0; b < nb; b++)
                sum += f->basis[(size_t)j * nb + b] * f->basis[(size_t)k * nb + b];
            a[(j + 1) * nc + (k + 1)] = sum;
        }
    uint32_t n_usable = 0;
    for (uint32_t e = 0; e < ne; e++) {
        const float *s = db->spectra + (size_t)e * nb;
        double ss = 0.0;
        for (uint32_t b = 0; b < nb; b++) ss += (double)s[b] * s[b];
        a[0] = ss;
        for (unsigned k = 0; k < np; k++) {
            double sum = 0.0;
            for (uint32_t b = 0; b < nb; b++) sum += s[b] * f->basis[(size_t)k * nb + b];
            a[k + 1] = a[(k + 1) * nc] = sum;
        }
        f->usable[e] = cholesky(a, nc, f->chol + (size_t)e * tri) == 0;
        n_usable += f->usable[e];
    }
    if (n_usable == 0) {
        snprintf(why, wl, "no database entry is linearly independent of the background");
        fit_free(f);
        return -1;
    }
    return 0;
}

void fit_free(fit_db *f)
{
    free(f->basis);
    free(f->chol);
    free(f->usable);
    memset(f, 0, sizeof *f);
}

int fit_scratch_init(fit_scratch *s, uint32_t cap, uint32_t n_bins, unsigned poly)
{
    memset(s, 0, sizeof *s);
    s->cap = cap;
    s->n_bins = n_bins;
    s->poly = poly;
    s->yt = malloc(sizeof(float) * cap * (size_t)n_bins);
    s->acc = malloc(sizeof(double) * cap);
    s->pr = malloc(sizeof(double) * cap * (poly + 1));
    s->yy = malloc(sizeof(double) * cap);
    if (!s->yt || !s->acc || !s->pr || !s->yy) {
        fit_scratch_free(s);
        return -1;
    }
    return 0;
}

void fit_scratch_free(fit_scratch *s)
{
    free(s->yt);
    free(s->acc);
    free(s->pr);
    free(s->yy);
    memset(s, 0, sizeof *s);
}

int fit_better(const px_result *c, const px_result *b)
{
    if (c->entry < 0) return 0;
    if (b->entry < 0) return 1;
    if (c->residual != b->residual) return c->residual < b->residual;
    if (c->db != b->db) return c->db < b->db;
    return c->entry < b->entry;
}

void fit_block(const fit_db *f, const lss_image *img, uint32_t pix0, uint32_t npix,
               fit_scratch *s, px_result *out)
{
    const lss_db *db = f->db;
    const uint32_t nb = db->n_bins, ne = db->n_entries;
    const unsigned np = f->poly + 1, nc = f->ncoef, tri = FIT_TRI(nc);
    float *restrict yt = s->yt;
    double *restrict acc = s->acc;

    /* transpose the pixel block (bins-major) and compute the pixel-only terms */
    for (uint32_t p = 0; p < npix; p++) {
        const float *y = img->pixels + (size_t)(pix0 + p) * nb;
        double yy = 0.0;
        for (uint32_t b = 0; b < nb; b++) {
            yt[(size_t)b * npix + p] = y[b];
            yy += (double)y[b] * y[b];
        }
        s->yy[p] = yy;
        for (unsigned k = 0; k < np; k++) {
            double sum = 0.0;
            for (uint32_t b = 0; b < nb; b++) sum += f->basis[(size_t)k * nb + b] * y[b];
            s->pr[p * np + k] = sum;
        }
        out[p].db = 0;
        out[p].entry = -1;
        out[p].residual = INFINITY;
        out[p].amplitude = 0.0f;
        out[p].d = out[p].m = 0.0f;
        out[p].pad = 0;
    }

    for (uint32_t e = 0; e < ne; e++) {
        if (!f->usable[e]) continue;
        const float *restrict sp = db->spectra + (size_t)e * nb;
        /* s_e . y for every pixel of the block: each pixel's sum runs over the
         * bins in order, so the result does not depend on the blocking */
        for (uint32_t p = 0; p < npix; p++) acc[p] = 0.0;
        for (uint32_t b = 0; b < nb; b++) {
            const double sv = sp[b];
            const float *restrict row = yt + (size_t)b * npix;
            for (uint32_t p = 0; p < npix; p++) acc[p] += sv * row[p];
        }
        const double *l = f->chol + (size_t)e * tri;
        for (uint32_t p = 0; p < npix; p++) {
            double r[FIT_MAX_COEF], z[FIT_MAX_COEF], beta[FIT_MAX_COEF] = {0};
            r[0] = acc[p];
            for (unsigned k = 0; k < np; k++) r[k + 1] = s->pr[p * np + k];
            /* solve L L' beta = r  (diagonal of l holds reciprocals) */
            for (unsigned i = 0; i < nc; i++) {
                double v = r[i];
                for (unsigned k = 0; k < i; k++) v -= l[FIT_TRI(i) + k] * z[k];
                z[i] = v * l[FIT_TRI(i) + i];
            }
            for (unsigned i = nc; i-- > 0;) {
                double v = z[i];
                for (unsigned k = i + 1; k < nc; k++) v -= l[FIT_TRI(k) + i] * beta[k];
                beta[i] = v * l[FIT_TRI(i) + i];
            }
            if (!(beta[0] > 0.0)) continue; /* scattering amplitude must be positive */
            double fitted = 0.0;
            for (unsigned i = 0; i < nc; i++) fitted += beta[i] * r[i];
            double rss = s->yy[p] - fitted;
            if (rss < 0.0) rss = 0.0;
            if (out[p].entry < 0 || rss < out[p].residual) {
                out[p].db = (int32_t)db->index;
                out[p].entry = (int32_t)e;
                out[p].residual = rss;
                out[p].amplitude = (float)beta[0];
                out[p].d = db->params[(size_t)e * db->n_params];
                out[p].m = db->params[(size_t)e * db->n_params + 1];
            }
        }
    }
}
