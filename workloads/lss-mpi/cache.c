/* cache.c - fetch files from NFS (nfs-cp) or a local directory into a
 * client-side disk cache: tmp file + rename, one flock per file. */
#define _GNU_SOURCE
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* snprintf into a path buffer; -1 (ENAMETOOLONG) when it does not fit */
static int pathf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int mkdir_p(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int cache_init(const cache_cfg *c, char *why, size_t wl)
{
    if (mkdir_p(c->dir) != 0) {
        snprintf(why, wl, "cannot create cache directory: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int valid_name(const char *name)
{
    if (!*name || strlen(name) > 200 || name[0] == '.') return 0;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p <= ' ') return 0;
    return 1;
}

static int copy_local(const char *src, const char *dst, char *why, size_t wl)
{
    int in = open(src, O_RDONLY);
    if (in < 0) {
        snprintf(why, wl, "cannot open source %s: %s", src, strerror(errno));
        return -1;
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        snprintf(why, wl, "cannot create %s: %s", dst, strerror(errno));
        close(in);
        return -1;
    }
    static char buf[1 << 20];
    int rc = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(why, wl, "read %s: %s", src, strerror(errno));
            rc = -1;
            break;
        }
        if (r == 0) break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                snprintf(why, wl, "write %s: %s", dst, strerror(errno));
                rc = -1;
                goto done;
            }
            off += w;
        }
    }
done:
    close(in);
    if (close(out) != 0 && rc == 0) {
        snprintf(why, wl, "close %s: %s", dst, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* first line of a log file, for error messages */
static void first_line(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

static int fetch_nfs(const cache_cfg *c, const char *name, const char *dst,
                     char *why, size_t wl)
{
    char url[4096], logp[4096];
    if (pathf(url, sizeof url, "%s/%s", c->nfs_url, name) != 0 ||
        pathf(logp, sizeof logp, "%s.log", dst) != 0) {
        snprintf(why, wl, "NFS URL or cache path too long");
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = {(char *)c->nfs_cp, url, (char *)dst, NULL};
    pid_t pid;
    int err = posix_spawnp(&pid, c->nfs_cp, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        snprintf(why, wl, "cannot run %s: %s", c->nfs_cp, strerror(err));
        return -1;
    }
    struct timespec t0, now, nap = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            snprintf(why, wl, "waitpid(%s): %s", c->nfs_cp, strerror(errno));
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= c->timeout_s) {
            kill(pid, SIGKILL); /* our own child */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            snprintf(why, wl, "%s %s timed out after %d s", c->nfs_cp, url, c->timeout_s);
            unlink(logp);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
    char line[300];
    first_line(logp, line, sizeof line);
    unlink(logp);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, wl, "%s %s failed (%s %d)%s%s", c->nfs_cp, url,
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                 line[0] ? ": " : "", line);
        return -1;
    }
    struct stat st;
    if (stat(dst, &st) != 0) {
        snprintf(why, wl, "%s %s exited 0 but wrote no file%s%s", c->nfs_cp, url,
                 line[0] ? ": " : "", line);
        return -1;
    }
    return 0;
}

int cache_ensure(const cache_cfg *c, const char *name, char *path, size_t plen,
                 uint64_t *fetched, char *why, size_t wl)
{
    *fetched = 0;
    if (!valid_name(name)) {
        snprintf(why, wl, "invalid file name");
        return -1;
    }
    char lockp[4096], tmp[4096], src[4096], host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (pathf(path, plen, "%s/%s", c->dir, name) != 0 ||
        pathf(lockp, sizeof lockp, "%s/.%s.lock", c->dir, name) != 0 ||
        pathf(tmp, sizeof tmp, "%s/.%s.tmp.%s.%ld", c->dir, name, host, (long)getpid()) != 0 ||
        (c->data_dir && pathf(src, sizeof src, "%s/%s", c->data_dir, name) != 0)) {
        snprintf(why, wl, "path too long");
        return -1;
    }
    int lfd = open(lockp, O_RDWR | O_CREAT, 0644);
    if (lfd < 0) {
        snprintf(why, wl, "cannot open lock %s: %s", lockp, strerror(errno));
        return -1;
    }
    while (flock(lfd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(why, wl, "flock %s: %s", lockp, strerror(errno));
            close(lfd);
            return -1;
        }
    }
    int rc = 0;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) goto out; /* cache hit */
    unlink(tmp);
    if (c->nfs_url)
        rc = fetch_nfs(c, name, tmp, why, wl);
    else
        rc = copy_local(src, tmp, why, wl);
    if (rc == 0 && stat(tmp, &st) != 0) {
        snprintf(why, wl, "stat %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(why, wl, "rename into cache: %s", strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(tmp);
    else
        *fetched = (uint64_t)st.st_size;
out:
    flock(lfd, LOCK_UN);
    close(lfd);
    return rc;
}

int cache_drop(const cache_cfg *c, const char *name, char *why, size_t wl)
{
    char path[4096];
    if (!valid_name(name) || pathf(path, sizeof path, "%s/%s", c->dir, name) != 0) {
        snprintf(why, wl, "invalid file name or path too long");
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(why, wl, "cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
