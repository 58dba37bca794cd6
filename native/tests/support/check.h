/* check.h: the tiny assertion helper of the C tests; each program ends with CHECK_DONE(). */
#ifndef CHECK_H
#define CHECK_H
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            check_passed++;                                                       \
        } else {                                                                  \
            check_failed++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

#define CHECK_DONE(name)                                                          \
    (printf("%s: %d passed, %d failed\n", (name), check_passed, check_failed),    \
     fflush(stdout), check_failed ? 1 : 0)

#endif
