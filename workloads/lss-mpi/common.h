/* common.h - shared definitions for the LSS stand-in: data format, PRNG, hash,
 * spectral model, validated file loading. */
#ifndef LSS_COMMON_H
#define LSS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lss-mpi maps file payloads directly: little-endian hosts only"
#endif

/* ---- data format (all little-endian) -------------------------------------
 * Both file kinds: 64-byte header, payload, 8-byte trailer holding the
 * FNV-1a-64 hash of every preceding byte.
 *
 * database  header: magic "LSSDB1\0\0", u32 version=1, u32 n_entries,
 *                   u32 n_bins, u32 n_params, f32 lambda_min_nm,
 *                   f32 lambda_max_nm, u32 db_index, u32 reserved=0,
 *                   u64 seed, u64 dataset id, 8 reserved zero bytes
 *           payload: f32 params[n_entries][n_params]   (d_um, m, ...)
 *                    f32 spectra[n_entries][n_bins]
 * image     header: magic "LSSIMG1\0", u32 version=1, u32 width, u32 height,
 *                   u32 n_bins, f32 lambda_min_nm, f32 lambda_max_nm,
 *                   u32 image_index, u32 reserved=0, u64 seed,
 *                   u64 dataset id, 8 reserved zero bytes
 * The dataset id is the same in every file written by one lssgen run (a hash
 * of its options); lss-mpi refuses to mix files of different data sets.
 *           payload: f32 pixels[height][width][n_bins]
 */
#define LSS_PI 3.14159265358979323846
#define LSS_HDR_SIZE 64
#define LSS_TRAILER_SIZE 8
#define LSS_VERSION 1u
#define LSS_DB_MAGIC "LSSDB1\0\0"
#define LSS_IMG_MAGIC "LSSIMG1\0"
#define LSS_MAX_BINS 4096u
#define LSS_MAX_PARAMS 8u
#define LSS_MAX_ENTRIES (1u << 26)
#define LSS_MAX_DIM 16384u
#define LSS_NPARAMS 2u /* d (um), m (relative refractive index) */

typedef struct {
    uint32_t n_entries, n_bins, n_params, index;
    float lambda_min, lambda_max;
    uint64_t seed, dataset;
    const float *params;  /* [n_entries][n_params] */
    const float *spectra; /* [n_entries][n_bins] */
    unsigned char *raw;   /* owned buffer holding the whole file */
    size_t raw_size;
} lss_db;

typedef struct {
    uint32_t width, height, n_bins, index;
    float lambda_min, lambda_max;
    uint64_t seed, dataset;
    const float *pixels; /* [height*width][n_bins] */
    unsigned char *raw;
    size_t raw_size;
} lss_image;

/* ---- PRNG: splitmix64 ---------------------------------------------------- */
uint64_t lss_splitmix64(uint64_t *state);
double lss_uniform(uint64_t *state);  /* [0,1) with 53 bits */
double lss_gauss(uint64_t *state);    /* N(0,1), Box-Muller */
uint64_t lss_mix(uint64_t a, uint64_t b); /* derive a sub-seed */

/* ---- FNV-1a 64 ----------------------------------------------------------- */
#define LSS_FNV_INIT 0xcbf29ce484222325ULL
uint64_t lss_fnv1a(uint64_t h, const void *data, size_t n);

/* ---- little-endian helpers ---------------------------------------------- */
void lss_put_u32(unsigned char *p, uint32_t v);
void lss_put_u64(unsigned char *p, uint64_t v);
void lss_put_f32(unsigned char *p, float v);
uint32_t lss_get_u32(const unsigned char *p);
uint64_t lss_get_u64(const unsigned char *p);
float lss_get_f32(const unsigned char *p);

/* ---- spectral model (shared by generator; documented in README) ---------- */
double lss_lambda_nm(uint32_t bin, uint32_t n_bins, float lmin, float lmax);
/* Mie-like model spectrum for particle diameter d_um and relative index m. */
void lss_model_spectrum(float *out, uint32_t n_bins, float lmin, float lmax,
                        float d_um, float m);

/* ---- validated loading. On failure return -1 and write a reason. --------- */
int lss_load_db(const char *path, size_t max_bytes, lss_db *db,
                char *why, size_t why_len);
int lss_load_image(const char *path, size_t max_bytes, lss_image *img,
                   char *why, size_t why_len);
void lss_db_free(lss_db *db);
void lss_image_free(lss_image *img);

/* sizes implied by a header (0 on overflow) */
size_t lss_db_file_size(uint32_t n_entries, uint32_t n_bins, uint32_t n_params);
size_t lss_image_file_size(uint32_t w, uint32_t h, uint32_t n_bins);

double lss_now(void); /* monotonic seconds */

/* ---- layout of the generated data set (shared by lssgen and the README) -- */
#define LSS_D_MIN 1.0   /* um, smallest diameter over all databases */
#define LSS_D_MAX 19.0  /* um, largest */
#define LSS_M_MIN 1.02  /* relative refractive index range */
#define LSS_M_MAX 1.10

#endif
