/* chunkcache.h - a byte-bounded LRU cache of fixed-size chunks of immutable files.
 *
 * Shared by all open files. A chunk is keyed by (file CID, chunk index); chunk i of a file covers
 * [i * chunk_size, min((i + 1) * chunk_size, file size)). The cache does no I/O: whoever claims
 * a missing chunk fetches it and hands the bytes over with chunkcache_complete().
 *
 * Life of a chunk:
 *   absent --claim--> LOADING --complete(0)--> READY --evict (unreferenced, over budget)--> absent
 *                             --complete(-e)--> FAILED: removed at once, so the next get retries
 * A LOADING chunk is never claimed twice: other threads that want it take a reference and wait
 * (chunkcache_wait), then see READY or the fetch's -errno.
 *
 * References: every chunk handed out carries a reference, dropped with chunkcache_release().
 * While a reference is held, a READY chunk's bytes stay valid and can be read without any lock.
 * Only unreferenced READY chunks are evicted, least recently released first; but a chunk that a
 * sequential reader read through (chunkcache_consumed) goes on a scan list, evicted before the
 * others (oldest first), and the scan list keeps at most scan_max bytes once new chunks are
 * made: one long read does not flush what random readers use, and its chunks' buffers are
 * reused by the chunks it reads next (see chunkcache_buffer).
 *
 * Budget: counts the data bytes of every chunk in the cache, LOADING ones included. Going over
 * it evicts; it is exceeded only while everything is referenced or in flight.
 *
 * Thread-safe: one mutex inside, never held across a fetch (the cache makes no network calls).
 */
#ifndef IPFSFS_CHUNKCACHE_H
#define IPFSFS_CHUNKCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cid.h"

#define CHUNKCACHE_DEFAULT_CHUNK (256u << 10)
#define CHUNKCACHE_DEFAULT_BUDGET (256u << 20)

struct chunkcache;
struct chunk;

/* A chunk's key. cid_hash is cid_hash(cid), computed once per open file by the caller. */
struct chunk_key {
    const struct cid *cid;
    uint64_t cid_hash;
    uint64_t index;
};

/* What chunkcache_get found (values >= 0; errors are -errno). */
enum chunk_state_ret {
    CHUNK_READY = 0, /* cached: read it */
    CHUNK_LOADING,   /* being fetched by someone else: chunkcache_wait() */
    CHUNK_CLAIMED,   /* was missing, now LOADING and yours: fetch it, chunkcache_complete() */
};

struct chunkcache_stats {
    uint64_t hits;          /* chunkcache_get found the chunk READY */
    uint64_t misses;        /* chunkcache_get claimed a missing chunk */
    uint64_t waits;         /* chunkcache_get joined a fetch in flight */
    uint64_t prefetches;    /* chunks claimed by chunkcache_claim (readahead) */
    uint64_t evictions;     /* READY chunks dropped to stay within the budget */
    uint64_t bytes_cached;  /* data bytes held now (READY + LOADING) */
    uint64_t bytes_loading; /* of which in flight */
    uint64_t chunks;        /* chunks held now */
    uint64_t bytes_fetched; /* total bytes completed successfully */
    uint64_t failed;        /* chunks completed with an error */
    uint64_t waits_timedout; /* chunkcache_wait_until gave up at its deadline */
    uint64_t waits_refused;  /* ... or because too many waits were slow (-EAGAIN) */
    uint64_t slow_waits;     /* waits counted slow now */
    uint64_t bytes_scan;     /* of bytes_cached, on the scan list now */
    uint64_t recycled;       /* chunks made with the buffer of the chunk evicted for them */
};

/* budget: bytes of chunk data (0: CHUNKCACHE_DEFAULT_BUDGET). chunk_size: bytes (0: default).
 * Returns 0 or -ENOMEM / -EINVAL. */
int chunkcache_new(size_t budget, size_t chunk_size, struct chunkcache **out);
/* All references must have been released and every claimed chunk completed. NULL is a no-op. */
void chunkcache_free(struct chunkcache *cc);

size_t chunkcache_chunk_size(const struct chunkcache *cc);
size_t chunkcache_budget(const struct chunkcache *cc);

/* Look up a chunk; len is its length (1..chunk_size), used if it must be created. On success
 * *out holds a reference and the return value says what to do with it (see enum above).
 * Returns -ENOMEM if a missing chunk could not be created. */
int chunkcache_get(struct chunkcache *cc, const struct chunk_key *k, size_t len,
                   struct chunk **out);

/* Is the chunk cached or in flight? Takes no reference and counts nothing: a hint, true or
 * false the moment after. */
bool chunkcache_present(struct chunkcache *cc, const struct chunk_key *k);

/* The scan list's bound (default: none). Call before any other use. */
void chunkcache_set_scan_max(struct chunkcache *cc, uint64_t bytes);

/* Mark a chunk the caller holds a reference to as read through by a sequential reader: once
 * unreferenced, it goes on the scan list. */
void chunkcache_consumed(struct chunkcache *cc, struct chunk *ch);

/* The buffer to fill a claimed chunk with (chunkcache_len bytes): the buffer of a chunk
 * evicted to make room for it if there was one, else a new one (chunkcache_data_alloc);
 * NULL if out of memory. Only the claimer calls it, once; the buffer goes to
 * chunkcache_complete, or to chunkcache_data_free if the fetch fails. */
char *chunkcache_buffer(struct chunk *ch);

/* Claim a chunk for readahead: only if it is absent, and only while the bytes in flight stay
 * within half the budget (readahead must not flush the cache). On 0 *out is a LOADING chunk
 * with a reference, marked advisory (see chunkcache_advisory). Returns -EEXIST if the chunk is
 * cached or in flight, -ENOSPC if too much is in flight, -ENOMEM. */
int chunkcache_claim(struct chunkcache *cc, const struct chunk_key *k, size_t len,
                     struct chunk **out);

/* A buffer for a chunk's data (len bytes), to hand to chunkcache_complete, or NULL. Large ones
 * are mapped with their pages already present: filling a fresh 256 KiB buffer otherwise costs 64
 * page faults (this took ipfsfs's CPU for a cold 256 MiB read from ~0.40 s to ~0.32 s). */
char *chunkcache_data_alloc(size_t len);
/* Free a buffer from chunkcache_data_alloc (NULL is a no-op); len as allocated. */
void chunkcache_data_free(char *data, size_t len);

/* Finish a claimed chunk. err == 0: data (from chunkcache_data_alloc, chunkcache_len() bytes) is
 * taken over and
 * the chunk becomes READY. err < 0: data must be NULL; the chunk is FAILED, removed from the
 * cache, and its waiters get err. Wakes the waiters. The caller's reference is kept. */
void chunkcache_complete(struct chunkcache *cc, struct chunk *ch, char *data, int err);

/* Wait until a chunk is no longer LOADING. Returns 0 (READY) or the fetch's -errno. */
int chunkcache_wait(struct chunkcache *cc, struct chunk *ch);

/* Bound the threads that wait long: a wait that lasts slow_ms is slow, and at most max_slow
 * waits are slow at once, at most per_file of them on chunks of one file (CID). A wait that
 * becomes slow past either bound gives up with -EAGAIN, so that a slow or stalled file cannot
 * hold every thread while other files are read. 0 (the default): no bound. Call before any
 * wait. Returns 0 or -ENOMEM. */
int chunkcache_set_wait_limits(struct chunkcache *cc, unsigned slow_ms, unsigned max_slow,
                               unsigned per_file);

/* chunkcache_wait that gives up at deadline (CLOCK_MONOTONIC; NULL: never) with -ETIMEDOUT,
 * or with -EAGAIN (see chunkcache_set_wait_limits). The fetch goes on; only the wait ends. */
int chunkcache_wait_until(struct chunkcache *cc, struct chunk *ch,
                          const struct timespec *deadline);

/* Drop a reference (NULL is a no-op). */
void chunkcache_release(struct chunkcache *cc, struct chunk *ch);

/* Immutable properties, readable with a reference and no lock. chunkcache_data is valid once
 * the chunk was seen READY (from chunkcache_get or chunkcache_wait). */
/* When a chunk of the file cid_hash last became READY (CLOCK_MONOTONIC ns), 0 if not known. */
uint64_t chunkcache_progress_ns(struct chunkcache *cc, uint64_t cid_hash);

const char *chunkcache_data(const struct chunk *ch);
size_t chunkcache_len(const struct chunk *ch);
uint64_t chunkcache_index(const struct chunk *ch);
const struct cid *chunkcache_cid(const struct chunk *ch);
uint64_t chunkcache_cid_hash(const struct chunk *ch);
/* True if the chunk was claimed by chunkcache_claim: its failure says nothing about the
 * caller's read (the prefetch may have been cancelled), so a waiter should retry. */
bool chunkcache_advisory(const struct chunk *ch);

void chunkcache_get_stats(struct chunkcache *cc, struct chunkcache_stats *st);

#endif
