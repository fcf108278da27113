/* lssgen - seeded generator of an LSS-like data set: D databases of model
 * spectra (parameter grid over particle diameter d and relative refractive
 * index m) and I spectral images whose pixels are noisy, scaled database
 * spectra on a polynomial background.  Same seed and options -> identical
 * bytes.  See README.md for the format. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *out;
    uint64_t seed;
    unsigned dbs, images, width, height, bins, m_steps;
    double db_mb, noise;
    float lmin, lmax;
    uint64_t dataset; /* hash of all the options above */
} gen_opts;

typedef struct {
    uint32_t n_entries, nd, nm;
} db_layout;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "lssgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* hashing writer */
typedef struct {
    FILE *f;
    const char *path;
    uint64_t h;
} hwriter;

static void hw_write(hwriter *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n) die("write failed: %s", w->path);
    w->h = lss_fnv1a(w->h, p, n);
}

static void hw_finish(hwriter *w, const char *tmp, const char *final)
{
    unsigned char t[8];
    lss_put_u64(t, w->h);
    if (fwrite(t, 1, 8, w->f) != 8 || fflush(w->f) != 0 || fclose(w->f) != 0)
        die("write failed: %s", tmp);
    if (rename(tmp, final) != 0) die("rename failed: %s", final);
}

static void entry_params(const gen_opts *o, const db_layout *L, unsigned j,
                         uint32_t id, uint32_t im, float *d, float *m)
{
    double span = (LSS_D_MAX - LSS_D_MIN) / o->dbs;
    double lo = LSS_D_MIN + span * j;
    *d = (float)(lo + span * (id + 0.5) / L->nd);
    *m = (float)(LSS_M_MIN + (LSS_M_MAX - LSS_M_MIN) * im / (L->nm - 1));
}

static void write_header(unsigned char *h, const char *magic, uint32_t a, uint32_t b,
                         uint32_t c, float lmin, float lmax, uint32_t index,
                         uint64_t seed, uint64_t dataset)
{
    memset(h, 0, LSS_HDR_SIZE);
    memcpy(h, magic, 8);
    lss_put_u32(h + 8, LSS_VERSION);
    lss_put_u32(h + 12, a);
    lss_put_u32(h + 16, b);
    lss_put_u32(h + 20, c);
    lss_put_f32(h + 24, lmin);
    lss_put_f32(h + 28, lmax);
    lss_put_u32(h + 32, index);
    lss_put_u64(h + 40, seed);
    lss_put_u64(h + 48, dataset);
}

static void gen_db(const gen_opts *o, const db_layout *L, unsigned j)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/db-%u.lssdb", o->out, j + 1);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hwriter w = {fopen(tmp, "wb"), tmp, LSS_FNV_INIT};
    if (!w.f) die("cannot create %s", tmp);
    unsigned char hdr[LSS_HDR_SIZE];
    write_header(hdr, LSS_DB_MAGIC, L->n_entries, o->bins, LSS_NPARAMS, o->lmin,
                 o->lmax, j + 1, lss_mix(o->seed, 100 + j), o->dataset);
    hw_write(&w, hdr, sizeof hdr);
    unsigned char pb[8];
    for (uint32_t i = 0; i < L->n_entries; i++) {
        float d, m;
        entry_params(o, L, j, i / L->nm, i % L->nm, &d, &m);
        lss_put_f32(pb, d);
        lss_put_f32(pb + 4, m);
        hw_write(&w, pb, 8);
    }
    float *s = malloc(sizeof(float) * o->bins);
    unsigned char *sb = malloc(4u * o->bins);
    if (!s || !sb) die("out of memory%s", "");
    for (uint32_t i = 0; i < L->n_entries; i++) {
        float d, m;
        entry_params(o, L, j, i / L->nm, i % L->nm, &d, &m);
        lss_model_spectrum(s, o->bins, o->lmin, o->lmax, d, m);
        for (unsigned b = 0; b < o->bins; b++) lss_put_f32(sb + 4 * b, s[b]);
        hw_write(&w, sb, 4u * o->bins);
    }
    free(s);
    free(sb);
    hw_finish(&w, tmp, path);
}

typedef struct {
    double cx, cy, r, d;
} blob;

static void gen_image(const gen_opts *o, const db_layout *L, unsigned k)
{
    char path[4096], tmp[4200], tpath[4200];
    snprintf(path, sizeof path, "%s/image-%u.lssimg", o->out, k);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(tpath, sizeof tpath, "%s/image-%u.truth", o->out, k);
    uint64_t seed = lss_mix(o->seed, 1000 + k);
    uint64_t st = seed;
    /* tissue model: background cells plus a few enlarged nuclei ("blobs") */
    double d_bg = 3.0 + 3.0 * lss_uniform(&st);
    double m_phase = 6.283 * lss_uniform(&st);
    unsigned nb = 3 + (unsigned)(4 * lss_uniform(&st));
    blob bl[8];
    double scale = o->width < o->height ? o->width : o->height;
    for (unsigned i = 0; i < nb; i++) {
        bl[i].cx = o->width * lss_uniform(&st);
        bl[i].cy = o->height * lss_uniform(&st);
        bl[i].r = scale * (0.08 + 0.15 * lss_uniform(&st)) + 0.5;
        bl[i].d = 8.0 + 10.0 * lss_uniform(&st);
    }
    hwriter w = {fopen(tmp, "wb"), tmp, LSS_FNV_INIT};
    FILE *tf = fopen(tpath, "w");
    if (!w.f || !tf) die("cannot create files for %s", path);
    fprintf(tf, "# truth for image %u: x y db entry d m amplitude\n", k);
    unsigned char hdr[LSS_HDR_SIZE];
    write_header(hdr, LSS_IMG_MAGIC, o->width, o->height, o->bins, o->lmin, o->lmax,
                 k, seed, o->dataset);
    hw_write(&w, hdr, sizeof hdr);
    float *s = malloc(sizeof(float) * o->bins);
    unsigned char *pb = malloc(4u * o->bins);
    if (!s || !pb) die("out of memory%s", "");
    for (unsigned y = 0; y < o->height; y++) {
        for (unsigned x = 0; x < o->width; x++) {
            double d = d_bg;
            for (unsigned i = 0; i < nb; i++) {
                double dx = x - bl[i].cx, dy = y - bl[i].cy;
                double g = exp(-(dx * dx + dy * dy) / (2.0 * bl[i].r * bl[i].r));
                double v = d_bg + (bl[i].d - d_bg) * g;
                if (v > d) d = v;
            }
            d += 0.3 * lss_gauss(&st);
            double lim_lo = LSS_D_MIN + 1e-6, lim_hi = LSS_D_MAX - 1e-6;
            d = d < lim_lo ? lim_lo : d > lim_hi ? lim_hi : d;
            double mt = 0.5 + 0.5 * sin(m_phase + 3.0 * x / (o->width + 1.0) +
                                        2.0 * y / (o->height + 1.0));
            double m = LSS_M_MIN + (LSS_M_MAX - LSS_M_MIN) * mt;
            /* snap to a database entry */
            double span = (LSS_D_MAX - LSS_D_MIN) / o->dbs;
            unsigned j = (unsigned)((d - LSS_D_MIN) / span);
            if (j >= o->dbs) j = o->dbs - 1;
            double f = (d - (LSS_D_MIN + span * j)) / span;
            uint32_t id = (uint32_t)(f * L->nd);
            if (id >= L->nd) id = L->nd - 1;
            uint32_t im = (uint32_t)lround((m - LSS_M_MIN) / (LSS_M_MAX - LSS_M_MIN) *
                                           (L->nm - 1));
            if (im >= L->nm) im = L->nm - 1;
            float fd, fm;
            entry_params(o, L, j, id, im, &fd, &fm);
            lss_model_spectrum(s, o->bins, o->lmin, o->lmax, fd, fm);
            double amp = 0.6 + 0.8 * lss_uniform(&st);
            double c0 = 0.2 + 0.3 * lss_uniform(&st);
            double c1 = 0.2 * (lss_uniform(&st) - 0.5);
            double c2 = 0.1 * (lss_uniform(&st) - 0.5);
            for (unsigned b = 0; b < o->bins; b++) {
                double t = o->bins > 1 ? 2.0 * b / (o->bins - 1) - 1.0 : 0.0;
                double v = amp * s[b] + c0 + c1 * t + c2 * t * t +
                           o->noise * lss_gauss(&st);
                lss_put_f32(pb + 4 * b, (float)v);
            }
            hw_write(&w, pb, 4u * o->bins);
            fprintf(tf, "%u %u %u %u %.6f %.6f %.6f\n", x, y, j + 1,
                    id * L->nm + im, fd, fm, amp);
        }
    }
    free(s);
    free(pb);
    if (fclose(tf) != 0) die("write failed: %s", tpath);
    hw_finish(&w, tmp, path);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lssgen --out DIR [--seed N] [--dbs 4] [--db-mb 32] [--images 6]\n"
            "              [--width 40] [--height 32] [--bins 200] [--m-steps 16]\n"
            "              [--noise 0.01] [--lambda-min 400] [--lambda-max 700]\n"
            "writes DIR/db-J.lssdb (J=1..dbs), DIR/image-K.lssimg and\n"
            "DIR/image-K.truth (K=1..images)\n");
    exit(2);
}

static double num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "lssgen: %s: bad value '%s' (range %g..%g)\n", opt, v, lo, hi);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    gen_opts o = {NULL, 1, 4, 6, 40, 32, 200, 16, 32.0, 0.01, 400.0f, 700.0f, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--seed")) o.seed = (uint64_t)num(a, v, 0, 9007199254740992.0);
        else if (!strcmp(a, "--dbs")) o.dbs = (unsigned)num(a, v, 1, 64);
        else if (!strcmp(a, "--db-mb")) o.db_mb = num(a, v, 0.01, 1024);
        else if (!strcmp(a, "--images")) o.images = (unsigned)num(a, v, 1, 1000);
        else if (!strcmp(a, "--width")) o.width = (unsigned)num(a, v, 1, LSS_MAX_DIM);
        else if (!strcmp(a, "--height")) o.height = (unsigned)num(a, v, 1, LSS_MAX_DIM);
        else if (!strcmp(a, "--bins")) o.bins = (unsigned)num(a, v, 8, LSS_MAX_BINS);
        else if (!strcmp(a, "--m-steps")) o.m_steps = (unsigned)num(a, v, 2, 1024);
        else if (!strcmp(a, "--noise")) o.noise = num(a, v, 0, 10);
        else if (!strcmp(a, "--lambda-min")) o.lmin = (float)num(a, v, 1, 1e5);
        else if (!strcmp(a, "--lambda-max")) o.lmax = (float)num(a, v, 1, 1e5);
        else usage();
    }
    if (!o.out) usage();
    if (!(o.lmax > o.lmin)) die("--lambda-max must exceed --lambda-min%s", "");
    if ((uint64_t)o.width * o.height * o.bins * 4u > (1ULL << 32))
        die("image too large (limit 4 GiB)%s", "");
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST) die("cannot create %s", o.out);
    double bytes = o.db_mb * 1048576.0 - LSS_HDR_SIZE - LSS_TRAILER_SIZE;
    db_layout L;
    uint64_t n = (uint64_t)(bytes / ((o.bins + LSS_NPARAMS) * 4.0));
    L.nm = o.m_steps;
    L.nd = (uint32_t)(n / L.nm);
    if (L.nd < 2) die("--db-mb too small for the bins and m-steps given%s", "");
    if ((uint64_t)L.nd * L.nm > LSS_MAX_ENTRIES) die("database too large%s", "");
    L.n_entries = L.nd * L.nm;
    char idtext[512];
    snprintf(idtext, sizeof idtext, "%llu %u %u %u %u %u %u %u %.17g %.17g %.9g %.9g",
             (unsigned long long)o.seed, o.dbs, L.n_entries, o.images, o.width, o.height,
             o.bins, o.m_steps, o.db_mb, o.noise, o.lmin, o.lmax);
    o.dataset = lss_fnv1a(LSS_FNV_INIT, idtext, strlen(idtext));
    for (unsigned j = 0; j < o.dbs; j++) gen_db(&o, &L, j);
    for (unsigned k = 1; k <= o.images; k++) gen_image(&o, &L, k);
    printf("{\"dbs\":%u,\"entries_per_db\":%u,\"db_bytes\":%zu,\"images\":%u,"
           "\"width\":%u,\"height\":%u,\"bins\":%u,\"image_bytes\":%zu,\"seed\":%llu,"
           "\"dataset\":\"%016llx\"}\n",
           o.dbs, L.n_entries, lss_db_file_size(L.n_entries, o.bins, LSS_NPARAMS),
           o.images, o.width, o.height, o.bins,
           lss_image_file_size(o.width, o.height, o.bins), (unsigned long long)o.seed,
           (unsigned long long)o.dataset);
    return 0;
}
