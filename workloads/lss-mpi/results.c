/* results.c - per-image statistics, checksum and result file */
#define _POSIX_C_SOURCE 200809L
#include "results.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t res_checksum(const px_result *r, uint32_t n)
{
    uint64_t h = LSS_FNV_INIT;
    unsigned char b[20];
    for (uint32_t i = 0; i < n; i++) {
        uint64_t rb;
        memcpy(&rb, &r[i].residual, 8);
        lss_put_u32(b, (uint32_t)r[i].db);
        lss_put_u32(b + 4, (uint32_t)r[i].entry);
        lss_put_u64(b + 8, rb);
        lss_put_f32(b + 16, r[i].amplitude);
        h = lss_fnv1a(h, b, sizeof b);
    }
    return h;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double median(float *v, uint32_t n)
{
    if (n == 0) return 0.0;
    qsort(v, n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
}

int res_summarize(const px_result *r, uint32_t n, uint32_t n_bins, res_summary *s)
{
    memset(s, 0, sizeof *s);
    s->pixels = n;
    s->checksum = res_checksum(r, n);
    float *dv = malloc(sizeof(float) * (n ? n : 1));
    float *mv = malloc(sizeof(float) * (n ? n : 1));
    if (!dv || !mv) {
        free(dv);
        free(mv);
        return -1;
    }
    double sd = 0, sd2 = 0, sm = 0, srms = 0;
    uint32_t large = 0, f = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (r[i].entry < 0) continue;
        double d = r[i].d;
        dv[f] = r[i].d;
        mv[f] = r[i].m;
        f++;
        sd += d;
        sd2 += d * d;
        sm += r[i].m;
        srms += sqrt(r[i].residual / n_bins);
        if (d > RES_LARGE_D) large++;
        int hb = (int)floor(d - LSS_D_MIN);
        if (hb < 0) hb = 0;
        if (hb >= RES_HIST_BINS) hb = RES_HIST_BINS - 1;
        s->hist[hb]++;
    }
    s->fitted = f;
    if (f) {
        s->mean_d = sd / f;
        double var = sd2 / f - s->mean_d * s->mean_d;
        s->sd_d = var > 0 ? sqrt(var) : 0.0;
        s->mean_m = sm / f;
        s->frac_large = (double)large / f;
        s->mean_rms = srms / f;
        s->median_d = median(dv, f);
        s->median_m = median(mv, f);
    }
    free(dv);
    free(mv);
    return 0;
}

int res_write(const char *out_dir, uint32_t k, uint32_t width, uint32_t height,
              uint32_t n_bins, const px_result *r, const res_summary *s,
              char *why, size_t wl)
{
    char path[4096], tmp[4200];
    int len = snprintf(path, sizeof path, "%s/image-%u.result", out_dir, k);
    if (len < 0 || (size_t)len >= sizeof path) {
        snprintf(why, wl, "output path too long");
        return -1;
    }
    memcpy(tmp, path, (size_t)len);
    memcpy(tmp + len, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(why, wl, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# lss-mpi result for image %u\n", k);
    fprintf(f, "width %u\nheight %u\nbins %u\npixels %u\nfitted %u\n", width, height,
            n_bins, s->pixels, s->fitted);
    fprintf(f, "checksum %016llx\n", (unsigned long long)s->checksum);
    fprintf(f, "mean_d_um %.4f\nmedian_d_um %.4f\nsd_d_um %.4f\n", s->mean_d,
            s->median_d, s->sd_d);
    fprintf(f, "mean_m %.5f\nmedian_m %.5f\n", s->mean_m, s->median_m);
    fprintf(f, "fraction_d_above_%.0f_um %.4f\nmean_rms_residual %.6g\n", RES_LARGE_D,
            s->frac_large, s->mean_rms);
    fprintf(f, "# histogram of d: lower_um upper_um pixels\n");
    for (int i = 0; i < RES_HIST_BINS; i++)
        fprintf(f, "hist %.0f %.0f %u\n", LSS_D_MIN + i, LSS_D_MIN + i + 1, s->hist[i]);
    fprintf(f, "# per pixel: x y db entry d_um m amplitude rss\n");
    for (uint32_t i = 0; i < s->pixels; i++)
        fprintf(f, "px %u %u %d %d %.6f %.6f %.6f %.6g\n", i % width, i / width,
                r[i].db, r[i].entry, r[i].d, r[i].m, r[i].amplitude, r[i].residual);
    if (ferror(f) | (fclose(f) != 0)) {
        snprintf(why, wl, "write %s failed", tmp);
        remove(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(why, wl, "rename %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
