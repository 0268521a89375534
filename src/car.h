/* car.h - CAR (Content Addressable aRchive) files: a verifying streaming reader, and a writer.
 *
 * CARv1: varint(len) + a DAG-CBOR header {roots: [CID...], version: 1}, then sections
 * varint(len(cid) + len(block)) cid block. CARv2: the 11-byte pragma, a 40-byte header (data
 * offset and size, little-endian), a CARv1 payload at that offset, an index we skip.
 *
 * The reader is what Kubo's and the trustless gateways' CAR responses go through: it takes the
 * stream in whatever pieces libcurl hands over, and hands back each block once it has checked
 * that the block hashes to its CID. Memory is O(max_block): the largest section seen, a header
 * of at most CAR_HEADER_MAX bytes, and the header's roots. Blocks that fit in one fed piece are
 * passed in place, without a copy.
 *
 * The writer produces CARv1 exactly as Kubo's `dag export` does (same bytes for the same
 * blocks), which Kubo's `dag/import` accepts. Pure logic plus the sinks' write(2); no locks: a
 * reader is used by one thread at a time, the writer functions keep no state.
 */
#ifndef IPFSFS_CAR_H
#define IPFSFS_CAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"

/* Largest header (the CARv1 header's DAG-CBOR) read or written. */
#define CAR_HEADER_MAX (64 * 1024)

/* Called for each verified block. c and block are valid only during the call (block may point
 * into the data given to car_reader_feed). Return 0 to go on, or a negative errno to stop:
 * car_reader_feed returns that value, and the reader stays failed. */
typedef int (*car_block_cb)(void *ud, const struct cid *c, const uint8_t *block, size_t len);

/* Reader state. The fields are private: use the functions below. */
struct car_reader {
    int state;
    int err;               /* the sticky error once failed, else 0 */
    size_t max_block;      /* largest block accepted */
    uint8_t *buf;          /* the piece being assembled (header or section), malloc'd */
    size_t cap, have, want;
    uint8_t var[10];       /* a varint being assembled */
    size_t varlen;
    uint64_t skip;         /* CARv2: padding bytes still to skip before the payload */
    uint64_t payload_left; /* CARv2: payload bytes still to come; UINT64_MAX in CARv1 */
    unsigned version;      /* 1 or 2 once the first header is read, else 0 */
    uint8_t *roots;        /* the roots, packed: 1 length byte, then the binary CID */
    size_t roots_len, nroots;
    uint64_t nblocks;
};

/* Prepare r for one stream; blocks over max_block bytes are refused (-EFBIG). Never fails. */
void car_reader_init(struct car_reader *r, size_t max_block);

/* Release r's memory; r can then be init'ed again. Safe on an init'ed, unused reader. */
void car_reader_free(struct car_reader *r);

/* Feed the next len bytes of the stream (any split, including 0 bytes). Calls cb for each block
 * completed by these bytes, in stream order (duplicates included). Returns 0, or a negative
 * errno, after which the reader is failed and every later call returns the same error:
 *   -EPROTO   malformed: bad varint, header or CID, not CAR version 1 or 2, a zero-length
 *             section, a section that does not fit in the CARv2 payload
 *   -EFBIG    a header over CAR_HEADER_MAX, or a block over max_block
 *   -EBADMSG  a block does not hash to its CID (the stream cannot be trusted)
 *   -ENOTSUP  a CID whose hash function we cannot check (only sha2-256 and identity)
 *   -ENOMEM, or what cb returned. */
int car_reader_feed(struct car_reader *r, const void *data, size_t len, car_block_cb cb,
                    void *ud);

/* The stream has ended. Returns 0 if it ended between sections (CARv1) or after the whole
 * payload (CARv2; the index after it is not read), -EPROTO if it ended inside the header or a
 * section (a short stream), or the reader's earlier error. */
int car_reader_finish(struct car_reader *r);

/* After the header: 1 or 2 (CARv2 wrapping a CARv1); 0 before. */
unsigned car_reader_version(const struct car_reader *r);
/* The CARv1 header's roots: how many, and root i (0 or -ERANGE). */
size_t car_reader_nroots(const struct car_reader *r);
int car_reader_root(const struct car_reader *r, size_t i, struct cid *out);
/* Blocks passed to the callback so far. */
uint64_t car_reader_nblocks(const struct car_reader *r);

/* ---- writing CARv1 ---- */

/* Where the writer's bytes go: write all len bytes, return 0 or a negative errno. */
typedef int (*car_write_fn)(void *ud, const void *data, size_t len);

/* The header {roots, version: 1}. Returns 0, -EINVAL (bad CID), -EFBIG (over CAR_HEADER_MAX)
 * or the sink's error. */
int car_write_header(car_write_fn w, void *ud, const struct cid *roots, size_t nroots);
/* One section. The block is not hashed: the caller vouches that it matches c. Returns 0,
 * -EINVAL or the sink's error. */
int car_write_block(car_write_fn w, void *ud, const struct cid *c, const uint8_t *block,
                    size_t len);
/* Bytes car_write_block writes for this block (0 if c is not a valid CID). */
size_t car_block_size(const struct cid *c, size_t len);

/* Sink: a file descriptor; ud points to an int. Retries short writes and EINTR. */
int car_sink_fd(void *ud, const void *data, size_t len);

/* Sink: a growing memory buffer; ud points to a struct car_buf, zeroed or with max set.
 * Returns -EFBIG past max bytes (if max != 0), -ENOMEM. Free data with free(). */
struct car_buf {
    uint8_t *data;
    size_t len, cap;
    size_t max; /* 0: no limit */
};
int car_sink_buf(void *ud, const void *data, size_t len);

#endif
