/* gateway.h - verified blocks from HTTP trustless gateways: a light client's only question.
 *
 * A pool of gateways ("https://trustless-gateway.link", "http://127.0.0.1:8080", a path prefix
 * allowed) answers one question: the bytes of block C. It asks
 *     GET URL/ipfs/C?format=raw   with   Accept: application/vnd.ipld.raw
 * as the trustless gateway spec says, and returns an answer only once its hash is C's: a
 * gateway can be slow or gone, never wrong. A gateway that answers other bytes is penalised and
 * the next one is asked.
 *
 * Choosing: the gateways are tried in order of how fast they answered lately (an average of
 * their answer times; one not asked yet goes first, to learn it). When the first has not
 * answered within a hedge delay (a few times its usual answer time), the next is asked as well
 * (a race), and the first verified answer wins; when one fails, the next is asked at once.
 * Backing off:
 *   - 429, 503 or 504: set aside for its Retry-After (seconds or an HTTP date), else 1 s then
 *     doubling, at most GW_MAX_BACKOFF_MS;
 *   - no connection, a timeout, a cut transfer or another 5xx: set aside likewise (a dead
 *     gateway costs one timeout, once, not one per read). A gateway that went a whole timeout
 *     without answering is on probation until it answers again: when every other gateway
 *     asked says "not found", it gets 2 s, not the rest of the timeout (else a host that
 *     accepts connections and never answers would cost a timeout on every read of content
 *     nobody has, once its backoff ran out);
 *   - wrong bytes or an oversized answer: set aside for GW_BAD_BLOCK_MS;
 *   - 404 ("I do not have it"), 410 and 451 (denylisted there) do not set a gateway aside, nor
 *     does a 5xx whose body is "routing: not found" (Kubo's gateway for an IPNS name with no
 *     record).
 * Redirects are followed (ipfs.io sends block requests to trustless-gateway.link): whoever
 * answers, the bytes are checked.
 * A call that finds every gateway set aside waits for the first to come back if that fits in
 * its timeout and it was set aside for rate limiting, else fails at once: -EIO if one of them
 * was set aside for wrong bytes, else -ETIMEDOUT.
 *
 * Progress is counted in verified blocks, never in bytes: a gateway that sends a byte now and
 * then (it trickles) makes no progress, and costs at most about one timeout (the pool's
 * timeout_ms, --timeout) per call before it is set aside as for a stall and the caller goes to
 * the next gateway or way:
 *   - gw_block and gw_ipns_record: the whole call, every gateway included, within the timeout;
 *   - gw_blocks: each request (one block, at most GW_MAX_BLOCK) within the timeout: so a
 *     verified block at least every timeout, and at least GW_MAX_BLOCK per timeout;
 *   - gw_car: a stream goes on while a verified block comes within the timeout since the last
 *     one (or since the call began), and the verified bytes keep up with GW_MAX_BLOCK per
 *     timeout (after t ms, at least (t / timeout - 1) * GW_MAX_BLOCK): a healthy stream of
 *     hundreds of MiB may take longer than the timeout, a trickle may not.
 * Besides, a transfer that sends no byte at all for twice its gateway's hedge delay (at least
 * 1 s) is given up sooner (gw_car, gw_blocks), but only sorted behind the others, not set
 * aside: a pause on a loaded machine is not a dead gateway, and the caller goes on block by
 * block (gw_block), where a whole timeout with no answer does set a gateway aside.
 */
#ifndef IPFSFS_GATEWAY_H
#define IPFSFS_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "car.h"
#include "cid.h"

/* The largest block asked for: what the trustless spec and Kubo's bitswap allow. */
#define GW_MAX_BLOCK (2u << 20)
/* At most this many gateways in a pool. */
#define GW_MAX 16
/* Longest time a gateway is set aside, whatever it answered. */
#define GW_MAX_BACKOFF_MS 60000u
/* How long a gateway that answered wrong bytes is set aside. */
#define GW_BAD_BLOCK_MS 60000u

struct gw;

struct gw_config {
    const char *const *urls; /* http(s) URLs, at most GW_MAX */
    size_t n_urls;
    unsigned timeout_ms;     /* bound on one gw_block call, every gateway included; the
                              * progress rule's (above) */
    const char *proxy;       /* proxy URL, or NULL: none (the environment's are not used) */
    const char *cacert;      /* CA bundle for https, or NULL for the system default */
};

/* 0 and *out, or -errno with a message in err (a URL that is not http(s), too many...). */
int gw_new(const struct gw_config *cfg, struct gw **out, char *err, size_t errlen);

/* The block c, verified (its hash is c's). *data is malloc'd. Thread-safe. Returns 0, or:
 *   -ETIMEDOUT  no gateway gave it in time (none had it, or none answered, or all are set aside);
 *   -EIO        every answer was wrong (wrong bytes, too big), or every gateway is set aside
 *               and one of them for wrong bytes;
 *   -ENOTSUP    c's hash function is not one we can check (only sha2-256 and identity);
 *   -ENOMEM. */
int gw_block(struct gw *g, const struct cid *c, uint8_t **data, size_t *len);

struct ipns_record;
/* The IPNS record of name (a libp2p-key CID, spelled as given when that is plain letters and
 * digits: Kubo's gateway redirects other spellings to base36), from the gateways (GET
 * URL/ipns/NAME?format=ipns-record), verified (ipns.h) at now_ns, with a sequence of at least min_seq (a
 * gateway with an older or expired record is passed over, not set aside). 0 and *out, or
 * -ENOENT (every gateway answered that it has none), -ETIMEDOUT (none gave one in time),
 * -EIO (every answer was wrong). */
int gw_ipns_record(struct gw *g, const char *spelled, const struct cid *name, int64_t now_ns,
                   uint64_t min_seq, struct ipns_record *out);

/* Stream the CAR at URL PATH ("/ipfs/CID?format=car&..."; Accept: application/vnd.ipld.car,
 * order=dfs, dups=y) from one gateway, fastest first: the next is asked when the first has not
 * brought a verified block within its hedge delay, or failed before it did; the first to bring
 * a verified block owns the stream (the others are dropped). Each block reaches cb only once it
 * hashes to its CID (car.h); cb returns 0 to go on, -EBADMSG for a block the caller did not ask
 * for (that gateway is penalised, as for wrong bytes), or another -errno to stop (returned as
 * is). At most max bytes are read. A stream is given up, its gateway set aside, by the progress
 * rule above (no verified block for the timeout, or fewer than GW_MAX_BLOCK a timeout), and
 * past max(16 x timeout, 120 s) in all; it is given up, its gateway only sorted behind, when it
 * stops sending for twice its gateway's hedge delay (at least 1 s). Returns 0 (the CAR ended
 * cleanly), or:
 *   -EAGAIN     cut short after some blocks (the caller goes on from what it got);
 *   -ETIMEDOUT  no gateway gave a block in time (none had it, or none answered, or all are set
 *               aside: this call does not wait for a rate-limited one);
 *   -EIO        the answers were wrong (blocks that do not verify, not asked for, malformed);
 *   -ENOTSUP, -ENOMEM, or cb's error. */
int gw_car(struct gw *g, const char *path, size_t max, car_block_cb cb, void *ud);

/* The blocks of root's DAG that hold the bytes [from, to] (inclusive) of the file it is, as
 * one CAR (dag-scope=entity, entity-bytes=FROM:TO, in DFS order), through gw_car (ud: the
 * struct gw). node_store's range fetch hook. */
int gw_fetch_range(void *ud, const struct cid *root, uint64_t from, uint64_t to, size_t max,
                   car_block_cb cb, void *cbud);

/* Many blocks at once, for a reader that knows what it needs next: cids[0..n) are asked of
 * the fastest available gateway, in order, at most parallel requests at a time (at most 16),
 * on kept-alive connections. Each block, once verified (as gw_block), goes to cb with its index
 * (in completion order; data is malloc'd and the callback's to free). What this call does not
 * bring is the caller's to ask (gw_block): it stops issuing requests when that gateway fails,
 * answers wrong bytes, rate-limits or stalls (a request not done within the timeout, as the
 * progress rule above says), and sets it aside as gw_block would; it stops as well, the gateway
 * only sorted behind, when a request gets no byte for twice its hedge delay (at least 1 s).
 * A negative return of cb stops it: cb is not called again. From 4 blocks on, cb runs on a
 * thread of the call's own (one call at a time, all done before gw_blocks returns), while the
 * calling thread reads the next answers. Returns how many
 * blocks cb took, or -errno (cb's error; -ETIMEDOUT: every gateway is set aside). */
int gw_blocks(struct gw *g, const struct cid *cids, size_t n, unsigned parallel,
              int (*cb)(void *ud, size_t i, uint8_t *data, size_t len), void *ud);

/* Give back a block's buffer that gw_blocks (or gw_block) handed over, for a later block to
 * use (its pages stay mapped); free() is fine too. ud: the struct gw. */
void gw_buf_release(void *ud, uint8_t *data);

/* gw_blocks in the shape of node_store's batch fetch hook (ud: the struct gw). */
int gw_fetch_many(void *ud, const struct cid *cids, size_t n, unsigned parallel,
                  int (*cb)(void *ud, size_t i, uint8_t *data, size_t len), void *cbud);

/* gw_block in the shape of node_store's fetch hook (ud: the struct gw). */
int gw_fetch(void *ud, const struct cid *c, uint8_t **data, size_t *len);

/* A read's bound across calls (node_store's fetch_cap hook; ud: the struct gw). on: from now,
 * until the timeout, the calling thread's single-block requests (gw_block) end by then, and
 * a CAR (gw_car) that has brought no block yet; the caller arms it again at each verified
 * block, so it bounds a read's time without progress, not a read that keeps going. off: no
 * bound but each call's own. A read that goes from a batch to a CAR to single blocks then
 * waits one timeout in all, not one per step. */
void gw_read_cap(void *ud, bool on);

/* Counters ("gw_blocks N\n"... then one "gateway URL ok=.. ..." line per gateway) into buf,
 * as snprintf. */
int gw_stats(struct gw *g, char *buf, size_t len);
/* The same, for a callback that takes the struct gw as void *. */
int gw_stats_cb(void *ud, char *buf, size_t len);

void gw_free(struct gw *g);

/* Pure helpers, exposed for the unit tests. */

/* Milliseconds a Retry-After value asks for (delta-seconds, or an IMF-fixdate relative to now),
 * capped at GW_MAX_BACKOFF_MS; -1 if it cannot be read. */
long gw_retry_after_ms(const char *value, time_t now);

/* url without its trailing slashes, checked: http:// or https://, a host, no query or
 * fragment. 0, or -EINVAL. */
int gw_normalize_url(const char *url, char *out, size_t outlen);

/* Whether data is the block c names (sha2-256, or identity). */
int gw_verify(const struct cid *c, const uint8_t *data, size_t len);

#endif
