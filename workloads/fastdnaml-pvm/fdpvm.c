/*
 * fdpvm: the structure of the PVM parallel fastDNAml (a master building the
 * tree by stepwise addition and local rearrangement, farming every candidate
 * tree to workers), with every candidate scored by the real likelihood code:
 * each evaluation runs the serial /usr/bin/fastDNAml in user-tree mode (U),
 * which optimises all branch lengths of the given topology and prints its
 * log likelihood.
 *
 * One source, two programs:
 *   cc -O2 fdpvm.c -lpvm3 -o fdpvm-master
 *   cc -O2 -DFDPVM_WORKER fdpvm.c -lpvm3 -o fdpvm-worker
 *
 * See README.md for the algorithm, the protocol and the PVM recipe.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pvm3.h>

/* ------------------------------------------------------------------ */
/* limits                                                              */
/* ------------------------------------------------------------------ */
#define MAX_TAXA 512
#define MAX_NODES (2 * MAX_TAXA)
#define MAX_SITES 200000
#define MAX_LINE (MAX_SITES + 4096)
#define NAMELEN 10
#define MAX_TREE_STR (MAX_TAXA * 48 + 256) /* a Newick string with lengths */
#define MAX_OUT_BYTES (1 << 20)            /* fastDNAml stdout we read */
#define MAX_MSG 512                        /* error messages */
#define MAX_HOSTNAME 256
#define MAX_WORKERS 1024
#define MAX_PREFETCH 8
#define NNI_EPS 0.5e-5 /* a rearrangement must gain more than this (half the printed unit) */
#define MAX_NNI_ROUNDS 100

/* message tags */
enum {
    TAG_INIT = 101,  /* master -> worker: alignment and model */
    TAG_HELLO,       /* worker -> master: ready (status, hostname, message) */
    TAG_JOB,         /* master -> worker: one candidate tree */
    TAG_RESULT,      /* worker -> master: its likelihood and optimised tree */
    TAG_EXIT,        /* master -> worker: leave */
    TAG_TASKEXIT,    /* pvm_notify: a task exited */
    TAG_HOSTDEL      /* pvm_notify: a host left the virtual machine */
};

extern char *pvm_errlist[];
extern int pvm_nerr;

static const char *prog = "fdpvm";

/* ------------------------------------------------------------------ */
/* small utilities                                                     */
/* ------------------------------------------------------------------ */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *pvm_err(int code)
{
    static char buf[64];
    if (code < 0 && -code < pvm_nerr && pvm_errlist[-code]) return pvm_errlist[-code];
    snprintf(buf, sizeof buf, "PVM error %d", code);
    return buf;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", prog, n);
        exit(1);
    }
    return p;
}

__attribute__((unused)) static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/* bounded string builder */
struct sbuf {
    char *p;
    size_t len, cap;
    int overflow;
};

__attribute__((unused)) static void sb_init(struct sbuf *b, char *mem, size_t cap)
{
    b->p = mem;
    b->cap = cap;
    b->len = 0;
    b->overflow = 0;
    if (cap) mem[0] = 0;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), unused));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = 1;
        b->p[b->len] = 0;
        return;
    }
    b->len += (size_t)n;
}

__attribute__((unused)) static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the alignment                                                       */
/* ------------------------------------------------------------------ */
struct aln {
    int ntaxa, nsites;
    char name[MAX_TAXA][NAMELEN + 1];
    char *seq[MAX_TAXA];
    int freq5[4];   /* base frequencies in units of 1e-5, sum 100000 */
    double ttratio; /* fastDNAml's T option */
};

/* ------------------------------------------------------------------ */
/* one evaluation: run fastDNAml on a user tree                       */
/* ------------------------------------------------------------------ */
struct evalres {
    double lnl;
    char tree[MAX_TREE_STR];
    char msg[MAX_MSG];
    double seconds;
};

/* paths of the evaluation in progress, for the signal handler */
static char ev_dir[PATH_MAX / 2], ev_in[PATH_MAX], ev_out[PATH_MAX], ev_err[PATH_MAX], ev_tree[PATH_MAX],
    ev_ckpt[PATH_MAX];
static char base_dir[PATH_MAX / 4]; /* a worker's own scratch dir (or empty) */
static volatile pid_t ev_child = 0;
static volatile sig_atomic_t got_signal = 0;

static void on_signal(int sig)
{
    got_signal = sig;
    if (ev_child > 0) kill(ev_child, SIGKILL);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* SIGCHLD stays blocked: the evaluation waits for it with sigtimedwait */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static void remove_eval_files(void)
{
    if (!ev_dir[0]) return;
    unlink(ev_in);
    unlink(ev_out);
    unlink(ev_err);
    if (ev_tree[0]) unlink(ev_tree);
    if (ev_ckpt[0]) unlink(ev_ckpt);
    /* anything else fastDNAml may have left */
    DIR *d = opendir(ev_dir);
    if (d) {
        struct dirent *de;
        char p[PATH_MAX];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            if ((size_t)snprintf(p, sizeof p, "%s/%s", ev_dir, de->d_name) < sizeof p) unlink(p);
        }
        closedir(d);
    }
    rmdir(ev_dir);
    ev_dir[0] = 0;
}

/* read at most max bytes of a file into a NUL-terminated malloc'd buffer */
static char *slurp(const char *path, size_t max, size_t *lenp, int *too_big)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = xmalloc(max + 1);
    size_t n = fread(buf, 1, max, f);
    *too_big = 0;
    if (n == max && fgetc(f) != EOF) *too_big = 1;
    buf[n] = 0;
    if (lenp) *lenp = n;
    fclose(f);
    return buf;
}

/* last non-empty line of a text, for error messages */
static void last_line(const char *text, char *out, size_t outlen)
{
    const char *end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1])) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    size_t n = (size_t)(end - start);
    if (n >= outlen) n = outlen - 1;
    memcpy(out, start, n);
    out[n] = 0;
}

/* Evaluate the user tree `newick` over the taxa taxa[0..nt-1].
 * Returns 0 and fills r->lnl / r->tree, or -1 with r->msg. */
static int eval_tree(const struct aln *a, const int *taxa, int nt, const char *newick,
                     const char *scratch, const char *fastdnaml, double timeout, struct evalres *r)
{
    double t0 = now_s();
    r->msg[0] = 0;
    r->tree[0] = 0;
    r->lnl = 0;
    const char *parent = base_dir[0] ? base_dir : scratch;
    if ((size_t)snprintf(ev_dir, sizeof ev_dir, "%s/ev-XXXXXX", parent) >= sizeof ev_dir) {
        snprintf(r->msg, sizeof r->msg, "scratch path too long");
        ev_dir[0] = 0;
        return -1;
    }
    if (!mkdtemp(ev_dir)) {
        snprintf(r->msg, sizeof r->msg, "cannot create a directory in %.300s: %s", parent, strerror(errno));
        ev_dir[0] = 0;
        return -1;
    }
    snprintf(ev_in, sizeof ev_in, "%s/in.phy", ev_dir);
    snprintf(ev_out, sizeof ev_out, "%s/out.txt", ev_dir);
    snprintf(ev_err, sizeof ev_err, "%s/err.txt", ev_dir);
    ev_tree[0] = ev_ckpt[0] = 0;

    int rc = -1;
    char *out = NULL;
    FILE *f = fopen(ev_in, "w");
    if (!f) {
        snprintf(r->msg, sizeof r->msg, "cannot write %.300s: %s", ev_in, strerror(errno));
        goto done;
    }
    /* U: user tree, F: our base frequencies (from the whole alignment),
     * T: transition/transversion ratio.  Branch lengths are not given (no L
     * option), so fastDNAml optimises them all from its default start. */
    fprintf(f, "%d %d U F T\n", nt, a->nsites);
    /* fastDNAml wants the T line before the "F ..." frequencies line */
    fprintf(f, "T %.6f\n", a->ttratio);
    fprintf(f, "F %d.%05d %d.%05d %d.%05d %d.%05d\n", a->freq5[0] / 100000, a->freq5[0] % 100000,
            a->freq5[1] / 100000, a->freq5[1] % 100000, a->freq5[2] / 100000, a->freq5[2] % 100000,
            a->freq5[3] / 100000, a->freq5[3] % 100000);
    for (int i = 0; i < nt; i++) fprintf(f, "%-10s%s\n", a->name[taxa[i]], a->seq[taxa[i]]);
    fprintf(f, "1\n%s\n", newick);
    if (fflush(f) || ferror(f)) {
        snprintf(r->msg, sizeof r->msg, "write error on %.300s: %s", ev_in, strerror(errno));
        fclose(f);
        goto done;
    }
    if (fclose(f)) {
        snprintf(r->msg, sizeof r->msg, "write error on %.300s: %s", ev_in, strerror(errno));
        goto done;
    }

    sigset_t chld, oldmask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->msg, sizeof r->msg, "fork: %s", strerror(errno));
        goto done;
    }
    if (pid == 0) {
        sigemptyset(&oldmask);
        sigprocmask(SIG_SETMASK, &oldmask, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        int in = open(ev_in, O_RDONLY);
        int o = open(ev_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(ev_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0 || e < 0 || chdir(ev_dir) < 0) _exit(126);
        if (dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
        closefrom(3);
        execl(fastdnaml, fastdnaml, (char *)NULL);
        _exit(127);
    }
    ev_child = pid;
    snprintf(ev_tree, sizeof ev_tree, "%s/treefile.%d", ev_dir, (int)pid);
    snprintf(ev_ckpt, sizeof ev_ckpt, "%s/checkpoint.%d", ev_dir, (int)pid);
    int status = 0, reaped = 0;
    double deadline = now_s() + timeout;
    while (!reaped) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = 1;
            break;
        }
        if (w < 0 && errno != EINTR) {
            snprintf(r->msg, sizeof r->msg, "waitpid: %s", strerror(errno));
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ev_child = 0;
            goto done;
        }
        if (got_signal) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ev_child = 0;
            snprintf(r->msg, sizeof r->msg, "interrupted by signal %d", (int)got_signal);
            goto done;
        }
        double left = deadline - now_s();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ev_child = 0;
            snprintf(r->msg, sizeof r->msg, "fastDNAml did not finish within %.0f s (killed)", timeout);
            goto done;
        }
        if (left > 0.5) left = 0.5;
        struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
        siginfo_t si;
        sigtimedwait(&chld, &si, &ts); /* SIGCHLD, timeout or EINTR: loop re-checks */
    }
    ev_child = 0;

    size_t outlen = 0;
    int big = 0;
    out = slurp(ev_out, MAX_OUT_BYTES, &outlen, &big);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[200] = "";
        char *errtxt = slurp(ev_err, 4096, NULL, &big);
        if (errtxt && errtxt[0]) last_line(errtxt, tail, sizeof tail);
        else if (out) last_line(out, tail, sizeof tail);
        free(errtxt);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            snprintf(r->msg, sizeof r->msg, "cannot execute %.300s", fastdnaml);
        else if (WIFEXITED(status))
            snprintf(r->msg, sizeof r->msg, "fastDNAml exited with status %d: %s", WEXITSTATUS(status), tail);
        else
            snprintf(r->msg, sizeof r->msg, "fastDNAml killed by signal %d", WTERMSIG(status));
        goto done;
    }
    if (!out) {
        snprintf(r->msg, sizeof r->msg, "fastDNAml wrote no output");
        goto done;
    }
    if (big) {
        snprintf(r->msg, sizeof r->msg, "fastDNAml output larger than %d bytes", MAX_OUT_BYTES);
        goto done;
    }
    {
        const char *key = "Ln Likelihood =";
        char *p = strstr(out, key);
        if (!p) {
            char tail[200];
            last_line(out, tail, sizeof tail);
            snprintf(r->msg, sizeof r->msg, "no \"Ln Likelihood\" in fastDNAml output (last line: %s)", tail);
            goto done;
        }
        if (strstr(p + 1, key)) {
            snprintf(r->msg, sizeof r->msg, "more than one \"Ln Likelihood\" in fastDNAml output");
            goto done;
        }
        char *end;
        errno = 0;
        double v = strtod(p + strlen(key), &end);
        if (errno || end == p + strlen(key) || !isfinite(v) || v > 0) {
            snprintf(r->msg, sizeof r->msg, "unparsable log likelihood in fastDNAml output");
            goto done;
        }
        r->lnl = v;
    }
    {
        size_t tl = 0;
        char *tr = slurp(ev_tree, sizeof r->tree - 1, &tl, &big);
        if (!tr) {
            snprintf(r->msg, sizeof r->msg, "fastDNAml wrote no tree file (%.300s)", ev_tree);
            goto done;
        }
        if (big) {
            free(tr);
            snprintf(r->msg, sizeof r->msg, "fastDNAml tree file too large");
            goto done;
        }
        while (tl > 0 && isspace((unsigned char)tr[tl - 1])) tr[--tl] = 0;
        if (tl == 0 || tr[tl - 1] != ';' || strchr(tr, '\n')) {
            free(tr);
            snprintf(r->msg, sizeof r->msg, "fastDNAml tree file is not one Newick tree");
            goto done;
        }
        memcpy(r->tree, tr, tl + 1);
        free(tr);
    }
    rc = 0;
done:
    free(out);
    remove_eval_files();
    r->seconds = now_s() - t0;
    return rc;
}

/* pack / unpack strings with an explicit, checked length */
static int pk_str(const char *s)
{
    int n = (int)strlen(s);
    int rc = pvm_pkint(&n, 1, 1);
    if (rc >= 0 && n > 0) rc = pvm_pkbyte((char *)s, n, 1);
    return rc;
}

static int upk_str(char *buf, int cap)
{
    int n, rc = pvm_upkint(&n, 1, 1);
    if (rc < 0) return rc;
    if (n < 0 || n >= cap) return PvmBadMsg;
    if (n > 0 && (rc = pvm_upkbyte(buf, n, 1)) < 0) return rc;
    buf[n] = 0;
    return 0;
}

static void local_hostname(char *h, size_t n)
{
    if (gethostname(h, n) != 0) snprintf(h, n, "unknown");
    h[n - 1] = 0;
}

static const char *default_scratch(void)
{
    const char *s = getenv("PVM_TMP");
    if (!s || !*s) s = getenv("TMPDIR");
    if (!s || !*s) s = "/tmp";
    return s;
}

#ifdef FDPVM_WORKER
/* ================================================================== */
/* the worker                                                          */
/* ================================================================== */
static struct aln A;

static void worker_fail_hello(int parent, const char *host, const char *msg)
{
    int st = 1;
    if (pvm_initsend(PvmDataDefault) >= 0 && pvm_pkint(&st, 1, 1) >= 0 && pk_str(host) >= 0 &&
        pk_str(msg) >= 0)
        pvm_send(parent, TAG_HELLO);
    fprintf(stderr, "%s: %s\n", prog, msg);
}

int main(int argc, char **argv)
{
    prog = "fdpvm-worker";
    const char *fastdnaml = "/usr/bin/fastDNAml";
    const char *scratch = NULL;
    double timeout = 600;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: option %s needs a value\n", prog, argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--fastdnaml")) fastdnaml = argv[++i];
        else if (!strcmp(argv[i], "--scratch")) scratch = argv[++i];
        else if (!strcmp(argv[i], "--eval-timeout")) {
            if (parse_dbl(argv[++i], 1, 86400, &timeout)) {
                fprintf(stderr, "%s: bad --eval-timeout\n", prog);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option %s\n", prog, argv[i]);
            return 2;
        }
    }
    if (!scratch) scratch = default_scratch();
    install_signals();
    char host[MAX_HOSTNAME];
    local_hostname(host, sizeof host);

    int mytid = pvm_mytid();
    if (mytid < 0) {
        fprintf(stderr, "%s: cannot attach to pvmd: %s\n", prog, pvm_err(mytid));
        return 1;
    }
    int parent = pvm_parent();
    if (parent < 0) {
        fprintf(stderr, "%s: not spawned by fdpvm-master (pvm_parent: %s)\n", prog, pvm_err(parent));
        pvm_exit();
        return 2;
    }
    int rc = pvm_notify(PvmTaskExit, TAG_TASKEXIT, 1, &parent);
    if (rc < 0) fprintf(stderr, "%s: pvm_notify: %s (continuing)\n", prog, pvm_err(rc));

    /* the alignment */
    int bufid = pvm_recv(parent, TAG_INIT);
    if (bufid < 0) {
        fprintf(stderr, "%s: waiting for the alignment: %s\n", prog, pvm_err(bufid));
        pvm_exit();
        return 1;
    }
    char msg[MAX_MSG];
    int nt, ns;
    if (pvm_upkint(&nt, 1, 1) < 0 || pvm_upkint(&ns, 1, 1) < 0 || nt < 4 || nt > MAX_TAXA || ns < 1 ||
        ns > MAX_SITES || pvm_upkint(A.freq5, 4, 1) < 0 || pvm_upkdouble(&A.ttratio, 1, 1) < 0) {
        worker_fail_hello(parent, host, "malformed alignment message");
        pvm_exit();
        return 1;
    }
    A.ntaxa = nt;
    A.nsites = ns;
    for (int i = 0; i < nt; i++) {
        A.seq[i] = xmalloc((size_t)ns + 1);
        if (upk_str(A.name[i], NAMELEN + 1) < 0 || upk_str(A.seq[i], ns + 1) < 0 ||
            (int)strlen(A.seq[i]) != ns) {
            worker_fail_hello(parent, host, "malformed alignment message");
            pvm_exit();
            return 1;
        }
    }
    /* checks: fastDNAml runnable, scratch writable */
    if (access(fastdnaml, X_OK) != 0) {
        snprintf(msg, sizeof msg, "cannot execute %s on %s: %s", fastdnaml, host, strerror(errno));
        worker_fail_hello(parent, host, msg);
        pvm_exit();
        return 1;
    }
    if ((size_t)snprintf(base_dir, sizeof base_dir, "%s/fdpvm-w%x-XXXXXX", scratch, (unsigned)mytid) >=
            sizeof base_dir ||
        !mkdtemp(base_dir)) {
        snprintf(msg, sizeof msg, "cannot create a scratch directory in %s on %s: %s", scratch, host,
                 strerror(errno));
        base_dir[0] = 0;
        worker_fail_hello(parent, host, msg);
        pvm_exit();
        return 1;
    }
    {
        int st = 0;
        if (pvm_initsend(PvmDataDefault) < 0 || pvm_pkint(&st, 1, 1) < 0 || pk_str(host) < 0 ||
            pk_str("ready") < 0 || (rc = pvm_send(parent, TAG_HELLO)) < 0) {
            fprintf(stderr, "%s: cannot send HELLO\n", prog);
            rmdir(base_dir);
            pvm_exit();
            return 1;
        }
    }

    static char newick[MAX_TREE_STR];
    static struct evalres res;
    int taxa[MAX_TAXA];
    int exit_code = 0;
    for (;;) {
        if (got_signal) {
            exit_code = 1;
            break;
        }
        struct timeval tv = {1, 0};
        bufid = pvm_trecv(-1, -1, &tv);
        if (bufid == 0) continue;
        if (bufid < 0) {
            fprintf(stderr, "%s: pvm_recv: %s\n", prog, pvm_err(bufid));
            exit_code = 1;
            break;
        }
        int bytes, tag, src;
        if (pvm_bufinfo(bufid, &bytes, &tag, &src) < 0) continue;
        if (tag == TAG_EXIT) break;
        if (tag == TAG_TASKEXIT) {
            int who = 0;
            pvm_upkint(&who, 1, 1);
            if (who == parent) {
                fprintf(stderr, "%s: master t%x exited; leaving\n", prog, (unsigned)parent);
                exit_code = 1;
                break;
            }
            continue;
        }
        if (tag != TAG_JOB || src != parent) continue;
        int jobid, k, bad = 0;
        if (pvm_upkint(&jobid, 1, 1) < 0 || pvm_upkint(&k, 1, 1) < 0 || k < 4 || k > A.ntaxa ||
            pvm_upkint(taxa, k, 1) < 0 || upk_str(newick, sizeof newick) < 0)
            bad = 1;
        for (int i = 0; !bad && i < k; i++)
            if (taxa[i] < 0 || taxa[i] >= A.ntaxa) bad = 1;
        int st;
        if (bad) {
            st = 1;
            snprintf(res.msg, sizeof res.msg, "malformed job message");
            res.lnl = 0;
            res.tree[0] = 0;
            res.seconds = 0;
        } else {
            st = eval_tree(&A, taxa, k, newick, scratch, fastdnaml, timeout, &res) == 0 ? 0 : 1;
        }
        if (pvm_initsend(PvmDataDefault) < 0 || pvm_pkint(&jobid, 1, 1) < 0 || pvm_pkint(&st, 1, 1) < 0 ||
            pvm_pkdouble(&res.lnl, 1, 1) < 0 || pvm_pkdouble(&res.seconds, 1, 1) < 0 ||
            pk_str(st == 0 ? res.tree : res.msg) < 0 || (rc = pvm_send(parent, TAG_RESULT)) < 0) {
            fprintf(stderr, "%s: cannot send a result to the master\n", prog);
            exit_code = 1;
            break;
        }
    }
    remove_eval_files();
    if (base_dir[0]) rmdir(base_dir);
    pvm_exit();
    return exit_code;
}

#else
/* ================================================================== */
/* the master                                                          */
/* ================================================================== */
static struct aln A;
static int rank_of[MAX_TAXA];

static int valid_name_char(int c)
{
    return isgraph(c) && !strchr("()[]:;,'\"", c);
}

static int valid_base(int c)
{
    return c && strchr("ACGTURYMKSWHBVDN-?", c) != NULL;
}

/* one line into buf (at most max characters plus the NUL, newline
 * included); returns its length, -1 at end of file, -2 if longer than max
 * (the rest of the line is not read), -3 on a NUL byte */
static long read_line(FILE *f, char *buf, long max)
{
    long n = 0;
    int c, nul = 0;
    while ((c = getc(f)) != EOF) {
        if (n >= max) return -2;
        if (c == 0) nul = 1;
        buf[n++] = (char)c;
        if (c == '\n') break;
    }
    buf[n] = 0;
    if (n == 0 && c == EOF) return -1;
    return nul ? -3 : n;
}

/* Reads an interleaved (or one-line-per-taxon) PHYLIP alignment.  On error
 * writes "file:line: reason" to err and returns -1. */
static int read_alignment(const char *path, struct aln *a, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *line = xmalloc(MAX_LINE + 2);
    long len;
    long lineno = 0;
    int have_header = 0, block = 0, t = 0, rc = -1;
    int filled[MAX_TAXA];
    memset(a->seq, 0, sizeof a->seq);

#define FAIL(...)                                                      \
    do {                                                               \
        char m_[MAX_MSG];                                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);                          \
        snprintf(err, errlen, "%s:%ld: %s", path, lineno, m_);         \
        goto out;                                                      \
    } while (0)

    while ((len = read_line(f, line, MAX_LINE + 1)) != -1) {
        lineno++;
        if (len == -2) FAIL("line longer than %d characters", MAX_LINE);
        if (len == -3) FAIL("NUL byte in line");
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        int blank = 1;
        for (long i = 0; i < len; i++)
            if (!isspace((unsigned char)line[i])) blank = 0;
        if (!have_header) {
            if (blank) continue;
            int nt, ns, used = 0;
            if (sscanf(line, "%d %d%n", &nt, &ns, &used) != 2)
                FAIL("header must be \"ntaxa nsites\"");
            for (const char *p = line + used; *p; p++)
                if (!isspace((unsigned char)*p))
                    FAIL("unexpected text after \"ntaxa nsites\" in the header (options are not supported)");
            if (nt < 4 || nt > MAX_TAXA) FAIL("number of taxa %d not in 4..%d", nt, MAX_TAXA);
            if (ns < 1 || ns > MAX_SITES) FAIL("number of sites %d not in 1..%d", ns, MAX_SITES);
            a->ntaxa = nt;
            a->nsites = ns;
            for (int i = 0; i < nt; i++) {
                a->seq[i] = xmalloc((size_t)ns + 1);
                a->seq[i][0] = 0;
                filled[i] = 0;
            }
            have_header = 1;
            continue;
        }
        int done = 1;
        for (int i = 0; i < a->ntaxa; i++)
            if (filled[i] < a->nsites) done = 0;
        if (blank) continue;
        if (done) FAIL("extra data after the complete alignment");
        const char *p = line;
        if (block == 0) {
            if (len < NAMELEN) FAIL("line too short for a %d-character name", NAMELEN);
            char nm[NAMELEN + 1];
            memcpy(nm, line, NAMELEN);
            nm[NAMELEN] = 0;
            int e = NAMELEN;
            while (e > 0 && nm[e - 1] == ' ') nm[--e] = 0;
            if (e == 0) FAIL("empty taxon name");
            if (nm[0] == ' ') FAIL("taxon name \"%s\" starts with a blank", nm);
            for (int i = 0; i < e; i++)
                if (!valid_name_char((unsigned char)nm[i]))
                    FAIL("taxon name \"%s\" contains '%c' (blanks and ()[]:;,'\" are not allowed)", nm,
                         nm[i]);
            for (int i = 0; i < t; i++)
                if (!strcmp(a->name[i], nm)) FAIL("duplicate taxon name \"%s\"", nm);
            memcpy(a->name[t], nm, NAMELEN + 1);
            p = line + NAMELEN;
        }
        for (; *p; p++) {
            int c = (unsigned char)*p;
            if (isspace(c) || isdigit(c)) continue;
            c = toupper(c);
            if (!valid_base(c))
                FAIL("invalid character '%c' in the sequence of %s (column %ld)", isprint(c) ? c : '?',
                     a->name[t], (long)(p - line) + 1);
            if (filled[t] >= a->nsites)
                FAIL("sequence of %s is longer than %d sites", a->name[t], a->nsites);
            a->seq[t][filled[t]++] = (char)c;
        }
        t++;
        if (t == a->ntaxa) {
            t = 0;
            block++;
        }
    }
    if (ferror(f)) FAIL("read error: %s", strerror(errno));
    if (!have_header) FAIL("empty file (no \"ntaxa nsites\" header)");
    for (int i = 0; i < a->ntaxa; i++) {
        if (block == 0 && i >= t) FAIL("unexpected end of file: only %d of %d taxa", t, a->ntaxa);
        if (filled[i] != a->nsites)
            FAIL("unexpected end of file: sequence of %s has %d of %d sites", a->name[i], filled[i],
                 a->nsites);
        a->seq[i][a->nsites] = 0;
    }
    /* empirical base frequencies of the whole alignment, rounded to 1e-5
     * with the largest-remainder rule so that they sum to exactly 1 */
    {
        double cnt[4] = {0, 0, 0, 0}, tot = 0;
        for (int i = 0; i < a->ntaxa; i++)
            for (int s = 0; s < a->nsites; s++) {
                const char *q = strchr("ACGTU", a->seq[i][s]);
                if (q) {
                    int b = (int)(q - "ACGTU");
                    cnt[b == 4 ? 3 : b]++;
                    tot++;
                }
            }
        if (tot == 0) FAIL("the alignment has no A, C, G or T");
        int sum = 0;
        double rem[4];
        for (int b = 0; b < 4; b++) {
            double x = cnt[b] / tot * 100000.0;
            a->freq5[b] = (int)floor(x);
            rem[b] = x - a->freq5[b];
            sum += a->freq5[b];
        }
        while (sum < 100000) {
            int bi = 0;
            for (int b = 1; b < 4; b++)
                if (rem[b] > rem[bi]) bi = b;
            a->freq5[bi]++;
            rem[bi] = -1;
            sum++;
        }
        for (int b = 0; b < 4; b++)
            if (a->freq5[b] == 0) {
                /* fastDNAml needs every frequency > 0 */
                int bi = 0;
                for (int c = 1; c < 4; c++)
                    if (a->freq5[c] > a->freq5[bi]) bi = c;
                a->freq5[bi]--;
                a->freq5[b] = 1;
            }
    }
    rc = 0;
out:
#undef FAIL
    free(line);
    fclose(f);
    return rc;
}

 /* position of each taxon in the addition order */

/* ---------------- unrooted binary tree ---------------- */
/* leaves are the taxon indices 0..ntaxa-1; internal nodes from ntaxa up */
struct tree {
    int nb[MAX_NODES][3];
    double len[MAX_NODES][3];
    int deg[MAX_NODES];
    int next_internal;
    int ntips;
    int root_leaf; /* the first taxon of the addition order */
};

static void tree_clear(struct tree *t)
{
    memset(t->deg, 0, sizeof t->deg);
    t->next_internal = A.ntaxa;
    t->ntips = 0;
    t->root_leaf = -1;
}

static int tree_link(struct tree *t, int u, int v, double l)
{
    if (t->deg[u] >= 3 || t->deg[v] >= 3) return -1;
    t->nb[u][t->deg[u]] = v;
    t->len[u][t->deg[u]++] = l;
    t->nb[v][t->deg[v]] = u;
    t->len[v][t->deg[v]++] = l;
    return 0;
}

static int nb_index(const struct tree *t, int u, int v)
{
    for (int i = 0; i < t->deg[u]; i++)
        if (t->nb[u][i] == v) return i;
    return -1;
}

/* replace the neighbour `old` of u by `nw` (keeping the slot and length) */
static void tree_repoint(struct tree *t, int u, int old, int nw, double l)
{
    int i = nb_index(t, u, old);
    t->nb[u][i] = nw;
    t->len[u][i] = l;
}

static int tree_new_internal(struct tree *t)
{
    if (t->next_internal >= MAX_NODES) return -1;
    int w = t->next_internal++;
    t->deg[w] = 0;
    return w;
}

/* insert leaf q on the branch u-v */
static int tree_insert(struct tree *t, int u, int v, int q)
{
    int w = tree_new_internal(t);
    if (w < 0) return -1;
    int iu = nb_index(t, u, v);
    double l = t->len[u][iu];
    tree_repoint(t, u, v, w, l / 2);
    tree_repoint(t, v, u, w, l / 2);
    t->nb[w][0] = u;
    t->len[w][0] = l / 2;
    t->nb[w][1] = v;
    t->len[w][1] = l / 2;
    t->deg[w] = 2;
    t->deg[q] = 0;
    tree_link(t, w, q, 0.1);
    t->ntips++;
    return 0;
}

/* min rank of the taxa in the subtree at v seen from u */
static int minrank(const struct tree *t, int v, int from)
{
    if (v < A.ntaxa) return rank_of[v];
    int m = INT_MAX;
    for (int i = 0; i < t->deg[v]; i++) {
        int c = t->nb[v][i];
        if (c == from) continue;
        int r = minrank(t, c, v);
        if (r < m) m = r;
    }
    return m;
}

/* the two children of internal node v seen from `from`, in canonical order */
static void children(const struct tree *t, int v, int from, int *c1, int *c2)
{
    int c[2], k = 0;
    for (int i = 0; i < t->deg[v]; i++)
        if (t->nb[v][i] != from && k < 2) c[k++] = t->nb[v][i];
    if (minrank(t, c[0], v) > minrank(t, c[1], v)) {
        int x = c[0];
        c[0] = c[1];
        c[1] = x;
    }
    *c1 = c[0];
    *c2 = c[1];
}

static void nw_sub(const struct tree *t, struct sbuf *b, int v, int from, int lengths)
{
    if (v < A.ntaxa) sb_printf(b, "%s", A.name[v]);
    else {
        int c1, c2;
        children(t, v, from, &c1, &c2);
        sb_printf(b, "(");
        nw_sub(t, b, c1, v, lengths);
        sb_printf(b, ",");
        nw_sub(t, b, c2, v, lengths);
        sb_printf(b, ")");
    }
    if (lengths) sb_printf(b, ":%.6f", t->len[v][nb_index(t, v, from)]);
}

/* canonical Newick: rooted at the internal node next to the first taxon of
 * the addition order, subtrees ordered by their first-added taxon */
static int tree_newick(const struct tree *t, int lengths, char *out, size_t cap)
{
    struct sbuf b;
    sb_init(&b, out, cap);
    int r = t->root_leaf, x = t->nb[r][0];
    int c1, c2;
    children(t, x, r, &c1, &c2);
    sb_printf(&b, "(%s", A.name[r]);
    if (lengths) sb_printf(&b, ":%.6f", t->len[r][0]);
    sb_printf(&b, ",");
    nw_sub(t, &b, c1, x, lengths);
    sb_printf(&b, ",");
    nw_sub(t, &b, c2, x, lengths);
    sb_printf(&b, ");");
    return b.overflow ? -1 : 0;
}

/* branches (parent side, child side) in canonical pre-order */
struct branch {
    int u, v;
};

static void branches_sub(const struct tree *t, int v, int from, struct branch *e, int *n)
{
    e[*n].u = from;
    e[*n].v = v;
    (*n)++;
    if (v < A.ntaxa) return;
    int c1, c2;
    children(t, v, from, &c1, &c2);
    branches_sub(t, c1, v, e, n);
    branches_sub(t, c2, v, e, n);
}

static int tree_branches(const struct tree *t, struct branch *e)
{
    int n = 0, r = t->root_leaf, x = t->nb[r][0];
    e[n].u = x;
    e[n].v = r;
    n++;
    int c1, c2;
    children(t, x, r, &c1, &c2);
    branches_sub(t, c1, x, e, &n);
    branches_sub(t, c2, x, e, &n);
    return n;
}

/* the taxa of the tree in addition order */
static int tree_taxa(const struct tree *t, const int *order, int *taxa)
{
    int k = 0;
    for (int i = 0; i < A.ntaxa; i++)
        if (t->deg[order[i]] > 0) taxa[k++] = order[i];
    return k;
}

/* ---------------- Newick parser (fastDNAml's tree file) ---------------- */
struct nwp {
    const char *s;
    size_t i;
    struct tree *t;
    const char *err;
    unsigned char seen[MAX_TAXA];
};

static void nwp_ws(struct nwp *p)
{
    for (;;) {
        while (isspace((unsigned char)p->s[p->i])) p->i++;
        if (p->s[p->i] == '[') { /* comment */
            const char *e = strchr(p->s + p->i, ']');
            if (!e) {
                p->err = "unterminated comment";
                return;
            }
            p->i = (size_t)(e - p->s) + 1;
        } else
            return;
    }
}

static double nwp_len(struct nwp *p)
{
    nwp_ws(p);
    if (p->s[p->i] != ':') return 0.1;
    p->i++;
    nwp_ws(p);
    char *end;
    errno = 0;
    double v = strtod(p->s + p->i, &end);
    if (errno || end == p->s + p->i || !isfinite(v) || v < 0) {
        p->err = "bad branch length";
        return 0;
    }
    p->i = (size_t)(end - p->s);
    return v;
}

/* parses one subtree; returns its node or -1; *l = length above it */
static int nwp_node(struct nwp *p, double *l, int depth)
{
    if (depth > MAX_NODES) {
        p->err = "tree nested too deeply";
        return -1;
    }
    nwp_ws(p);
    if (p->err) return -1;
    if (p->s[p->i] == '(') {
        p->i++;
        int kids[3], nk = 0;
        double kl[3];
        for (;;) {
            if (nk == 3) {
                p->err = "node with more than 3 children";
                return -1;
            }
            kids[nk] = nwp_node(p, &kl[nk], depth + 1);
            if (kids[nk] < 0) return -1;
            nk++;
            nwp_ws(p);
            if (p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->s[p->i] == ')') {
                p->i++;
                break;
            }
            p->err = "expected ',' or ')'";
            return -1;
        }
        /* internal node label is ignored */
        while (p->s[p->i] && !strchr(":,);[ \t\r\n", p->s[p->i])) p->i++;
        if (nk == 1) {
            p->err = "node with one child";
            return -1;
        }
        int w = tree_new_internal(p->t);
        if (w < 0) {
            p->err = "too many nodes";
            return -1;
        }
        for (int k = 0; k < nk; k++)
            if (tree_link(p->t, w, kids[k], kl[k]) < 0) {
                p->err = "bad degree";
                return -1;
            }
        *l = nwp_len(p);
        return p->err ? -1 : w;
    }
    /* a leaf name, possibly quoted */
    char name[64];
    size_t n = 0;
    if (p->s[p->i] == '\'') {
        p->i++;
        while (p->s[p->i] && p->s[p->i] != '\'') {
            if (n + 1 >= sizeof name) {
                p->err = "name too long";
                return -1;
            }
            name[n++] = p->s[p->i++];
        }
        if (p->s[p->i] != '\'') {
            p->err = "unterminated quoted name";
            return -1;
        }
        p->i++;
    } else {
        while (p->s[p->i] && !strchr(":,();[ \t\r\n", p->s[p->i])) {
            if (n + 1 >= sizeof name) {
                p->err = "name too long";
                return -1;
            }
            name[n++] = p->s[p->i++];
        }
    }
    name[n] = 0;
    while (n > 0 && name[n - 1] == ' ') name[--n] = 0;
    if (n == 0) {
        p->err = "empty name";
        return -1;
    }
    int q = -1;
    for (int i = 0; i < A.ntaxa; i++)
        if (!strcmp(A.name[i], name)) q = i;
    if (q < 0) {
        p->err = "unknown taxon name";
        return -1;
    }
    if (p->seen[q]) {
        p->err = "taxon appears twice";
        return -1;
    }
    p->seen[q] = 1;
    p->t->ntips++;
    *l = nwp_len(p);
    return p->err ? -1 : q;
}

static int parse_tree(const char *s, struct tree *t, int root_leaf, const char **err)
{
    tree_clear(t);
    static struct nwp p;
    memset(&p, 0, sizeof p);
    p.s = s;
    p.t = t;
    double l;
    nwp_ws(&p);
    if (s[p.i] != '(') {
        *err = "tree does not start with '('";
        return -1;
    }
    int root = nwp_node(&p, &l, 0);
    if (root < 0) {
        *err = p.err ? p.err : "parse error";
        return -1;
    }
    nwp_ws(&p);
    if (s[p.i] != ';') {
        *err = "missing ';'";
        return -1;
    }
    if (t->deg[root] == 2) { /* rooted: remove the root node */
        int a = t->nb[root][0], b = t->nb[root][1];
        double la = t->len[root][0], lb = t->len[root][1];
        tree_repoint(t, a, root, b, la + lb);
        tree_repoint(t, b, root, a, la + lb);
        t->deg[root] = 0;
    }
    for (int v = A.ntaxa; v < t->next_internal; v++)
        if (t->deg[v] != 0 && t->deg[v] != 3) {
            *err = "not a binary tree";
            return -1;
        }
    if (root_leaf < 0 || t->deg[root_leaf] != 1) {
        *err = "first taxon missing from the tree";
        return -1;
    }
    t->root_leaf = root_leaf;
    return 0;
}

/* ---------------- jobs and the two farms ---------------- */
struct job {
    char *newick; /* candidate topology (no lengths) */
    int taxa[MAX_TAXA];
    int nt;
    /* result */
    int done;
    double lnl;
    char *tree;
    int host; /* index into hosts[] */
};

static char hosts[MAX_WORKERS + 1][MAX_HOSTNAME];
static int host_count[MAX_WORKERS + 1];
static int nhosts_seen = 0;

static int host_index(const char *h)
{
    for (int i = 0; i < nhosts_seen; i++)
        if (!strcmp(hosts[i], h)) return i;
    if (nhosts_seen >= MAX_WORKERS + 1) return 0;
    snprintf(hosts[nhosts_seen], MAX_HOSTNAME, "%s", h);
    host_count[nhosts_seen] = 0;
    return nhosts_seen++;
}

struct opts {
    int local;
    int nworkers;
    int progress;
    int rearrange;
    int prefetch;
    int spawn_default;
    long jumble; /* -1: input order */
    double eval_timeout;
    double start_timeout;
    const char *fastdnaml;
    const char *scratch;
    const char *worker;
    const char *input;
};

static struct opts O;
static long evaluations = 0;
static double eval_seconds = 0; /* sum of the evaluations' own wall times */

struct worker {
    int tid;
    char host[MAX_HOSTNAME]; /* reported by the worker */
    char pvmhost[MAX_HOSTNAME];
    int hidx;
    int dtid;
    int inflight[MAX_PREFETCH];
    int ninflight;
    double last_progress;
    int exiting;
};

static struct worker W[MAX_WORKERS];
static int nw = 0;
static char stage[128] = "start-up"; /* for error messages */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void pvm_shutdown(int kill_workers);

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!O.local) pvm_shutdown(1);
    remove_eval_files();
    exit(1);
}

static const char *pvm_host_of(int tid, char *buf, size_t n)
{
    snprintf(buf, n, "?");
    int dtid = pvm_tidtohost(tid);
    if (dtid < 0) return buf;
    int nh, na;
    struct pvmhostinfo *hp;
    if (pvm_config(&nh, &na, &hp) < 0) return buf;
    for (int i = 0; i < nh; i++)
        if (hp[i].hi_tid == dtid) snprintf(buf, n, "%s", hp[i].hi_name);
    return buf;
}

static struct worker *worker_by_tid(int tid)
{
    for (int i = 0; i < nw; i++)
        if (W[i].tid == tid) return &W[i];
    return NULL;
}

static const char *wname(const struct worker *w)
{
    static char buf[2 * MAX_HOSTNAME + 32];
    if (w->host[0] && strcmp(w->host, w->pvmhost))
        snprintf(buf, sizeof buf, "t%x on host %s (pvm host %s)", (unsigned)w->tid, w->host, w->pvmhost);
    else
        snprintf(buf, sizeof buf, "t%x on host %s", (unsigned)w->tid, w->pvmhost);
    return buf;
}

static void pvm_shutdown(int kill_workers)
{
    static int done = 0;
    if (done) return;
    done = 1;
    if (kill_workers) {
        for (int i = 0; i < nw; i++)
            if (W[i].tid > 0 && !W[i].exiting) pvm_kill(W[i].tid);
    }
    /* pvm_exit would wait for the output of every child (pvm_catchout) and
     * so hang on a stopped or unreachable worker */
    pvm_catchout(NULL);
    pvm_exit();
}

static void send_job(struct worker *w, struct job *jobs, int j)
{
    struct job *jb = &jobs[j];
    int rc;
    if ((rc = pvm_initsend(PvmDataDefault)) < 0 || (rc = pvm_pkint(&j, 1, 1)) < 0 ||
        (rc = pvm_pkint(&jb->nt, 1, 1)) < 0 || (rc = pvm_pkint(jb->taxa, jb->nt, 1)) < 0 ||
        (rc = pk_str(jb->newick)) < 0 || (rc = pvm_send(w->tid, TAG_JOB)) < 0)
        die("cannot send a candidate to worker %s: %s", wname(w), pvm_err(rc));
    if (w->ninflight == 0) w->last_progress = now_s();
    w->inflight[w->ninflight++] = j;
}

static void run_batch_pvm(struct job *jobs, int n)
{
    int next = 0, ndone = 0;
    static char buf[MAX_TREE_STR];
    for (int round = 0; round < O.prefetch; round++)
        for (int i = 0; i < nw && next < n; i++)
            if (W[i].ninflight < O.prefetch) send_job(&W[i], jobs, next++);
    while (ndone < n) {
        if (got_signal) die("interrupted by signal %d", (int)got_signal);
        struct timeval tv = {1, 0};
        int bufid = pvm_trecv(-1, -1, &tv);
        if (bufid < 0) die("pvm_trecv: %s (is pvmd still running?)", pvm_err(bufid));
        double t = now_s();
        if (bufid == 0) {
            for (int i = 0; i < nw; i++)
                if (W[i].ninflight > 0 && t - W[i].last_progress > O.eval_timeout)
                    die("no result from worker %s for candidate %d of %s within %.0f s", wname(&W[i]),
                        W[i].inflight[0], stage, O.eval_timeout);
            continue;
        }
        int bytes, tag, src;
        int rc = pvm_bufinfo(bufid, &bytes, &tag, &src);
        if (rc < 0) die("pvm_bufinfo: %s", pvm_err(rc));
        if (tag == TAG_TASKEXIT) {
            int tid = 0;
            pvm_upkint(&tid, 1, 1);
            struct worker *w = worker_by_tid(tid);
            if (w && !w->exiting) {
                if (w->ninflight)
                    die("worker %s exited unexpectedly while evaluating candidate %d of %s", wname(w),
                        w->inflight[0], stage);
                die("worker %s exited unexpectedly", wname(w));
            }
            continue;
        }
        if (tag == TAG_HOSTDEL) {
            int dtid = 0;
            pvm_upkint(&dtid, 1, 1);
            for (int i = 0; i < nw; i++)
                if (W[i].dtid == dtid)
                    die("host %s left the virtual machine (worker %s lost)", W[i].pvmhost, wname(&W[i]));
            die("host with pvmd t%x left the virtual machine", (unsigned)dtid);
        }
        if (tag != TAG_RESULT) {
            fprintf(stderr, "%s: ignoring a message with tag %d from t%x\n", prog, tag, (unsigned)src);
            continue;
        }
        struct worker *w = worker_by_tid(src);
        if (!w) {
            fprintf(stderr, "%s: ignoring a result from unknown task t%x\n", prog, (unsigned)src);
            continue;
        }
        int j, st;
        double lnl, secs;
        if ((rc = pvm_upkint(&j, 1, 1)) < 0 || (rc = pvm_upkint(&st, 1, 1)) < 0 ||
            (rc = pvm_upkdouble(&lnl, 1, 1)) < 0 || (rc = pvm_upkdouble(&secs, 1, 1)) < 0 ||
            (rc = upk_str(buf, sizeof buf)) < 0)
            die("malformed result from worker %s: %s", wname(w), pvm_err(rc));
        if (w->ninflight == 0 || w->inflight[0] != j || j < 0 || j >= n)
            die("worker %s answered candidate %d, which was not the one it had", wname(w), j);
        if (st != 0) die("candidate %d of %s failed on worker %s: %s", j, stage, wname(w), buf);
        memmove(w->inflight, w->inflight + 1, (size_t)(w->ninflight - 1) * sizeof(int));
        w->ninflight--;
        w->last_progress = t;
        jobs[j].done = 1;
        jobs[j].lnl = lnl;
        jobs[j].tree = xstrdup(buf);
        jobs[j].host = w->hidx;
        host_count[w->hidx]++;
        evaluations++;
        eval_seconds += secs;
        ndone++;
        while (next < n && w->ninflight < O.prefetch) send_job(w, jobs, next++);
    }
}

static void run_batch_local(struct job *jobs, int n)
{
    static struct evalres r;
    int h = 0; /* local host is host 0 */
    for (int j = 0; j < n; j++) {
        if (eval_tree(&A, jobs[j].taxa, jobs[j].nt, jobs[j].newick, O.scratch, O.fastdnaml, O.eval_timeout,
                      &r) != 0)
            die("candidate %d of %s failed: %s", j, stage, r.msg);
        jobs[j].done = 1;
        jobs[j].lnl = r.lnl;
        jobs[j].tree = xstrdup(r.tree);
        jobs[j].host = h;
        host_count[h]++;
        evaluations++;
        eval_seconds += r.seconds;
    }
}

static void run_batch(struct job *jobs, int n)
{
    if (O.local) run_batch_local(jobs, n);
    else run_batch_pvm(jobs, n);
}

/* best result: highest lnl, ties to the lowest candidate index */
static int best_job(const struct job *jobs, int n)
{
    int b = 0;
    for (int j = 1; j < n; j++)
        if (jobs[j].lnl > jobs[b].lnl) b = j;
    return b;
}

static void free_jobs(struct job *jobs, int n)
{
    for (int j = 0; j < n; j++) {
        free(jobs[j].newick);
        free(jobs[j].tree);
    }
}

/* adopt the optimised tree of job j (checking that fastDNAml kept the
 * topology we gave it) */
static void adopt(struct tree *t, const struct job *jb, int root_leaf)
{
    const char *err = NULL;
    static struct tree nt;
    if (parse_tree(jb->tree, &nt, root_leaf, &err) < 0)
        die("cannot parse the tree returned by fastDNAml (%s): %.200s", err, jb->tree);
    static char topo[MAX_TREE_STR];
    if (tree_newick(&nt, 0, topo, sizeof topo) < 0) die("tree too large");
    if (strcmp(topo, jb->newick))
        die("fastDNAml returned another topology than the candidate:\n  sent %s\n  got  %s", jb->newick, topo);
    if (nt.ntips != jb->nt) die("fastDNAml returned a tree with %d taxa, expected %d", nt.ntips, jb->nt);
    *t = nt;
}

/* ---------------- PVM start and stop ---------------- */
static void pvm_start(void)
{
    int mytid = pvm_mytid();
    if (mytid < 0)
        die("cannot attach to pvmd: %s (start pvmd first; see README.md)", pvm_err(mytid));
    if (pvm_catchout(stderr) < 0) fprintf(stderr, "%s: pvm_catchout failed (worker output lost)\n", prog);
    int nh, na;
    struct pvmhostinfo *hp;
    int rc = pvm_config(&nh, &na, &hp);
    if (rc < 0) die("pvm_config: %s", pvm_err(rc));
    if (nh < 1) die("the virtual machine has no hosts");
    /* names of the hosts, copied: pvm_config's array is reused */
    static char hname[MAX_WORKERS][MAX_HOSTNAME];
    static int htid[MAX_WORKERS];
    if (nh > MAX_WORKERS) nh = MAX_WORKERS;
    for (int i = 0; i < nh; i++) {
        snprintf(hname[i], MAX_HOSTNAME, "%s", hp[i].hi_name);
        htid[i] = hp[i].hi_tid;
    }
    if (O.progress) {
        fprintf(stderr, "%s: virtual machine of %d host(s):", prog, nh);
        for (int i = 0; i < nh; i++) fprintf(stderr, " %s", hname[i]);
        fprintf(stderr, "\n");
    }
    rc = pvm_notify(PvmHostDelete, TAG_HOSTDEL, nh, htid);
    if (rc < 0) die("pvm_notify(PvmHostDelete): %s", pvm_err(rc));

    /* worker arguments */
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%.0f", O.eval_timeout);
    char *wargv[8];
    int k = 0;
    wargv[k++] = "--fastdnaml";
    wargv[k++] = (char *)O.fastdnaml;
    wargv[k++] = "--eval-timeout";
    wargv[k++] = tmo;
    if (O.scratch) {
        wargv[k++] = "--scratch";
        wargv[k++] = (char *)O.scratch;
    }
    wargv[k] = NULL;

    int tids[MAX_WORKERS];
    if (O.spawn_default) {
        int got = pvm_spawn((char *)O.worker, wargv, PvmTaskDefault, "", O.nworkers, tids);
        if (got < 0) die("pvm_spawn of %s failed: %s", O.worker, pvm_err(got));
        int err = 0;
        for (int i = 0; i < O.nworkers; i++) {
            if (tids[i] > 0) W[nw++].tid = tids[i];
            else if (!err) err = tids[i];
        }
        if (nw < O.nworkers)
            die("pvm_spawn of %s started %d of %d workers: %s (is it on the ep= path of every host?)",
                O.worker, nw, O.nworkers, pvm_err(err));
    } else {
        for (int i = 0; i < O.nworkers; i++) {
            const char *h = hname[i % nh];
            int tid = 0;
            int got = pvm_spawn((char *)O.worker, wargv, PvmTaskHost, (char *)h, 1, &tid);
            if (got != 1)
                die("pvm_spawn of %s on host %s failed: %s (is it on the ep= path of that host?)", O.worker, h,
                    pvm_err(got < 0 ? got : tid));
            W[nw++].tid = tid;
        }
    }
    for (int i = 0; i < nw; i++) {
        tids[i] = W[i].tid;
        pvm_host_of(W[i].tid, W[i].pvmhost, sizeof W[i].pvmhost);
        W[i].dtid = pvm_tidtohost(W[i].tid);
        W[i].host[0] = 0;
        W[i].ninflight = 0;
        W[i].exiting = 0;
    }
    rc = pvm_notify(PvmTaskExit, TAG_TASKEXIT, nw, tids);
    if (rc < 0) die("pvm_notify(PvmTaskExit): %s", pvm_err(rc));

    /* the alignment, once to every worker */
    if ((rc = pvm_initsend(PvmDataDefault)) < 0 || (rc = pvm_pkint(&A.ntaxa, 1, 1)) < 0 ||
        (rc = pvm_pkint(&A.nsites, 1, 1)) < 0 || (rc = pvm_pkint(A.freq5, 4, 1)) < 0 ||
        (rc = pvm_pkdouble(&A.ttratio, 1, 1)) < 0)
        die("packing the alignment: %s", pvm_err(rc));
    for (int i = 0; i < A.ntaxa; i++)
        if ((rc = pk_str(A.name[i])) < 0 || (rc = pk_str(A.seq[i])) < 0)
            die("packing the alignment: %s", pvm_err(rc));
    if ((rc = pvm_mcast(tids, nw, TAG_INIT)) < 0) die("sending the alignment: %s", pvm_err(rc));

    /* every worker says hello (or why it cannot work) */
    int ready = 0;
    double deadline = now_s() + O.start_timeout;
    while (ready < nw) {
        if (got_signal) die("interrupted by signal %d", (int)got_signal);
        struct timeval tv = {1, 0};
        int bufid = pvm_trecv(-1, -1, &tv);
        if (bufid < 0) die("pvm_trecv: %s", pvm_err(bufid));
        if (bufid == 0) {
            if (now_s() > deadline) {
                for (int i = 0; i < nw; i++)
                    if (!W[i].host[0]) die("worker %s did not start within %.0f s", wname(&W[i]), O.start_timeout);
            }
            continue;
        }
        int bytes, tag, src;
        pvm_bufinfo(bufid, &bytes, &tag, &src);
        if (tag == TAG_TASKEXIT) {
            int tid = 0;
            pvm_upkint(&tid, 1, 1);
            struct worker *w = worker_by_tid(tid);
            if (w) die("worker %s exited during start-up (see its messages above)", wname(w));
            continue;
        }
        if (tag == TAG_HOSTDEL) die("a host left the virtual machine during start-up");
        if (tag != TAG_HELLO) continue;
        struct worker *w = worker_by_tid(src);
        if (!w) continue;
        int st;
        char h[MAX_HOSTNAME], m[MAX_MSG];
        if (pvm_upkint(&st, 1, 1) < 0 || upk_str(h, sizeof h) < 0 || upk_str(m, sizeof m) < 0)
            die("malformed hello from worker %s", wname(w));
        if (st != 0) {
            w->exiting = 1; /* it leaves by itself */
            die("worker %s cannot work: %s", wname(w), m);
        }
        if (!h[0]) snprintf(h, sizeof h, "%s", w->pvmhost);
        snprintf(w->host, sizeof w->host, "%s", h);
        w->hidx = host_index(h);
        ready++;
    }
    if (O.progress) {
        fprintf(stderr, "%s: %d worker(s) ready:", prog, nw);
        for (int i = 0; i < nw; i++) fprintf(stderr, " %s", wname(&W[i]));
        fprintf(stderr, "\n");
    }
}

/* tell the workers to leave and wait until they have */
static void pvm_stop(void)
{
    int rc;
    for (int i = 0; i < nw; i++) {
        W[i].exiting = 1;
        if ((rc = pvm_initsend(PvmDataDefault)) < 0 || (rc = pvm_send(W[i].tid, TAG_EXIT)) < 0)
            fprintf(stderr, "%s: cannot tell worker %s to exit: %s\n", prog, wname(&W[i]), pvm_err(rc));
    }
    int left = nw;
    double deadline = now_s() + 30;
    int gone[MAX_WORKERS] = {0};
    while (left > 0 && now_s() < deadline) {
        struct timeval tv = {1, 0};
        int bufid = pvm_trecv(-1, TAG_TASKEXIT, &tv);
        if (bufid < 0) break;
        if (bufid == 0) continue;
        int tid = 0;
        pvm_upkint(&tid, 1, 1);
        for (int i = 0; i < nw; i++)
            if (W[i].tid == tid && !gone[i]) {
                gone[i] = 1;
                left--;
            }
    }
    if (left > 0) {
        fprintf(stderr, "%s: %d worker(s) did not exit within 30 s; killing them\n", prog, left);
        for (int i = 0; i < nw; i++)
            if (!gone[i]) pvm_kill(W[i].tid);
        pvm_catchout(NULL);
    }
    pvm_exit();
}

/* ---------------- the search ---------------- */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fdpvm-master (--local | --workers W) [options] ALIGNMENT\n"
            "  --local              no PVM: evaluate every candidate here, one after another\n"
            "  --workers W          spawn W fdpvm-worker tasks (round-robin over the hosts)\n"
            "  --spawn-default      let PVM place the workers (PvmTaskDefault)\n"
            "  --worker NAME        worker executable for pvm_spawn (default fdpvm-worker,\n"
            "                       looked up on each host's ep= path)\n"
            "  --prefetch N         candidates in flight per worker (default 1, max %d)\n"
            "  --jumble SEED        seeded random taxon addition order (default: input order)\n"
            "  --no-rearrange       no local rearrangements after each addition\n"
            "  --ttratio T          transition/transversion ratio (default 2.0)\n"
            "  --fastdnaml PATH     serial fastDNAml (default /usr/bin/fastDNAml)\n"
            "  --scratch DIR        scratch dir (default $PVM_TMP, $TMPDIR or /tmp, on each host)\n"
            "  --eval-timeout S     one evaluation may take at most S seconds (default 600)\n"
            "  --start-timeout S    workers must start within S seconds (default 60)\n"
            "  --progress           one line per step on stderr\n"
            "Output: one JSON line on stdout.\n",
            MAX_PREFETCH);
}

int main(int argc, char **argv)
{
    prog = "fdpvm-master";
    double t_start = now_s();
    O.nworkers = -1;
    O.rearrange = 1;
    O.prefetch = 1;
    O.jumble = -1;
    O.eval_timeout = 600;
    O.start_timeout = 60;
    O.fastdnaml = "/usr/bin/fastDNAml";
    O.worker = "fdpvm-worker";
    A.ttratio = 2.0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        long lv;
        double dv;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--local")) O.local = 1;
        else if (!strcmp(o, "--progress")) O.progress = 1;
        else if (!strcmp(o, "--no-rearrange")) O.rearrange = 0;
        else if (!strcmp(o, "--rearrange")) O.rearrange = 1;
        else if (!strcmp(o, "--spawn-default")) O.spawn_default = 1;
        else if (o[0] == '-' && o[1] == '-') {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog, o);
                return 2;
            }
            const char *v = argv[++i];
            int bad = 0;
            if (!strcmp(o, "--workers")) {
                bad = parse_int(v, 1, MAX_WORKERS, &lv);
                O.nworkers = (int)lv;
            } else if (!strcmp(o, "--prefetch")) {
                bad = parse_int(v, 1, MAX_PREFETCH, &lv);
                O.prefetch = (int)lv;
            } else if (!strcmp(o, "--jumble")) {
                bad = parse_int(v, 0, LONG_MAX, &lv);
                O.jumble = lv;
            } else if (!strcmp(o, "--ttratio")) {
                bad = parse_dbl(v, 0.01, 100, &dv);
                A.ttratio = dv;
            } else if (!strcmp(o, "--eval-timeout")) {
                bad = parse_dbl(v, 1, 86400, &dv);
                O.eval_timeout = dv;
            } else if (!strcmp(o, "--start-timeout")) {
                bad = parse_dbl(v, 1, 86400, &dv);
                O.start_timeout = dv;
            } else if (!strcmp(o, "--fastdnaml")) O.fastdnaml = v;
            else if (!strcmp(o, "--scratch")) O.scratch = v;
            else if (!strcmp(o, "--worker")) O.worker = v;
            else {
                fprintf(stderr, "%s: unknown option %s\n", prog, o);
                usage(stderr);
                return 2;
            }
            if (bad) {
                fprintf(stderr, "%s: bad value '%s' for %s\n", prog, v, o);
                return 2;
            }
        } else if (!O.input) O.input = o;
        else {
            fprintf(stderr, "%s: more than one alignment given\n", prog);
            return 2;
        }
    }
    if (!O.input) {
        usage(stderr);
        return 2;
    }
    if (O.local == (O.nworkers > 0)) {
        fprintf(stderr, "%s: give exactly one of --local and --workers W\n", prog);
        return 2;
    }
    if (O.local && !O.scratch) O.scratch = default_scratch();
    if (O.local && access(O.fastdnaml, X_OK) != 0) {
        fprintf(stderr, "%s: cannot execute %s: %s\n", prog, O.fastdnaml, strerror(errno));
        return 1;
    }
    char err[MAX_MSG + PATH_MAX];
    if (read_alignment(O.input, &A, err, sizeof err) < 0) {
        fprintf(stderr, "%s: bad alignment: %s\n", prog, err);
        return 1;
    }
    install_signals();

    /* addition order */
    int order[MAX_TAXA];
    for (int i = 0; i < A.ntaxa; i++) order[i] = i;
    if (O.jumble >= 0) {
        uint64_t x = (uint64_t)O.jumble;
        for (int i = A.ntaxa - 1; i > 0; i--) {
            uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            z ^= z >> 31;
            int j = (int)(z % (uint64_t)(i + 1));
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
    }
    for (int i = 0; i < A.ntaxa; i++) rank_of[order[i]] = i;

    if (O.local) {
        char h[MAX_HOSTNAME];
        local_hostname(h, sizeof h);
        host_index(h);
    } else
        pvm_start();

    /* the three-taxon start */
    static struct tree T, C;
    tree_clear(&T);
    {
        int x = tree_new_internal(&T);
        for (int i = 0; i < 3; i++) {
            T.deg[order[i]] = 0;
            tree_link(&T, x, order[i], 0.1);
        }
        T.ntips = 3;
        T.root_leaf = order[0];
    }
    double cur = 0;
    static struct branch br[MAX_NODES];
    static char nwbuf[MAX_TREE_STR];
    int maxjobs = 2 * A.ntaxa;
    struct job *jobs = xmalloc((size_t)maxjobs * sizeof *jobs);
    int rounds_total = 0;

    for (int k = 3; k < A.ntaxa; k++) {
        int q = order[k];
        double ts = now_s();
        snprintf(stage, sizeof stage, "step %d (adding %s)", k + 1, A.name[q]);
        /* addition: the new taxon on every branch of the current tree */
        int nb = tree_branches(&T, br);
        for (int j = 0; j < nb; j++) {
            C = T;
            if (tree_insert(&C, br[j].u, br[j].v, q) < 0) die("tree too large");
            if (tree_newick(&C, 0, nwbuf, sizeof nwbuf) < 0) die("tree too large");
            memset(&jobs[j], 0, sizeof jobs[j]);
            jobs[j].newick = xstrdup(nwbuf);
            jobs[j].nt = tree_taxa(&C, order, jobs[j].taxa);
        }
        run_batch(jobs, nb);
        int b = best_job(jobs, nb);
        adopt(&T, &jobs[b], order[0]);
        cur = jobs[b].lnl;
        if (O.progress)
            fprintf(stderr, "step %d/%d add %s: %d candidates, best #%d lnL %.5f (%.2f s)\n", k + 1, A.ntaxa,
                    A.name[q], nb, b, cur, now_s() - ts);
        free_jobs(jobs, nb);

        /* local rearrangements: both nearest-neighbour interchanges of every
         * internal branch, repeated while one improves the likelihood */
        for (int round = 0; O.rearrange && k + 1 >= 5 && round < MAX_NNI_ROUNDS; round++) {
            double tr = now_s();
            snprintf(stage, sizeof stage, "step %d rearrangement round %d", k + 1, round + 1);
            nb = tree_branches(&T, br);
            int n = 0;
            for (int e = 0; e < nb; e++) {
                int u = br[e].u, v = br[e].v;
                if (u < A.ntaxa || v < A.ntaxa) continue; /* internal branches only */
                int c1, c2, s = -1;
                children(&T, v, u, &c1, &c2);
                /* u's neighbour on the far side: the one that is neither v
                 * nor u's own parent in the canonical traversal */
                int up = (u == T.nb[T.root_leaf][0]) ? T.root_leaf : -1;
                for (int e2 = 0; e2 < nb; e2++)
                    if (br[e2].v == u) up = br[e2].u;
                for (int i = 0; i < 3; i++)
                    if (T.nb[u][i] != v && T.nb[u][i] != up) s = T.nb[u][i];
                if (s < 0) die("internal error: no sibling");
                int cc[2] = {c1, c2};
                for (int a = 0; a < 2; a++) {
                    C = T;
                    int c = cc[a];
                    double ls = C.len[u][nb_index(&C, u, s)], lc = C.len[v][nb_index(&C, v, c)];
                    /* swap s (on u) and c (on v) */
                    tree_repoint(&C, u, s, c, lc);
                    tree_repoint(&C, c, v, u, lc);
                    tree_repoint(&C, v, c, s, ls);
                    tree_repoint(&C, s, u, v, ls);
                    if (tree_newick(&C, 0, nwbuf, sizeof nwbuf) < 0) die("tree too large");
                    memset(&jobs[n], 0, sizeof jobs[n]);
                    jobs[n].newick = xstrdup(nwbuf);
                    jobs[n].nt = tree_taxa(&C, order, jobs[n].taxa);
                    n++;
                }
            }
            run_batch(jobs, n);
            b = best_job(jobs, n);
            int better = jobs[b].lnl > cur + NNI_EPS;
            if (O.progress)
                fprintf(stderr, "  rearrange round %d: %d candidates, best #%d lnL %.5f %s (%.2f s)\n", round + 1,
                        n, b, jobs[b].lnl, better ? "accepted" : "no improvement", now_s() - tr);
            if (better) {
                adopt(&T, &jobs[b], order[0]);
                cur = jobs[b].lnl;
            }
            free_jobs(jobs, n);
            rounds_total++;
            if (!better) break;
        }
    }
    free(jobs);
    if (tree_newick(&T, 1, nwbuf, sizeof nwbuf) < 0) die("tree too large");
    if (!O.local) pvm_stop();
    double wall = now_s() - t_start;

    printf("{\"mode\":\"%s\",\"taxa\":%d,\"sites\":%d,\"workers\":%d,\"evaluations\":%ld,\"rearrange_rounds\":%d,"
           "\"wall_s\":%.3f,\"eval_s\":%.3f,\"log_likelihood\":%.5f,\"tree\":",
           O.local ? "local" : "pvm", A.ntaxa, A.nsites, O.local ? 0 : nw, evaluations, rounds_total, wall, eval_seconds, cur);
    json_str(stdout, nwbuf);
    printf(",\"per_host\":{");
    for (int i = 0; i < nhosts_seen; i++) {
        if (i) printf(",");
        json_str(stdout, hosts[i]);
        printf(":%d", host_count[i]);
    }
    printf("}}\n");
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "%s: write error on stdout\n", prog);
        return 1;
    }
    return 0;
}
#endif
