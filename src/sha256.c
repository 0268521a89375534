/* sha256.c - see sha256.h. */
#include "config.h"

#include "sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>

/* OpenSSL 3 looks EVP_sha256() up in its provider tables (under a lock) on every EVP_Digest;
 * fetching it once skips that. md is written once, under sha_once. */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha_md;

static void sha_fetch(void)
{
    sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int sha256_digest(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    unsigned int n = 0;
    pthread_once(&sha_once, sha_fetch);
    /* EVP_Digest is one-shot and keeps no shared state: safe from any thread. The fetched md is
     * immutable; without one (no provider), fall back to the implicit lookup. */
    const EVP_MD *md = sha_md ? sha_md : EVP_sha256();
    if (EVP_Digest(data, len, out, &n, md, NULL) != 1 || n != SHA256_LEN)
        return -EIO;
    return 0;
}
