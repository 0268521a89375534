/* reader.h - reads of immutable files through the shared chunk cache, with readahead.
 *
 * A read is served from the chunks that cover it (see chunkcache.h): cached chunks are copied,
 * chunks in flight are waited for, missing ones are fetched by the calling thread itself, the
 * contiguous missing run in one node_read.
 *
 * Readahead, per open handle: the first read only sets the position. A read that starts within
 * one chunk of where the previous sequential read ended (so the small reordering of the kernel's
 * async readahead still counts) is a sequential hit: the window becomes one chunk (or the read's
 * size, if larger), then doubles on each hit, up to readahead_max. Chunks in [end of the reads,
 * end + window) that are neither cached nor in flight are fetched in the background by a pool
 * of workers, as jobs of up to span_bytes of contiguous chunks (one ranged node_read each, run in
 * parallel). A read elsewhere prefetches nothing; a read that continues from it starts a new
 * stream (window from one chunk again); two random reads in a row drop the window. So random
 * reads never prefetch, and one stray read does not cost a long stream its window.
 *
 * Streams: once the window of a handle reaches 1 MiB (or readahead_max) and the file goes on
 * past it, the handle streams instead, if the node can (read_stream) and a stream slot is free
 * (workers / 2 of them). One worker then reads the file on in ranged requests made back to back,
 * the first span_bytes long and each next one twice as long (32 MiB at most, and never longer
 * than what the stream already delivered, since the node reads a whole range even when the
 * transfer is aborted). Its chunks are claimed only as far as the window reaches; when the bytes
 * get there the worker waits for the reader. A stream ends at EOF, when its reads turn random or
 * move, when the handle closes, when a request fails, or when the reader claims nothing new for
 * 1 s; a later sequential read starts another.
 *
 * Direct reads: a random read (the handle's first, or one that continues nothing) of at most
 * direct_max bytes whose chunks are neither cached nor in flight is not worth whole chunks: it
 * goes straight to the node, into the caller's buffer, and caches nothing (the kernel's page
 * cache keeps it). It asks the deepest node of the file's DAG known to hold the whole range
 * (the DAG map: the internal nodes of files, fetched in the background with get_block when the
 * node has it, checked against their CIDs; see reader.c), which costs the node far less than
 * a ranged read of the root.
 *
 * Sequential reads and the cache: a chunk that a sequential read reads to its end goes on the
 * cache's scan list (chunkcache.h): kept up to scan_keep bytes, evicted before any other chunk,
 * its buffer reused for the next chunk made. So one long read neither flushes the cache nor
 * touches fresh memory for every chunk (the page cache holds what it read).
 *
 * Prefetch is advisory: when the job queue is full the rest of the window is left for later
 * reads; a prefetch that fails or is cancelled leaves nothing behind, and a read waiting on it
 * fetches the chunk itself. A read never asks for bytes past EOF; a read at or after EOF is 0.
 *
 * Memory: cached and in-flight chunk bytes stay within cache_bytes (exceeded only while every
 * chunk is referenced or in flight; readahead keeps in flight within half of it). A stream holds
 * at most a window of chunks claimed or read ahead, like the span jobs. On top, each request in
 * progress has one chunk buffer being filled (a node without read_stream: a transfer buffer of
 * the request's size: at most workers x span_bytes for the prefetch, and 4 MiB per thread in
 * reader_read). The DAG map holds at most cache_bytes / 16 more.
 *
 * Time: a reader_read waits at most timeout_ms for its bytes, whatever the node does (see the
 * rule at the top of reader.c); then it fails with -ETIMEDOUT. A wait on a chunk that another
 * thread fetches, once it has lasted 1 s, takes one of max_slow_waits slots (max_slow_waits_per_file
 * for one file); with none free it fails at once with -EAGAIN.
 *
 * Threads: reader_read may be called concurrently, also on one handle. It blocks for the fetches
 * it needs (see Time). Locks: each handle has a lock for its detector, the job queue has one, the
 * cache has one; none is held across a network call.
 */
#ifndef IPFSFS_READER_H
#define IPFSFS_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cid.h"
#include "node.h"

struct reader_config {
    size_t cache_bytes;   /* chunk cache budget; 0: 256 MiB */
    size_t chunk_size;    /* 0: 256 KiB */
    size_t readahead_max; /* largest window per handle; 0 disables readahead. Capped at a
                           * quarter of the cache so prefetched chunks live until they are read */
    unsigned workers;     /* prefetch threads; 0: 8 */
    size_t span_bytes;    /* largest prefetch request; 0: 4 MiB (at least one chunk) */
    unsigned queue_max;   /* prefetch jobs waiting at most; 0: 4 per worker */
    unsigned timeout_ms;  /* longest a reader_read waits (the mount's --timeout); 0: 30 s */
    size_t scan_keep;     /* chunks that sequential reads read through are kept up to this
                           * (then their buffers serve the next chunks), before any other is
                           * evicted; 0: max(readahead_max, 4 MiB), at most a quarter of the
                           * cache; SIZE_MAX: like any chunk (LRU) */
    size_t direct_max;    /* random reads up to this size whose chunks are not cached go
                           * straight to the node, uncached; 0: chunk_size / 4, SIZE_MAX: never */
    unsigned max_slow_waits;          /* 0: 32 */
    unsigned max_slow_waits_per_file; /* 0: 8 */
};

struct reader;
struct reader_handle;

/* node is borrowed: it must outlive the reader. Returns 0 or -errno (-EINVAL if the cache
 * cannot hold one chunk, -ENOMEM, -EAGAIN if threads cannot be started). */
int reader_new(struct node *node, const struct reader_config *cfg, struct reader **out);
/* Stops the workers: fetches in progress finish (bounded by the node's timeout), queued ones
 * are cancelled; then frees the cache. Every handle must be closed and no read running.
 * NULL is a no-op. */
void reader_free(struct reader *r);

/* A handle per open file (filesize from the node's stat). NULL on -ENOMEM. */
struct reader_handle *reader_open(struct reader *r, const struct cid *c, uint64_t filesize);
/* NULL is a no-op. Background fetches the handle started continue (they only fill the cache). */
void reader_close(struct reader_handle *h);

/* Read up to size bytes at off into buf. Returns the bytes read (short only at EOF, 0 at or
 * after EOF) or -errno of the fetch that failed (-ETIMEDOUT, -EIO, -ENOMEM...), -ETIMEDOUT when
 * its bytes did not come within timeout_ms, -EAGAIN when too many waits are slow already. */
ssize_t reader_read(struct reader_handle *h, uint64_t off, size_t size, char *buf);

/* Statistics text, "name value\n" lines (cache_hits, cache_misses, cache_waits, ...).
 * Returns its length like snprintf (it may be truncated to len - 1 bytes). */
int reader_stats(struct reader *r, char *buf, size_t len);

#endif
