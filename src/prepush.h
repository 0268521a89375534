/* prepush.h - a large file's blocks go to the node while the file is still being written.
 *
 * Without it, `cp BIG MNT/x; sync MNT/x` imports the file locally first (close never waits on
 * the network), and only then does the sync's push read every block back and send it: the two
 * halves run one after the other. With it, the store hands each block it stores for a file
 * import of more than four chunks to prepush_block (its hook, node_store_set_block_hook): as
 * the file is written when it is written in order, else at its close. A leaf of at least
 * PREPUSH_MIN_BLOCK bytes (a chunk of the default chunker) is copied into a bounded queue, and
 * a thread sends the queue to the node in CARs (dag/import, no pins) while more blocks come.
 * Once the node has confirmed a CAR, its blocks are known to have gone, and the push leaves
 * them out of its own CAR (prepush_has).
 *
 * Nothing else changes: the names still go after the blocks, and the push still records the
 * node's state only once the node confirmed it. The known set is a hint, never a promise:
 *   - a block that does not fit in the queue, or whose CAR fails, goes with the push as before;
 *   - the node may drop an unpinned block before a name links it (a `repo gc`, a node started
 *     again on an empty repo), and linking a name (files/cp) loads only the file's root: so
 *     the push asks the node whether it has every block under each file whose blocks it left
 *     out (node op has_dag), and sends them again if not (sync.c, check_ahead);
 *   - what was confirmed is forgotten PREPUSH_KNOWN_MS after the set's first entry, and when
 *     the set is full.
 *
 * Never waits on the network in prepush_block: the writer's path stays local. The prepush's
 * lock protects its queue, spare buffers, known set and counters; the upload is made without
 * it held.
 */
#ifndef IPFSFS_PREPUSH_H
#define IPFSFS_PREPUSH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"
#include "node.h"

#define PREPUSH_MIN_BLOCK (64u << 10)               /* smaller blocks go with the push */
#define PREPUSH_QUEUE_BYTES (32u << 20)             /* copies waiting; past it, left to the push */
#define PREPUSH_KNOWN_MAX 16384u                    /* blocks remembered as confirmed */
#define PREPUSH_KNOWN_MS (10u * 60u * 1000u)        /* a confirmation is trusted this long */

struct prepush;

/* Send through up (its put_car), each upload bounded as up bounds it. Starts the sending
 * thread. 0 or -errno. up must outlive the prepush. */
int prepush_new(struct node *up, struct prepush **out);

/* The store's hook: block c (len bytes at data) is stored locally. Queued when it is a leaf
 * (raw, or dag-pb without links) of at least PREPUSH_MIN_BLOCK bytes and the queue has room;
 * otherwise ignored. Never blocks on the node. Any thread. */
void prepush_block(struct prepush *p, const struct cid *c, const uint8_t *data, size_t len);

/* true when the node confirmed it took c, a block without links (the codec counts: a raw
 * chunk's bytes under a dag-pb CID are not it), within PREPUSH_KNOWN_MS. */
bool prepush_has(struct prepush *p, const struct cid *c);

/* Wait, at most wait_ms, until every block queued before the call has been sent and its CAR
 * answered (confirmed or failed). The CAR being written ends as soon as those are in it. */
void prepush_drain(struct prepush *p, unsigned wait_ms);
/* The same; each time a CAR is answered meanwhile, *moved_ms (if not NULL) takes the time
 * (CLOCK_MONOTONIC ms): the push moves (fsync waits while it does, sync.c). */
void prepush_drain_moving(struct prepush *p, unsigned wait_ms, _Atomic uint64_t *moved_ms);

/* Forget every confirmation (a push failed: the node may lack what it confirmed). */
void prepush_forget(struct prepush *p);

/* Send nothing more ahead (the node cannot say what it has): prepush_block ignores every
 * block from now on, what is queued is dropped, and every confirmation is forgotten. */
void prepush_off(struct prepush *p);

/* Counters for user.ipfsfs.stats. snprintf-like. */
int prepush_stats(struct prepush *p, char *buf, size_t len);

/* Drop what is queued, end the CAR being sent (waiting for its answer, bounded by up's
 * timeout), stop the thread and free p. NULL-safe. */
void prepush_free(struct prepush *p);

#endif
