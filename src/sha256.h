/* sha256.h - SHA-256 over OpenSSL's libcrypto (EVP), the hash behind every CID we write.
 * Thread-safe, no state. */
#ifndef IPFSFS_SHA256_H
#define IPFSFS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

/* Hash len bytes at data into out. Returns 0, or -ENOMEM/-EIO if libcrypto fails. */
int sha256_digest(const void *data, size_t len, uint8_t out[SHA256_LEN]);

#endif
