/*
 * simalign: seeded simulator of a DNA alignment along a random unrooted tree.
 *
 * Model: F84 (the model of DNAML/fastDNAml) with unequal base frequencies and
 * a transition bias, plus per-site rate variation drawn from a gamma
 * distribution (shape --alpha; 0 = no rate variation).  Each site is evolved
 * exactly along each branch by simulating the F84 event process (a "general"
 * event draws a new base from the stationary frequencies, a "within-group"
 * event draws one from the base's purine/pyrimidine group).
 *
 * The tree: start with three taxa joined at one node; every further taxon is
 * attached to a branch chosen uniformly at random.  Branch lengths are
 * exponential with mean --brlen (expected substitutions per site).
 *
 * Output (stdout): fastDNAml / PHYLIP input, "ntaxa nsites" header, then one
 * line per taxon: the name padded to 10 characters and the whole sequence.
 * With --tree FILE the true tree is also written there (Newick).
 *
 * The random numbers come from splitmix64-seeded xoshiro256**, so the same
 * seed gives byte-identical output on any machine.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAXA 1000
#define MAX_SITES 1000000

/* ---------- PRNG ---------- */
static uint64_t rng_s[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9;
    uint64_t t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

static void rng_seed(uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng_s[i] = splitmix64(&x);
}

/* uniform in (0,1) */
static double unif(void)
{
    return ((double)(rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rexp(double mean) { return -mean * log(unif()); }

static double rnorm(void)
{
    /* Box-Muller, one value per call (the second is discarded: simpler state) */
    double u1 = unif(), u2 = unif();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Marsaglia-Tsang gamma(shape a, scale 1) */
static double rgamma(double a)
{
    if (a < 1.0) {
        double g = rgamma(a + 1.0);
        return g * pow(unif(), 1.0 / a);
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = rnorm();
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = unif();
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

/* ---------- tree ---------- */
/* nodes 0..n-1 are leaves, n..2n-3 internal; edges stored as (child,parent)
 * after rooting at internal node n. */
struct edge {
    int a, b;
    double len;
};

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: simalign --taxa N --sites M [--seed S] [--brlen B] [--alpha A]\n"
            "                [--kappa K] [--tree FILE] > aln.phy\n"
            "  --taxa N     number of taxa, 4..%d (default 10)\n"
            "  --sites M    alignment length, 1..%d (default 300)\n"
            "  --seed S     random seed (default 1)\n"
            "  --brlen B    mean branch length in substitutions/site (default 0.05)\n"
            "  --alpha A    gamma shape of rate variation, 0 = none (default 1.0)\n"
            "  --kappa K    F84 within-group to general event rate ratio (default 2.0)\n"
            "  --tree FILE  also write the true tree (Newick) to FILE\n",
            MAX_TAXA, MAX_SITES);
}

static const char BASES[4] = {'A', 'C', 'G', 'T'};
static const double PI[4] = {0.30, 0.20, 0.22, 0.28};

static int n_taxa;
static int nedge;
static struct edge edges[2 * MAX_TAXA];
static int adj[2 * MAX_TAXA][3], nadj[2 * MAX_TAXA];
static double adjlen[2 * MAX_TAXA][3];

static void write_newick(FILE *f, int node, int from)
{
    if (node < n_taxa) {
        fprintf(f, "tax%04d", node + 1);
        return;
    }
    fputc('(', f);
    int first = 1;
    for (int i = 0; i < nadj[node]; i++) {
        int c = adj[node][i];
        if (c == from) continue;
        if (!first) fputc(',', f);
        first = 0;
        write_newick(f, c, node);
        fprintf(f, ":%.6f", adjlen[node][i]);
    }
    fputc(')', f);
}

static int draw_base(int lo, int hi) /* from PI restricted to [lo,hi] */
{
    double tot = 0;
    for (int i = lo; i <= hi; i++) tot += PI[i];
    double u = unif() * tot;
    for (int i = lo; i < hi; i++) {
        u -= PI[i];
        if (u < 0) return i;
    }
    return hi;
}

int main(int argc, char **argv)
{
    long taxa = 10, sites = 300;
    unsigned long long seed = 1;
    double brlen = 0.05, alpha = 1.0, kappa = 2.0;
    const char *treefile = NULL;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "simalign: option %s needs a value\n", o);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(o, "--taxa")) bad = parse_long(v, 4, MAX_TAXA, &taxa);
        else if (!strcmp(o, "--sites")) bad = parse_long(v, 1, MAX_SITES, &sites);
        else if (!strcmp(o, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            bad = (errno || end == v || *end || v[0] == '-') ? -1 : 0;
        } else if (!strcmp(o, "--brlen")) bad = parse_double(v, 1e-6, 10.0, &brlen);
        else if (!strcmp(o, "--alpha")) bad = parse_double(v, 0.0, 1000.0, &alpha);
        else if (!strcmp(o, "--kappa")) bad = parse_double(v, 0.0, 1000.0, &kappa);
        else if (!strcmp(o, "--tree")) treefile = v;
        else {
            fprintf(stderr, "simalign: unknown option %s\n", o);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "simalign: bad value '%s' for %s\n", v, o);
            return 2;
        }
    }
    rng_seed((uint64_t)seed);
    n_taxa = (int)taxa;
    int n = n_taxa;

    /* random topology by random stepwise addition */
    int next_internal = n;
    nedge = 0;
    {
        int c = next_internal++;
        for (int i = 0; i < 3; i++) {
            edges[nedge].a = i;
            edges[nedge].b = c;
            nedge++;
        }
        for (int t = 3; t < n; t++) {
            int e = (int)(unif() * nedge);
            if (e >= nedge) e = nedge - 1;
            int w = next_internal++;
            int oldb = edges[e].b;
            edges[e].b = w;
            edges[nedge].a = w;
            edges[nedge].b = oldb;
            nedge++;
            edges[nedge].a = t;
            edges[nedge].b = w;
            nedge++;
        }
    }
    for (int e = 0; e < nedge; e++) edges[e].len = rexp(brlen) + 1e-4;
    memset(nadj, 0, sizeof nadj);
    for (int e = 0; e < nedge; e++) {
        int a = edges[e].a, b = edges[e].b;
        adj[a][nadj[a]] = b;
        adjlen[a][nadj[a]++] = edges[e].len;
        adj[b][nadj[b]] = a;
        adjlen[b][nadj[b]++] = edges[e].len;
    }
    int nnodes = next_internal;

    /* F84 rates: general events at rate 1, within-group events at rate kappa;
     * scale so that one time unit is one expected substitution per site. */
    double piR = PI[0] + PI[2], piY = PI[1] + PI[3];
    double mu = 0;
    for (int i = 0; i < 4; i++) {
        double grp = (i == 0 || i == 2) ? piR : piY;
        mu += PI[i] * (1.0 - PI[i]) + PI[i] * kappa * (1.0 - PI[i] / grp);
    }
    double tot_rate = (1.0 + kappa) / mu;
    double p_general = 1.0 / (1.0 + kappa);

    /* sequences: nodes x sites */
    size_t ns = (size_t)sites;
    unsigned char *seq = malloc((size_t)nnodes * ns);
    double *rate = malloc(ns * sizeof(double));
    int *order = malloc((size_t)nnodes * sizeof(int));
    int *parent = malloc((size_t)nnodes * sizeof(int));
    double *plen = malloc((size_t)nnodes * sizeof(double));
    if (!seq || !rate || !order || !parent || !plen) {
        fprintf(stderr, "simalign: out of memory\n");
        return 1;
    }
    for (size_t s = 0; s < ns; s++) rate[s] = alpha > 0 ? rgamma(alpha) / alpha : 1.0;

    /* BFS order from root n */
    int head = 0, tail = 0;
    order[tail++] = n;
    parent[n] = -1;
    plen[n] = 0;
    while (head < tail) {
        int u = order[head++];
        for (int i = 0; i < nadj[u]; i++) {
            int v = adj[u][i];
            if (v == parent[u]) continue;
            parent[v] = u;
            plen[v] = adjlen[u][i];
            order[tail++] = v;
        }
    }
    if (tail != nnodes) {
        fprintf(stderr, "simalign: internal error: tree not connected\n");
        return 1;
    }
    for (size_t s = 0; s < ns; s++) seq[(size_t)n * ns + s] = (unsigned char)draw_base(0, 3);
    for (int k = 1; k < nnodes; k++) {
        int v = order[k], u = parent[v];
        for (size_t s = 0; s < ns; s++) {
            int b = seq[(size_t)u * ns + s];
            double t = plen[v] * rate[s] * tot_rate;
            for (;;) {
                t -= rexp(1.0);
                if (t < 0) break;
                if (unif() < p_general) b = draw_base(0, 3);
                else if (b == 0 || b == 2) b = unif() * piR < PI[0] ? 0 : 2;
                else b = unif() * piY < PI[1] ? 1 : 3;
            }
            seq[(size_t)v * ns + s] = (unsigned char)b;
        }
    }

    printf("%d %ld\n", n, sites);
    char *line = malloc(ns + 1);
    if (!line) {
        fprintf(stderr, "simalign: out of memory\n");
        return 1;
    }
    for (int t = 0; t < n; t++) {
        for (size_t s = 0; s < ns; s++) line[s] = BASES[seq[(size_t)t * ns + s]];
        line[ns] = 0;
        char name[16];
        snprintf(name, sizeof name, "tax%04d", t + 1);
        printf("%-10s%s\n", name, line);
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "simalign: write error on stdout\n");
        return 1;
    }
    if (treefile) {
        FILE *f = fopen(treefile, "w");
        if (!f) {
            fprintf(stderr, "simalign: cannot write %s: %s\n", treefile, strerror(errno));
            return 1;
        }
        write_newick(f, n, -1);
        fputs(";\n", f);
        if (fclose(f)) {
            fprintf(stderr, "simalign: write error on %s\n", treefile);
            return 1;
        }
    }
    free(line);
    free(seq);
    free(rate);
    free(order);
    free(parent);
    free(plen);
    return 0;
}
