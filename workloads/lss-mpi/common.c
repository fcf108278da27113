/* common.c - PRNG, hash, byte order, spectral model, validated file loading */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t lss_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double lss_uniform(uint64_t *state)
{
    return (double)(lss_splitmix64(state) >> 11) * 0x1.0p-53;
}

double lss_gauss(uint64_t *state)
{
    double u1 = lss_uniform(state), u2 = lss_uniform(state);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * LSS_PI * u2);
}

uint64_t lss_mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0xd6e8feb86659fd93ULL);
    return lss_splitmix64(&s);
}

uint64_t lss_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void lss_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
void lss_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
void lss_put_f32(unsigned char *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    lss_put_u32(p, u);
}
uint32_t lss_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
uint64_t lss_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
float lss_get_f32(const unsigned char *p)
{
    uint32_t u = lss_get_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

double lss_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double lss_lambda_nm(uint32_t bin, uint32_t n_bins, float lmin, float lmax)
{
    if (n_bins < 2) return lmin;
    return (double)lmin + ((double)lmax - (double)lmin) * bin / (n_bins - 1);
}

/* Mie-like spectrum.  x = n_med / lambda (um^-1).
 *  - extinction efficiency in the anomalous-diffraction approximation
 *    (van de Hulst): rho = 2*pi*d*(m-1)*x,
 *    Q = 2 - 4/rho sin(rho) + 4/rho^2 (1 - cos(rho));
 *  - a backscattering-like ripple: sinusoids in 1/lambda whose frequency
 *    grows with d (period in x ~ 1/(m d)), harmonics decaying;
 *  - a smooth Rayleigh-like background ~ x^2 with weight falling with d.
 * Not Mie theory; it has the features the fit has to resolve (size-dependent
 * oscillation frequency, index-dependent envelope). */
void lss_model_spectrum(float *out, uint32_t n_bins, float lmin, float lmax,
                        float d_um, float m)
{
    const double n_med = 1.35;
    const double d = d_um, mm = m;
    for (uint32_t b = 0; b < n_bins; b++) {
        double lam_um = lss_lambda_nm(b, n_bins, lmin, lmax) * 1e-3;
        double x = n_med / lam_um;
        double rho = 2.0 * LSS_PI * d * (mm - 1.0) * x;
        double q;
        if (rho < 1e-3)
            q = rho * rho / 2.0; /* series limit */
        else
            q = 2.0 - 4.0 / rho * sin(rho) + 4.0 / (rho * rho) * (1.0 - cos(rho));
        double ripple = 0.0;
        for (int k = 1; k <= 2; k++) {
            double ph = 2.0 * LSS_PI * k * mm * d * x * 0.5 + 0.7 * k * (mm - 1.0) * 40.0;
            ripple += cos(ph) / (k * sqrt((double)k));
        }
        double envelope = 0.25 * (1.0 + 0.5 * (mm - 1.0) * 20.0) / (1.0 + 0.05 * d);
        double background = 0.3 * x * x / (1.0 + 0.2 * d);
        out[b] = (float)(0.5 * q + envelope * ripple + background);
    }
}

static void why_set(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

size_t lss_db_file_size(uint32_t n_entries, uint32_t n_bins, uint32_t n_params)
{
    uint64_t per = ((uint64_t)n_bins + n_params) * 4u;
    uint64_t total = LSS_HDR_SIZE + (uint64_t)n_entries * per + LSS_TRAILER_SIZE;
    if (total > SIZE_MAX) return 0;
    return (size_t)total;
}

size_t lss_image_file_size(uint32_t w, uint32_t h, uint32_t n_bins)
{
    uint64_t total = LSS_HDR_SIZE + (uint64_t)w * h * n_bins * 4u + LSS_TRAILER_SIZE;
    if (total > SIZE_MAX) return 0;
    return (size_t)total;
}

/* Read a whole file (at most max_bytes) into a fresh buffer. */
static int read_all(const char *path, size_t max_bytes, unsigned char **buf,
                    size_t *len, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        why_set(why, why_len, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        why_set(why, why_len, "not a regular file");
        close(fd);
        return -1;
    }
    if (st.st_size < LSS_HDR_SIZE + LSS_TRAILER_SIZE) {
        why_set(why, why_len, "too short (%lld bytes)", (long long)st.st_size);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        why_set(why, why_len, "too large (%lld bytes > limit %zu)",
                (long long)st.st_size, max_bytes);
        close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *b = malloc(n);
    if (!b) {
        why_set(why, why_len, "out of memory for %zu bytes", n);
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            why_set(why, why_len, "read failed at byte %zu: %s", got,
                    r < 0 ? strerror(errno) : "unexpected end of file");
            free(b);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

static int check_trailer(const unsigned char *b, size_t n, char *why, size_t wl)
{
    uint64_t want = lss_get_u64(b + n - LSS_TRAILER_SIZE);
    uint64_t got = lss_fnv1a(LSS_FNV_INIT, b, n - LSS_TRAILER_SIZE);
    if (want != got) {
        why_set(why, wl, "hash mismatch (trailer %016llx, content %016llx): corrupt or truncated",
                (unsigned long long)want, (unsigned long long)got);
        return -1;
    }
    return 0;
}

static int check_finite(const unsigned char *p, size_t count, const char *what,
                        char *why, size_t wl)
{
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(lss_get_f32(p + 4 * i))) {
            why_set(why, wl, "non-finite %s value at index %zu", what, i);
            return -1;
        }
    }
    return 0;
}

static int check_lambda(float lmin, float lmax, char *why, size_t wl)
{
    if (!(lmin > 0.0f && lmax > lmin && lmax < 1e5f)) {
        why_set(why, wl, "bad wavelength range [%g, %g] nm", lmin, lmax);
        return -1;
    }
    return 0;
}

int lss_load_db(const char *path, size_t max_bytes, lss_db *db, char *why, size_t wl)
{
    memset(db, 0, sizeof *db);
    unsigned char *b;
    size_t n;
    if (read_all(path, max_bytes, &b, &n, why, wl) != 0) return -1;
    if (memcmp(b, LSS_DB_MAGIC, 8) != 0) {
        why_set(why, wl, "bad magic (not an LSS database file)");
        goto fail;
    }
    uint32_t ver = lss_get_u32(b + 8);
    db->n_entries = lss_get_u32(b + 12);
    db->n_bins = lss_get_u32(b + 16);
    db->n_params = lss_get_u32(b + 20);
    db->lambda_min = lss_get_f32(b + 24);
    db->lambda_max = lss_get_f32(b + 28);
    db->index = lss_get_u32(b + 32);
    db->seed = lss_get_u64(b + 40);
    db->dataset = lss_get_u64(b + 48);
    if (ver != LSS_VERSION) {
        why_set(why, wl, "unsupported version %u", ver);
        goto fail;
    }
    if (db->n_entries == 0 || db->n_entries > LSS_MAX_ENTRIES || db->n_bins < 8 ||
        db->n_bins > LSS_MAX_BINS || db->n_params < LSS_NPARAMS ||
        db->n_params > LSS_MAX_PARAMS) {
        why_set(why, wl, "header out of range (entries %u, bins %u, params %u)",
                db->n_entries, db->n_bins, db->n_params);
        goto fail;
    }
    if (check_lambda(db->lambda_min, db->lambda_max, why, wl) != 0) goto fail;
    size_t want = lss_db_file_size(db->n_entries, db->n_bins, db->n_params);
    if (want != n) {
        why_set(why, wl, "size %zu bytes, header implies %zu", n, want);
        goto fail;
    }
    if (check_trailer(b, n, why, wl) != 0) goto fail;
    size_t np = (size_t)db->n_entries * db->n_params;
    size_t ns = (size_t)db->n_entries * db->n_bins;
    if (check_finite(b + LSS_HDR_SIZE, np + ns, "parameter/spectrum", why, wl) != 0)
        goto fail;
    /* payload starts at offset 64 (16-byte aligned in malloc'd memory), so the
     * float arrays are suitably aligned; the host must be little-endian. */
    db->params = (const float *)(void *)(b + LSS_HDR_SIZE);
    db->spectra = db->params + np;
    db->raw = b;
    db->raw_size = n;
    return 0;
fail:
    free(b);
    memset(db, 0, sizeof *db);
    return -1;
}

int lss_load_image(const char *path, size_t max_bytes, lss_image *img, char *why,
                   size_t wl)
{
    memset(img, 0, sizeof *img);
    unsigned char *b;
    size_t n;
    if (read_all(path, max_bytes, &b, &n, why, wl) != 0) return -1;
    if (memcmp(b, LSS_IMG_MAGIC, 8) != 0) {
        why_set(why, wl, "bad magic (not an LSS image file)");
        goto fail;
    }
    uint32_t ver = lss_get_u32(b + 8);
    img->width = lss_get_u32(b + 12);
    img->height = lss_get_u32(b + 16);
    img->n_bins = lss_get_u32(b + 20);
    img->lambda_min = lss_get_f32(b + 24);
    img->lambda_max = lss_get_f32(b + 28);
    img->index = lss_get_u32(b + 32);
    img->seed = lss_get_u64(b + 40);
    img->dataset = lss_get_u64(b + 48);
    if (ver != LSS_VERSION) {
        why_set(why, wl, "unsupported version %u", ver);
        goto fail;
    }
    if (img->width == 0 || img->height == 0 || img->width > LSS_MAX_DIM ||
        img->height > LSS_MAX_DIM || img->n_bins < 8 || img->n_bins > LSS_MAX_BINS) {
        why_set(why, wl, "header out of range (%ux%u pixels, %u bins)", img->width,
                img->height, img->n_bins);
        goto fail;
    }
    if (check_lambda(img->lambda_min, img->lambda_max, why, wl) != 0) goto fail;
    size_t want = lss_image_file_size(img->width, img->height, img->n_bins);
    if (want != n) {
        why_set(why, wl, "size %zu bytes, header implies %zu", n, want);
        goto fail;
    }
    if (check_trailer(b, n, why, wl) != 0) goto fail;
    size_t np = (size_t)img->width * img->height * img->n_bins;
    if (check_finite(b + LSS_HDR_SIZE, np, "pixel", why, wl) != 0) goto fail;
    img->pixels = (const float *)(void *)(b + LSS_HDR_SIZE);
    img->raw = b;
    img->raw_size = n;
    return 0;
fail:
    free(b);
    memset(img, 0, sizeof *img);
    return -1;
}

void lss_db_free(lss_db *db)
{
    free(db->raw);
    memset(db, 0, sizeof *db);
}

void lss_image_free(lss_image *img)
{
    free(img->raw);
    memset(img, 0, sizeof *img);
}
