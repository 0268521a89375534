/* importer.h - turn a file's bytes into a UnixFS DAG exactly as Kubo's `ipfs add` does.
 *
 * Fixed-size chunks (default 262144 bytes), balanced layout with at most 174 links per node
 * (Kubo's default; Import.UnixFSFileMaxLinks sets another, 1024 in the unixfs-v1-2025 profile),
 * leaves dag-pb UnixFS File nodes (CIDv0 default) or raw blocks (raw_leaves; the default with
 * CIDv1), internal nodes dag-pb with Links (Name "", Tsize = cumulative size) and UnixFS
 * {Type=File, filesize, blocksizes}. A one-chunk file is just its leaf. Memory is bounded: one
 * chunk plus at most max_links pending links per tree level, whatever the file size.
 * Thread-safe.
 */
#ifndef IPFSFS_IMPORTER_H
#define IPFSFS_IMPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"
#include "node.h"

#define IMPORT_MAX_LINKS 174        /* Kubo's default links per file node */
#define IMPORT_MAX_LINKS_CAP 65536  /* the most import_opts_from takes */
#define IMPORT_DEFAULT_CHUNK 262144
#define IMPORT_MAX_CHUNK 2096896 /* Kubo's limit for size-N */

struct import_opts {
    unsigned cid_version; /* 0 or 1 */
    bool raw_leaves;
    size_t chunk_size;
    unsigned max_links; /* links per file node, 2..IMPORT_MAX_LINKS_CAP (0: 174) */
};

/* Resolve add options into import options, with Kubo's defaults for the -1/NULL/0 values
 * (CIDv0, raw leaves iff CIDv1, size-262144, 174 links per node). Only the size-N chunker exists here: any other
 * is -ENOTSUP, a malformed one -EINVAL. */
int import_opts_from(const struct node_add_opts *o, struct import_opts *out);

/* Receives each block as it is made (children before parents). Return 0 or -errno to stop. */
typedef int (*import_put_fn)(void *ud, const struct cid *c, const uint8_t *data, size_t len);

/* Import size bytes read from fd at offsets 0..size. put may be NULL (only hash). On success
 * *out is the root CID and *tsize (if not NULL) its cumulative DAG size. Returns 0 or -errno
 * (-EIO if fd holds fewer than size bytes). */
int import_fd(int fd, uint64_t size, const struct import_opts *o, import_put_fn put, void *ud,
              struct cid *out, uint64_t *tsize);

/* The same, a chunk at a time, for bytes that arrive over time (a file being written): begin
 * (size_hint: the file's size if known, else anything >= the chunk size; o must outlive the
 * importer), then import_next for each chunk in order, read from fd at import_offset (each
 * chunk import_chunk_size bytes but the last, which may be shorter), then import_end for the
 * root. The DAG equals import_fd's of the same bytes. import_free in every case. */
struct importer;
int import_begin(const struct import_opts *o, uint64_t size_hint, import_put_fn put, void *ud,
                 struct importer **out);
size_t import_chunk_size(const struct importer *im);
uint64_t import_offset(const struct importer *im);
int import_next(struct importer *im, int fd, size_t len);
int import_end(struct importer *im, struct cid *out, uint64_t *tsize);
void import_free(struct importer *im);

#endif
