/*
 * nfs-session: one NFS client session (one libnfs context, one mount) that
 * writes a numbered, timestamped record every --interval-ms for --seconds,
 * each record followed by an fsync, then reads the file back and checks that
 * every record is intact. Meant to keep running while the machine it runs on
 * is migrated: the network goes away for a few seconds and comes back.
 *
 *   nfs-session --url nfs://SERVER/EXPORT/FILE --seconds S
 *               [--interval-ms 100] [--record-bytes 64]
 *
 * stdout: "write <seq> <start> <end>" per record (after its fsync returned),
 * then "verified <ok> of <n>", "retries <k>", "max_write_s <s>".
 * Exit 0: every record intact and the file exactly n * record-bytes long;
 * 1: setup failure, deadline (S + 60 s) passed, or verification failed;
 * 2: bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

#define MAX_RECORDS 1000000L
#define MIN_RECORD_BYTES 40 /* "seq=00000000 t=1700000000.000000 " + '\n' is 34 */
#define MAX_RECORD_BYTES (1L << 20)
#define RETRY_PAUSE_NS 100000000L /* 100 ms between retries of a failed call */
#define GRACE_S 60.0              /* failed calls are retried until S + 60 s */
#define READ_CHUNK (64 * 1024)

static const char *prog = "nfs-session";

/* Set once the session started; the watchdog and retry() compare against it. */
static double deadline_mono;
static long retries;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s --url nfs://SERVER/EXPORT/FILE --seconds S "
            "[--interval-ms 100] [--record-bytes 64]\n",
            prog);
}

static void bad_args(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall clock: the timestamps written and printed. */
static double wall(void) { return clock_s(CLOCK_REALTIME); }
/* Monotonic clock: the schedule and the deadline (immune to clock steps). */
static double mono(void) { return clock_s(CLOCK_MONOTONIC); }

static void sleep_until_mono(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/*
 * A synchronous libnfs call on a stalled TCP connection blocks until TCP gets
 * through (no RPC timeout is set, like a hard mount). The watchdog makes the
 * deadline hold even then: SIGALRM at S + 60 s ends the process with status 1.
 */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "nfs-session: deadline (S + 60 s) passed inside an NFS call; giving up\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

static void arm_watchdog(double seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = (time_t)seconds;
    it.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
    if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
        it.it_value.tv_usec = 1;
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Count a retry and wait 100 ms, or give up past the deadline. */
static void pause_or_give_up(void)
{
    if (mono() + RETRY_PAUSE_NS / 1e9 > deadline_mono) {
        fprintf(stderr, "%s: deadline (S + 60 s) passed; giving up after %ld retries\n",
                prog, retries);
        exit(1);
    }
    retries++;
    struct timespec ts = {0, RETRY_PAUSE_NS};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* A call failed (returned rc < 0): report it with libnfs's message, then pause. */
static void retry(struct nfs_context *nfs, const char *what, long seq, int rc)
{
    const char *err = nfs_get_error(nfs);
    fprintf(stderr, "%s: %.6f %s", prog, wall(), what);
    if (seq >= 0)
        fprintf(stderr, " seq=%ld", seq);
    fprintf(stderr, " failed (%d, %s): %s\n", rc, strerror(-rc), err ? err : "");
    pause_or_give_up();
}

/* Record seq with timestamp t: "seq=%08d t=%.6f " padded with '.', ending in '\n'. */
static int format_record(char *buf, long rb, long seq, double t)
{
    int len = snprintf(buf, (size_t)rb, "seq=%08ld t=%.6f ", seq, t);
    if (len < 0 || len > rb - 1)
        return -1;
    memset(buf + len, '.', (size_t)(rb - 1 - len));
    buf[rb - 1] = '\n';
    return 0;
}

static long parse_long(const char *name, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "--%s: want an integer in %ld..%ld, got '%%s'", name, lo,
                 hi);
        bad_args(msg, s);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *url_text = NULL;
    double seconds = -1;
    long interval_ms = 100;
    long rb = 64;

    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"seconds", required_argument, NULL, 's'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"record-bytes", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            url_text = optarg;
            break;
        case 's': {
            char *end;
            errno = 0;
            seconds = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(seconds) || seconds <= 0)
                bad_args("--seconds: want a positive number, got '%s'", optarg);
            break;
        }
        case 'i':
            interval_ms = parse_long("interval-ms", optarg, 1, 3600000);
            break;
        case 'r':
            rb = parse_long("record-bytes", optarg, MIN_RECORD_BYTES, MAX_RECORD_BYTES);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad_args("unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bad_args("unexpected argument '%s'", argv[optind]);
    if (!url_text)
        bad_args("%s", "--url is required");
    if (seconds <= 0)
        bad_args("%s", "--seconds is required");
    if (strncmp(url_text, "nfs://", 6) != 0)
        bad_args("--url: want nfs://SERVER/EXPORT/FILE, got '%s'", url_text);
    /* Record i is due at i * interval < S: at most ceil(S / interval) records. */
    double max_records = ceil(seconds * 1000.0 / (double)interval_ms);
    if (max_records > (double)MAX_RECORDS) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "--seconds / --interval-ms allow %.0f records, more than the cap of %ld "
                 "(%%s)",
                 max_records, MAX_RECORDS);
        bad_args(msg, "use a longer interval or a shorter run");
    }
    long cap = (long)max_records;

    double *stamps = malloc((size_t)cap * sizeof *stamps);
    char *rec = malloc((size_t)rb);
    char *want = malloc((size_t)rb);
    if (!stamps || !rec || !want) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }

    /* SIGPIPE: a write to a connection the peer reset must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    struct nfs_context *nfs = nfs_init_context();
    if (!nfs) {
        fprintf(stderr, "%s: nfs_init_context failed\n", prog);
        return 1;
    }
    /*
     * libnfs reconnects a broken session by itself (auto-reconnect is on by
     * default) and re-sends the calls in flight. -1: retry the reconnect
     * forever, like a hard mount, instead of a bounded number of attempts.
     * Set before parsing the URL so that ?autoreconnect=N in the URL wins.
     * No RPC timeout is set (nfs_set_timeout): a call on a stalled connection
     * waits for TCP, the watchdog bounds the whole run.
     */
    nfs_set_autoreconnect(nfs, -1);
    struct nfs_url *url = nfs_parse_url_full(nfs, url_text);
    if (!url) {
        fprintf(stderr, "%s: --url: %s\n", prog, nfs_get_error(nfs));
        usage(stderr);
        nfs_destroy_context(nfs);
        return 2;
    }

    if (!url->server || !*url->server || !url->path || !*url->path || !url->file) {
        /* libnfs 4.0's parser leaves a one-character server name NULL (and then
         * nfs_mount crashes on it; nfs-ls too) */
        fprintf(stderr, "%s: --url: want nfs://SERVER/EXPORT/FILE (a server name of at least "
                "two characters), got '%s'\n", prog, url_text);
        usage(stderr);
        return 2;
    }

    /* Setup failures (no server, wrong export, no permission) end the run at
     * once; a setup that hangs is bounded by the watchdog too. */
    arm_watchdog(seconds + GRACE_S);
    int rc = nfs_mount(nfs, url->server, url->path);
    if (rc < 0) {
        fprintf(stderr, "%s: mount %s:%s failed: %s\n", prog, url->server, url->path,
                nfs_get_error(nfs));
        return 1;
    }
    struct nfsfh *fh = NULL;
    rc = nfs_create(nfs, url->file, O_TRUNC, 0644, &fh);
    if (rc < 0) {
        fprintf(stderr, "%s: create %s failed: %s\n", prog, url->file, nfs_get_error(nfs));
        return 1;
    }

    /* ---- the session: record i due at t0 + i * interval, none skipped ---- */
    double t0 = mono();
    deadline_mono = t0 + seconds + GRACE_S;
    arm_watchdog(seconds + GRACE_S);
    double interval = (double)interval_ms / 1000.0;
    double end_mono = t0 + seconds;
    double max_write = 0;
    long n = 0;
    while (n < cap) {
        double due = t0 + (double)n * interval;
        if (due >= end_mono)
            break;
        double now = mono();
        if (now >= end_mono)
            break;
        if (due > now)
            sleep_until_mono(due);
        double start = wall();
        stamps[n] = start;
        if (format_record(rec, rb, n, start) < 0) {
            fprintf(stderr, "%s: record %ld does not fit in %ld bytes\n", prog, n, rb);
            return 1;
        }
        uint64_t off = (uint64_t)n * (uint64_t)rb;
        for (;;) {
            rc = nfs_pwrite(nfs, fh, off, (uint64_t)rb, rec);
            if (rc < 0) {
                retry(nfs, "pwrite", n, rc);
                continue;
            }
            if (rc != rb) {
                fprintf(stderr, "%s: %.6f pwrite seq=%ld wrote %d of %ld bytes\n", prog,
                        wall(), n, rc, rb);
                pause_or_give_up();
                continue;
            }
            rc = nfs_fsync(nfs, fh);
            if (rc < 0) {
                /* write again too: the server may have lost unstable data */
                retry(nfs, "fsync", n, rc);
                continue;
            }
            break;
        }
        double end = wall();
        if (end - start > max_write)
            max_write = end - start;
        printf("write %ld %.6f %.6f\n", n, start, end);
        fflush(stdout);
        n++;
    }

    /* ---- read back through a fresh read-only handle and check ---- */
    rc = nfs_close(nfs, fh);
    if (rc < 0)
        fprintf(stderr, "%s: close failed (%d): %s\n", prog, rc, nfs_get_error(nfs));
    fh = NULL;
    while ((rc = nfs_open(nfs, url->file, O_RDONLY, &fh)) < 0)
        retry(nfs, "open O_RDONLY", -1, rc);
    struct nfs_stat_64 st;
    while ((rc = nfs_fstat64(nfs, fh, &st)) < 0)
        retry(nfs, "fstat", -1, rc);

    long per_chunk = READ_CHUNK / rb > 0 ? READ_CHUNK / rb : 1;
    char *buf = malloc((size_t)(per_chunk * rb));
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    long ok = 0, bad = 0;
    uint64_t got_total = 0;
    int eof = 0;
    for (long first = 0; first < n && !eof; first += per_chunk) {
        long m = n - first < per_chunk ? n - first : per_chunk;
        uint64_t want_bytes = (uint64_t)m * (uint64_t)rb;
        uint64_t base = (uint64_t)first * (uint64_t)rb;
        uint64_t got = 0;
        while (got < want_bytes) {
            rc = nfs_pread(nfs, fh, base + got, want_bytes - got, buf + got);
            if (rc < 0) {
                retry(nfs, "pread", -1, rc);
                continue;
            }
            if (rc == 0) {
                eof = 1;
                break;
            }
            got += (uint64_t)rc;
        }
        got_total += got;
        for (long k = 0; k < m; k++) {
            long i = first + k;
            format_record(want, rb, i, stamps[i]);
            if ((uint64_t)(k + 1) * (uint64_t)rb <= got &&
                memcmp(buf + (size_t)k * (size_t)rb, want, (size_t)rb) == 0)
                ok++;
            else if (++bad <= 10)
                fprintf(stderr, "%s: record %ld missing or damaged%s\n", prog, i,
                        bad == 10 ? " (not reporting more)" : "");
        }
    }
    /* anything past the last record? */
    char extra[1];
    uint64_t expect_size = (uint64_t)n * (uint64_t)rb;
    while ((rc = nfs_pread(nfs, fh, expect_size, 1, extra)) < 0)
        retry(nfs, "pread (end)", -1, rc);
    int size_ok = st.nfs_size == expect_size && rc == 0 && got_total == expect_size;
    if (!size_ok)
        fprintf(stderr,
                "%s: file size %" PRIu64 " (read %" PRIu64 "%s), want %" PRIu64
                " = %ld records x %ld bytes\n",
                prog, (uint64_t)st.nfs_size, got_total, rc > 0 ? " and more" : "",
                expect_size, n, rb);
    rc = nfs_close(nfs, fh);
    if (rc < 0)
        fprintf(stderr, "%s: close failed (%d): %s\n", prog, rc, nfs_get_error(nfs));

    printf("verified %ld of %ld\n", ok, n);
    printf("retries %ld\n", retries);
    printf("max_write_s %.6f\n", max_write);
    fflush(stdout);

    nfs_umount(nfs);
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);
    free(buf);
    free(want);
    free(rec);
    free(stamps);
    return ok == n && size_ok ? 0 : 1;
}
