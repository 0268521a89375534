/* node_later.h - a node that is not there yet: every call first tries to connect (at most once a
 * second), fails with -EIO while nothing answers, and is forwarded once something does.
 *
 * A local-first mount uses it as its upstream when the node does not answer at mount time: the
 * names and writes are local anyway, and the sync engine catches up once the node is up.
 */
#ifndef IPFSFS_NODE_LATER_H
#define IPFSFS_NODE_LATER_H

#include <stddef.h>

#include "node.h"

/* Makes the real node: 0 and *out, or -errno with a message in err. Called with no lock held
 * by the store, from any thread (one at a time). */
typedef int (*node_connect_fn)(void *ud, struct node **out, char *err, size_t errlen);

/* description: what to call the node until it answers (e.g. "the node at URL"). */
int node_later_new(node_connect_fn connect, void *ud, const char *description,
                   struct node **out);

#endif
