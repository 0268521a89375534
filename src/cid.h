/* cid.h - content identifiers: parse, validate and format CIDv0/CIDv1.
 *
 * A CID is kept in binary form; strings are only an encoding. Parsing accepts CIDv0
 * (46-character base58btc "Qm...") and CIDv1 in the multibases base32 (b/B), base32hex (v/V),
 * base58btc (z), base36 (k/K), base16 (f/F), base64 (m), base64url (u), base64pad (M) and
 * base64urlpad (U). Pure logic, no I/O, thread-safe.
 */
#ifndef IPFSFS_CID_H
#define IPFSFS_CID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CID_CODEC_RAW 0x55
#define CID_CODEC_DAG_PB 0x70
#define CID_CODEC_DAG_CBOR 0x71
#define CID_CODEC_LIBP2P_KEY 0x72

#define MH_IDENTITY 0x00
#define MH_SHA2_256 0x12

/* Largest multihash we accept (code varint + length varint + digest). Identity multihashes
 * (inlined data) longer than this are refused. */
#define CID_MAX_MH 160
/* Large enough for any cid_format() output of a CID we accept. */
#define CID_STR_MAX 320

struct cid {
    unsigned version; /* 0 or 1 */
    uint64_t codec;   /* multicodec of the content: CID_CODEC_DAG_PB, CID_CODEC_RAW, ... */
    uint64_t mh_code; /* multihash function code */
    size_t mh_len;    /* bytes used in mh[] */
    uint8_t mh[CID_MAX_MH]; /* the whole multihash: varint code, varint digest length, digest */
};

/* Parse the string s[0..len). Returns 0, or -EINVAL for anything that is not a well-formed CID
 * (bad multibase, bad characters, trailing bytes, digest length that does not match the
 * multihash header or the known length of the hash function, CIDv0 that is not sha2-256...). */
int cid_parse(const char *s, size_t len, struct cid *out);

/* Parse a binary CID (as stored in dag-pb links). Returns 0 or -EINVAL. */
int cid_from_bytes(const uint8_t *b, size_t n, struct cid *out);

/* Binary form: v0 = the multihash; v1 = varint(1) varint(codec) multihash.
 * Returns the length written, or -ENOSPC (or -EINVAL if c is not a valid struct cid). */
int cid_to_bytes(const struct cid *c, uint8_t *buf, size_t buflen);

/* Canonical string: v0 as base58btc "Qm...", v1 as base32 lower-case with the 'b' prefix
 * (what Kubo prints). NUL-terminated. Returns the string length or -ENOSPC (or -EINVAL if c is
 * not a valid struct cid). */
int cid_format(const struct cid *c, char *buf, size_t buflen);

/* base58btc text (len chars, leading '1's are leading zero bytes) to at most outmax bytes in
 * out; *outlen gets how many. 0, or -EINVAL. Pure. */
int cid_base58_decode(const char *s, size_t len, uint8_t *out, size_t outmax, size_t *outlen);

bool cid_equal(const struct cid *a, const struct cid *b);

/* 64-bit hash (xxHash3) of the binary form: equal CIDs hash equal. */
uint64_t cid_hash(const struct cid *c);

/* Unsigned LEB128 varint helpers (multiformats style, at most 9 bytes).
 * varint_decode returns the number of bytes consumed, or 0 on a truncated/overlong varint. */
size_t varint_decode(const uint8_t *p, size_t n, uint64_t *out);
size_t varint_encode(uint64_t v, uint8_t *buf); /* buf has room for 10 bytes */

#endif
