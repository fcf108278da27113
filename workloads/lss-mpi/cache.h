/* cache.h - client-side disk cache in front of the file server */
#ifndef LSS_CACHE_H
#define LSS_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *dir;      /* local cache directory */
    const char *nfs_url;  /* "nfs://server/export" or NULL */
    const char *data_dir; /* local source directory or NULL */
    const char *nfs_cp;   /* nfs-cp program */
    int timeout_s;        /* per-file fetch timeout */
} cache_cfg;

/* create the cache directory (and parents) */
int cache_init(const cache_cfg *c, char *why, size_t wl);

/* Make sure `name` is in the cache.  On return path holds the cached file's
 * path and *fetched the bytes transferred from the server (0 on a hit).
 * Concurrent callers on one host share the cache: a per-file flock makes the
 * first one fetch and the others wait for it.  -1 + reason on failure. */
int cache_ensure(const cache_cfg *c, const char *name, char *path, size_t plen,
                 uint64_t *fetched, char *why, size_t wl);

/* remove `name` from the cache (cold start); missing is fine */
int cache_drop(const cache_cfg *c, const char *name, char *why, size_t wl);

#endif
