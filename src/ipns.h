/* ipns.h - IPNS records: parse and verify, as the IPNS spec says (the base of /ipns through
 * gateways, which can be hostile: a record is used only once it is proven to be the name's).
 *
 * A record (IpnsEntry protobuf, at most IPNS_MAX_RECORD bytes) is accepted for a name when:
 *   - it has signatureV2 and data (DAG-CBOR: Value, Validity, ValidityType, Sequence, TTL);
 *   - the public key is the name's: inlined in the name (an identity multihash, as Ed25519 keys
 *     are), or the record's pubKey whose sha2-256 is the name's multihash (RSA keys);
 *   - signatureV2 verifies over "ipns-signature:" followed by data (Ed25519 or RSA PKCS#1 v1.5
 *     with SHA-256, with libcrypto);
 *   - the V1 fields, where present (value, validity, validityType, sequence, ttl), equal the
 *     signed data's;
 *   - ValidityType is 0 (EOL) and the validity (RFC 3339) is still in the future.
 */
#ifndef IPFSFS_IPNS_H
#define IPFSFS_IPNS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cid.h"

/* The spec's limit on a record's size. */
#define IPNS_MAX_RECORD (10u << 10)
/* The longest Value kept ("/ipfs/CID/path" or "/ipns/NAME"). */
#define IPNS_MAX_VALUE 1024u

struct ipns_record {
    char value[IPNS_MAX_VALUE + 1]; /* NUL-terminated */
    uint64_t sequence;
    uint64_t ttl_ns;      /* 0 if the record gives none */
    int64_t eol_ns;       /* validity: nanoseconds since the epoch (UTC) */
};

/* Verify rec (len bytes) for the IPNS name whose key is in name (a CIDv1 with codec libp2p-key,
 * or a peer ID's multihash parsed as such). now_ns: the current time (ns since the epoch). 0 and
 * *out, or:
 *   -EFBIG       bigger than IPNS_MAX_RECORD;
 *   -EBADMSG     not a record (malformed protobuf or CBOR, a field missing, V1 fields that
 *                disagree with the signed data, an unknown validity type);
 *   -EKEYREJECTED the key is not the name's, or the signature does not verify;
 *   -ENOTSUP     a key type we cannot check (secp256k1, ECDSA);
 *   -ETIME       the record has expired. */
int ipns_verify(const struct cid *name, const uint8_t *rec, size_t len, int64_t now_ns,
                struct ipns_record *out);

/* How long a verified record may be used from now: the shortest of its TTL (cap_ns when it
 * gives none), the time left before its EOL, and cap_ns. 0 if expired. */
uint64_t ipns_lifetime_ns(const struct ipns_record *r, int64_t now_ns, uint64_t cap_ns);

/* An IPNS name as written in a path, to the name's key as a CIDv1 with codec libp2p-key:
 *   - a CIDv1 with codec libp2p-key in any multibase (k51..., bafz...: Ed25519 keys inlined;
 *     k2k4..., bafzbei...: RSA keys, by their sha2-256);
 *   - a peer ID as libp2p writes it, the bare multihash in base58btc: 12D3Koo... (identity, an
 *     Ed25519 key inlined) or Qm... (sha2-256, an RSA key).
 * A content CID (another codec) is no name. 0, or -EINVAL. */
int ipns_name_parse(const char *s, size_t len, struct cid *out);

/* The canonical spelling of a name (base36 CIDv1, "k51..."), the one gateways serve without a
 * redirect. Returns the length, or -ENOSPC / -EINVAL. */
int ipns_name_format(const struct cid *name, char *buf, size_t buflen);

/* RFC 3339 ("2026-12-05T23:24:46.469999804Z", or with a +HH:MM offset) to ns since the epoch.
 * 0, or -EINVAL. */
int ipns_parse_time(const char *s, size_t len, int64_t *ns);

#endif
