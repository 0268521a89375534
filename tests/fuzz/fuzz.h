/* fuzz.h - shared bits of the libFuzzer harnesses (see run-fuzzers.sh).
 *
 * A harness checks properties, not only "no crash": when one fails it calls FUZZ_FAIL, which
 * prints the reason and aborts, so libFuzzer saves the input as a crash.
 */
#ifndef IPFSFS_FUZZ_H
#define IPFSFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "FUZZ PROPERTY FAILED (%s:%d): ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FUZZ_FAIL(__VA_ARGS__);                                                                \
    } while (0)

/* Read every byte of [p, p+n) so ASan sees any pointer that goes outside its buffer. */
static inline unsigned fuzz_touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
