/* lss-mpi - stand-in for the parallel LSS (Light Scattering Spectroscopy)
 * image analysis of the IPOP paper (Sec. IV-C): rank 0 is the master, ranks
 * 1..P-1 are workers.  For each image the master hands out tasks (image x
 * database x pixel block) dynamically; a worker makes sure the image and the
 * database are in its client-side disk cache (fetching from the NFS server
 * with nfs-cp, or from a local directory), fits every database spectrum to
 * every pixel of the block by linear least squares and returns the best
 * entry per pixel.  The master merges the results across databases, computes
 * the image parameters and writes one result file per image.
 * --sequential: one process does all tasks itself, in the same order. */
#define _GNU_SOURCE
#include <mpi.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "common.h"
#include "fit.h"
#include "results.h"

enum { TAG_TASK = 1, TAG_STOP = 2, TAG_RESULT = 3 };

typedef struct {
    int sequential, cold;
    const char *nfs, *data, *cache, *out, *nfs_cp;
    unsigned images, dbs, block, poly;
    int timeout;
    size_t max_bytes;
} opts;

typedef struct { /* per image: bytes brought into caches from the file server */
    uint64_t all, db; /* all files / database files only */
    double cpu;       /* CPU seconds the tasks took (fetch, load, fit) */
} fetch_acct;

typedef struct { /* result message header, followed by npix px_result */
    int32_t task, npix;
    fetch_acct fetched;
} res_hdr;

static int g_rank = 0, g_mpi = 0;
static char g_host[64] = "?";

static void fatal(const char *file, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
static void fatal(const char *file, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lss-mpi: rank %d (%s): %s%s%s\n", g_rank, g_host, file ? file : "",
            file ? ": " : "", msg);
    fflush(stderr);
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, 3);
    exit(3);
}

/* ---- per-process data state (the worker's view of the cache) ------------- */
typedef struct {
    const opts *o;
    cache_cfg cc;
    lss_image img;
    unsigned img_k; /* 0 = none loaded */
    lss_db *db;
    fit_db *fit;
    unsigned char *loaded;
    int have_geom;
    uint32_t n_bins;
    float lmin, lmax;
    uint64_t dataset;
    fit_scratch scr;
} wstate;

static void ws_init(wstate *ws, const opts *o)
{
    memset(ws, 0, sizeof *ws);
    ws->o = o;
    ws->cc.dir = o->cache;
    ws->cc.nfs_url = o->nfs;
    ws->cc.data_dir = o->data;
    ws->cc.nfs_cp = o->nfs_cp;
    ws->cc.timeout_s = o->timeout;
    ws->db = calloc(o->dbs, sizeof *ws->db);
    ws->fit = calloc(o->dbs, sizeof *ws->fit);
    ws->loaded = calloc(o->dbs, 1);
    if (!ws->db || !ws->fit || !ws->loaded) fatal(NULL, "out of memory");
    char why[512];
    if (cache_init(&ws->cc, why, sizeof why) != 0) fatal(o->cache, "%s", why);
}

static void ws_free(wstate *ws)
{
    for (unsigned j = 0; j < ws->o->dbs; j++)
        if (ws->loaded[j]) {
            fit_free(&ws->fit[j]);
            lss_db_free(&ws->db[j]);
        }
    lss_image_free(&ws->img);
    fit_scratch_free(&ws->scr);
    free(ws->db);
    free(ws->fit);
    free(ws->loaded);
}

static void check_geom(wstate *ws, const char *name, uint32_t nb, float lmin, float lmax,
                       uint64_t dataset)
{
    if (!ws->have_geom) {
        ws->have_geom = 1;
        ws->dataset = dataset;
        ws->n_bins = nb;
        ws->lmin = lmin;
        ws->lmax = lmax;
        if (fit_scratch_init(&ws->scr, ws->o->block, nb, ws->o->poly) != 0)
            fatal(NULL, "out of memory for a block of %u pixels", ws->o->block);
        return;
    }
    if (nb != ws->n_bins || lmin != ws->lmin || lmax != ws->lmax)
        fatal(name, "spectral grid %u bins [%g,%g] nm differs from the other files' "
                    "%u bins [%g,%g] nm", nb, lmin, lmax, ws->n_bins, ws->lmin, ws->lmax);
    if (dataset != ws->dataset)
        fatal(name, "belongs to data set %016llx, the files loaded before to %016llx "
                    "(stale cache? rerun with --cold)",
              (unsigned long long)dataset, (unsigned long long)ws->dataset);
}

static const char *fetch(wstate *ws, const char *name, char *path, size_t plen,
                         uint64_t *fetched)
{
    char why[1024];
    uint64_t got = 0;
    if (cache_ensure(&ws->cc, name, path, plen, &got, why, sizeof why) != 0)
        fatal(name, "cannot bring into cache %s: %s", ws->o->cache, why);
    *fetched += got;
    return path;
}

static void ensure_image(wstate *ws, unsigned k, fetch_acct *fetched)
{
    if (ws->img_k == k) return;
    lss_image_free(&ws->img);
    ws->img_k = 0;
    char name[64], path[4096], why[512];
    snprintf(name, sizeof name, "image-%u.lssimg", k);
    fetch(ws, name, path, sizeof path, &fetched->all);
    if (lss_load_image(path, ws->o->max_bytes, &ws->img, why, sizeof why) != 0) {
        char w2[512];
        cache_drop(&ws->cc, name, w2, sizeof w2);
        fatal(path, "malformed image file (removed from cache): %s", why);
    }
    if (ws->img.index != k)
        fatal(path, "header says image %u, expected %u", ws->img.index, k);
    check_geom(ws, path, ws->img.n_bins, ws->img.lambda_min, ws->img.lambda_max,
               ws->img.dataset);
    ws->img_k = k;
}

static void ensure_db(wstate *ws, unsigned j, fetch_acct *fetched)
{
    if (ws->loaded[j - 1]) return;
    char name[64], path[4096], why[512];
    snprintf(name, sizeof name, "db-%u.lssdb", j);
    uint64_t before = fetched->all;
    fetch(ws, name, path, sizeof path, &fetched->all);
    fetched->db += fetched->all - before;
    lss_db *db = &ws->db[j - 1];
    if (lss_load_db(path, ws->o->max_bytes, db, why, sizeof why) != 0) {
        char w2[512];
        cache_drop(&ws->cc, name, w2, sizeof w2);
        fatal(path, "malformed database file (removed from cache): %s", why);
    }
    if (db->index != j) fatal(path, "header says database %u, expected %u", db->index, j);
    check_geom(ws, path, db->n_bins, db->lambda_min, db->lambda_max, db->dataset);
    if (fit_prepare(&ws->fit[j - 1], db, ws->o->poly, why, sizeof why) != 0)
        fatal(path, "%s", why);
    ws->loaded[j - 1] = 1;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* one task: image k, database j, pixels [pix0, pix0+npix) */
static void do_task(wstate *ws, unsigned k, unsigned j, uint32_t pix0, uint32_t npix,
                    px_result *out, fetch_acct *fetched)
{
    double c0 = cpu_now();
    ensure_image(ws, k, fetched);
    ensure_db(ws, j, fetched);
    uint64_t total = (uint64_t)ws->img.width * ws->img.height;
    if (npix == 0 || npix > ws->o->block || (uint64_t)pix0 + npix > total)
        fatal(NULL, "task for image %u pixels %u+%u out of range (%llu pixels)", k, pix0,
              npix, (unsigned long long)total);
    fit_block(&ws->fit[j - 1], &ws->img, pix0, npix, &ws->scr, out);
    fetched->cpu += cpu_now() - c0;
}

/* ---- MPI helpers: poll with short sleeps instead of Open MPI's busy wait so
 * an idle master does not steal a core from a worker on the same host ----- */
static void wait_req(MPI_Request *req, MPI_Status *st)
{
    struct timespec nap = {0, 200 * 1000};
    for (;;) {
        int flag = 0;
        MPI_Test(req, &flag, st);
        if (flag) return;
        nanosleep(&nap, NULL);
    }
}

typedef struct {
    unsigned k, nblocks, ntasks;
    uint32_t npix;
} plan;

static void task_of(const opts *o, const plan *pl, unsigned t, int32_t msg[5])
{
    unsigned j = t / pl->nblocks + 1, b = t % pl->nblocks;
    uint32_t pix0 = b * o->block;
    uint32_t n = pl->npix - pix0 < o->block ? pl->npix - pix0 : o->block;
    msg[0] = (int32_t)t;
    msg[1] = (int32_t)pl->k;
    msg[2] = (int32_t)j;
    msg[3] = (int32_t)pix0;
    msg[4] = (int32_t)n;
}

static void merge(px_result *best, uint32_t pix0, const px_result *r, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (fit_better(&r[i], &best[pix0 + i])) best[pix0 + i] = r[i];
}

static void finish_image(const opts *o, const wstate *ms, unsigned k, const px_result *best,
                         uint32_t npix, double t0, fetch_acct fetched, unsigned ntasks)
{
    res_summary s;
    char why[512];
    if (res_summarize(best, npix, ms->img.n_bins, &s) != 0) fatal(NULL, "out of memory");
    if (res_write(o->out, k, ms->img.width, ms->img.height, ms->img.n_bins, best, &s, why,
                  sizeof why) != 0)
        fatal(o->out, "%s", why);
    double sec = lss_now() - t0;
    printf("{\"image\":%u,\"seconds\":%.3f,\"pixels\":%u,\"fetched_bytes\":%llu,"
           "\"checksum\":\"%016llx\",\"fetched_db_bytes\":%llu,\"task_cpu_seconds\":%.3f,"
           "\"tasks\":%u,"
           "\"fitted\":%u,\"median_d_um\":%.3f,\"fraction_d_above_8um\":%.4f}\n",
           k, sec, npix, (unsigned long long)fetched.all, (unsigned long long)s.checksum,
           (unsigned long long)fetched.db, fetched.cpu, ntasks, s.fitted, s.median_d, s.frac_large);
    fflush(stdout);
}

static px_result *start_image(const opts *o, wstate *ms, unsigned k, plan *pl,
                              fetch_acct *fetched)
{
    ensure_image(ms, k, fetched);
    uint64_t n = (uint64_t)ms->img.width * ms->img.height;
    pl->k = k;
    pl->npix = (uint32_t)n;
    pl->nblocks = (unsigned)((n + o->block - 1) / o->block);
    pl->ntasks = pl->nblocks * o->dbs;
    px_result *best = malloc(sizeof *best * n);
    if (!best) fatal(NULL, "out of memory for %llu pixels", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        memset(&best[i], 0, sizeof best[i]);
        best[i].entry = -1;
    }
    return best;
}

static void run_sequential(const opts *o)
{
    wstate ws;
    ws_init(&ws, o);
    px_result *buf = malloc(sizeof *buf * o->block);
    if (!buf) fatal(NULL, "out of memory");
    double t_all = lss_now();
    for (unsigned k = 1; k <= o->images; k++) {
        double t0 = lss_now();
        fetch_acct fetched = {0, 0, 0.0};
        plan pl;
        px_result *best = start_image(o, &ws, k, &pl, &fetched);
        for (unsigned t = 0; t < pl.ntasks; t++) {
            int32_t m[5];
            task_of(o, &pl, t, m);
            do_task(&ws, k, (unsigned)m[2], (uint32_t)m[3], (uint32_t)m[4], buf, &fetched);
            merge(best, (uint32_t)m[3], buf, (uint32_t)m[4]);
        }
        finish_image(o, &ws, k, best, pl.npix, t0, fetched, pl.ntasks);
        free(best);
    }
    printf("{\"total_seconds\":%.3f,\"ranks\":1,\"mode\":\"sequential\"}\n",
           lss_now() - t_all);
    free(buf);
    ws_free(&ws);
}

static void run_master(const opts *o, int nranks)
{
    wstate ms; /* the master only reads images (for their size) */
    ws_init(&ms, o);
    size_t cap = sizeof(res_hdr) + sizeof(px_result) * o->block;
    unsigned char *rbuf = malloc(cap);
    int32_t *assigned = malloc(sizeof(int32_t) * nranks);
    int32_t (*sent)[5] = malloc(sizeof(*sent) * nranks);
    if (!rbuf || !assigned || !sent) fatal(NULL, "out of memory");
    double t_all = lss_now();
    for (unsigned k = 1; k <= o->images; k++) {
        double t0 = lss_now();
        fetch_acct fetched = {0, 0, 0.0};
        plan pl;
        px_result *best = start_image(o, &ms, k, &pl, &fetched);
        unsigned next = 0, done = 0;
        for (int w = 1; w < nranks; w++) {
            assigned[w] = -1;
            if (next < pl.ntasks) {
                task_of(o, &pl, next, sent[w]);
                MPI_Send(sent[w], 5, MPI_INT32_T, w, TAG_TASK, MPI_COMM_WORLD);
                assigned[w] = (int32_t)next++;
            }
        }
        while (done < pl.ntasks) {
            MPI_Request req;
            MPI_Status st;
            MPI_Irecv(rbuf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD,
                      &req);
            wait_req(&req, &st);
            int w = st.MPI_SOURCE, count = 0;
            MPI_Get_count(&st, MPI_BYTE, &count);
            res_hdr h;
            if (w < 1 || w >= nranks || count < (int)sizeof h)
                fatal(NULL, "short result message (%d bytes) from rank %d", count, w);
            memcpy(&h, rbuf, sizeof h);
            if (assigned[w] < 0 || h.task != assigned[w] || h.npix != sent[w][4] ||
                (size_t)count != sizeof h + sizeof(px_result) * (size_t)h.npix)
                fatal(NULL, "unexpected result from rank %d (task %d, %d pixels, %d bytes)",
                      w, h.task, h.npix, count);
            px_result *r = (px_result *)(void *)(rbuf + sizeof h);
            merge(best, (uint32_t)sent[w][3], r, (uint32_t)h.npix);
            fetched.all += h.fetched.all;
            fetched.db += h.fetched.db;
            fetched.cpu += h.fetched.cpu;
            done++;
            assigned[w] = -1;
            if (next < pl.ntasks) {
                task_of(o, &pl, next, sent[w]);
                MPI_Send(sent[w], 5, MPI_INT32_T, w, TAG_TASK, MPI_COMM_WORLD);
                assigned[w] = (int32_t)next++;
            }
        }
        finish_image(o, &ms, k, best, pl.npix, t0, fetched, pl.ntasks);
        free(best);
    }
    for (int w = 1; w < nranks; w++) MPI_Send(NULL, 0, MPI_INT32_T, w, TAG_STOP, MPI_COMM_WORLD);
    printf("{\"total_seconds\":%.3f,\"ranks\":%d,\"mode\":\"parallel\"}\n",
           lss_now() - t_all, nranks);
    fflush(stdout);
    free(rbuf);
    free(assigned);
    free(sent);
    ws_free(&ms);
}

static void run_worker(const opts *o)
{
    wstate ws;
    ws_init(&ws, o);
    size_t cap = sizeof(res_hdr) + sizeof(px_result) * o->block;
    unsigned char *sbuf = malloc(cap);
    if (!sbuf) fatal(NULL, "out of memory");
    for (;;) {
        int32_t m[5];
        MPI_Request req;
        MPI_Status st;
        MPI_Irecv(m, 5, MPI_INT32_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &req);
        wait_req(&req, &st);
        if (st.MPI_TAG == TAG_STOP) break;
        int count = 0;
        MPI_Get_count(&st, MPI_INT32_T, &count);
        if (st.MPI_TAG != TAG_TASK || count != 5 || m[1] < 1 || (unsigned)m[1] > o->images ||
            m[2] < 1 || (unsigned)m[2] > o->dbs || m[3] < 0 || m[4] < 1)
            fatal(NULL, "malformed task message from the master");
        res_hdr h = {m[0], m[4], {0, 0, 0.0}};
        px_result *r = (px_result *)(void *)(sbuf + sizeof h);
        do_task(&ws, (unsigned)m[1], (unsigned)m[2], (uint32_t)m[3], (uint32_t)m[4], r,
                &h.fetched);
        memcpy(sbuf, &h, sizeof h);
        MPI_Send(sbuf, (int)(sizeof h + sizeof(px_result) * (size_t)m[4]), MPI_BYTE, 0,
                 TAG_RESULT, MPI_COMM_WORLD);
    }
    free(sbuf);
    ws_free(&ws);
}

/* ---- command line ------------------------------------------------------- */
static void usage(void)
{
    fprintf(stderr,
        "usage: lss-mpi (--nfs nfs://SERVER/EXPORT | --data DIR) --cache DIR\n"
        "               (%%h in DIR becomes the host name)\n"
        "               [--out DIR] [--sequential] [--cold] [--images 6] [--dbs 4]\n"
        "               [--block 32] [--poly 2] [--nfs-cp nfs-cp]\n"
        "               [--fetch-timeout 600] [--max-file-mb 1024]\n"
        "  parallel: mpirun -np P lss-mpi ...   (rank 0 master, 1..P-1 workers)\n"
        "  files: db-J.lssdb (J=1..dbs), image-K.lssimg (K=1..images); results in\n"
        "  OUT/image-K.result; one JSON line per image on stdout\n");
}

static unsigned unum(const char *opt, const char *v, unsigned lo, unsigned hi)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "lss-mpi: %s: bad value '%s' (range %u..%u)\n", opt, v, lo, hi);
        exit(2);
    }
    return (unsigned)x;
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){0, 0, NULL, NULL, NULL, "lss-results", "nfs-cp", 6, 4, 32, 2, 600,
                (size_t)1024 << 20};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--sequential")) { o->sequential = 1; continue; }
        if (!strcmp(a, "--cold")) { o->cold = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); exit(0); }
        if (i + 1 >= argc) { usage(); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--nfs")) o->nfs = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--cache")) o->cache = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--nfs-cp")) o->nfs_cp = v;
        else if (!strcmp(a, "--images")) o->images = unum(a, v, 1, 1000);
        else if (!strcmp(a, "--dbs")) o->dbs = unum(a, v, 1, 64);
        else if (!strcmp(a, "--block")) o->block = unum(a, v, 1, 4096);
        else if (!strcmp(a, "--poly")) o->poly = unum(a, v, 0, FIT_MAX_POLY);
        else if (!strcmp(a, "--fetch-timeout")) o->timeout = (int)unum(a, v, 1, 86400);
        else if (!strcmp(a, "--max-file-mb")) o->max_bytes = (size_t)unum(a, v, 1, 65536) << 20;
        else { fprintf(stderr, "lss-mpi: unknown option %s\n", a); usage(); exit(2); }
    }
    if (!o->cache || (!o->nfs == !o->data)) {
        fprintf(stderr, "lss-mpi: need --cache and exactly one of --nfs / --data\n");
        usage();
        exit(2);
    }
    if (o->nfs && strncmp(o->nfs, "nfs://", 6) != 0) {
        fprintf(stderr, "lss-mpi: --nfs must be an nfs://server/export URL\n");
        exit(2);
    }
}

static void drop_all(const opts *o)
{
    cache_cfg cc = {o->cache, o->nfs, o->data, o->nfs_cp, o->timeout};
    char name[64], why[512];
    if (cache_init(&cc, why, sizeof why) != 0) fatal(o->cache, "%s", why);
    for (unsigned j = 1; j <= o->dbs; j++) {
        snprintf(name, sizeof name, "db-%u.lssdb", j);
        if (cache_drop(&cc, name, why, sizeof why) != 0) fatal(name, "%s", why);
    }
    for (unsigned k = 1; k <= o->images; k++) {
        snprintf(name, sizeof name, "image-%u.lssimg", k);
        if (cache_drop(&cc, name, why, sizeof why) != 0) fatal(name, "%s", why);
    }
}

/* "%h" in the cache path -> this host's name (hosts that share a file system,
 * e.g. network namespaces on one machine, still get one cache each) */
static const char *expand_host(const char *in, char *buf, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        const char *add = p[0] == '%' && p[1] == 'h' ? g_host : NULL;
        size_t len = add ? strlen(add) : 1;
        if (o + len + 1 > n) {
            fprintf(stderr, "lss-mpi: --cache path too long\n");
            exit(2);
        }
        memcpy(buf + o, add ? add : p, len);
        o += len;
        if (add) p++;
    }
    buf[o] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    opts o;
    static char cache_buf[4096];
    parse(argc, argv, &o);
    gethostname(g_host, sizeof g_host - 1);
    o.cache = expand_host(o.cache, cache_buf, sizeof cache_buf);
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
    if (o.sequential) {
        if (ws && atoi(ws) > 1) {
            fprintf(stderr, "lss-mpi: --sequential started as %s MPI ranks; use -np 1\n", ws);
            return 2;
        }
        if (mkdir(o.out, 0755) != 0 && errno != EEXIST) fatal(o.out, "%s", strerror(errno));
        if (o.cold) drop_all(&o);
        run_sequential(&o);
        return 0;
    }
    MPI_Init(&argc, &argv);
    g_mpi = 1;
    int nranks = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (nranks < 2) fatal(NULL, "parallel mode needs at least 2 ranks (or use --sequential)");
    if (g_rank == 0 && mkdir(o.out, 0755) != 0 && errno != EEXIST)
        fatal(o.out, "%s", strerror(errno));
    if (o.cold) drop_all(&o);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0)
        run_master(&o, nranks);
    else
        run_worker(&o);
    MPI_Finalize();
    return 0;
}
